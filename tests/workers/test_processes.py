"""Several worker processes on one database: real OS processes, real SQLite file, real
PostgreSQL. Each test starts ``tests/workers/worker_process.py`` workers as subprocesses."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from langgraph_runstore import RunManager, RunStatus, SQLRunStore
from tests.backends import libpq_url

pytestmark = pytest.mark.asyncio

REPO = Path(__file__).resolve().parents[2]
FINAL = {"success", "error", "timeout", "interrupted"}


class Workers:
    """Starts worker processes and makes sure none outlives the test."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.procs: dict[str, subprocess.Popen[str]] = {}

    def spawn(self, worker_id: str, *options: str) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.workers.worker_process", self.url, worker_id, *options],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.strip() == "ready", f"worker {worker_id} did not start: {line!r}"
        self.procs[worker_id] = proc
        return proc

    def kill(self, worker_id: str) -> None:
        self.procs[worker_id].send_signal(signal.SIGKILL)
        self.procs[worker_id].wait(10)

    def stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()


@pytest.fixture
def workers(db_url: str) -> Iterator[Workers]:
    pool = Workers(db_url)
    try:
        yield pool
    finally:
        pool.stop_all()


@pytest_asyncio.fixture
async def client(db_url: str) -> AsyncIterator[RunManager]:
    """The test's own manager: it submits, cancels and reads; it executes nothing."""
    async with SQLRunStore.from_url(db_url) as store:
        yield RunManager(store=store)


async def wait_until(predicate: Any, timeout: float, interval: float = 0.05) -> float:
    """Poll ``predicate`` until true; return the seconds it took, fail after ``timeout``."""
    began = time.monotonic()
    while True:
        if await predicate():
            return time.monotonic() - began
        if time.monotonic() - began > timeout:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(interval)


async def status_of(client: RunManager, run_id: str) -> str | None:
    assert client.store is not None
    row = await client.store.get(run_id)
    return None if row is None else row["status"]


async def test_four_workers_drain_200_runs_fifo_per_thread(
    client: RunManager, workers: Workers
) -> None:
    store = client.store
    assert store is not None
    for n in range(4):
        workers.spawn(f"drain-{n}", "--concurrency", "3")
    threads = [f"thread-{t}" for t in range(20)]
    submitted: dict[str, list[str]] = {t: [] for t in threads}
    for job in range(10):
        for thread in threads:
            run = await client.submit(
                "echo",
                {"messages": [{"role": "user", "content": f"{thread} job {job}"}]},
                thread_id=thread,
            )
            submitted[thread].append(run.run_id)

    async def all_final() -> bool:
        return not await store.list_inflight()

    await wait_until(all_final, timeout=120, interval=0.2)

    owners = set()
    for thread in threads:
        rows = {row["run_id"]: row for row in await store.list_by_thread(thread, limit=100)}
        runs = [rows[run_id] for run_id in submitted[thread]]  # in submission (FIFO) order
        assert [r["status"] for r in runs] == ["success"] * 10
        assert all(r["attempt"] == 1 for r in runs)  # each claimed exactly once
        owners |= {r["owner_worker_id"] for r in runs}
        by_start = sorted(runs, key=lambda r: r["started_at"])
        assert [r["run_id"] for r in by_start] == submitted[thread]  # FIFO per thread
        for before, after in itertools.pairwise(runs):
            # never two running at once; compared to the millisecond, since SQLite's clock,
            # which stamps a claim's started_at, counts no finer than that
            assert after["started_at"][:23] >= before["ended_at"][:23]
        saver = store.checkpointer  # type: ignore[attr-defined]
        state = await saver.aget_tuple({"configurable": {"thread_id": thread}})
        messages = state.checkpoint["channel_values"]["messages"]
        assert len(messages) == 20  # each run's input and answer, exactly once
    assert len(owners) >= 2  # the work was shared


async def test_kill_9_mid_run_is_recovered_and_the_thread_goes_on(
    client: RunManager, workers: Workers
) -> None:
    store = client.store
    assert store is not None
    workers.spawn("doomed", "--lease", "1", "--grace", "0.5")
    slow = await client.submit(
        "slow", {"messages": [{"role": "user", "content": "long"}]}, thread_id="t"
    )
    await wait_until(lambda: _is(client, slow.run_id, "running"), timeout=10)
    follow = await client.submit(
        "echo", {"messages": [{"role": "user", "content": "after"}]}, thread_id="t"
    )

    workers.kill("doomed")
    killed_at = time.monotonic()
    workers.spawn("rescuer", "--lease", "1", "--grace", "0.5")

    await wait_until(lambda: _is(client, slow.run_id, "error"), timeout=10)
    recovered_in = time.monotonic() - killed_at
    assert recovered_in < 1 + 0.5 + 2.0  # lease + grace + the rescuer's start and sweep
    row = await store.get(slow.run_id)
    assert row is not None and row["stop_reason"] == "orphan_recovered"
    assert "doomed" in (row["error"] or "")

    await wait_until(lambda: _is(client, follow.run_id, "success"), timeout=10)
    assert (await store.get(follow.run_id))["owner_worker_id"] == "rescuer"  # type: ignore[index]


async def test_a_cancel_from_another_worker_stops_the_run(
    client: RunManager, workers: Workers, db_url: str
) -> None:
    workers.spawn("owner", "--lease", "1")
    slow = await client.submit(
        "slow", {"messages": [{"role": "user", "content": "long"}]}, thread_id="t"
    )
    await wait_until(lambda: _is(client, slow.run_id, "running"), timeout=10)

    assert await client.cancel(slow.run_id) is True
    took = await wait_until(
        lambda: _is(client, slow.run_id, "interrupted"), timeout=5, interval=0.01
    )
    # PostgreSQL delivers by NOTIFY; SQLite waits for the owner's next heartbeat (lease / 3)
    assert took < (1.0 if db_url.startswith("postgresql") else 1.0 / 3 + 1.0)
    row = await client.store.get(slow.run_id)  # type: ignore[union-attr]
    assert row is not None and row["stop_reason"] == "cancelled"
    assert await client.cancel(slow.run_id) is False


async def test_cut_connections_are_survived(
    client: RunManager, workers: Workers, db_url: str
) -> None:
    import asyncpg

    if not db_url.startswith("postgresql"):
        pytest.skip("pg_terminate_backend is PostgreSQL's; SQLite has no connection to cut")
    store = client.store
    assert store is not None
    workers.spawn("cut", "--lease", "2")
    raw = libpq_url(db_url)
    admin = await asyncpg.connect(raw)
    run_ids = []
    try:
        for i in range(30):
            run = await client.submit(
                "echo",
                {"messages": [{"role": "user", "content": f"job {i}"}]},
                thread_id=f"t{i % 3}",
            )
            run_ids.append(run.run_id)
            if i in (8, 18):

                async def cut() -> bool:
                    terminated = await admin.fetchval(
                        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                        "WHERE application_name = 'cut'"
                    )
                    return bool(terminated)

                await wait_until(cut, timeout=10)

        async def all_final() -> bool:
            return all([(await status_of(client, r)) in FINAL for r in run_ids])

        await wait_until(all_final, timeout=60, interval=0.2)
    finally:
        await admin.close()
    statuses = [await status_of(client, r) for r in run_ids]
    # runs in flight at a cut may fail (their graph lost its connection) but each one has a
    # final status; the worker reconnected and kept working
    assert statuses[-5:] == ["success"] * 5
    assert statuses.count("success") >= 20


async def _is(client: RunManager, run_id: str, status: str) -> bool:
    return await status_of(client, run_id) == status


def test_status_values_match_the_enum() -> None:
    assert {s.value for s in RunStatus if s.is_final} == FINAL
