"""The pytest plugin for users' agent tests: the ``run_store``, ``run_manager`` and
``sync_run_manager`` fixtures, the ``--runstore-url`` option, and the hook that runs each
``async_fixture`` on the loop of the test using it (see ``loops``).

Registered through the ``pytest11`` entry point of the same name, so ``-p
no:langgraph_runstore.testing.plugin`` turns it off. Nothing heavy is imported until a
fixture of it is used.

Each test gets a fresh, empty store: a SQLite file in a temporary directory by default; with
``--runstore-url`` (or ``RUNSTORE_TEST_URL``) naming a PostgreSQL server, a database of its
own, created for the test and dropped after it (the role needs CREATEDB; PostgreSQL 13 or
later). A SQLite URL there keeps its driver and options but still gets a fresh file per
test; an in-memory SQLite URL is fresh by itself. Nothing is left behind.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

import pytest

from langgraph_runstore.testing.loops import MARK, async_fixture, route

if TYPE_CHECKING:
    from langgraph_runstore.manager import RunManager
    from langgraph_runstore.store.sql import SQLRunStore
    from langgraph_runstore.sync import SyncRunManager

#: the environment variable that selects the backend when ``--runstore-url`` is not given
URL_VARIABLE = "RUNSTORE_TEST_URL"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("langgraph-runstore")
    group.addoption(
        "--runstore-url",
        dest="runstore_url",
        default=None,
        help=(
            "database for the run_store fixtures: a PostgreSQL URL (a fresh database per "
            f"test) or a SQLite one; default ${URL_VARIABLE}, else a temporary SQLite file"
        ),
    )


def pytest_configure(config: pytest.Config) -> None:
    url = base_url(config)
    if url is not None and not url.startswith(("sqlite", "postgresql", "postgres://")):
        raise pytest.UsageError(
            f"--runstore-url / ${URL_VARIABLE}: expected a sqlite or postgresql URL, not {url!r}"
        )


def base_url(config: pytest.Config) -> str | None:
    """The URL that ``--runstore-url`` or ``RUNSTORE_TEST_URL`` names, or None (SQLite)."""
    url: str | None = config.getoption("runstore_url", None) or os.environ.get(URL_VARIABLE)
    return url or None


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_fixture_setup(fixturedef: Any, request: pytest.FixtureRequest) -> Iterator[None]:
    # Outermost, so the flags are in place before pytest-asyncio's and anyio's hooks look.
    func = fixturedef.func
    if getattr(func, MARK, False):
        route(func, request)
    yield


# -- fixtures ---------------------------------------------------------------------------------


@async_fixture
async def run_store(request: pytest.FixtureRequest) -> AsyncIterator[SQLRunStore]:
    """A fresh, empty SQLRunStore for this test (see the module docstring); graphs compile
    with ``checkpointer=run_store.checkpointer``."""
    from langgraph_runstore.store.sql import SQLRunStore
    from langgraph_runstore.testing.databases import fresh_database

    async with (
        fresh_database(base_url(request.config)) as url,
        SQLRunStore.from_url(url) as store,
    ):
        yield store


@async_fixture
async def run_manager(run_store: SQLRunStore) -> AsyncIterator[RunManager]:
    """A RunManager over ``run_store``, shut down after the test."""
    from langgraph_runstore.manager import RunManager

    manager = RunManager(store=run_store)
    try:
        yield manager
    finally:
        await manager.aclose()


@pytest.fixture
def sync_run_manager(request: pytest.FixtureRequest) -> Iterator[SyncRunManager]:
    """A SyncRunManager on a fresh store of its own, for sync tests (``manager.store``
    holds the checkpointer); closed after the test."""
    from langgraph_runstore.sync import SyncRunManager
    from langgraph_runstore.testing.databases import fresh_database_sync

    with (
        fresh_database_sync(base_url(request.config)) as url,
        SyncRunManager.from_url(url) as manager,
    ):
        yield manager
