"""SQL of the read side (list_runs, aggregate_usage, top_runs), of pruning and of deleting one
run, per dialect.

Every builder returns a ``Statement`` and its parameters, so tests can EXPLAIN exactly what
the store runs. Filters become ``:name`` parameters; only column names and fixed status
literals are ever put into the text.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from functools import lru_cache
from typing import Any, Protocol

from langgraph_runstore.query import (
    FINAL_STATUS_VALUES,
    UNKNOWN_MODEL,
    PruneResult,
    RunPage,
    UsageRow,
    add_to_group,
    decode_cursor,
    encode_cursor,
    sort_usage,
    usage_rows,
)
from langgraph_runstore.schemas import TOKEN_FIELDS
from langgraph_runstore.store.base import refuse_active
from langgraph_runstore.store.percentiles import group_key, percentile_query
from langgraph_runstore.store.statements import SELECT_COLUMNS, Statement


class RunsDatabase(Protocol):
    """What the read side needs of a SQL run store (``SQLRunStore`` hands one over)."""

    @property
    def dialect(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""

    async def fetch(self, statement: Statement, params: dict[str, Any]) -> list[dict[str, Any]]:
        """Rows as the driver returns them."""

    async def fetch_runs(
        self, statement: Statement, params: dict[str, Any]
    ) -> list[dict[str, Any]]:
        """Runs rows, their JSON fields decoded."""

    async def execute(self, statement: Statement, params: dict[str, Any]) -> int:
        """Run a write; the number of rows it changed."""

    async def delete_checkpoints(self, run_ids: list[str]) -> None:
        """Remove the checkpoints and writes of these runs."""


_FINAL_SQL = ", ".join(f"'{status}'" for status in FINAL_STATUS_VALUES)


def _window(
    clauses: list[str], params: dict[str, Any], since: str | None, until: str | None, prefix: str
) -> None:
    if since is not None:
        clauses.append(f"{prefix}created_at >= :since")
        params["since"] = since
    if until is not None:
        clauses.append(f"{prefix}created_at < :until")
        params["until"] = until


def list_runs_query(
    dialect: str,
    *,
    thread_id: str | None,
    statuses: tuple[str, ...],
    user_id: str | None,
    since: str | None,
    until: str | None,
    limit: int,
    cursor: str | None,
) -> tuple[Statement, dict[str, Any]]:
    """One page of runs, newest first, ties in insertion order; fetches ``limit + 1`` rows
    so the caller knows whether another page follows.

    Every shape is an index range read in page order: by thread, status, user or
    created_at. Several statuses become one arm per status, each reading at most a page
    from the status index, merged by the outer ORDER BY (an IN list would sort every
    matching run).
    """
    params: dict[str, Any] = {"limit": limit + 1}
    # SQLite without ANALYZE statistics prefers the status or user index to the thread
    # index; a thread has few runs, so "+column" (a no-op) keeps those out of the choice
    demote = "+" if dialect == "sqlite" and thread_id is not None else ""
    clauses: list[str] = []
    if thread_id is not None:
        clauses.append("thread_id = :thread_id")
        params["thread_id"] = thread_id
    if user_id is not None:
        clauses.append(f"{demote}user_id = :user_id")
        params["user_id"] = user_id
    _window(clauses, params, since, until, "")
    if cursor is not None:
        created_at, seq = decode_cursor(cursor)
        # the first term gives the index a range to seek to; the second picks up the rows
        # that share the last created_at (ties go by ascending seq)
        clauses.append(
            "created_at <= :cursor_at AND (created_at < :cursor_at OR seq > :cursor_seq)"
        )
        params.update(cursor_at=created_at, cursor_seq=seq)
    names = [f"status_{i}" for i in range(len(statuses))]
    params.update(zip(names, statuses, strict=True))
    arms = len(statuses) if len(statuses) > 1 and thread_id is None else 0
    if statuses and not arms:
        clauses.append(f"{demote}status IN ({', '.join(':' + name for name in names)})")
    return _list_runs_sql(dialect, tuple(clauses), arms), params


_PAGE_ORDER = "ORDER BY created_at DESC, seq ASC LIMIT :limit"


@lru_cache(maxsize=256)
def _list_runs_sql(dialect: str, clauses: tuple[str, ...], arms: int) -> Statement:
    if not arms:
        where = f"WHERE {' AND '.join(clauses)} " if clauses else ""
        return Statement.of(f"SELECT {SELECT_COLUMNS} FROM runs {where}{_PAGE_ORDER}")
    selects = []
    for i in range(arms):
        where = " AND ".join((*clauses, f"status = :status_{i}"))
        selects.append(
            f"SELECT * FROM (SELECT {SELECT_COLUMNS} FROM runs WHERE {where} {_PAGE_ORDER}) "
            f"AS arm_{i}"
        )
    return Statement.of(f"{' UNION ALL '.join(selects)} {_PAGE_ORDER}")


def _token_sum(dialect: str, name: str, kind: str = "bigint", zero: str | None = "0") -> str:
    """SUM of one field for ``by="model"``: from the per-model JSON entry when the run has
    one, else from the run's own column (rows that record no per-model usage). ``zero``
    stands in for a missing entry field (None: it stays NULL, as an unpriced cost does)."""
    if dialect == "sqlite":
        per_model = f"json_extract(j.value, '$.{name}')"
    else:  # CAST, not "::": Statement.of reads ":name" as a parameter
        per_model = f"CAST(j.value ->> '{name}' AS {kind})"
    if zero is not None:
        per_model = f"COALESCE({per_model}, {zero})"
    total = f"SUM(CASE WHEN j.key IS NULL THEN r.{name} ELSE {per_model} END)"
    return total if dialect == "sqlite" else f"CAST({total} AS {kind})"


def aggregate_query(
    dialect: str,
    *,
    by: str,
    since: str | None,
    until: str | None,
    thread_id: str | None = None,
    user_id: str | None = None,
) -> tuple[Statement, dict[str, Any]]:
    """Counts and sums per (group key, status); the caller folds statuses into groups."""
    clauses, params = aggregate_filters(
        since=since, until=until, thread_id=thread_id, user_id=user_id
    )
    return _aggregate_sql(dialect, by, clauses), params


def aggregate_filters(
    *, since: str | None, until: str | None, thread_id: str | None, user_id: str | None
) -> tuple[tuple[str, ...], dict[str, Any]]:
    """The WHERE clauses (over ``runs AS r``) and parameters of an aggregate's filters."""
    clauses: list[str] = []
    params: dict[str, Any] = {}
    if thread_id is not None:
        clauses.append("r.thread_id = :thread_id")
        params["thread_id"] = thread_id
    if user_id is not None:
        clauses.append("r.user_id = :user_id")
        params["user_id"] = user_id
    _window(clauses, params, since, until, "r.")
    return tuple(clauses), params


@lru_cache(maxsize=64)
def _aggregate_sql(dialect: str, by: str, clauses: tuple[str, ...]) -> Statement:
    where = f" WHERE {' AND '.join(clauses)}" if clauses else ""

    def total(expression: str) -> str:
        # PostgreSQL sums bigint into numeric; keep plain integers
        return (
            f"CAST(SUM({expression}) AS bigint)"
            if dialect == "postgresql"
            else f"SUM({expression})"
        )

    if by == "model":
        key = f"COALESCE(j.key, r.model_name, '{UNKNOWN_MODEL}')"
        if dialect == "sqlite":
            source = "runs AS r LEFT JOIN json_each(r.token_usage_by_model) AS j"
        else:  # the column is JSON text, so cast it for jsonb_each
            source = (
                "runs AS r LEFT JOIN LATERAL "
                "jsonb_each(CAST(r.token_usage_by_model AS jsonb)) AS j ON true"
            )
        tokens = [f"{_token_sum(dialect, name)} AS {name}" for name in TOKEN_FIELDS]
        tokens += [
            f"{_token_sum(dialect, 'cost_usd', 'double precision', None)} AS cost_usd",
            f"{_token_sum(dialect, 'unpriced_calls')} AS unpriced_calls",
            f"{_token_sum(dialect, 'llm_ms', 'double precision')} AS llm_ms",
        ]
        # the model's own calls when its entry counts them (older rows: the run's)
        per_model_calls = (
            "json_extract(j.value, '$.llm_call_count')"
            if dialect == "sqlite"
            else "CAST(j.value ->> 'llm_call_count' AS bigint)"
        )
        calls = total(f"COALESCE({per_model_calls}, r.llm_call_count)")
    else:
        key = group_key(dialect, by)
        source = "runs AS r"
        tokens = [f"{total('r.' + name)} AS {name}" for name in TOKEN_FIELDS]
        tokens += [
            f"{total('r.unpriced_calls')} AS unpriced_calls",
            "SUM(r.cost_usd) AS cost_usd",
            "SUM(r.llm_ms) AS llm_ms",
        ]
        calls = total("r.llm_call_count")
    columns = ", ".join(
        [
            f"{key} AS key",
            "r.status AS status",
            "COUNT(*) AS runs",
            f"{calls} AS llm_calls",
            total(
                "CASE WHEN r.status = 'success' AND r.stop_reason = 'interrupt' THEN 1 ELSE 0 END"
            )
            + " AS paused",
            *tokens,
        ]
    )
    return Statement.of(f"SELECT {columns} FROM {source}{where} GROUP BY 1, 2")


def top_runs_query(
    dialect: str,
    *,
    by: str,
    since: str | None,
    until: str | None,
    limit: int,
    user_id: str | None = None,
) -> tuple[Statement, dict[str, Any]]:
    """The ``limit`` longest finished runs, or those with the most tokens or the highest
    cost (of one user)."""
    clauses: list[str] = []
    params: dict[str, Any] = {"limit": limit}
    if user_id is not None:
        clauses.append("user_id = :user_id")
        params["user_id"] = user_id
    _window(clauses, params, since, until, "")
    return _top_sql(dialect, by, tuple(clauses)), params


@lru_cache(maxsize=32)
def _top_sql(dialect: str, by: str, clauses: tuple[str, ...]) -> Statement:
    where = list(clauses)
    if by == "duration":
        if dialect == "sqlite":
            score = "(julianday(ended_at) - julianday(started_at)) * 86400.0"
        else:
            elapsed = "CAST(ended_at AS timestamptz) - CAST(started_at AS timestamptz)"
            score = f"EXTRACT(EPOCH FROM ({elapsed}))"
        where += ["started_at IS NOT NULL", "ended_at IS NOT NULL"]
    elif by == "cost":
        score = "cost_usd"
        where.append("cost_usd > 0")
    else:
        score = "total_tokens"
        where.append("total_tokens > 0")
    return Statement.of(
        f"SELECT {SELECT_COLUMNS} FROM runs WHERE {' AND '.join(where)} "
        f"ORDER BY {score} DESC, created_at ASC LIMIT :limit"
    )


PRUNE_COUNT = Statement.of(
    f"SELECT COUNT(*) AS n FROM runs WHERE status IN ({_FINAL_SQL}) AND created_at < :cutoff"
)
PRUNE_BATCH = Statement.of(
    f"SELECT run_id FROM runs WHERE status IN ({_FINAL_SQL}) AND created_at < :cutoff LIMIT :limit"
)


def prune_delete_query(run_ids: list[str]) -> tuple[Statement, dict[str, Any]]:
    """Delete these runs, re-checking that each is finished (pending and running stay)."""
    names = [f"id_{i}" for i in range(len(run_ids))]
    return _prune_delete_sql(len(run_ids)), dict(zip(names, run_ids, strict=True))


@lru_cache(maxsize=32)
def _prune_delete_sql(count: int) -> Statement:
    ids = ", ".join(f":id_{i}" for i in range(count))
    return Statement.of(f"DELETE FROM runs WHERE run_id IN ({ids}) AND status IN ({_FINAL_SQL})")


_RUN_STATUS = Statement.of("SELECT thread_id, status FROM runs WHERE run_id = :run_id")

RUN_CHECKPOINTS = Statement.of(
    "SELECT thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id, metadata "
    "FROM rs_checkpoints WHERE run_id = :run_id ORDER BY thread_id, checkpoint_ns, checkpoint_id"
)


# -- the SQLRunStore read methods, kept here so the store module stays about writes ---------------

#: Target duration of one prune write: well under the ~100 ms a waiting writer should see.
PRUNE_TARGET_SECONDS = 0.02
PRUNE_FIRST_BATCH = 100
PRUNE_MIN_BATCH = 10
#: Shortest pause between prune batches on SQLite (see prune_runs).
PRUNE_SQLITE_PAUSE_SECONDS = 0.005


async def list_runs(store: RunsDatabase, **filters: Any) -> RunPage[dict[str, Any]]:
    """``SQLRunStore.list_runs`` after argument checks."""
    limit = filters["limit"]
    statement, params = list_runs_query(store.dialect, **filters)
    rows = await store.fetch_runs(statement, params)
    page = rows[:limit]
    more = len(rows) > limit
    next_cursor = encode_cursor(page[-1]["created_at"], page[-1]["seq"]) if more else None
    return RunPage(tuple(page), next_cursor)


async def aggregate_usage(store: RunsDatabase, *, by: str, **filters: Any) -> list[UsageRow]:
    """``SQLRunStore.aggregate_usage`` after argument checks."""
    statement, params = aggregate_query(store.dialect, by=by, **filters)
    groups: dict[str | None, dict[str, Any]] = {}
    for row in await store.fetch(statement, params):
        add_to_group(
            groups, row["key"], row["status"], row["runs"], row["llm_calls"], row, row["paused"]
        )
    latency: dict[str | None, dict[str, float | None]] = {}
    clauses, params = aggregate_filters(**filters)
    for kind in ("duration", "llm_call"):
        statement, params = percentile_query(
            store.dialect, kind=kind, by=by, clauses=clauses, params=params
        )
        for row in await store.fetch(statement, params):
            entry = latency.setdefault(row["key"], {})
            entry[f"{kind}_p50_ms"] = _float(row["p50"])
            entry[f"{kind}_p95_ms"] = _float(row["p95"])
    return sort_usage(by, usage_rows(groups, latency))


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


async def top_runs(store: RunsDatabase, **options: Any) -> list[dict[str, Any]]:
    """``SQLRunStore.top_runs`` after argument checks."""
    statement, params = top_runs_query(store.dialect, **options)
    return await store.fetch_runs(statement, params)


async def run_checkpoints(store: RunsDatabase, run_id: str) -> list[dict[str, Any]]:
    """The checkpoints whose metadata names ``run_id``, oldest first per thread/namespace."""
    result = []
    for row in await store.fetch(RUN_CHECKPOINTS, {"run_id": run_id}):
        metadata = row.pop("metadata")
        if isinstance(metadata, (str, bytes)):
            metadata = json.loads(metadata)
        metadata = metadata if isinstance(metadata, dict) else {}
        row.update(step=metadata.get("step"), source=metadata.get("source"), metadata=metadata)
        result.append(row)
    return result


async def prune_runs(
    store: RunsDatabase,
    *,
    cutoff: str,
    include_checkpoints: bool,
    dry_run: bool,
    on_progress: Callable[[int], None] | None,
    max_batch: int,
) -> PruneResult:
    """Delete finished runs created before ``cutoff`` in batches sized to short writes.

    Each batch is one checkpoint delete (the saver's ``adelete_for_runs``) then one delete of
    the runs, each its own short transaction; each batch is sized from the last one's
    duration so that a write takes about PRUNE_TARGET_SECONDS. Checkpoints go first: if the
    prune stops between the two, the runs are still there and the next prune finishes.
    """
    driver = store
    if dry_run:
        rows = await driver.fetch(PRUNE_COUNT, {"cutoff": cutoff})
        return PruneResult(runs=int(rows[0]["n"]), cutoff=cutoff, dry_run=True)
    size = min(PRUNE_FIRST_BATCH, max_batch)
    total = batches = 0
    longest = 0.0
    while True:
        found = await driver.fetch(PRUNE_BATCH, {"cutoff": cutoff, "limit": size})
        ids = [row["run_id"] for row in found]
        if not ids:
            break
        write = 0.0
        if include_checkpoints:
            started = time.perf_counter()
            await store.delete_checkpoints(ids)
            write = time.perf_counter() - started
        started = time.perf_counter()
        deleted = await driver.execute(*prune_delete_query(ids))
        write = max(write, time.perf_counter() - started)
        longest = max(longest, write)
        total += deleted
        batches += 1
        if on_progress is not None:
            on_progress(deleted)
        # aim the next batch at the target duration, growing at most twofold per batch
        ideal = int(size * PRUNE_TARGET_SECONDS / max(write, 1e-4))
        size = max(PRUNE_MIN_BATCH, min(ideal, size * 2, max_batch))
        if store.dialect == "sqlite":
            # SQLite has no queue for its lock: a writer waiting in its busy handler polls
            # with growing sleeps, so leave a gap as long as the write for it to land in
            await asyncio.sleep(max(PRUNE_SQLITE_PAUSE_SECONDS, write))
    return PruneResult(runs=total, batches=batches, longest_write_seconds=longest, cutoff=cutoff)


async def delete_run(store: RunsDatabase, run_id: str, *, include_checkpoints: bool) -> bool:
    """``SQLRunStore.delete_run``: one finished run, as a prune batch of one. Checkpoints go
    first, so a delete cut in between leaves the row, and the next delete finishes."""
    found = await store.fetch(_RUN_STATUS, {"run_id": run_id})
    if not found:
        return False
    refuse_active(run_id, found[0])
    if include_checkpoints:
        await store.delete_checkpoints([run_id])
    # the statement checks the status again: a row that is not finished stays
    return bool(await store.execute(*prune_delete_query([run_id])))
