"""In-memory SQLite, the unit-test set-up: one database shared by the run store and its
checkpointer in one process, through every way in (managed wait and stream, track, the
bare tracker, SyncRunManager, the saver alone with invoke and ainvoke), from the event
loop, the SyncRunManager's loop thread and the saver's sync path alike."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from langgraph_runstore import RunManager, SQLAlchemySaver, SQLRunStore, SyncRunManager
from tests.graphs import listed_model, reply, two_model_graph

pytestmark = pytest.mark.asyncio

ASYNC_URLS = ["sqlite+aiosqlite:///:memory:", "sqlite+aiosqlite://", ":memory:"]
SYNC_URLS = ["sqlite:///:memory:", "sqlite://", ":memory:"]

HI = {"messages": [("user", "hi")]}


def graph_on(checkpointer: Any, *, sync: bool = False) -> Any:
    first = listed_model(*(reply(f"a{i}", input_tokens=10, output_tokens=5) for i in range(4)))
    second = listed_model(*(reply(f"b{i}", input_tokens=1, output_tokens=2) for i in range(4)))
    return two_model_graph(first, second, sync=sync).compile(checkpointer=checkpointer)


async def recorded(store: SQLRunStore, run_id: str) -> dict[str, Any]:
    """The run's row, which must carry the tracked numbers and name the checkpoints the
    checkpointer wrote for it in the same in-memory database."""
    row = await store.get(run_id)
    assert row is not None and row["status"] == "success", row
    assert row["total_tokens"] == 18 and row["llm_call_count"] == 2
    assert await store.run_checkpoints(run_id)
    return row


@pytest.mark.parametrize("url", ASYNC_URLS)
async def test_managed_wait_and_stream(url: str) -> None:
    async with SQLRunStore.from_url(url) as store:
        graph = graph_on(store.checkpointer)
        manager = RunManager(store=store)
        try:
            run = await manager.wait(graph, HI, thread_id="t1")
            await recorded(store, run.run_id)
            chunks = [
                chunk
                async for chunk in manager.stream(
                    graph, HI, thread_id="t2", stream_mode=["updates"]
                )
            ]
            assert chunks
            [streamed] = await manager.list_by_thread("t2")
            await recorded(store, streamed.run_id)
            state = await graph.aget_state({"configurable": {"thread_id": "t1"}})
            assert [m.content for m in state.values["messages"]][-1] == "noted"
        finally:
            await manager.aclose()


@pytest.mark.parametrize("url", ASYNC_URLS)
async def test_track_and_the_bare_tracker(url: str) -> None:
    async with RunManager.from_url(url) as manager:
        store = manager.store
        assert isinstance(store, SQLRunStore)
        graph = graph_on(store.checkpointer)
        async with manager.track(thread_id="t1") as run:
            await graph.ainvoke(HI, run.config)
        await recorded(store, run.run_id)

        rec = await manager.create("t2")
        config: Any = {
            "callbacks": [manager.tracker(rec.run_id)],
            "run_id": rec.run_id,
            "configurable": {"thread_id": "t2", "run_id": rec.run_id},
        }
        await graph.ainvoke(HI, config)
        assert (await store.get(rec.run_id) or {}).get("total_tokens") == 18
        assert await store.run_checkpoints(rec.run_id)


@pytest.mark.parametrize("url", SYNC_URLS)
def test_sync_run_manager_invoke_and_track(url: str) -> None:
    with SyncRunManager.from_url(url) as manager:
        store = manager.store
        assert isinstance(store, SQLRunStore)
        graph = graph_on(store.checkpointer, sync=True)
        run = manager.invoke(graph, HI, thread_id="t1")
        assert run.status.value == "success", run.error
        with manager.track(thread_id="t2") as tracked:
            graph.invoke(HI, tracked.config)
        for run_id in (run.run_id, tracked.run_id):
            got = manager.get(run_id)
            assert got is not None and got.total_tokens == 18 and got.llm_call_count == 2
        assert len(graph.get_state({"configurable": {"thread_id": "t2"}}).values["messages"]) == 4


async def test_a_sync_invoke_beside_the_loop_shares_the_database() -> None:
    """The saver's sync path (its own loop thread) and the store (the caller's loop) reach
    the one in-memory database."""
    async with SQLRunStore.from_url("sqlite+aiosqlite:///:memory:") as store:
        graph = graph_on(store.checkpointer, sync=True)
        manager = RunManager(store=store)
        try:
            rec = await manager.create("t1")
            config: Any = {
                "callbacks": [manager.tracker(rec.run_id)],
                "configurable": {"thread_id": "t1", "run_id": rec.run_id},
            }
            await asyncio.to_thread(graph.invoke, HI, config)
            assert await store.run_checkpoints(rec.run_id)
            assert (await store.get(rec.run_id) or {}).get("total_tokens") == 18
        finally:
            await manager.aclose()


@pytest.mark.parametrize("url", SYNC_URLS)
def test_the_saver_alone_with_invoke(url: str) -> None:
    with SQLAlchemySaver.from_url(url) as saver:
        graph = graph_on(saver, sync=True)
        graph.invoke(HI, {"configurable": {"thread_id": "t1"}})
        graph.invoke({"messages": [("user", "again")]}, {"configurable": {"thread_id": "t1"}})
        state = graph.get_state({"configurable": {"thread_id": "t1"}})
        assert len(state.values["messages"]) == 8
        assert len(list(saver.list({"configurable": {"thread_id": "t1"}}))) == 10


@pytest.mark.parametrize("url", ASYNC_URLS)
async def test_the_saver_alone_with_ainvoke(url: str) -> None:
    async with SQLAlchemySaver.from_url(url) as saver:
        graph = graph_on(saver)
        await graph.ainvoke(HI, {"configurable": {"thread_id": "t1"}})
        state = await graph.aget_state({"configurable": {"thread_id": "t1"}})
        assert len(state.values["messages"]) == 4


async def test_each_engine_is_its_own_database() -> None:
    async with SQLRunStore.from_url(":memory:") as one, SQLRunStore.from_url(":memory:") as two:
        await one.put("r1", thread_id="t1")
        assert await one.get("r1") is not None
        assert await two.get("r1") is None
