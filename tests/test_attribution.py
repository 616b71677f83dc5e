"""Where a run's tokens, calls and cost went (``usage_by_node``) and how long its calls took
(``llm_ms``, ``first_token_ms``, ``queue_ms``), on real LangGraph graphs, on memory, SQLite
and PostgreSQL."""

from __future__ import annotations

import asyncio
import operator
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any, TypedDict

import pytest
from langchain_core.language_models.fake_chat_models import FakeMessagesListChatModel
from langchain_core.messages import AIMessage, AIMessageChunk
from langchain_core.outputs import ChatGenerationChunk
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.prebuilt import ToolNode
from langgraph.types import Send

from langgraph_runstore import RunManager, RunStore, SQLRunStore
from tests.graphs import State, StreamingUsageModel, listed_model, reply, single_node_graph

pytestmark = pytest.mark.anyio


@pytest.fixture
async def manager(store: RunStore) -> AsyncIterator[RunManager]:
    manager = RunManager(store=store, usage_tags=("subagent:",))
    yield manager
    await manager.aclose()


def saver(store: RunStore) -> Any:
    return store.checkpointer if isinstance(store, SQLRunStore) else InMemorySaver()


def calls(model: Any) -> Any:
    async def node(state: State) -> dict[str, Any]:
        return {"messages": [await model.ainvoke(state["messages"])]}

    return node


async def assert_stored_and_adds_up(store: RunStore, run: Any) -> None:
    by_node = run.usage_by_node
    for name in ("total_tokens", "input_tokens", "output_tokens"):
        assert sum(entry[name] for entry in by_node.values()) == getattr(run, name)
    assert sum(entry["llm_call_count"] for entry in by_node.values()) == run.llm_call_count
    row = await store.get(run.run_id)
    assert row is not None and row["usage_by_node"] == by_node


async def test_sub_graph_nodes_are_keyed_by_their_namespace(
    manager: RunManager, store: RunStore
) -> None:
    inner = StateGraph(State)
    inner.add_node("agent", calls(listed_model(reply("inner", "inner-model", input_tokens=30))))
    inner.add_edge(START, "agent")
    inner.add_edge("agent", END)
    outer = StateGraph(State)
    outer.add_node("researcher", inner.compile())
    outer.add_node("writer", calls(listed_model(reply("outer", "outer-model", input_tokens=7))))
    outer.add_edge(START, "researcher")
    outer.add_edge("researcher", "writer")
    outer.add_edge("writer", END)
    graph = outer.compile(checkpointer=saver(store))
    run = await manager.wait(graph, {"messages": [("user", "hi")]}, thread_id="t1")
    assert set(run.usage_by_node) == {"researcher|agent", "writer"}
    inner_entry = run.usage_by_node["researcher|agent"]
    assert (inner_entry["node"], inner_entry["namespace"]) == ("agent", "researcher")
    assert inner_entry["input_tokens"] == 30 and inner_entry["llm_call_count"] == 1
    assert run.usage_by_node["writer"]["namespace"] == ""
    assert run.usage_by_node["writer"]["total_tokens"] == 12
    await assert_stored_and_adds_up(store, run)


class FanState(TypedDict):
    topics: list[str]
    notes: Annotated[list[str], operator.add]


async def test_send_fan_out_sums_under_the_target_node(
    manager: RunManager, store: RunStore
) -> None:
    model = FakeMessagesListChatModel(
        responses=[reply(f"note {i}", "fan-model", input_tokens=10 + i) for i in range(3)]
    )

    async def note(state: dict[str, Any]) -> dict[str, Any]:
        answer = await model.ainvoke(state["topic"])
        return {"notes": [str(answer.content)]}

    def route(state: FanState) -> list[Send]:
        return [Send("note", {"topic": topic}) for topic in state["topics"]]

    builder = StateGraph(FanState)
    builder.add_node("note", note)
    builder.add_conditional_edges(START, route, ["note"])
    builder.add_edge("note", END)
    graph = builder.compile(checkpointer=saver(store))
    run = await manager.wait(graph, {"topics": ["a", "b", "c"]}, thread_id="t1")
    assert set(run.usage_by_node) == {"note"}
    entry = run.usage_by_node["note"]
    # three calls of 10, 11 and 12 input + 5 output tokens
    assert entry["llm_call_count"] == 3 and entry["input_tokens"] == 33
    assert entry["total_tokens"] == 48
    await assert_stored_and_adds_up(store, run)


async def test_an_llm_inside_a_tool_counts_under_the_node_that_ran_the_tool(
    manager: RunManager, store: RunStore
) -> None:
    helper = listed_model(reply("looked up", "tool-model", input_tokens=40, output_tokens=2))

    @tool
    async def research(topic: str) -> str:
        """Research a topic with a helper model."""
        return str((await helper.ainvoke(topic)).content)

    calling = AIMessage(
        content="",
        tool_calls=[{"name": "research", "args": {"topic": "x"}, "id": "call-1"}],
        usage_metadata={"input_tokens": 5, "output_tokens": 1, "total_tokens": 6},
        response_metadata={"model_name": "agent-model"},
    )
    agent_model = listed_model(calling, reply("done", "agent-model", input_tokens=9))

    def after_agent(state: State) -> str:
        return "tools" if state["messages"][-1].tool_calls else END

    builder = StateGraph(State)
    builder.add_node("agent", calls(agent_model))
    builder.add_node("tools", ToolNode([research]))
    builder.add_edge(START, "agent")
    builder.add_conditional_edges("agent", after_agent, ["tools", END])
    builder.add_edge("tools", "agent")
    graph = builder.compile(checkpointer=saver(store))
    run = await manager.wait(graph, {"messages": [("user", "go")]}, thread_id="t1")
    assert run.status.value == "success", run.error
    assert set(run.usage_by_node) == {"agent", "tools"}
    assert run.usage_by_node["tools"]["input_tokens"] == 40  # the helper's call, in the tool
    assert run.usage_by_node["tools"]["llm_call_count"] == 1
    assert run.usage_by_node["agent"]["llm_call_count"] == 2
    assert run.usage_by_node["agent"]["input_tokens"] == 5 + 9
    await assert_stored_and_adds_up(store, run)


async def test_a_tag_with_a_configured_prefix_takes_the_call(
    manager: RunManager, store: RunStore
) -> None:
    sub = listed_model(reply("sub", "sub-model", input_tokens=20)).with_config(
        tags=["subagent:researcher"]
    )
    lead = listed_model(reply("lead", "lead-model", input_tokens=3))

    async def both(state: State) -> dict[str, Any]:
        return {"messages": [await lead.ainvoke("a"), await sub.ainvoke("b")]}

    graph = single_node_graph(both).compile(checkpointer=saver(store))
    run = await manager.wait(graph, {"messages": [("user", "go")]}, thread_id="t1")
    assert set(run.usage_by_node) == {"only", "subagent:researcher"}
    assert run.usage_by_node["subagent:researcher"]["tag"] == "subagent:researcher"
    assert run.usage_by_node["subagent:researcher"]["input_tokens"] == 20
    assert run.usage_by_node["only"]["input_tokens"] == 3
    await assert_stored_and_adds_up(store, run)


class DelayedStreamingModel(StreamingUsageModel):
    """Waits ``delay`` seconds before its first token, then streams word by word."""

    delay: float = 0.08

    async def _astream(
        self, messages: Any, stop: Any = None, run_manager: Any = None, **kwargs: Any
    ) -> AsyncIterator[ChatGenerationChunk]:
        await asyncio.sleep(self.delay)
        for word in ["one ", "two ", "three"]:
            chunk = ChatGenerationChunk(message=AIMessageChunk(content=word))
            if run_manager is not None:
                await run_manager.on_llm_new_token(word, chunk=chunk)
            yield chunk
        yield ChatGenerationChunk(
            message=AIMessageChunk(
                content="",
                usage_metadata=self.usage,  # type: ignore[arg-type]
                response_metadata={"model_name": self.model_name},
            )
        )


async def test_latency_of_a_streaming_model_with_a_known_delay(
    manager: RunManager, store: RunStore
) -> None:
    """A node that takes 50 ms, then a model that waits 80 ms before its first token."""
    model = DelayedStreamingModel(messages=iter([AIMessage(content="one two three")]))

    async def prepare(state: State) -> dict[str, Any]:
        await asyncio.sleep(0.05)
        return {}

    builder = StateGraph(State)
    builder.add_node("prepare", prepare)
    builder.add_node("talk", calls(model))
    builder.add_edge(START, "prepare")
    builder.add_edge("prepare", "talk")
    builder.add_edge("talk", END)
    graph = builder.compile(checkpointer=saver(store))
    started = time.perf_counter()
    async for _ in manager.stream(graph, {"messages": [("user", "hi")]}, thread_id="t1",
                                  stream_mode="messages"):  # fmt: skip
        pass
    wall_ms = (time.perf_counter() - started) * 1000
    [run] = await manager.list_by_thread("t1")
    assert run.first_token_ms is not None and 130 <= run.first_token_ms < wall_ms
    assert 80 <= run.llm_ms < wall_ms
    entry = run.token_usage_by_model["stream-model"]
    assert entry["llm_call_count"] == 1 and entry["llm_ms"] == run.llm_ms
    assert [round(ms, 3) for ms in run.llm_call_ms["stream-model"]] == [run.llm_ms]
    assert run.usage_by_node["talk"]["llm_ms"] == run.llm_ms
    row = await store.get(run.run_id)
    assert row is not None and row["first_token_ms"] == pytest.approx(run.first_token_ms)
    assert row["llm_ms"] == pytest.approx(run.llm_ms)


async def test_a_run_that_streams_nothing_has_no_first_token(manager: RunManager) -> None:
    graph = single_node_graph(calls(listed_model(reply("x")))).compile()
    run = await manager.wait(graph, {"messages": [("user", "hi")]}, thread_id="t1")
    assert run.first_token_ms is None and run.llm_ms >= 0 and run.llm_call_count == 1


async def test_queue_ms_is_the_time_an_enqueued_run_waited(
    manager: RunManager, store: RunStore
) -> None:
    async def slow(state: State) -> dict[str, Any]:
        await asyncio.sleep(0.1)
        return {}

    graph = single_node_graph(slow).compile(checkpointer=saver(store))
    first = await manager.start(graph, {"messages": []}, thread_id="t1")
    second = await manager.start(
        graph, {"messages": []}, thread_id="t1", multitask_strategy="enqueue"
    )
    first, second = await manager.join(first.run_id), await manager.join(second.run_id)
    assert first.queue_ms == 0.0  # admitted and started in one write
    assert second.queue_ms is not None and second.queue_ms >= 100
    stored = await manager.get(second.run_id)
    assert stored.queue_ms == pytest.approx(second.queue_ms)


def test_a_run_without_calls_has_no_cost_and_no_nodes() -> None:
    from langgraph_runstore.tally import Tally

    fields = Tally().fields()
    assert fields["cost_usd"] is None and fields["unpriced_calls"] == 0
    assert fields["llm_ms"] == 0.0 and fields["first_token_ms"] is None
    assert fields["usage_by_node"] == {} and fields["llm_call_ms"] == {}
