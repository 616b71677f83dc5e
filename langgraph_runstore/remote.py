"""Reaching runs that this process does not execute: cancelling a run where it runs,
waiting for its end there, asking the fleet whether anyone serves an assistant, and
ending orphans at startup. Every takeover here is a conditional write whose answer the
lifecycle adopts."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import Any

from langgraph_runstore.errors import NoWorkerError
from langgraph_runstore.lifecycle import RunLifecycle
from langgraph_runstore.query import FINAL_STATUS_VALUES
from langgraph_runstore.schemas import (
    CancelAction,
    RunRecord,
    RunStatus,
    normalize_timestamp,
    now_iso,
)
from langgraph_runstore.workers import utc_in

logger = logging.getLogger(__name__)


async def cancel_elsewhere(
    lifecycle: RunLifecycle,
    record: RunRecord,
    action: CancelAction,
    *,
    worker_id: str,
    grace_seconds: float = 0.0,
) -> tuple[bool | None, str]:
    """Cancel a run this process does not hold; answer ``(outcome, action)``, where
    ``action`` is the one that stands (the first request's).

    ``outcome`` None: nobody else executes it, so the caller ends it here. True: the
    request is recorded and the run's owner stops it (or it was taken over here). False:
    it had already finished. A run whose lease expired less than ``grace_seconds`` ago is
    left to its owner, whose next renewal sees the request.
    """
    store = lifecycle.store
    assert store is not None
    try:
        owner = await lifecycle.retrying(
            lambda: store.request_cancel(record.run_id, action=action.value)
        )
    except NotImplementedError:
        return None, action.value
    if owner is None:
        return False, action.value  # it ended meanwhile
    standing = str(owner.get("cancel_action") or action.value)
    lease = owner.get("lease_expires_at")
    if owner.get("owner_worker_id") is None:
        return None, standing
    if lease is None and record.status is RunStatus.running:
        # a process that is not a worker executes it: it polls for the request and ends
        # the run itself; one that does not answer in time is gone
        ended = await until_ended(lifecycle, record, timeout=CANCEL_HANDOFF_SECONDS)
        if ended is None:
            return None, standing
        return ended == RunStatus.interrupted.value, standing  # False: it finished first
    if lease is None:
        return None, standing  # pending: nobody executes it yet, and its start is refused
    expired_before = utc_in(-grace_seconds)
    if lease >= expired_before:
        # alive, or within its grace window: the owner sees the request at once (NOTIFY)
        # or at its next renewal
        return True, standing
    outcome = await store.recover_expired(
        record.run_id,
        expired_before=expired_before,
        requeue=False,
        error=f"Worker {owner['owner_worker_id']} stopped renewing its lease; "
        f"cancelled by {worker_id}.",
        seen=owner,
    )
    if outcome is not None:
        return True, standing
    # the takeover lost, to a renewal or to the run's end: the store says which
    stored = await lifecycle.retrying(lambda: store.get_status(record.run_id))
    if stored is None or stored["status"] in FINAL_STATUS_VALUES:
        return False, standing
    return True, standing  # alive, and its owner sees the request at its next renewal


async def standing_action(
    lifecycle: RunLifecycle, record: RunRecord, action: CancelAction
) -> CancelAction:
    """Record a cancel of a run this process executes, and answer the action that stands:
    a request a peer recorded first keeps its action."""
    store = lifecycle.store
    assert store is not None
    try:
        asked = await lifecycle.retrying(
            lambda: store.request_cancel(record.run_id, action=action.value)
        )
    except NotImplementedError:
        return action
    except Exception as exc:  # the local cancel goes ahead; the store is told by its end
        logger.warning("Could not record the cancel of run %s: %s", record.run_id, exc)
        return action
    if asked is None or not asked.get("cancel_action"):
        return action
    return CancelAction.parse(asked["cancel_action"])


#: how long a cancel waits for a process that is not a worker to end its run itself (it
#: polls every ``poll_interval``, 0.5 s by default, or hears a NOTIFY at once)
CANCEL_HANDOFF_SECONDS = 3.0
_HANDOFF_POLL = 0.05


async def until_ended(lifecycle: RunLifecycle, record: RunRecord, *, timeout: float) -> str | None:
    """Wait up to ``timeout`` seconds for the run's row to end; adopt it and answer its
    final status if it did, None if it did not (or the row is gone)."""
    store = lifecycle.store
    assert store is not None
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        await asyncio.sleep(_HANDOFF_POLL)
        stored = await lifecycle.retrying(lambda: store.get_status(record.run_id))
        if stored is None:
            return None
        if stored["status"] in FINAL_STATUS_VALUES:
            lifecycle.adopt(record, stored)
            return str(stored["status"])
    return None


async def until_served(store: Any, assistant_id: str, *, timeout: float) -> None:
    """Return once a live worker (heartbeat within its lease) serves ``assistant_id``;
    raise NoWorkerError after ``timeout`` seconds without one. A store without a fleet
    table cannot tell, and is not asked."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            fleet = await store.list_workers()
        except NotImplementedError:
            return
        now = now_iso()
        for worker in fleet:
            alive_until = utc_in(float(worker["lease_seconds"]), since=worker["heartbeat_at"])
            if assistant_id in worker["assistants"] and alive_until > now:
                return
        if loop.time() >= deadline:
            live = sorted({a for w in fleet for a in w["assistants"]})
            raise NoWorkerError(
                f"no live worker serves assistant {assistant_id!r} (live workers serve "
                f"{live or 'nothing'}); start one with graphs={{{assistant_id!r}: graph}}, "
                "or submit(..., wait_for_worker=seconds) to wait longer"
            )
        await asyncio.sleep(min(0.1, max(deadline - loop.time(), 0.0)))


async def reconcile_orphans(
    lifecycle: RunLifecycle, *, worker_id: str, error: str, before: str | datetime | None
) -> list[RunRecord]:
    """End as ``error`` the pending and running rows that no live worker owns (see
    ``RunManager.reconcile_orphaned_inflight_runs``); return those whose end was written."""
    store = lifecycle.store
    if store is None:
        return []
    cutoff = normalize_timestamp(before, name="before")
    rows = await lifecycle.retrying(lambda: store.list_inflight(before=cutoff))
    now = now_iso()
    recovered: list[RunRecord] = []
    for row in rows:
        live = lifecycle.records.get(row["run_id"])
        if live is not None and not live.is_final:
            continue
        lease = row.get("lease_expires_at")
        if row.get("owner_worker_id") not in (None, worker_id) and lease and lease > now:
            continue
        if row.get("shared_queue") and row.get("owner_worker_id") is None:
            continue  # waiting in the shared queue for a worker: not an orphan
        record = RunRecord.from_row(row)
        if await lifecycle.end_orphan(record, error):
            recovered.append(record)
    if recovered:
        logger.warning("Recovered %d orphaned run(s) as error", len(recovered))
    return recovered


__all__ = [
    "CANCEL_HANDOFF_SECONDS",
    "cancel_elsewhere",
    "reconcile_orphans",
    "standing_action",
    "until_ended",
    "until_served",
]
