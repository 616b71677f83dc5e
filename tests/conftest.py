"""Shared fixtures: a SQLite file per test and the throwaway PostgreSQL server.

``RUNSTORE_TEST_PG_URL`` names the server (``scripts/pg.sh start`` prints it). When it is
unset, PostgreSQL tests are skipped, unless ``RUNSTORE_REQUIRE_PG=1`` (as in ``.ci/run``),
which turns a missing server into a failure.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from langgraph_runstore import MemoryRunStore, RunStore, SQLRunStore
from langgraph_runstore.testing import async_fixture

# the package's own plugin (async_fixture needs it; once installed it is loaded anyway, under
# the same name) and pytester, for the tests of that plugin
pytest_plugins = ["pytester", "langgraph_runstore.testing.plugin"]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'runstore.db'}"


def _pg_base_url() -> str | None:
    url = os.environ.get("RUNSTORE_TEST_PG_URL")
    if not url:
        if os.environ.get("RUNSTORE_REQUIRE_PG") == "1":
            pytest.fail("RUNSTORE_REQUIRE_PG=1 but RUNSTORE_TEST_PG_URL is not set")
        pytest.skip("no PostgreSQL server: run scripts/pg.sh start and set RUNSTORE_TEST_PG_URL")
    return url


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for this test, dropped afterwards."""
    import psycopg

    base = _pg_base_url()
    assert base is not None
    raw = base.replace("postgresql+asyncpg://", "postgresql://")
    name = f"t_{uuid.uuid4().hex[:16]}"

    def admin(sql: str) -> None:
        # synchronous on purpose: async fixtures request this one from inside a running loop
        with psycopg.connect(raw, autocommit=True) as conn:
            conn.execute(sql)

    admin(f'CREATE DATABASE "{name}"')
    try:
        yield base.rsplit("/", 1)[0] + f"/{name}"
    finally:
        admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """One test, run on a SQLite file and on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'runstore.db'}"
    return str(request.getfixturevalue("pg_url"))


@async_fixture(params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[RunStore]:
    """A RunStore per backend: MemoryRunStore, SQLRunStore on a SQLite file and on PostgreSQL."""
    if request.param == "memory":
        yield MemoryRunStore()
        return
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'runs.db'}"
    else:
        url = request.getfixturevalue("pg_url")
    async with SQLRunStore.from_url(url) as sql_store:
        yield sql_store
