"""The assistant, model and metadata filters of ``list_runs`` and ``aggregate_usage``, on
every backend and through the managers, their bad input, and the query plans that serve
them (an index read in page order; on PostgreSQL the metadata's GIN index)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from langgraph_runstore import InvalidInputError, RunManager, RunStore, SQLRunStore
from langgraph_runstore.store import reads as q
from tests.backends import libpq_url

pytestmark = pytest.mark.asyncio

RUNS = [
    # run_id, assistant, model, metadata, total tokens
    ("r1", "support", "gpt-a", {"tier": "gold", "region": "eu", "n": 3}, 10),
    ("r2", "support", "gpt-b", {"tier": "free", "n": 3.0}, 20),
    ("r3", "sales", "gpt-a", {"tier": "gold", "beta": True, "n": "3"}, 30),
    ("r4", None, None, {}, 40),
    ("r5", "sales", "gpt-a", {"tier": None, "beta": False}, 50),
]


async def fill(store: RunStore) -> None:
    for i, (run_id, assistant, model, metadata, tokens) in enumerate(RUNS):
        await store.put(
            run_id,
            thread_id=f"t{i % 2}",
            assistant_id=assistant,
            model_name=model,
            metadata=metadata,
            status="success",
            total_tokens=tokens,
            created_at=f"2026-01-0{i + 1}T00:00:00+00:00",
        )


def ids(page: Any) -> list[str]:
    return sorted(row["run_id"] for row in page)


async def test_list_runs_filters(store: RunStore) -> None:
    await fill(store)
    assert ids(await store.list_runs(assistant_id="support")) == ["r1", "r2"]
    assert ids(await store.list_runs(model="gpt-a")) == ["r1", "r3", "r5"]
    assert ids(await store.list_runs(metadata={"tier": "gold"})) == ["r1", "r3"]
    assert ids(await store.list_runs(metadata={"tier": "gold", "region": "eu"})) == ["r1"]
    # JSON equality: 3 and 3.0 are one number, "3" is text, None matches a stored null only
    assert ids(await store.list_runs(metadata={"n": 3})) == ["r1", "r2"]
    assert ids(await store.list_runs(metadata={"n": "3"})) == ["r3"]
    assert ids(await store.list_runs(metadata={"tier": None})) == ["r5"]
    assert ids(await store.list_runs(metadata={"beta": True})) == ["r3"]
    assert ids(await store.list_runs(metadata={"beta": False})) == ["r5"]
    assert ids(await store.list_runs(metadata={"missing": "x"})) == []
    both = await store.list_runs(assistant_id="sales", model="gpt-a", thread_id="t0")
    assert ids(both) == ["r3", "r5"]
    first = await store.list_runs(model="gpt-a", limit=2)
    rest = await store.list_runs(model="gpt-a", limit=2, cursor=first.next_cursor)
    assert [r["run_id"] for r in first] + [r["run_id"] for r in rest] == ["r5", "r3", "r1"]


async def test_aggregate_usage_filters(store: RunStore) -> None:
    await fill(store)
    rows = await store.aggregate_usage(by="thread", assistant_id="sales")
    assert {row.key: row.tokens.total_tokens for row in rows} == {"t0": 80}
    rows = await store.aggregate_usage(by="day", metadata={"tier": "gold"})
    assert [row.tokens.total_tokens for row in rows] == [10, 30]
    rows = await store.aggregate_usage(by="model", model="gpt-a", metadata={"beta": True})
    assert [(row.key, row.runs) for row in rows] == [("gpt-a", 1)]


async def test_the_managers_pass_the_filters_on(db_url: str) -> None:
    async with SQLRunStore.from_url(db_url) as store, RunManager(store) as manager:
        await fill(store)
        page = await manager.list_runs(assistant_id="support", metadata={"n": 3})
        assert sorted(r.run_id for r in page) == ["r1", "r2"]
        rows = await manager.aggregate_usage(by="user", model="gpt-b")
        assert [row.runs for row in rows] == [1]
    async with RunManager() as memory_only:  # the runs it holds, filtered alike
        record = await memory_only.create("t", assistant_id="a1", metadata={"k": "v"})
        other = await memory_only.create("u", assistant_id="a2")
        assert [r.run_id for r in await memory_only.list_runs(assistant_id="a1")] == [record.run_id]
        assert [r.run_id for r in await memory_only.list_runs(metadata={"k": "v"})] == [
            record.run_id
        ]
        assert other.run_id not in {r.run_id for r in await memory_only.list_runs(model="m")}


async def test_bad_filters_are_refused(store: RunStore) -> None:
    bad: list[tuple[dict[str, Any], str]] = [
        ({"metadata": ["tier", "gold"]}, "must be a mapping"),
        ({"metadata": {"tier": {"nested": 1}}}, "must be text, a number, a boolean or None"),
        ({"metadata": {"": "x"}}, "keys must be non-empty text"),
        ({"metadata": {f"k{i}": i for i in range(17)}}, "at most 16"),
        ({"metadata": {"n": float("nan")}}, "must be finite"),
        ({"assistant_id": ""}, "assistant_id filter must be non-empty text"),
        ({"model": 3}, "model filter must be non-empty text"),
    ]
    for options, message in bad:
        with pytest.raises(InvalidInputError, match=message):
            await store.list_runs(**options)
        with pytest.raises(InvalidInputError, match=message):
            await store.aggregate_usage(**options)


FILTER_CASES: dict[str, dict[str, Any]] = {
    "assistant": {"assistant_id": "a1"},
    "model": {"model": "m1"},
    "metadata": {"metadata": (("tier", "gold"),)},
    "assistant+cursor": {"assistant_id": "a1", "cursor": "WyIyMDI2LTAxLTE1IiwxMF0"},
    "model+since": {"model": "m1", "since": "2026-01-10"},
    "metadata+status": {"metadata": (("tier", "gold"),), "statuses": ("error",)},
}
SQLITE_INDEX = {
    "assistant": "runs_assistant_created_idx",
    "model": "runs_model_created_idx",
    "metadata": "runs_created_idx",
    "assistant+cursor": "runs_assistant_created_idx",
    "model+since": "runs_model_created_idx",
    "metadata+status": "runs_status_created_idx",
}
BASE: dict[str, Any] = {
    "thread_id": None,
    "statuses": (),
    "user_id": None,
    "since": None,
    "until": None,
    "limit": 50,
    "cursor": None,
}


def sample() -> list[tuple[Any, ...]]:
    rows = []
    for i in range(3000):
        created = f"2026-01-{1 + i * 30 // 3000:02d}T00:00:{i % 60:02d}.000000+00:00"
        metadata = json.dumps({"tier": "gold" if i % 50 == 0 else "free"}) if i % 3 else "{}"
        status = "error" if i % 10 == 0 else "success"
        assistant = f"a{i % 40}" if i % 2 else None
        model = f"m{i % 30}" if i % 4 else None
        rows.append((f"r{i}", f"t{i % 300}", assistant, model, metadata, status, created, created))
    return rows


INSERT = (
    "INSERT INTO runs (run_id, thread_id, assistant_id, model_name, metadata, status, "
    "created_at, updated_at) VALUES ({})"
)


async def test_sqlite_plans_of_the_filters(sqlite_url: str, tmp_path: Path) -> None:
    async with SQLRunStore.from_url(sqlite_url):
        pass
    conn = sqlite3.connect(tmp_path / "runstore.db")
    try:
        conn.executemany(INSERT.format(", ".join("?" * 8)), sample())
        conn.commit()
        for name, case in FILTER_CASES.items():
            statement, params = q.list_runs_query("sqlite", **{**BASE, **case})
            plan = " | ".join(
                row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + statement.sqlite, params)
            )
            assert SQLITE_INDEX[name] in plan, f"{name}: {plan}"
            assert "TEMP B-TREE" not in plan, f"{name} sorts every match: {plan}"
            assert "SCAN runs\n" not in plan and not plan.startswith("SCAN runs |")
        for name, case in FILTER_CASES.items():
            if "cursor" in case:
                continue
            statement, params = q.aggregate_query(
                "sqlite",
                by="thread",
                since="2026-01-25",
                until=None,
                **{k: v for k, v in case.items() if k in ("assistant_id", "model", "metadata")},
            )
            plan = " | ".join(
                row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + statement.sqlite, params)
            )
            assert "USING INDEX" in plan or "USING COVERING INDEX" in plan, f"{name}: {plan}"
    finally:
        conn.close()


@pytest.mark.postgres
async def test_postgres_plans_of_the_filters(pg_url: str) -> None:
    import asyncpg

    async with SQLRunStore.from_url(pg_url):
        pass
    conn = await asyncpg.connect(libpq_url(pg_url))
    try:
        await conn.executemany(INSERT.format(", ".join(f"${i}" for i in range(1, 9))), sample())
        await conn.execute("ANALYZE runs")
        await conn.execute("SET enable_seqscan = off")
        for name, case in FILTER_CASES.items():
            statement, params = q.list_runs_query("postgresql", **{**BASE, **case})
            rows = await conn.fetch("EXPLAIN " + statement.postgresql, *statement.args(params))
            plan = "\n".join(row[0] for row in rows)
            assert "Seq Scan" not in plan and "Index" in plan, f"{name}:\n{plan}"
            if name == "metadata":
                assert "runs_metadata_idx" in plan, plan
            if name == "assistant":
                assert "runs_assistant_created_idx" in plan, plan
            if name == "model":
                assert "runs_model_created_idx" in plan, plan
    finally:
        await conn.close()
