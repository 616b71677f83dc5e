"""RunLifecycle: the live records of a process's runs, their status transitions, and their
persistence. It is the only writer of run status and timestamps.

The store is the truth. Every status change is one conditional write
(``RunStore.write_status``) whose answer, the row's status fields as stored, updates the
live record; a change the store refuses (another process ended the run) leaves the record
showing what the store holds, with a warning and no traceback. Store writes are retried on
transient lock, serialisation and connection errors (``PersistenceRetryPolicy``); a row
that went missing is re-created from the live record; a permanent failure is logged with
the run id and never crashes the caller. Records of finished runs stay for
``retain_finished_for`` seconds, then only the store has them.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import sqlite3
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy.exc import DBAPIError
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential

from langgraph_runstore.durability import BackgroundRetryPolicy, UnsavedFinalWrites
from langgraph_runstore.errors import InvalidInputError, RunNotFoundError
from langgraph_runstore.query import FINAL_STATUS_VALUES
from langgraph_runstore.schemas import (
    COMPLETION_FIELDS,
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

_TRANSIENT_SQLSTATES = frozenset({"40001", "40P01"})
# class 08: connection exceptions; 57P01-57P03: the server is shutting down or restarting
_CONNECTION_SQLSTATE_PREFIXES = ("08", "57P0")
# asyncpg's errors for a connection that closed under us (matched by name: asyncpg is
# optional). InternalClientError is what asyncpg raises on a connection whose protocol
# state a cut left inconsistent ("cannot switch to state 12"): a fresh connection succeeds.
_LOST_CONNECTION_ERRORS = frozenset(
    {"ConnectionDoesNotExistError", "InterfaceError", "InternalClientError"}
)
#: What a run itself measured: true whoever wrote its end (see ``RunLifecycle._keep_results``)
RESULT_FIELDS = frozenset(
    {
        *TOKEN_FIELDS,
        "token_usage_by_model",
        "llm_call_count",
        "calls_without_usage",
        "message_count",
        "last_ai_message",
        "first_human_message",
        "model_name",
    }
)


@dataclass(frozen=True)
class PersistenceRetryPolicy:
    """How store writes are retried on transient errors (locks, serialisation failures).

    Attempt ``n`` waits ``initial_delay * multiplier ** (n - 1)`` seconds, capped at
    ``max_delay``. Permanent errors are never retried.
    """

    max_attempts: int = 5
    initial_delay: float = 0.05
    max_delay: float = 2.0
    multiplier: float = 2.0

    def __post_init__(self) -> None:
        if not isinstance(self.max_attempts, int) or self.max_attempts < 1:
            raise InvalidInputError(f"max_attempts must be an int >= 1, got {self.max_attempts!r}")
        for name in ("initial_delay", "max_delay"):
            if getattr(self, name) < 0:
                raise InvalidInputError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        if self.multiplier < 1:
            raise InvalidInputError(f"multiplier must be >= 1, got {self.multiplier!r}")


def is_transient_error(exc: BaseException) -> bool:
    """True for errors worth retrying: a locked SQLite file, SQLSTATE 40001/40P01, a lost
    connection. Walks SQLAlchemy's ``orig`` and the ``__cause__`` chain."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, DBAPIError) and current.connection_invalidated:
            return True
        sqlstate = getattr(current, "sqlstate", None) or getattr(current, "pgcode", None)
        if isinstance(sqlstate, str) and (
            sqlstate in _TRANSIENT_SQLSTATES or sqlstate.startswith(_CONNECTION_SQLSTATE_PREFIXES)
        ):
            return True
        if type(current).__name__ in _LOST_CONNECTION_ERRORS:
            return True
        if isinstance(current, sqlite3.OperationalError):
            message = str(current).lower()
            if "locked" in message or "busy" in message:
                return True
        if isinstance(current, (ConnectionError, TimeoutError)):
            return True
        current = getattr(current, "orig", None) or current.__cause__
    return False


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
    ``on_change()`` runs when a held record starts running or ends.
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
    ) -> None:
        self.store = store
        self.retry_policy = retry_policy
        self.retain_finished_for = retain_finished_for
        self.clock = clock
        self.log = log or logging.getLogger(__name__)
        self.on_final = on_final
        self.on_change = on_change
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
        # the first attempt runs bare: building a tenacity controller per store write would
        # cost more than the write itself, and nearly every write succeeds first time
        policy = self.retry_policy
        try:
            return await call()
        except Exception as exc:
            if policy.max_attempts == 1 or not is_transient_error(exc):
                raise
            self.log.debug("Transient store error, retrying: %s", exc)
        await asyncio.sleep(min(policy.initial_delay, policy.max_delay))
        retrying = AsyncRetrying(
            stop=stop_after_attempt(policy.max_attempts - 1),
            # continues the series: initial_delay * multiplier, * multiplier ** 2, ...
            wait=wait_exponential(
                multiplier=policy.initial_delay * policy.multiplier,
                max=policy.max_delay,
                exp_base=policy.multiplier,
            ),
            retry=retry_if_exception(is_transient_error),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                return await call()
        raise AssertionError("unreachable: tenacity reraises the last error")  # pragma: no cover

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
        if store is None or not self.may_write(record):
            return store is None
        try:
            return await self._land(record, status, error, fields)
        except Exception as exc:
            if status.is_final:
                self.unsaved.keep(record, exc)
            else:
                record.durable = False
                self.log.exception("Gave up persisting %s for run %s", status.value, record.run_id)
            return False

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

        def write() -> Awaitable[StatusWrite]:
            return store.write_status(run_id, status.value, error=error, fields=fields)

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
        if not answer.applied:
            self.log.warning(
                "Run %s is %s in the store, which refused %s: the record now shows the store's",
                run_id,
                answer.stored.get("status"),
                status.value,
            )
            if status.is_final and fields:
                answer = await self._keep_results(run_id, answer, fields)
        record.durable = True
        assert answer.stored is not None
        self.adopt(record, answer.stored)
        return answer.applied

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
            return store.write_status(run_id, RunStatus.error.value, error=error)

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
