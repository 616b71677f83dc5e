"""The query API through RunManager, and retention with real checkpoints on SQLite and
PostgreSQL, including how long a prune holds SQLite's write lock."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from langgraph_runstore import MemoryRunStore, RunManager, RunStatus, SQLRunStore
from langgraph_runstore.query import RunPage
from langgraph_runstore.store.sql import Statement
from tests.graphs import listed_model, reply, two_model_graph

pytestmark = pytest.mark.asyncio

OLD = "2025-01-01T00:00:00+00:00"


async def backdate(store: SQLRunStore, run_id: str, created_at: str) -> None:
    """Move a finished run into the past (put replaces every field it is given)."""
    row = await store.get(run_id)
    assert row is not None
    row.pop("seq")
    row["created_at"] = created_at
    await store.put(**row)


async def checkpoint_runs(store: SQLRunStore) -> dict[str, int]:
    """Checkpoints per run_id, read straight from the table."""
    counts: dict[str, int] = {}
    statement = Statement.of("SELECT run_id, COUNT(*) AS n FROM rs_checkpoints GROUP BY run_id")
    rows = await store.driver.fetch(statement, {})
    for row in rows:
        counts[row["run_id"]] = int(row["n"])
    return counts


async def test_manager_pages_return_live_records_and_work_without_a_store() -> None:
    for manager in (RunManager(), RunManager(store=MemoryRunStore())):
        first = await manager.create("t1", user_id="u1")
        second = await manager.create("t1", user_id="u2")
        third = await manager.create("t2", user_id="u1")
        await manager.set_status(first.run_id, "running")
        await manager.set_status(first.run_id, "success")
        page = await manager.list_runs(limit=2)
        assert isinstance(page, RunPage)
        assert [r.run_id for r in page] == [
            r.run_id
            for r in sorted((first, second, third), key=lambda r: r.created_at, reverse=True)
        ][:2]
        assert page.next_cursor is not None
        rest = await manager.list_runs(limit=2, cursor=page.next_cursor)
        assert len(page) + len(rest) == 3 and rest.next_cursor is None
        # the records this process holds come back as themselves, not copies
        assert next(r for r in (*page, *rest) if r.run_id == first.run_id) is first
        assert [r.run_id for r in await manager.list_runs(status="success")] == [first.run_id]
        assert {r.run_id for r in await manager.list_runs(user_id="u1")} == {
            first.run_id,
            third.run_id,
        }
        threads = {row.key: row for row in await manager.aggregate_usage(by="thread")}
        assert threads["t1"].by_status == {"pending": 1, "success": 1}
        assert (await manager.top_runs(by="tokens")) == []
        assert (await manager.prune_runs(older_than="1s", dry_run=True)).runs == 0
        await asyncio.sleep(1.05)
        pruned = await manager.prune_runs(older_than="1s")
        assert pruned.runs == 1
        assert await manager.get(first.run_id) is None
        assert {r.run_id for r in await manager.list_runs()} == {second.run_id, third.run_id}
        assert await manager.run_checkpoints(first.run_id) == []


async def test_prune_deletes_the_checkpoints_of_pruned_runs_only(db_url: str) -> None:
    async with SQLRunStore.from_url(db_url) as store:
        manager = RunManager(store=store)
        graph = two_model_graph(
            listed_model(reply("a", "model-a"), reply("b", "model-a"), reply("c", "model-a")),
            listed_model(reply("x", "model-b"), reply("y", "model-b"), reply("z", "model-b")),
        ).compile(checkpointer=store.checkpointer)
        old = await manager.wait(graph, {"messages": [("user", "1")]}, thread_id="old")
        kept_old = await manager.wait(graph, {"messages": [("user", "2")]}, thread_id="kept")
        new = await manager.wait(graph, {"messages": [("user", "3")]}, thread_id="new")
        assert old.status == RunStatus.success
        cps = await store.run_checkpoints(old.run_id)
        assert cps and {cp["thread_id"] for cp in cps} == {"old"}
        assert [cp["step"] for cp in cps] == sorted(cp["step"] for cp in cps)
        assert {cp["source"] for cp in cps} >= {"input", "loop"}
        before = await checkpoint_runs(store)
        await backdate(store, old.run_id, OLD)
        await backdate(store, kept_old.run_id, OLD)
        await store.put("pending-old", thread_id="p", status="pending", created_at=OLD)

        # --keep-checkpoints: the run records go, the checkpoints stay
        kept = await store.prune_runs(older_than="30d", include_checkpoints=False, max_batch=1)
        assert kept.runs == 2 and kept.batches == 2
        assert await checkpoint_runs(store) == before
        assert await store.get(old.run_id) is None

        # the usual prune: the run and every checkpoint it wrote
        await store.put(**{**old.to_row(), "created_at": OLD})
        result = await store.prune_runs(older_than="30d")
        assert result.runs == 1
        after = await checkpoint_runs(store)
        assert old.run_id not in after
        assert after[new.run_id] == before[new.run_id]
        assert after[kept_old.run_id] == before[kept_old.run_id]
        assert await store.get("pending-old") is not None
        # the newer thread still reads back through the checkpointer
        state = await graph.aget_state({"configurable": {"thread_id": "new"}})
        assert state.values["messages"][-1].content == "noted"
        await manager.aclose()


def _fill_sqlite(path: Path, runs: int, per_thread: int) -> None:
    """Finished runs with two checkpoints each, written straight to the tables (fast)."""
    conn = sqlite3.connect(path)
    created = "2025-01-01T00:00:00.000000+00:00"
    conn.executemany(
        "INSERT INTO runs (run_id, thread_id, status, created_at, updated_at) "
        "VALUES (?, ?, 'success', ?, ?)",
        ((f"r{i}", f"t{i // per_thread}", created, created) for i in range(runs)),
    )
    conn.executemany(
        "INSERT INTO rs_checkpoints (thread_id, checkpoint_ns, checkpoint_id, run_id, type, "
        "checkpoint, channel_versions, metadata) VALUES (?, '', ?, ?, 'msgpack', x'00', ?, ?)",
        (
            (
                f"t{i // per_thread}",
                f"{i:08d}-{k}",
                f"r{i}",
                json.dumps({"messages": f"{i}.{k}"}),
                json.dumps({"step": k, "source": "loop", "run_id": f"r{i}"}),
            )
            for i in range(runs)
            for k in range(2)
        ),
    )
    conn.commit()
    conn.close()


async def test_sqlite_prune_holds_the_write_lock_briefly(tmp_path: Path) -> None:
    path = tmp_path / "big.db"
    url = f"sqlite+aiosqlite:///{path}"
    runs = 20_000
    async with SQLRunStore.from_url(url):
        pass
    _fill_sqlite(path, runs, per_thread=10)

    # another process's writer: each insert waits for the lock; record the longest wait
    waits: list[float] = []
    stop = threading.Event()

    def writer() -> None:
        conn = sqlite3.connect(path, timeout=10, isolation_level=None)
        i = 0
        while not stop.is_set():
            started = time.perf_counter()
            conn.execute(
                "INSERT INTO runs (run_id, thread_id, status, created_at, updated_at) "
                "VALUES (?, 'live', 'pending', '2030-01-01', '2030-01-01')",
                (f"w{i}",),
            )
            waits.append(time.perf_counter() - started)
            i += 1
            time.sleep(0.002)
        conn.close()

    thread = threading.Thread(target=writer)
    async with SQLRunStore.from_url(url) as store:
        thread.start()
        try:
            result = await store.prune_runs(older_than="30d")
        finally:
            stop.set()
            await asyncio.to_thread(thread.join)
        assert result.runs == runs
        assert result.batches > 10
        # each write aims at 20 ms; the measure also counts SQLite's WAL auto-checkpoint,
        # which runs after the commit (outside the write lock) and can add I/O time
        assert result.longest_write_seconds < 0.25, result
        assert await checkpoint_runs(store) == {}
    # what the lock costs others: a writer never waited more than 100 ms for it
    assert len(waits) > result.batches
    assert max(waits) < 0.1, f"longest wait {max(waits) * 1000:.0f} ms during {result}"
