"""Running graphs under runs: background tasks, per-thread FIFO order, timeouts, streaming
and the start and end of a rollback (``rollback.py`` restores the thread).
``RunManager.start/join/wait/stream`` delegate here.

Within one manager, the runs of a thread execute one after another in creation order: each
run's task first waits for the task of the run created before it on that thread. That is
what makes ``enqueue`` FIFO, and it means ``interrupt``/``rollback`` only have to cancel the
runs in flight before the new one starts.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from langgraph_runstore.rollback import RollbackPoint, capture, resumes, roll_back
from langgraph_runstore.schemas import RunRecord
from langgraph_runstore.tracking import RunTracker

logger = logging.getLogger(__name__)

#: How long ``cancel(action="rollback")`` waits for the cancelled graph to stop before it
#: removes the run's checkpoints anyway.
ROLLBACK_STOP_TIMEOUT = 10.0

_END = object()


@dataclass
class _Execution:
    """What the executor keeps about one run it executes."""

    record: RunRecord
    graph: Any
    tracker: RunTracker
    #: LangGraph's invoke arguments for this run (``invoke_args``): context, durability …
    graph_kwargs: dict[str, Any] = field(default_factory=dict)
    stream: asyncio.Queue[Any] | None = None
    consumer_gone: bool = False
    timeout_handle: asyncio.TimerHandle | None = field(default=None, repr=False)


class RunExecutor:
    """Executes graphs for one RunManager.

    ``cancel(run_id)`` cancels a run (a stream whose consumer left); ``on_run_ended()`` is
    told each time a run's task ends, so that a worker looks at the shared queue again.
    """

    def __init__(
        self,
        *,
        cancel: Callable[[str], Awaitable[bool]],
        on_run_ended: Callable[[], None] = lambda: None,
    ) -> None:
        self._cancel = cancel
        self._on_run_ended = on_run_ended
        self._tails: dict[str, asyncio.Task[Any]] = {}
        self._executions: dict[str, _Execution] = {}
        #: run_id -> what a rollback of that run restores (runs that resume a thread)
        self._points: dict[str, RollbackPoint] = {}

    def launch(
        self,
        record: RunRecord,
        graph: Any,
        graph_input: Any,
        tracker: RunTracker,
        *,
        timeout: float | None,
        stream_mode: str | list[str] | None,
        subgraphs: bool,
        graph_kwargs: dict[str, Any] | None = None,
    ) -> None:
        """Start the run's task; it waits for the thread's previous run first."""
        execution = _Execution(record, graph, tracker, dict(graph_kwargs or {}))
        tracker.before_start = self.start_hook(record, None, graph)
        if stream_mode is not None:
            execution.stream = asyncio.Queue()
        previous = self._tails.get(record.thread_id)
        task = asyncio.create_task(
            self._run(execution, previous, graph_input, timeout, stream_mode, subgraphs),
            name=f"langgraph-runstore run {record.run_id}",
        )
        record.task = task
        self._executions[record.run_id] = execution
        self._tails[record.thread_id] = task
        task.add_done_callback(lambda done: self._forget(record, done))

    def unfinished(self) -> list[asyncio.Task[Any]]:
        """The tasks of the runs this executor started that have not ended."""
        tasks = (execution.record.task for execution in self._executions.values())
        return [task for task in tasks if task is not None and not task.done()]

    def active_count(self) -> int:
        """How many runs this executor has started and not yet finished (queued included)."""
        return len(self._executions)

    def _forget(self, record: RunRecord, task: asyncio.Task[Any]) -> None:
        self._executions.pop(record.run_id, None)
        if record.task is task:
            record.task = None  # a done task would keep its coroutine and context alive
        if self._tails.get(record.thread_id) is task:
            del self._tails[record.thread_id]
        self._on_run_ended()

    async def _run(
        self,
        execution: _Execution,
        previous: asyncio.Task[Any] | None,
        graph_input: Any,
        timeout: float | None,
        stream_mode: str | list[str] | None,
        subgraphs: bool,
    ) -> None:
        record, tracker = execution.record, execution.tracker
        try:
            if previous is not None:
                await asyncio.wait([previous])  # never cancels the previous run
            if record.is_final:
                return  # cancelled while it waited in the queue
            if timeout is not None:
                execution.timeout_handle = asyncio.get_running_loop().call_later(
                    timeout, self._time_out, record, timeout
                )
            if execution.stream is None:
                record.output = await execution.graph.ainvoke(
                    graph_input, record.config, **execution.graph_kwargs
                )
            else:
                await self._pump(execution, graph_input, stream_mode, subgraphs)
        except asyncio.CancelledError as cancelled:
            await tracker.aclose(cancelled)
        except Exception as exc:  # the tracker has recorded it; join() returns the record
            await tracker.aclose(exc)
        finally:
            if execution.timeout_handle is not None:
                execution.timeout_handle.cancel()
            await tracker.aclose()
            if execution.stream is not None:
                execution.stream.put_nowait(_END)

    async def _pump(
        self,
        execution: _Execution,
        graph_input: Any,
        stream_mode: str | list[str] | None,
        subgraphs: bool,
    ) -> None:
        modes = [stream_mode] if isinstance(stream_mode, str) else list(stream_mode or ["values"])
        queue = execution.stream
        assert queue is not None
        async for chunk in execution.graph.astream(
            graph_input,
            execution.record.config,
            stream_mode=modes,
            subgraphs=subgraphs,
            **execution.graph_kwargs,
        ):
            if not execution.consumer_gone:
                queue.put_nowait(chunk)

    def _time_out(self, record: RunRecord, timeout: float) -> None:
        if record.is_final or record.task is None:
            return
        record.abort_action = "timeout"
        record.error = f"TimeoutError: run exceeded its timeout of {timeout:g}s"
        record.abort_event.set()
        record.task.cancel()

    async def stream(self, record: RunRecord) -> AsyncGenerator[tuple[str, Any], None]:
        """Yield the run's ``(mode, chunk)`` pairs; honour ``on_disconnect`` if abandoned."""
        execution = self._executions.get(record.run_id)
        if execution is None or execution.stream is None:
            return
        queue = execution.stream
        finished = False
        try:
            while True:
                item = await queue.get()
                if item is _END:
                    finished = True
                    return
                yield _as_mode_chunk(item)
        finally:
            if not finished:
                execution.consumer_gone = True
                if record.on_disconnect.value == "cancel" and not record.is_final:
                    await self._cancel(record.run_id)

    async def wait_stopped(self, record: RunRecord, timeout: float = ROLLBACK_STOP_TIMEOUT) -> None:
        """Wait until the run's task has ended (used before removing its checkpoints)."""
        task = record.task
        if task is None or task.done() or task is asyncio.current_task():
            return
        await asyncio.wait([task], timeout=timeout)

    def start_hook(
        self, record: RunRecord, checkpointer: Any, graph: Any
    ) -> Callable[[Any], Awaitable[None]]:
        """What a tracker awaits with the graph's input as the graph starts: a run that
        resumes the thread gets the pending writes a rollback restores recorded."""

        async def before_start(graph_input: Any) -> None:
            if resumes(graph_input):
                await self._remember(record, checkpointer, graph)

        return before_start

    async def _remember(self, record: RunRecord, checkpointer: Any, graph: Any) -> None:
        if checkpointer is None:
            checkpointer = getattr(graph, "checkpointer", None)
        if checkpointer is None or isinstance(checkpointer, bool):
            return
        config = record.config or {"configurable": {"thread_id": record.thread_id}}
        try:
            point = await capture(checkpointer, graph, config)
        except NotImplementedError:  # a sync-only saver: nothing async can be read from it
            return
        except Exception:
            logger.warning(
                "Could not record the checkpoint run %s resumes from: a rollback of it "
                "cannot restore that checkpoint's pending writes",
                record.run_id,
                exc_info=True,
            )
            return
        if point is not None:
            self._points[record.run_id] = point

    def forget(self, run_id: str) -> None:
        """The run has ended: what a rollback of it would restore is no longer needed."""
        self._points.pop(run_id, None)

    async def rollback(self, record: RunRecord, checkpointer: Any = None, graph: Any = None) -> str:
        """Put the run's thread back as it was before the run; return the stop_reason to
        record (``rolled_back``, ``rollback_unavailable`` or ``rollback_failed``).

        See ``rollback.py``: ``SQLAlchemySaver`` deletes the run's checkpoints and restores
        the pending writes of the checkpoint it started from; other savers get that
        checkpoint copied as the newest one, with its pending writes, which needs the graph.
        """
        execution = self._executions.get(record.run_id)
        graph = graph if graph is not None else (execution.graph if execution else None)
        if checkpointer is None and graph is not None:
            checkpointer = getattr(graph, "checkpointer", None)
        if checkpointer is None or isinstance(checkpointer, bool):
            logger.warning(
                "Run %s was cancelled with rollback but has no checkpointer to roll back",
                record.run_id,
            )
            return "rollback_unavailable"
        await self.wait_stopped(record)
        point = self._points.pop(record.run_id, None)
        try:
            restored = await roll_back(
                checkpointer, graph, run_id=record.run_id, thread_id=record.thread_id, point=point
            )
        except Exception:
            # the run still ends: a rollback that fails must not leave it running
            logger.exception(
                "Rollback of run %s failed: thread %s keeps what the run wrote",
                record.run_id,
                record.thread_id,
            )
            return "rollback_failed"
        if not restored:
            logger.warning(
                "%s has no adelete_for_runs and the graph is unknown: run %s keeps its checkpoints",
                type(checkpointer).__name__,
                record.run_id,
            )
            return "rollback_unavailable"
        return "rolled_back"


def _as_mode_chunk(item: Any) -> tuple[str, Any]:
    # astream with a list of modes yields (mode, chunk), or (namespace, mode, chunk) with
    # subgraphs=True; the namespace is folded into the chunk so callers always get pairs
    if isinstance(item, tuple) and len(item) == 3:
        namespace, mode, chunk = item
        return mode, (namespace, chunk)
    mode, chunk = item
    return mode, chunk


async def until_done(task: asyncio.Task[Any]) -> None:
    """Wait for ``task`` to end, whatever its outcome; cancelling the waiter leaves the task
    running (a lighter ``asyncio.wait([task])``)."""
    waiter = asyncio.get_running_loop().create_future()

    def wake(_: asyncio.Task[Any]) -> None:
        if not waiter.done():
            waiter.set_result(None)

    task.add_done_callback(wake)
    try:
        await waiter
    finally:
        task.remove_done_callback(wake)


__all__ = ["ROLLBACK_STOP_TIMEOUT", "RunExecutor", "until_done"]
