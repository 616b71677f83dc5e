"""The engine factory and the versioned schema."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import warnings
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from langgraph_runstore import ConflictError, DatabaseConfigError, SchemaVersionError, SQLRunStore
from langgraph_runstore.db import MIGRATIONS, create_engine, latest_version, normalize_url, setup
from langgraph_runstore.db.engine import sqlite_path
from langgraph_runstore.store import drivers as sql_drivers
from tests.backends import libpq_url

pytestmark = pytest.mark.asyncio


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite:///a.db", "sqlite+aiosqlite:///a.db"),
        ("sqlite+aiosqlite:///a.db", "sqlite+aiosqlite:///a.db"),
        ("postgresql://u@h/db", "postgresql+asyncpg://u@h/db"),
        ("postgres://u@h/db", "postgresql+asyncpg://u@h/db"),
    ],
)
def test_plain_urls_get_the_async_driver(url: str, expected: str) -> None:
    assert normalize_url(url).render_as_string() == expected


@pytest.mark.parametrize(
    ("url", "named"),
    [
        ("mysql+aiomysql://u:secret@h/db", "'mysql'"),
        ("postgresql+psycopg2://u:secret@h/db", "'psycopg2'"),
        ("sqlite+pysqlcipher:///a.db", "'pysqlcipher'"),
        # (a value without "://" is a plain path to a SQLite file, as the CLI reads --db)
        ("not a url://x", "'not a url://x'"),
    ],
)
def test_unsupported_urls_are_refused_by_name(url: str, named: str) -> None:
    with pytest.raises(DatabaseConfigError, match=named) as info:
        normalize_url(url)
    assert "secret" not in str(info.value)
    assert isinstance(info.value, ValueError)


async def test_sqlite_connections_get_wal_busy_timeout_and_normal_sync(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'x.db'}", sqlite_busy_timeout_ms=1234)
    async with engine.connect() as conn:
        assert (await conn.exec_driver_sql("PRAGMA journal_mode")).scalar() == "wal"
        assert (await conn.exec_driver_sql("PRAGMA busy_timeout")).scalar() == 1234
        assert (await conn.exec_driver_sql("PRAGMA synchronous")).scalar() == 1  # NORMAL
    await engine.dispose()


async def test_run_store_writes_leave_wal_checkpoints_to_a_background_thread(
    tmp_path: Path,
) -> None:
    """The store's loop-thread connection never checkpoints the WAL at commit (that can take
    milliseconds and would stall the event loop), yet the log stays short: every
    _CHECKPOINT_EVERY direct statements a checkpoint runs on a thread of its own."""
    path = tmp_path / "wal.db"
    writes = 5 * sql_drivers._CHECKPOINT_EVERY
    async with SQLRunStore.from_url(f"sqlite:///{path}") as store:
        for i in range(writes):
            await store.put(f"r{i}", thread_id=f"t{i}", status="running")
        driver = store.driver
        assert isinstance(driver, sql_drivers.SQLiteDriver)
        direct = driver._direct
        assert direct is not None
        assert direct.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
        checkpoint = driver._checkpoint_thread
        assert checkpoint is not None  # requested, on a thread of its own
        checkpoint.join(10)
        await store.put("last", thread_id="last")  # starts the checkpointed log over
        assert _wal_frames(path) < writes * _PAGES_PER_WRITE / 2
        assert (await store.list_runs(limit=1)).runs  # still readable
    assert driver._checkpoint_thread is None  # aclose waited for it


# a put changes the table and four index pages, at least
_PAGES_PER_WRITE = 5


def _wal_frames(path: Path) -> int:
    """Frames in the file's WAL, as a passive checkpoint reports them (it copies but never
    starts the log over)."""
    reader = sqlite3.connect(path)
    try:
        # (busy, frames in the log, frames checkpointed); a log that is fully
        # checkpointed starts over at the next write, so only recent writes are left
        return int(reader.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[1])
    finally:
        reader.close()


def test_a_store_used_from_several_event_loops_keeps_its_wal_short(tmp_path: Path) -> None:
    """Each asyncio.run() is a new loop: the checkpoint depends on none of them, and writes
    that go on while it runs do not keep the log from starting over."""
    path = tmp_path / "loops.db"
    writes = 5 * sql_drivers._CHECKPOINT_EVERY
    engine = create_engine(f"sqlite:///{path}")
    store = SQLRunStore(engine)
    asyncio.run(store.setup())
    for i in range(writes):
        asyncio.run(store.put(f"r{i}", thread_id=f"t{i}", status="running"))
    unbounded = writes * _PAGES_PER_WRITE * 4096  # the log if it never started over
    assert os.path.getsize(f"{path}-wal") < unbounded / 2

    async def close() -> None:
        await asyncio.wait_for(store.aclose(), 10)
        await engine.dispose()

    asyncio.run(close())
    reader = sqlite3.connect(path)
    try:
        assert reader.execute("SELECT count(*) FROM runs").fetchone()[0] == writes
    finally:
        reader.close()


async def test_sqlite_file_options_are_applied_not_ignored(tmp_path: Path) -> None:
    """``?mode=ro`` on a plain SQLite URL opens the file read-only (the driver would ignore
    the option, with a warning, unless the URL is in file: URI form)."""
    path = tmp_path / "ro.db"
    async with SQLRunStore.from_url(f"sqlite:///{path}") as store:
        await store.put("r1", thread_id="t1")
    parsed = normalize_url(f"sqlite:///{path}?mode=ro")
    assert parsed.database == f"file://{path}"
    assert dict(parsed.query) == {"mode": "ro", "uri": "true"}
    assert sqlite_path(parsed) == str(path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # SQLAlchemy's "query option ignored" warning fails
        engine = create_engine(f"sqlite:///{path}?mode=ro")
        try:
            async with engine.connect() as conn:
                count = (await conn.exec_driver_sql("SELECT count(*) FROM runs")).scalar()
                assert count == 1
                with pytest.raises(OperationalError, match="readonly"):
                    await conn.exec_driver_sql("DELETE FROM runs")
        finally:
            await engine.dispose()
    assert not [name for name in os.listdir(tmp_path) if "mode" in name]  # no stray file


@pytest.mark.parametrize("name", ["a?b.db", "a#b.db", "a%41.db", "with space.db", "ünï.db"])
async def test_sqlite_uri_options_keep_the_file_a_path_names(tmp_path: Path, name: str) -> None:
    """Turned into a file: URI, a path's ?, # and % are escaped, not read as URI syntax."""
    path = tmp_path / name
    escaped = str(path).replace("%", "%25").replace("?", "%3F").replace("#", "%23")
    async with SQLRunStore.from_url(f"sqlite:///{escaped}") as store:
        await store.put("r1", thread_id="t1")
    parsed = normalize_url(f"sqlite:///{escaped}?mode=ro")
    assert sqlite_path(parsed) == str(path)
    engine = create_engine(parsed)
    try:
        async with engine.connect() as conn:
            assert (await conn.exec_driver_sql("PRAGMA database_list")).fetchone()[2] == str(path)
            assert (await conn.exec_driver_sql("SELECT count(*) FROM runs")).scalar() == 1
    finally:
        await engine.dispose()
    assert sorted(os.listdir(tmp_path)) == sorted([name, f"{name}-shm", f"{name}-wal"])


async def test_in_memory_sqlite_with_uri_options_is_one_shared_database() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        async with SQLRunStore.from_url("sqlite://?cache=shared") as store:
            assert normalize_url("sqlite://?cache=shared").database == "file::memory:"
            await store.put("r1", thread_id="t1")
            assert (await store.list_runs()).runs[0]["run_id"] == "r1"


async def test_a_read_only_url_reads_a_file_not_in_wal_mode(tmp_path: Path) -> None:
    """A ?mode=ro connection cannot switch the file to WAL; it reads it as it is."""
    path = tmp_path / "plain.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE t (x)")
    conn.execute("INSERT INTO t VALUES (1)")
    conn.commit()
    conn.close()
    engine = create_engine(f"sqlite:///{path}?mode=ro")
    try:
        async with engine.connect() as ro:
            assert (await ro.exec_driver_sql("SELECT count(*) FROM t")).scalar() == 1
            assert (await ro.exec_driver_sql("PRAGMA journal_mode")).scalar() == "delete"
    finally:
        await engine.dispose()


async def test_setup_is_idempotent_and_records_each_version(db_url: str) -> None:
    engine = create_engine(db_url)
    assert await setup(engine) == latest_version()
    assert await setup(engine) == latest_version()
    async with engine.connect() as conn:
        versions = (
            await conn.execute(text("SELECT version FROM runstore_schema_version"))
        ).scalars()
        assert sorted(versions) == [m.version for m in MIGRATIONS]
    await engine.dispose()


async def test_processes_starting_together_migrate_once(db_url: str) -> None:
    engines = [create_engine(db_url) for _ in range(4)]
    results = await asyncio.gather(*(setup(engine) for engine in engines))
    assert results == [latest_version()] * 4
    async with engines[0].connect() as conn:
        count = (await conn.execute(text("SELECT COUNT(*) FROM runstore_schema_version"))).scalar()
    assert count == len(MIGRATIONS)
    for engine in engines:
        await engine.dispose()


async def test_a_newer_schema_is_refused(db_url: str) -> None:
    engine = create_engine(db_url)
    await setup(engine)
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO runstore_schema_version (version, description, applied_at) "
                "VALUES (999, 'from the future', '2999-01-01')"
            )
        )
    with pytest.raises(SchemaVersionError, match="999"):
        await setup(engine)
    await engine.dispose()


async def test_schema_matches_the_migrated_run_columns(db_url: str) -> None:
    from langgraph_runstore.schemas import ROW_FIELDS

    async with SQLRunStore.from_url(db_url) as store, store.engine.connect() as conn:
        result = await conn.execute(text("SELECT * FROM runs WHERE 1 = 0"))
        assert set(result.keys()) == {"seq", *ROW_FIELDS}


async def test_at_most_one_running_run_per_thread_is_enforced_by_the_database(db_url: str) -> None:
    async with SQLRunStore.from_url(db_url) as store:
        await store.put("a", thread_id="t1", status="running")
        await store.put("b", thread_id="t1", status="pending")
        with pytest.raises(ConflictError) as info:
            await store.update_status("b", "running")
        assert (info.value.run_id, info.value.thread_id) == ("b", "t1")
        await store.put("c", thread_id="t2", status="running")  # another thread is fine
        row = await store.get("b")
        assert row is not None and row["status"] == "pending"


@pytest.mark.postgres
def test_an_older_process_still_admits_runs_after_migration_6(pg_url: str) -> None:
    """A process of schema 5 sends reject admissions without calls_without_usage: the
    admission function fills in the NOT NULL columns' defaults instead of refusing them."""
    import json

    import psycopg

    asyncio.run(_migrate(pg_url))
    row = {
        "run_id": "r-old",
        "thread_id": "t-old",
        "status": "running",
        "created_at": "2026-01-01T00:00:00.000000+00:00",
        "updated_at": "2026-01-01T00:00:00.000000+00:00",
    }
    raw = libpq_url(pg_url)
    with psycopg.connect(raw, autocommit=True) as conn:
        admitted = conn.execute(
            "SELECT runstore_admit(%s, %s::jsonb)", ("t-old", json.dumps(row))
        ).fetchone()
        stored = conn.execute(
            "SELECT calls_without_usage, llm_call_count, total_tokens, interrupts FROM runs"
        ).fetchall()
    assert admitted == (True,)
    assert stored == [(0, 0, 0, None)]


async def _migrate(url: str) -> None:
    async with SQLRunStore.from_url(url):
        pass
