"""First use of a saver: the set-up it runs before its first operation, and the guard that
keeps a blocking call from waiting on a transaction held open by the loop it blocks.

One set-up runs at a time in the process, whichever loops the first uses come from (the
caller's, the saver's own loop for sync calls): the others wait for it and then look again.
Besides running migrations once, this keeps a new engine's first connections from being
made on two loops at once, where SQLAlchemy's one-time connect hook would wait on an asyncio
lock released from the other loop's thread, a wake-up that never arrives.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class FirstUse:
    """Lazy set-up and open-transaction bookkeeping for SQLAlchemySaver (a mixin)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._schema_ready = False
        self._setup_guard = threading.Lock()  # held for a few lines, never across an await
        self._setup_running: concurrent.futures.Future[None] | None = None
        # loops on which this saver has a transaction open (set-up, rollback writes)
        self._open_transactions: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, int] = (
            weakref.WeakKeyDictionary()
        )

    async def setup(self) -> None:
        """Create or migrate the tables; sets ``_schema_ready``."""
        raise NotImplementedError

    async def _ensure_schema(self) -> None:
        """``setup()`` once before the first operation (see the module docstring). A
        failed set-up raises in the use that ran it; the next use runs it again."""
        while not self._schema_ready:
            with self._setup_guard:
                running = self._setup_running
                mine = running is None or running.done()
                if mine:
                    running = self._setup_running = concurrent.futures.Future()
            assert running is not None
            if not mine:
                # shielded: a waiter's cancellation must not cancel the set-up it waits for
                await asyncio.shield(asyncio.wrap_future(running))
                continue
            try:
                await self.setup()
            finally:
                running.set_result(None)  # waiters look at _schema_ready again

    @contextmanager
    def _transaction_open(self) -> Iterator[None]:
        loop = asyncio.get_running_loop()
        self._open_transactions[loop] = self._open_transactions.get(loop, 0) + 1
        try:
            yield
        finally:
            left = self._open_transactions.get(loop, 1) - 1
            if left:
                self._open_transactions[loop] = left
            else:
                self._open_transactions.pop(loop, None)

    def _refuse_waiting_on_caller(self, method: str) -> None:
        """RuntimeError when this thread's loop holds a transaction of this saver open: the
        call would wait for its lock, and it cannot end while the call blocks that loop."""
        try:
            caller = asyncio.get_running_loop()
        except RuntimeError:
            return
        if self._open_transactions.get(caller):
            raise RuntimeError(
                f"SQLAlchemySaver.{method}() would block this thread's event loop while a "
                "set-up or rollback that the saver began on that loop is still open, and "
                "would wait for it forever: await that first (or use the async API, "
                f"'await saver.a{method}(...)' / graph.ainvoke, here)"
            )


__all__ = ["FirstUse"]
