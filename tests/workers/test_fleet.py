"""The fleet: each worker's row (written by its heartbeat, removed when it stops, pruned
when long stale), ``langgraph-runstore workers list``, ``submit()`` to an assistant that no
live worker serves, and ``join()`` of a submitted run returning its final state."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage

from langgraph_runstore import NoWorkerError, RunManager, RunStatus, RunStore, SQLRunStore
from langgraph_runstore.workers import utc_in
from tests.graphs import State, blocked_graph, single_node_graph

pytestmark = pytest.mark.asyncio


def echo_graph(checkpointer: Any = None) -> Any:
    def answer(state: State) -> dict[str, Any]:
        return {"messages": [AIMessage(content="echo")]}

    return single_node_graph(answer).compile(checkpointer=checkpointer)


async def test_a_worker_is_in_the_fleet_while_it_runs(store: RunStore) -> None:
    started, release = asyncio.Event(), asyncio.Event()
    worker = RunManager(store=store, lease_seconds=5, graphs={"echo": echo_graph()})
    async with worker:
        (row,) = await store.list_workers()
        assert row["worker_id"] == worker.worker_id
        assert (row["pid"], row["assistants"], row["held"]) == (os.getpid(), ["echo"], 0)
        assert row["lease_seconds"] == 5
        first_beat = row["heartbeat_at"]
        await worker.start(blocked_graph(started, release), {"messages": []}, thread_id="t1")
        await asyncio.wait_for(started.wait(), 10)
        assert worker._workers is not None
        await worker._workers.heartbeat()
        (row,) = await store.list_workers()
        assert row["held"] == 1 and row["heartbeat_at"] > first_beat
        release.set()
    assert await store.list_workers() == []  # it left the fleet when it stopped


async def test_long_stale_workers_are_pruned(store: RunStore) -> None:
    for name in ("gone", "alive"):
        await store.record_worker(
            name, host="h", pid=1, assistants=["a"], lease_seconds=5, started_at=utc_in(0)
        )
    assert await store.remove_workers(stale_before=utc_in(-3600)) == 0  # none is that old
    assert await store.remove_workers(worker_id="gone") == 1
    assert [w["worker_id"] for w in await store.list_workers()] == ["alive"]


async def test_submit_to_an_assistant_no_live_worker_serves_fails_and_writes_nothing(
    store: RunStore,
) -> None:
    await store.record_worker(  # a worker of another assistant, and one long silent
        "other", host="h", pid=1, assistants=["echo"], lease_seconds=30, started_at=utc_in(0)
    )
    client = RunManager(store=store)
    with pytest.raises(NoWorkerError, match="'ghost'"):
        await client.submit("ghost", {"messages": []}, thread_id="t1", wait_for_worker=0.2)
    assert await store.list_by_thread("t1") == []


async def test_submit_waits_for_a_worker_that_is_starting(store: RunStore) -> None:
    client = RunManager(store=store)
    submitted = asyncio.ensure_future(
        client.submit("echo", {"messages": []}, thread_id="t1", wait_for_worker=10)
    )
    await asyncio.sleep(0)  # the submit is waiting for a worker
    async with RunManager(store=store, lease_seconds=5, graphs={"echo": echo_graph()}):
        run = await asyncio.wait_for(submitted, 15)
        joined = await asyncio.wait_for(client.join(run.run_id), 15)
    assert joined.status is RunStatus.success


async def test_join_of_a_submitted_run_returns_its_final_state(db_url: str) -> None:
    async with SQLRunStore.from_url(db_url) as store:
        graph = echo_graph(store.checkpointer)
        client = RunManager(store=store)
        async with RunManager(store=store, lease_seconds=5, graphs={"echo": graph}):
            run = await client.submit(
                "echo", {"messages": [{"role": "user", "content": "hi"}]}, thread_id="t1"
            )
            joined = await asyncio.wait_for(client.join(run.run_id), 15)
        assert joined.status is RunStatus.success
        assert isinstance(joined.output, dict)
        contents = [m.content for m in joined.output["messages"]]
        assert contents == ["hi", "echo"]


async def test_the_cli_lists_live_and_stale_workers(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'runs.db'}"
    async with SQLRunStore.from_url(url) as store:
        await store.record_worker(  # its lease ran out long ago: stale
            "old", host="h", pid=7, assistants=["a"], lease_seconds=0.001, started_at=utc_in(-9)
        )
        worker = RunManager(store=store, lease_seconds=30, graphs={"echo": echo_graph()})
        async with worker:
            cli = Path(sys.executable).parent / "langgraph-runstore"
            process = await asyncio.create_subprocess_exec(
                str(cli),
                "workers",
                "list",
                "--json",
                "--db",
                url,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            out, err = await asyncio.wait_for(process.communicate(), 60)
            assert process.returncode == 0, err.decode()
            listed = {w["worker_id"]: w for w in json.loads(out)["workers"]}
            assert listed[worker.worker_id]["state"] == "live"
            assert listed[worker.worker_id]["assistants"] == ["echo"]
            assert listed["old"]["state"] == "stale"
            table = await asyncio.create_subprocess_exec(
                str(cli), "workers", "list", "--db", url, stdout=asyncio.subprocess.PIPE
            )
            shown, _ = await asyncio.wait_for(table.communicate(), 60)
            assert worker.worker_id in shown.decode() and "stale" in shown.decode()
