"""Cost and latency on the read side, on memory, SQLite and PostgreSQL: ``aggregate_usage``
sums cost per grouping and computes p50/p95 of run and LLM-call durations in the database,
``top_runs(by="cost")`` ranks by money. Every expected number is worked out by hand below.

percentile_cont(p) of n sorted samples: rank r = p * (n - 1); the sample at floor(r) plus
(r - floor(r)) of the step to the next sample.
"""

from __future__ import annotations

from typing import Any

import pytest

from langgraph_runstore import RunStore, SQLRunStore
from langgraph_runstore.latency import percentile_cont
from langgraph_runstore.store.percentiles import percentile_sql

pytestmark = pytest.mark.anyio

T0 = "2026-03-01T12:00:00.000000+00:00"


def at(ms: float) -> str:
    """T0 plus ``ms`` milliseconds, in the stored text form (microseconds)."""
    whole, micros = divmod(round(ms * 1000), 1_000_000)
    return f"2026-03-01T12:00:{whole:02d}.{micros:06d}+00:00"


def entry(tokens: int, calls: int, ms: float, cost: float | None, unpriced: int = 0) -> dict:
    return {
        "input_tokens": tokens,
        "output_tokens": 0,
        "total_tokens": tokens,
        "llm_call_count": calls,
        "llm_ms": ms,
        "cost_usd": cost,
        "unpriced_calls": unpriced,
    }


async def seed(store: RunStore) -> None:
    """Thread t1 (assistant "agent"): four finished runs of 100.5, 200, 300 and 400 ms and a
    running one; thread t2 (assistant "helper"): one run of 50 ms. Calls of model m-a:
    10, 20, 40 ms; of m-b: 30 ms (t1) and 5 ms (t2, an unpriced model)."""

    async def run(run_id: str, thread: str, ms: float | None, **fields: Any) -> None:
        await store.put(
            run_id,
            thread_id=thread,
            assistant_id="agent" if thread == "t1" else "helper",
            status="success" if ms is not None else "running",
            created_at=T0,
            started_at=T0,
            ended_at=at(ms) if ms is not None else None,
            **fields,
        )

    await run(
        "r1",
        "t1",
        100.5,
        total_tokens=30,
        input_tokens=30,
        llm_call_count=3,
        cost_usd=0.25,
        llm_ms=60.0,
        token_usage_by_model={"m-a": entry(10, 2, 30.0, 0.05), "m-b": entry(20, 1, 30.0, 0.2)},
        llm_call_ms={"m-a": [10.0, 20.0], "m-b": [30.0]},
    )
    await run(
        "r2",
        "t1",
        200,
        total_tokens=5,
        input_tokens=5,
        llm_call_count=1,
        cost_usd=1.5,
        llm_ms=40.0,
        token_usage_by_model={"m-a": entry(5, 1, 40.0, 1.5)},
        llm_call_ms={"m-a": [40.0]},
    )
    await run("r3", "t1", 300)  # no LLM call at all
    await run("r4", "t1", 400)
    await run("r5", "t1", None)  # running: no duration yet
    await run(
        "r6",
        "t2",
        50,
        total_tokens=8,
        input_tokens=8,
        llm_call_count=1,
        unpriced_calls=1,
        llm_ms=5.0,
        token_usage_by_model={"m-b": entry(8, 1, 5.0, None, 1)},
        llm_call_ms={"m-b": [5.0]},
    )


def test_percentile_cont_by_hand() -> None:
    assert percentile_cont([], 0.5) is None
    assert percentile_cont([7.0], 0.95) == 7.0
    assert percentile_cont([400, 100.5, 300, 200], 0.5) == 250.0  # r = 1.5: 200 + 0.5 * 100
    assert percentile_cont([100.5, 200, 300, 400], 0.95) == pytest.approx(385.0)  # r = 2.85


async def test_aggregate_usage_by_thread_sums_cost_and_computes_percentiles(
    store: RunStore,
) -> None:
    await seed(store)
    rows = {row.key: row for row in await store.aggregate_usage(by="thread")}
    t1, t2 = rows["t1"], rows["t2"]
    assert t1.cost_usd == pytest.approx(1.75) and t1.unpriced_calls == 0
    assert t1.llm_calls == 4 and t1.llm_ms == 100.0
    # durations 100.5, 200, 300, 400: p50 r = 1.5 -> 250; p95 r = 2.85 -> 300 + 0.85 * 100
    assert t1.duration_p50_ms == pytest.approx(250.0)
    assert t1.duration_p95_ms == pytest.approx(385.0)
    # calls 10, 20, 30, 40: p50 r = 1.5 -> 25; p95 r = 2.85 -> 30 + 0.85 * 10
    assert t1.llm_call_p50_ms == pytest.approx(25.0)
    assert t1.llm_call_p95_ms == pytest.approx(38.5)
    # nothing of t2 was priced: its cost is unknown, not 0
    assert t2.cost_usd is None and t2.unpriced_calls == 1
    assert (t2.duration_p50_ms, t2.duration_p95_ms) == (pytest.approx(50.0), pytest.approx(50.0))
    assert t2.llm_call_p50_ms == pytest.approx(5.0)
    assert t2.as_dict()["cost_usd"] is None
    assert t1.as_dict()["llm_call_p95_ms"] == t1.llm_call_p95_ms


async def test_aggregate_usage_by_model_uses_each_models_own_calls_cost_and_times(
    store: RunStore,
) -> None:
    await seed(store)
    rows = {row.key: row for row in await store.aggregate_usage(by="model")}
    m_a, m_b = rows["m-a"], rows["m-b"]
    assert (m_a.runs, m_a.llm_calls, m_a.llm_ms) == (2, 3, 70.0)
    assert m_a.cost_usd == pytest.approx(1.55)
    # m-b: r1's priced call and r6's unpriced one
    assert (m_b.runs, m_b.llm_calls, m_b.unpriced_calls) == (2, 2, 1)
    assert m_b.cost_usd == pytest.approx(0.2)
    # calls of m-a 10, 20, 40: p50 = 20; p95 r = 1.9 -> 20 + 0.9 * 20 = 38
    assert m_a.llm_call_p50_ms == pytest.approx(20.0)
    assert m_a.llm_call_p95_ms == pytest.approx(38.0)
    # runs that used m-a: 100.5 and 200 ms: p50 r = 0.5 -> 150.25; p95 r = 0.95 -> 195.025
    assert m_a.duration_p50_ms == pytest.approx(150.25)
    assert m_a.duration_p95_ms == pytest.approx(195.025)
    # m-b calls 5 and 30: p95 r = 0.95 -> 5 + 0.95 * 25 = 28.75
    assert m_b.llm_call_p95_ms == pytest.approx(28.75)


async def test_aggregate_usage_by_assistant_and_day(store: RunStore) -> None:
    await seed(store)
    by_assistant = {row.key: row for row in await store.aggregate_usage(by="assistant")}
    assert set(by_assistant) == {"agent", "helper"}
    assert by_assistant["agent"].runs == 5 and by_assistant["agent"].cost_usd == pytest.approx(1.75)
    assert by_assistant["agent"].duration_p50_ms == pytest.approx(250.0)
    [day] = await store.aggregate_usage(by="day")
    # every finished run: 50, 100.5, 200, 300, 400: p50 = 200; p95 r = 3.8 -> 300 + 0.8 * 100
    assert day.key == "2026-03-01" and day.duration_p50_ms == pytest.approx(200.0)
    assert day.duration_p95_ms == pytest.approx(380.0)
    # calls 5, 10, 20, 30, 40: p95 r = 3.8 -> 30 + 0.8 * 10
    assert day.llm_call_p95_ms == pytest.approx(38.0)
    assert day.cost_usd == pytest.approx(1.75) and day.unpriced_calls == 1


async def test_percentiles_of_a_group_without_samples_are_none(store: RunStore) -> None:
    await store.put("q1", thread_id="t9", status="pending", created_at=T0)
    [row] = await store.aggregate_usage(by="thread")
    assert row.duration_p50_ms is None and row.llm_call_p95_ms is None and row.cost_usd is None


async def test_top_runs_by_cost_ranks_money(store: RunStore) -> None:
    await seed(store)
    top = await store.top_runs(by="cost", limit=5)
    assert [row["run_id"] for row in top] == ["r2", "r1"]  # unpriced and free runs left out
    assert top[0]["cost_usd"] == pytest.approx(1.5)


async def test_the_sql_percentiles_run_in_the_database(store: RunStore) -> None:
    """The percentile is one statement over the runs table: no row reaches Python."""
    if not isinstance(store, SQLRunStore):
        pytest.skip("SQL only")
    statement = percentile_sql(store.dialect, "llm_call", "thread", ())
    text = statement.postgresql if store.dialect == "postgresql" else statement.sqlite
    if store.dialect == "postgresql":
        assert "percentile_cont(0.95) WITHIN GROUP (ORDER BY x)" in text
    else:
        assert "ROW_NUMBER() OVER (PARTITION BY key ORDER BY x)" in text
    await seed(store)
    rows = await store.driver.fetch(statement, {})  # type: ignore[attr-defined]
    assert {row["key"]: round(float(row["p50"]), 6) for row in rows} == {"t1": 25.0, "t2": 5.0}
