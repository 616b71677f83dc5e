"""First use of a saver: the set-up it runs before its first operation, and the guard that
keeps a blocking call from waiting on a transaction held open by the loop it blocks."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class FirstUse:
    """Lazy set-up and open-transaction bookkeeping for SQLAlchemySaver (a mixin)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._schema_ready = False
        self._setup_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
            weakref.WeakKeyDictionary()
        )
        # loops on which this saver has a transaction open (set-up, rollback writes)
        self._open_transactions: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, int] = (
            weakref.WeakKeyDictionary()
        )

    async def setup(self) -> None:
        """Create or migrate the tables; sets ``_schema_ready``."""
        raise NotImplementedError

    async def _ensure_schema(self) -> None:
        """``setup()`` once before the first operation; overlapping first uses on one loop
        wait for the one set-up (an asyncio lock belongs to one loop, hence one per loop)."""
        loop = asyncio.get_running_loop()
        lock = self._setup_locks.get(loop)
        if lock is None:
            lock = self._setup_locks[loop] = asyncio.Lock()
        async with lock:
            if not self._schema_ready:
                await self.setup()

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
