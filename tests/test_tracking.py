"""Tracking real graph runs, through each of the three ways in, on every store backend."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
import pytest_asyncio
from langchain_core.messages import AIMessage, ToolMessage
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command, Send

from langgraph_runstore import (
    RunAlreadyInvokedError,
    RunManager,
    RunRecord,
    RunStatus,
    RunStore,
    SQLRunStore,
    ThreadStatus,
)
from tests.graphs import (
    State,
    StreamingUsageModel,
    approval_graph,
    listed_model,
    reply,
    single_node_graph,
    slow_graph,
    tokens_only,
    two_model_graph,
)

pytestmark = pytest.mark.asyncio


@dataclass
class Env:
    manager: RunManager
    store: RunStore
    checkpointer: Any


@pytest_asyncio.fixture
async def env(store: RunStore) -> AsyncIterator[Env]:
    checkpointer = store.checkpointer if isinstance(store, SQLRunStore) else InMemorySaver()
    manager = RunManager(store=store)
    yield Env(manager, store, checkpointer)
    await manager.aclose()


Way = Callable[..., Awaitable[RunRecord]]


async def managed(
    manager: RunManager, graph: Any, inputs: Any, thread_id: str, **options: Any
) -> RunRecord:
    return await manager.wait(graph, inputs, thread_id=thread_id, **options)


async def tracked(
    manager: RunManager, graph: Any, inputs: Any, thread_id: str, **options: Any
) -> RunRecord:
    async with manager.track(thread_id=thread_id, **options) as run:
        with contextlib.suppress(ValueError):  # recorded on the run
            await graph.ainvoke(inputs, run.config)
    return run


async def bare(
    manager: RunManager, graph: Any, inputs: Any, thread_id: str, **options: Any
) -> RunRecord:
    record = await manager.create(thread_id, **options)
    config = {
        "callbacks": [manager.tracker(record.run_id)],
        "run_id": uuid.UUID(record.run_id),
        "configurable": {"thread_id": thread_id, "run_id": record.run_id},
    }
    with contextlib.suppress(ValueError):  # recorded on the run
        await graph.ainvoke(inputs, config)
    return record


@pytest.fixture(params=["managed", "track", "bare"])
def way(request: pytest.FixtureRequest) -> Way:
    return {"managed": managed, "track": tracked, "bare": bare}[request.param]


def hi(text: str = "hello there") -> dict[str, Any]:
    return {"messages": [("user", text)]}


async def test_tokens_per_model_calls_and_messages_are_exact(env: Env, way: Way) -> None:
    first = listed_model(reply("draft answer", "model-a", input_tokens=10, output_tokens=5))
    second = listed_model(
        reply(
            "final answer",
            "model-b",
            input_tokens=20,
            output_tokens=8,
            input_token_details={"cache_read": 4, "cache_creation": 2},
            output_token_details={"reasoning": 3},
        )
    )
    graph = two_model_graph(first, second).compile(checkpointer=env.checkpointer)
    run = await way(env.manager, graph, hi("what is 2+2?"), "t1")

    assert run.status is RunStatus.success, run.error
    assert (run.input_tokens, run.output_tokens, run.total_tokens) == (30, 13, 43)
    assert (run.cache_read_tokens, run.cache_creation_tokens, run.reasoning_tokens) == (4, 2, 3)
    assert run.token_usage_by_model["model-a"]["total_tokens"] == 15
    assert tokens_only(run.token_usage_by_model)["model-b"] == {
        "input_tokens": 20,
        "output_tokens": 8,
        "total_tokens": 28,
        "cache_read_tokens": 4,
        "cache_creation_tokens": 2,
        "reasoning_tokens": 3,
    }
    assert run.llm_call_count == 2
    assert run.last_ai_message == "final answer"
    assert run.first_human_message == "what is 2+2?"
    assert run.message_count == 4
    assert run.started_at and run.ended_at and run.ended_at >= run.started_at

    row = await env.store.get(run.run_id)
    assert row is not None
    assert row["status"] == "success" and row["total_tokens"] == 43
    assert row["token_usage_by_model"]["model-b"]["reasoning_tokens"] == 3
    assert row["llm_call_count"] == 2 and row["last_ai_message"] == "final answer"

    state = await graph.aget_state({"configurable": {"thread_id": "t1"}})
    assert state.metadata["run_id"] == run.run_id  # every checkpoint names its run


async def test_streaming_in_messages_mode_counts_each_call_once(env: Env) -> None:
    model = StreamingUsageModel(messages=itertools.cycle([AIMessage(content="one two three")]))

    async def talk(state: State) -> dict[str, Any]:
        return {"messages": [await model.ainvoke(state["messages"])]}

    graph = single_node_graph(talk).compile(checkpointer=env.checkpointer)
    chunks = [
        item
        async for item in env.manager.stream(
            graph, hi(), thread_id="t1", stream_mode=["messages", "updates"]
        )
    ]
    modes = {mode for mode, _ in chunks}
    assert modes == {"messages", "updates"}
    assert sum(1 for mode, _ in chunks if mode == "messages") >= 3  # token by token
    run = (await env.manager.list_by_thread("t1"))[0]
    assert run.status is RunStatus.success
    assert (run.input_tokens, run.output_tokens, run.total_tokens) == (7, 3, 10)
    assert tokens_only(run.token_usage_by_model) == {
        "stream-model": {
            "input_tokens": 7,
            "output_tokens": 3,
            "total_tokens": 10,
            "cache_read_tokens": 0,
            "cache_creation_tokens": 0,
            "reasoning_tokens": 0,
        }
    }
    assert run.llm_call_count == 1
    assert run.last_ai_message == "one two three"

    async with env.manager.track(thread_id="t2") as run2:
        async for _ in graph.astream(hi(), run2.config, stream_mode="messages"):
            pass
    assert run2.status is RunStatus.success and run2.total_tokens == 10 and run2.llm_call_count == 1


@pytest.mark.filterwarnings("ignore:create_react_agent has been moved")
async def test_a_tool_calling_agent(env: Env, way: Way) -> None:
    from langgraph.prebuilt import create_react_agent

    @tool
    def add(a: int, b: int) -> int:
        """Add two numbers."""
        return a + b

    call = reply("", "tool-model", input_tokens=30, output_tokens=6)
    call.tool_calls = [
        {"name": "add", "args": {"a": 2, "b": 3}, "id": "call-1", "type": "tool_call"}
    ]
    answer = reply("2 + 3 = 5", "tool-model", input_tokens=40, output_tokens=7)

    class ToolModel(type(listed_model())):  # type: ignore[misc]
        def bind_tools(self, tools: Any, **kwargs: Any) -> Any:
            return self

    agent = create_react_agent(
        ToolModel(responses=[call, answer]), [add], checkpointer=env.checkpointer
    )
    run = await way(env.manager, agent, hi("add 2 and 3"), "t1")
    assert run.status is RunStatus.success, run.error
    assert run.llm_call_count == 2
    assert run.total_tokens == 83
    assert run.token_usage_by_model["tool-model"]["input_tokens"] == 70
    assert run.last_ai_message == "2 + 3 = 5"
    state = await agent.aget_state({"configurable": {"thread_id": "t1"}})
    assert any(isinstance(m, ToolMessage) and m.content == "5" for m in state.values["messages"])


async def test_a_subgraph_counts_like_the_parent(env: Env, way: Way) -> None:
    inner_model = listed_model(
        reply("inner says hi", "inner-model", input_tokens=3, output_tokens=2)
    )
    outer_model = listed_model(reply("outer done", "outer-model", input_tokens=4, output_tokens=1))

    async def inner_talk(state: State) -> dict[str, Any]:
        return {"messages": [await inner_model.ainvoke(state["messages"])]}

    inner = single_node_graph(inner_talk).compile()

    async def outer_talk(state: State) -> dict[str, Any]:
        return {"messages": [await outer_model.ainvoke(state["messages"])]}

    builder = StateGraph(State)
    builder.add_node("inner", inner)
    builder.add_node("outer", outer_talk)
    builder.add_edge(START, "inner")
    builder.add_edge("inner", "outer")
    builder.add_edge("outer", END)
    graph = builder.compile(checkpointer=env.checkpointer)

    run = await way(env.manager, graph, hi(), "t1")
    assert run.status is RunStatus.success
    assert run.llm_call_count == 2 and run.total_tokens == 10
    assert set(run.token_usage_by_model) == {"inner-model", "outer-model"}
    assert run.last_ai_message == "outer done"


async def test_send_fan_out_counts_every_branch(env: Env) -> None:
    model = listed_model(
        *(reply(f"part {i}", "fan-model", input_tokens=2, output_tokens=1) for i in range(3))
    )

    def split(state: State) -> list[Send]:
        return [Send("work", {"messages": [("user", f"task {i}")]}) for i in range(3)]

    async def work(state: State) -> dict[str, Any]:
        return {"messages": [await model.ainvoke(state["messages"])]}

    builder = StateGraph(State)
    builder.add_node("work", work)
    builder.add_conditional_edges(START, split, ["work"])
    builder.add_edge("work", END)
    graph = builder.compile(checkpointer=env.checkpointer)
    run = await env.manager.wait(graph, hi(), thread_id="t1")
    assert run.llm_call_count == 3 and run.total_tokens == 9


async def test_interrupt_then_resume_is_two_runs(env: Env, way: Way) -> None:
    model = listed_model(reply("draft v1", "m"))
    graph = approval_graph(model).compile(checkpointer=env.checkpointer)

    paused = await way(env.manager, graph, hi("write a draft"), "t1")
    assert paused.status is RunStatus.success
    assert paused.stop_reason == "interrupt"
    assert paused.total_tokens == 15
    assert await env.manager.thread_status("t1") is ThreadStatus.interrupted

    resumed = await way(env.manager, graph, Command(resume="yes"), "t1")
    assert resumed.run_id != paused.run_id
    assert resumed.status is RunStatus.success and resumed.stop_reason is None
    assert resumed.llm_call_count == 0
    assert await env.manager.thread_status("t1") is ThreadStatus.idle
    state = await graph.aget_state({"configurable": {"thread_id": "t1"}})
    assert state.values["messages"][-1].content == "approved: yes"


async def test_an_exception_in_a_node_ends_the_run_as_error(env: Env, way: Way) -> None:
    def explode(state: State) -> dict[str, Any]:
        raise ValueError("the tool broke")

    graph = single_node_graph(explode).compile(checkpointer=env.checkpointer)
    run = await way(env.manager, graph, hi(), "t1")
    assert run.status is RunStatus.error
    assert run.error == "ValueError: the tool broke"
    assert await env.manager.thread_status("t1") is ThreadStatus.error
    row = await env.store.get(run.run_id)
    assert row is not None and row["error"] == "ValueError: the tool broke"


async def test_a_cancelled_join_leaves_the_run_running(env: Env) -> None:
    started = asyncio.Event()
    graph = slow_graph(started, seconds=30).compile(checkpointer=env.checkpointer)
    run = await env.manager.start(graph, hi(), thread_id="t1")
    await started.wait()
    joiner = asyncio.create_task(env.manager.join(run.run_id))
    await asyncio.sleep(0.01)
    joiner.cancel()
    with pytest.raises(asyncio.CancelledError):
        await joiner
    assert run.status is RunStatus.running  # the joiner went, the run did not
    assert run.task is not None and not run.task.done()
    assert await env.manager.cancel(run.run_id) is True
    finished = await env.manager.join(run.run_id)
    assert finished.status is RunStatus.interrupted and finished.stop_reason == "cancelled"


async def test_timeout_ends_the_run_as_timeout(env: Env) -> None:
    graph = slow_graph(seconds=30).compile(checkpointer=env.checkpointer)
    began = time.monotonic()
    run = await env.manager.wait(graph, hi(), thread_id="t1", timeout=0.3)
    assert time.monotonic() - began < 5
    assert run.status is RunStatus.timeout
    assert run.stop_reason == "timeout" and "TimeoutError" in (run.error or "")
    row = await env.store.get(run.run_id)
    assert row is not None and row["status"] == "timeout"


async def _start_slow(
    env: Env, way_name: str, graph: Any, thread_id: str
) -> tuple[RunRecord, asyncio.Task[Any] | None]:
    started = asyncio.Event()
    if way_name == "managed":
        graph = slow_graph(started).compile(checkpointer=env.checkpointer)
        run = await env.manager.start(graph, hi(), thread_id=thread_id)
        await asyncio.wait_for(started.wait(), 5)
        return run, None
    holder: dict[str, RunRecord] = {}

    async def user_code() -> None:
        if way_name == "track":
            async with env.manager.track(thread_id=thread_id, graph=graph) as run:
                holder["run"] = run
                await graph.ainvoke(hi(), run.config)
        else:
            record = await env.manager.create(thread_id)
            holder["run"] = record
            tracker = env.manager.tracker(record.run_id, graph=graph)
            await graph.ainvoke(
                hi(),
                {
                    "callbacks": [tracker],
                    "configurable": {"thread_id": thread_id, "run_id": record.run_id},
                },
            )

    task = asyncio.create_task(user_code())
    for _ in range(500):
        if "run" in holder and holder["run"].status is RunStatus.running:
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)
    return holder["run"], task


@pytest.mark.parametrize("way_name", ["managed", "track", "bare"])
async def test_cancel_interrupt_stops_the_graph_fast_and_keeps_checkpoints(
    env: Env, way_name: str
) -> None:
    graph = slow_graph(seconds=30).compile(checkpointer=env.checkpointer)
    run, user_task = await _start_slow(env, way_name, graph, "t1")
    began = time.monotonic()
    assert await env.manager.cancel(run.run_id) is True
    if user_task is not None:
        await asyncio.wait([user_task], timeout=5)
        assert user_task.done()
    else:
        await env.manager.join(run.run_id)
    assert time.monotonic() - began < 0.1 + 0.4  # 100 ms to stop, plus the store write
    assert run.status is RunStatus.interrupted and run.stop_reason == "cancelled"
    assert await env.manager.cancel(run.run_id) is False  # already finished
    managed_graph = (
        graph if way_name != "managed" else slow_graph().compile(checkpointer=env.checkpointer)
    )
    state = await managed_graph.aget_state({"configurable": {"thread_id": "t1"}})
    assert [m.content for m in state.values["messages"]][-1] == "wrote"  # kept


@pytest.mark.parametrize("way_name", ["managed", "track", "bare"])
async def test_cancel_rollback_restores_the_thread(env: Env, way_name: str) -> None:
    first_model = listed_model(reply("first", "m"))
    first = single_node_graph(lambda s: {"messages": [first_model.invoke(s["messages"])]}).compile(
        checkpointer=env.checkpointer
    )
    await env.manager.wait(first, hi("one"), thread_id="t1")
    before = await first.aget_state({"configurable": {"thread_id": "t1"}})

    graph = slow_graph(seconds=30).compile(checkpointer=env.checkpointer)
    run, user_task = await _start_slow(env, way_name, graph, "t1")
    assert await env.manager.cancel(run.run_id, action="rollback") is True
    if user_task is not None:
        await asyncio.wait([user_task], timeout=5)
    assert run.status is RunStatus.interrupted and run.stop_reason == "rolled_back"
    after = await first.aget_state({"configurable": {"thread_id": "t1"}})
    assert [m.content for m in after.values["messages"]] == [
        m.content for m in before.values["messages"]
    ]
    row = await env.store.get(run.run_id)
    assert row is not None and row["stop_reason"] == "rolled_back"


async def test_reject_refuses_while_a_run_is_active(env: Env) -> None:
    from langgraph_runstore import ConflictError

    graph = slow_graph(seconds=30).compile(checkpointer=env.checkpointer)
    first = await env.manager.start(graph, hi(), thread_id="t1")
    with pytest.raises(ConflictError):
        await env.manager.start(graph, hi(), thread_id="t1", multitask_strategy="reject")
    await env.manager.cancel(first.run_id)


async def test_enqueue_runs_fifo_one_at_a_time(env: Env) -> None:
    spans: list[tuple[str, float, float]] = []

    async def step(state: State) -> dict[str, Any]:
        began = time.monotonic()
        await asyncio.sleep(0.05)
        spans.append((state["messages"][-1].content, began, time.monotonic()))
        return {"messages": [AIMessage(content="ok")]}

    graph = single_node_graph(step).compile(checkpointer=env.checkpointer)
    runs = [
        await env.manager.start(graph, hi(f"job {i}"), thread_id="t1", multitask_strategy="enqueue")
        for i in range(4)
    ]
    done = [await env.manager.join(r.run_id) for r in runs]
    assert all(r.status is RunStatus.success for r in done)
    assert [name for name, _, _ in spans] == [f"job {i}" for i in range(4)]
    for (_, _, end), (_, start, _) in itertools.pairwise(spans):
        assert start >= end  # never two at once on the thread


@pytest.mark.parametrize("strategy", ["interrupt", "rollback"])
async def test_interrupt_and_rollback_strategies_replace_the_active_run(
    env: Env, strategy: str
) -> None:
    started = asyncio.Event()
    slow = slow_graph(started, seconds=30).compile(checkpointer=env.checkpointer)
    old = await env.manager.start(slow, hi("old"), thread_id="t1")
    await asyncio.wait_for(started.wait(), 5)
    quick = single_node_graph(lambda s: {"messages": [AIMessage(content="new done")]}).compile(
        checkpointer=env.checkpointer
    )
    new = await env.manager.wait(quick, hi("new"), thread_id="t1", multitask_strategy=strategy)
    assert old.status is RunStatus.interrupted
    assert old.stop_reason == ("cancelled" if strategy == "interrupt" else "rolled_back")
    assert new.status is RunStatus.success
    state = await quick.aget_state({"configurable": {"thread_id": "t1"}})
    contents = [m.content for m in state.values["messages"]]
    assert contents[-1] == "new done"
    assert ("wrote" in contents) is (strategy == "interrupt")


async def test_stream_disconnect_cancels_or_continues(env: Env) -> None:
    async def steps(state: State) -> dict[str, Any]:
        await asyncio.sleep(0.2)
        return {"messages": [AIMessage(content="step")]}

    builder = StateGraph(State)
    builder.add_node("a", steps)
    builder.add_node("b", steps)
    builder.add_edge(START, "a")
    builder.add_edge("a", "b")
    builder.add_edge("b", END)
    graph = builder.compile(checkpointer=env.checkpointer)

    stream = env.manager.stream(graph, hi(), thread_id="t1", stream_mode="updates")
    await anext(stream)
    await stream.aclose()
    cancelled = (await env.manager.list_by_thread("t1"))[0]
    assert cancelled.status is RunStatus.interrupted

    stream = env.manager.stream(
        graph, hi(), thread_id="t2", stream_mode="updates", on_disconnect="continue"
    )
    await anext(stream)
    await stream.aclose()
    kept = (await env.manager.list_by_thread("t2"))[0]
    assert kept.on_disconnect.value == "continue"
    finished = await env.manager.join(kept.run_id)
    assert finished.status is RunStatus.success


async def test_a_second_invocation_in_one_track_block_raises(env: Env) -> None:
    graph = single_node_graph(lambda s: {"messages": [AIMessage(content="x")]}).compile(
        checkpointer=env.checkpointer
    )
    with pytest.raises(RunAlreadyInvokedError) as info:
        async with env.manager.track(thread_id="t1") as run:
            await graph.ainvoke(hi(), run.config)
            await graph.ainvoke(hi("again"), run.config)
    assert info.value.run_id == run.run_id
    assert run.status is RunStatus.success  # the first invocation's result stands


async def test_a_track_block_without_invocation_is_recorded(env: Env) -> None:
    async with env.manager.track(thread_id="t1") as run:
        pass
    assert run.status is RunStatus.interrupted and run.stop_reason == "not_invoked"


async def test_models_without_usage_or_name_and_block_content(env: Env) -> None:
    no_usage = AIMessage(content="plain")
    blocks = reply(
        [{"type": "text", "text": "from "}, {"type": "text", "text": "blocks"}],
        None,
        input_tokens=1,
        output_tokens=1,
    )
    graph = two_model_graph(listed_model(no_usage), listed_model(blocks)).compile(
        checkpointer=env.checkpointer
    )
    run = await env.manager.wait(graph, hi(), thread_id="t1")
    assert run.status is RunStatus.success
    assert run.llm_call_count == 2
    assert run.total_tokens == 2
    assert set(run.token_usage_by_model) == {"unknown"}
    assert run.last_ai_message == "from blocks"


async def test_usage_from_llm_output_when_the_message_has_none(env: Env) -> None:
    from langchain_core.outputs import ChatGeneration, ChatResult

    class LegacyModel(type(listed_model())):  # type: ignore[misc]
        def _generate(
            self, messages: Any, stop: Any = None, run_manager: Any = None, **kwargs: Any
        ) -> ChatResult:
            return ChatResult(
                generations=[ChatGeneration(message=AIMessage(content="legacy"))],
                llm_output={
                    "token_usage": {
                        "prompt_tokens": 11,
                        "completion_tokens": 4,
                        "total_tokens": 15,
                    },
                    "model_name": "legacy-1",
                },
            )

    model = LegacyModel(responses=[AIMessage(content="unused")])
    graph = single_node_graph(lambda s: {"messages": [model.invoke(s["messages"])]}).compile(
        checkpointer=env.checkpointer
    )
    run = await env.manager.wait(graph, hi(), thread_id="t1")
    assert (run.input_tokens, run.output_tokens, run.total_tokens) == (11, 4, 15)
    assert run.token_usage_by_model["legacy-1"]["total_tokens"] == 15


async def test_a_restarted_manager_sees_finished_runs(tmp_path: Any) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'agent.db'}"
    async with SQLRunStore.from_url(url) as store:
        graph = two_model_graph(
            listed_model(reply("a", "m1")), listed_model(reply("b", "m2"))
        ).compile(checkpointer=store.checkpointer)
        run = await RunManager(store=store).wait(graph, hi(), thread_id="t1")
    async with SQLRunStore.from_url(url) as store:
        again = (await RunManager(store=store).list_by_thread("t1"))[0]
    assert again.run_id == run.run_id and again.store_only
    assert again.total_tokens == 30 and again.llm_call_count == 2
    assert again.token_usage_by_model["m2"]["total_tokens"] == 15
    assert again.last_ai_message == "b" and again.status is RunStatus.success


async def test_without_a_checkpointer_rows_are_still_written(env: Env) -> None:
    graph = two_model_graph(listed_model(reply("a")), listed_model(reply("b"))).compile()
    run = await env.manager.wait(graph, hi(), thread_id="t1")
    row = await env.store.get(run.run_id)
    assert row is not None and row["status"] == "success" and row["total_tokens"] == 30


async def test_a_missing_thread_id_never_loses_the_row(env: Env) -> None:
    graph = single_node_graph(lambda s: {"messages": [AIMessage(content="x")]}).compile(
        checkpointer=env.checkpointer
    )
    # track() puts thread_id into the config itself, whatever config it is given
    async with env.manager.track(thread_id="t1", config={"configurable": {}}) as run:
        await graph.ainvoke(hi(), run.config)
    assert run.status is RunStatus.success
    # a bare tracker: LangGraph refuses before any callback runs; the row stays pending
    record = await env.manager.create("t2")
    with pytest.raises(ValueError, match="thread_id"):
        await graph.ainvoke(hi(), {"callbacks": [env.manager.tracker(record.run_id)]})
    row = await env.store.get(record.run_id)
    assert row is not None and row["status"] == "pending"


async def test_a_reused_run_id_is_refused(env: Env) -> None:
    from langgraph_runstore import InvalidInputError

    first = await env.manager.create("t1")
    with pytest.raises(InvalidInputError, match=first.run_id):
        await env.manager.create("t1", run_id=first.run_id)
