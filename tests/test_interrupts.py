"""Paused runs: the interrupts a run stores, the thread's pending ones, and progress writes.

Real graphs on every store backend, with our checkpointer and the stock savers.
"""

from __future__ import annotations

import asyncio
import contextlib
import operator
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any, TypedDict

import pytest
import pytest_asyncio
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command, Send, interrupt

from langgraph_runstore import (
    MemoryRunStore,
    RunManager,
    RunRecord,
    RunStore,
    SQLRunStore,
    ThreadStatus,
)
from tests.graphs import State, listed_model, reply, single_node_graph

pytestmark = pytest.mark.asyncio


def nested_approval() -> StateGraph[State]:
    """review (a sub-graph whose node ``ask`` interrupts) -> END."""

    def ask(state: State) -> dict[str, Any]:
        answer = interrupt({"question": "ship it?", "attempt": 1})
        return {"messages": [("user", f"answer: {answer}")]}

    inner = StateGraph(State)
    inner.add_node("ask", ask)
    inner.add_edge(START, "ask")
    inner.add_edge("ask", END)
    outer = StateGraph(State)
    outer.add_node("review", inner.compile())
    outer.add_edge(START, "review")
    outer.add_edge("review", END)
    return outer


class Fan(TypedDict, total=False):
    topics: list[str]
    answers: Annotated[list[str], operator.add]


def fan_out_questions() -> StateGraph[Fan]:
    def question(item: dict[str, str]) -> dict[str, Any]:
        return {"answers": [interrupt(f"about {item['topic']}?")]}

    def route(state: Fan) -> list[Send]:
        return [Send("question", {"topic": topic}) for topic in state["topics"]]

    builder = StateGraph(Fan)
    builder.add_node("question", question)  # type: ignore[arg-type]
    builder.add_conditional_edges(START, route, ["question"])
    builder.add_edge("question", END)
    return builder


@pytest_asyncio.fixture
async def manager_and_saver(store: RunStore) -> AsyncIterator[tuple[RunManager, Any]]:
    saver = store.checkpointer if isinstance(store, SQLRunStore) else InMemorySaver()
    manager = RunManager(store=store)
    yield manager, saver
    await manager.aclose()


async def test_a_paused_run_stores_its_interrupt_and_the_thread_reports_it(
    store: RunStore, manager_and_saver: tuple[RunManager, Any]
) -> None:
    manager, saver = manager_and_saver
    graph = nested_approval().compile(checkpointer=saver)
    run = await manager.wait(graph, {"messages": [("user", "deploy")]}, thread_id="t-nested")
    assert run.status.value == "success" and run.stop_reason == "interrupt" and run.paused
    [entry] = run.interrupts
    assert entry["value"] == {"question": "ship it?", "attempt": 1}
    assert isinstance(entry["id"], str) and len(entry["id"]) == 32
    # the namespace of the task that raised it: the sub-graph node, then its own node
    assert [part.split(":")[0] for part in entry["ns"]] == ["review", "ask"]
    fresh = await RunManager(store=store).get(run.run_id)
    assert fresh is not None and fresh.store_only and fresh.interrupts == run.interrupts
    assert await manager.thread_status("t-nested") is ThreadStatus.interrupted
    assert await manager.thread_interrupts("t-nested", checkpointer=saver) == [entry]

    resumed = await manager.wait(graph, Command(resume="yes"), thread_id="t-nested")
    assert resumed.status.value == "success" and resumed.stop_reason is None
    assert resumed.interrupts == [] and not resumed.paused
    assert resumed.first_human_message is None  # a resume carries no human message
    assert await manager.thread_interrupts("t-nested", checkpointer=saver) == []
    assert await manager.thread_status("t-nested") is ThreadStatus.idle


async def test_parallel_interrupts_are_each_stored_and_answered_by_id(
    manager_and_saver: tuple[RunManager, Any],
) -> None:
    manager, saver = manager_and_saver
    graph = fan_out_questions().compile(checkpointer=saver)
    run = await manager.wait(graph, {"topics": ["red", "blue"]}, thread_id="t-fan")
    assert sorted(e["value"] for e in run.interrupts) == ["about blue?", "about red?"]
    assert len({e["id"] for e in run.interrupts}) == 2
    assert all(e["ns"][0].startswith("question:") for e in run.interrupts)
    pending = await manager.thread_interrupts("t-fan", checkpointer=saver)
    assert sorted(map(str, pending)) == sorted(map(str, run.interrupts))
    answers = {e["id"]: f"ok {e['value']}" for e in pending}
    done = await manager.wait(graph, Command(resume=answers), thread_id="t-fan")
    assert done.status.value == "success" and not done.paused, done.error
    assert sorted(done.output["answers"]) == ["ok about blue?", "ok about red?"]
    assert await manager.thread_interrupts("t-fan", checkpointer=saver) == []


async def test_a_static_breakpoint_pauses_without_an_interrupt_value(
    manager_and_saver: tuple[RunManager, Any],
) -> None:
    manager, saver = manager_and_saver
    model = listed_model(reply("draft"))

    async def draft(state: State) -> dict[str, Any]:
        return {"messages": [await model.ainvoke(state["messages"])]}

    graph = single_node_graph(draft).compile(checkpointer=saver, interrupt_before=["only"])
    run = await manager.wait(graph, {"messages": [("user", "go")]}, thread_id="t-static")
    assert run.paused and run.interrupts == [] and run.llm_call_count == 0
    assert await manager.thread_status("t-static") is ThreadStatus.interrupted
    assert await manager.thread_interrupts("t-static", checkpointer=saver) == []


async def test_thread_interrupts_with_the_stock_sqlite_saver(tmp_path: Path) -> None:
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

    async with (
        AsyncSqliteSaver.from_conn_string(str(tmp_path / "stock.db")) as saver,
        SQLRunStore.from_url(f"sqlite+aiosqlite:///{tmp_path / 'runs.db'}") as store,
    ):
        manager = RunManager(store=store)
        graph = nested_approval().compile(checkpointer=saver)
        run = await manager.wait(graph, {"messages": "deploy"}, thread_id="t-stock")
        assert run.first_human_message == "deploy"
        [pending] = await manager.thread_interrupts("t-stock", checkpointer=saver)
        assert pending == run.interrupts[0]
        # the store's own checkpointer has never seen this thread
        assert await manager.thread_interrupts("t-stock") == []
        await manager.aclose()


async def test_without_a_checkpointer_the_paused_run_stands_in() -> None:
    manager = RunManager(store=MemoryRunStore())  # a memory store has no checkpointer
    graph = nested_approval().compile(checkpointer=InMemorySaver())
    run = await manager.wait(graph, {"messages": "deploy"}, thread_id="t-none")
    assert await manager.thread_interrupts("t-none") == run.interrupts
    await manager.aclose()


# -- progress: a trailing throttle ---------------------------------------------------------------


async def test_a_running_row_is_at_most_flush_interval_behind(db_url: str) -> None:
    interval = 0.2
    called, release = asyncio.Event(), asyncio.Event()
    model = listed_model(reply("one", input_tokens=11, output_tokens=4))

    async def work(state: State) -> dict[str, Any]:
        answer = await model.ainvoke(state["messages"])
        called.set()
        await release.wait()
        return {"messages": [answer]}

    async with SQLRunStore.from_url(db_url) as store:
        manager = RunManager(store=store, flush_interval=interval)
        graph = single_node_graph(work).compile(checkpointer=store.checkpointer)
        run = await manager.start(graph, {"messages": "hi"}, thread_id="t-progress")
        await called.wait()
        seen = time.monotonic()
        row = await store.get(run.run_id)
        while row is not None and row["total_tokens"] == 0 and time.monotonic() - seen < 5:
            await asyncio.sleep(0.02)
            row = await store.get(run.run_id)
        lag = time.monotonic() - seen
        assert row is not None and row["status"] == "running"
        assert (row["total_tokens"], row["llm_call_count"], row["model_name"]) == (15, 1, "model-a")
        assert lag < interval + 1.0, lag
        release.set()
        done = await manager.join(run.run_id)
        assert done.total_tokens == 15
        await manager.aclose()


def test_sync_tracking_writes_progress_too(tmp_path: Path) -> None:
    interval = 0.2
    called, release = threading.Event(), threading.Event()
    model = listed_model(reply("one", input_tokens=6, output_tokens=1))

    def work(state: State) -> dict[str, Any]:
        answer = model.invoke(state["messages"])
        called.set()
        release.wait(10)
        return {"messages": [answer]}

    url = f"sqlite:///{tmp_path / 'sync.db'}"
    with RunManager.sync_from_url(url, flush_interval=interval) as manager:
        graph = single_node_graph(work).compile(checkpointer=manager.store.checkpointer)  # type: ignore[union-attr]
        with manager.track_sync(thread_id="t-sync") as run:
            worker = threading.Thread(target=graph.invoke, args=({"messages": "hi"}, run.config))
            worker.start()
            assert called.wait(10)
            seen = time.monotonic()
            tokens = 0
            while tokens == 0 and time.monotonic() - seen < 5:
                time.sleep(0.02)
                row = manager.run_sync(lambda: manager.store.get(run.run_id))  # type: ignore[union-attr]
                tokens = row["total_tokens"] if row else 0
            assert tokens == 7 and time.monotonic() - seen < interval + 1.0
            release.set()
            worker.join(10)
        assert run.status.value == "success" and run.total_tokens == 7


def test_an_async_tracker_driven_by_a_sync_invoke_still_writes_progress(tmp_path: Path) -> None:
    """``graph.invoke(inputs, run.config)`` inside ``manager.track()``: langchain-core runs
    each async callback in a loop of its own that it closes at once."""
    model = listed_model(reply("one", input_tokens=3, output_tokens=2))
    called, release = threading.Event(), threading.Event()

    def work(state: State) -> dict[str, Any]:
        answer = model.invoke(state["messages"])
        called.set()
        release.wait(10)
        return {"messages": [answer]}

    async def main() -> None:
        async with SQLRunStore.from_url(f"sqlite+aiosqlite:///{tmp_path / 'mixed.db'}") as store:
            manager = RunManager(store=store, flush_interval=0.05)
            graph = single_node_graph(work).compile()
            async with manager.track(thread_id="t-mixed") as run:
                invoked = asyncio.create_task(
                    asyncio.to_thread(graph.invoke, {"messages": "hi"}, run.config)
                )
                await asyncio.to_thread(called.wait, 10)
                seen = time.monotonic()
                row = await store.get(run.run_id)
                while row is not None and row["total_tokens"] == 0 and time.monotonic() - seen < 3:
                    await asyncio.sleep(0.02)
                    row = await store.get(run.run_id)
                release.set()
                await invoked
            assert row is not None and row["status"] == "running" and row["total_tokens"] == 5
            final = await store.get(run.run_id)
            assert final is not None and final["status"] == "success"
            await manager.aclose()

    asyncio.run(main())


class _HeldProgress(MemoryRunStore):
    """A store whose progress writes wait until the test lets them through."""

    def __init__(self) -> None:
        super().__init__()
        self.progress_started = asyncio.Event()
        self.let_progress_through = asyncio.Event()

    async def update_run_completion(self, run_id: str, *, status: Any, **fields: Any) -> bool:
        if str(status) == "running":
            self.progress_started.set()
            await self.let_progress_through.wait()
        return await super().update_run_completion(run_id, status=status, **fields)


async def test_cancelled_while_waiting_on_a_progress_write_the_final_write_still_lands() -> None:
    store = _HeldProgress()
    manager = RunManager(store=store, flush_interval=0.01)
    model = listed_model(reply("done", input_tokens=4, output_tokens=4))

    async def work(state: State) -> dict[str, Any]:
        answer = await model.ainvoke(state["messages"])
        await store.progress_started.wait()  # the progress write is in flight, held
        return {"messages": [answer]}

    graph = single_node_graph(work).compile()

    runs: list[RunRecord] = []

    async def invoke() -> None:
        async with manager.track(thread_id="t-held") as run:
            runs.append(run)
            await graph.ainvoke({"messages": "hi"}, run.config)

    task = asyncio.create_task(invoke())
    await store.progress_started.wait()
    for _ in range(20):  # until the root end waits on the held progress write
        await asyncio.sleep(0)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    store.let_progress_through.set()
    for _ in range(20):
        await asyncio.sleep(0)
    row = await store.get(runs[0].run_id)
    # the graph had ended when the cancel came: its success is what the store holds
    assert row is not None and row["status"] == "success", row
    assert row["total_tokens"] == 8
    await manager.aclose()
