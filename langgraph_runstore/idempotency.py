"""Idempotency keys: a create, start or submit that names a key some run already holds gets
that run back instead of a new one (deer-flow's ``idempotency_key``, the Platform's
``if_not_exists``).

The key is unique in the store (a unique index on SQL, an index in ``MemoryRunStore``), so
two processes racing with one key end with one row and both get its run_id
(``RunStore.insert_keyed``). Within one process, admissions with one key take turns
(``KeyedRuns.claim``), so the second gets the very record the first made. Without a store,
a key is known while the manager holds its run's record (``retain_finished_for`` seconds
after the run ended).
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from langgraph_runstore.errors import IdempotencyKeyError, InvalidInputError
from langgraph_runstore.lifecycle import RunLifecycle
from langgraph_runstore.schemas import RunRecord
from langgraph_runstore.validate import check_id


def check_idempotency_key(key: Any, *, run_id: str | None = None) -> None:
    """InvalidInputError unless ``key`` is None or an id the stores can keep (``check_id``)."""
    if key == "":
        raise InvalidInputError(
            "idempotency_key must be a non-empty string or None, got ''", run_id=run_id
        )
    check_id(key, name="idempotency_key", optional=True, run_id=run_id)


class KeyedRuns:
    """The idempotency keys of one manager's live records, and the admissions in flight."""

    def __init__(self) -> None:
        # weak: a record leaves with its last reference, as it leaves the lifecycle
        self._known: weakref.WeakValueDictionary[str, RunRecord] = weakref.WeakValueDictionary()
        self._pending: dict[str, asyncio.Future[None]] = {}

    @asynccontextmanager
    async def claim(self, key: str) -> AsyncIterator[None]:
        """Hold ``key`` for one admission: a later admission with it waits until this one
        has made its run (or failed), then finds that run."""
        loop = asyncio.get_running_loop()
        while (pending := self._pending.get(key)) is not None and pending.get_loop() is loop:
            await asyncio.wait([pending])  # unlike await, never cancels the other admission
        # (an admission on another event loop cannot be awaited here: the store's unique
        # key still makes the two one run)
        mine: asyncio.Future[None] = loop.create_future()
        self._pending[key] = mine
        try:
            yield
        finally:
            if self._pending.get(key) is mine:
                del self._pending[key]
            mine.set_result(None)

    def remember(self, record: RunRecord) -> None:
        if record.idempotency_key is not None:
            self._known[record.idempotency_key] = record

    def forget(self, record: RunRecord) -> None:
        key = record.idempotency_key
        if key is not None and self._known.get(key) is record:
            del self._known[key]

    async def find(self, key: str, lifecycle: RunLifecycle) -> RunRecord | None:
        """The run ``key`` names: the live record when this manager holds it, else the
        store's row (None when no run has the key)."""
        record = self._known.get(key)
        if record is not None and lifecycle.records.get(record.run_id) is record:
            return record
        store = lifecycle.store
        if store is None:
            return None
        row = await lifecycle.retrying(lambda: store.get_by_idempotency_key(key))
        if row is None:
            return None
        return lifecycle.records.get(row["run_id"]) or RunRecord.from_row(row)


def reuse(existing: RunRecord, request: RunRecord) -> RunRecord:
    """``existing``, the run a repeated request's key names, once it is that request's:
    the same thread and user. Otherwise IdempotencyKeyError naming both threads (a run of
    another user is not described)."""
    key = request.idempotency_key
    if existing.user_id != request.user_id:
        raise IdempotencyKeyError(
            f"idempotency_key {key!r} already names a run of another user: a key names "
            "one run, so pick another key",
            run_id=request.run_id,
            thread_id=request.thread_id,
            idempotency_key=key,
        )
    if existing.thread_id != request.thread_id:
        raise IdempotencyKeyError(
            f"idempotency_key {key!r} already names run {existing.run_id!r} of thread "
            f"{existing.thread_id!r}, not of thread {request.thread_id!r}: a key names one "
            "run, so pick another key",
            run_id=existing.run_id,
            thread_id=request.thread_id,
            idempotency_key=key,
        )
    existing.idempotency_reused = True
    return existing


def refuse_reused(record: RunRecord, method: str) -> None:
    """IdempotencyKeyError when ``record`` is a run an idempotency key named already:
    ``track()`` records the invocation its block makes, which that run cannot be."""
    if record.idempotency_reused:
        raise IdempotencyKeyError(
            f"idempotency_key {record.idempotency_key!r} already names run "
            f"{record.run_id!r}: {method}() records a new invocation, so it takes a key no "
            "run has (start() and wait() return the run a key names)",
            run_id=record.run_id,
            thread_id=record.thread_id,
            idempotency_key=record.idempotency_key,
        )


__all__ = ["KeyedRuns", "check_idempotency_key", "refuse_reused", "reuse"]
