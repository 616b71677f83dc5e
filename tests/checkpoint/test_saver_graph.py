"""A real compiled LangGraph graph on SQLAlchemySaver: async, sync, history, update, interrupt."""

from __future__ import annotations

import asyncio
import operator
from typing import Annotated, Any, TypedDict

import pytest
from langchain_core.messages import AIMessage, AnyMessage, HumanMessage
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Command, interrupt

from langgraph_runstore.checkpoint import SQLAlchemySaver
from langgraph_runstore.db.engine import create_engine


class State(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]
    visits: Annotated[int, operator.add]


def _node(name: str) -> Any:
    def run(state: State) -> dict[str, Any]:
        return {
            "messages": [AIMessage(content=f"{name}: seen {len(state['messages'])}")],
            "visits": 1,
        }

    return run


def build(saver: SQLAlchemySaver) -> CompiledStateGraph[Any, Any, Any, Any]:
    builder = StateGraph(State)
    for name in ("plan", "act", "report"):
        builder.add_node(name, _node(name))
    builder.add_edge(START, "plan")
    builder.add_edge("plan", "act")
    builder.add_edge("act", "report")
    builder.add_edge("report", END)
    return builder.compile(checkpointer=saver)


def cfg(thread_id: str) -> Any:
    return {"configurable": {"thread_id": thread_id}}


def contents(state: Any) -> list[str]:
    return [str(m.content) for m in state["messages"]]


@pytest.mark.asyncio
async def test_async_graph_end_to_end(db_url: str) -> None:
    async with SQLAlchemySaver.from_url(db_url) as saver:
        graph = build(saver)
        out = await graph.ainvoke({"messages": [HumanMessage(content="hi")]}, cfg("t1"))
        assert contents(out) == ["hi", "plan: seen 1", "act: seen 2", "report: seen 3"]
        assert out["visits"] == 3

        # the second turn starts from the stored state
        chunks = [
            c
            async for c in graph.astream(
                {"messages": [HumanMessage(content="again")]}, cfg("t1"), stream_mode="updates"
            )
        ]
        assert [next(iter(c)) for c in chunks] == ["plan", "act", "report"]

        state = await graph.aget_state(cfg("t1"))
        assert len(state.values["messages"]) == 8
        assert state.values["visits"] == 6
        assert state.next == ()
        assert state.metadata is not None and state.metadata["step"] == 8

        history = [s async for s in graph.aget_state_history(cfg("t1"))]
        assert len(history) == 10  # (input + 4 loop steps) per turn
        assert [s.metadata["step"] for s in history if s.metadata] == list(range(8, -2, -1))
        assert len(history[-1].values.get("messages", [])) == 0

        # time travel: the state after the first turn's "act" step
        past = next(s for s in history if s.metadata and s.metadata["step"] == 2)
        assert contents(past.values) == ["hi", "plan: seen 1", "act: seen 2"]

        new_config = await graph.aupdate_state(
            cfg("t1"), {"messages": [AIMessage(content="edited")], "visits": 10}
        )
        updated = await graph.aget_state(new_config)
        assert contents(updated.values)[-1] == "edited"
        assert updated.values["visits"] == 16
        assert updated.metadata is not None and updated.metadata["source"] == "update"

        # another thread is untouched
        assert (await graph.aget_state(cfg("t2"))).values == {}


def test_sync_graph_from_plain_function(db_url: str) -> None:
    """graph.invoke / graph.stream with no event loop anywhere in the test."""
    engine = create_engine(db_url)
    saver = SQLAlchemySaver(engine)  # the first sync call sets the schema up
    try:
        graph = build(saver)
        out = graph.invoke({"messages": [HumanMessage(content="hi")]}, cfg("s1"))
        assert contents(out)[-1] == "report: seen 3"
        chunks = list(
            graph.stream({"messages": [("user", "more")]}, cfg("s1"), stream_mode="values")
        )
        assert len(chunks[-1]["messages"]) == 8

        state = graph.get_state(cfg("s1"))
        assert state.values["visits"] == 6
        history = list(graph.get_state_history(cfg("s1"), limit=3))
        assert [h.metadata["step"] for h in history if h.metadata] == [8, 7, 6]

        graph.update_state(cfg("s1"), {"visits": 100})
        assert graph.get_state(cfg("s1")).values["visits"] == 106
        assert saver.get_tuple(cfg("nope")) is None
        assert len(list(saver.list(cfg("s1")))) == 11
    finally:
        saver.close()
        asyncio.run(engine.dispose())


@pytest.mark.asyncio
async def test_sync_graph_from_worker_thread_beside_running_loop(db_url: str) -> None:
    async with SQLAlchemySaver.from_url(db_url) as saver:
        graph = build(saver)
        out = await asyncio.to_thread(
            graph.invoke, {"messages": [HumanMessage(content="hi")]}, cfg("w1")
        )
        assert len(out["messages"]) == 4
        chunks = await asyncio.to_thread(
            lambda: list(graph.stream({"messages": [("user", "x")]}, cfg("w1")))
        )
        assert len(chunks) == 3
        # the async side sees what the sync side wrote
        state = await graph.aget_state(cfg("w1"))
        assert len(state.values["messages"]) == 8


class Approval(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]


def _ask(state: Approval) -> dict[str, Any]:
    answer = interrupt("approve?")
    return {"messages": [AIMessage(content=f"answer: {answer}")]}


@pytest.mark.asyncio
async def test_interrupt_and_resume(db_url: str) -> None:
    async with SQLAlchemySaver.from_url(db_url) as saver:
        builder = StateGraph(Approval)
        builder.add_node("ask", _ask)
        builder.add_edge(START, "ask")
        builder.add_edge("ask", END)
        graph: Any = builder.compile(checkpointer=saver)

        first = await graph.ainvoke({"messages": [("user", "deploy")]}, cfg("h1"))
        assert "__interrupt__" in first
        state = await graph.aget_state(cfg("h1"))
        assert state.next == ("ask",)
        assert state.tasks[0].interrupts[0].value == "approve?"

        done = await graph.ainvoke(Command(resume="yes"), cfg("h1"))
        assert contents(done)[-1] == "answer: yes"
        assert (await graph.aget_state(cfg("h1"))).next == ()


@pytest.mark.asyncio
async def test_subgraph_checkpoints_live_in_their_namespace(db_url: str) -> None:
    async with SQLAlchemySaver.from_url(db_url) as saver:
        inner = StateGraph(State)
        inner.add_node("inner", _node("inner"))
        inner.add_edge(START, "inner")
        inner.add_edge("inner", END)
        outer = StateGraph(State)
        outer.add_node("sub", inner.compile())
        outer.add_node("after", _node("after"))
        outer.add_edge(START, "sub")
        outer.add_edge("sub", "after")
        outer.add_edge("after", END)
        graph: Any = outer.compile(checkpointer=saver)

        out = await graph.ainvoke({"messages": [("user", "hi")]}, cfg("n1"))
        assert contents(out)[-2:] == ["inner: seen 1", "after: seen 2"]
        namespaces = {
            t.config["configurable"]["checkpoint_ns"]
            async for t in saver.alist({"configurable": {"thread_id": "n1"}})
        }
        assert "" in namespaces
        assert any(ns.startswith("sub:") for ns in namespaces)
