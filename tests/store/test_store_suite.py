"""One suite for every RunStore backend: memory, a SQLite file and PostgreSQL (the
``store`` fixture in conftest runs each test on all three)."""

from __future__ import annotations

import asyncio

import pytest

from langgraph_runstore import (
    InvalidInputError,
    InvalidTransitionError,
    RunStore,
)

pytestmark = pytest.mark.asyncio

T0 = "2026-01-01T00:00:00+00:00"
T1 = "2026-01-01T00:00:01+00:00"
T2 = "2026-01-01T00:00:02+00:00"


async def test_put_then_get_round_trips_every_field(store: RunStore) -> None:
    await store.put(
        "r1",
        thread_id="t1",
        assistant_id="agent",
        user_id="u1",
        status="running",
        on_disconnect="continue",
        multitask_strategy="enqueue",
        metadata={"k": [1, 2, {"n": None}]},
        kwargs={"input": {"messages": ["hi"]}},
        model_name="m-1",
        created_at=T0,
        input_tokens=3,
        token_usage_by_model={"m-1": {"input_tokens": 3}},
        last_ai_message="hello",
    )
    row = await store.get("r1")
    assert row is not None
    assert row["thread_id"] == "t1"
    assert row["assistant_id"] == "agent"
    assert row["user_id"] == "u1"
    assert row["status"] == "running"
    assert row["on_disconnect"] == "continue"
    assert row["multitask_strategy"] == "enqueue"
    assert row["metadata"] == {"k": [1, 2, {"n": None}]}
    assert row["kwargs"] == {"input": {"messages": ["hi"]}}
    assert row["model_name"] == "m-1"
    assert row["created_at"] == "2026-01-01T00:00:00.000000+00:00"
    assert row["updated_at"] == row["created_at"]
    assert row["input_tokens"] == 3
    assert row["output_tokens"] == 0
    assert row["token_usage_by_model"] == {"m-1": {"input_tokens": 3}}
    assert row["last_ai_message"] == "hello"
    assert row["llm_call_count"] == 0
    assert await store.get("missing") is None


async def test_put_is_an_idempotent_upsert(store: RunStore) -> None:
    await store.put("r1", thread_id="t1", status="pending", created_at=T0, metadata={"a": 1})
    await store.put("r1", thread_id="t1", status="pending", created_at=T0, metadata={"a": 1})
    await store.put("r1", thread_id="t1", status="error", error="boom", created_at=T0)
    rows = await store.list_by_thread("t1")
    assert [r["run_id"] for r in rows] == ["r1"]
    assert rows[0]["status"] == "error"
    assert rows[0]["error"] == "boom"


async def test_list_by_thread_is_newest_first_and_ties_keep_insertion_order(
    store: RunStore,
) -> None:
    await store.put("old", thread_id="t1", created_at=T0)
    await store.put("tie-a", thread_id="t1", created_at=T1)
    await store.put("tie-b", thread_id="t1", created_at=T1)
    await store.put("tie-c", thread_id="t1", created_at=T1)
    await store.put("new", thread_id="t1", created_at=T2)
    await store.put("other", thread_id="t2", created_at=T2)
    rows = await store.list_by_thread("t1")
    assert [r["run_id"] for r in rows] == ["new", "tie-a", "tie-b", "tie-c", "old"]
    assert [r["run_id"] for r in await store.list_by_thread("t1", limit=2)] == ["new", "tie-a"]
    assert await store.list_by_thread("nobody") == []


async def test_list_by_thread_filters_by_user(store: RunStore) -> None:
    await store.put("a", thread_id="t1", user_id="u1", created_at=T0)
    await store.put("b", thread_id="t1", user_id="u2", created_at=T1)
    assert [r["run_id"] for r in await store.list_by_thread("t1", user_id="u1")] == ["a"]


async def test_update_status_stamps_lifecycle_times(store: RunStore) -> None:
    await store.put("r1", thread_id="t1", created_at=T0)
    assert await store.update_status("r1", "running") is True
    running = await store.get("r1")
    assert running is not None and running["status"] == "running"
    assert running["started_at"] is not None and running["ended_at"] is None
    assert await store.update_status("r1", "error", error="Boom: bad") is True
    done = await store.get("r1")
    assert done is not None
    assert done["status"] == "error" and done["error"] == "Boom: bad"
    assert done["started_at"] == running["started_at"]
    assert done["ended_at"] >= done["started_at"]


async def test_update_status_reports_a_missing_row(store: RunStore) -> None:
    assert await store.update_status("ghost", "success") is False
    assert await store.get("ghost") is None


async def test_a_final_status_is_never_overwritten(store: RunStore) -> None:
    await store.put("r1", thread_id="t1", created_at=T0)
    await store.update_status("r1", "success")
    assert await store.update_status("r1", "success") is True  # the same status: a no-op
    with pytest.raises(InvalidTransitionError) as info:
        await store.update_status("r1", "error", error="late")
    assert info.value.run_id == "r1"
    with pytest.raises(InvalidTransitionError):
        await store.update_run_completion("r1", status="interrupted")
    row = await store.get("r1")
    assert row is not None and row["status"] == "success" and row["error"] is None


async def test_running_may_return_to_pending_for_requeue(store: RunStore) -> None:
    await store.put("r1", thread_id="t1", created_at=T0)
    await store.update_status("r1", "running")
    assert await store.update_status("r1", "pending") is True
    row = await store.get("r1")
    assert row is not None and row["status"] == "pending"


async def test_update_run_completion_writes_counters(store: RunStore) -> None:
    await store.put("r1", thread_id="t1", created_at=T0)
    await store.update_status("r1", "running")
    matched = await store.update_run_completion(
        "r1",
        status="success",
        input_tokens=10,
        output_tokens=5,
        total_tokens=15,
        token_usage_by_model={"m": {"input_tokens": 10, "output_tokens": 5, "total_tokens": 15}},
        llm_call_count=2,
        message_count=4,
        last_ai_message="done",
        first_human_message="hi",
        stop_reason="interrupt",
    )
    assert matched is True
    row = await store.get("r1")
    assert row is not None
    assert row["status"] == "success"
    assert (row["input_tokens"], row["output_tokens"], row["total_tokens"]) == (10, 5, 15)
    assert row["token_usage_by_model"]["m"]["total_tokens"] == 15
    assert row["llm_call_count"] == 2 and row["message_count"] == 4
    assert row["last_ai_message"] == "done" and row["first_human_message"] == "hi"
    assert row["stop_reason"] == "interrupt"
    assert row["ended_at"] is not None
    assert await store.update_run_completion("ghost", status="success") is False


async def test_bad_values_are_refused_without_writing(store: RunStore) -> None:
    with pytest.raises(InvalidInputError, match="'finished'"):
        await store.put("r1", thread_id="t1", status="finished")
    with pytest.raises(InvalidInputError, match="metadata"):
        await store.put("r1", thread_id="t1", metadata={"x": object()})
    with pytest.raises(InvalidInputError, match="thread_id"):
        await store.put("r1", thread_id="")
    with pytest.raises(InvalidInputError, match="created_at"):
        await store.put("r1", thread_id="t1", created_at="yesterday")
    with pytest.raises(InvalidInputError, match="colour"):
        await store.put("r1", thread_id="t1", colour="red")
    assert await store.get("r1") is None
    await store.put("r1", thread_id="t1", created_at=T0)
    with pytest.raises(InvalidInputError, match="'done'"):
        await store.update_status("r1", "done")
    with pytest.raises(InvalidInputError, match="tokens_total"):
        await store.update_run_completion("r1", status="success", tokens_total=3)
    for by_model in ({"m": {"input_tokens": object()}}, {"m": {"input_tokens": float("nan")}}):
        with pytest.raises(InvalidInputError, match="token_usage_by_model"):
            await store.update_run_completion("r1", status="success", token_usage_by_model=by_model)
    row = await store.get("r1")
    assert row is not None and row["status"] == "pending"


async def test_null_status_rows_are_stored_and_listed_as_inflight(store: RunStore) -> None:
    await store.put("r1", thread_id="t1", status=None, created_at=T0)
    row = await store.get("r1")
    assert row is not None and row["status"] is None
    assert [r["run_id"] for r in await store.list_inflight()] == ["r1"]


async def test_insert_if_thread_idle_admits_one_active_run(store: RunStore) -> None:
    assert await store.insert_if_thread_idle("a", thread_id="t1", created_at=T0) is True
    assert await store.insert_if_thread_idle("b", thread_id="t1", created_at=T1) is False
    assert await store.get("b") is None
    assert await store.insert_if_thread_idle("c", thread_id="t2", created_at=T1) is True
    await store.update_status("a", "running")
    assert await store.insert_if_thread_idle("d", thread_id="t1", created_at=T1) is False
    await store.update_status("a", "success")
    assert await store.insert_if_thread_idle("e", thread_id="t1", created_at=T2) is True


async def test_admitting_a_run_id_that_already_names_a_run_is_refused(store: RunStore) -> None:
    await store.put("r1", thread_id="t1", status="success", user_id="alice", ended_at=T1)
    with pytest.raises(InvalidInputError, match="'r1' already names a run") as info:
        await store.insert_if_thread_idle("r1", thread_id="t2", status="running")
    assert info.value.run_id == "r1"
    row = await store.get("r1")
    assert row is not None
    assert (row["thread_id"], row["status"], row["user_id"]) == ("t1", "success", "alice")
    assert await store.list_by_thread("t2") == []


async def test_racing_admissions_on_one_thread_admit_exactly_one(store: RunStore) -> None:
    results = await asyncio.gather(
        *(store.insert_if_thread_idle(f"r{i}", thread_id="t1") for i in range(12))
    )
    assert sum(results) == 1
    assert len(await store.list_by_thread("t1")) == 1


async def test_list_inflight_filters_by_time_and_thread(store: RunStore) -> None:
    await store.put("p", thread_id="t1", status="pending", created_at=T0)
    await store.put("r", thread_id="t2", status="running", created_at=T1)
    await store.put("s", thread_id="t1", status="success", created_at=T0)
    await store.put("late", thread_id="t1", status="pending", created_at=T2)
    assert [r["run_id"] for r in await store.list_inflight()] == ["p", "r", "late"]
    assert [r["run_id"] for r in await store.list_inflight(before=T2)] == ["p", "r"]
    assert [r["run_id"] for r in await store.list_inflight(thread_id="t1")] == ["p", "late"]


async def test_delete(store: RunStore) -> None:
    await store.put("r1", thread_id="t1", created_at=T0)
    assert await store.delete("r1") is True
    assert await store.delete("r1") is False
    assert await store.get("r1") is None


async def test_insert_refuses_a_run_id_that_already_names_a_run(store: RunStore) -> None:
    await store.insert("r1", thread_id="t1", status="pending", total_tokens=5)
    with pytest.raises(InvalidInputError, match="'r1' already names a run"):
        await store.insert("r1", thread_id="t2", status="running")
    row = await store.get("r1")
    assert row is not None
    assert (row["thread_id"], row["status"], row["total_tokens"]) == ("t1", "pending", 5)
    assert row["error"] is None and row["llm_call_count"] == 0  # the defaults
