"""Blocking calls into an async RunManager: ``run_sync``, the loop thread it runs on,
``invoke`` (one ``graph.invoke`` as a tracked run, over the facade's ``track_sync``) and
``RunManager.sync_from_url``. Scripts with no event loop use these directly or through
``SyncRunManager``.

``BlockingCalls`` is a mixin on the facade. Every blocking call of one manager runs on that
manager's private loop thread, so its store I/O happens on one event loop.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any, TypeVar

from langgraph_runstore.loop_thread import LoopThread
from langgraph_runstore.schemas import RunRecord
from langgraph_runstore.store.base import RunStore

logger = logging.getLogger(__name__)

T = TypeVar("T")
Manager = TypeVar("Manager", bound="BlockingCalls")

_permitted = threading.local()


@contextmanager
def blocking_permitted() -> Iterator[None]:
    """Within the block, ``run_sync`` on this thread may block the loop the thread runs.

    ``SyncRunManager.track`` uses it, so a notebook cell's ``graph.invoke`` inside the
    block can write its run: the work runs on the manager's own loop, which never waits
    for the cell's loop.
    """
    _permitted.depth = getattr(_permitted, "depth", 0) + 1
    try:
        yield
    finally:
        _permitted.depth -= 1


class BlockingCalls:
    """``run_sync``, ``invoke``, ``close_sync`` and ``sync_from_url`` (see the module
    docstring)."""

    store: RunStore | None
    loop_thread: LoopThread | None = None

    def run_sync(self, factory: Callable[[], Awaitable[T]]) -> T:
        """Run ``factory()`` on this manager's background loop and wait for it.

        Every synchronous method uses it, so a manager driven from sync code does all its
        store I/O on one loop. Refused on a thread that runs an event loop (outside
        ``blocking_permitted``).
        """
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            if getattr(_permitted, "depth", 0):
                return self._loop_thread().run(lambda: _awaited(factory))
            raise RuntimeError(
                "this RunManager method is synchronous and would block the running event "
                "loop; use the async method (await manager.wait/track/...) instead, or "
                "SyncRunManager, which works on any thread"
            )
        return self._loop_thread().run(lambda: _awaited(factory))

    def _loop_thread(self) -> LoopThread:
        if self.loop_thread is None:
            self.loop_thread = LoopThread("langgraph-runstore manager")
        return self.loop_thread

    def track_sync(
        self,
        *,
        thread_id: str,
        config: dict[str, Any] | None = None,
        graph: Any = None,
        **create_options: Any,
    ) -> AbstractContextManager[RunRecord]:
        """Record the one ``graph.invoke``/``stream`` made in the block (the facade's)."""
        raise NotImplementedError

    def invoke(
        self,
        graph: Any,
        input: Any,
        *,
        thread_id: str,
        config: dict[str, Any] | None = None,
        **create_options: Any,
    ) -> RunRecord:
        """Run ``graph.invoke(input)`` as one tracked run, synchronously; return the record.

        Exceptions of the graph are recorded on the run (status ``error``), not raised.
        """
        with self.track_sync(
            thread_id=thread_id, config=config, graph=graph, **create_options
        ) as run:
            try:
                run.output = graph.invoke(input, run.config)
            except Exception:  # recorded by the tracker as the run's error
                logger.debug("Run %s failed", run.run_id, exc_info=True)
        return run

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


async def _awaited(factory: Callable[[], Awaitable[T]]) -> T:
    return await factory()


__all__ = ["BlockingCalls", "blocking_permitted"]
