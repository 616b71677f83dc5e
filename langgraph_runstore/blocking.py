"""Blocking calls into an async RunManager: ``run_sync``, the loop thread it runs on, and
``RunManager.sync_from_url``. Scripts with no event loop use these through the manager's
sync methods (``invoke``, ``track_sync``) or through ``SyncRunManager``.

``BlockingCalls`` is a mixin on the facade. Every blocking call of one manager runs on that
manager's private loop thread, so its store I/O happens on one event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from langgraph_runstore.loop_thread import LoopThread
from langgraph_runstore.store.base import RunStore

T = TypeVar("T")
Manager = TypeVar("Manager", bound="BlockingCalls")


class BlockingCalls:
    """``run_sync``, ``close_sync`` and ``sync_from_url`` (see the module docstring)."""

    store: RunStore | None
    loop_thread: LoopThread | None = None

    def run_sync(self, factory: Callable[[], Awaitable[T]]) -> T:
        """Run ``factory()`` on this manager's background loop and wait for it.

        Every synchronous method uses it, so a manager driven from sync code does all its
        store I/O on one loop. Refused on a thread that runs an event loop.
        """
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            raise RuntimeError(
                "this RunManager method is synchronous and would block the running event "
                "loop; use the async method (await manager.wait/track/...) instead, or "
                "SyncRunManager, which works on any thread"
            )
        if self.loop_thread is None:
            self.loop_thread = LoopThread("langgraph-runstore manager")

        async def call() -> T:
            return await factory()

        return self.loop_thread.run(call)

    def close_sync(self) -> None:
        """Stop the background loop that sync calls run on (``sync_from_url`` does this on
        exit); a later sync call starts a fresh one."""
        if self.loop_thread is not None:
            self.loop_thread.stop()
            self.loop_thread = None

    @classmethod
    @contextmanager
    def sync_from_url(cls: type[Manager], url: str, **manager_options: Any) -> Iterator[Manager]:
        """A manager on a SQLRunStore at ``url`` for scripts without an event loop::

            with RunManager.sync_from_url("sqlite:///agent.db") as manager:
                graph = builder.compile(checkpointer=manager.store.checkpointer)
                run = manager.invoke(graph, inputs, thread_id="t1")

        The engine lives on the manager's background loop and is disposed on exit.
        """
        from langgraph_runstore.db.engine import create_engine
        from langgraph_runstore.store.sql import SQLRunStore

        manager = cls(**manager_options)
        engine = create_engine(url)
        store = SQLRunStore(engine)
        manager.store = store
        try:
            manager.run_sync(store.setup)
            yield manager
        finally:

            async def close() -> None:
                await store.aclose()
                await engine.dispose()

            manager.run_sync(close)
            manager.close_sync()


__all__ = ["BlockingCalls"]
