"""RunManager: the public facade over the run lifecycle (``lifecycle``), admission,
execution (``execution``), tracking (``tracking``), workers (``workers``) and the read side.

Status changes and their persistence belong to ``RunLifecycle``; the manager composes the
parts and keeps the contract's methods in one place.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

from langgraph_runstore.accounting import Accounting
from langgraph_runstore.admission import RunAdmission, ThreadTurns
from langgraph_runstore.awaitable import async_api
from langgraph_runstore.budget import Budget, check_budget
from langgraph_runstore.cancel_watch import CancelWatch
from langgraph_runstore.deletion import RunDeletion
from langgraph_runstore.durability import BackgroundRetryPolicy
from langgraph_runstore.errors import (
    InvalidInputError,
)
from langgraph_runstore.execution import RunExecutor, until_done
from langgraph_runstore.invoke_args import (
    START_ARGUMENTS,
    InvokeArgs,
    check_checkpoint_exists,
    check_options,
    parse_invoke_args,
)
from langgraph_runstore.journal import JournalConfig
from langgraph_runstore.lifecycle import (
    PersistenceRetryPolicy,
    RunLifecycle,
    check_completion_fields,
)
from langgraph_runstore.remote import cancel_elsewhere, reconcile_orphans, standing_action
from langgraph_runstore.run_events import RunEvents
from langgraph_runstore.schemas import (
    CancelAction,
    RunRecord,
    RunStatus,
    now_iso,
    resolve_token_aliases,
)
from langgraph_runstore.store.base import RunStore
from langgraph_runstore.sync_tracking import SyncRunTracker
from langgraph_runstore.tracked import TrackedRuns
from langgraph_runstore.tracking import (
    RunTracker,
    check_flush_interval,
    error_text,
)
from langgraph_runstore.validate import check_id, check_timeout
from langgraph_runstore.workers import RecoveryPolicy, WorkerServices, default_worker_id

logger = logging.getLogger(__name__)

#: Default message for runs that startup recovery finds without a live owner.
ORPHAN_ERROR = "The worker that owned this run stopped before the run reached a final status."


def _now_iso() -> str:
    """Current UTC time as stored on records (tests patch this to force equal timestamps)."""
    return now_iso()


class RunManager(RunAdmission, RunDeletion, TrackedRuns, RunEvents):
    """Creates runs, moves them through their statuses and persists every change.

    ``RunManager()`` keeps runs in memory only; ``RunManager(store=...)`` also writes them
    to the store and reads back runs it does not hold. Finished records stay in memory for
    ``retain_finished_for`` seconds. A worker (``lease_seconds=`` or ``graphs=``) owns its
    runs through leases and executes what others ``submit()`` (README: "Running several
    workers"). ``prices``, ``usage_tags`` and ``budget`` (every run's default) are README's
    "Cost, latency and budgets".
    """

    def __init__(
        self,
        store: RunStore | None = None,
        *,
        persistence_retry_policy: PersistenceRetryPolicy | None = None,
        final_write_retry_policy: BackgroundRetryPolicy | None = None,
        retain_finished_for: float = 300.0,
        worker_id: str | None = None,
        lease_seconds: float | None = None,
        graphs: Mapping[str, Any] | None = None,
        grace_seconds: float = 5.0,
        recovery: RecoveryPolicy | None = None,
        poll_interval: float = 0.5,
        max_concurrent_runs: int = 16,
        drain_timeout: float = 10.0,
        flush_interval: float = 5.0,
        prices: Any = None,
        usage_tags: Sequence[str] = (),
        budget: Budget | None = None,
        journal: JournalConfig | str | None = None,
    ) -> None:
        if store is not None and not isinstance(store, RunStore):
            raise InvalidInputError(
                "store must be a RunStore (MemoryRunStore, SQLRunStore), "
                f"got {type(store).__name__}"
            )
        if retain_finished_for < 0:
            raise InvalidInputError(
                f"retain_finished_for must be >= 0 seconds, got {retain_finished_for!r}"
            )
        #: how far behind its tracker a running run's row may fall (a trailing throttle)
        self.flush_interval = check_flush_interval(flush_interval)
        #: what each run's event journal keeps (README: "Run events"); default level "nodes"
        self.journal = JournalConfig.of(journal)
        self.retry_policy = persistence_retry_policy or PersistenceRetryPolicy()
        self.retain_finished_for = retain_finished_for
        self.accounting = Accounting.of(prices=prices, usage_tags=usage_tags)
        self.budget = check_budget(budget)
        check_id(worker_id, name="worker_id", optional=True)
        self.worker_id = worker_id or default_worker_id()
        # the clock is looked up at each call, so that patching _now_iso reaches it
        self.lifecycle = RunLifecycle(
            store,
            retry_policy=self.retry_policy,
            retain_finished_for=retain_finished_for,
            clock=lambda: _now_iso(),
            log=logger,
            on_final=self._release,
            background_retry=final_write_retry_policy,
            on_cancel_requested=lambda run_id, action: self.cancel(run_id, action=action),
            on_change=lambda: self._watch.notice() if self._workers is None else None,
        )
        # cancels recorded by other processes, for the runs this one executes
        self._watch = CancelWatch(self.lifecycle, cancel=self.cancel, poll_interval=poll_interval)
        self.admission_turns = ThreadTurns()
        self._trackers: dict[str, RunTracker | SyncRunTracker] = {}
        self._rollback_targets: dict[str, tuple[Any, Any]] = {}
        self._executor = RunExecutor(cancel=self.cancel, on_run_ended=self.wake_workers)
        # worker mode (several workers on one database): see workers.py
        self.graphs = dict(graphs or {})
        self.served_until: dict[str, float] = {}
        self.lease_seconds = (
            lease_seconds if lease_seconds is not None else (30.0 if graphs else None)
        )
        self.grace_seconds = grace_seconds
        self.recovery = recovery or RecoveryPolicy()
        self.poll_interval = poll_interval
        self.max_concurrent_runs = max_concurrent_runs
        self.drain_timeout = drain_timeout
        self._workers: WorkerServices | None = None

    @classmethod
    @asynccontextmanager
    async def from_url(
        cls, url: str | os.PathLike[str], **manager_options: Any
    ) -> AsyncIterator[RunManager]:
        """A manager on a SQLRunStore at ``url`` (created or migrated), closed on exit::

            async with RunManager.from_url("sqlite+aiosqlite:///agent.db") as manager:
                graph = builder.compile(checkpointer=manager.store.checkpointer)
                run = await manager.wait(graph, inputs, thread_id="t1")

        A worker (``lease_seconds`` or ``graphs`` given) starts its services on entry.
        """
        from langgraph_runstore.store.sql import SQLRunStore

        async with SQLRunStore.from_url(url) as store, cls(store, **manager_options) as manager:
            yield manager

    @property
    def store(self) -> RunStore | None:
        """The RunStore every change is mirrored to (None: memory only)."""
        return self.lifecycle.store

    @store.setter
    def store(self, store: RunStore | None) -> None:
        self.lifecycle.store = store

    @property
    def _runs(self) -> dict[str, RunRecord]:
        # deer-flow's name for the held records, which its run-manager tests (the reference
        # contract) clear to simulate a restart: the same dict the lifecycle holds
        return self.lifecycle.records

    def _release(self, record: RunRecord) -> None:
        """A live run ended: its tracker and rollback target are no longer needed."""
        tracker = self._trackers.pop(record.run_id, None)
        journal = tracker.journal if tracker is not None else None
        if journal is not None and not journal.ending and record.abort_action == "rollback":
            self.lifecycle.spawn(journal.finish(record))  # its tracker left the end to cancel()
        self._rollback_targets.pop(record.run_id, None)
        self._executor.forget(record.run_id)

    @async_api("RunManager")
    async def set_status(
        self, run_id: str, status: RunStatus | str, *, error: str | None = None
    ) -> RunRecord:
        """Move a run to ``status`` and persist it; a repeated final status is a no-op.

        Raises RunNotFoundError for an unknown run, InvalidInputError for an unknown status
        and InvalidTransitionError for a change the lifecycle forbids.
        """
        parsed = RunStatus.parse(status, run_id=run_id)
        record = await self.lifecycle.lookup(run_id)
        await self.lifecycle.transition(record, parsed, error)
        return record

    async def mark_running(self, record: RunRecord) -> None:
        """Start a pending live run (the tracker calls this when the graph starts)."""
        await self.lifecycle.mark_running(record)

    async def flush_progress(self, record: RunRecord, **fields: Any) -> None:
        """Write a running run's counters so far (the tracker's progress write)."""
        await self.lifecycle.flush_progress(record, **fields)

    async def finish(
        self,
        record: RunRecord,
        status: RunStatus,
        *,
        error: str | None = None,
        stop_reason: str | None = None,
        **fields: Any,
    ) -> bool:
        """End a live run in one store write; False if it had already ended (left as is)."""
        return await self.lifecycle.finish(
            record, status, error=error, stop_reason=stop_reason, **fields
        )

    @async_api("RunManager")
    async def update_run_completion(
        self, run_id: str, *, status: RunStatus | str, **fields: Any
    ) -> RunRecord:
        """Record a run's final numbers (tokens, LLM calls, messages) with its status.

        Setting the status the run already has is allowed, so counters can follow a
        ``set_status``; field names are those of ``schemas.COMPLETION_FIELDS``, and
        deer-flow's ``total_input_tokens``/``total_output_tokens``.
        """
        parsed = RunStatus.parse(status, run_id=run_id)
        fields = dict(resolve_token_aliases(fields, run_id=run_id))
        check_completion_fields(run_id, fields)
        record = await self.lifecycle.lookup(run_id)
        await self.lifecycle.complete(record, parsed, fields)
        return record

    @async_api("RunManager")
    async def cancel(
        self,
        run_id: str,
        *,
        action: CancelAction | str = CancelAction.interrupt,
        user_id: str | None = None,
    ) -> bool:
        """Cancel a pending or running run; False if it had already finished.

        The run ends ``interrupted`` and its graph stops. ``interrupt`` keeps the checkpoints
        written so far (stop_reason ``cancelled``); ``rollback`` removes them once the graph
        stopped (``rolled_back``). The first cancel's action stands. RunNotFoundError for an
        unknown run_id, and with ``user_id`` for another user's run (left untouched)."""
        parsed_action = CancelAction.parse(action)
        record = await self._visible_run(run_id, user_id)
        if record.is_final:
            return False
        if record.store_only and self.store is not None:
            delivered, standing = await cancel_elsewhere(
                self.lifecycle,
                record,
                parsed_action,
                worker_id=self.worker_id,
                grace_seconds=self.grace_seconds,
            )
            if delivered is not None:
                return delivered
            parsed_action = CancelAction(standing)
        elif self.store is not None:  # a request already recorded (by a peer) stands
            parsed_action = await standing_action(self.lifecycle, record, parsed_action)
        if record.status.is_final:  # it ended while the request was recorded
            return False
        record.abort_action = parsed_action.value
        record.abort_event.set()
        task = record.task
        if task is not None and not task.done() and task is not asyncio.current_task():
            task.cancel()
        if parsed_action == CancelAction.interrupt:
            await self.finish(
                record, RunStatus.interrupted, stop_reason="cancelled", **self._tally(run_id)
            )
            return True
        # rollback: the checkpoints go first, so the thread is back where it was by the time
        # the run reads as ended
        stop_reason = "rolled_back"
        if not record.store_only and record.status is RunStatus.running:
            checkpointer, graph = self._rollback_targets.get(run_id, (None, None))
            stop_reason = await self._executor.rollback(record, checkpointer, graph)
        elif record.store_only and record.status is RunStatus.running:
            # nobody executes it any more: the checkpoints it wrote are in the store's database
            checkpointer = getattr(self.store, "checkpointer", None)
            stop_reason = await self._executor.rollback(record, checkpointer)
        await self.finish(
            record, RunStatus.interrupted, stop_reason=stop_reason, **self._tally(run_id)
        )
        return True

    def _adopt(
        self, record: RunRecord, graph: Any, graph_input: Any, *, config: Any, timeout: Any
    ) -> None:
        """Execute a run this worker claimed from the shared queue."""
        self.lifecycle.hold(record)
        tracker = self.tracker(record.run_id)
        try:
            args = InvokeArgs.from_json(record.kwargs.get("invoke"), graph=graph)
        except InvalidInputError as exc:  # the graph changed since the run was submitted
            self.lifecycle.spawn(self.finish(record, RunStatus.error, error=error_text(exc)))
            return
        record.config = tracker.config(thread_id=record.thread_id, extra=args.config(config))
        self._executor.launch(
            record,
            graph,
            graph_input,
            tracker,
            timeout=float(timeout) if timeout else None,
            stream_mode=None,
            subgraphs=False,
            graph_kwargs=args.graph_kwargs(),
        )

    def _tally(self, run_id: str) -> dict[str, Any]:
        tracker = self._trackers.get(run_id)
        return tracker.current_fields() if tracker is not None else {}

    @async_api("RunManager")
    async def cleanup(self, run_id: str, *, delay: float = 0) -> None:
        """Forget the in-memory record of a run now, or after ``delay`` seconds.

        The store row stays: it is the run's durable history (see ``prune`` for that).
        """
        if delay <= 0:
            self.lifecycle.forget(run_id)
            return
        asyncio.get_running_loop().call_later(delay, self.lifecycle.forget, run_id)

    @async_api("RunManager")
    async def reconcile_orphaned_inflight_runs(
        self, *, error: str = ORPHAN_ERROR, before: str | datetime | None = None
    ) -> list[RunRecord]:
        """Mark pending or running store rows that no live worker owns as ``error``.

        Skips runs this manager holds live and runs whose lease another worker still holds.
        ``before`` limits recovery to runs created before that time. Returns the records
        whose new status reached the store; a row whose update failed is left as it was.
        """
        return await reconcile_orphans(
            self.lifecycle, worker_id=self.worker_id, error=error, before=before
        )

    # -- managed runs ---------------------------------------------------------------------

    @async_api("RunManager")
    async def start(
        self,
        graph: Any,
        input: Any,
        *,
        thread_id: str,
        config: dict[str, Any] | None = None,
        timeout: float | None = None,
        stream_mode: str | list[str] | None = None,
        subgraphs: bool = False,
        context: Any = None,
        durability: str | None = None,
        interrupt_before: str | list[str] | None = None,
        interrupt_after: str | list[str] | None = None,
        checkpoint_id: str | None = None,
        **create_options: Any,
    ) -> RunRecord:
        """Create a run and execute ``graph.ainvoke(input)`` under it in the background.

        ``config`` is merged under the run's own (callbacks added, ``thread_id`` and
        ``run_id`` set). ``context``, ``durability`` and ``interrupt_before``/``after`` go
        to LangGraph as given; ``checkpoint_id`` starts the run from that checkpoint of the
        thread (``invoke_args``). ``create_options`` go to ``create_or_reject``
        (multitask_strategy, on_disconnect, metadata, user_id, assistant_id …). Runs of one
        thread execute in the order their ``start()`` calls were made, however their
        INSERTs interleave (``ThreadTurns``). ``timeout`` seconds (finite, > 0) after it
        starts, a run is cancelled and ends ``timeout``. Everything is checked before a
        row is written (``validate``, ``invoke_args``).
        """
        check_options("RunManager.start", create_options)
        timeout = check_timeout(timeout)
        args = parse_invoke_args(
            graph,
            context=context,
            durability=durability,
            interrupt_before=interrupt_before,
            interrupt_after=interrupt_after,
            checkpoint_id=checkpoint_id,
        )
        await check_checkpoint_exists(graph, thread_id, args)
        async with self.admission_turns.turn(thread_id):
            record = await self.create_or_reject(thread_id, start_now=True, **create_options)
            if record.idempotency_reused:  # the key names a run: it is not executed again
                return record
            tracker = self.tracker(record.run_id)
            record.config = tracker.config(thread_id=thread_id, extra=args.config(config))
            self._executor.launch(
                record,
                graph,
                input,
                tracker,
                timeout=timeout,
                stream_mode=stream_mode,
                subgraphs=subgraphs,
                graph_kwargs=args.graph_kwargs(),
            )
        return record

    @async_api("RunManager")
    async def join(
        self, run_id: str, *, poll_interval: float = 0.2, user_id: str | None = None
    ) -> RunRecord:
        """Wait until the run has ended and return its record (``output`` holds the final
        state when this process ran it). Runs of other processes are polled in the store.
        RunNotFoundError for an unknown run, and with ``user_id`` for another user's."""
        if user_id is not None:
            await self._visible_run(run_id, user_id)
        record = self.lifecycle.records.get(run_id)
        if record is not None:
            if record.task is not None and not record.task.done():
                await until_done(record.task)
            if record.is_final or self.store is None:
                return record
        while True:
            found = await self.lifecycle.lookup(run_id)
            if found.is_final:
                if found.store_only and found.output is None:  # it ran elsewhere
                    found.output = await self.stored_output(found)
                return found
            await asyncio.sleep(poll_interval)

    @async_api("RunManager")
    async def wait(self, graph: Any, input: Any, *, thread_id: str, **options: Any) -> RunRecord:
        """``start`` then ``join``: run the graph and return the finished record."""
        check_options("RunManager.wait", options, also=START_ARGUMENTS)
        record = await self.start(graph, input, thread_id=thread_id, **options)
        return await self.join(record.run_id)

    async def stream(
        self,
        graph: Any,
        input: Any,
        *,
        thread_id: str,
        stream_mode: str | list[str] = "values",
        **options: Any,
    ) -> AsyncIterator[tuple[str, Any]]:
        """Run the graph and yield its ``(mode, chunk)`` pairs as they come.

        If the consumer stops early, the run is cancelled when its ``on_disconnect`` is
        ``cancel`` (the default) and goes on in the background when it is ``continue``.
        """
        check_options("RunManager.stream", options, also=START_ARGUMENTS)
        record = await self.start(
            graph, input, thread_id=thread_id, stream_mode=stream_mode, **options
        )
        if record.idempotency_reused:  # another call's run: its chunks are that call's
            return
        chunks = self._executor.stream(record)
        try:
            async for item in chunks:
                yield item
        finally:
            await chunks.aclose()  # runs its on_disconnect handling now, not at garbage collection

    @async_api("RunManager")
    async def aclose(self) -> None:
        """Shut down: as a worker, stop claiming, let running runs finish for
        ``drain_timeout`` seconds and cancel the rest, then release every lease; otherwise
        cancel the runs this manager executes. Final statuses are persisted either way: a
        final write still owed to the store is tried for up to ``drain_timeout`` seconds,
        and the runs it could not write are logged by run id."""
        if self._workers is not None:
            workers, self._workers = self._workers, None
            await workers.stop(drain_timeout=self.drain_timeout)
        tasks = self._executor.unfinished()
        for record in list(self.lifecycle.records.values()):
            if record.task is not None and not record.is_final:
                await self.cancel(record.run_id)
        if tasks := [t for t in (*tasks, *self.lifecycle.background) if not t.done()]:
            await asyncio.wait(tasks, timeout=self.drain_timeout)  # the runs it ended are done
        await self._watch.stop()
        if self.lifecycle.unsaved.pending:
            await self.lifecycle.unsaved.flush(timeout=self.drain_timeout)
        self.close_sync()

    async def start_worker(self) -> None:
        """Start the worker services: heartbeat, recovery sweep, LISTEN, and the dispatcher
        when ``graphs`` were given. ``async with manager`` calls this when the manager was
        made with ``lease_seconds`` or ``graphs``."""
        if self._workers is not None:
            return
        if self.store is None:
            raise InvalidInputError("a worker needs a store shared with the other workers")
        self._workers = WorkerServices(
            self.lifecycle,
            worker_id=self.worker_id,
            cancel=self.cancel,
            execute=self._adopt,
            executing=self._executor.active_count,
            graphs=self.graphs,
            lease_seconds=self.lease_seconds or 30.0,
            grace_seconds=self.grace_seconds,
            recovery=self.recovery,
            poll_interval=self.poll_interval,
            max_concurrent_runs=self.max_concurrent_runs,
        )
        if self.lease_seconds is None:
            self.lease_seconds = self._workers.lease_seconds
        await self._workers.start()

    async def serve_forever(self) -> None:
        """Keep executing shared-queue runs until cancelled (a worker's main loop)."""
        await self.start_worker()
        await asyncio.Event().wait()

    @property
    def is_worker(self) -> bool:
        """Whether this manager runs as a worker (its runs carry an owner and a lease)."""
        return self._workers is not None

    def wake_workers(self) -> None:
        """Tell this manager's worker to look at the shared queue now (a run ended or was
        submitted); nothing when it is not a worker."""
        if self._workers is not None:
            self._workers.wake()

    async def __aenter__(self) -> RunManager:
        if self.lease_seconds is not None or self.graphs:
            await self.start_worker()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # -- reading and retention ----------------------------------------------------------------
