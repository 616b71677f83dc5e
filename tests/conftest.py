"""Shared fixtures: a SQLite file per test and the throwaway PostgreSQL server.

``RUNSTORE_TEST_PG_URL`` names the server (``scripts/pg.sh start`` prints it). When it is
unset, PostgreSQL tests are skipped, unless ``RUNSTORE_REQUIRE_PG=1`` (as in ``.ci/run``),
which turns a missing server into a failure.

Every PostgreSQL test runs on both drivers: backend fixtures take ``tests.backends``'
``PG_BACKENDS`` ("postgres" is asyncpg, "postgres-psycopg" psycopg 3), and a test that
takes ``pg_url`` itself is parametrised over ``pg_driver`` (``pytest_generate_tests``).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from langgraph_runstore import MemoryRunStore, RunManager, RunStore, SQLRunStore
from langgraph_runstore.testing import async_fixture
from tests.backends import PG_BACKENDS, PG_DRIVERS, driver_of, libpq_url, with_driver

# the package's own plugin (async_fixture needs it; once installed it is loaded anyway, under
# the same name) and pytester, for the tests of that plugin
pytest_plugins = ["pytester", "langgraph_runstore.testing.plugin"]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # a test that asks for pg_url (or pg_driver) itself runs once per driver; one that gets
    # it through a backend fixture takes the driver that fixture's parameter names
    if "pg_driver" in metafunc.fixturenames:
        metafunc.parametrize("pg_driver", PG_DRIVERS)


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
def pg_driver(request: pytest.FixtureRequest) -> str:
    """The driver of this test's PostgreSQL URL, when a backend parameter chose it: psycopg
    for a "...psycopg" parameter, else asyncpg."""
    callspec = getattr(request.node, "callspec", None)
    for value in callspec.params.values() if callspec is not None else ():
        if isinstance(value, str) and value.startswith("postgres"):
            return driver_of(value)
    return "asyncpg"


@pytest.fixture
def pg_url(pg_driver: str) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for this test, dropped afterwards; its URL names
    ``pg_driver`` (``postgresql+asyncpg://`` or ``postgresql+psycopg://``)."""
    import psycopg

    base = _pg_base_url()
    assert base is not None
    raw = libpq_url(base)
    name = f"t_{uuid.uuid4().hex[:16]}"

    def admin(sql: str) -> None:
        # synchronous on purpose: async fixtures request this one from inside a running loop
        with psycopg.connect(raw, autocommit=True) as conn:
            conn.execute(sql)

    admin(f'CREATE DATABASE "{name}"')
    try:
        yield with_driver(base.rsplit("/", 1)[0] + f"/{name}", pg_driver)
    finally:
        admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", *PG_BACKENDS])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """One test, run on a SQLite file and on PostgreSQL (both drivers)."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'runstore.db'}"
    return str(request.getfixturevalue("pg_url"))


@async_fixture(params=["memory", "sqlite", *PG_BACKENDS])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[RunStore]:
    """A RunStore per backend: MemoryRunStore, SQLRunStore on a SQLite file and on PostgreSQL
    (both drivers)."""
    if request.param == "memory":
        yield MemoryRunStore()
        return
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'runs.db'}"
    else:
        url = request.getfixturevalue("pg_url")
    async with SQLRunStore.from_url(url) as sql_store:
        yield sql_store


@async_fixture(params=["none", "memory", "sqlite", *PG_BACKENDS])
async def manager(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[RunManager]:
    """A RunManager with no store, on a MemoryRunStore, on SQLite and on PostgreSQL."""
    if request.param in ("none", "memory"):
        async with RunManager(MemoryRunStore() if request.param == "memory" else None) as m:
            yield m
        return
    url = (
        f"sqlite+aiosqlite:///{tmp_path / 'runs.db'}"
        if request.param == "sqlite"
        else request.getfixturevalue("pg_url")
    )
    async with SQLRunStore.from_url(url) as store, RunManager(store) as m:
        yield m
