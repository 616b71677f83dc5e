"""Worker-mode logic inside one process: recovery policy, fencing, draining, take-over.
(The real multi-process behaviour is in test_processes.py.)"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from langchain_core.messages import AIMessage

from langgraph_runstore import RecoveryPolicy, RunManager, RunStatus, RunStore
from langgraph_runstore.workers import utc_in
from tests.graphs import State, single_node_graph

pytestmark = pytest.mark.asyncio


def sleeper(seconds: float) -> Any:
    async def wait(state: State) -> dict[str, Any]:
        await asyncio.sleep(seconds)
        return {"messages": [AIMessage(content="done")]}

    return single_node_graph(wait).compile()


async def test_recovery_requeues_up_to_max_attempts_then_errors(store: RunStore) -> None:
    await store.put(
        "r1",
        thread_id="t1",
        assistant_id="a",
        status="running",
        shared_queue=True,
        owner_worker_id="dead",
        lease_expires_at=utc_in(-60),
        attempt=1,
    )
    manager = RunManager(
        store=store,
        lease_seconds=5,
        grace_seconds=0,
        recovery=RecoveryPolicy(running="requeue", max_attempts=2),
    )
    async with manager:  # the start-up sweep
        row = await store.get("r1")
        assert row is not None and row["status"] == "pending" and row["owner_worker_id"] is None
        await store.put(
            "r1",
            thread_id="t1",
            status="running",
            owner_worker_id="dead",
            lease_expires_at=utc_in(-60),
            attempt=2,
        )
        assert manager._workers is not None
        assert await manager._workers.sweep() == ["r1"]
    row = await store.get("r1")
    assert row is not None and row["status"] == "error" and row["stop_reason"] == "orphan_recovered"


async def test_a_final_write_lost_by_this_worker_is_written_again(store: RunStore) -> None:
    """A run that ended here but whose final write never reached the database (a cut
    connection) is not left 'running' behind an expired lease, blocking its thread: the
    sweep writes its real outcome."""
    graph = sleeper(0)
    async with RunManager(store=store, lease_seconds=5, grace_seconds=0) as manager:
        run = await manager.wait(graph, {"messages": [("user", "hi")]}, thread_id="t1")
        assert run.status is RunStatus.success and run.owner_worker_id == manager.worker_id
        # what the database holds when the completion was lost: still running, lease gone
        await store.put(
            run.run_id,
            thread_id="t1",
            status="running",
            owner_worker_id=manager.worker_id,
            lease_expires_at=utc_in(-60),
            ended_at=None,
        )
        assert manager._workers is not None
        assert await manager._workers.sweep() == [run.run_id]
    row = await store.get(run.run_id)
    assert row is not None and row["status"] == "success" and row["stop_reason"] is None
    assert row["ended_at"] == run.ended_at


async def test_a_live_lease_of_another_worker_is_never_recovered(store: RunStore) -> None:
    await store.put(
        "live",
        thread_id="t1",
        status="running",
        owner_worker_id="busy",
        lease_expires_at=utc_in(60),
    )
    async with RunManager(store=store, lease_seconds=5, grace_seconds=0) as manager:
        assert manager._workers is not None
        assert await manager._workers.sweep() == []
    row = await store.get("live")
    assert row is not None and row["status"] == "running"


async def test_a_worker_that_lost_its_lease_stops_writing(store: RunStore) -> None:
    async with RunManager(
        store=store, graphs={"slow": sleeper(30)}, lease_seconds=3, poll_interval=0.05
    ) as worker:
        client = RunManager(store=store)
        run = await client.submit("slow", {"messages": []}, thread_id="t1")
        for _ in range(200):
            if run.run_id in worker._runs:
                break
            await asyncio.sleep(0.01)
        record = worker._runs[run.run_id]
        # another worker took it over: the row now names a different owner
        await store.put(run.run_id, thread_id="t1", status="running", owner_worker_id="thief")
        assert worker._workers is not None
        await worker._workers.heartbeat()
        assert run.run_id in worker.lifecycle.fenced
        if record.task is not None:
            await asyncio.wait([record.task], timeout=5)
        row = await store.get(run.run_id)
        assert row is not None and row["status"] == "running" and row["owner_worker_id"] == "thief"


async def test_shutdown_drains_short_runs_and_cancels_long_ones(store: RunStore) -> None:
    manager = RunManager(
        store=store,
        graphs={"short": sleeper(0.2), "long": sleeper(30)},
        lease_seconds=3,
        poll_interval=0.05,
        drain_timeout=1.0,
    )
    client = RunManager(store=store)
    async with manager:
        short = await client.submit("short", {"messages": []}, thread_id="a")
        long = await client.submit("long", {"messages": []}, thread_id="b")
        for _ in range(300):
            rows = [await store.get(short.run_id), await store.get(long.run_id)]
            if all(r is not None and r["status"] == "running" for r in rows):
                break
            await asyncio.sleep(0.01)
    short_row, long_row = await store.get(short.run_id), await store.get(long.run_id)
    assert short_row is not None and short_row["status"] == "success"
    assert long_row is not None and long_row["status"] == "interrupted"
    assert long_row["stop_reason"] == "cancelled"


async def test_cancel_of_a_run_whose_owner_died_takes_it_over(store: RunStore) -> None:
    await store.put(
        "orphan",
        thread_id="t1",
        status="running",
        owner_worker_id="dead",
        lease_expires_at=utc_in(-10),  # past the default 5 s grace
    )
    assert await RunManager(store=store).cancel("orphan") is True
    row = await store.get("orphan")
    assert row is not None and row["status"] == RunStatus.error.value
    assert row["stop_reason"] == "orphan_recovered" and "dead" in row["error"]
