"""The run event journal as runs write it: a tool-calling agent with a sub-graph, run every
way in (track, wait, stream, RunRecorder), on SQLite and PostgreSQL; the levels; the
statements it costs; bounded payloads; failures that must not fail the run."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from langgraph_runstore import (
    JournalConfig,
    MemoryRunStore,
    RunEvent,
    RunManager,
    RunRecord,
    SQLRunStore,
    SyncRunManager,
)
from langgraph_runstore.errors import InvalidInputError
from langgraph_runstore.schemas import TOKEN_FIELDS
from tests.graphs import approval_graph, blocked_graph, listed_model, reply, single_node_graph
from tests.journal_graphs import AGENT_EVENTS, agent_graph, label

pytestmark = pytest.mark.asyncio

INPUT = {"messages": [("user", "what is 1 + 2?")]}


async def all_events(manager: RunManager, run_id: str) -> list[RunEvent]:
    return [event async for event in manager.events(run_id, follow=False)]


def check_agent_journal(events: list[RunEvent], run: RunRecord) -> None:
    """In order, numbered 1..n, the right nodes, tools and models, and the LLM events'
    tokens adding up to the run's, per field and per model."""
    assert [event.seq for event in events] == list(range(1, len(events) + 1))
    assert [label(event) for event in events] == AGENT_EVENTS
    assert all(event.run_id == run.run_id for event in events)
    assert [event.ts for event in events] == sorted(event.ts for event in events)
    llm = [event for event in events if event.kind == "llm_ended"]
    for name in TOKEN_FIELDS:
        assert sum(event.data[name] for event in llm) == getattr(run, name), name
    by_model: dict[str, int] = {}
    for event in llm:
        by_model[event.data["model"]] = (
            by_model.get(event.data["model"], 0) + event.data["total_tokens"]
        )
    assert by_model == {m: u["total_tokens"] for m, u in run.token_usage_by_model.items()}
    assert llm[0].data["tool_calls"] == ["add"] and llm[1].data["text"] == "the sum is 3"
    assert all(event.data["node"] == "call" for event in llm)
    tool = next(event for event in events if event.kind == "tool_ended")
    assert tool.data["output"] == "3" and tool.data["node"] == "tools"
    sub_nodes = [e for e in events if e.kind == "node_started" and e.data["node"] == "call"]
    assert all(e.data["ns"].startswith("research:") and "|call:" in e.data["ns"] for e in sub_nodes)
    ended = events[-1]
    assert ended.data["status"] == "success" and ended.data["stop_reason"] is None
    assert ended.data["total_tokens"] == run.total_tokens == 42
    assert ended.data["llm_call_count"] == run.llm_call_count == 2
    assert ended.ts == run.ended_at
    assert events[0].ts == run.created_at
    assert all(event.data["duration_ms"] >= 0 for event in events if event.kind.endswith("_ended"))


@pytest_asyncio.fixture
async def manager(db_url: str) -> AsyncIterator[RunManager]:
    async with SQLRunStore.from_url(db_url) as store, RunManager(store) as manager:
        yield manager


@pytest.mark.parametrize("way", ["track", "wait", "stream", "recorder"])
async def test_an_agent_with_a_sub_graph_is_journaled_in_order(
    manager: RunManager, way: str
) -> None:
    store = manager.store
    assert isinstance(store, SQLRunStore)
    graph = agent_graph(store.checkpointer)
    if way == "track":
        async with manager.track(thread_id="t") as run:
            async for _ in graph.astream(INPUT, run.config, stream_mode="updates", subgraphs=True):
                pass
        run_id = run.run_id
    elif way == "wait":
        run_id = (await manager.wait(graph, INPUT, thread_id="t")).run_id
    elif way == "stream":
        async for mode, _ in manager.stream(graph, INPUT, thread_id="t", stream_mode=["updates"]):
            assert mode == "updates"
        run_id = (await manager.list_by_thread("t"))[0].run_id
    else:
        recorded = graph.with_config(callbacks=[manager.recorder()])
        async for _ in recorded.astream(INPUT, {"configurable": {"thread_id": "t"}}):
            pass
        run_id = (await manager.list_by_thread("t"))[0].run_id
    run = await manager.join(run_id)
    check_agent_journal(await all_events(manager, run_id), run)


async def test_a_recorder_on_a_store_journals_its_runs(sqlite_url: str) -> None:
    from langgraph_runstore import RunRecorder

    async with SQLRunStore.from_url(sqlite_url) as store:
        graph = agent_graph(store.checkpointer).with_config(callbacks=[RunRecorder(store)])
        await graph.ainvoke(INPUT, {"configurable": {"thread_id": "t"}})
        async with RunManager(store) as manager:
            run = (await manager.list_by_thread("t"))[0]
            check_agent_journal(await all_events(manager, run.run_id), run)


def test_a_sync_invocation_is_journaled_and_read_through_the_sync_twin(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'sync.db'}"
    with SyncRunManager.from_url(url) as manager:
        store = manager.store
        assert isinstance(store, SQLRunStore)
        model = listed_model(reply("hello", "sync-model", input_tokens=3, output_tokens=2))
        graph = single_node_graph(
            lambda state: {"messages": [model.invoke(state["messages"])]}
        ).compile(checkpointer=store.checkpointer)
        run = manager.invoke(graph, INPUT, thread_id="t")
        events = list(manager.events(run.run_id))
        kinds = [event.kind for event in events]
        assert kinds == [
            "run_admitted",
            "run_started",
            "node_started",
            "llm_ended",
            "node_ended",
            "run_ended",
        ]
        assert events[3].data["model"] == "sync-model" and events[3].data["total_tokens"] == 5
        resumed = list(manager.join_stream(run.run_id, last_event_id=events[2].id))
        assert resumed == events[3:]


async def test_levels_decide_what_is_kept(sqlite_url: str) -> None:
    async with SQLRunStore.from_url(sqlite_url) as store:
        kinds: dict[str, list[str]] = {}
        for level in ("off", "runs", "nodes", "all"):
            async with RunManager(store, journal=level) as manager:
                run = await manager.wait(agent_graph(store.checkpointer), INPUT, thread_id=level)
                kinds[level] = [event.kind for event in await all_events(manager, run.run_id)]
    assert kinds["off"] == []
    assert kinds["runs"] == ["run_admitted", "run_started", "run_ended"]
    assert kinds["nodes"] == [kind for kind, _ in AGENT_EVENTS]
    assert kinds["all"].count("llm_started") == 2 and kinds["all"].count("tool_started") == 1
    assert [k for k in kinds["all"] if k not in ("llm_started", "tool_started")] == kinds["nodes"]
    with pytest.raises(InvalidInputError, match="unknown journal level 'everything'"):
        RunManager(journal="everything")
    with pytest.raises(InvalidInputError, match="max_text"):
        JournalConfig(max_text=-1)
    with pytest.raises(InvalidInputError, match="flush_interval"):
        JournalConfig(flush_interval=0)


class CountingDriver:
    """Counts the statements a store's driver sends (every one is its own commit)."""

    def __init__(self, store: SQLRunStore) -> None:
        self.statements: list[str] = []
        driver = store.driver
        execute, fetch = driver.execute, driver.fetch

        async def counted_execute(statement: Any, params: Any) -> Any:
            self.statements.append(statement.sqlite)
            return await execute(statement, params)

        async def counted_fetch(statement: Any, params: Any) -> Any:
            self.statements.append(statement.sqlite)
            return await fetch(statement, params)

        driver.execute = counted_execute  # type: ignore[method-assign]
        driver.fetch = counted_fetch  # type: ignore[method-assign]


@pytest.mark.parametrize("level", ["nodes", "all"])
async def test_a_short_run_writes_its_whole_journal_in_one_statement(
    db_url: str, level: str
) -> None:
    async with SQLRunStore.from_url(db_url) as store, RunManager(store, journal=level) as manager:
        graph = agent_graph()  # no checkpointer: only the run store's statements
        counting = CountingDriver(store)
        async with manager.track(thread_id="t") as run:
            await graph.ainvoke(INPUT, run.config)
        written = list(counting.statements)
        events = await all_events(manager, run.run_id)
    journal = [sql for sql in written if "runstore_events" in sql]
    assert len(journal) == 1, written
    assert len(written) == 3, written  # the run's insert, its completion, its journal
    assert len(events) == len(AGENT_EVENTS) + (3 if level == "all" else 0)


async def test_a_long_run_writes_events_while_it_runs(sqlite_url: str) -> None:
    journal = JournalConfig(flush_interval=0.05)
    async with (
        SQLRunStore.from_url(sqlite_url) as store,
        RunManager(store, journal=journal) as manager,
    ):
        started, release = asyncio.Event(), asyncio.Event()
        run = await manager.start(blocked_graph(started, release), INPUT, thread_id="t")
        await started.wait()
        seen: list[str] = []
        async for event in manager.events(run.run_id):
            seen.append(event.kind)
            if event.kind == "node_started" and event.data["node"] == "hold":
                # written by the trailing timer while the run is still running
                assert (await store.get_status(run.run_id) or {})["status"] == "running"
                release.set()
        assert seen[-1] == "run_ended" and seen.count("node_started") == 2


async def test_payloads_are_bounded(sqlite_url: str) -> None:
    long_text = "x" * 5000
    async with (
        SQLRunStore.from_url(sqlite_url) as store,
        RunManager(store, journal=JournalConfig(max_text=50)) as manager,
    ):
        model = listed_model(reply(long_text, "m" * 300))

        async def node(state: Any) -> dict[str, Any]:
            await model.ainvoke(state["messages"])
            raise ValueError("boom " + long_text)

        graph = single_node_graph(node).compile()
        run = await manager.wait(graph, {"messages": [("user", long_text)]}, thread_id="t")
        events = await all_events(manager, run.run_id)
    llm = next(event for event in events if event.kind == "llm_ended")
    assert len(llm.data["text"]) == 50 and llm.data["text"].endswith("…")
    assert len(llm.data["model"]) == 50
    node_ended = next(event for event in events if event.kind == "node_ended")
    assert (
        node_ended.data["error"].startswith("ValueError: boom x")
        and len(node_ended.data["error"]) == 50
    )
    error = next(event for event in events if event.kind == "error")
    assert len(error.data["error"]) == 50
    assert events[-1].data["status"] == "error"
    # nothing of the input or the state is copied
    assert all(long_text[:60] not in str(event.data) for event in events)


async def test_interrupt_error_cancel_and_rollback_end_the_journal(sqlite_url: str) -> None:
    async with SQLRunStore.from_url(sqlite_url) as store, RunManager(store) as manager:
        model = listed_model(reply("draft", "m"))
        paused = await manager.wait(
            approval_graph(model).compile(checkpointer=store.checkpointer), INPUT, thread_id="a"
        )
        events = await all_events(manager, paused.run_id)
        approve = next(e for e in events if e.kind == "node_ended" and e.data["node"] == "approve")
        assert approve.data.get("interrupted") is True and "error" not in approve.data
        interrupt = next(e for e in events if e.kind == "interrupt")
        assert interrupt.data["interrupts"][0]["value"] == "approve the draft?"
        assert [events[-1].data["status"], events[-1].data["stop_reason"]] == [
            "success",
            "interrupt",
        ]
        for action in ("interrupt", "rollback"):
            started, release = asyncio.Event(), asyncio.Event()
            graph = blocked_graph(started, release, checkpointer=store.checkpointer)
            run = await manager.start(graph, INPUT, thread_id=action)
            await started.wait()
            assert await manager.cancel(run.run_id, action=action)
            run = await manager.join(run.run_id)
            for _ in range(100):  # a rollback's journal ends in a task of its own
                events = await all_events(manager, run.run_id)
                if events and events[-1].kind == "run_ended":
                    break
                await asyncio.sleep(0.01)
            ended = events[-1]
            assert ended.kind == "run_ended", [e.kind for e in events]
            assert (ended.data["status"], ended.data["stop_reason"]) == (
                "interrupted",
                run.stop_reason,
            )
            assert run.stop_reason == ("cancelled" if action == "interrupt" else "rolled_back")
            assert [e.kind for e in events].count("run_ended") == 1


async def test_a_failing_journal_write_never_fails_the_run(
    db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with SQLRunStore.from_url(db_url) as store, RunManager(store) as manager:
        async with store.engine.begin() as conn:  # a real fault: the table is gone
            await conn.exec_driver_sql("DROP TABLE runstore_events")
        with caplog.at_level(logging.WARNING, logger="langgraph_runstore.journal_writer"):
            run = await manager.wait(agent_graph(store.checkpointer), INPUT, thread_id="t")
        assert run.status.value == "success" and run.total_tokens == 42
        row = await store.get(run.run_id)
        assert row is not None and row["status"] == "success" and row["total_tokens"] == 42
        assert any(
            f"journal event(s) of run {run.run_id}" in r.getMessage() for r in caplog.records
        )


async def test_a_retried_attempt_continues_the_runs_journal() -> None:
    from langgraph_runstore.journal_writer import RunJournal

    store = MemoryRunStore()
    await store.put("r", thread_id="t")
    record = RunRecord(run_id="r", thread_id="t", attempt=1)
    first = RunJournal(store, record, JournalConfig())
    first.run_started(record)
    assert await first.write()
    again = RunRecord(run_id="r", thread_id="t", attempt=2)
    second = RunJournal(store, again, JournalConfig())
    second.run_started(again)
    assert await second.write()
    rows = await store.read_events("r")
    assert [(row["seq"], row["kind"]) for row in rows] == [
        (1, "run_admitted"),
        (2, "run_started"),
        (3, "run_admitted"),
        (4, "run_started"),
    ]
    assert rows[3]["data"] == {"attempt": 2}


async def test_without_a_journal_store_events_says_why() -> None:
    from langgraph_runstore.errors import DatabaseConfigError

    async with RunManager() as manager:
        record = await manager.create("t")
        with pytest.raises(DatabaseConfigError, match="run events live in the store"):
            await anext(manager.events(record.run_id))


async def test_the_journal_table_goes_with_the_runs_on_a_fresh_file(tmp_path: Path) -> None:
    async with SQLRunStore.from_url(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}"):
        pass
    conn = sqlite3.connect(tmp_path / "x.db")
    try:
        names = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    finally:
        conn.close()
    assert {"runstore_events", "runstore_events_go_with_run"} <= names


class HeldFirstWrite(MemoryRunStore):
    """A store whose first journal write waits at a gate the test opens (a slow write)."""

    def __init__(self) -> None:
        super().__init__()
        self.entered, self.release = asyncio.Event(), asyncio.Event()
        self.batches: list[list[int]] = []

    async def append_events(self, run_id: str, events: Any) -> None:
        first = not self.batches
        self.batches.append([seq for seq, *_ in events])
        if first:
            self.entered.set()
            await self.release.wait()
        await super().append_events(run_id, events)


async def test_the_final_write_waits_for_a_timed_write_in_flight() -> None:
    from tests.journal_graphs import gated_graph

    store = HeldFirstWrite()
    async with RunManager(store, journal=JournalConfig(flush_interval=0.01)) as manager:
        gate = asyncio.Event()
        run = await manager.start(gated_graph(gate), INPUT, thread_id="t")
        await store.entered.wait()  # the timed write of the first events is in flight
        gate.set()  # the run goes on and ends while that write still waits
        for _ in range(200):
            if run.is_final:
                break
            await asyncio.sleep(0.005)
        assert run.is_final and len(store.batches) == 1  # the final batch waits its turn
        store.release.set()
        await manager.join(run.run_id)
        rows = await store.read_events(run.run_id)
    seqs = [seq for batch in store.batches for seq in batch]
    assert seqs == sorted(seqs) == list(range(1, len(seqs) + 1))
    assert [row["seq"] for row in rows] == seqs and rows[-1]["kind"] == "run_ended"
