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

pytestmark = pytest.mark.anyio


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
        ("not a url", "'not a url'"),
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
    _CHECKPOINT_EVERY direct statements a passive checkpoint runs on aiosqlite's thread."""
    from langgraph_runstore.store import sql as sql_store

    path = tmp_path / "wal.db"
    writes = 5 * sql_store._CHECKPOINT_EVERY
    async with SQLRunStore.from_url(f"sqlite:///{path}") as store:
        for i in range(writes):
            await store.put(f"r{i}", thread_id=f"t{i}", status="running")
            await asyncio.sleep(0)  # a real loop runs other work between writes
        driver = store._driver
        assert isinstance(driver, sql_store._SQLiteDriver)
        direct = driver._direct
        assert direct is not None
        assert direct.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
        assert driver._checkpointing is not None  # requested, on its own task
        await driver._checkpointing
        await store.put("last", thread_id="last")  # starts the checkpointed log over
        reader = sqlite3.connect(path)
        try:
            # (busy, frames in the log, frames checkpointed); a log that is fully
            # checkpointed starts over at the next write, so only recent writes are left
            _, log_frames, _ = reader.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            assert reader.execute("SELECT count(*) FROM runs").fetchone()[0] == writes + 1
        finally:
            reader.close()
        pages_per_write = 5  # a put changes the table and four index pages, at least
        assert log_frames < writes * pages_per_write / 2
    assert driver._checkpointing is None  # aclose waited for it


async def test_sqlite_file_options_are_applied_not_ignored(tmp_path: Path) -> None:
    """``?mode=ro`` on a plain SQLite URL opens the file read-only (the driver would ignore
    the option, with a warning, unless the URL is in file: URI form)."""
    path = tmp_path / "ro.db"
    async with SQLRunStore.from_url(f"sqlite:///{path}") as store:
        await store.put("r1", thread_id="t1")
    parsed = normalize_url(f"sqlite:///{path}?mode=ro")
    assert parsed.database == f"file:{path}"
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
