"""A bounded set of warm connections borrowed from a SQLAlchemy pool, for one event loop.

Checking a connection out of SQLAlchemy's pool and back costs about as much as a small
statement, and when more operations run at once than the pool holds, its overflow
connections are opened and closed again each time (a new server process on PostgreSQL).
The checkpointer therefore keeps up to ``limit`` connections it took from the engine's pool
and hands them to its operations directly; an operation that finds none free waits for
one. There is no lock: a free connection is a list pop, a busy set is a queue of futures.
The connections go back to the engine's pool on :meth:`aclose`.

Writes batch themselves: a write that finds every connection busy joins a queue, and the
next connection to come free sends the queued writes of one statement as a single
``executemany`` (one round trip, one transaction). Nothing waits to fill a batch, so a lone
write costs what it did; under load, round trips per write fall. The statements are
idempotent upserts, so a failed batch is retried row by row to pin the error on its caller.

A connection that broke (cut by the server, a restart, a client-side protocol error) is
never handed out again: every caller whose write rode on it gets the error (the backend
retries it on a fresh connection), the connection is invalidated in the pool, and its place
goes to the next waiter. Connections that closed while idle are skipped at checkout.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import PoolProxiedConnection
from sqlalchemy.util import greenlet_spawn

from langgraph_runstore.db.pg_connection import (
    adapted,
    invalidate_soon,
    is_psycopg_connection_error,
    raw_connection,
)

#: SQLSTATE classes of errors after which the connection is gone: 08 (connection exception)
#: and 57P0x (the server is shutting down, crashed, or not accepting connections yet)
_CONNECTION_SQLSTATES = ("08", "57P0")

Batch = list[tuple[str, Sequence[Any], "asyncio.Future[None]"]]


def is_connection_lost(exc: BaseException) -> bool:
    """Whether ``exc`` says the connection itself failed, not the statement it carried
    (SQLAlchemy's wrappers of the drivers' errors included)."""
    for _ in range(4):
        sqlstate = getattr(exc, "sqlstate", None)
        if isinstance(sqlstate, str) and sqlstate.startswith(_CONNECTION_SQLSTATES):
            return True
        if is_psycopg_connection_error(exc):
            return True
        # asyncpg's client-side errors, by name (asyncpg is optional): InterfaceError (its
        # subclasses too) and InternalClientError ("cannot switch to state ...") after a cut
        names = {cls.__name__ for cls in type(exc).__mro__}
        if names & {"InterfaceError", "InternalClientError"} or isinstance(exc, OSError):
            return True
        if exc.__cause__ is None:
            return False
        exc = exc.__cause__
    return False


class WarmConnections:
    """Up to ``limit`` pooled connections of ``engine``, reused across operations on ``loop``."""

    #: the most queued writes sent in one executemany
    MAX_BATCH = 64

    def __init__(
        self,
        engine: AsyncEngine,
        limit: int,
        loop: asyncio.AbstractEventLoop,
        statement_error: Callable[[BaseException], bool] = lambda exc: True,
    ) -> None:
        self.engine = engine
        self._statement_error = statement_error
        # queued writes: (sql, args, the caller's future)
        self._writes: deque[tuple[str, Sequence[Any], asyncio.Future[None]]] = deque()
        self._readers_turn = False
        self._tasks: set[asyncio.Task[None]] = set()  # batch senders, kept alive until done
        self.loop = loop
        self._limit = max(1, limit)
        self._free: list[PoolProxiedConnection] = []
        self._count = 0  # connections taken from the pool, free or in use
        # waiters get a connection, or None: "a slot is yours, open a new connection"
        self._waiters: deque[asyncio.Future[PoolProxiedConnection | None]] = deque()
        self._closed = False

    @property
    def size(self) -> int:
        """How many connections this set holds now (free or in use)."""
        return self._count

    async def acquire(self) -> PoolProxiedConnection:
        """A connection for one operation; give it back with release() or discard()."""
        while self._free:
            conn = self._free.pop()
            if not _closed(conn):
                return conn
            self._drop(conn)  # the server closed it while it sat here
        if self._count >= self._limit:
            waiter: asyncio.Future[PoolProxiedConnection | None] = self.loop.create_future()
            self._waiters.append(waiter)
            try:
                got = await waiter
            except BaseException:
                if waiter.done() and not waiter.cancelled():
                    # we were handed something just as we were cancelled: pass it on
                    handed = waiter.result()
                    if handed is None:
                        self._count -= 1
                        self._grant_slot()
                    else:
                        self.release(handed)
                else:
                    self._waiters.remove(waiter)
                raise
            if got is not None:
                return got
        else:
            self._count += 1
        try:
            return await self._open()
        except BaseException:
            self._count -= 1
            self._refill()
            raise

    async def _open(self) -> PoolProxiedConnection:
        """A connection from the engine's pool, skipping pooled ones the server has closed
        (after a restart every idle one is), so a retry does not spend an attempt on each."""
        while True:
            conn = await self.engine.raw_connection()
            if conn.driver_connection is not None:
                await raw_connection(conn)  # adapted once (psycopg: autocommit)
            if not _closed(conn):
                return conn
            await greenlet_spawn(conn.invalidate)

    def busy(self) -> bool:
        """Whether an operation would have to wait for a connection now."""
        return not self._free and self._count >= self._limit

    def queue_write(self, sql: str, args: Sequence[Any]) -> asyncio.Future[None]:
        """Queue a write for the next free connection; the future resolves once it is done."""
        done: asyncio.Future[None] = self.loop.create_future()
        self._writes.append((sql, args, done))
        return done

    def broken(self, conn: PoolProxiedConnection, exc: BaseException) -> bool:
        """Whether ``conn`` must be discarded after ``exc``: anything but the driver's error
        for a statement on a connection that is still open and idle (a cancellation may
        leave a statement half sent, a cut connection is gone)."""
        if not self._statement_error(exc) or is_connection_lost(exc):
            return True
        driver: Any = adapted(conn)
        return driver is None or bool(driver.is_closed() or driver.is_in_transaction())

    def release(self, conn: PoolProxiedConnection) -> None:
        """Give a healthy connection back for the next operation."""
        if self._closed:
            self._count -= 1
            self.loop.create_task(greenlet_spawn(conn.close))
            return
        if self._writes:
            # take turns with waiting reads, so neither starves the other
            self._readers_turn = not self._readers_turn
            if not (self._readers_turn and self._waiters):
                batch = self._take_batch()
                if batch:
                    self._spawn(self._send_writes(conn, batch))
                    return
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return
        self._free.append(conn)

    def _take_batch(self) -> Batch:
        """Dequeue up to MAX_BATCH writes that share the first live write's SQL."""
        batch: Batch = []
        others: Batch = []
        while self._writes and len(batch) < self.MAX_BATCH:
            item = self._writes.popleft()
            if item[2].done():  # its caller was cancelled while it waited
                continue
            if not batch or item[0] == batch[0][0]:
                batch.append(item)
            else:
                others.append(item)
        self._writes.extendleft(reversed(others))
        return batch

    async def _send_writes(self, conn: PoolProxiedConnection, batch: Batch) -> None:
        """Send one batch of queued writes on ``conn``, then release or discard it.

        Every caller in the batch gets an answer, whatever happens: its result, the server's
        error for its own row, or the error that broke the connection.
        """
        sql = batch[0][0]
        driver: Any = adapted(conn)
        try:
            try:
                if len(batch) == 1:
                    await driver.execute(sql, *batch[0][1])
                else:
                    await driver.executemany(sql, [args for _, args, _ in batch])
            except Exception as exc:
                if self.broken(conn, exc):
                    raise
                # find whose write failed: the statements are idempotent, so retry one by one
                for _, args, done in batch:
                    try:
                        await driver.execute(sql, *args)
                    except Exception as row_exc:
                        if self.broken(conn, row_exc):
                            raise
                        if not done.done():
                            done.set_exception(row_exc)
                    else:
                        if not done.done():
                            done.set_result(None)
        except BaseException as exc:
            self.discard(conn)
            self._fail(batch, exc)
            if not isinstance(exc, Exception):
                raise
            return
        for _, _, done in batch:
            if not done.done():
                done.set_result(None)
        self.release(conn)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = self.loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _open_for_writes(self) -> None:
        """Open a connection to send queued writes that no busy connection will pick up."""
        try:
            conn = await self._open()
        except BaseException as exc:
            self._count -= 1
            failed = list(self._writes)
            self._writes.clear()
            self._fail(failed, exc)
            self._grant_slot()
            if not isinstance(exc, Exception):
                raise
            return
        self.release(conn)

    @staticmethod
    def _fail(batch: Batch, exc: BaseException) -> None:
        """Give every unanswered caller in ``batch`` the error (a cancellation cancels)."""
        for _, _, done in batch:
            if done.done():
                continue
            if isinstance(exc, Exception):
                done.set_exception(exc)
            else:
                done.cancel()

    def _drop(self, conn: PoolProxiedConnection) -> None:
        self._count -= 1
        closing = invalidate_soon(conn)
        if closing is not None:
            self._spawn(closing)

    def discard(self, conn: PoolProxiedConnection) -> None:
        """Drop a connection that may be mid-statement or broken; a waiter may open anew."""
        self._drop(conn)
        self._refill()

    def _refill(self) -> None:
        """Hand a freed place to a waiting operation, else to the queued writes: nobody else
        would open a connection for them."""
        if not self._closed:
            self._grant_slot()
            if self._writes and self._count < self._limit:
                self._count += 1
                self._spawn(self._open_for_writes())

    def _grant_slot(self) -> None:
        while self._waiters and self._count < self._limit:
            waiter = self._waiters.popleft()
            if not waiter.done():
                self._count += 1
                waiter.set_result(None)

    async def aclose(self) -> None:
        """Return the free connections to the pool; busy ones go back when released."""
        queued = [done for _, _, done in self._writes]
        if queued:  # let queued writes go out first; their callers see any errors
            await asyncio.gather(*queued, return_exceptions=True)
        self._closed = True
        free, self._free = self._free, []
        for conn in free:
            self._count -= 1
            await greenlet_spawn(conn.close)

    def abandon(self) -> None:
        """Forget every connection without I/O, for a set whose loop is already closed."""
        self._closed = True
        free, self._free = self._free, []
        for conn in free:
            # the loop is gone, so the connection cannot be closed cleanly; detaching at least
            # frees its place in the pool
            with contextlib.suppress(Exception):
                conn.detach()


def _closed(conn: PoolProxiedConnection) -> bool:
    driver: Any = adapted(conn)
    return driver is None or bool(driver.is_closed())
