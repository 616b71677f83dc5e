"""Graphs for the journal tests: a tool-calling agent inside a sub-graph, on fake chat models
that report token usage, and a graph that waits at a gate the test opens."""

from __future__ import annotations

import asyncio
from typing import Any

from langchain_core.messages import AIMessage
from langchain_core.tools import tool
from langgraph.graph import END, START, StateGraph
from langgraph.prebuilt import ToolNode, tools_condition

from tests.graphs import State, listed_model, reply


@tool
def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


def tool_call(model: str = "planner") -> AIMessage:
    return AIMessage(
        content="let me add",
        tool_calls=[{"name": "add", "args": {"a": 1, "b": 2}, "id": "call-1"}],
        usage_metadata={"input_tokens": 12, "output_tokens": 4, "total_tokens": 16},
        response_metadata={"model_name": model},
    )


def agent_graph(checkpointer: Any = None) -> Any:
    """prep -> research (a sub-graph: call (LLM "planner", asks for the add tool) -> tools
    -> call (LLM "writer", answers)) -> END. New models per graph: each answers once."""
    planner = listed_model(tool_call())
    writer = listed_model(reply("the sum is 3", "writer", input_tokens=20, output_tokens=6))
    turns = {"n": 0}

    async def call(state: State) -> dict[str, Any]:
        turns["n"] += 1
        model = planner if turns["n"] == 1 else writer
        return {"messages": [await model.ainvoke(state["messages"])]}

    inner = StateGraph(State)
    inner.add_node("call", call)
    inner.add_node("tools", ToolNode([add]))
    inner.add_edge(START, "call")
    inner.add_conditional_edges("call", tools_condition)
    inner.add_edge("tools", "call")

    outer = StateGraph(State)
    outer.add_node("prep", lambda state: {"messages": [("system", "be brief")]})
    outer.add_node("research", inner.compile())
    outer.add_edge(START, "prep")
    outer.add_edge("prep", "research")
    outer.add_edge("research", END)
    return outer.compile(checkpointer=checkpointer)


#: The events the agent graph's run journals, in order, as (kind, node or tool or model).
AGENT_EVENTS = [
    ("run_admitted", None),
    ("run_started", None),
    ("node_started", "prep"),
    ("node_ended", "prep"),
    ("node_started", "research"),
    ("node_started", "call"),
    ("llm_ended", "planner"),
    ("node_ended", "call"),
    ("node_started", "tools"),
    ("tool_ended", "add"),
    ("node_ended", "tools"),
    ("node_started", "call"),
    ("llm_ended", "writer"),
    ("node_ended", "call"),
    ("node_ended", "research"),
    ("run_ended", None),
]


def label(event: Any) -> tuple[str, Any]:
    """(kind, what it is about): the node, the tool or the model."""
    kind = event.kind
    key = "node" if kind.startswith("node") else "tool" if kind.startswith("tool") else "model"
    return kind, event.data.get(key)


def gated_graph(gate: asyncio.Event, *, checkpointer: Any = None) -> Any:
    """think (LLM, 15 tokens) -> gate (waits for ``gate``) -> answer (LLM, 8 tokens)."""
    first = listed_model(reply("thought", "m-think", input_tokens=11, output_tokens=4))
    second = listed_model(reply("done", "m-answer", input_tokens=5, output_tokens=3))

    async def think(state: State) -> dict[str, Any]:
        return {"messages": [await first.ainvoke(state["messages"])]}

    async def wait(state: State) -> dict[str, Any]:
        await gate.wait()
        return {}

    async def answer(state: State) -> dict[str, Any]:
        return {"messages": [await second.ainvoke(state["messages"])]}

    builder = StateGraph(State)
    builder.add_node("think", think)
    builder.add_node("gate", wait)
    builder.add_node("answer", answer)
    builder.add_edge(START, "think")
    builder.add_edge("think", "gate")
    builder.add_edge("gate", "answer")
    builder.add_edge("answer", END)
    return builder.compile(checkpointer=checkpointer)
