"""The engine factory and the versioned schema."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import text

from langgraph_runstore import ConflictError, DatabaseConfigError, SchemaVersionError, SQLRunStore
from langgraph_runstore.db import MIGRATIONS, create_engine, latest_version, normalize_url, setup

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
