"""MemoryRunStore: the reference RunStore backend, kept in a dict (tests and single scripts)."""

from __future__ import annotations

import copy
from typing import Any

from langgraph_runstore.errors import InvalidTransitionError
from langgraph_runstore.schemas import ROW_FIELDS, RunStatus, normalize_timestamp, now_iso
from langgraph_runstore.store.base import (
    ACTIVE_STATUS_VALUES,
    RunStore,
    allowed_from,
    prepare_completion,
    prepare_row,
    status_stamps,
)

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
        "message_count": 0,
        "attempt": 0,
    }
)


class MemoryRunStore(RunStore):
    """A RunStore in process memory. Rows are copied in and out, as a database would."""

    def __init__(self) -> None:
        self._rows: dict[str, dict[str, Any]] = {}
        self._seq = 0

    async def put(self, run_id: str, *, thread_id: str, **fields: Any) -> None:
        row = prepare_row(run_id, thread_id, fields)
        existing = self._rows.get(run_id)
        if existing is None:
            self._seq += 1
            self._rows[run_id] = {**copy.deepcopy(_DEFAULTS), **copy.deepcopy(row), "seq": self._seq}
        else:
            existing.update(copy.deepcopy(row))

    async def get(self, run_id: str) -> dict[str, Any] | None:
        row = self._rows.get(run_id)
        return copy.deepcopy(row) if row is not None else None

    async def delete(self, run_id: str) -> bool:
        return self._rows.pop(run_id, None) is not None

    async def list_by_thread(
        self, thread_id: str, *, user_id: str | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        rows = [
            row
            for row in self._rows.values()
            if row["thread_id"] == thread_id and (user_id is None or row.get("user_id") == user_id)
        ]
        rows.sort(key=lambda row: row["seq"])
        rows.sort(key=lambda row: row["created_at"], reverse=True)
        return [copy.deepcopy(row) for row in rows[:limit]]

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
            row["error"] = error
        return True

    async def update_run_completion(self, run_id: str, *, status: str, **kwargs: Any) -> bool:
        value, fields = prepare_completion(run_id, status, kwargs)
        row = self._rows.get(run_id)
        if row is None:
            return False
        self._check(row, value)
        row.update(copy.deepcopy(fields))
        self._stamp(row, value)
        return True

    async def insert_if_thread_idle(self, run_id: str, *, thread_id: str, **fields: Any) -> bool:
        # a single event loop runs this without awaiting in between, so check+insert is atomic
        if any(
            row["thread_id"] == thread_id and (row["status"] in ACTIVE_STATUS_VALUES)
            for row in self._rows.values()
        ):
            return False
        await self.put(run_id, thread_id=thread_id, **fields)
        return True

    async def list_inflight(
        self, *, before: str | None = None, thread_id: str | None = None
    ) -> list[dict[str, Any]]:
        cutoff = normalize_timestamp(before, name="before")
        rows = [
            row
            for row in self._rows.values()
            if (row.get("status") is None or row["status"] in ACTIVE_STATUS_VALUES)
            and (cutoff is None or row["created_at"] < cutoff)
            and (thread_id is None or row["thread_id"] == thread_id)
        ]
        rows.sort(key=lambda row: (row["created_at"], row["seq"]))
        return [copy.deepcopy(row) for row in rows]
