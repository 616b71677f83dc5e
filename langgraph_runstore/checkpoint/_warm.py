"""A bounded set of warm connections borrowed from a SQLAlchemy pool, for one event loop.

Checking a connection out of SQLAlchemy's pool and back costs about as much as a small
statement, and when more operations run at once than the pool holds, its overflow
connections are opened and closed again each time (a new server process on PostgreSQL).
The checkpointer therefore keeps up to ``limit`` connections it took from the engine's pool
and hands them to its operations directly; an operation that finds none free waits for
one. There is no lock: a free connection is a list pop, a busy set is a queue of futures.
The connections go back to the engine's pool on :meth:`aclose`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque

from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import PoolProxiedConnection
from sqlalchemy.util import greenlet_spawn


class WarmConnections:
    """Up to ``limit`` pooled connections of ``engine``, reused across operations on ``loop``."""

    def __init__(self, engine: AsyncEngine, limit: int, loop: asyncio.AbstractEventLoop) -> None:
        self.engine = engine
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
        if self._free:
            return self._free.pop()
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
            return await self.engine.raw_connection()
        except BaseException:
            self._count -= 1
            self._grant_slot()
            raise

    def release(self, conn: PoolProxiedConnection) -> None:
        """Give a healthy connection back for the next operation."""
        if self._closed:
            self._count -= 1
            self.loop.create_task(greenlet_spawn(conn.close))
            return
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return
        self._free.append(conn)

    def discard(self, conn: PoolProxiedConnection) -> None:
        """Drop a connection that may be mid-statement or broken; a waiter may open anew."""
        self._count -= 1
        conn.invalidate()
        if not self._closed:
            self._grant_slot()

    def _grant_slot(self) -> None:
        while self._waiters and self._count < self._limit:
            waiter = self._waiters.popleft()
            if not waiter.done():
                self._count += 1
                waiter.set_result(None)

    async def aclose(self) -> None:
        """Return the free connections to the pool; busy ones go back when released."""
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
