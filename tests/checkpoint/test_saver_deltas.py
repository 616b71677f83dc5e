"""Append-only storage of long list channels: deltas, chains, snapshots and their limits."""

from __future__ import annotations

import operator
from collections.abc import AsyncIterator
from typing import Annotated, Any, TypedDict

import pytest
import pytest_asyncio
from langchain_core.messages import AIMessage, AnyMessage, HumanMessage
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from sqlalchemy import text

from langgraph_runstore.checkpoint import SQLAlchemySaver
from langgraph_runstore.checkpoint._deltas import ListDeltas
from langgraph_runstore.errors import CheckpointError

pytestmark = pytest.mark.asyncio


class State(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]
    n: Annotated[int, operator.add]


def _reply(state: State) -> dict[str, Any]:
    return {"messages": [AIMessage(content=f"reply to {len(state['messages'])}")], "n": 1}


def _edit_first(state: State) -> dict[str, Any]:
    # reassigns an attribute of a stored message and hands the same object back
    first = state["messages"][0]
    first.content = "edited in place"
    return {"messages": [first], "n": 1}


def _graph(saver: SQLAlchemySaver, node: Any = _reply) -> Any:
    builder = StateGraph(State)
    builder.add_node("reply", node)
    builder.add_edge(START, "reply")
    builder.add_edge("reply", END)
    return builder.compile(checkpointer=saver)


@pytest_asyncio.fixture
async def saver(db_url: str) -> AsyncIterator[SQLAlchemySaver]:
    async with SQLAlchemySaver.from_url(db_url) as s:
        yield s


async def _blob_rows(saver: SQLAlchemySaver, channel: str = "messages") -> list[Any]:
    async with saver.engine.connect() as conn:
        result = await conn.execute(
            text(
                "SELECT version, chain FROM rs_checkpoint_blobs WHERE channel = :c ORDER BY version"
            ),
            {"c": channel},
        )
        return list(result.all())


def cfg(thread_id: str) -> Any:
    return {"configurable": {"thread_id": thread_id}}


async def test_growing_history_is_stored_as_deltas_and_reads_back(
    saver: SQLAlchemySaver, db_url: str
) -> None:
    graph = _graph(saver)
    for i in range(40):
        await graph.ainvoke({"messages": [HumanMessage(content=f"q{i}")]}, cfg("g"))
    rows = await _blob_rows(saver)
    deltas = [r for r in rows if r[1] is not None]
    assert len(deltas) > len(rows) // 2  # most versions only hold what was appended
    assert all(len(eval_chain(r[1])) <= 24 for r in deltas)
    assert any(r[1] is None for r in rows[10:])  # full copies again after max_chain steps

    state = await graph.aget_state(cfg("g"))
    assert len(state.values["messages"]) == 80
    assert [m.content for m in state.values["messages"][:3]] == ["q0", "reply to 1", "q1"]

    # a fresh saver (another process) reads the same, every checkpoint of the history
    async with SQLAlchemySaver.from_url(db_url) as other:
        history = [t async for t in other.alist(cfg("g"))]
        assert len(history) == 120  # input, __start__ and reply checkpoints per turn
        final = state.values["messages"]
        lengths = set()
        for t in history:
            messages = t.checkpoint["channel_values"].get("messages", [])
            assert messages == final[: len(messages)]
            lengths.add(len(messages))
        assert lengths == set(range(81))
        latest = await other.aget_tuple(cfg("g"))
        assert latest is not None
        assert latest.checkpoint["channel_values"]["messages"] == state.values["messages"]


def eval_chain(chain_json: str) -> list[str]:
    import json

    return list(json.loads(chain_json))


async def test_reassigned_attribute_forces_a_full_copy(saver: SQLAlchemySaver) -> None:
    graph = _graph(saver)
    for i in range(6):
        await graph.ainvoke({"messages": [HumanMessage(content=f"q{i}")]}, cfg("m"))
    editor = _graph(saver, _edit_first)
    await editor.ainvoke({"messages": [HumanMessage(content="edit please")]}, cfg("m"))
    async with SQLAlchemySaver.from_url(str(saver.engine.url.render_as_string(False))) as other:
        stored = await other.aget_tuple(cfg("m"))
    assert stored is not None
    assert stored.checkpoint["channel_values"]["messages"][0].content == "edited in place"


async def test_deltas_can_be_turned_off(db_url: str) -> None:
    async with SQLAlchemySaver.from_url(db_url, list_deltas=False) as saver:
        graph = _graph(saver)
        for i in range(10):
            await graph.ainvoke({"messages": [HumanMessage(content=f"q{i}")]}, cfg("o"))
        assert all(r[1] is None for r in await _blob_rows(saver))


async def test_prune_and_copy_keep_the_chains_they_need(saver: SQLAlchemySaver) -> None:
    graph = _graph(saver)
    for i in range(12):
        await graph.ainvoke({"messages": [HumanMessage(content=f"q{i}")]}, cfg("p"))
    expected = (await graph.aget_state(cfg("p"))).values["messages"]
    await saver.acopy_thread("p", "p-copy")
    await saver.aprune(["p"], strategy="keep_latest")
    for thread in ("p", "p-copy"):
        tup = await saver.aget_tuple(cfg(thread))
        assert tup is not None and tup.checkpoint["channel_values"]["messages"] == expected
    # and the history continues on the pruned thread
    await graph.ainvoke({"messages": [HumanMessage(content="after prune")]}, cfg("p"))
    again = await saver.aget_tuple(cfg("p"))
    assert again is not None and len(again.checkpoint["channel_values"]["messages"]) == 26


async def test_a_missing_chain_link_is_a_clear_error(saver: SQLAlchemySaver) -> None:
    graph = _graph(saver)
    for i in range(8):
        await graph.ainvoke({"messages": [HumanMessage(content=f"q{i}")]}, cfg("x"))
    rows = await _blob_rows(saver)
    head_chain = eval_chain(next(r[1] for r in reversed(rows) if r[1] is not None))
    async with saver.engine.begin() as conn:
        await conn.execute(
            text("DELETE FROM rs_checkpoint_blobs WHERE channel = 'messages' AND version = :v"),
            {"v": head_chain[0]},
        )
    with pytest.raises(CheckpointError, match="missing") as info:
        await saver.aget_tuple(cfg("x"))
    assert info.value.thread_id == "x"


def test_plan_rules() -> None:
    deltas = ListDeltas(min_len=3, max_chain=2)
    key = ("t", "", "ch")
    items = [HumanMessage(content=str(i)) for i in range(3)]
    stored, chain, state = deltas.plan(key, "v1", items)
    assert stored is items and chain is None and state is not None
    # nothing remembered until the write is committed
    assert deltas.plan(key, "v2", [*items, HumanMessage(content="x")])[1] is None
    deltas.commit(key, state)
    grown = [*items, HumanMessage(content="3")]
    stored, chain, state = deltas.plan(key, "v2", grown)
    assert stored == grown[3:] and chain == ("v1",) and state is not None
    deltas.commit(key, state)
    third = [*grown, HumanMessage(content="4")]
    stored, chain, state = deltas.plan(key, "v3", third)
    assert chain == ("v1", "v2") and state is not None
    deltas.commit(key, state)
    # the chain is full: the next version is a full copy
    assert deltas.plan(key, "v4", [*third, HumanMessage(content="5")])[1] is None
    # a different object at a prefix position: full copy
    assert deltas.plan(key, "v4", [HumanMessage(content="0"), *third[1:]])[1] is None
    # lists of plain values and short lists are stored as they are
    assert deltas.plan(key, "v9", [1, 2, 3, 4]) == ([1, 2, 3, 4], None, None)
    assert deltas.plan(key, "v9", items[:2])[2] is None
    assert deltas.plan(key, 7, items)[2] is None  # only LangGraph's string versions
