"""prune(): keep_latest keeps what reading and resuming the latest state needs, and nothing
else; delete removes the thread. Real graphs on SQLAlchemySaver (SQLite and PostgreSQL),
side by side with LangGraph's AsyncPostgresSaver, the stock saver that implements prune."""

from __future__ import annotations

import json
import operator
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any, TypedDict

import psycopg
import pytest
import pytest_asyncio
from langgraph.channels.delta import DeltaChannel
from langgraph.checkpoint.base import BaseCheckpointSaver, empty_checkpoint
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command, interrupt
from sqlalchemy import text

from langgraph_runstore import PruneRefusedError
from langgraph_runstore.checkpoint import SQLAlchemySaver
from langgraph_runstore.errors import InvalidInputError
from tests.backends import libpq_url

pytestmark = pytest.mark.asyncio


class Items(TypedDict):
    items: Annotated[list[str], operator.add]


def cfg(thread_id: str) -> Any:
    return {"configurable": {"thread_id": thread_id}}


@pytest_asyncio.fixture
async def savers(db_url: str) -> AsyncIterator[dict[str, Any]]:
    """Our saver, and on PostgreSQL the stock one too (its own tables, same database)."""
    async with SQLAlchemySaver.from_url(db_url) as ours:
        if not db_url.startswith("postgresql"):
            yield {"ours": ours}
            return
        stock_url = libpq_url(db_url)
        async with AsyncPostgresSaver.from_conn_string(stock_url) as stock:
            await stock.setup()
            stock.url = stock_url  # type: ignore[attr-defined]
            yield {"ours": ours, "stock": stock}


async def table_rows(saver: BaseCheckpointSaver[Any], thread_id: str) -> dict[str, Any]:
    """What the saver stores for a thread: checkpoints per namespace, write and blob counts,
    and the blobs that no checkpoint left references (directly or through a delta chain)."""
    if isinstance(saver, SQLAlchemySaver):
        tables = ("rs_checkpoints", "rs_checkpoint_writes", "rs_checkpoint_blobs")
        versions_col, chain_col = "channel_versions", "chain"
        async with saver.engine.connect() as conn:

            async def run(sql: str) -> list[Any]:
                return list((await conn.execute(text(sql), {"t": thread_id})).all())

            return await _rows(run, tables, versions_col, chain_col)
    tables = ("checkpoints", "checkpoint_writes", "checkpoint_blobs")
    versions_col = "checkpoint -> 'channel_versions'"
    with psycopg.connect(saver.url) as conn:  # type: ignore[attr-defined]

        async def run_stock(sql: str) -> list[Any]:
            return list(conn.execute(sql.replace(":t", "%(t)s"), {"t": thread_id}).fetchall())

        return await _rows(run_stock, tables, versions_col, "NULL")


async def _rows(run: Any, tables: tuple[str, str, str], versions: str, chain: str) -> Any:
    checkpoints, writes, blobs = tables
    per_ns: dict[str, int] = {}
    referenced: set[tuple[str, str, str]] = set()
    for ns, channel_versions in await run(
        f"SELECT checkpoint_ns, {versions} FROM {checkpoints} WHERE thread_id = :t"
    ):
        per_ns[ns] = per_ns.get(ns, 0) + 1
        if not isinstance(channel_versions, dict):
            channel_versions = json.loads(channel_versions)
        referenced.update((ns, ch, str(v)) for ch, v in channel_versions.items())
    stored = await run(
        f"SELECT checkpoint_ns, channel, version, {chain} FROM {blobs} WHERE thread_id = :t"
    )
    for ns, channel, version, chained in stored:
        if (ns, channel, version) in referenced and chained:
            referenced.update((ns, channel, str(v)) for v in json.loads(chained))
    (count,) = (await run(f"SELECT COUNT(*) FROM {writes} WHERE thread_id = :t"))[0]
    return {
        "checkpoints": per_ns,
        "writes": int(count),
        "blobs": len(stored),
        "unreferenced blobs": [b[:3] for b in stored if tuple(b[:3]) not in referenced],
    }


async def history(graph: Any, thread_id: str) -> list[Any]:
    return [s async for s in graph.aget_state_history(cfg(thread_id))]


def linear() -> StateGraph[Items]:
    builder = StateGraph(Items)
    for name in ("plan", "act", "report"):
        builder.add_node(name, lambda s, name=name: {"items": [f"{name}:{len(s['items'])}"]})
    builder.add_edge(START, "plan")
    builder.add_edge("plan", "act")
    builder.add_edge("act", "report")
    builder.add_edge("report", END)
    return builder


def with_subgraphs() -> StateGraph[Items]:
    """call (a sub-graph called afresh each time: namespace ``call:<task id>``) -> keep (a
    sub-graph with a checkpointer of its own: namespace ``keep``, state across calls)."""

    def inner(tag: str, checkpointer: Any = None) -> Any:
        builder = StateGraph(Items)
        builder.add_node("inner", lambda s: {"items": [f"{tag}:{len(s['items'])}"]})
        builder.add_edge(START, "inner")
        builder.add_edge("inner", END)
        return builder.compile(checkpointer=checkpointer)

    builder = StateGraph(Items)
    builder.add_node("call", inner("call"))
    builder.add_node("keep", inner("keep", checkpointer=True))
    builder.add_edge(START, "call")
    builder.add_edge("call", "keep")
    builder.add_edge("keep", END)
    return builder


async def test_keep_latest_keeps_the_latest_state_as_a_root_and_nothing_else(
    savers: dict[str, Any],
) -> None:
    seen: dict[str, Any] = {}
    for name, saver in savers.items():
        graph = linear().compile(checkpointer=saver)
        for turn in range(3):
            await graph.ainvoke({"items": [f"turn {turn}"]}, cfg("t"))
        await graph.ainvoke({"items": ["other"]}, cfg("other"))
        before = await graph.aget_state(cfg("t"))
        other_before = len(await history(graph, "other"))
        assert before.parent_config is not None

        await saver.aprune(["t"], strategy="keep_latest")

        after = await graph.aget_state(cfg("t"))
        assert after.values == before.values and after.next == ()
        assert after.config == before.config
        assert after.parent_config is None, name  # a root: its parent was deleted
        kept = await history(graph, "t")
        assert [s.config for s in kept] == [before.config]
        tuples = [t async for t in saver.alist(cfg("t"))]
        assert len(tuples) == 1 and tuples[0].parent_config is None
        stored = await table_rows(saver, "t")
        assert stored["checkpoints"] == {"": 1}
        assert stored["writes"] == 0 and stored["unreferenced blobs"] == []
        assert len(await history(graph, "other")) == other_before  # not named: untouched

        # the thread goes on from the kept checkpoint
        out = await graph.ainvoke({"items": ["turn 3"]}, cfg("t"))
        assert out["items"][: len(before.values["items"])] == before.values["items"]
        assert (await history(graph, "t"))[-1].config == before.config
        seen[name] = (after.values, out, len(await history(graph, "t")))
    assert len({repr(v) for v in seen.values()}) == 1, seen


async def test_keep_latest_removes_finished_subgraph_calls(savers: dict[str, Any]) -> None:
    seen: dict[str, Any] = {}
    for name, saver in savers.items():
        graph = with_subgraphs().compile(checkpointer=saver)
        for turn in range(3):
            await graph.ainvoke({"items": [f"turn {turn}"]}, cfg("s"))
        before = await graph.aget_state(cfg("s"), subgraphs=True)
        namespaces = (await table_rows(saver, "s"))["checkpoints"]
        assert sum(ns.startswith("call:") for ns in namespaces) == 3 and "keep" in namespaces

        await saver.aprune(["s"])

        stored = await table_rows(saver, "s")
        # the calls are gone; the sub-graph with a checkpointer of its own keeps its latest
        assert stored["checkpoints"] == {"": 1, "keep": 1}, name
        assert stored["writes"] == 0 and stored["unreferenced blobs"] == []
        after = await graph.aget_state(cfg("s"), subgraphs=True)
        assert after.values == before.values
        out = await graph.ainvoke({"items": ["turn 3"]}, cfg("s"))
        await saver.aprune(["s"])  # storage stays bounded turn after turn
        assert (await table_rows(saver, "s"))["checkpoints"] == {"": 1, "keep": 1}
        seen[name] = (after.values, out)
    assert len({repr(v) for v in seen.values()}) == 1, seen


def paused() -> StateGraph[Items]:
    """START -> [work, ask] in one step; ``ask`` interrupts, ``work`` finishes (its writes
    are pending on the interrupted checkpoint); then -> END."""
    calls: list[str] = []

    def work(state: Items) -> dict[str, Any]:
        calls.append("work")
        return {"items": ["worked"]}

    def ask(state: Items) -> dict[str, Any]:
        return {"items": [f"answer: {interrupt('go on?')}"]}

    builder = StateGraph(Items)
    builder.add_node("work", work)
    builder.add_node("ask", ask)
    builder.add_edge(START, "work")
    builder.add_edge(START, "ask")
    builder.add_edge("work", END)
    builder.add_edge("ask", END)
    builder.calls = calls  # type: ignore[attr-defined]
    return builder


def paused_in_a_subgraph() -> StateGraph[Items]:
    inner = StateGraph(Items)
    inner.add_node("ask", lambda s: {"items": [f"inner answer: {interrupt('deep?')}"]})
    inner.add_edge(START, "ask")
    inner.add_edge("ask", END)
    outer = StateGraph(Items)
    outer.add_node("review", inner.compile())
    outer.add_edge(START, "review")
    outer.add_edge("review", END)
    return outer


@pytest.mark.parametrize("shape", ["parallel", "subgraph", "interrupt_before"])
async def test_keep_latest_keeps_an_interrupted_thread_resumable(
    savers: dict[str, Any], shape: str
) -> None:
    seen: dict[str, Any] = {}
    for name, saver in savers.items():
        if shape == "interrupt_before":
            graph = linear().compile(checkpointer=saver, interrupt_before=["act"])
        else:
            builder = paused_in_a_subgraph() if shape == "subgraph" else paused()
            graph = builder.compile(checkpointer=saver)
        await graph.ainvoke({"items": ["earlier"]}, cfg("p0"))  # an earlier thread turn
        for thread in ("p", "p0"):
            await graph.ainvoke({"items": ["start"]}, cfg(thread))
        before = await graph.aget_state(cfg("p"), subgraphs=True)
        assert before.next, "the run paused"

        await saver.aprune(["p", "p0"])

        after = await graph.aget_state(cfg("p"), subgraphs=True)
        assert (after.next, after.values, after.parent_config) == (
            before.next,
            before.values,
            None,
        )
        assert [t.interrupts for t in after.tasks] == [t.interrupts for t in before.tasks]
        if shape == "interrupt_before":
            out = await graph.ainvoke(None, cfg("p"))
        else:
            out = await graph.ainvoke(Command(resume="yes"), cfg("p"))
        assert not (await graph.aget_state(cfg("p"))).next
        if shape == "parallel":
            # "work" finished before the pause: its pending writes survived, so no rerun
            assert builder.calls.count("work") == 3, name  # type: ignore[attr-defined]
        seen[name] = out
    assert len({repr(v) for v in seen.values()}) == 1, seen


def delta_graph() -> StateGraph[Any]:
    class Delta(TypedDict):
        items: Annotated[
            list[str], DeltaChannel(lambda acc, batches: acc + [x for b in batches for x in b])
        ]

    builder = StateGraph(Delta)
    builder.add_node("step", lambda s: {"items": [f"step:{len(s['items'])}"]})
    builder.add_edge(START, "step")
    builder.add_edge("step", END)
    return builder


async def test_keep_latest_refuses_delta_channel_threads_and_deletes_nothing(
    savers: dict[str, Any],
) -> None:
    for name, saver in savers.items():
        delta = delta_graph().compile(checkpointer=saver)
        plain = linear().compile(checkpointer=saver)
        for turn in range(3):
            await delta.ainvoke({"items": [f"turn {turn}"]}, cfg("d"))
            await plain.ainvoke({"items": [f"turn {turn}"]}, cfg("plain"))
        state = await delta.aget_state(cfg("d"))
        assert len(state.values["items"]) == 6
        lengths = (len(await history(delta, "d")), len(await history(plain, "plain")))

        # the stock saver raises NotImplementedError too, and checks the batch first
        with pytest.raises(NotImplementedError, match="DeltaChannel") as refused:
            await saver.aprune(["plain", "d"], strategy="keep_latest")
        if name == "ours":
            assert isinstance(refused.value, PruneRefusedError)
            assert refused.value.thread_ids == ("d",) and refused.value.thread_id == "d"
        assert (await delta.aget_state(cfg("d"))).values == state.values  # never read empty
        assert (len(await history(delta, "d")), len(await history(plain, "plain"))) == lengths

        await saver.aprune(["d"], strategy="delete")
        assert await history(delta, "d") == []
        assert len(await history(plain, "plain")) == lengths[1]


async def test_keep_latest_leaves_writes_saved_before_their_checkpoint(
    savers: dict[str, Any],
) -> None:
    # a run saves a step's writes in the background: they can land before their checkpoint
    for name, saver in savers.items():
        thread = f"w-{name}"
        config: Any = {"configurable": {"thread_id": thread, "checkpoint_ns": ""}}
        first = await saver.aput(config, empty_checkpoint(), {"step": 0}, {})
        second = await saver.aput(first, empty_checkpoint(), {"step": 1}, {})
        await saver.aput_writes(second, [("kept", 1)], "task-kept")
        await saver.aput_writes(first, [("old", 0)], "task-old")
        third = empty_checkpoint()
        early = {"configurable": {**second["configurable"], "checkpoint_id": third["id"]}}
        await saver.aput_writes(early, [("early", 2)], "task-early")

        await saver.aprune([thread])
        tup = await saver.aget_tuple(config)
        assert tup is not None and tup.config == second
        assert tup.pending_writes == [("task-kept", "kept", 1)]
        await saver.aput(second, third, {"step": 2}, {})
        tup = await saver.aget_tuple(config)
        assert tup is not None and tup.checkpoint["id"] == third["id"], name
        assert tup.pending_writes == [("task-early", "early", 2)], name


async def test_delete_removes_every_namespace_of_the_thread(savers: dict[str, Any]) -> None:
    for saver in savers.values():
        graph = with_subgraphs().compile(checkpointer=saver)
        for thread in ("gone", "stays"):
            await graph.ainvoke({"items": ["x"]}, cfg(thread))
        await saver.aprune(["gone"], strategy="delete")
        stored = await table_rows(saver, "gone")
        assert (stored["checkpoints"], stored["writes"], stored["blobs"]) == ({}, 0, 0)
        assert set((await table_rows(saver, "stays"))["checkpoints"]) >= {"", "keep"}


async def test_prune_takes_a_list_of_thread_ids_not_one_string(savers: dict[str, Any]) -> None:
    saver = savers["ours"]
    graph = linear().compile(checkpointer=saver)
    await graph.ainvoke({"items": ["x"]}, cfg("t"))
    await graph.ainvoke({"items": ["y"]}, cfg("t"))
    before = len(await history(graph, "t"))
    for strategy in ("keep_latest", "delete"):
        with pytest.raises(InvalidInputError, match="thread_ids"):
            await saver.aprune("t", strategy=strategy)  # type: ignore[arg-type]
    assert len(await history(graph, "t")) == before > 1  # nothing was pruned


def test_sync_prune_on_a_script_thread(tmp_path: Any) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'sync.db'}"
    with SQLAlchemySaver.from_url(url) as saver:
        graph = with_subgraphs().compile(checkpointer=saver)
        for turn in range(2):
            graph.invoke({"items": [f"turn {turn}"]}, cfg("sync"))
        saver.prune(["sync"])
        namespaces = {t.config["configurable"]["checkpoint_ns"] for t in saver.list(None)}
        assert namespaces == {"", "keep"}
        assert len(list(graph.get_state_history(cfg("sync")))) == 1
        with pytest.raises(PruneRefusedError):
            delta = delta_graph().compile(checkpointer=saver)
            delta.invoke({"items": ["x"]}, cfg("sync-delta"))
            saver.prune([str(uuid.uuid4()), "sync-delta"])
