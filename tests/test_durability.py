"""A run's final write is never dropped: text is made storable first, a write that cannot
land now is retried in the background until it does (the record says ``durable=False``
meanwhile), reject admission writes the truth instead of refusing, ``aclose()`` flushes or
names what it could not write, and finished records are evicted even with
``retain_finished_for=0``. Faults are real: a lock holder, a full tmpfs, a stopped
PostgreSQL server, ``pg_terminate_backend``."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from langgraph.checkpoint.memory import InMemorySaver

from langgraph_runstore import (
    BackgroundRetryPolicy,
    MemoryRunStore,
    PersistenceRetryPolicy,
    RunManager,
    RunStatus,
    RunStore,
    SQLRunStore,
)
from langgraph_runstore.db import create_engine
from langgraph_runstore.lifecycle import is_transient_error
from langgraph_runstore.text import REPLACEMENT, storable_json, storable_text
from tests.backends import libpq_url, with_driver
from tests.faults import PrivateServer, fill, hold_write_lock, private_pg, small_filesystem
from tests.graphs import State, listed_model, reply, single_node_graph

pytestmark = pytest.mark.asyncio
__all__ = ["private_pg"]  # the fixture, imported for the tests below

FAST: dict[str, Any] = {
    "persistence_retry_policy": PersistenceRetryPolicy(max_attempts=2, initial_delay=0),
    "final_write_retry_policy": BackgroundRetryPolicy(initial_delay=0.02, max_delay=0.1),
}
# no background retry within a test: the test decides when the write is tried again
NEVER_IN_BACKGROUND = BackgroundRetryPolicy(initial_delay=3600, max_delay=3600)


def model_graph(text: str, checkpointer: Any) -> Any:
    model = listed_model(reply(text, input_tokens=11, output_tokens=4))

    async def answer(state: State) -> dict[str, Any]:
        return {"messages": [await model.ainvoke(state["messages"])]}

    return single_node_graph(answer).compile(checkpointer=checkpointer)


@asynccontextmanager
async def impatient_store(path: Path) -> AsyncIterator[SQLRunStore]:
    """A SQLite store that waits only 10 ms for a lock another connection holds."""
    engine = create_engine(f"sqlite+aiosqlite:///{path}", sqlite_busy_timeout_ms=10)
    store = SQLRunStore(engine)
    await store.setup()
    try:
        yield store
    finally:
        await store.aclose()
        await engine.dispose()


def checkpointer_for(store: RunStore) -> Any:
    return getattr(store, "checkpointer", None) or InMemorySaver()


async def until(condition: Callable[[], bool], *, timeout: float = 15.0) -> None:
    """Wait for ``condition`` to hold (what the background retry brings about)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, "the condition never held"
        await asyncio.sleep(0.01)


# -- text that a database cannot store --------------------------------------------------


def test_the_text_rule_replaces_nul_and_lone_surrogates_only() -> None:
    assert storable_text("plain ünïcode 🙂") == "plain ünïcode 🙂"
    assert storable_text("a\x00b\ud800c\udfff") == f"a{REPLACEMENT}b{REPLACEMENT}c{REPLACEMENT}"
    value = {"k\x00": ["x", {"y": "\ud83d"}], "n": 1}
    assert storable_json(value) == {f"k{REPLACEMENT}": ["x", {"y": REPLACEMENT}], "n": 1}
    clean = {"a": ["b", {"c": 1}]}
    assert storable_json(clean) is clean  # nothing copied when nothing changes


async def test_unstorable_text_in_the_messages_is_stored_by_the_rule(store: RunStore) -> None:
    manager = RunManager(store=store)
    graph = model_graph("answer\x00 with NUL and \ud800 a lone surrogate", checkpointer_for(store))
    run = await manager.wait(graph, {"messages": [("user", "question \udc00\x00")]}, thread_id="t1")
    assert run.status is RunStatus.success and run.durable
    row = await store.get(run.run_id)
    assert row is not None and row["status"] == "success"
    assert (
        row["last_ai_message"] == f"answer{REPLACEMENT} with NUL and {REPLACEMENT} a lone surrogate"
    )
    assert row["first_human_message"] == f"question {REPLACEMENT}{REPLACEMENT}"
    assert row["total_tokens"] == 15
    assert (run.last_ai_message, run.first_human_message) == (
        row["last_ai_message"],
        row["first_human_message"],
    )
    # the thread is free: a reject run is admitted at once
    again = await manager.wait(
        model_graph("fine", checkpointer_for(store)), {"messages": []}, thread_id="t1"
    )
    assert again.status is RunStatus.success
    await manager.aclose()


async def test_unstorable_text_in_metadata_and_errors_is_stored_by_the_rule(
    store: RunStore,
) -> None:
    manager = RunManager(store=store)
    run = await manager.create("t1", metadata={"note\x00": "x\ud800"})
    await manager.set_status(run.run_id, "running")
    await manager.set_status(run.run_id, "error", error="boom\x00\udfff")
    row = await store.get(run.run_id)
    assert row is not None
    assert row["metadata"] == {f"note{REPLACEMENT}": f"x{REPLACEMENT}"}
    assert row["error"] == f"boom{REPLACEMENT}{REPLACEMENT}" == run.error
    await manager.aclose()


# -- a final write that cannot land now ---------------------------------------------------


async def test_a_final_write_behind_a_lock_holder_lands_later_with_its_tokens(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "runs.db"
    blockers: list[sqlite3.Connection] = []
    model = listed_model(reply("done", input_tokens=11, output_tokens=4))

    async def answer_then_lock(state: State) -> dict[str, Any]:
        message = await model.ainvoke(state["messages"])
        blockers.append(hold_write_lock(path))  # held when the run's final write comes
        return {"messages": [message]}

    graph = single_node_graph(answer_then_lock).compile(checkpointer=InMemorySaver())
    async with impatient_store(path) as store:
        manager = RunManager(store=store, **FAST)
        with caplog.at_level(logging.WARNING):
            run = await manager.wait(graph, {"messages": [("user", "hi")]}, thread_id="t1")
        try:
            assert run.status is RunStatus.success and run.total_tokens == 15
            assert run.durable is False
            assert "not yet durable" in caplog.text and run.run_id in caplog.text
            row = await store.get(run.run_id)
            assert row is not None and row["status"] == "running"
        finally:
            blockers[0].execute("ROLLBACK")
            blockers[0].close()
        await until(lambda: run.durable)
        row = await store.get(run.run_id)
        assert row is not None and row["status"] == "success" and row["total_tokens"] == 15
        await manager.aclose()


async def test_reject_admission_writes_an_unsaved_end_instead_of_refusing(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    async with impatient_store(path) as store:
        manager = RunManager(
            store=store,
            persistence_retry_policy=PersistenceRetryPolicy(max_attempts=1),
            final_write_retry_policy=NEVER_IN_BACKGROUND,
        )
        first = await manager.create("t1")
        await manager.set_status(first.run_id, "running")
        blocker = hold_write_lock(path)
        await manager.set_status(first.run_id, "success")
        blocker.execute("ROLLBACK")
        blocker.close()
        assert first.durable is False  # the store still says running
        second = await manager.create_or_reject("t1")  # reject: the default strategy
        assert first.durable is True
        row = await store.get(first.run_id)
        assert row is not None and row["status"] == "success"
        assert (await store.get(second.run_id)) is not None
        await manager.aclose()


async def test_aclose_flushes_an_unsaved_end(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    async with impatient_store(path) as store:
        manager = RunManager(
            store=store,
            persistence_retry_policy=PersistenceRetryPolicy(max_attempts=1),
            final_write_retry_policy=NEVER_IN_BACKGROUND,
        )
        run = await manager.create("t1")
        blocker = hold_write_lock(path)
        await manager.set_status(run.run_id, "interrupted")
        blocker.execute("ROLLBACK")
        blocker.close()
        await manager.aclose()
        row = await store.get(run.run_id)
        assert row is not None and row["status"] == "interrupted" and run.durable


async def test_aclose_names_the_runs_it_could_not_write(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "runs.db"
    async with impatient_store(path) as store:
        manager = RunManager(
            store=store,
            persistence_retry_policy=PersistenceRetryPolicy(max_attempts=1),
            final_write_retry_policy=BackgroundRetryPolicy(initial_delay=0.01, max_delay=0.02),
            drain_timeout=0.2,
        )
        runs = [await manager.create(f"t{i}") for i in range(2)]
        blocker = hold_write_lock(path)
        try:
            for run in runs:
                await manager.set_status(run.run_id, "error", error="E")
            with caplog.at_level(logging.ERROR):
                await manager.aclose()
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert len(errors) == 1
        assert all(run.run_id in errors[0].getMessage() for run in runs)


async def test_a_full_disk_after_admission_holds_the_end_until_space_returns() -> None:
    with small_filesystem("4m") as mount:
        path = mount / "runs.db"
        async with SQLRunStore.from_url(f"sqlite+aiosqlite:///{path}") as store:
            manager = RunManager(store=store, **FAST)
            run = await manager.create("t1")
            await manager.set_status(run.run_id, "running")
            # an empty WAL, so that the next write must grow a file
            with sqlite3.connect(path) as conn:
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            filler = fill(mount)
            await manager.update_run_completion(
                run.run_id, status="success", total_tokens=42, last_ai_message="x" * 20000
            )
            assert run.durable is False
            row = await store.get(run.run_id)
            assert row is not None and row["status"] == "running"
            filler.unlink()
            await until(lambda: run.durable)
            row = await store.get(run.run_id)
            assert row is not None and row["status"] == "success" and row["total_tokens"] == 42
            await manager.aclose()


@pytest.mark.postgres
async def test_postgres_down_past_the_retry_budget_then_back(
    private_pg: PrivateServer, pg_driver: str
) -> None:
    model = listed_model(reply("done", input_tokens=11, output_tokens=4))

    async def answer_then_stop_the_server(state: State) -> dict[str, Any]:
        message = await model.ainvoke(state["messages"])
        await asyncio.to_thread(private_pg.stop)  # down when the final write comes
        return {"messages": [message]}

    graph = single_node_graph(answer_then_stop_the_server).compile(checkpointer=InMemorySaver())
    async with SQLRunStore.from_url(with_driver(private_pg.url, pg_driver)) as store:
        manager = RunManager(store=store, **FAST)
        run = await manager.wait(graph, {"messages": [("user", "hi")]}, thread_id="t1")
        assert run.status is RunStatus.success and run.durable is False
        await asyncio.to_thread(private_pg.start)
        await until(lambda: run.durable, timeout=30)
        row = await store.get(run.run_id)
        assert row is not None and row["status"] == "success" and row["total_tokens"] == 15
        again = model_graph("again", InMemorySaver())
        nxt = await manager.wait(again, {"messages": []}, thread_id="t1")
        assert nxt.status is RunStatus.success and nxt.durable
        await manager.aclose()


@pytest.mark.postgres
async def test_a_cut_connection_before_the_final_write_is_retried(pg_url: str) -> None:
    database = pg_url.rsplit("/", 1)[1]
    admin = await asyncpg.connect(libpq_url(pg_url))
    model = listed_model(reply("done", input_tokens=11, output_tokens=4))

    async def answer_then_cut(state: State) -> dict[str, Any]:
        message = await model.ainvoke(state["messages"])
        cut = await admin.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = $1 AND pid <> pg_backend_pid()",
            database,
        )
        assert cut >= 1  # the store's pooled connection: the final write meets it dead
        return {"messages": [message]}

    graph = single_node_graph(answer_then_cut).compile(checkpointer=InMemorySaver())
    async with SQLRunStore.from_url(pg_url) as store:
        manager = RunManager(store=store)
        run = await manager.wait(graph, {"messages": [("user", "hi")]}, thread_id="t1")
        assert run.status is RunStatus.success and run.durable
        row = await store.get(run.run_id)
        assert row is not None and row["status"] == "success" and row["total_tokens"] == 15
        await manager.aclose()
    await admin.close()


def test_asyncpg_internal_client_error_after_a_cut_is_transient() -> None:
    # what asyncpg raises on a connection whose protocol state a cut left behind
    exc = asyncpg.exceptions._base.InternalClientError("cannot switch to state 12")
    assert is_transient_error(exc)


# -- eviction ----------------------------------------------------------------------------


async def test_retain_finished_for_zero_evicts_once_the_task_is_done() -> None:
    manager = RunManager(store=MemoryRunStore(), retain_finished_for=0)
    graph = model_graph("done", InMemorySaver())
    run = await manager.start(graph, {"messages": []}, thread_id="t1")
    await manager.join(run.run_id)
    await until(lambda: run.run_id not in manager.lifecycle.records, timeout=2)
    assert (await manager.get(run.run_id)).status is RunStatus.success  # from the store
    await manager.aclose()
