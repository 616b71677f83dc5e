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
import os
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any, TypeVar

from langchain_core.callbacks import BaseCallbackHandler

from langgraph_runstore.invoke_args import (
    check_checkpoint_exists,
    check_options,
    parse_invoke_args,
)
from langgraph_runstore.loop_thread import LoopThread
from langgraph_runstore.schemas import RunRecord
from langgraph_runstore.store.base import RunStore
from langgraph_runstore.validate import check_timeout

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


class Deadline(BaseCallbackHandler):
    """Stops a sync invocation at the first node, tool or LLM call that starts after its
    run's timeout: a TimeoutError there, which the run's tracker records as ``timeout``."""

    run_inline = True
    raise_error = True

    def __init__(self, record: RunRecord, timeout: float) -> None:
        self.record = record
        self.timeout = timeout
        self.deadline = time.monotonic() + timeout

    def _check(self) -> None:
        if time.monotonic() < self.deadline:
            return
        self.record.abort_action = "timeout"  # how the tracker tells a timeout
        raise TimeoutError(f"run timed out after {self.timeout:g} s")

    def on_chain_start(self, *args: Any, parent_run_id: Any = None, **kwargs: Any) -> None:
        if parent_run_id is not None:
            self._check()

    def on_chat_model_start(self, *args: Any, **kwargs: Any) -> None:
        self._check()

    def on_llm_start(self, *args: Any, **kwargs: Any) -> None:
        self._check()

    def on_tool_start(self, *args: Any, **kwargs: Any) -> None:
        self._check()


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
        timeout: float | None = None,
        context: Any = None,
        durability: str | None = None,
        interrupt_before: str | list[str] | None = None,
        interrupt_after: str | list[str] | None = None,
        checkpoint_id: str | None = None,
        **create_options: Any,
    ) -> RunRecord:
        """Run ``graph.invoke(input)`` as one tracked run, synchronously; return the record.

        Exceptions of the graph are recorded on the run (status ``error``), not raised.
        LangGraph's arguments are those of ``RunManager.start``. ``timeout`` is checked
        each time a node, tool or LLM call starts (a sync call cannot be interrupted
        midway): past it, the run stops there and ends ``timeout``.
        """
        check_options("RunManager.invoke", create_options)
        timeout = check_timeout(timeout)
        args = parse_invoke_args(
            graph,
            context=context,
            durability=durability,
            interrupt_before=interrupt_before,
            interrupt_after=interrupt_after,
            checkpoint_id=checkpoint_id,
        )
        self.run_sync(lambda: check_checkpoint_exists(graph, thread_id, args))
        with self.track_sync(
            thread_id=thread_id, config=args.config(config), graph=graph, **create_options
        ) as run:
            if timeout is not None:
                run.config["callbacks"].append(Deadline(run, timeout))
            try:
                run.output = graph.invoke(input, run.config, **args.graph_kwargs())
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
    def sync_from_url(
        cls: type[Manager], url: str | os.PathLike[str], **manager_options: Any
    ) -> Iterator[Manager]:
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
