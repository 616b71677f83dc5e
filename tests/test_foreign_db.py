"""Other applications' databases: ``from_url`` checks before it changes anything.

A SQLite file that is not SQLite at all, or a database (SQLite or PostgreSQL) where another
application's table, index or function holds a name the package's schema needs, is refused
with ForeignDatabaseError naming what is in the way, and is left byte for byte (journal mode,
schema, rows) as it was. A database with other objects under other names gets the package's
tables beside them, and those objects are not touched.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sqlite3
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from langgraph_runstore import (
    DatabaseConfigError,
    ForeignDatabaseError,
    RunManager,
    SQLAlchemySaver,
    SQLRunStore,
)
from langgraph_runstore.db import create_engine, latest_version
from langgraph_runstore.db.migrations import VERSION_TABLE
from tests.backends import libpq_url
from tests.cli.helpers import run_cli
from tests.graphs import listed_model, reply, two_model_graph

pytestmark = pytest.mark.asyncio


def url_of(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


async def open_store(url: str) -> None:
    async with SQLRunStore.from_url(url):
        pass


async def open_saver(url: str) -> None:
    async with SQLAlchemySaver.from_url(url):
        pass


async def open_saver_sync(url: str) -> None:
    def go() -> None:
        with SQLAlchemySaver.from_url(url):
            pass

    await asyncio.to_thread(go)


async def open_engine_store(url: str) -> None:
    """An engine the user made, then ``store.setup()``."""
    engine = create_engine(url)
    try:
        store = SQLRunStore(engine)
        try:
            await store.setup()
        finally:
            await store.aclose()
    finally:
        await engine.dispose()


async def open_manager(url: str) -> None:
    async with RunManager.from_url(url):
        pass


OPENERS: dict[str, Callable[[str], Any]] = {
    "SQLRunStore.from_url": open_store,
    "SQLAlchemySaver.from_url": open_saver,
    "SQLAlchemySaver.from_url (with)": open_saver_sync,
    "SQLRunStore(engine).setup": open_engine_store,
    "RunManager.from_url": open_manager,
}


def folder_state(path: Path) -> dict[str, bytes]:
    """Every file in the database's folder, with its bytes."""
    return {p.name: p.read_bytes() for p in sorted(path.parent.iterdir())}


def sqlite_facts(path: Path) -> tuple[str, list[Any], str]:
    """(journal mode, schema, rows as SQL) of a SQLite file, read from a copy: even a
    read-only connection leaves a WAL file's -wal and -shm behind."""
    with tempfile.TemporaryDirectory() as folder:
        copy = Path(folder) / path.name
        for suffix in ("", "-wal"):
            if Path(f"{path}{suffix}").exists():
                shutil.copyfile(f"{path}{suffix}", f"{copy}{suffix}")
        conn = sqlite3.connect(copy)
        try:
            mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
            schema = conn.execute(
                "SELECT type, name, sql FROM sqlite_master ORDER BY name"
            ).fetchall()
            return mode, schema, "\n".join(conn.iterdump())
        finally:
            conn.close()


def make_sqlite(path: Path, *statements: str, wal: bool = False) -> None:
    conn = sqlite3.connect(path)
    try:
        if wal:
            conn.execute("PRAGMA journal_mode = WAL")
        for statement in statements:
            conn.execute(statement)
        conn.commit()
    finally:
        conn.close()


FOREIGN_RUNS = (
    "CREATE TABLE runs (id INTEGER PRIMARY KEY, name TEXT, started REAL)",
    "INSERT INTO runs (name, started) VALUES ('nightly backup', 1.5), ('import', 2.5)",
)


# -- SQLite: refused, and left exactly as it was ---------------------------------------------


@pytest.mark.parametrize("wal", [False, True], ids=["rollback-journal", "wal"])
@pytest.mark.parametrize("opener", list(OPENERS))
async def test_a_sqlite_file_with_its_own_runs_table_is_refused_and_unchanged(
    tmp_path: Path, opener: str, wal: bool
) -> None:
    path = tmp_path / "app.db"
    make_sqlite(path, *FOREIGN_RUNS, wal=wal)
    before_files, before_facts = folder_state(path), sqlite_facts(path)
    with pytest.raises(ForeignDatabaseError, match="table 'runs'") as refused:
        await OPENERS[opener](url_of(path))
    assert refused.value.names == ("runs",)
    assert "nothing was changed" in refused.value.message
    assert isinstance(refused.value, DatabaseConfigError)
    assert sqlite_facts(path) == before_facts
    assert folder_state(path) == before_files  # same files, same bytes: no -wal/-shm left


@pytest.mark.parametrize(
    ("statements", "named"),
    [
        # an index under one of the schema's names, on the application's own table
        (
            ("CREATE TABLE items (x INTEGER)", "CREATE INDEX runs_status_idx ON items (x)"),
            "index 'runs_status_idx'",
        ),
        # SQLite names are case-insensitive: RUNS is runs
        (("CREATE TABLE RUNS (x INTEGER)",), "table 'RUNS'"),
        (("CREATE VIEW rs_checkpoints AS SELECT 1 AS x",), "view 'rs_checkpoints'"),
        # a version table of another shape is not the package's
        ((f"CREATE TABLE {VERSION_TABLE} (id INTEGER, note TEXT)",), f"'{VERSION_TABLE}'"),
    ],
    ids=["index", "case", "view", "version-table"],
)
async def test_any_object_under_a_schema_name_is_refused(
    tmp_path: Path, statements: tuple[str, ...], named: str
) -> None:
    path = tmp_path / "app.db"
    make_sqlite(path, *statements)
    before_files, before_facts = folder_state(path), sqlite_facts(path)
    with pytest.raises(ForeignDatabaseError, match=named):
        await open_store(url_of(path))
    assert sqlite_facts(path) == before_facts
    assert folder_state(path) == before_files


@pytest.mark.parametrize(
    "content",
    [
        os.urandom(8192),
        b"these are my notes, not a database\n" * 40,
        b"SQLite format 3\x00" + os.urandom(200),  # the magic, then garbage
    ],
    ids=["random-bytes", "text", "damaged-header"],
)
@pytest.mark.parametrize("opener", ["SQLRunStore.from_url", "SQLAlchemySaver.from_url"])
async def test_a_file_that_is_not_sqlite_gets_a_clear_error_and_is_unchanged(
    tmp_path: Path, content: bytes, opener: str
) -> None:
    path = tmp_path / "notes.db"
    path.write_bytes(content)
    with pytest.raises(ForeignDatabaseError, match="is not a SQLite database"):
        await OPENERS[opener](url_of(path))
    assert folder_state(path) == {"notes.db": content}


async def test_a_later_migrations_name_held_by_a_foreign_table_is_refused(tmp_path: Path) -> None:
    """The package's own file at schema version 1, where another application has since made
    an ``rs_checkpoints`` table (migration 2's): refused, version 1 kept, nothing added."""
    path = tmp_path / "runs.db"
    async with SQLRunStore.from_url(url_of(path)) as store:
        await store.put("r1", thread_id="t1", status="success")
    conn = sqlite3.connect(path)
    conn.executescript(
        "DROP TABLE rs_checkpoints; DROP TABLE rs_checkpoint_blobs; "
        f"DROP TABLE rs_checkpoint_writes; DELETE FROM {VERSION_TABLE} WHERE version > 1; "
        "CREATE TABLE rs_checkpoints (page TEXT, saved_at TEXT);"
    )
    conn.close()
    before = sqlite_facts(path)
    with pytest.raises(ForeignDatabaseError, match="table 'rs_checkpoints'"):
        await open_store(url_of(path))
    assert sqlite_facts(path) == before


# -- SQLite: other tables are left alone -----------------------------------------------------

APP_SCHEMA = (
    "CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT UNIQUE)",
    "CREATE INDEX users_email_idx ON users (email)",
    "CREATE TABLE audit (at TEXT, what TEXT)",
    "CREATE TRIGGER users_audit AFTER INSERT ON users BEGIN "
    "INSERT INTO audit VALUES ('now', new.email); END",
    "CREATE VIEW user_count AS SELECT COUNT(*) AS n FROM users",
    "INSERT INTO users (email) VALUES ('a@example.com'), ('b@example.com')",
)


def app_objects(path: Path) -> tuple[list[Any], list[Any], list[Any]]:
    conn = sqlite3.connect(path)
    try:
        return (
            conn.execute(
                "SELECT type, name, tbl_name, sql FROM sqlite_master "
                "WHERE name IN ('users', 'users_email_idx', 'audit', 'users_audit', "
                "'user_count') OR tbl_name IN ('users', 'audit') ORDER BY name"
            ).fetchall(),
            conn.execute("SELECT * FROM users ORDER BY id").fetchall(),
            conn.execute("SELECT * FROM audit ORDER BY rowid").fetchall(),
        )
    finally:
        conn.close()


async def test_a_file_with_other_tables_gets_the_schema_beside_them(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    make_sqlite(path, *APP_SCHEMA)
    before = app_objects(path)
    async with SQLRunStore.from_url(url_of(path)) as store:
        manager = RunManager(store=store)
        model = listed_model(reply("one"), reply("two"))
        graph = two_model_graph(model, model).compile(checkpointer=store.checkpointer)
        run = await manager.wait(graph, {"messages": [("user", "hi")]}, thread_id="t1")
        assert run.status.value == "success", run.error
        await manager.aclose()
    await open_store(url_of(path))  # opening again changes nothing either
    assert app_objects(path) == before
    mode, schema, _ = sqlite_facts(path)
    assert mode == "wal"  # documented: from_url switches the file to WAL
    names = {name for _, name, _ in schema}
    assert {"runs", "rs_checkpoints", VERSION_TABLE, "users", "audit"} <= names


async def test_an_empty_file_is_a_new_database(tmp_path: Path) -> None:
    path = tmp_path / "empty.db"
    path.write_bytes(b"")
    async with SQLRunStore.from_url(url_of(path)) as store:
        await store.put("r1", thread_id="t1", status="pending")
    assert sqlite_facts(path)[0] == "wal"


def test_the_cli_migrate_refuses_a_foreign_file_and_leaves_it(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    make_sqlite(path, *FOREIGN_RUNS)
    before_files, before_facts = folder_state(path), sqlite_facts(path)
    done = run_cli("migrate", "--db", str(path))
    assert done.code == 1, done
    assert "table 'runs'" in done.error_line and "nothing was changed" in done.error_line
    assert sqlite_facts(path) == before_facts
    assert folder_state(path) == before_files


# -- PostgreSQL ------------------------------------------------------------------------------


def pg_admin(url: str, *statements: str) -> list[Any]:
    import psycopg

    raw = libpq_url(url)
    rows: list[Any] = []
    with psycopg.connect(raw, autocommit=True) as conn:
        for statement in statements:
            cursor = conn.execute(statement)
            if cursor.description is not None:
                rows.extend(cursor.fetchall())
    return rows


def pg_objects(url: str) -> list[Any]:
    """Every relation and function in the database's public schema, with its definition."""
    return pg_admin(
        url,
        "SELECT relname, relkind FROM pg_class "
        "WHERE relnamespace = 'public'::regnamespace ORDER BY relname",
        "SELECT proname, pg_get_function_identity_arguments(oid) FROM pg_proc "
        "WHERE pronamespace = 'public'::regnamespace ORDER BY proname",
        "SELECT table_name, column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = 'public' ORDER BY table_name, ordinal_position",
    )


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("statements", "named"),
    [
        (
            (
                "CREATE TABLE runs (id serial PRIMARY KEY, name text)",
                "INSERT INTO runs (name) VALUES ('nightly backup')",
            ),
            "table 'runs'",
        ),
        (
            ("CREATE TABLE items (x int)", "CREATE INDEX runs_status_idx ON items (x)"),
            "index 'runs_status_idx'",
        ),
        (
            (
                "CREATE FUNCTION runstore_admit(a text, b jsonb) RETURNS boolean "
                "LANGUAGE sql AS 'SELECT true'",
            ),
            "function 'runstore_admit(text, jsonb)'",
        ),
        (("CREATE TABLE runstore_schema_version (id int, note text)",), "runstore_schema_version"),
    ],
    ids=["table", "index", "function", "version-table"],
)
@pytest.mark.parametrize("opener", ["SQLRunStore.from_url", "SQLAlchemySaver.from_url"])
async def test_a_postgres_database_with_foreign_objects_is_refused_before_anything_is_created(
    pg_url: str, statements: tuple[str, ...], named: str, opener: str
) -> None:
    pg_admin(pg_url, *statements)
    before = pg_objects(pg_url)
    with pytest.raises(ForeignDatabaseError, match=named.replace("(", r"\(").replace(")", r"\)")):
        await OPENERS[opener](pg_url)
    assert pg_objects(pg_url) == before


@pytest.mark.postgres
async def test_a_postgres_database_with_other_tables_gets_the_schema_beside_them(
    pg_url: str,
) -> None:
    pg_admin(
        pg_url,
        "CREATE TABLE users (id serial PRIMARY KEY, email text UNIQUE)",
        "INSERT INTO users (email) VALUES ('a@example.com')",
        # another overload of the function's name is not in the way
        "CREATE FUNCTION runstore_admit(a int) RETURNS int LANGUAGE sql AS 'SELECT a'",
    )
    async with SQLRunStore.from_url(pg_url) as store:
        await store.put("r1", thread_id="t1", status="pending")
    await open_store(pg_url)
    assert pg_admin(pg_url, "SELECT id, email FROM users") == [(1, "a@example.com")]
    assert pg_admin(pg_url, "SELECT runstore_admit(7)") == [(7,)]
    assert pg_admin(pg_url, f"SELECT MAX(version) FROM {VERSION_TABLE}") == [(latest_version(),)]
