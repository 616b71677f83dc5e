"""The SQL of several workers sharing one database: claiming shared-queue runs
(``FOR UPDATE SKIP LOCKED`` on PostgreSQL), renewing leases, durable cancel requests,
recovering runs whose lease expired, and LISTEN/NOTIFY. ``WorkerQueries`` is mixed into
SQLRunStore, whose ``driver`` it sends them through.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

from langgraph_runstore.db.pg_connection import listen
from langgraph_runstore.errors import ConflictError
from langgraph_runstore.schemas import now_iso
from langgraph_runstore.store.base import ACTIVE_STATUS_VALUES
from langgraph_runstore.store.drivers import Driver, PostgresDriver
from langgraph_runstore.store.statements import SELECT_COLUMNS, Statement, decode_row

_ACTIVE_SQL = ", ".join(f"'{status}'" for status in ACTIVE_STATUS_VALUES)

_CLAIMABLE = (
    "r.status = 'pending' AND r.shared_queue = 1 AND r.owner_worker_id IS NULL "
    "AND r.assistant_id IN ({assistants}) "
    # the thread is free: nothing running, and no pending run admitted before this one (FIFO
    # per thread). Admitted means seq, not created_at: a thread's INSERTs hold its advisory
    # lock on PostgreSQL (one writer on SQLite), so its seq order is its commit order, and a
    # claim never passes over a run that committed first. created_at is the client's clock,
    # and a row created earlier may commit after a later one was claimed.
    "AND NOT EXISTS (SELECT 1 FROM runs o WHERE o.thread_id = r.thread_id "
    "AND o.status = 'running') "
    "AND NOT EXISTS (SELECT 1 FROM runs e WHERE e.thread_id = r.thread_id "
    "AND e.status = 'pending' AND e.seq < r.seq)"
)


# The database's clock, in the stored text form. A claim stamps started_at with it: a time
# taken by the client before the statement could precede the commit that freed the thread.
_DB_NOW = {
    "sqlite": "strftime('%Y-%m-%dT%H:%M:%f000+00:00', 'now')",
    "postgresql": "to_char(clock_timestamp() AT TIME ZONE 'UTC', "
    '\'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"\')',
}


@lru_cache(maxsize=32)
def _claim_sql(dialect: str, assistant_count: int) -> Statement:
    assistants = ", ".join(f":assistant_{i}" for i in range(assistant_count))
    # SKIP LOCKED lets PostgreSQL workers pass over a row another worker is claiming; one
    # SQLite statement holds the file's write lock, which serialises claims by itself
    lock = " FOR UPDATE SKIP LOCKED" if dialect == "postgresql" else ""
    now = _DB_NOW[dialect]
    return Statement.of(
        "UPDATE runs SET status = 'running', owner_worker_id = :worker_id, "
        f"lease_expires_at = :lease, started_at = {now}, "
        f"updated_at = {now}, attempt = attempt + 1 "
        "WHERE status = 'pending' AND run_id = (SELECT r.run_id FROM runs r WHERE "
        + _CLAIMABLE.format(assistants=assistants)
        + f" ORDER BY r.created_at, r.seq LIMIT 1{lock}) RETURNING {SELECT_COLUMNS}"
    )


@lru_cache(maxsize=64)
def _cancel_requests_sql(count: int) -> Statement:
    ids = ", ".join(f":run_{i}" for i in range(count))
    return Statement.of(
        "SELECT run_id, cancel_action FROM runs WHERE cancel_requested_at IS NOT NULL "
        f"AND run_id IN ({ids})"
    )


@lru_cache(maxsize=64)
def _renew_sql(count: int) -> Statement:
    ids = ", ".join(f":run_{i}" for i in range(count))
    return Statement.of(
        "UPDATE runs SET lease_expires_at = :lease WHERE owner_worker_id = :worker_id "
        f"AND status IN ({_ACTIVE_SQL}) AND run_id IN ({ids}) "
        "RETURNING run_id, cancel_requested_at, cancel_action"
    )


# the first request's time and action stand: a second request (or a peer's retry of the
# same one) changes nothing, so a rollback never turns into an interrupt
_ASK = (
    "cancel_requested_at = COALESCE(cancel_requested_at, :now), "
    "cancel_action = COALESCE(cancel_action, :action), updated_at = :now"
)
_REQUEST_CANCEL = Statement.of(
    f"UPDATE runs SET {_ASK} WHERE run_id = :run_id AND status IN ({_ACTIVE_SQL}) "
    "RETURNING owner_worker_id, lease_expires_at, cancel_action"
)
_PG_REQUEST_CANCEL = Statement.of(
    f"WITH asked AS (UPDATE runs SET {_ASK} "
    f"WHERE run_id = :run_id AND status IN ({_ACTIVE_SQL}) "
    "RETURNING run_id, owner_worker_id, lease_expires_at, cancel_action) "
    # NOTIFY reaches the owner as soon as this autocommit statement commits
    "SELECT owner_worker_id, lease_expires_at, cancel_action, "
    "pg_notify('runstore_cancel', run_id) FROM asked"
)
_LIST_EXPIRED = Statement.of(
    f"SELECT {SELECT_COLUMNS} FROM runs WHERE owner_worker_id IS NOT NULL "
    f"AND status IN ({_ACTIVE_SQL}) AND lease_expires_at < :expired_before "
    "ORDER BY created_at, seq"
)
# a compare-and-set: still active, still expired at the moment of the write, and still the
# owner and lease the recovering worker saw (a renewal or another takeover in between wins)
_EXPIRED_GUARD = (
    f"WHERE run_id = :run_id AND status IN ({_ACTIVE_SQL}) "
    "AND lease_expires_at IS NOT NULL AND lease_expires_at < :expired_before "
    "AND owner_worker_id = :seen_owner AND lease_expires_at = :seen_lease"
)
_RECOVER_REQUEUE = Statement.of(
    "UPDATE runs SET status = 'pending', owner_worker_id = NULL, lease_expires_at = NULL, "
    f"shared_queue = 1, started_at = NULL, updated_at = :now {_EXPIRED_GUARD}"
)
_RECOVER_ERROR = Statement.of(
    "UPDATE runs SET status = 'error', error = :error, stop_reason = 'orphan_recovered', "
    f"ended_at = :now, updated_at = :now {_EXPIRED_GUARD}"
)
_LEASE = Statement.of("SELECT owner_worker_id, lease_expires_at FROM runs WHERE run_id = :run_id")
_RELEASE = Statement.of(
    "UPDATE runs SET lease_expires_at = NULL, owner_worker_id = CASE WHEN shared_queue = 1 "
    "AND status = 'pending' THEN NULL ELSE owner_worker_id END "
    f"WHERE owner_worker_id = :worker_id AND status IN ({_ACTIVE_SQL})"
)
_PG_NOTIFY_QUEUE = Statement.of("SELECT pg_notify('runstore_queue', :assistant_id)")


_RECORD_WORKER = Statement.of(
    "INSERT INTO runstore_workers (worker_id, host, pid, assistants, lease_seconds, "
    "started_at, heartbeat_at) VALUES (:worker_id, :host, :pid, :assistants, :lease_seconds, "
    ":started_at, :now) ON CONFLICT (worker_id) DO UPDATE SET heartbeat_at = :now, "
    "assistants = :assistants, lease_seconds = :lease_seconds"
)
_LIST_WORKERS = Statement.of(
    "SELECT w.worker_id, w.host, w.pid, w.assistants, w.lease_seconds, w.started_at, "
    "w.heartbeat_at, (SELECT count(*) FROM runs r WHERE r.owner_worker_id = w.worker_id "
    f"AND r.status IN ({_ACTIVE_SQL})) AS held FROM runstore_workers w "
    "ORDER BY w.started_at, w.worker_id"
)
_REMOVE_WORKER = Statement.of("DELETE FROM runstore_workers WHERE worker_id = :worker_id")
_REMOVE_STALE_WORKERS = Statement.of(
    "DELETE FROM runstore_workers WHERE heartbeat_at < :stale_before"
)


class WorkerQueries:
    """The SQLRunStore primitives for several workers (mixed into SQLRunStore)."""

    dialect: str
    driver: Driver

    async def claim_next(
        self, *, worker_id: str, assistant_ids: Sequence[str], lease_expires_at: str
    ) -> dict[str, Any] | None:
        if not assistant_ids:
            return None
        params: dict[str, Any] = {"worker_id": worker_id, "lease": lease_expires_at}
        params.update({f"assistant_{i}": name for i, name in enumerate(assistant_ids)})
        try:
            rows = await self.driver.fetch(_claim_sql(self.dialect, len(assistant_ids)), params)
        except ConflictError:
            return None  # another worker started a run of that thread first; try again later
        return decode_row(rows[0]) if rows else None

    async def renew_leases(
        self, *, worker_id: str, run_ids: Sequence[str], lease_expires_at: str
    ) -> list[dict[str, Any]]:
        if not run_ids:
            return []
        params: dict[str, Any] = {"worker_id": worker_id, "lease": lease_expires_at}
        params.update({f"run_{i}": run_id for i, run_id in enumerate(run_ids)})
        # statement shapes are cached per count: round it up so they stay few
        padded = 1 << (len(run_ids) - 1).bit_length()
        params.update({f"run_{i}": run_ids[0] for i in range(len(run_ids), padded)})
        return await self.driver.fetch(_renew_sql(padded), params)

    async def cancel_requests(self, run_ids: Sequence[str]) -> list[dict[str, Any]]:
        """The ``run_id`` and ``cancel_action`` of those of ``run_ids`` with a recorded
        cancel request (what a process that is not a worker polls for)."""
        if not run_ids:
            return []
        padded = 1 << (len(run_ids) - 1).bit_length()
        params = {f"run_{i}": run_ids[min(i, len(run_ids) - 1)] for i in range(padded)}
        return await self.driver.fetch(_cancel_requests_sql(padded), params)

    async def request_cancel(self, run_id: str, *, action: str) -> dict[str, Any] | None:
        statement = _PG_REQUEST_CANCEL if self.dialect == "postgresql" else _REQUEST_CANCEL
        rows = await self.driver.fetch(
            statement, {"run_id": run_id, "action": action, "now": now_iso()}
        )
        return rows[0] if rows else None

    async def list_expired(self, *, expired_before: str) -> list[dict[str, Any]]:
        rows = await self.driver.fetch(_LIST_EXPIRED, {"expired_before": expired_before})
        return [decode_row(row) for row in rows]

    async def recover_expired(
        self,
        run_id: str,
        *,
        expired_before: str,
        requeue: bool,
        error: str,
        seen: Mapping[str, Any] | None = None,
    ) -> str | None:
        if seen is None:  # the caller saw no lease: compare with the row as it is now
            rows = await self.driver.fetch(_LEASE, {"run_id": run_id})
            if not rows:
                return None
            seen = rows[0]
        params = {
            "run_id": run_id,
            "expired_before": expired_before,
            "now": now_iso(),
            "seen_owner": seen.get("owner_worker_id"),
            "seen_lease": seen.get("lease_expires_at"),
        }
        if requeue:
            changed = await self.driver.execute(_RECOVER_REQUEUE, params)
            return "pending" if changed else None
        params["error"] = error
        changed = await self.driver.execute(_RECOVER_ERROR, params)
        return "error" if changed else None

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
        await self.driver.execute(
            _RECORD_WORKER,
            {
                "worker_id": worker_id,
                "host": host,
                "pid": int(pid),
                "assistants": json.dumps(sorted(assistants)),
                "lease_seconds": float(lease_seconds),
                "started_at": started_at,
                "now": now_iso(),
            },
        )

    async def list_workers(self) -> list[dict[str, Any]]:
        rows = await self.driver.fetch(_LIST_WORKERS, {})
        return [
            {**row, "assistants": json.loads(row["assistants"] or "[]"), "held": int(row["held"])}
            for row in rows
        ]

    async def remove_workers(self, *, worker_id: str | None = None, stale_before: str = "") -> int:
        if worker_id is not None:
            return await self.driver.execute(_REMOVE_WORKER, {"worker_id": worker_id})
        return await self.driver.execute(_REMOVE_STALE_WORKERS, {"stale_before": stale_before})

    async def release_leases(self, *, worker_id: str) -> int:
        return await self.driver.execute(_RELEASE, {"worker_id": worker_id})

    async def listen(self, on_notice: Any) -> None:
        """LISTEN for cancel requests and queue entries until the connection drops.

        PostgreSQL only (asyncpg or psycopg), on a dedicated connection outside the pool (a
        listening connection cannot be shared). ``on_notice(channel, payload)`` runs on the
        loop.
        """
        driver = self.driver
        assert isinstance(driver, PostgresDriver)  # the workers listen on PostgreSQL only
        await listen(driver.engine, ("runstore_cancel", "runstore_queue"), on_notice)

    async def notify_queue(self, assistant_id: str) -> None:
        """Wake dispatchers listening for new shared-queue runs (PostgreSQL only)."""
        if self.dialect == "postgresql":
            await self.driver.fetch(_PG_NOTIFY_QUEUE, {"assistant_id": assistant_id or ""})


__all__ = ["WorkerQueries"]
