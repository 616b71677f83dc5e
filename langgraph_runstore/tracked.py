"""Tracking invocations the caller makes: ``tracker()`` (one run's callback handler),
``track()``/``track_sync()`` (a block around one invocation) and ``recorder()`` (one
handler that records every invocation it sees).

``TrackedRuns`` is a mixin on the facade; what it needs of the facade is declared on the
class.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from typing import Any, TypeVar, cast

from langgraph_runstore.accounting import Accounting
from langgraph_runstore.blocking import BlockingCalls
from langgraph_runstore.budget import Budget
from langgraph_runstore.errors import RunNotFoundError
from langgraph_runstore.execution import RunExecutor
from langgraph_runstore.idempotency import refuse_reused
from langgraph_runstore.lifecycle import RunLifecycle
from langgraph_runstore.metering import tracker_options
from langgraph_runstore.recorder import RunRecorder
from langgraph_runstore.schemas import RunRecord
from langgraph_runstore.sync_tracking import SyncRunTracker
from langgraph_runstore.tracking import (
    RunTracker,
    SyncRunWriter,
    check_flush_interval,
)

T = TypeVar("T")


class TrackedRuns(BlockingCalls):
    """``tracker``, ``track``, ``track_sync`` and ``recorder`` (see the module docstring)."""

    lifecycle: RunLifecycle
    flush_interval: float
    #: how calls are priced and attributed, and every run's default budget (the facade's)
    accounting: Accounting
    budget: Budget | None
    worker_id: str
    _trackers: dict[str, RunTracker | SyncRunTracker]
    _rollback_targets: dict[str, tuple[Any, Any]]
    _executor: RunExecutor

    create_or_reject: Callable[..., Awaitable[RunRecord]]

    # -- tracking your own invocations ----------------------------------------------------

    def tracker(
        self,
        run_id: str,
        *,
        flush_interval: float | None = None,
        checkpointer: Any = None,
        graph: Any = None,
        budget: Budget | None = None,
    ) -> RunTracker:
        """A callback handler that records one graph invocation as the run ``run_id``.

        Pass it in ``config["callbacks"]`` together with ``run_id`` in ``configurable``
        (``manager.track()`` builds that config for you). ``checkpointer`` or ``graph``
        lets ``cancel(action="rollback")`` remove the run's checkpoints. ``flush_interval``
        and ``budget`` override the manager's for this run.
        """
        record = self.lifecycle.records.get(run_id)
        if record is None:
            raise RunNotFoundError(
                f"no live run with run_id {run_id!r}: create it with manager.create() first",
                run_id=run_id,
            )
        interval = (
            self.flush_interval if flush_interval is None else check_flush_interval(flush_interval)
        )
        # the lifecycle takes the tracker's writes directly: one call less per write
        options = tracker_options(
            record, accounting=self.accounting, default=self.budget, budget=budget
        )
        tracker = RunTracker(self.lifecycle, record, flush_interval=interval, **options)
        self._trackers[run_id] = tracker
        if checkpointer is not None or graph is not None:
            self._rollback_targets[run_id] = (checkpointer, graph)
            tracker.before_start = self._executor.start_hook(record, checkpointer, graph)
        return tracker

    @asynccontextmanager
    async def track(
        self,
        *,
        thread_id: str,
        config: dict[str, Any] | None = None,
        graph: Any = None,
        **create_options: Any,
    ) -> AsyncIterator[RunRecord]:
        """Record the one graph invocation made inside the block as a run.

        ::

            async with manager.track(thread_id="t1") as run:
                await graph.ainvoke(inputs, run.config)

        ``run.config`` carries the tracker, ``thread_id`` and ``run_id`` (merged over
        ``config``). ``create_options`` go to ``create_or_reject`` (multitask_strategy,
        metadata, user_id …). A second invocation in the block raises
        RunAlreadyInvokedError; a block that invokes nothing ends the run ``interrupted``
        with stop_reason ``not_invoked``. ``manager.cancel()`` cancels the task running the
        block: the block ends there and, on Python 3.11+, the code after it carries on.
        """
        record = await self.create_or_reject(thread_id, start_now=True, **create_options)
        refuse_reused(record, "track")
        tracker = self.tracker(record.run_id, graph=graph)
        record.config = tracker.config(thread_id=thread_id, extra=config)
        try:
            yield record
        except asyncio.CancelledError as exc:
            await tracker.aclose(exc)
            if record.abort_requested and record.abort_action != "timeout":
                current = asyncio.current_task()
                if current is not None and hasattr(current, "uncancel"):
                    current.uncancel()
                    return  # our own cancel: end the block, not the caller's task
            raise
        except BaseException as exc:
            await tracker.aclose(exc)
            raise
        await tracker.aclose()

    @contextmanager
    def track_sync(
        self,
        *,
        thread_id: str,
        config: dict[str, Any] | None = None,
        graph: Any = None,
        **create_options: Any,
    ) -> Iterator[RunRecord]:
        """``track()`` for scripts without an event loop, around ``graph.invoke``/``stream``::

        with manager.track_sync(thread_id="t1") as run:
            graph.invoke(inputs, run.config)
        """
        record = self.run_sync(
            lambda: self.create_or_reject(thread_id, start_now=True, **create_options)
        )
        refuse_reused(record, "track_sync")
        options = tracker_options(record, accounting=self.accounting, default=self.budget)
        tracker = SyncRunTracker(
            cast(SyncRunWriter, self), record, flush_interval=self.flush_interval, **options
        )
        self._trackers[record.run_id] = tracker
        if graph is not None:
            self._rollback_targets[record.run_id] = (None, graph)
            tracker.before_start = self._executor.start_hook(record, None, graph)
        record.config = tracker.config(thread_id=thread_id, extra=config)
        try:
            yield record
        except BaseException as exc:
            tracker.close(exc)
            raise
        tracker.close()

    def recorder(
        self,
        *,
        assistant_id: str | None = None,
        user_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        flush_interval: float | None = None,
        budget: Budget | None = None,
    ) -> RunRecorder:
        """A RunRecorder bound to this manager: attach it once and every root graph
        invocation it sees becomes a run this manager holds (``get``, ``cancel`` and the
        reads see it live)::

            graph = graph.with_config(callbacks=[manager.recorder()])
        """
        return RunRecorder(
            self,
            assistant_id=assistant_id,
            user_id=user_id,
            metadata=metadata,
            flush_interval=flush_interval,
            budget=budget,
        )


__all__ = ["TrackedRuns"]
