"""deer-flow's token names: ``RunRecord.total_input_tokens``/``total_output_tokens`` read
``input_tokens``/``output_tokens``, ``update_run_completion`` (manager and every store)
takes them, and a row written by deer-flow's stores is read with them. Two names of one
count with different values are refused with nothing written."""

from __future__ import annotations

import pytest

from langgraph_runstore import (
    InvalidInputError,
    RunManager,
    RunRecord,
    RunStatus,
    RunStore,
)
from tests.graphs import listed_model, reply, two_model_graph

pytestmark = pytest.mark.asyncio


async def test_the_aliases_read_a_real_runs_tokens(manager: RunManager) -> None:
    graph = two_model_graph(
        listed_model(reply("a", input_tokens=12, output_tokens=5)),
        listed_model(reply("b", "model-b", input_tokens=20, output_tokens=7)),
    ).compile()
    run = await manager.wait(graph, {"messages": [("user", "hi")]}, thread_id="t1")
    assert (run.total_input_tokens, run.total_output_tokens) == (32, 12)
    assert (run.input_tokens, run.output_tokens) == (32, 12)
    stored = await manager.get(run.run_id)
    assert stored is not None and stored.total_input_tokens == 32
    with pytest.raises(AttributeError):
        run.total_input_tokens = 1  # type: ignore[misc]
    assert "total_input_tokens" not in run.to_row()  # rows keep the one name


async def test_update_run_completion_takes_deer_flows_names(manager: RunManager) -> None:
    run = await manager.create("t1")
    await manager.update_run_completion(
        run.run_id,
        status="success",
        total_input_tokens=30,
        total_output_tokens=12,
        total_tokens=42,
        llm_call_count=2,
    )
    assert (run.input_tokens, run.output_tokens, run.total_tokens) == (30, 12, 42)
    assert run.status is RunStatus.success
    if manager.store is not None:
        row = await manager.store.get(run.run_id)
        assert row is not None and (row["input_tokens"], row["output_tokens"]) == (30, 12)
    # both names at once: fine when they agree
    other = await manager.create("t2")
    await manager.update_run_completion(
        other.run_id, status="success", input_tokens=5, total_input_tokens=5
    )
    assert other.total_input_tokens == 5


async def test_two_names_of_one_count_that_disagree_are_refused(manager: RunManager) -> None:
    run = await manager.create("t1")
    with pytest.raises(InvalidInputError) as caught:
        await manager.update_run_completion(
            run.run_id, status="success", input_tokens=5, total_input_tokens=6
        )
    message = str(caught.value)
    assert "total_input_tokens=6" in message and "input_tokens=5" in message
    assert run.status is RunStatus.pending and run.input_tokens == 0
    if manager.store is not None:
        row = await manager.store.get(run.run_id)
        assert row is not None and row["status"] == "pending" and row["input_tokens"] == 0


async def test_every_store_takes_deer_flows_names(store: RunStore) -> None:
    await store.put("r1", thread_id="t1", status="running")
    assert await store.update_run_completion(
        "r1", status="success", total_input_tokens=8, total_output_tokens=3, total_tokens=11
    )
    row = await store.get("r1")
    assert row is not None
    assert (row["input_tokens"], row["output_tokens"], row["total_tokens"]) == (8, 3, 11)
    await store.put("r2", thread_id="t1", status="running")
    with pytest.raises(InvalidInputError, match="total_output_tokens"):
        await store.update_run_completion(
            "r2", status="success", output_tokens=1, total_output_tokens=2
        )
    assert (await store.get("r2") or {}).get("status") == "running"


def test_a_row_written_by_deer_flow_reads_with_its_names() -> None:
    record = RunRecord.from_row(
        {
            "run_id": "r1",
            "thread_id": "t1",
            "status": "success",
            "total_input_tokens": 40,
            "total_output_tokens": 9,
            "total_tokens": 49,
        }
    )
    assert (record.input_tokens, record.output_tokens, record.total_tokens) == (40, 9, 49)
    assert record.total_input_tokens == 40


async def test_deer_flows_per_caller_tokens_are_refused_by_name(manager: RunManager) -> None:
    run = await manager.create("t1")
    with pytest.raises(InvalidInputError, match="lead_agent_tokens"):
        await manager.update_run_completion(
            run.run_id, status="success", total_input_tokens=3, lead_agent_tokens=3
        )
    assert run.status is RunStatus.pending and run.input_tokens == 0
