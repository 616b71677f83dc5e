"""Graphs the test server serves beside the example's: loaded by the server from this file,
so they import the shared test graphs through the repository root on PYTHONPATH."""

from __future__ import annotations

import asyncio
from typing import Any

from langgraph.config import get_stream_writer
from langgraph.graph import END, START, StateGraph

from langgraph_runstore.agent_server import recorded
from tests.graphs import State, listed_model, reply

model = listed_model(reply("thinking", model="model-b", input_tokens=11, output_tokens=4))


async def think(state: State) -> dict[str, Any]:
    return {"messages": [await model.ainvoke(state["messages"])]}


async def hold(state: State) -> dict[str, Any]:
    # tells the client it is here, then waits until the run is cancelled
    get_stream_writer()("holding")
    await asyncio.Event().wait()
    return {"messages": [("ai", "never")]}


builder = StateGraph(State)
builder.add_node("think", think)
builder.add_node("hold", hold)
builder.add_edge(START, "think")
builder.add_edge("think", "hold")
builder.add_edge("hold", END)

#: think (one LLM call, 15 tokens) -> hold (until cancelled)
held = recorded(builder.compile())
