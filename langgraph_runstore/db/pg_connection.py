"""One shape for a raw PostgreSQL connection, asyncpg's or psycopg's: the few calls the run
store and the checkpointer make on it, each driver's error classes, and LISTEN.

The hot paths talk to the driver connection directly (SQLAlchemy's per-statement layer
costs more than these statements). They are written against asyncpg's ``Connection``
(``fetch``, ``execute``, ``executemany``, ``transaction``, ``is_closed``,
``is_in_transaction``; ``$n`` parameters). A psycopg ``AsyncConnection`` gets the same
calls from :class:`PsycopgConnection`, which sends the same SQL text through psycopg's
``AsyncRawCursor`` (``$n`` parameters too) in autocommit mode, as asyncpg runs outside a
transaction. A connection is switched to autocommit when first adapted, and back when it
returns to SQLAlchemy's pool (a ``reset`` listener), so SQLAlchemy's own transactions
(migrations) keep their meaning.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine
    from sqlalchemy.pool import PoolProxiedConnection

_ADAPTED = "langgraph_runstore.pg"  # key in the pool's per-connection info dict


def is_psycopg(engine: AsyncEngine) -> bool:
    """Whether ``engine`` talks to PostgreSQL through psycopg (else asyncpg)."""
    return engine.dialect.driver == "psycopg"


class PsycopgConnection:
    """A psycopg AsyncConnection, in autocommit mode, answering as asyncpg's does: rows as
    tuples, ``execute`` returning the command tag (``"UPDATE 1"``).

    One operation uses a connection at a time, so its two raw cursors (tuple rows, dict
    rows) are made once and reused.
    """

    __slots__ = ("_dicts", "_idle", "_tuples", "_tuples_ok", "conn")

    def __init__(self, conn: Any) -> None:
        from psycopg import AsyncRawCursor
        from psycopg.pq import ExecStatus, TransactionStatus
        from psycopg.rows import dict_row

        self.conn = conn
        self._idle = TransactionStatus.IDLE
        self._tuples_ok = ExecStatus.TUPLES_OK
        self._tuples = AsyncRawCursor(conn)
        self._dicts = AsyncRawCursor(conn, row_factory=dict_row)

    async def fetch(self, sql: str, *args: Any) -> list[Any]:
        cursor = self._tuples
        # binary results: bytea (checkpoint blobs) arrives as it is, not hex-encoded
        await cursor.execute(sql, args, binary=True)
        return await cursor.fetchall() if self._has_rows(cursor) else []

    async def fetch_dicts(self, sql: str, args: Sequence[Any]) -> list[dict[str, Any]]:
        cursor = self._dicts
        await cursor.execute(sql, args)
        rows: list[dict[str, Any]] = await cursor.fetchall() if self._has_rows(cursor) else []
        return rows

    def _has_rows(self, cursor: Any) -> bool:
        # cheaper than cursor.description, which builds a Column per column on every call
        result = cursor.pgresult
        return result is not None and result.status == self._tuples_ok

    async def execute(self, sql: str, *args: Any) -> str:
        cursor = self._tuples
        await cursor.execute(sql, args)
        return cursor.statusmessage or ""

    async def executemany(self, sql: str, args: Sequence[Sequence[Any]]) -> None:
        await self._tuples.executemany(sql, args)

    def transaction(self) -> Any:
        return self.conn.transaction()

    def is_closed(self) -> bool:
        return bool(self.conn.closed or self.conn.broken)

    def is_in_transaction(self) -> bool:
        return bool(self.conn.info.transaction_status != self._idle)


async def raw_connection(fairy: PoolProxiedConnection) -> Any:
    """The driver connection of a pooled connection, in the asyncpg shape (asyncpg's own
    connection, or a PsycopgConnection switched to autocommit)."""
    info = fairy.info
    adapted = info.get(_ADAPTED)
    if adapted is None:
        driver: Any = fairy.driver_connection
        if type(driver).__module__.startswith("psycopg"):
            await driver.set_autocommit(True)
            adapted = PsycopgConnection(driver)
        else:
            adapted = driver
        info[_ADAPTED] = adapted
    return adapted


def adapted(fairy: PoolProxiedConnection) -> Any:
    """What :func:`raw_connection` returned for ``fairy``, or None before its first call
    (and once the connection went back to the pool)."""
    return fairy.info.get(_ADAPTED)


def install_autocommit_reset(engine: AsyncEngine) -> None:
    """Turn autocommit off again on psycopg connections that go back to ``engine``'s pool
    (no-op for asyncpg engines; installed once per engine)."""
    if not is_psycopg(engine):
        return
    sync_engine = engine.sync_engine
    if getattr(sync_engine, "_runstore_autocommit_reset", False):
        return
    from sqlalchemy import event

    @event.listens_for(sync_engine, "reset")
    def _on_reset(dbapi_connection: Any, record: Any, state: Any) -> None:
        adapted = record.info.pop(_ADAPTED, None) if record is not None else None
        if adapted is None or not state.asyncio_safe:
            return
        # SQLAlchemy's adapter runs psycopg's set_autocommit (no I/O on an idle connection);
        # on one that is not idle it raises, and SQLAlchemy discards the connection
        dbapi_connection.autocommit = False

    sync_engine._runstore_autocommit_reset = True  # type: ignore[attr-defined]


def statement_error_test(engine: AsyncEngine) -> Callable[[BaseException], bool]:
    """Whether an error is the driver's answer to a statement (the server refused it, or
    psycopg refused a value before sending it), after which the connection may still be
    fit for reuse; its state says (``is_closed``, ``is_in_transaction``)."""
    if is_psycopg(engine):
        import psycopg

        psycopg_error = psycopg.Error
        return lambda exc: isinstance(exc, psycopg_error)
    import asyncpg

    postgres_error = asyncpg.PostgresError
    return lambda exc: isinstance(exc, postgres_error)


def invalidate_soon(fairy: PoolProxiedConnection) -> Coroutine[Any, Any, None] | None:
    """Invalidate ``fairy`` (it is broken) from code that runs outside SQLAlchemy's greenlet:
    at once for asyncpg, whose connections close without I/O; for psycopg the coroutine to
    run, since SQLAlchemy closes those with an await."""
    if isinstance(adapted(fairy), PsycopgConnection):
        return _invalidate(fairy)
    fairy.invalidate()
    return None


async def _invalidate(fairy: PoolProxiedConnection) -> None:
    from sqlalchemy.util import greenlet_spawn

    with contextlib.suppress(Exception):
        await greenlet_spawn(fairy.invalidate)


def unique_violation(engine: AsyncEngine) -> type[BaseException]:
    """The driver's exception for a unique constraint violation."""
    if is_psycopg(engine):
        from psycopg.errors import UniqueViolation

        return UniqueViolation
    from asyncpg import UniqueViolationError

    violation: type[BaseException] = UniqueViolationError  # asyncpg ships no type hints
    return violation


def constraint_name(exc: BaseException) -> str | None:
    """The constraint a driver's integrity error names (asyncpg's attribute, psycopg's
    diagnostics), or None."""
    name = getattr(exc, "constraint_name", None)
    if name is None:
        diag = getattr(exc, "diag", None)
        name = getattr(diag, "constraint_name", None)
    return name if isinstance(name, str) else None


def is_psycopg_connection_error(exc: BaseException) -> bool:
    """psycopg's errors for a connection that failed, not a statement: an OperationalError
    the server sent no SQLSTATE for (the connection was cut, or could not be made)."""
    if not type(exc).__module__.startswith("psycopg"):
        return False
    names = {cls.__name__ for cls in type(exc).__mro__}
    return "OperationalError" in names and getattr(exc, "sqlstate", None) is None


async def listen(
    engine: AsyncEngine,
    channels: Sequence[str],
    on_notice: Callable[[str, str], None],
    *,
    ready: Callable[[], None] | None = None,
) -> None:
    """LISTEN on ``channels`` until the connection drops; ``on_notice(channel, payload)``
    for each NOTIFY, ``ready()`` once every LISTEN is in place.

    The connection comes from a private copy of the engine's pool, so it has every setting
    the engine's connections have (SSL, connect arguments, connect hooks) but is never
    handed to anyone else: a listening connection cannot be shared.
    """
    from sqlalchemy.engine import Engine
    from sqlalchemy.ext.asyncio import AsyncEngine

    sync = engine.sync_engine
    private = AsyncEngine(Engine(sync.pool.recreate(), sync.dialect, sync.url))
    try:
        connecting = asyncio.ensure_future(private.raw_connection())
        try:
            fairy = await asyncio.shield(connecting)
        except asyncio.CancelledError:
            # stopped mid-handshake: let it end, then close, since a connect cancelled
            # half-way leaves asyncpg an unhandled connection_lost()
            with contextlib.suppress(Exception):
                opened = await asyncio.wait_for(connecting, timeout=10)
                await _invalidate(opened)
            raise
        try:
            driver: Any = fairy.driver_connection
            if is_psycopg(engine):
                await _listen_psycopg(driver, channels, on_notice, ready)
            else:
                await _listen_asyncpg(driver, channels, on_notice, ready)
        finally:
            await _invalidate(fairy)  # never back to a pool: it is in LISTEN mode
    finally:
        await private.dispose()


async def _listen_asyncpg(
    conn: Any,
    channels: Sequence[str],
    on_notice: Callable[[str, str], None],
    ready: Callable[[], None] | None,
) -> None:
    def deliver(_conn: Any, _pid: int, channel: str, payload: str) -> None:
        on_notice(channel, payload)

    closed = asyncio.Event()
    conn.add_termination_listener(lambda _conn: closed.set())
    for channel in channels:
        await conn.add_listener(channel, deliver)
    if ready is not None:
        ready()
    await closed.wait()


async def _listen_psycopg(
    conn: Any,
    channels: Sequence[str],
    on_notice: Callable[[str, str], None],
    ready: Callable[[], None] | None,
) -> None:
    import psycopg

    await conn.set_autocommit(True)  # a LISTEN inside a transaction waits for its commit
    for channel in channels:
        await conn.execute(f"LISTEN {channel}")
    if ready is not None:
        ready()
    try:
        async for notice in conn.notifies():
            on_notice(notice.channel, notice.payload)
    except psycopg.OperationalError:
        return  # the connection dropped: the caller listens again on a new one


__all__ = [
    "PsycopgConnection",
    "adapted",
    "constraint_name",
    "install_autocommit_reset",
    "invalidate_soon",
    "is_psycopg",
    "is_psycopg_connection_error",
    "listen",
    "raw_connection",
    "statement_error_test",
    "unique_violation",
]
