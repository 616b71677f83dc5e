"""MemoryRunStore: the reference RunStore backend, kept in a dict (tests and single scripts)."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from langgraph_runstore.errors import (
    IdempotencyKeyError,
    InvalidInputError,
    InvalidTransitionError,
)
from langgraph_runstore.query import (
    FINAL_STATUS_VALUES,
    PruneResult,
    RunPage,
    UsageRow,
    aggregate_rows,
    check_grouping,
    check_limit,
    check_top_order,
    list_arguments,
    page_rows,
    prune_cutoff,
    top_rows,
    window_arguments,
)
from langgraph_runstore.schemas import (
    JSON_FIELDS,
    ROW_FIELDS,
    RunStatus,
    normalize_timestamp,
    now_iso,
)
from langgraph_runstore.store.base import (
    ACTIVE_STATUS_VALUES,
    STATUS_FIELDS,
    RunStore,
    allowed_from,
    prepare_completion,
    prepare_row,
    refuse_active,
    status_stamps,
)
from langgraph_runstore.text import storable_text

_STATUS_COLUMNS = ("thread_id", *STATUS_FIELDS)
_DEFAULTS: dict[str, Any] = dict.fromkeys(ROW_FIELDS)
_DEFAULTS.update(
    {
        "status": RunStatus.pending.value,
        "on_disconnect": "cancel",
        "multitask_strategy": "reject",
        "input_tokens": 0,
        "output_tokens": 0,
        "total_tokens": 0,
        "cache_read_tokens": 0,
        "cache_creation_tokens": 0,
        "reasoning_tokens": 0,
        "llm_call_count": 0,
        "calls_without_usage": 0,
        "message_count": 0,
        "attempt": 0,
        "shared_queue": False,
    }
)


def _clone(value: Any) -> Any:
    # the nested fields hold JSON values only: a plain walk is several times cheaper than
    # copy.deepcopy, which this store would otherwise run on every read and write
    if isinstance(value, dict):
        return {
            key: _clone(item) if isinstance(item, (dict, list)) else item
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_clone(item) if isinstance(item, (dict, list)) else item for item in value]
    return value


def _copy_row(row: dict[str, Any]) -> dict[str, Any]:
    """A copy that shares nothing mutable with ``row`` (only the JSON fields nest)."""
    copied = dict(row)
    for name in JSON_FIELDS:
        value = copied.get(name)
        if value:
            copied[name] = _clone(value)
    return copied


class MemoryRunStore(RunStore):
    """A RunStore in process memory. Rows are copied in and out, as a database would."""

    def __init__(self) -> None:
        self._rows: dict[str, dict[str, Any]] = {}
        # rows per thread, in insertion order: admission and listing never scan every run
        self._by_thread: dict[str, dict[str, dict[str, Any]]] = {}
        self._seq = 0
        self._workers: dict[str, dict[str, Any]] = {}
        # idempotency key -> run_id: the key is unique, as the SQL stores' index makes it
        self._by_key: dict[str, str] = {}

    async def put(self, run_id: str, *, thread_id: str, **fields: Any) -> None:
        row = prepare_row(run_id, thread_id, fields)
        existing = self._rows.get(run_id)
        key = row.get("idempotency_key")
        if key is not None:
            holder = self._by_key.get(key)
            if holder is not None and holder != run_id:
                raise IdempotencyKeyError(
                    f"idempotency_key {key!r} already names another run; run {run_id!r} "
                    "was not written",
                    run_id=run_id,
                    thread_id=thread_id,
                    idempotency_key=key,
                )
        if existing is not None and "idempotency_key" in row:
            self._unkey(existing)
        if key is not None:
            self._by_key[key] = run_id
        if existing is None:
            self._seq += 1
            stored = dict(_DEFAULTS)  # no nested values to share
            stored.update(_copy_row(row))
            stored["seq"] = self._seq
            self._rows[run_id] = stored
        else:
            self._unindex(existing)
            existing.update(_copy_row(row))
            stored = existing
        self._by_thread.setdefault(stored["thread_id"], {})[run_id] = stored

    async def insert(self, run_id: str, *, thread_id: str, **fields: Any) -> None:
        if run_id in self._rows:  # as the SQL stores' unique run_id refuses it
            raise InvalidInputError(
                f"run_id {run_id!r} already names a run: a run_id names exactly one run",
                run_id=run_id,
                thread_id=thread_id,
            )
        await self.put(run_id, thread_id=thread_id, **fields)

    def _unkey(self, row: dict[str, Any]) -> None:
        key = row.get("idempotency_key")
        if key is not None and self._by_key.get(key) == row["run_id"]:
            del self._by_key[key]

    async def get_by_idempotency_key(self, idempotency_key: str) -> dict[str, Any] | None:
        run_id = self._by_key.get(idempotency_key)
        return None if run_id is None else await self.get(run_id)

    async def delete_run(self, run_id: str, *, include_checkpoints: bool = True) -> bool:
        # this store keeps no checkpoints: include_checkpoints has nothing to delete
        row = self._rows.get(run_id)
        if row is None:
            return False
        refuse_active(run_id, row)
        return await self.delete(run_id)

    def _unindex(self, row: dict[str, Any]) -> None:
        same_thread = self._by_thread.get(row["thread_id"])
        if same_thread is not None:
            same_thread.pop(row["run_id"], None)
            if not same_thread:
                del self._by_thread[row["thread_id"]]

    async def get(self, run_id: str) -> dict[str, Any] | None:
        row = self._rows.get(run_id)
        return _copy_row(row) if row is not None else None

    async def get_status(self, run_id: str) -> dict[str, Any] | None:
        row = self._rows.get(run_id)  # plain strings: nothing to copy
        return None if row is None else {name: row[name] for name in _STATUS_COLUMNS}

    async def delete(self, run_id: str) -> bool:
        row = self._rows.pop(run_id, None)
        if row is None:
            return False
        self._unindex(row)
        self._unkey(row)
        return True

    async def list_by_thread(
        self, thread_id: str, *, user_id: str | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        rows = [
            row
            for row in self._by_thread.get(thread_id, {}).values()
            if user_id is None or row.get("user_id") == user_id
        ]
        rows.sort(key=lambda row: row["seq"])
        rows.sort(key=lambda row: row["created_at"], reverse=True)
        return [_copy_row(row) for row in rows[:limit]]

    def _check(self, row: dict[str, Any], status: str) -> None:
        current = row.get("status")
        if current is None or current == status or current in allowed_from(status):
            return
        raise InvalidTransitionError(
            f"run {row['run_id']!r} cannot go from {current!r} to {status!r}: "
            "a final status never changes",
            run_id=row["run_id"],
            thread_id=row["thread_id"],
            current=current,
            requested=status,
        )

    def _stamp(self, row: dict[str, Any], status: str) -> None:
        now = now_iso()
        if row.get("status") != status:
            for name, value in status_stamps(status, now).items():
                row[name] = row.get(name) or value
        row["status"] = status
        row["updated_at"] = now

    async def update_status(self, run_id: str, status: str, *, error: str | None = None) -> bool:
        value = RunStatus.parse(status, run_id=run_id).value
        row = self._rows.get(run_id)
        if row is None:
            return False
        self._check(row, value)
        self._stamp(row, value)
        if error is not None:
            row["error"] = storable_text(error)
        return True

    async def update_run_completion(self, run_id: str, *, status: str, **kwargs: Any) -> bool:
        value, fields = prepare_completion(run_id, status, kwargs)
        row = self._rows.get(run_id)
        if row is None:
            return False
        self._check(row, value)
        row.update(_copy_row(fields))
        self._stamp(row, value)
        return True

    async def insert_if_thread_idle(self, run_id: str, *, thread_id: str, **fields: Any) -> bool:
        # a single event loop runs this without awaiting in between, so check+insert is atomic
        if any(
            row["status"] in ACTIVE_STATUS_VALUES
            for row in self._by_thread.get(thread_id, {}).values()
        ):
            return False
        await self.insert(run_id, thread_id=thread_id, **fields)
        return True

    async def list_inflight(
        self, *, before: str | None = None, thread_id: str | None = None
    ) -> list[dict[str, Any]]:
        cutoff = normalize_timestamp(before, name="before")
        candidates = (
            self._rows.values()
            if thread_id is None
            else self._by_thread.get(thread_id, {}).values()
        )
        rows = [
            row
            for row in candidates
            if (row.get("status") is None or row["status"] in ACTIVE_STATUS_VALUES)
            and (cutoff is None or row["created_at"] < cutoff)
        ]
        rows.sort(key=lambda row: (row["created_at"], row["seq"]))
        return [_copy_row(row) for row in rows]

    # -- several workers (one process: useful for tests and for the same code path) --------

    def _active(self, row: dict[str, Any]) -> bool:
        return row.get("status") in ACTIVE_STATUS_VALUES

    async def claim_next(
        self, *, worker_id: str, assistant_ids: Sequence[str], lease_expires_at: str
    ) -> dict[str, Any] | None:
        running = {
            row["thread_id"] for row in self._rows.values() if row.get("status") == "running"
        }
        first: dict[str, dict[str, Any]] = {}  # each thread's first-admitted pending run
        for row in sorted(self._rows.values(), key=lambda row: row["seq"]):
            if row.get("status") == "pending":
                first.setdefault(row["thread_id"], row)
        for row in sorted(first.values(), key=lambda row: (row["created_at"], row["seq"])):
            if (
                row.get("shared_queue")
                and row.get("owner_worker_id") is None
                and row.get("assistant_id") in assistant_ids
                and row["thread_id"] not in running
            ):
                now = now_iso()
                row.update(
                    status="running",
                    owner_worker_id=worker_id,
                    lease_expires_at=lease_expires_at,
                    started_at=row.get("started_at") or now,
                    updated_at=now,
                    attempt=int(row.get("attempt") or 0) + 1,
                )
                return copy.deepcopy(row)
        return None

    async def renew_leases(
        self, *, worker_id: str, run_ids: Sequence[str], lease_expires_at: str
    ) -> list[dict[str, Any]]:
        renewed = []
        wanted = set(run_ids)
        for row in self._rows.values():
            if (
                row["run_id"] in wanted
                and row.get("owner_worker_id") == worker_id
                and self._active(row)
            ):
                row["lease_expires_at"] = lease_expires_at
                renewed.append(
                    {
                        name: row.get(name)
                        for name in ("run_id", "cancel_requested_at", "cancel_action")
                    }
                )
        return renewed

    async def request_cancel(self, run_id: str, *, action: str) -> dict[str, Any] | None:
        row = self._rows.get(run_id)
        if row is None or not self._active(row):
            return None
        now = now_iso()
        row["cancel_requested_at"] = row.get("cancel_requested_at") or now
        row["cancel_action"] = row.get("cancel_action") or action
        row["updated_at"] = now
        return {
            name: row.get(name) for name in ("owner_worker_id", "lease_expires_at", "cancel_action")
        }

    async def list_expired(self, *, expired_before: str) -> list[dict[str, Any]]:
        rows = [
            row
            for row in self._rows.values()
            if row.get("owner_worker_id") is not None
            and self._active(row)
            and row.get("lease_expires_at") is not None
            and row["lease_expires_at"] < expired_before
        ]
        rows.sort(key=lambda row: (row["created_at"], row["seq"]))
        return [copy.deepcopy(row) for row in rows]

    async def recover_expired(
        self,
        run_id: str,
        *,
        expired_before: str,
        requeue: bool,
        error: str,
        seen: Mapping[str, Any] | None = None,
    ) -> str | None:
        row = self._rows.get(run_id)
        if (
            row is None
            or not self._active(row)
            or row.get("lease_expires_at") is None
            or row["lease_expires_at"] >= expired_before
        ):
            return None
        if seen is not None and (
            row.get("owner_worker_id") != seen.get("owner_worker_id")
            or row.get("lease_expires_at") != seen.get("lease_expires_at")
        ):
            return None  # renewed or taken over since the caller looked
        now = now_iso()
        if requeue:
            row.update(
                status="pending",
                owner_worker_id=None,
                lease_expires_at=None,
                shared_queue=True,
                started_at=None,
                updated_at=now,
            )
            return "pending"
        row.update(
            status="error",
            error=error,
            stop_reason="orphan_recovered",
            ended_at=now,
            updated_at=now,
        )
        return "error"

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
        self._workers[worker_id] = {
            "worker_id": worker_id,
            "host": host,
            "pid": pid,
            "assistants": list(assistants),
            "lease_seconds": float(lease_seconds),
            "started_at": self._workers.get(worker_id, {}).get("started_at", started_at),
            "heartbeat_at": now_iso(),
        }

    async def list_workers(self) -> list[dict[str, Any]]:
        held: dict[str, int] = {}
        for row in self._rows.values():
            if row.get("owner_worker_id") and self._active(row):
                held[row["owner_worker_id"]] = held.get(row["owner_worker_id"], 0) + 1
        rows = sorted(self._workers.values(), key=lambda w: (w["started_at"], w["worker_id"]))
        return [
            {**w, "assistants": list(w["assistants"]), "held": held.get(w["worker_id"], 0)}
            for w in rows
        ]

    async def remove_workers(self, *, worker_id: str | None = None, stale_before: str = "") -> int:
        gone = [
            key
            for key, w in self._workers.items()
            if key == worker_id or (worker_id is None and w["heartbeat_at"] < stale_before)
        ]
        for key in gone:
            del self._workers[key]
        return len(gone)

    async def release_leases(self, *, worker_id: str) -> int:
        changed = 0
        for row in self._rows.values():
            if row.get("owner_worker_id") == worker_id and self._active(row):
                row["lease_expires_at"] = None
                if row.get("shared_queue") and row.get("status") == "pending":
                    row["owner_worker_id"] = None
                changed += 1
        return changed

    # -- reading and retention ----------------------------------------------------------------

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
        args = list_arguments(
            thread_id=thread_id,
            status=status,
            user_id=user_id,
            since=since,
            until=until,
            limit=limit,
            cursor=cursor,
        )
        page = page_rows(self._rows.values(), **args)
        return RunPage(tuple(copy.deepcopy(row) for row in page.runs), page.next_cursor)

    async def aggregate_usage(
        self,
        *,
        by: str = "model",
        since: str | datetime | timedelta | None = None,
        until: str | datetime | timedelta | None = None,
        thread_id: str | None = None,
        user_id: str | None = None,
    ) -> list[UsageRow]:
        return aggregate_rows(
            self._rows.values(),
            by=check_grouping(by),
            thread_id=thread_id,
            user_id=user_id,
            **window_arguments(since, until),
        )

    async def top_runs(
        self,
        *,
        by: str = "duration",
        since: str | datetime | timedelta | None = None,
        until: str | datetime | timedelta | None = None,
        limit: int = 10,
        user_id: str | None = None,
    ) -> list[dict[str, Any]]:
        rows = top_rows(
            self._rows.values(),
            by=check_top_order(by),
            limit=check_limit(limit),
            user_id=user_id,
            **window_arguments(since, until),
        )
        return copy.deepcopy(rows)

    async def prune_runs(
        self,
        *,
        older_than: str | datetime | timedelta,
        include_checkpoints: bool = True,
        dry_run: bool = False,
        on_progress: Callable[[int], None] | None = None,
        max_batch: int = 2000,
    ) -> PruneResult:
        # this store keeps no checkpoints, so include_checkpoints has nothing to delete
        cutoff = prune_cutoff(older_than)
        doomed = [
            run_id
            for run_id, row in self._rows.items()
            if row.get("status") in FINAL_STATUS_VALUES and row["created_at"] < cutoff
        ]
        if dry_run:
            return PruneResult(runs=len(doomed), cutoff=cutoff, dry_run=True)
        for run_id in doomed:
            row = self._rows.pop(run_id)
            self._unindex(row)
            self._unkey(row)
        if doomed and on_progress is not None:
            on_progress(len(doomed))
        return PruneResult(runs=len(doomed), batches=1 if doomed else 0, cutoff=cutoff)
