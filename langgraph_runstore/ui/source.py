"""The database behind the web page: opened on first use with the CLI's checks, and kept.

A database that is missing, foreign, unreachable, older or newer than this package is not
an error of the server: each request answers with a page that says so (``DatabaseProblem``)
and tries again, so the page starts working as soon as the first run is recorded, without a
restart.
"""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack

from langgraph_runstore.cli.base import CliError, database_url, open_store
from langgraph_runstore.manager import RunManager
from langgraph_runstore.store.sql import SQLRunStore


class DatabaseProblem(Exception):
    """The database cannot be read (yet): ``message`` says why and what to do."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class StoreSource:
    """Opens ``db`` (a URL or a SQLite path, as ``--db``) once, on the first request.

    Read-only unless ``writable``: a SQLite file is then read without SQLAlchemy and never
    changed (the CLI's read commands do the same); ``writable`` (for cancel) opens it with an
    engine and refuses storage that cannot be written.
    """

    def __init__(self, db: str | None, *, writable: bool = False) -> None:
        self.db = db
        self.writable = writable
        #: the database as the pages name it (a URL with its password hidden, or a path)
        self.shown = shown_database(db)
        self._stack: AsyncExitStack | None = None
        self._manager: RunManager | None = None
        self._store: SQLRunStore | None = None
        self._lock = asyncio.Lock()

    async def manager(self) -> RunManager:
        """A RunManager over the store; DatabaseProblem while the database is not usable."""
        if self._manager is not None:
            return self._manager
        async with self._lock:
            return self._manager or await self._open()

    @property
    def store(self) -> SQLRunStore | None:
        """The open store, or None before the first request that could open it."""
        return self._store

    async def _open(self) -> RunManager:
        stack = AsyncExitStack()
        try:
            store = await stack.enter_async_context(
                open_store(self.db, read_only=not self.writable)
            )
        except CliError as exc:
            await stack.aclose()
            raise DatabaseProblem(exc.message) from None
        manager = RunManager(store=store)
        stack.push_async_callback(manager.aclose)
        self._stack, self._store, self._manager = stack, store, manager
        return manager

    async def aclose(self) -> None:
        """Close the manager and the store (a later request opens them again)."""
        stack, self._stack, self._manager, self._store = self._stack, None, None, None
        if stack is not None:
            await stack.aclose()


def shown_database(db: str | None) -> str:
    """The database as pages and messages name it: a SQLite file's path, or the URL with
    its password hidden."""
    try:
        url = database_url(db)
    except Exception:  # a malformed URL is reported by the first request, not here
        return str(db)
    if url.startswith("sqlite") and ":///" in url:
        return url.split(":///", 1)[1] or url
    scheme, sep, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    if at and ":" in credentials:
        credentials = credentials.split(":", 1)[0] + ":***"
    return f"{scheme}{sep}{credentials}{at}{host}"


__all__ = ["DatabaseProblem", "StoreSource", "shown_database"]
