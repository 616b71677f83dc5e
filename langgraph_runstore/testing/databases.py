"""A fresh, empty database per test for the plugin's fixtures, removed afterwards: a SQLite
file in a temporary directory, or a PostgreSQL database created on the given server and
dropped (``WITH (FORCE)``, so a connection a test leaked cannot keep it alive)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Coroutine, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any, TypeVar

import pytest

T = TypeVar("T")


@asynccontextmanager
async def fresh_database(base_url: str | None) -> AsyncIterator[str]:
    """The URL of a new, empty database like ``base_url`` (None: SQLite), removed on exit."""
    with _sqlite_or_server(base_url) as (url, server):
        if server is None:
            yield url
            return
        name = await _create(server)
        try:
            yield _on_database(server, name)
        finally:
            await _drop(server, name)


@contextmanager
def fresh_database_sync(base_url: str | None) -> Iterator[str]:
    """:func:`fresh_database` for sync fixtures (works whether or not a loop is running)."""
    with _sqlite_or_server(base_url) as (url, server):
        if server is None:
            yield url
            return
        name = _run(_create(server))
        try:
            yield _on_database(server, name)
        finally:
            _run(_drop(server, name))


@contextmanager
def _sqlite_or_server(base_url: str | None) -> Iterator[tuple[str, Any]]:
    """(a fresh SQLite URL, None), or ("", the server's parsed URL) for PostgreSQL."""
    from langgraph_runstore.db.engine import is_memory_sqlite, normalize_url

    parsed = normalize_url(base_url or "sqlite+aiosqlite://")
    if parsed.get_backend_name() != "sqlite":
        yield "", parsed
        return
    if base_url is not None and is_memory_sqlite(parsed):
        yield parsed.render_as_string(hide_password=False), None  # fresh by itself
        return
    folder = Path(tempfile.mkdtemp(prefix="runstore-test-"))
    try:
        url = parsed.set(database=str(folder / "runstore.db"))
        yield url.render_as_string(hide_password=False), None
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _on_database(server: Any, name: str) -> str:
    return str(server.set(database=name).render_as_string(hide_password=False))


async def _admin(server: Any, statement: str) -> None:
    from sqlalchemy.pool import NullPool

    from langgraph_runstore.db.engine import create_engine

    # the package's engine factory: the URL's libpq parameters (sslmode ...) reach asyncpg too
    engine = create_engine(server, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            await conn.exec_driver_sql(statement)
    finally:
        await engine.dispose()


async def _create(server: Any) -> str:
    name = f"runstore_test_{uuid.uuid4().hex[:16]}"
    try:
        await _admin(server, f'CREATE DATABASE "{name}"')
    except Exception as exc:
        shown = server.render_as_string(hide_password=True)
        pytest.fail(
            f"run_store could not create a database for this test on {shown} (its role "
            f"needs CREATEDB): {type(exc).__name__}: {exc}",
            pytrace=False,
        )
    return name


async def _drop(server: Any, name: str) -> None:
    await _admin(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _run(coroutine: Coroutine[Any, Any, T]) -> T:
    # a thread of its own: asyncio.run refuses a thread whose loop is running
    with concurrent.futures.ThreadPoolExecutor(1, "runstore-test-db") as pool:
        return pool.submit(asyncio.run, coroutine).result()


__all__ = ["fresh_database", "fresh_database_sync"]
