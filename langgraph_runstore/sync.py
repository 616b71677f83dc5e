"""SyncRunManager: the synchronous twin of RunManager, for code with no event loop of its own
(scripts, Django, Flask, a notebook cell), as httpx pairs ``Client`` with ``AsyncClient``.

It wraps one RunManager and runs every call to its end on that manager's private loop
thread, where all store I/O happens. Called on a thread that already runs an event loop (a
notebook cell), it does the blocking work on a helper thread instead, so the call works and
nothing deadlocks; the calling loop waits for it, as it would for any blocking call. In a
``track()`` block on such a thread, the graph's calls write the run from that thread
straight to the manager's loop, which never waits for the thread's own loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TypeVar

from langgraph_runstore.blocking import blocking_permitted
from langgraph_runstore.invoke_args import INVOKE_ARGUMENTS, check_options, parse_invoke_args
from langgraph_runstore.manager import RunManager
from langgraph_runstore.query import (
    MetadataFilter,
    PruneResult,
    RunPage,
    StatusFilter,
    TimeBound,
    UsageRow,
)
from langgraph_runstore.recorder import RunRecorder
from langgraph_runstore.run_events import SyncRunEvents
from langgraph_runstore.schemas import CancelAction, RunRecord, RunStatus, ThreadStatus
from langgraph_runstore.store.base import RunStore

T = TypeVar("T")


def _on_a_loop_thread() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _off_the_loop(work: Callable[[], T]) -> T:
    """``work()`` here, or on a helper thread when this thread runs an event loop (the
    manager's sync path refuses such a thread, which it would block)."""
    if not _on_a_loop_thread():
        return work()
    with concurrent.futures.ThreadPoolExecutor(1, "langgraph-runstore sync") as pool:
        return pool.submit(work).result()


class SyncRunManager(SyncRunEvents):
    """RunManager's API as plain methods: ``get``, ``list_by_thread``, ``list_runs``,
    ``thread_status``, ``thread_interrupts``, ``aggregate_usage``, ``top_runs``, ``cancel``,
    ``create``, ``delete``, ``submit``, ``join``, ``invoke``, ``stream`` and ``track``.

    ::

        with SyncRunManager.from_url("sqlite:///agent.db") as manager:
            graph = builder.compile(checkpointer=manager.store.checkpointer)
            run = manager.invoke(graph, inputs, thread_id="t1")
            print(manager.get(run.run_id).total_tokens)

    ``manager_options`` are RunManager's. ``self.manager`` is the async manager inside; use
    it from async code (``await manager.manager.get(...)``) only on its own loop.
    """

    def __init__(
        self,
        store: RunStore | None = None,
        *,
        manager: RunManager | None = None,
        **manager_options: Any,
    ) -> None:
        if manager is not None and (store is not None or manager_options):
            raise TypeError("give SyncRunManager a manager, or a store and options, not both")
        self.manager = manager or RunManager(store, **manager_options)

    @classmethod
    @contextmanager
    def from_url(
        cls, url: str | os.PathLike[str], **manager_options: Any
    ) -> Iterator[SyncRunManager]:
        """A manager on a SQLRunStore at ``url`` (created or migrated); closed on exit."""
        opened = RunManager.sync_from_url(url, **manager_options)
        manager = _off_the_loop(opened.__enter__)
        try:
            yield cls(manager=manager)
        finally:
            _off_the_loop(lambda: opened.__exit__(None, None, None))

    @property
    def store(self) -> RunStore | None:
        """The RunStore the manager writes to (``store.checkpointer`` for graphs)."""
        return self.manager.store

    def _call(self, work: Callable[[], T]) -> T:
        return _off_the_loop(work)

    def _run(self, factory: Callable[[], Awaitable[T]]) -> T:
        return self._call(lambda: self.manager.run_sync(factory))

    def _event_source(self) -> RunManager:
        return self.manager

    # -- reading ---------------------------------------------------------------------------

    def get(self, run_id: str, *, user_id: str | None = None) -> RunRecord | None:
        """See ``RunManager.get``."""
        return self._run(lambda: self.manager.get(run_id, user_id=user_id))

    def list_by_thread(
        self, thread_id: str, *, user_id: str | None = None, limit: int = 100
    ) -> list[RunRecord]:
        """See ``RunManager.list_by_thread``."""
        return self._run(
            lambda: self.manager.list_by_thread(thread_id, user_id=user_id, limit=limit)
        )

    def has_inflight(self, thread_id: str, *, user_id: str | None = None) -> bool:
        """See ``RunManager.has_inflight``."""
        return self._run(lambda: self.manager.has_inflight(thread_id, user_id=user_id))

    def thread_status(self, thread_id: str, *, user_id: str | None = None) -> ThreadStatus:
        """See ``RunManager.thread_status``."""
        return self._run(lambda: self.manager.thread_status(thread_id, user_id=user_id))

    def thread_interrupts(
        self, thread_id: str, *, checkpointer: Any = None
    ) -> list[dict[str, Any]]:
        """See ``RunManager.thread_interrupts``."""
        return self._run(
            lambda: self.manager.thread_interrupts(thread_id, checkpointer=checkpointer)
        )

    def list_runs(
        self,
        *,
        thread_id: str | None = None,
        status: StatusFilter = None,
        user_id: str | None = None,
        since: TimeBound = None,
        until: TimeBound = None,
        limit: int = 50,
        cursor: str | None = None,
        assistant_id: str | None = None,
        model: str | None = None,
        metadata: MetadataFilter = None,
    ) -> RunPage[RunRecord]:
        """See ``RunManager.list_runs``."""
        return self._run(
            lambda: self.manager.list_runs(
                thread_id=thread_id,
                status=status,
                user_id=user_id,
                since=since,
                until=until,
                limit=limit,
                cursor=cursor,
                assistant_id=assistant_id,
                model=model,
                metadata=metadata,
            )
        )

    def aggregate_usage(self, **options: Any) -> list[UsageRow]:
        """See ``RunManager.aggregate_usage`` (by, since, until, thread_id, user_id,
        assistant_id, model, metadata)."""
        return self._run(lambda: self.manager.aggregate_usage(**options))

    def top_runs(
        self,
        *,
        by: str = "duration",
        since: TimeBound = None,
        until: TimeBound = None,
        limit: int = 10,
        user_id: str | None = None,
    ) -> list[RunRecord]:
        """See ``RunManager.top_runs``."""
        return self._run(
            lambda: self.manager.top_runs(
                by=by, since=since, until=until, limit=limit, user_id=user_id
            )
        )

    def run_checkpoints(self, run_id: str, *, user_id: str | None = None) -> list[dict[str, Any]]:
        """See ``RunManager.run_checkpoints``."""
        return self._run(lambda: self.manager.run_checkpoints(run_id, user_id=user_id))

    def prune_runs(self, *, older_than: TimeBound, **options: Any) -> PruneResult:
        """See ``RunManager.prune_runs``."""
        return self._run(lambda: self.manager.prune_runs(older_than=older_than, **options))

    # -- writing ---------------------------------------------------------------------------

    def create(self, thread_id: str, assistant_id: str | None = None, **options: Any) -> RunRecord:
        """See ``RunManager.create``."""
        return self._run(lambda: self.manager.create(thread_id, assistant_id, **options))

    def create_or_reject(
        self, thread_id: str, assistant_id: str | None = None, **options: Any
    ) -> RunRecord:
        """See ``RunManager.create_or_reject``."""
        return self._run(lambda: self.manager.create_or_reject(thread_id, assistant_id, **options))

    def set_status(
        self, run_id: str, status: RunStatus | str, *, error: str | None = None
    ) -> RunRecord:
        """See ``RunManager.set_status``."""
        return self._run(lambda: self.manager.set_status(run_id, status, error=error))

    def cancel(
        self,
        run_id: str,
        *,
        action: CancelAction | str = CancelAction.interrupt,
        user_id: str | None = None,
    ) -> bool:
        """See ``RunManager.cancel``."""
        return self._run(lambda: self.manager.cancel(run_id, action=action, user_id=user_id))

    def delete(
        self,
        run_id: str,
        *,
        keep_checkpoints: bool = False,
        user_id: str | None = None,
        checkpointer: Any = None,
    ) -> None:
        """See ``RunManager.delete``: one finished run and its checkpoints."""
        self._run(
            lambda: self.manager.delete(
                run_id,
                keep_checkpoints=keep_checkpoints,
                user_id=user_id,
                checkpointer=checkpointer,
            )
        )

    def submit(self, assistant_id: str, input: Any, *, thread_id: str, **options: Any) -> RunRecord:
        """See ``RunManager.submit``: a run for the workers' shared queue."""
        return self._run(
            lambda: self.manager.submit(assistant_id, input, thread_id=thread_id, **options)
        )

    def join(
        self, run_id: str, *, poll_interval: float = 0.2, user_id: str | None = None
    ) -> RunRecord:
        """See ``RunManager.join``: block until the run has ended."""
        return self._run(
            lambda: self.manager.join(run_id, poll_interval=poll_interval, user_id=user_id)
        )

    # -- running graphs --------------------------------------------------------------------

    def invoke(self, graph: Any, input: Any, *, thread_id: str, **options: Any) -> RunRecord:
        """``graph.invoke(input)`` as one tracked run; the graph's errors are recorded on the
        run, not raised (see ``RunManager.invoke``)."""
        return self._call(lambda: self.manager.invoke(graph, input, thread_id=thread_id, **options))

    def stream(
        self,
        graph: Any,
        input: Any,
        *,
        thread_id: str,
        stream_mode: str | list[str] = "values",
        config: Mapping[str, Any] | None = None,
        subgraphs: bool = False,
        **options: Any,
    ) -> Iterator[Any]:
        """``graph.stream(input)`` as one tracked run, yielding what it yields. A graph error
        is recorded on the run and raised; stopping early ends the run ``interrupted``.
        LangGraph's arguments (``context``, ``durability`` …) are those of ``invoke``."""
        check_options("SyncRunManager.stream", options, also=frozenset(INVOKE_ARGUMENTS))
        args = parse_invoke_args(
            graph, **{name: options.pop(name) for name in INVOKE_ARGUMENTS if name in options}
        )
        with self.track(
            thread_id=thread_id, config=args.config(config), graph=graph, **options
        ) as run:
            yield from graph.stream(
                input,
                run.config,
                stream_mode=stream_mode,
                subgraphs=subgraphs,
                **args.graph_kwargs(),
            )

    def recorder(self, **options: Any) -> RunRecorder:
        """A RunRecorder bound to this manager (``RunManager.recorder``): sync ``invoke``
        and ``stream`` calls it sees write on this manager's loop thread."""
        return self.manager.recorder(**options)

    @contextmanager
    def track(self, *, thread_id: str, **options: Any) -> Iterator[RunRecord]:
        """Record the one ``graph.invoke``/``graph.stream`` made inside the block (see
        ``RunManager.track_sync``); ``run.config`` carries the tracker. Works in a notebook
        cell too: the graph's sync calls block the cell's loop while they run, as any sync
        call there does."""
        with blocking_permitted(), self.manager.track_sync(thread_id=thread_id, **options) as run:
            yield run

    def close(self) -> None:
        """Stop the manager's background loop (``from_url`` closes the store too)."""
        self.manager.close_sync()

    def __enter__(self) -> SyncRunManager:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __await__(self) -> Any:
        raise TypeError(
            "SyncRunManager is the synchronous manager and cannot be awaited; in async code "
            "use RunManager (async with RunManager.from_url(...) / await manager.get(...))"
        )


__all__ = ["SyncRunManager"]
