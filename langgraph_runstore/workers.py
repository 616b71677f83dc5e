"""Several workers on one database: leases, heartbeats, the shared queue, recovery and
cancel delivery. ``RunManager`` runs these services while it is a worker
(``async with RunManager(store, lease_seconds=..., graphs=...)``).

- Every run a worker executes is owned by it: ``owner_worker_id`` plus a lease
  (``lease_expires_at``) that one heartbeat statement renews for all its runs every
  ``lease_seconds / 3``. The same statement returns pending cancel requests.
- A worker that cannot confirm a lease (the row was taken over, or the database stayed
  unreachable for a whole lease) stops writing for that run (fencing) and cancels it locally.
- Runs submitted to the shared queue (``manager.submit``) are claimed by any worker holding
  their assistant, oldest first, one running run per thread (``FOR UPDATE SKIP LOCKED`` on
  PostgreSQL, one locked UPDATE on SQLite).
- A sweep recovers only runs whose lease expired more than ``grace_seconds`` ago.
- On PostgreSQL, LISTEN/NOTIFY delivers cancel requests and new queue entries at once;
  polling (heartbeat, dispatch interval) is the fallback everywhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Literal

from langgraph.types import Command

from langgraph_runstore.errors import InvalidInputError
from langgraph_runstore.lifecycle import RunLifecycle
from langgraph_runstore.schemas import (
    RunRecord,
    RunStatus,
    now_iso,
)

#: Executes a claimed run: (record, graph, input, config=..., timeout=...)
ExecuteClaimed = Callable[..., None]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RecoveryPolicy:
    """What happens to a run whose worker died (its lease expired).

    ``running="error"`` ends a run that had started as ``error`` with stop_reason
    ``orphan_recovered``; ``"requeue"`` puts a shared-queue run back in the queue until it has
    been attempted ``max_attempts`` times, as LangGraph Platform does. A shared-queue run that
    was claimed but had not started goes back to the queue once in either case. Runs started
    with a graph object (``manager.start``) cannot move to another worker and end ``error``.
    """

    running: Literal["error", "requeue"] = "error"
    max_attempts: int = 3

    def __post_init__(self) -> None:
        if self.running not in ("error", "requeue"):
            raise InvalidInputError(
                f"RecoveryPolicy.running must be 'error' or 'requeue', got {self.running!r}"
            )
        if self.max_attempts < 1:
            raise InvalidInputError(f"max_attempts must be >= 1, got {self.max_attempts!r}")


def utc_in(seconds: float, *, since: str | None = None) -> str:
    """The UTC time ``seconds`` from now (or from the stored time ``since``), in the stored
    text form."""
    start = datetime.fromisoformat(since) if since else datetime.now(timezone.utc)
    moment = start + timedelta(seconds=seconds)
    return moment.astimezone(timezone.utc).isoformat(timespec="microseconds")


def encode_input(graph_input: Any) -> dict[str, Any]:
    """The JSON form in which a shared-queue run keeps its input (a Command is kept apart)."""
    if isinstance(graph_input, Command):
        return {
            "command": {
                "resume": graph_input.resume,
                "update": graph_input.update,
                "goto": graph_input.goto or (),
            }
        }
    return {"input": graph_input}


def decode_input(kwargs: Mapping[str, Any]) -> Any:
    if "command" in kwargs:
        command = dict(kwargs["command"])
        command["goto"] = tuple(command.get("goto") or ())
        return Command(**command)
    return kwargs.get("input")


class WorkerServices:
    """The background tasks of one worker: heartbeat, sweep, dispatch and LISTEN.

    They work on the manager's ``lifecycle`` and call back into the manager only through
    what it hands over: ``cancel(run_id, action=...)``, ``execute(record, graph, input,
    config=..., timeout=...)`` for a run claimed from the queue, and ``executing()``, how
    many runs the manager executes now.
    """

    def __init__(
        self,
        lifecycle: RunLifecycle,
        *,
        worker_id: str,
        cancel: Callable[..., Awaitable[bool]],
        execute: ExecuteClaimed,
        executing: Callable[[], int],
        graphs: Mapping[str, Any],
        lease_seconds: float,
        grace_seconds: float,
        recovery: RecoveryPolicy,
        poll_interval: float,
        max_concurrent_runs: int,
    ) -> None:
        if lease_seconds <= 0 or grace_seconds < 0 or poll_interval <= 0:
            raise InvalidInputError(
                "lease_seconds and poll_interval must be > 0 and grace_seconds >= 0, got "
                f"{lease_seconds!r}, {poll_interval!r}, {grace_seconds!r}"
            )
        self.lifecycle = lifecycle
        self.worker_id = worker_id
        self._cancel = cancel
        self._execute = execute
        self._executing = executing
        self.graphs = dict(graphs)
        self.lease_seconds = lease_seconds
        self.grace_seconds = grace_seconds
        self.recovery = recovery
        self.poll_interval = poll_interval
        self.max_concurrent_runs = max_concurrent_runs
        self._tasks: list[asyncio.Task[Any]] = []
        self._wake = asyncio.Event()
        self._stopping = False
        self._last_confirmed = asyncio.get_running_loop().time()
        self._deliveries: set[asyncio.Future[None]] = set()
        self.started_at = now_iso()

    @property
    def store(self) -> Any:
        return self.lifecycle.store

    def lease_expiry(self) -> str:
        return utc_in(self.lease_seconds)

    # -- life cycle -----------------------------------------------------------------------

    async def start(self) -> None:
        self.started_at = now_iso()
        await self.record()
        await self.sweep()
        self._spawn(self._heartbeat_loop(), "heartbeat")
        self._spawn(self._sweep_loop(), "sweep")
        if self.graphs:
            self._spawn(self._dispatch_loop(), "dispatch")
        listen = getattr(self.store, "listen", None)
        if listen is not None and getattr(self.store, "dialect", None) == "postgresql":
            self._spawn(self._listen_loop(listen), "listen")

    async def record(self) -> None:
        """Write this worker's row of the fleet (``workers list``), heartbeat now."""
        try:
            await self.store.record_worker(
                self.worker_id,
                host=socket.gethostname(),
                pid=os.getpid(),
                assistants=sorted(self.graphs),
                lease_seconds=self.lease_seconds,
                started_at=self.started_at,
            )
        except NotImplementedError:
            pass
        except Exception as exc:
            logger.warning("Worker %s could not write its fleet row: %s", self.worker_id, exc)

    def _spawn(self, coro: Any, name: str) -> None:
        self._tasks.append(asyncio.create_task(coro, name=f"runstore {name} {self.worker_id}"))

    def wake(self) -> None:
        """Look at the queue now (a run ended, or a new one was submitted)."""
        self._wake.set()

    async def stop(self, *, drain_timeout: float) -> None:
        """Stop claiming, let running runs finish for ``drain_timeout`` seconds, cancel the
        rest, then release every lease and stop the background tasks."""
        self._stopping = True
        self._wake.set()
        local = [r.task for r in self._local_active() if r.task is not None]
        if local and drain_timeout > 0:
            await asyncio.wait(local, timeout=drain_timeout)
        for record in self._local_active():
            await self._cancel(record.run_id)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        try:
            await self.store.release_leases(worker_id=self.worker_id)
            await self.store.remove_workers(worker_id=self.worker_id)
        except NotImplementedError:
            pass
        except Exception:
            logger.exception("Worker %s could not release its leases", self.worker_id)

    def _local_active(self) -> list[RunRecord]:
        return [
            record
            for record in list(self.lifecycle.live.values())
            if not record.is_final and record.owner_worker_id == self.worker_id
        ]

    # -- heartbeat and fencing ------------------------------------------------------------

    async def _heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(self.lease_seconds / 3)
            await self.heartbeat()

    async def heartbeat(self) -> None:
        """Renew every lease in one statement; act on cancel requests and lost leases; then
        write the fleet row (bounded, so that a stuck database cannot stall the beat)."""
        try:
            await self._renew()
        finally:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.record(), timeout=self.lease_seconds / 3)

    async def _renew(self) -> None:
        loop = asyncio.get_running_loop()
        local = {record.run_id: record for record in self._local_active()}
        if not local:
            self._last_confirmed = loop.time()
            return
        # a renewal may take only until the lease it renews runs out: one that hangs (a
        # silent network, a stuck lock) fences the runs then, rather than never
        left = self.lease_seconds - (loop.time() - self._last_confirmed)
        try:
            renewed = await asyncio.wait_for(
                self.store.renew_leases(
                    worker_id=self.worker_id,
                    run_ids=sorted(local),
                    lease_expires_at=self.lease_expiry(),
                ),
                timeout=max(left, 0.001),
            )
        except Exception:
            logger.warning("Worker %s could not renew its leases", self.worker_id, exc_info=True)
            if loop.time() - self._last_confirmed >= self.lease_seconds:
                for record in local.values():
                    self.fence(record, "the database stayed unreachable for a whole lease")
            return
        self._last_confirmed = loop.time()
        confirmed = {row["run_id"]: row for row in renewed}
        for run_id, record in local.items():
            row = confirmed.get(run_id)
            if row is None:
                if not record.is_final:
                    self.fence(record, "its lease was taken over by another worker")
            elif row.get("cancel_requested_at"):
                await self._cancel(run_id, action=row.get("cancel_action") or "interrupt")

    def fence(self, record: RunRecord, why: str) -> None:
        """Stop writing for a run this worker no longer owns, and stop it locally."""
        if record.run_id in self.lifecycle.fenced:
            return
        logger.warning("Worker %s fenced off run %s: %s", self.worker_id, record.run_id, why)
        self.lifecycle.fenced.add(record.run_id)
        record.abort_action = "fenced"
        record.abort_event.set()
        if record.task is not None and not record.task.done():
            record.task.cancel()

    # -- recovery -------------------------------------------------------------------------

    async def _sweep_loop(self) -> None:
        while True:
            await asyncio.sleep(max(self.lease_seconds / 2, 0.05))
            try:
                await self.sweep()
            except Exception:
                logger.warning(
                    "Worker %s could not sweep for orphans", self.worker_id, exc_info=True
                )

    async def sweep(self) -> list[str]:
        """Recover runs whose lease expired more than ``grace_seconds`` ago; return their ids."""
        expired_before = utc_in(-self.grace_seconds)
        recovered = []
        with contextlib.suppress(NotImplementedError):  # a fleet row long silent goes
            await self.store.remove_workers(
                stale_before=utc_in(-max(60.0, 10 * self.lease_seconds))
            )
        for row in await self.store.list_expired(expired_before=expired_before):
            record = self.lifecycle.records.get(row["run_id"])
            ours = row["owner_worker_id"] == self.worker_id and record is not None
            if ours and record is not None and not record.is_final:
                continue  # our own live run: the heartbeat renews it
            if ours and record is not None and record.run_id not in self.lifecycle.fenced:
                # ours and ended here, but its final write was lost (say, with a cut
                # connection): write what really happened rather than an orphan's error.
                # A fenced run is left to the recovery policy below, like any orphan.
                try:
                    await self.lifecycle.put_record(record)
                except Exception:
                    logger.warning(
                        "Worker %s could not re-write the end of run %s",
                        self.worker_id,
                        row["run_id"],
                        exc_info=True,
                    )
                else:
                    logger.warning(
                        "Worker %s re-wrote the lost end of run %s (%s)",
                        self.worker_id,
                        row["run_id"],
                        record.status.value,
                    )
                    recovered.append(row["run_id"])
                    self.wake()
                continue
            requeue = bool(row.get("shared_queue")) and (
                (row["status"] == RunStatus.pending.value and int(row.get("attempt") or 0) <= 1)
                or (
                    self.recovery.running == "requeue"
                    and int(row.get("attempt") or 0) < self.recovery.max_attempts
                )
            )
            outcome = await self.store.recover_expired(
                row["run_id"],
                expired_before=expired_before,
                requeue=requeue,
                error=f"Worker {row['owner_worker_id']} stopped renewing its lease on this run.",
                seen=row,
            )
            if outcome is not None:
                logger.warning(
                    "Worker %s recovered run %s of worker %s as %s",
                    self.worker_id,
                    row["run_id"],
                    row["owner_worker_id"],
                    outcome,
                )
                recovered.append(row["run_id"])
                if outcome == RunStatus.pending.value:
                    self.wake()
        return recovered

    # -- the shared queue -----------------------------------------------------------------

    async def _dispatch_loop(self) -> None:
        while not self._stopping:
            self._wake.clear()
            claimed = False
            if self._executing() < self.max_concurrent_runs:
                try:
                    claimed = await self.claim_one()
                except Exception:
                    logger.warning("Worker %s could not claim a run", self.worker_id, exc_info=True)
            if claimed:
                continue
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_interval)

    async def claim_one(self) -> bool:
        row = await self.store.claim_next(
            worker_id=self.worker_id,
            assistant_ids=sorted(self.graphs),
            lease_expires_at=self.lease_expiry(),
        )
        if row is None:
            return False
        record = RunRecord.from_row(row)
        record.store_only = False
        graph = self.graphs[str(record.assistant_id)]
        kwargs = record.kwargs
        self._execute(
            record,
            graph,
            decode_input(kwargs),
            config=kwargs.get("config"),
            timeout=kwargs.get("timeout"),
        )
        return True

    # -- LISTEN/NOTIFY --------------------------------------------------------------------

    async def _listen_loop(self, listen: Any) -> None:
        def on_notice(channel: str, payload: str) -> None:
            if channel == "runstore_queue":
                self.wake()
            elif channel == "runstore_cancel" and payload in self.lifecycle.records:
                task = asyncio.ensure_future(self._deliver_cancel(payload))
                self._deliveries.add(task)  # keep it referenced until it is done
                task.add_done_callback(self._deliveries.discard)

        while True:
            try:
                await listen(on_notice)  # returns when the connection drops
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.warning(
                    "Worker %s lost its LISTEN connection", self.worker_id, exc_info=True
                )
            await asyncio.sleep(min(1.0, self.lease_seconds / 3))

    async def _deliver_cancel(self, run_id: str) -> None:
        try:
            row = await self.store.get(run_id)
            if row and row.get("cancel_requested_at"):
                await self._cancel(run_id, action=row.get("cancel_action") or "interrupt")
        except Exception:
            logger.exception(
                "Worker %s could not deliver a cancel to run %s", self.worker_id, run_id
            )


def default_worker_id() -> str:
    """host:pid:random, unique per RunManager even within one process."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


__all__ = [
    "RecoveryPolicy",
    "WorkerServices",
    "decode_input",
    "default_worker_id",
    "encode_input",
    "utc_in",
]
