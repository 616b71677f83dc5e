"""Bad input to the real console script: one clear line on stderr, a non-zero exit code, no
traceback, and the database (or file) exactly as it was."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from langgraph_runstore import SQLRunStore
from langgraph_runstore.db import MIGRATIONS, latest_version
from langgraph_runstore.db.migrations import VERSION_TABLE
from tests.cli.helpers import (
    Result,
    pg_base,
    pg_database,
    pg_snapshot,
    query,
    run_cli,
    run_many,
    sqlite_snapshot,
)

# one of each kind: reads, writes, and the commands that open the database differently
EVERY_KIND = [
    ("runs", "list"),
    ("runs", "show", "r1"),
    ("runs", "cancel", "r1"),
    ("threads", "show", "t1"),
    ("usage", "--since", "7d"),
    ("reconcile",),
    ("prune", "--older-than", "1d", "--yes"),
]


def make_store(url: str) -> None:
    async def go() -> None:
        async with SQLRunStore.from_url(url) as store:
            await store.put("r1", thread_id="t1", status="pending")

    asyncio.run(go())


def expect_error(result: Result, says: str, code: int = 1) -> None:
    assert result.code == code, result
    assert result.out == ""
    assert says in result.error_line, result.err


def test_missing_sqlite_file_is_not_created(tmp_path: Path) -> None:
    missing = tmp_path / "nope.db"
    results = run_many(
        {
            "explicit": ("runs", "list", "--db", str(missing)),
            # no --db and no $LANGGRAPH_RUNSTORE_URL: ./runstore.db, the quickstart's file
            "default": ("runs", "list", {"cwd": tmp_path}),
            "url": ("usage", "--db", f"sqlite:///{missing}"),
            "directory": ("runs", "list", "--db", str(tmp_path)),
        }
    )
    expect_error(results["explicit"], f"no database at {missing}")
    expect_error(results["default"], f"no database at {tmp_path / 'runstore.db'}")
    expect_error(results["url"], f"no database at {missing}")
    expect_error(results["directory"], f"{tmp_path} is a directory")
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_a_file_that_is_not_a_database_is_left_alone(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("these are my notes\n" * 50)
    before = text.read_bytes()
    calls = {" ".join(args): (*args, "--db", str(text)) for args in [*EVERY_KIND, ("migrate",)]}
    for result in run_many(calls).values():
        expect_error(result, f"{text} is not a SQLite database")
    assert text.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_a_foreign_sqlite_database_is_not_taken_over(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
    conn.execute("INSERT INTO notes (body) VALUES ('keep me')")
    conn.commit()
    conn.close()
    before = sqlite_snapshot(path)
    journal = conn_journal_mode(path)
    results = run_many({" ".join(args): (*args, "--db", str(path)) for args in EVERY_KIND})
    for result in results.values():
        expect_error(
            result,
            "has no langgraph-runstore tables: create them with `langgraph-runstore migrate`",
        )
    assert sqlite_snapshot(path) == before
    assert conn_journal_mode(path) == journal == "delete"  # not even switched to WAL


def conn_journal_mode(path: Path) -> str:
    conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
    try:
        return str(conn.execute("PRAGMA journal_mode").fetchone()[0])
    finally:
        conn.close()


def test_a_database_from_a_newer_version_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "future.db"
    make_store(f"sqlite+aiosqlite:///{path}")
    conn = sqlite3.connect(path)
    conn.execute(
        f"INSERT INTO {VERSION_TABLE} (version, description, applied_at) VALUES (99, 'x', 'now')"
    )
    conn.commit()
    conn.close()
    before = sqlite_snapshot(path)
    report = tmp_path / "report.html"
    kinds = [*EVERY_KIND, ("migrate",), ("report", "--html", str(report))]
    results = run_many({" ".join(args): (*args, "--db", str(path)) for args in kinds})
    for result in results.values():
        expect_error(
            result,
            f"database {path} has schema version 99, newer than this package's "
            f"{latest_version()}: upgrade langgraph-runstore",
        )
    assert sqlite_snapshot(path) == before
    assert not report.exists()


def test_an_older_schema_asks_for_migrate_and_migrate_upgrades_it(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.execute(
        f"CREATE TABLE {VERSION_TABLE} "
        "(version INTEGER PRIMARY KEY, description TEXT NOT NULL, applied_at TEXT NOT NULL)"
    )
    for migration in MIGRATIONS[:2]:
        for statement in migration.sqlite:
            conn.execute(statement)
        conn.execute(
            f"INSERT INTO {VERSION_TABLE} VALUES (?, ?, 'then')",
            (migration.version, migration.description),
        )
    conn.execute(
        "INSERT INTO runs (run_id, thread_id, status, created_at, updated_at) "
        "VALUES ('r-old', 't', 'success', '2025-01-01T00:00:00+00:00', '2025-01-01T00:00:00+00:00')"
    )
    conn.commit()
    conn.close()
    before = sqlite_snapshot(path)
    refused = run_cli("runs", "list", "--db", str(path))
    expect_error(
        refused,
        f"database {path} has schema version 2, older than this package's {latest_version()}: "
        "run `langgraph-runstore migrate`",
    )
    assert sqlite_snapshot(path) == before
    migrated = run_cli("migrate", "--db", str(path))
    assert migrated.code == 0, migrated
    assert migrated.out.strip().endswith(f"migrated from schema version 2 to {latest_version()}")
    listed = run_cli("runs", "list", "--db", str(path))
    assert listed.code == 0 and "r-old" in listed.out


def test_migrate_creates_a_new_database(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "new.db"
    path.parent.mkdir()
    created = run_cli("migrate", "--db", str(path))
    assert created.code == 0, created
    assert created.out.strip() == (
        f"sqlite+aiosqlite:///{path}: migrated from schema version 0 to {latest_version()}"
    )
    empty = run_cli("runs", "list", "--db", str(path))
    assert empty.code == 0 and empty.out.strip() == "no runs match"


def test_unsupported_urls_are_usage_errors(tmp_path: Path) -> None:
    results = run_many(
        {
            "mysql": ("runs", "list", "--db", "mysql://u@h/db"),
            "driver": ("runs", "list", "--db", "postgresql+psycopg2://u@h/db"),
            "memory": ("runs", "list", "--db", "sqlite+aiosqlite:///:memory:"),
        }
    )
    expect_error(results["mysql"], "unsupported database backend 'mysql'", code=2)
    expect_error(results["driver"], "unsupported driver 'psycopg2'", code=2)
    expect_error(results["memory"], "an in-memory SQLite database holds no runs")


def test_in_memory_databases_and_bad_driver_urls_are_one_line(tmp_path: Path) -> None:
    memory = {
        f"memory {url}": ("runs", "list", "--db", url, {"cwd": tmp_path})
        for url in (":memory:", "sqlite+aiosqlite:///:memory:", "sqlite://", "sqlite:///:memory:")
    }
    migrate = {"migrate :memory:": ("migrate", "--db", ":memory:", {"cwd": tmp_path})}
    results = run_many(
        {
            **memory,
            **migrate,
            "pg8000": ("runs", "list", "--db", "postgresql+pg8000://u:secret@h/db"),
            "keepalives": (
                "runs",
                "list",
                "--db",
                "postgresql+asyncpg://u:secret@h/db?keepalives=1",
            ),
            "psycopg refused": (
                "runs",
                "list",
                "--db",
                "postgresql+psycopg://postgres:secret@127.0.0.1:1/x",
            ),
        }
    )
    for name in [*memory, *migrate]:
        expect_error(results[name], "an in-memory SQLite database holds no runs")
    assert list(tmp_path.iterdir()) == []  # no file named ":memory:" either
    expect_error(results["pg8000"], "unsupported driver 'pg8000'", code=2)
    expect_error(results["keepalives"], "'keepalives'", code=2)
    expect_error(
        results["psycopg refused"],
        "cannot open database postgresql+psycopg://postgres:***@127.0.0.1:1/x",
    )
    assert not [r for r in results.values() if "secret" in r.err]


@pytest.mark.postgres
def test_postgres_unreachable_missing_empty_and_newer() -> None:
    base = pg_base()
    if base is None:
        pytest.skip("no PostgreSQL server (RUNSTORE_TEST_PG_URL)")
    server = base.rsplit("/", 1)[0]
    with pg_database() as empty, pg_database() as future:
        make_store(future)
        query(
            future,
            f"INSERT INTO {VERSION_TABLE} (version, description, applied_at) "
            "VALUES (99, 'x', 'now') RETURNING version",
        )
        before_future = pg_snapshot(future)
        calls: dict[str, tuple[object, ...]] = {
            "refused": ("runs", "list", "--db", "postgresql+asyncpg://postgres@127.0.0.1:1/x"),
            "no_such_db": ("runs", "list", "--db", f"{server}/no_such_database_here"),
            "empty": ("runs", "show", "r1", "--db", empty),
        }
        for args in [*EVERY_KIND, ("migrate",)]:
            calls["future " + " ".join(args)] = (*args, "--db", future)
        results = run_many(calls)
        expect_error(
            results["refused"], "cannot open database postgresql+asyncpg://postgres@127.0.0.1:1/x"
        )
        expect_error(results["no_such_db"], 'database "no_such_database_here" does not exist')
        expect_error(results["empty"], "has no langgraph-runstore tables")
        for name, result in results.items():
            if name.startswith("future"):
                expect_error(result, "has schema version 99, newer than this package's")
        assert pg_snapshot(future) == before_future
        assert query(empty, "SELECT to_regclass('runs') AS t") == [{"t": None}]
        created = run_cli("migrate", "--db", empty)
        assert created.code == 0 and created.out.strip().endswith(
            f"migrated from schema version 0 to {latest_version()}"
        )
