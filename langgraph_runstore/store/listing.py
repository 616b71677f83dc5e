"""The command line's own reads of a SQL store: threads with their latest run and totals,
run ids by unique prefix, and each run's latest event (``runs watch``).

Each takes the store's ``dialect`` and ``driver`` (a ``SQLRunStore``, or one opened
read-only) and returns plain rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any, Protocol

from langgraph_runstore.store.base import ACTIVE_STATUS_VALUES
from langgraph_runstore.store.statements import Statement

_ACTIVE = ", ".join(f"'{status}'" for status in ACTIVE_STATUS_VALUES)

#: A thread's status from its runs, as ``RunManager.thread_status`` decides it: busy while
#: a run is active, else from its newest run.
_THREAD_STATUS = (
    "CASE WHEN active > 0 THEN 'busy' "
    "WHEN status IN ('error', 'timeout') THEN 'error' "
    "WHEN status = 'success' AND stop_reason = 'interrupt' THEN 'interrupted' "
    "ELSE 'idle' END"
)


class SQLStoreLike(Protocol):
    """What these reads need of a SQL store."""

    @property
    def dialect(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""

    @property
    def driver(self) -> Any:
        """The store's driver (``fetch``)."""


@lru_cache(maxsize=16)
def _threads_sql(with_user: bool, statuses: int) -> Statement:
    user = "WHERE user_id = :user_id " if with_user else ""
    wanted = ", ".join(f":status_{i}" for i in range(statuses))
    keep = f" AND thread_status IN ({wanted})" if statuses else ""
    # one pass over the runs: per thread its totals (a window over the thread) and its
    # newest run (ROW_NUMBER), the thread's status computed from both
    return Statement.of(
        "SELECT * FROM (SELECT thread_id, run_id AS last_run_id, status AS last_status, "
        "stop_reason AS last_stop_reason, created_at AS last_created_at, runs, "
        f"total_tokens, llm_calls, active, {_THREAD_STATUS} AS thread_status, newest FROM ("
        "SELECT thread_id, run_id, status, stop_reason, created_at, "
        "COUNT(*) OVER thread AS runs, SUM(total_tokens) OVER thread AS total_tokens, "
        "SUM(llm_call_count) OVER thread AS llm_calls, "
        f"SUM(CASE WHEN status IN ({_ACTIVE}) THEN 1 ELSE 0 END) OVER thread AS active, "
        "ROW_NUMBER() OVER (PARTITION BY thread_id ORDER BY created_at DESC, seq ASC) AS newest "
        f"FROM runs {user}WINDOW thread AS (PARTITION BY thread_id)) AS per_run) AS per_thread "
        f"WHERE newest = 1{keep} ORDER BY last_created_at DESC, thread_id LIMIT :limit"
    )


async def list_threads(
    store: SQLStoreLike,
    *,
    statuses: Sequence[str] = (),
    user_id: str | None = None,
    limit: int = 50,
) -> list[dict[str, Any]]:
    """Threads, most recently used first: each with its newest run (id, status,
    stop_reason, created_at), its runs' count, tokens and LLM calls, how many are active,
    and its status (idle, busy, interrupted, error); ``statuses`` keeps those."""
    params: dict[str, Any] = {"limit": limit}
    if user_id is not None:
        params["user_id"] = user_id
    params.update({f"status_{i}": status for i, status in enumerate(statuses)})
    statement = _threads_sql(user_id is not None, len(statuses))
    rows: list[dict[str, Any]] = await store.driver.fetch(statement, params)
    for row in rows:
        row.pop("newest", None)
        for name in ("runs", "total_tokens", "llm_calls", "active"):
            row[name] = int(row[name] or 0)
    return rows


_PREFIX_SQLITE = Statement.of(
    # a range read of the run_id index: every id that starts with the prefix sorts between
    # the prefix and the prefix followed by the highest code point
    "SELECT run_id FROM runs WHERE run_id >= :prefix AND run_id < :upper "
    "ORDER BY run_id LIMIT :limit"
)
# PostgreSQL compares run ids in the database's collation, where a prefix range is not a
# prefix test: this reads every id (a command-line lookup, after the exact one missed)
_PREFIX_POSTGRES = Statement.of(
    "SELECT run_id FROM runs WHERE starts_with(run_id, :prefix) ORDER BY run_id LIMIT :limit"
)


async def run_ids_with_prefix(store: SQLStoreLike, prefix: str, *, limit: int = 2) -> list[str]:
    """Up to ``limit`` run ids that start with ``prefix``, in id order."""
    params: dict[str, Any] = {"prefix": prefix, "limit": limit}
    if store.dialect == "sqlite":
        params["upper"] = prefix + "\U0010ffff"
        statement = _PREFIX_SQLITE
    else:
        statement = _PREFIX_POSTGRES
    return [row["run_id"] for row in await store.driver.fetch(statement, params)]


@lru_cache(maxsize=8)
def _latest_events_sql(count: int) -> Statement:
    arms = " UNION ALL ".join(
        "SELECT * FROM (SELECT run_id, seq, ts, kind, data FROM runstore_events "
        f"WHERE run_id = :run_{i} ORDER BY seq DESC LIMIT 1) AS latest_{i}"
        for i in range(count)
    )
    return Statement.of(arms)


async def latest_events(store: SQLStoreLike, run_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Each run's newest event (seq, ts, kind, data as JSON text), by run id; one
    statement, one short read of the journal's key per run."""
    if not run_ids:
        return {}
    params = {f"run_{i}": run_id for i, run_id in enumerate(run_ids)}
    rows = await store.driver.fetch(_latest_events_sql(len(run_ids)), params)
    return {row["run_id"]: row for row in rows}


__all__ = ["SQLStoreLike", "latest_events", "list_threads", "run_ids_with_prefix"]
