"""Latency percentiles of ``aggregate_usage`` in SQL, computed in the database.

PostgreSQL has ``percentile_cont``. SQLite has none, so the same interpolation is written
with window functions: each group's samples are numbered in order (``ROW_NUMBER``) and
counted (``COUNT``), and the percentile ``p`` is the sample at rank ``floor(p * (n - 1))``
plus the fraction ``p * (n - 1) - floor(...)`` of the step to the next one. Both give the
same numbers as ``latency.percentile_cont``.

Two kinds of sample: ``duration``, each finished run's started_at to ended_at (on SQLite
from the stored text to the microsecond, since ``julianday`` keeps milliseconds only), and
``llm_call``, each LLM call duration the runs recorded in ``llm_call_ms``.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from langgraph_runstore.latency import PERCENTILES
from langgraph_runstore.query import UNKNOWN_MODEL
from langgraph_runstore.store.statements import Statement


def group_key(dialect: str, by: str) -> str:
    """The group key expression of ``aggregate_usage(by=...)`` for every grouping but model."""
    # created_at is UTC ISO-8601 text: its first ten characters are the UTC day
    # on SQLite "+" (a no-op) stops the planner from scanning the whole thread or user
    # index for the grouping instead of reading the created_at range
    demote = "+" if dialect == "sqlite" else ""
    return {
        "thread": f"{demote}r.thread_id",
        "user": f"{demote}r.user_id",
        "assistant": "r.assistant_id",
        "day": "substr(r.created_at, 1, 10)",
    }[by]


def _run_ms(dialect: str) -> str:
    if dialect == "sqlite":
        # canonical text: whole seconds through strftime, the six fraction digits as a number
        def at(column: str) -> tuple[str, str]:
            whole = f"CAST(strftime('%s', {column}) AS INTEGER)"
            return whole, f"CAST(substr({column}, 20, 7) AS REAL)"

        (end_s, end_f), (start_s, start_f) = at("r.ended_at"), at("r.started_at")
        return f"(({end_s} - {start_s}) * 1000.0 + ({end_f} - {start_f}) * 1000.0)"
    elapsed = "CAST(r.ended_at AS timestamptz) - CAST(r.started_at AS timestamptz)"
    return f"CAST(EXTRACT(EPOCH FROM ({elapsed})) * 1000 AS double precision)"


def _samples(dialect: str, kind: str, by: str) -> tuple[str, str, str, list[str]]:
    """(key, sample, FROM, extra WHERE clauses) of one kind of sample."""
    if kind == "duration":
        where = ["r.started_at IS NOT NULL", "r.ended_at IS NOT NULL"]
        if by != "model":
            return group_key(dialect, by), _run_ms(dialect), "runs AS r", where
        if dialect == "sqlite":
            source = "runs AS r LEFT JOIN json_each(r.token_usage_by_model) AS j"
        else:
            source = (
                "runs AS r LEFT JOIN LATERAL "
                "jsonb_each(CAST(r.token_usage_by_model AS jsonb)) AS j ON true"
            )
        key = f"COALESCE(j.key, r.model_name, '{UNKNOWN_MODEL}')"
        return key, _run_ms(dialect), source, where
    if dialect == "sqlite":
        source = "runs AS r JOIN json_each(r.llm_call_ms) AS m JOIN json_each(m.value) AS c"
        sample = "c.value"
    else:
        source = (
            "runs AS r CROSS JOIN LATERAL jsonb_each(CAST(r.llm_call_ms AS jsonb)) AS m "
            "CROSS JOIN LATERAL jsonb_array_elements_text(m.value) AS c(v)"
        )
        sample = "CAST(c.v AS double precision)"
    key = "m.key" if by == "model" else group_key(dialect, by)
    return key, sample, source, []


def _interpolated(fraction: float) -> str:
    rank = f"CAST({fraction} * (n - 1) AS INTEGER)"
    low = f"MAX(CASE WHEN i = {rank} THEN x END)"
    high = f"COALESCE(MAX(CASE WHEN i = {rank} + 1 THEN x END), {low})"
    return f"({low} + MAX({fraction} * (n - 1) - {rank}) * ({high} - {low}))"


@lru_cache(maxsize=64)
def percentile_sql(dialect: str, kind: str, by: str, clauses: tuple[str, ...]) -> Statement:
    """p50 and p95 of ``kind`` samples per group key, filtered by ``clauses``."""
    key, sample, source, where = _samples(dialect, kind, by)
    where_sql = " AND ".join((*clauses, *where))
    inner = f"SELECT {key} AS key, {sample} AS x FROM {source}" + (
        f" WHERE {where_sql}" if where_sql else ""
    )
    low, high = PERCENTILES
    if dialect == "postgresql":
        return Statement.of(
            f"SELECT key, percentile_cont({low}) WITHIN GROUP (ORDER BY x) AS p50, "
            f"percentile_cont({high}) WITHIN GROUP (ORDER BY x) AS p95 "
            f"FROM ({inner}) AS s WHERE x IS NOT NULL GROUP BY key"
        )
    ranked = (
        "SELECT key, x, ROW_NUMBER() OVER (PARTITION BY key ORDER BY x) - 1 AS i, "
        f"COUNT(*) OVER (PARTITION BY key) AS n FROM ({inner}) AS s WHERE x IS NOT NULL"
    )
    return Statement.of(
        f"SELECT key, {_interpolated(low)} AS p50, {_interpolated(high)} AS p95 "
        f"FROM ({ranked}) AS v GROUP BY key"
    )


def percentile_query(
    dialect: str, *, kind: str, by: str, clauses: tuple[str, ...], params: dict[str, Any]
) -> tuple[Statement, dict[str, Any]]:
    """The percentile statement and its parameters (the aggregate's filters)."""
    return percentile_sql(dialect, kind, by, clauses), params


__all__ = ["group_key", "percentile_query", "percentile_sql"]
