"""Tracking synchronous graphs (``graph.invoke``/``graph.stream``) from plain code."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage

from langgraph_runstore import RunManager, RunStatus, SQLRunStore
from tests.graphs import listed_model, reply, single_node_graph, two_model_graph


def test_invoke_records_a_sync_run_with_exact_numbers(db_url: str) -> None:
    with RunManager.sync_from_url(db_url) as manager:
        _invoke_and_check(manager)


def _invoke_and_check(manager: RunManager) -> None:
    assert isinstance(manager.store, SQLRunStore)
    saver = manager.store.checkpointer
    graph = two_model_graph(
        listed_model(reply("a", "m1", input_tokens=3, output_tokens=1)),
        listed_model(reply("b", "m2", input_tokens=5, output_tokens=2)),
        sync=True,
    ).compile(checkpointer=saver)

    run = manager.invoke(graph, {"messages": [("user", "hi")]}, thread_id="t1")

    assert run.status is RunStatus.success
    assert run.total_tokens == 11 and run.llm_call_count == 2
    assert run.token_usage_by_model["m2"]["total_tokens"] == 7
    assert run.output["messages"][-1].content == "noted"
    row = manager.run_sync(lambda: manager.store.get(run.run_id))  # type: ignore[union-attr]
    assert row is not None and row["status"] == "success" and row["total_tokens"] == 11
    assert graph.get_state({"configurable": {"thread_id": "t1"}}).metadata["run_id"] == run.run_id


def test_track_sync_around_stream_and_errors(tmp_path: Path) -> None:
    with RunManager.sync_from_url(f"sqlite:///{tmp_path / 'sync.db'}") as manager:
        _track_and_check(manager)


def _track_and_check(manager: RunManager) -> None:
    assert isinstance(manager.store, SQLRunStore)
    saver = manager.store.checkpointer
    graph = single_node_graph(
        lambda s: {"messages": [listed_model(reply("streamed", "m")).invoke(s["messages"])]}
    ).compile(checkpointer=saver)
    with manager.track_sync(thread_id="t1") as run:
        chunks = list(
            graph.stream({"messages": [("user", "go")]}, run.config, stream_mode="updates")
        )
    assert chunks and run.status is RunStatus.success and run.total_tokens == 15

    def broken(state: Any) -> dict[str, Any]:
        raise RuntimeError("no disk")

    failing = single_node_graph(broken).compile(checkpointer=saver)
    failed = manager.invoke(failing, {"messages": [("user", "go")]}, thread_id="t2")
    assert failed.status is RunStatus.error and failed.error == "RuntimeError: no disk"


def test_sync_methods_refuse_to_block_a_running_loop() -> None:
    manager = RunManager()

    async def inside() -> None:
        graph = single_node_graph(lambda s: {"messages": [AIMessage(content="x")]}).compile()
        with pytest.raises(RuntimeError, match="would block"):
            manager.invoke(graph, {"messages": []}, thread_id="t1")

    asyncio.run(inside())
