"""The query API is served by indexes: the plans of the exact statements the store runs.

SQLite: EXPLAIN QUERY PLAN, without ANALYZE statistics (what a user's file has). PostgreSQL:
EXPLAIN with ``enable_seqscan = off``, since on a small table a sequential scan is cheaper
and would hide whether an index can serve the query at all.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from langgraph_runstore import SQLRunStore
from langgraph_runstore.query import encode_cursor
from langgraph_runstore.store import reads as q
from langgraph_runstore.store.sql import Statement
from tests.backends import libpq_url

pytestmark = pytest.mark.asyncio

CURSOR = encode_cursor("2026-01-15T00:00:00.000000+00:00", 10)
NO_FILTER: dict[str, Any] = {
    "thread_id": None,
    "statuses": (),
    "user_id": None,
    "since": None,
    "until": None,
    "limit": 50,
    "cursor": None,
}
LIST_CASES: dict[str, dict[str, Any]] = {
    "newest": {},
    "thread": {"thread_id": "t1"},
    "status": {"statuses": ("error",)},
    "statuses": {"statuses": ("error", "timeout")},
    "user": {"user_id": "u1"},
    "since": {"since": "2026-01-10"},
    "window": {"since": "2026-01-10", "until": "2026-01-20"},
    "next page": {"cursor": CURSOR},
    "thread+status": {"thread_id": "t1", "statuses": ("success",)},
    "status+since": {"statuses": ("success",), "since": "2026-01-10"},
    "user+next page": {"user_id": "u1", "cursor": CURSOR},
    "thread+statuses+page": {"thread_id": "t1", "statuses": ("error", "success"), "cursor": CURSOR},
}
INDEX_FOR = {
    "newest": "runs_created_idx",
    "thread": "runs_thread_created_idx",
    "status": "runs_status_created_idx",
    "statuses": "runs_status_created_idx",
    "user": "runs_user_created_idx",
    "since": "runs_created_idx",
    "window": "runs_created_idx",
    "next page": "runs_created_idx",
    "thread+status": "runs_thread_created_idx",
    "status+since": "runs_status_created_idx",
    "user+next page": "runs_user_created_idx",
    "thread+statuses+page": "runs_thread_created_idx",
}


def statements(dialect: str) -> dict[str, tuple[Statement, dict[str, Any]]]:
    found = {
        f"list_runs {name}": q.list_runs_query(dialect, **{**NO_FILTER, **case})
        for name, case in LIST_CASES.items()
    }
    for by in ("model", "thread", "user", "day"):
        found[f"aggregate {by} since"] = q.aggregate_query(
            dialect, by=by, since="2026-01-25", until=None
        )
    found["aggregate thread_id"] = q.aggregate_query(
        dialect, by="thread", since=None, until=None, thread_id="t1"
    )
    found["prune batch"] = (q.PRUNE_BATCH, {"cutoff": "2026-01-05", "limit": 100})
    found["prune count"] = (q.PRUNE_COUNT, {"cutoff": "2026-01-05"})
    found["prune delete"] = q.prune_delete_query(["r1", "r2"])
    found["run checkpoints"] = (q.RUN_CHECKPOINTS, {"run_id": "r1"})
    return found


def sample_rows(n: int = 3000) -> list[tuple[str, str, str, str, str, str]]:
    """Rows over 30 days, 300 threads and 7 users; 80% success, 10% error, 10% timeout."""
    statuses = ["success"] * 8 + ["error", "timeout"]
    rows = []
    for i in range(n):
        created = f"2026-01-{1 + i * 30 // n:02d}T00:00:{i % 60:02d}.000000+00:00"
        rows.append((f"r{i}", f"t{i % 300}", f"u{i % 7}", statuses[i % 10], created, created))
    return rows


async def test_sqlite_plans_use_indexes(sqlite_url: str, tmp_path: Path) -> None:
    async with SQLRunStore.from_url(sqlite_url):
        pass
    conn = sqlite3.connect(tmp_path / "runstore.db")
    try:
        conn.executemany(
            "INSERT INTO runs (run_id, thread_id, user_id, status, created_at, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            sample_rows(),
        )
        conn.commit()
        for name, (statement, params) in statements("sqlite").items():
            plan = [
                row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + statement.sqlite, params)
            ]
            text = " | ".join(plan)
            table_steps = [
                line
                for line in plan
                if line.startswith(("SCAN r", "SEARCH r")) and "VIRTUAL" not in line
            ]
            assert table_steps, f"{name}: {text}"
            for line in table_steps:
                assert "USING" in line and "INDEX" in line, (
                    f"{name} reads the table without an index: {text}"
                )
            if name.startswith("list_runs"):
                case = name.removeprefix("list_runs ")
                assert INDEX_FOR[case] in text, f"{name}: {text}"
                if case != "statuses":  # the merge of per-status arms sorts at most a page each
                    assert "TEMP B-TREE" not in text, f"{name} sorts every match: {text}"
            if name.startswith("aggregate") and "since" in name:
                assert "runs_created_idx (created_at>?)" in text, f"{name}: {text}"
            if name.startswith("prune batch") or name.startswith("prune count"):
                assert "runs_status_created_idx (status=? AND created_at<?)" in text, text
    finally:
        conn.close()


@pytest.mark.postgres
async def test_postgres_plans_use_index_scans(pg_url: str) -> None:
    import asyncpg

    async with SQLRunStore.from_url(pg_url):
        pass
    conn = await asyncpg.connect(libpq_url(pg_url))
    try:
        await conn.executemany(
            "INSERT INTO runs (run_id, thread_id, user_id, status, created_at, updated_at) "
            "VALUES ($1, $2, $3, $4, $5, $6)",
            sample_rows(),
        )
        await conn.execute("ANALYZE runs")
        await conn.execute("ANALYZE rs_checkpoints")
        await conn.execute("SET enable_seqscan = off")
        for name, (statement, params) in statements("postgresql").items():
            rows = await conn.fetch("EXPLAIN " + statement.postgresql, *statement.args(params))
            text = "\n".join(row[0] for row in rows)
            assert "Seq Scan" not in text, f"{name}:\n{text}"
            assert "Index" in text, f"{name}:\n{text}"
            # PostgreSQL chooses among the indexes by cost (for a status most runs have,
            # created_at order plus a filter wins), so only selective filters name theirs
            if name in ("list_runs thread", "list_runs thread+status", "aggregate thread_id"):
                assert "runs_thread_created_idx" in text, f"{name}:\n{text}"
            if name == "list_runs user":
                assert "runs_user_created_idx" in text, f"{name}:\n{text}"
    finally:
        await conn.close()
