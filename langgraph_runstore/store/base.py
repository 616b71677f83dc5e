"""The RunStore interface: the few persistence primitives a RunManager needs, on dict rows.

A row is a plain dict keyed by the names in ``schemas.ROW_FIELDS``; ``status`` and
``on_disconnect`` are strings (status may be None in rows written by other tools).
Implementations enforce the status lifecycle too: an update that would change a final
status raises InvalidTransitionError instead of writing.
"""

from __future__ import annotations

import asyncio
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from langgraph_runstore.errors import (
    ActiveRunError,
    ConflictError,
    IdempotencyKeyError,
    InvalidInputError,
    InvalidTransitionError,
)
from langgraph_runstore.query import FINAL_STATUS_VALUES, PruneResult, RunPage, UsageRow
from langgraph_runstore.schemas import (
    ACTIVE_STATUSES,
    COMPLETION_FIELDS,
    JSON_FIELDS,
    ROW_FIELDS,
    RunStatus,
    ensure_json,
    normalize_timestamp,
    now_iso,
    resolve_token_aliases,
)
from langgraph_runstore.text import storable_fields
from langgraph_runstore.validate import check_depth

_PUT_FIELDS = frozenset(ROW_FIELDS) - {"run_id", "thread_id"}
_TIMESTAMP_FIELDS = (
    "created_at",
    "updated_at",
    "started_at",
    "ended_at",
    "lease_expires_at",
    "cancel_requested_at",
)


#: The columns a status write answers with: what a status change may have set.
STATUS_FIELDS = (
    "status",
    "error",
    "stop_reason",
    "started_at",
    "ended_at",
    "updated_at",
    "cancel_requested_at",
    "cancel_action",
)


@dataclass(frozen=True)
class StatusWrite:
    """A store's answer to one status change.

    ``applied`` says whether the change was written. ``stored`` holds the row's
    ``thread_id`` and ``STATUS_FIELDS`` as the store keeps them after the write: the new
    values when it applied, the final status that refused it otherwise. ``stored`` is None
    when no row has the run_id.
    """

    applied: bool
    stored: Mapping[str, Any] | None


@dataclass(frozen=True)
class StatusGuard:
    """Extra conditions on one status write. ``only_from_active``: apply only to a pending
    or running row (a takeover: ending an already ended run is no match, not a no-op).
    ``yield_to_cancel``: do not apply while a cancel request stands on the row (an owner's
    completion loses to a peer's accepted cancel)."""

    only_from_active: bool = False
    yield_to_cancel: bool = False


@dataclass(frozen=True)
class KeyedInsert:
    """A store's answer to ``insert_keyed``. ``inserted``: the new row was written.
    ``existing``: the row that already held the idempotency key (nothing was written).
    Neither: the thread was busy (``only_if_thread_idle``), nothing was written."""

    inserted: bool
    existing: Mapping[str, Any] | None = None


#: how often ``insert_keyed`` reads again after losing the key to a writer that then
#: deleted its run, before it gives up
_KEYED_ATTEMPTS = 5


class RunStore(ABC):
    """Durable storage of run rows. All methods are coroutines; rows are dicts."""

    #: the event loop whose connections the store uses (SQL stores: the loop ``setup()``
    #: ran on), None when any loop will do; callbacks on other threads write through it
    home_loop: asyncio.AbstractEventLoop | None = None

    @abstractmethod
    async def put(self, run_id: str, *, thread_id: str, **fields: Any) -> None:
        """Insert the run, or replace every given field of an existing one (idempotent)."""

    async def insert(self, run_id: str, *, thread_id: str, **fields: Any) -> None:
        """Insert a new run; InvalidInputError when ``run_id`` already names a run (a run_id
        names exactly one run). Fields left out hold the table's defaults.

        This default reads, then ``put``s; a store that can insert conditionally in one
        step overrides it."""
        if await self.get(run_id) is not None:
            raise InvalidInputError(
                f"run_id {run_id!r} already names a run: a run_id names exactly one run",
                run_id=run_id,
                thread_id=thread_id,
            )
        await self.put(run_id, thread_id=thread_id, **fields)

    @abstractmethod
    async def get(self, run_id: str) -> dict[str, Any] | None:
        """The row of ``run_id``, or None."""

    @abstractmethod
    async def delete(self, run_id: str) -> bool:
        """Delete the row; return whether one existed."""

    @abstractmethod
    async def list_by_thread(
        self, thread_id: str, *, user_id: str | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        """Rows of one thread, newest first; equal created_at keep insertion order."""

    @abstractmethod
    async def update_status(self, run_id: str, status: str, *, error: str | None = None) -> bool:
        """Set the status (and error); return False when no row has that run_id.

        Also stamps updated_at, started_at on entering running and ended_at on entering a
        final status. Raises InvalidTransitionError when the row's status forbids the change.
        """

    @abstractmethod
    async def update_run_completion(self, run_id: str, *, status: str, **kwargs: Any) -> bool:
        """Write the final status with counters and messages; False when the row is missing.

        ``kwargs`` are fields from ``schemas.COMPLETION_FIELDS``.
        """

    async def write_status(
        self,
        run_id: str,
        status: str,
        *,
        error: str | None = None,
        fields: Mapping[str, Any] | None = None,
        only_from_active: bool = False,
        yield_to_cancel: bool = False,
    ) -> StatusWrite:
        """Change the status (with the completion ``fields`` when given) as one conditional
        write, and answer with what the store holds afterwards. This is the call a
        RunManager makes for every status change; ``only_from_active`` and
        ``yield_to_cancel`` add the conditions of ``StatusGuard``.

        A change the row's status forbids is not an error here: the answer has
        ``applied=False`` and the row's final status. This default composes
        ``update_status``/``update_run_completion`` with ``get_status``; a store that can
        answer from the write itself (``UPDATE ... RETURNING``) overrides it.
        """
        if only_from_active or yield_to_cancel:
            current = await self.get_status(run_id)  # a missing row: the write reports it
            if current is not None and (
                (only_from_active and current.get("status") in FINAL_STATUS_VALUES)
                or (yield_to_cancel and current.get("cancel_requested_at"))
            ):
                return StatusWrite(applied=False, stored=current)
        try:
            if fields is None:
                applied = await self.update_status(run_id, status, error=error)
            else:
                applied = await self.update_run_completion(run_id, status=status, **fields)
        except InvalidTransitionError:
            applied = False
        else:
            if not applied:
                return StatusWrite(applied=False, stored=None)
        stored = await self.get_status(run_id)
        return StatusWrite(applied=bool(applied) and stored is not None, stored=stored)

    async def get_status(self, run_id: str) -> Mapping[str, Any] | None:
        """The row's ``STATUS_FIELDS`` (and ``thread_id``), or None when there is no row.
        This default reads the whole row with ``get``."""
        row = await self.get(run_id)
        if row is None:
            return None
        return {name: row.get(name) for name in ("thread_id", *STATUS_FIELDS)}

    @abstractmethod
    async def insert_if_thread_idle(self, run_id: str, *, thread_id: str, **fields: Any) -> bool:
        """Insert a new run only if its thread has no pending or running run, atomically.

        Returns False (writing nothing) when the thread is busy. This is ``reject`` admission:
        two processes racing on one thread never both get an active run.
        """

    async def get_by_idempotency_key(self, idempotency_key: str) -> dict[str, Any] | None:
        """The row whose ``idempotency_key`` is this one, or None."""
        raise NotImplementedError(f"{type(self).__name__} does not support idempotency keys")

    async def insert_keyed(
        self,
        run_id: str,
        *,
        thread_id: str,
        idempotency_key: str,
        only_if_thread_idle: bool = False,
        **fields: Any,
    ) -> KeyedInsert:
        """Insert a new run under ``idempotency_key``, or answer with the row that already
        holds it (writing nothing). With ``only_if_thread_idle`` it is ``reject`` admission
        too: a busy thread writes nothing, unless the key's own run is what keeps it busy
        (that run is the answer then).

        Atomic across processes: the key is unique in the store, so of two writers racing
        with one key exactly one inserts, and the other reads the winner's row back. This
        default composes ``get_by_idempotency_key`` with ``insert``/``insert_if_thread_idle``,
        which must refuse a key another run holds (IdempotencyKeyError).
        """
        for _ in range(_KEYED_ATTEMPTS):
            existing = await self.get_by_idempotency_key(idempotency_key)
            if existing is not None:
                return KeyedInsert(inserted=False, existing=existing)
            try:
                if not only_if_thread_idle:
                    await self.insert(
                        run_id, thread_id=thread_id, idempotency_key=idempotency_key, **fields
                    )
                    return KeyedInsert(inserted=True)
                if await self.insert_if_thread_idle(
                    run_id, thread_id=thread_id, idempotency_key=idempotency_key, **fields
                ):
                    return KeyedInsert(inserted=True)
            except IdempotencyKeyError:
                continue  # a writer took the key after our read: read its row
            # busy: perhaps with the key's own run, which another writer just inserted
            existing = await self.get_by_idempotency_key(idempotency_key)
            return KeyedInsert(inserted=False, existing=existing)
        raise ConflictError(
            f"idempotency_key {idempotency_key!r} was taken and released {_KEYED_ATTEMPTS} "
            f"times while run {run_id!r} was being admitted: try again",
            run_id=run_id,
            thread_id=thread_id,
        )

    async def delete_run(self, run_id: str, *, include_checkpoints: bool = True) -> bool:
        """Delete one finished run and, unless ``include_checkpoints=False``, the checkpoints
        it wrote where this store keeps them (``prune_runs``'s path, for one run). Returns
        False when there is no such row; ActiveRunError, deleting nothing, for a pending or
        running one. This default reads, then ``delete``s (it keeps no checkpoints)."""
        row = await self.get_status(run_id)
        if row is None:
            return False
        refuse_active(run_id, row)
        return await self.delete(run_id)

    @abstractmethod
    async def list_inflight(
        self, *, before: str | None = None, thread_id: str | None = None
    ) -> list[dict[str, Any]]:
        """Rows whose status is pending, running or NULL, oldest first.

        ``before`` keeps rows created strictly before that timestamp.
        """

    # -- several workers (optional: only worker mode of RunManager calls these) ----------

    async def claim_next(
        self, *, worker_id: str, assistant_ids: Sequence[str], lease_expires_at: str
    ) -> dict[str, Any] | None:
        """Atomically take the oldest claimable shared-queue run and mark it running.

        Claimable: pending, ``shared_queue``, unowned, of one of ``assistant_ids``, the pending
        run of its thread admitted first (lowest ``seq``), and its thread has no running run.
        Returns the claimed row (now running, owned by ``worker_id``, attempt + 1) or None.
        """
        raise NotImplementedError(f"{type(self).__name__} does not support several workers")

    async def renew_leases(
        self, *, worker_id: str, run_ids: Sequence[str], lease_expires_at: str
    ) -> list[dict[str, Any]]:
        """Extend the leases of the active runs ``worker_id`` owns and holds (``run_ids``),
        in one statement.

        Returns those runs' ``run_id``, ``cancel_requested_at`` and ``cancel_action``: a run
        the worker holds but that is missing here has been taken from it. Rows the worker
        owns but does not hold (a claim whose answer was lost) are left to expire, so the
        recovery sweep can hand them on.
        """
        raise NotImplementedError(f"{type(self).__name__} does not support several workers")

    async def request_cancel(self, run_id: str, *, action: str) -> dict[str, Any] | None:
        """Record a durable cancel request on an active run (and notify its owner). The
        first request stands: a later one keeps its time and action.

        Returns the run's ``owner_worker_id``, ``lease_expires_at`` and the standing
        ``cancel_action``, or None when the run is not active (finished, or unknown).
        """
        raise NotImplementedError(f"{type(self).__name__} does not support several workers")

    async def recover_expired(
        self,
        run_id: str,
        *,
        expired_before: str,
        requeue: bool,
        error: str,
        seen: Mapping[str, Any] | None = None,
    ) -> str | None:
        """Take over an active run whose lease expired before ``expired_before``.

        A compare-and-set: ``seen`` is the ``owner_worker_id`` and ``lease_expires_at`` the
        caller read (say, from ``list_expired``), and the run is taken only if they are
        still what the row holds, so a renewal or another worker's takeover in between
        wins. With ``requeue`` the run goes back to the shared queue as pending and
        unowned; otherwise it ends ``error`` with stop_reason ``orphan_recovered``. Returns
        the new status, or None when the lease was renewed, taken or the run ended.
        """
        raise NotImplementedError(f"{type(self).__name__} does not support several workers")

    async def list_expired(self, *, expired_before: str) -> list[dict[str, Any]]:
        """Active, owned runs whose lease expired before ``expired_before``, oldest first."""
        raise NotImplementedError(f"{type(self).__name__} does not support several workers")

    async def record_worker(
        self,
        worker_id: str,
        *,
        host: str,
        pid: int,
        assistants: Sequence[str],
        lease_seconds: float,
        started_at: str,
    ) -> None:
        """Write the worker's row of the fleet, with ``heartbeat_at`` now (its heartbeat)."""
        raise NotImplementedError(f"{type(self).__name__} does not support several workers")

    async def list_workers(self) -> list[dict[str, Any]]:
        """The fleet: each worker's row, with ``held``, how many active runs it owns."""
        raise NotImplementedError(f"{type(self).__name__} does not support several workers")

    async def remove_workers(self, *, worker_id: str | None = None, stale_before: str = "") -> int:
        """Remove ``worker_id``'s row (it stopped), or the rows whose heartbeat is older than
        ``stale_before``; returns how many went."""
        raise NotImplementedError(f"{type(self).__name__} does not support several workers")

    async def release_leases(self, *, worker_id: str) -> int:
        """Give up ``worker_id``'s leases on active runs (shutdown); shared-queue runs that
        have not started go back to the queue. Returns how many rows changed."""
        raise NotImplementedError(f"{type(self).__name__} does not support several workers")

    async def setup(self) -> None:  # noqa: B027 - optional hook, a no-op by default
        """Prepare the storage (create or migrate tables). Idempotent."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook, a no-op by default
        """Release connections the store owns."""

    # -- reading and retention: optional, MemoryRunStore and SQLRunStore implement them ----

    async def list_runs(
        self,
        *,
        thread_id: str | None = None,
        status: str | RunStatus | Iterable[str | RunStatus] | None = None,
        user_id: str | None = None,
        since: str | datetime | timedelta | None = None,
        until: str | datetime | timedelta | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> RunPage[dict[str, Any]]:
        """One page of rows, newest first (equal created_at in insertion order).

        Filters combine with AND: ``status`` is one status or several; ``since`` (inclusive)
        and ``until`` (exclusive) bound created_at and take a datetime, an ISO-8601 string,
        a timedelta or a duration such as ``"7d"``. Pass the page's ``next_cursor`` as
        ``cursor`` for the next page (keyset pagination: stable while runs are added).
        """
        raise NotImplementedError(f"{type(self).__name__} does not support list_runs")

    async def aggregate_usage(
        self,
        *,
        by: str = "model",
        since: str | datetime | timedelta | None = None,
        until: str | datetime | timedelta | None = None,
        thread_id: str | None = None,
        user_id: str | None = None,
    ) -> list[UsageRow]:
        """Token totals, run counts by status, error rate and LLM calls per group.

        ``by`` is ``"model"`` (from token_usage_by_model), ``"thread"``, ``"user"`` or
        ``"day"`` (UTC day of created_at). Days come in calendar order, other groups by
        total tokens, largest first.
        """
        raise NotImplementedError(f"{type(self).__name__} does not support aggregate_usage")

    async def top_runs(
        self,
        *,
        by: str = "duration",
        since: str | datetime | timedelta | None = None,
        until: str | datetime | timedelta | None = None,
        limit: int = 10,
        user_id: str | None = None,
    ) -> list[dict[str, Any]]:
        """The longest runs (``by="duration"``, finished runs) or those with the most tokens;
        with ``user_id``, of that user only."""
        raise NotImplementedError(f"{type(self).__name__} does not support top_runs")

    async def prune_runs(
        self,
        *,
        older_than: str | datetime | timedelta,
        include_checkpoints: bool = True,
        dry_run: bool = False,
        on_progress: Callable[[int], None] | None = None,
        max_batch: int = 2000,
    ) -> PruneResult:
        """Delete finished runs created before ``older_than`` (``"30d"``, a timedelta, or a
        timestamp), and the checkpoints they wrote unless ``include_checkpoints=False``.

        Pending and running runs are never touched. Deletes in batches, each a short write
        (on SQLite the write lock is held for tens of milliseconds at a time);
        ``on_progress(n)`` is called after each batch. ``dry_run`` only counts.
        """
        raise NotImplementedError(f"{type(self).__name__} does not support prune_runs")

    async def run_checkpoints(self, run_id: str) -> list[dict[str, Any]]:
        """The checkpoints the run wrote (thread_id, checkpoint_ns, checkpoint_id,
        parent_checkpoint_id, step, source, metadata); empty where the store keeps none."""
        return []


def refuse_active(run_id: str, row: Mapping[str, Any]) -> None:
    """ActiveRunError when the row is pending or running (or has no status): a run that
    may still write checkpoints is not deleted."""
    status = row.get("status")
    if status is None or status in ACTIVE_STATUS_VALUES:
        raise ActiveRunError(
            f"run {run_id!r} is {status or 'without a status'}: only a finished run can be "
            "deleted (cancel it first, or wait for its end)",
            run_id=run_id,
            thread_id=row.get("thread_id"),
        )


def prepare_row(
    run_id: str, thread_id: str, fields: dict[str, Any], *, check_json: bool = True
) -> dict[str, Any]:
    """Validate a row for ``put``: known fields, JSON values, a thread_id, normalized times.

    A store that encodes the JSON fields itself passes ``check_json=False`` and reports a
    value that does not encode (see ``encode_json``), so each value is serialised once.
    """
    if not isinstance(run_id, str) or not run_id:
        raise InvalidInputError(f"run_id must be a non-empty string, got {run_id!r}")
    if not isinstance(thread_id, str) or not thread_id:
        raise InvalidInputError(
            f"thread_id must be a non-empty string, got {thread_id!r}", run_id=run_id
        )
    unknown = () if _PUT_FIELDS.issuperset(fields) else set(fields) - _PUT_FIELDS
    if unknown:
        raise InvalidInputError(
            f"unknown run field(s) {sorted(unknown)} for run {run_id!r}: "
            f"expected some of {sorted(_PUT_FIELDS)}",
            run_id=run_id,
        )
    for name in JSON_FIELDS:
        check_depth(fields.get(name), name=name, run_id=run_id)  # before any walk of it
    row = storable_fields(fields, JSON_FIELDS)
    row["run_id"] = run_id
    row["thread_id"] = thread_id
    status = row.get("status", RunStatus.pending.value)
    row["status"] = None if status is None else RunStatus.parse(status, run_id=run_id).value
    if "on_disconnect" in row and row["on_disconnect"] is not None:
        row["on_disconnect"] = str(getattr(row["on_disconnect"], "value", row["on_disconnect"]))
    for name in JSON_FIELDS if check_json else ():
        if row.get(name) is not None:
            ensure_json(row[name], name=name, run_id=run_id)
    for name in _TIMESTAMP_FIELDS:
        if name in row:
            row[name] = normalize_timestamp(row[name], name=name)
    row["created_at"] = row.get("created_at") or now_iso()
    row["updated_at"] = row.get("updated_at") or row["created_at"]
    return row


def prepare_completion(
    run_id: str, status: Any, kwargs: Mapping[str, Any], *, check_json: bool = True
) -> tuple[str, dict[str, Any]]:
    """Validate ``update_run_completion`` arguments; return the status string and fields.
    deer-flow's ``total_input_tokens``/``total_output_tokens`` are taken for ours."""
    kwargs = resolve_token_aliases(kwargs, run_id=run_id)
    unknown = () if COMPLETION_FIELDS.issuperset(kwargs) else set(kwargs) - COMPLETION_FIELDS
    if unknown:
        raise InvalidInputError(
            f"unknown completion field(s) {sorted(unknown)} for run {run_id!r}: "
            f"expected some of {sorted(COMPLETION_FIELDS)}",
            run_id=run_id,
        )
    parsed = RunStatus.parse(status, run_id=run_id)
    fields = storable_fields(kwargs, JSON_FIELDS)
    for name in ("token_usage_by_model", "usage_by_node", "llm_call_ms"):
        value = fields.get(name)
        if check_json and value is not None and not _is_usage_shaped(value):
            ensure_json(value, name=name, run_id=run_id)
    if check_json and fields.get("interrupts") is not None:
        ensure_json(fields["interrupts"], name="interrupts", run_id=run_id)
    for name in ("started_at", "ended_at"):
        if name in fields:
            fields[name] = normalize_timestamp(fields[name], name=name)
    return parsed.value, fields


_PLAIN = (int, float, str, type(None))


def _is_usage_shaped(value: Any) -> bool:
    """Whether ``value`` is ``{key: {field: number | text | None}}`` or ``{key: [number]}``,
    the shapes trackers write: JSON by construction (finite numbers), so it need not be
    serialised just to be checked."""
    if type(value) is not dict:
        return False
    for key, counts in value.items():
        if type(key) is not str:
            return False
        if type(counts) is dict:
            for name, count in counts.items():
                if type(name) is not str or type(count) not in _PLAIN:
                    return False
                if type(count) is float and not math.isfinite(count):
                    return False
        elif type(counts) is list:
            for count in counts:
                if type(count) not in (int, float) or not math.isfinite(count):
                    return False
        else:
            return False
    return True


def allowed_from(status: str) -> tuple[str, ...]:
    """Statuses a row may hold for an update to ``status`` to apply (besides ``status``)."""
    if status == RunStatus.running.value:
        return (RunStatus.pending.value,)
    if status == RunStatus.pending.value:
        return (RunStatus.running.value,)
    return (RunStatus.pending.value, RunStatus.running.value)


def status_stamps(status: str, now: str) -> dict[str, str]:
    """The timestamps a status change sets when they are still empty."""
    if status == RunStatus.running.value:
        return {"started_at": now}
    if status in FINAL_STATUS_VALUES:
        return {"ended_at": now}
    return {}


ACTIVE_STATUS_VALUES = tuple(sorted(s.value for s in ACTIVE_STATUSES))
