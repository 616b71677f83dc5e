"""The journal primitives of every RunStore backend (memory, SQLite, PostgreSQL): a batch in
one write, stored once however often it is sent, read a page at a time after a seq, and
deleted with its run by ``delete`` and ``prune_runs``."""

from __future__ import annotations

import pytest

from langgraph_runstore import RunStore
from langgraph_runstore.schemas import now_iso

pytestmark = pytest.mark.asyncio


def batch(first: int, last: int, kind: str = "progress") -> list[tuple[int, str, str, dict]]:
    stamp = now_iso()
    return [(seq, stamp, kind, {"n": seq, "text": "é\u2603"}) for seq in range(first, last + 1)]


async def test_events_are_stored_once_and_read_in_pages(store: RunStore) -> None:
    await store.put("r", thread_id="t", status="running")
    await store.append_events("r", batch(1, 5))
    await store.append_events("r", batch(4, 8, kind="again"))  # 4 and 5 are stored already
    rows = await store.read_events("r")
    assert [row["seq"] for row in rows] == list(range(1, 9))
    assert [row["kind"] for row in rows] == ["progress"] * 5 + ["again"] * 3
    assert rows[0]["data"] == {"n": 1, "text": "é\u2603"}
    assert [row["seq"] for row in await store.read_events("r", after=3, limit=2)] == [4, 5]
    assert await store.read_events("r", after=8) == []
    assert await store.last_event_seq("r") == 8
    assert await store.last_event_seq("no-events") == 0


async def test_delete_run_and_manager_delete_remove_a_runs_events(store: RunStore) -> None:
    from langgraph_runstore import RunManager

    for run_id in ("a", "b"):
        await store.put(run_id, thread_id=run_id, status="success")
        await store.append_events(run_id, batch(1, 4))
    assert await store.delete_run("a")
    assert await store.read_events("a") == []
    async with RunManager(store) as manager:
        await manager.delete("b")
    assert await store.read_events("b") == []


async def test_delete_and_prune_remove_a_runs_events(store: RunStore) -> None:
    await store.put("gone", thread_id="t", status="success", created_at="2020-01-01T00:00:00Z")
    await store.put("old", thread_id="t", status="error", created_at="2020-01-02T00:00:00Z")
    await store.put("live", thread_id="u", status="running", created_at="2020-01-03T00:00:00Z")
    await store.put("new", thread_id="u", status="success")
    for run_id in ("gone", "old", "live", "new"):
        await store.append_events(run_id, batch(1, 3))
    assert await store.delete("gone")
    assert await store.read_events("gone") == []
    result = await store.prune_runs(older_than="30d")
    assert result.runs == 1  # "old": "live" is running, "new" is recent
    assert await store.read_events("old") == []
    assert len(await store.read_events("live")) == 3 and len(await store.read_events("new")) == 3
