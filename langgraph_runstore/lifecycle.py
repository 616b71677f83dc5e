"""RunLifecycle: the live records of a process's runs, their status transitions, and their
persistence. It is the only writer of run status and timestamps.

The store is the truth. Every status change is one conditional write
(``RunStore.write_status``) whose answer, the row's status fields as stored, updates the
live record; a change the store refuses (another process ended the run) leaves the record
showing what the store holds, with a warning and no traceback. Store writes are retried on
transient errors (retry.py); a row that went missing is re-created from the live record;
a final write that still fails is retried in the background (durability.py) and never
crashes the caller. Records of finished runs stay for
``retain_finished_for`` seconds, then only the store has them.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from langgraph_runstore.durability import BackgroundRetryPolicy, UnsavedFinalWrites
from langgraph_runstore.errors import ConflictError, InvalidInputError, RunNotFoundError
from langgraph_runstore.query import FINAL_STATUS_VALUES
from langgraph_runstore.retry import PersistenceRetryPolicy, is_transient_error, retry_transient
from langgraph_runstore.schemas import (
    COMPLETION_FIELDS,
    COST_FIELDS,
    JSON_FIELDS,
    TOKEN_FIELDS,
    CancelAction,
    RunRecord,
    RunStatus,
    check_transition,
    now_iso,
)
from langgraph_runstore.store.base import RunStore, StatusWrite
from langgraph_runstore.text import storable_fields, storable_text

T = TypeVar("T")

_YIELDING = frozenset({RunStatus.success, RunStatus.error, RunStatus.timeout})
#: What a run itself measured: true whoever wrote its end (see ``RunLifecycle._keep_results``)
RESULT_FIELDS = frozenset(
    {
        *TOKEN_FIELDS,
        "token_usage_by_model",
        "llm_call_count",
        "calls_without_usage",
        *COST_FIELDS,
        "message_count",
        "last_ai_message",
        "first_human_message",
        "model_name",
    }
)


def check_completion_fields(run_id: str, fields: dict[str, Any]) -> None:
    """Raise InvalidInputError naming any field ``update_run_completion`` does not know."""
    if COMPLETION_FIELDS.issuperset(fields):
        return
    unknown = set(fields) - COMPLETION_FIELDS
    if unknown:
        raise InvalidInputError(
            f"unknown completion field(s) {sorted(unknown)} for run {run_id!r}: "
            f"expected some of {sorted(COMPLETION_FIELDS)}",
            run_id=run_id,
        )
    # token_usage_by_model's JSON is checked by the store, which encodes it anyway


class RunLifecycle:
    """The live records of one RunManager and every status change made to them.

    ``clock`` gives the timestamps records carry; ``log`` is the logger persistence failures
    go to (the facade's); ``on_final(record)`` runs when a live run reaches a final status;
    ``background_retry`` paces the retries of final writes that did not land;
    ``on_change()`` runs when a held record starts running or ends;
    ``on_cancel_requested(run_id, action)`` cancels a run whose completion met a cancel
    request a peer recorded first (the completion then yields to it).
    """

    def __init__(
        self,
        store: RunStore | None,
        *,
        retry_policy: PersistenceRetryPolicy,
        retain_finished_for: float,
        clock: Callable[[], str] = now_iso,
        log: logging.Logger | None = None,
        on_final: Callable[[RunRecord], None] = lambda record: None,
        background_retry: BackgroundRetryPolicy | None = None,
        on_change: Callable[[], None] = lambda: None,
        on_cancel_requested: Callable[[str, str], Awaitable[object]] | None = None,
    ) -> None:
        self.store = store
        self.retry_policy = retry_policy
        self.retain_finished_for = retain_finished_for
        self.clock = clock
        self.log = log or logging.getLogger(__name__)
        self.on_final = on_final
        self.on_change = on_change
        self.on_cancel_requested = on_cancel_requested
        #: cancels this lifecycle started on its own (a completion that met a request)
        self.background: set[asyncio.Task[Any]] = set()
        #: every record held, live or finished and not yet evicted
        self.records: dict[str, RunRecord] = {}
        #: the held records that have not ended: what a worker heartbeats and drains
        self.live: dict[str, RunRecord] = {}
        #: runs this worker lost its lease on: nothing more is written for them
        self.fenced: set[str] = set()
        self._by_thread: dict[str, dict[str, RunRecord]] = {}
        self._evictions: deque[tuple[float, str]] = deque()
        #: final writes that did not land yet, retried in the background
        self.unsaved = UnsavedFinalWrites(
            self.land_final,
            on_landed=self.schedule_eviction,
            policy=background_retry or BackgroundRetryPolicy(),
            log=self.log,
        )

    async def retrying(self, call: Callable[[], Awaitable[T]]) -> T:
        return await retry_transient(call, self.retry_policy, self.log)

    async def put_record(self, record: RunRecord) -> None:
        assert self.store is not None
        row = record.to_row()
        del row["run_id"], row["thread_id"]
        store = self.store
        await self.retrying(lambda: store.put(record.run_id, thread_id=record.thread_id, **row))

    def may_write(self, record: RunRecord) -> bool:
        if record.run_id in self.fenced:
            self.log.warning("Not writing run %s: this worker lost its lease on it", record.run_id)
            return False
        return True

    async def persist_new(self, record: RunRecord) -> None:
        """Insert a new run's row: only what the table's defaults do not already hold.
        A run_id that already names a stored run is the caller's error (InvalidInputError,
        and the record is dropped); any other failure is logged, and the row is re-created
        by the run's next write."""
        store = self.store
        if store is None:
            return
        row = record.to_row(sparse=True)
        del row["run_id"], row["thread_id"]
        try:
            await self.retrying(
                lambda: store.insert(record.run_id, thread_id=record.thread_id, **row)
            )
        except InvalidInputError:
            self.forget(record.run_id)
            raise
        except Exception:
            record.durable = False
            self.log.exception(
                "Could not persist new run %s (thread %s); later updates will re-create it",
                record.run_id,
                record.thread_id,
            )

    async def persist_status(self, record: RunRecord, status: RunStatus, error: str | None) -> bool:
        """Write a status change; True once the store holds it."""
        return await self._write(record, status, error, None)

    async def persist_completion(
        self, record: RunRecord, status: RunStatus, fields: dict[str, Any]
    ) -> bool:
        """Write counters and status; re-create a missing row once, then warn."""
        return await self._write(record, status, None, fields)

    async def _write(
        self,
        record: RunRecord,
        status: RunStatus,
        error: str | None,
        fields: dict[str, Any] | None,
    ) -> bool:
        """One conditional write of a status change, whose answer updates the record. A
        final write that fails is kept and retried in the background (``unsaved``)."""
        store = self.store
        if store is None:
            return True
        if not self.may_write(record):
            await self._adopt_stored(record)
            return False
        try:
            return await self._land(record, status, error, fields)
        except ConflictError as exc:
            if status is not RunStatus.running:
                raise
            await self._refuse_start(record, exc)
            return False
        except Exception as exc:
            if status.is_final:
                self.unsaved.keep(record, exc)
            else:
                record.durable = False
                self.log.exception("Gave up persisting %s for run %s", status.value, record.run_id)
            return False

    async def _refuse_start(self, record: RunRecord, exc: ConflictError) -> None:
        """The store refused to start the run: its thread has another running run (on
        another worker). The run does not execute: it ends ``error`` and its graph stops."""
        self.log.warning("Run %s could not start: %s", record.run_id, exc.message)
        record.abort_action = CancelAction.interrupt.value
        record.abort_event.set()
        await self.complete(record, RunStatus.error, {"error": f"ConflictError: {exc.message}"})
        if record.task is not None and not record.task.done():
            record.task.cancel()

    async def _adopt_stored(self, record: RunRecord) -> None:
        """A fenced run (another worker took it over): show what the store holds. While the
        run is active elsewhere the record is forgotten, so reads go to the store."""
        store = self.store
        assert store is not None
        try:
            stored = await self.retrying(lambda: store.get_status(record.run_id))
        except Exception as exc:
            self.log.warning("Could not read fenced run %s: %s", record.run_id, exc)
            return
        if stored is None:
            return
        self.adopt(record, stored)
        if not record.is_final:
            self.forget(record.run_id)

    async def _land(
        self,
        record: RunRecord,
        status: RunStatus,
        error: str | None,
        fields: dict[str, Any] | None,
    ) -> bool:
        """Write once (with the retry policy) and adopt the answer; raise when the store
        cannot be written. True when the store applied the change."""
        store = self.store
        assert store is not None
        run_id = record.run_id
        kind = "Status" if fields is None else "Completion"

        # an owner's own end yields to a cancel a peer recorded first (the cancel wins)
        yields = status in _YIELDING and not record.store_only and bool(self.on_cancel_requested)
        # passed only when set, so a store that overrides write_status without it still works
        guard = {"yield_to_cancel": True} if yields else {}

        def write() -> Awaitable[StatusWrite]:
            return store.write_status(run_id, status.value, error=error, fields=fields, **guard)

        answer = await self.retrying(write)
        if answer.stored is None:
            self.log.warning(
                "%s update for run %s affected no rows; re-creating the row", kind, run_id
            )
            await self.put_record(record)
            record.durable = True
            if fields is None:
                return True  # the row was written from the record, status and all
            answer = await self.retrying(write)
            if answer.stored is None:
                self.log.warning(
                    "Completion update for run %s affected no rows after row recreation",
                    run_id,
                )
                return False
        stored_status = answer.stored.get("status")
        if (
            not answer.applied
            and yields
            and stored_status not in FINAL_STATUS_VALUES
            and answer.stored.get("cancel_requested_at")
        ):
            self.adopt(record, answer.stored)
            self._cancel_as_requested(record, answer.stored.get("cancel_action"))
            return False
        if not answer.applied:
            self.log.warning(
                "Run %s is %s in the store, which refused %s: the record now shows the store's",
                run_id,
                stored_status,
                status.value,
            )
            if status.is_final and fields:
                answer = await self._keep_results(run_id, answer, fields)
        record.durable = True
        assert answer.stored is not None
        self.adopt(record, answer.stored)
        return answer.applied

    def _cancel_as_requested(self, record: RunRecord, action: str | None) -> None:
        self.log.info(
            "Run %s ends as cancelled (%s): a cancel request stood when it completed",
            record.run_id,
            action,
        )
        assert self.on_cancel_requested is not None
        # a task of its own: a rollback waits for the run's task, which may be this one
        self.spawn(self.on_cancel_requested(record.run_id, action or CancelAction.interrupt.value))

    def spawn(self, work: Awaitable[Any]) -> None:
        """Run ``work`` as a background task that shutdown waits for."""
        task = asyncio.ensure_future(work)
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    async def _keep_results(
        self, run_id: str, refused: StatusWrite, fields: Mapping[str, Any]
    ) -> StatusWrite:
        """Write a run's own results (tokens, calls, messages) onto the end another process
        stored first (a cancel, a recovery): that end stands, and the numbers stay true."""
        store = self.store
        assert store is not None and refused.stored is not None
        results = {name: value for name, value in fields.items() if name in RESULT_FIELDS}
        stored_status = refused.stored.get("status")
        if not results or stored_status not in FINAL_STATUS_VALUES:
            return refused
        try:
            kept = await self.retrying(
                lambda: store.write_status(run_id, stored_status, fields=results)
            )
        except Exception as exc:
            self.log.warning("Could not keep the results of run %s: %s", run_id, exc)
            return refused
        return StatusWrite(applied=False, stored=kept.stored or refused.stored)

    async def land_final(self, record: RunRecord) -> None:
        """Write an ended record's whole final state (the background retry's write)."""
        fields = {name: getattr(record, name) for name in COMPLETION_FIELDS}
        if not await self._land(record, record.status, None, fields):
            if record.durable:
                return  # the store holds another end, which the record now shows
            raise RuntimeError(f"the row of run {record.run_id!r} could not be re-created")

    async def settle_thread(self, thread_id: str) -> bool:
        """Write now the unsaved final writes of ``thread_id``'s runs (their rows still read
        active); True when there were some and all landed, so admission can look again."""
        owed = self.unsaved.for_thread(thread_id)
        return bool(owed) and await self.unsaved.land_now(owed)

    def adopt(self, record: RunRecord, stored: Mapping[str, Any]) -> None:
        """Make ``record`` hold the store's status fields (``STATUS_FIELDS``). A live run
        the store has already ended (another process finished or recovered it) is asked
        to stop."""
        was_final = record.is_final
        status = stored["status"]
        if status and status != record.status.value:  # NULL: a row another tool wrote
            record.status = RunStatus(status)
        record.error = stored["error"]
        record.stop_reason = stored["stop_reason"]
        record.started_at = stored["started_at"]
        record.ended_at = stored["ended_at"]
        record.updated_at = stored["updated_at"]
        record.cancel_requested_at = stored.get("cancel_requested_at")
        record.cancel_action = stored.get("cancel_action")
        if was_final and not record.is_final:  # an end the store refused: still active
            self.live[record.run_id] = record
        if record.is_final and not was_final:
            self.live.pop(record.run_id, None)
            self.on_change()
            if record.task is not None and not record.task.done():
                record.abort_action = CancelAction.interrupt.value
                record.abort_event.set()

    async def end_orphan(self, record: RunRecord, error: str) -> bool:
        """End a store-only run that nobody executes as ``error`` with stop_reason
        ``orphan_recovered``; True once the store holds it. A run that ended meanwhile, or
        whose row is gone, is left as it is."""
        store = self.store
        assert store is not None
        run_id = record.run_id

        def mark_error() -> Awaitable[StatusWrite]:
            # only from an active row: a run another process ended (or recovered) first is
            # no match, so exactly one recoverer reports it
            return store.write_status(
                run_id, RunStatus.error.value, error=error, only_from_active=True
            )

        def mark_orphaned() -> Awaitable[StatusWrite]:
            return store.write_status(
                run_id, RunStatus.error.value, fields={"stop_reason": "orphan_recovered"}
            )

        try:
            answer = await self.retrying(mark_error)
        except Exception:
            self.log.exception("Could not mark orphaned run %s as error", run_id)
            return False
        if not answer.applied or answer.stored is None:
            return False
        self.adopt(record, answer.stored)
        # a second write: the status goes through update_status alone, which stores that
        # inject faults override (the reference contract's), and it carries no stop_reason
        try:
            answer = await self.retrying(mark_orphaned)
        except Exception:
            self.log.exception("Could not record stop_reason for orphaned run %s", run_id)
            record.stop_reason = "orphan_recovered"
        else:
            if answer.stored is not None:
                self.adopt(record, answer.stored)
        return True

    # -- records --------------------------------------------------------------------------

    def evict_expired(self) -> None:
        now = asyncio.get_running_loop().time()
        while self._evictions and self._evictions[0][0] <= now:
            _, run_id = self._evictions.popleft()
            record = self.records.get(run_id)
            if record is None or not record.is_final or not record.durable:
                continue  # an unsaved record is queued again once its write lands
            if record.task is not None and not record.task.done():
                # its graph task is still unwinding: evict once it is done
                record.task.add_done_callback(functools.partial(self._forget_if_same, record))
                continue
            self.forget(run_id)

    def _forget_if_same(self, record: RunRecord, _task: object = None) -> None:
        if self.records.get(record.run_id) is record:
            self.forget(record.run_id)

    def schedule_eviction(self, record: RunRecord) -> None:
        deadline = asyncio.get_running_loop().time() + self.retain_finished_for
        self._evictions.append((deadline, record.run_id))
        self.evict_expired()

    async def lookup(self, run_id: str) -> RunRecord:
        """The live record, or a store-only snapshot; RunNotFoundError when neither exists."""
        record = self.records.get(run_id)
        if record is not None:
            return record
        if self.store is not None:
            row = await self.retrying(lambda: self.store.get(run_id))  # type: ignore[union-attr]
            if row is not None:
                return RunRecord.from_row(row)
        raise RunNotFoundError(f"no run with run_id {run_id!r}", run_id=run_id)

    def hold(self, record: RunRecord) -> None:
        self.records[record.run_id] = record
        self.live[record.run_id] = record
        self._by_thread.setdefault(record.thread_id, {})[record.run_id] = record
        if record.status is RunStatus.running:
            self.on_change()

    def forget(self, run_id: str) -> None:
        record = self.records.pop(run_id, None)
        self.live.pop(run_id, None)
        if record is not None:
            same_thread = self._by_thread.get(record.thread_id)
            if same_thread is not None:
                same_thread.pop(run_id, None)
                if not same_thread:
                    del self._by_thread[record.thread_id]

    def thread_records(self, thread_id: str) -> list[RunRecord]:
        """The records this manager holds for one thread, in creation order."""
        held = self._by_thread.get(thread_id, {})
        return [r for r in held.values() if self.records.get(r.run_id) is r]

    def apply_status(self, record: RunRecord, status: RunStatus, error: str | None) -> None:
        if status.is_final:
            self.live.pop(record.run_id, None)
        now = self.clock()
        record.status = status
        record.updated_at = now
        if status == RunStatus.running and record.started_at is None:
            record.started_at = now
        if status.is_final and record.ended_at is None:
            record.ended_at = now
        if error is not None:
            record.error = storable_text(error)
        if status is RunStatus.running or status.is_final:
            self.on_change()

    async def transition(self, record: RunRecord, status: RunStatus, error: str | None) -> None:
        if not check_transition(record.status, status, run_id=record.run_id):
            return
        self.apply_status(record, status, error)
        await self.persist_status(record, status, error)
        if record.is_final and not record.store_only:
            self.schedule_eviction(record)

    async def mark_running(self, record: RunRecord) -> None:
        """Start a pending live run (the tracker calls this when the graph starts)."""
        if record.status is RunStatus.pending:
            await self.transition(record, RunStatus.running, None)

    async def complete(self, record: RunRecord, status: RunStatus, fields: dict[str, Any]) -> None:
        check_transition(record.status, status, run_id=record.run_id)
        fields = storable_fields(fields, JSON_FIELDS)  # the record reads as the row will
        for name, value in fields.items():
            setattr(record, name, value)
        self.apply_status(record, status, None)
        persisted = dict(fields)
        if status.is_final:
            persisted.setdefault("ended_at", record.ended_at)
        if record.started_at is not None:
            persisted.setdefault("started_at", record.started_at)
        await self.persist_completion(record, status, persisted)
        if record.is_final and not record.store_only:
            self.on_final(record)
            self.schedule_eviction(record)

    async def flush_progress(self, record: RunRecord, **fields: Any) -> None:
        """Write a running run's counters so far (the tracker calls this every few seconds)."""
        if record.status is not RunStatus.running:
            return
        check_completion_fields(record.run_id, fields)
        fields = storable_fields(fields, JSON_FIELDS)
        for name, value in fields.items():
            setattr(record, name, value)
        await self.persist_completion(record, RunStatus.running, fields)

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
        if record.is_final:
            return False
        if error is not None:
            fields["error"] = error
        if stop_reason is not None:
            fields["stop_reason"] = stop_reason
        check_completion_fields(record.run_id, fields)
        await self.complete(record, status, fields)
        return True


__all__ = [
    "RESULT_FIELDS",
    "PersistenceRetryPolicy",
    "RunLifecycle",
    "check_completion_fields",
    "is_transient_error",
]
