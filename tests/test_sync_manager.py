"""SyncRunManager, the sync twin: its whole API from plain code, on SQLite and PostgreSQL,
and from a thread that already runs an event loop (a notebook cell)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from langgraph.types import interrupt

from langgraph_runstore import RunStatus, SyncRunManager, ThreadStatus
from tests.graphs import State, listed_model, reply, single_node_graph, two_model_graph


def graph_on(manager: SyncRunManager, *replies: Any) -> Any:
    store = manager.store
    assert store is not None
    model = listed_model(*replies)
    return two_model_graph(model, model, sync=True).compile(
        checkpointer=store.checkpointer  # type: ignore[attr-defined]
    )


def test_the_whole_api_from_sync_code(db_url: str) -> None:
    with SyncRunManager.from_url(db_url) as manager:
        graph = graph_on(manager, reply("one"), reply("two", "model-b"))
        run = manager.invoke(graph, {"messages": [("user", "hi")]}, thread_id="t1")
        assert run.status is RunStatus.success and run.total_tokens == 30
        stored = manager.get(run.run_id)
        assert stored is not None and stored.total_tokens == 30
        assert [r.run_id for r in manager.list_by_thread("t1")] == [run.run_id]
        assert manager.list_runs(thread_id="t1").runs[0].run_id == run.run_id
        assert manager.thread_status("t1") is ThreadStatus.idle
        assert not manager.has_inflight("t1")
        usage = {row.key: row.tokens.total_tokens for row in manager.aggregate_usage(by="model")}
        assert usage == {"model-a": 15, "model-b": 15}
        assert [r.run_id for r in manager.top_runs(by="tokens")] == [run.run_id]
        assert manager.run_checkpoints(run.run_id)

        pending = manager.create("t2")
        assert manager.cancel(pending.run_id) is True
        cancelled = manager.get(pending.run_id)
        assert cancelled is not None and cancelled.status is RunStatus.interrupted
        assert manager.cancel(pending.run_id) is False

        streamed = graph_on(manager, reply("s1"), reply("s2"))
        chunks = list(
            manager.stream(streamed, {"messages": "go"}, thread_id="t3", stream_mode="updates")
        )
        assert [next(iter(c)) for c in chunks] == ["ask", "check", "note"]
        [last] = manager.list_by_thread("t3")
        assert last.status is RunStatus.success and last.total_tokens == 30

        with manager.track(thread_id="t4") as tracked:
            graph.invoke({"messages": "again"}, tracked.config)
        assert tracked.status is RunStatus.success


def test_a_paused_run_and_its_interrupts(db_url: str) -> None:
    with SyncRunManager.from_url(db_url) as manager:
        store = manager.store
        assert store is not None

        def approve(state: State) -> dict[str, Any]:
            return {"messages": [("user", f"approved: {interrupt('approve the draft?')}")]}

        graph = single_node_graph(approve).compile(
            checkpointer=store.checkpointer  # type: ignore[attr-defined]
        )
        run = manager.invoke(graph, {"messages": "write"}, thread_id="t-hitl")
        assert run.paused
        assert manager.thread_status("t-hitl") is ThreadStatus.interrupted
        [pending] = manager.thread_interrupts("t-hitl")
        assert pending["value"] == "approve the draft?"


def test_it_works_on_a_thread_that_runs_an_event_loop(tmp_path: Any) -> None:
    """A notebook cell: the calling thread runs a loop, which the calls must not need."""

    async def cell() -> None:
        with SyncRunManager.from_url(f"sqlite:///{tmp_path / 'nb.db'}") as manager:
            graph = graph_on(manager, reply("one"), reply("two"))
            run = manager.invoke(graph, {"messages": "hi"}, thread_id="nb")
            assert run.status is RunStatus.success
            stored = manager.get(run.run_id)
            assert stored is not None and stored.total_tokens == 30
            # track() and stream() in the cell: the graph's calls run on this very thread
            with manager.track(thread_id="nb2") as tracked:
                graph.invoke({"messages": "again"}, tracked.config)
            assert tracked.status is RunStatus.success and tracked.llm_call_count == 2
            chunks = list(manager.stream(graph, {"messages": "more"}, thread_id="nb3"))
            assert chunks
            [streamed] = manager.list_by_thread("nb3")
            assert streamed.status is RunStatus.success and streamed.total_tokens == 30

    asyncio.run(cell())


def test_misuse_names_the_right_class() -> None:
    manager = SyncRunManager()

    async def awaiting() -> None:
        await manager  # type: ignore[misc]

    with pytest.raises(TypeError, match="use RunManager"):
        asyncio.run(awaiting())
    with pytest.raises(TypeError, match="a manager, or a store and options"):
        SyncRunManager(manager=manager.manager, retain_finished_for=1)
    manager.close()


def test_the_saver_opens_with_a_plain_with(db_url: str) -> None:
    from langgraph_runstore import SQLAlchemySaver

    model = listed_model(reply("one"), reply("two"))
    with SQLAlchemySaver.from_url(db_url) as saver:
        graph = two_model_graph(model, model, sync=True).compile(checkpointer=saver)
        config = {"configurable": {"thread_id": "plain"}}
        graph.invoke({"messages": "hi"}, config)
        assert len(graph.get_state(config).values["messages"]) == 4
    with SQLAlchemySaver.from_url(db_url) as again:  # the schema is there; state survives
        assert again.get_tuple({"configurable": {"thread_id": "plain"}}) is not None
