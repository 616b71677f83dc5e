"""Following a run's journal live: a run of another process (SQLite polls, PostgreSQL hears
NOTIFY), re-attaching with ``join_stream`` after a dropped consumer, how fast a follower
hears of a new event, and the bad input a follower can be given."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from langgraph_runstore import (
    InvalidInputError,
    JournalConfig,
    RunEvent,
    RunManager,
    RunNotFoundError,
    SQLRunStore,
)
from langgraph_runstore.schemas import now_iso
from tests.journal_graphs import gated_graph, label

pytestmark = pytest.mark.asyncio

REPO = Path(__file__).resolve().parents[1]
INPUT = {"messages": [("user", "go on")]}
GATED = [
    ("run_admitted", None),
    ("run_started", None),
    ("node_started", "think"),
    ("llm_ended", "m-think"),
    ("node_ended", "think"),
    ("node_started", "gate"),
    ("node_ended", "gate"),
    ("node_started", "answer"),
    ("llm_ended", "m-answer"),
    ("node_ended", "answer"),
    ("run_ended", None),
]


def spawn_run(url: str) -> subprocess.Popen[str]:
    """``tests/journal_process.py`` executing one gated run on ``url``."""
    return subprocess.Popen(
        [sys.executable, "-m", "tests.journal_process", url, "elsewhere"],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


async def test_a_run_of_another_process_is_followed_live(db_url: str) -> None:
    async with SQLRunStore.from_url(db_url) as store, RunManager(store) as manager:
        child = spawn_run(db_url)
        try:
            assert child.stdout is not None and child.stdin is not None
            stdin = child.stdin
            run_id = child.stdout.readline().strip()
            assert run_id, child.stderr.read() if child.stderr else ""
            # PostgreSQL wakes the follower by NOTIFY alone: a poll would take 30 s
            poll = 30.0 if store.dialect == "postgresql" else 0.05
            seen: list[RunEvent] = []
            released = 0.0

            async def follow() -> None:
                nonlocal released
                async for event in manager.events(run_id, poll_interval=poll):
                    seen.append(event)
                    if event.kind == "node_started" and event.data["node"] == "gate":
                        stored = await store.get_status(run_id)
                        assert stored is not None and stored["status"] == "running"
                        released = time.monotonic()
                        stdin.write("go\n")
                        stdin.flush()

            await asyncio.wait_for(follow(), 20)
            assert time.monotonic() - released < 10
            assert [label(event) for event in seen] == GATED
            assert child.wait(20) == 0
            run = await manager.get(run_id)
            assert run is not None and run.status.value == "success" and run.total_tokens == 23
        finally:
            if child.poll() is None:
                child.kill()
                child.wait(10)


async def test_join_stream_resumes_after_a_dropped_consumer(db_url: str) -> None:
    journal = JournalConfig(flush_interval=0.02)
    async with SQLRunStore.from_url(db_url) as store, RunManager(store, journal=journal) as manager:
        gate = asyncio.Event()
        run = await manager.start(gated_graph(gate), INPUT, thread_id="t")
        first: list[RunEvent] = []
        async for event in manager.join_stream(run.run_id):
            first.append(event)
            if event.kind == "node_started" and event.data["node"] == "gate":
                break  # the consumer drops while the run waits at the gate
        gate.set()
        rest = [e async for e in manager.join_stream(run.run_id, last_event_id=first[-1].id)]
        everything = [e async for e in manager.join_stream(run.run_id)]
    assert first + rest == everything
    assert [label(event) for event in everything] == GATED
    assert [e.seq for e in everything] == list(range(1, len(GATED) + 1))
    assert rest[0].seq == first[-1].seq + 1


@pytest.mark.postgres
async def test_a_follower_hears_of_a_new_event_within_100_ms_on_postgres(pg_url: str) -> None:
    async with SQLRunStore.from_url(pg_url) as writer, SQLRunStore.from_url(pg_url) as reader:
        await writer.put("r", thread_id="t", status="running")
        arrived: asyncio.Queue[tuple[RunEvent, float]] = asyncio.Queue()

        async def follow() -> None:
            async with RunManager(reader) as manager:
                async for event in manager.events("r", poll_interval=30):
                    arrived.put_nowait((event, time.perf_counter()))

        follower = asyncio.ensure_future(follow())
        lags = []
        for seq in range(1, 21):
            kind = "run_ended" if seq == 20 else "progress"
            await writer.append_events("r", [(seq, now_iso(), kind, {"n": seq})])
            committed = time.perf_counter()
            event, seen = await asyncio.wait_for(arrived.get(), 5)
            assert event.seq == seq
            lags.append(seen - committed)
        await asyncio.wait_for(follower, 5)
    assert max(lags[1:]) < 0.1, lags  # the first may be read before the LISTEN is up


async def test_a_follower_whose_run_is_deleted_ends_quietly(db_url: str) -> None:
    async with SQLRunStore.from_url(db_url) as store, RunManager(store) as manager:
        await store.put("r", thread_id="t", status="running")
        await store.append_events("r", [(1, now_iso(), "run_started", {})])
        seen = []

        async def follow() -> None:
            async for event in manager.events("r", poll_interval=0.02):
                seen.append(event.kind)
                assert await store.delete("r")  # the run goes while it is followed

        await asyncio.wait_for(follow(), 10)
        assert seen == ["run_started"]
        assert await store.read_events("r") == []


async def test_bad_input_to_events_and_join_stream(sqlite_url: str) -> None:
    async with SQLRunStore.from_url(sqlite_url) as store, RunManager(store) as manager:
        await store.put("a", thread_id="t", status="success")
        await store.put("b", thread_id="t", status="success", user_id="u")
        with pytest.raises(RunNotFoundError, match="nope"):
            await anext(manager.events("nope"))
        with pytest.raises(RunNotFoundError):
            await anext(manager.events("b", user_id="someone else"))
        bad_ids = {
            "b:3": "names an event of run 'b', not of run 'a'",
            "a": "not an event id",
            "a:x": "not an event id",
            "a:-1": "not an event id",
            "a:\u0661": "not an event id",  # a digit, but not an ASCII one
        }
        for bad, message in bad_ids.items():
            with pytest.raises(InvalidInputError, match=message):
                await anext(manager.join_stream("a", last_event_id=bad))
        with pytest.raises(InvalidInputError, match="must be an event id"):
            await anext(manager.join_stream("a", last_event_id=3))  # type: ignore[arg-type]
        for after in (-1, "3", 1.5, True):
            with pytest.raises(InvalidInputError, match="after must be"):
                await anext(manager.events("a", after=after))  # type: ignore[arg-type]
        for poll in (0, -1, float("inf"), float("nan")):
            with pytest.raises(InvalidInputError, match="poll_interval"):
                await anext(manager.events("a", poll_interval=poll))
        # a finished run with no events: the follower ends at once
        assert [e async for e in manager.events("a")] == []


async def test_events_page_through_a_long_journal(sqlite_url: str) -> None:
    async with SQLRunStore.from_url(sqlite_url) as store, RunManager(store) as manager:
        await store.put("r", thread_id="t", status="success")
        stamp = now_iso()
        await store.append_events(
            "r", [(seq, stamp, "progress", {"n": seq}) for seq in range(1, 1201)]
        )
        seqs = [e.seq async for e in manager.events("r")]
        tail = [e.seq async for e in manager.events("r", after=1100, follow=False)]
    assert seqs == list(range(1, 1201)) and tail == list(range(1101, 1201))
