"""The Agent Server recipe's pieces without the server: the checkpointer that langgraph.json
names, the store it makes current, and ``recorded()`` graphs invoked as the server invokes
them (its ids in ``configurable``, its user in ``metadata``)."""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest
from langgraph.graph import StateGraph

from langgraph_runstore import (
    DatabaseConfigError,
    InvalidInputError,
    RunStatus,
    SQLAlchemySaver,
    SQLRunStore,
    agent_server,
)
from langgraph_runstore.db.engine import create_engine
from tests.graphs import State, approval_graph, listed_model, reply, two_model_graph

pytestmark = pytest.mark.anyio


def agent() -> Any:
    """A graph module's ``recorded(builder.compile())``, made before any store is open."""
    first = listed_model(reply("one", model="model-a", input_tokens=10, output_tokens=5))
    second = listed_model(reply("two", model="model-b", input_tokens=3, output_tokens=2))
    return agent_server.recorded(two_model_graph(first, second).compile())


def server_config(run_id: str, thread_id: str, **metadata: Any) -> dict[str, Any]:
    """A run's config as the Agent Server passes it: ids in configurable, user in metadata."""
    return {
        "run_id": run_id,
        "configurable": {"run_id": run_id, "thread_id": thread_id, "assistant_id": "asst-1"},
        "metadata": metadata,
    }


async def test_checkpointer_opens_the_store_at_the_env_url_and_makes_it_current(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LANGGRAPH_RUNSTORE_URL", db_url)
    async with agent_server.checkpointer() as saver:
        assert isinstance(saver, SQLAlchemySaver)
        store = agent_server.current_store()
        assert store.checkpointer is saver
        assert str(store.engine.url.render_as_string(hide_password=False)) == db_url
    key = r"langgraph_runstore\.agent_server\.checkpointer"
    with pytest.raises(DatabaseConfigError, match=key):
        agent_server.current_store()


async def test_a_plain_path_in_the_env_var_names_a_sqlite_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LANGGRAPH_RUNSTORE_URL", "runs.db")
    assert agent_server.store_url() == f"sqlite+aiosqlite:///{tmp_path / 'runs.db'}"
    monkeypatch.delenv("LANGGRAPH_RUNSTORE_URL")
    # unset: ./runstore.db, the file the langgraph-runstore command reads by default
    assert agent_server.store_url() == "sqlite+aiosqlite:///runstore.db"
    async with agent_server.checkpointer():
        pass
    assert (tmp_path / "runstore.db").exists()


async def test_the_oldest_open_store_stays_current(tmp_path: Path) -> None:
    async with agent_server.open_store(f"sqlite+aiosqlite:///{tmp_path / 'a.db'}") as first:
        async with agent_server.open_store(f"sqlite+aiosqlite:///{tmp_path / 'b.db'}"):
            assert agent_server.current_store() is first
        assert agent_server.current_store() is first


async def test_a_recorded_graph_records_each_server_run_into_the_open_store(db_url: str) -> None:
    graph = agent()  # imported before the server opens its checkpointer
    async with agent_server.open_store(db_url) as store:
        bound = graph.copy({"checkpointer": store.checkpointer})
        first, second = str(uuid.uuid4()), str(uuid.uuid4())
        await bound.ainvoke(
            {"messages": [("user", "hi")]}, server_config(first, "t-1", user_id="alice")
        )
        await bound.ainvoke({"messages": [("user", "again")]}, server_config(second, "t-1"))

        one, two = await store.get(first), await store.get(second)
        assert one is not None and two is not None
        assert (one["thread_id"], one["assistant_id"], one["user_id"]) == ("t-1", "asst-1", "alice")
        assert one["status"] == RunStatus.success.value
        assert (one["total_tokens"], one["llm_call_count"]) == (20, 2)
        assert set(one["token_usage_by_model"]) == {"model-a", "model-b"}
        assert two["user_id"] is None and two["status"] == RunStatus.success.value
        # the checkpoints of both runs went to the same database
        config = {"configurable": {"thread_id": "t-1"}}
        found = {t.metadata.get("run_id") async for t in store.checkpointer.alist(config)}
        assert {first, second} <= found


async def test_a_recorded_interrupt_is_a_success_with_stop_reason(sqlite_url: str) -> None:
    model = listed_model(reply("draft"))
    graph = agent_server.recorded(approval_graph(model).compile())
    async with agent_server.open_store(sqlite_url) as store:
        bound = graph.copy({"checkpointer": store.checkpointer})
        run_id = str(uuid.uuid4())
        await bound.ainvoke({"messages": [("user", "go")]}, server_config(run_id, "t-2"))
        row = await store.get(run_id)
    assert row is not None
    assert (row["status"], row["stop_reason"]) == ("success", "interrupt")


async def test_a_recorded_graph_runs_unrecorded_and_says_why_when_no_store_is_open(
    caplog: pytest.LogCaptureFixture,
) -> None:
    graph = agent()
    with caplog.at_level(logging.WARNING):
        out = await graph.ainvoke({"messages": [("user", "hi")]})
    assert out["messages"][-1].content == "noted"
    assert "no run store is open in this process" in caplog.text


def test_recorded_refuses_a_graph_that_is_not_compiled() -> None:
    builder = StateGraph(State)
    expected = r"needs a compiled graph \(builder\.compile\(\)\), got StateGraph"
    with pytest.raises(InvalidInputError, match=expected):
        agent_server.recorded(builder)  # type: ignore[type-var]


# -- sqlite_direct=False: no sqlite3 call on the event loop's thread ---------------------------

_connects: list[tuple[int, str]] | None = None


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if event == "sqlite3.connect" and _connects is not None:
        _connects.append((threading.get_ident(), str(args[0])))


sys.addaudithook(_audit)  # audit hooks stay for the process: it only records while asked to


async def loop_thread_connects(store: SQLRunStore) -> list[str]:
    """The sqlite3 connections that a put and a get open on the event loop's thread."""
    global _connects
    _connects = []
    try:
        run_id = str(uuid.uuid4())
        await store.put(run_id, thread_id="t", status="pending")
        assert (await store.get(run_id)) is not None
        seen = _connects
    finally:
        _connects = None
    loop_thread = threading.get_ident()
    return [database for thread, database in seen if thread == loop_thread]


async def test_sqlite_direct_false_keeps_every_statement_off_the_loop_thread(
    tmp_path: Path,
) -> None:
    path = tmp_path / "runs.db"
    url = f"sqlite+aiosqlite:///{path}"
    # the default opens a private connection right on the loop's thread
    async with SQLRunStore.from_url(url) as store:
        assert await loop_thread_connects(store) == [str(path)]
    async with SQLRunStore.from_url(url, sqlite_direct=False) as store:
        assert await loop_thread_connects(store) == []
    # the recipe's store is opened so (langgraph dev raises on a blocking call in the loop)
    async with agent_server.open_store(url) as store:
        assert await loop_thread_connects(store) == []


def test_sqlite_direct_must_be_a_bool(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'runs.db'}")
    with pytest.raises(InvalidInputError, match="sqlite_direct must be True or False, got 'no'"):
        SQLRunStore(engine, sqlite_direct="no")  # type: ignore[arg-type]
    asyncio.run(engine.dispose())
    assert not (tmp_path / "runs.db").exists()
