"""``enqueue`` is FIFO per thread on every backend: runs of a thread execute in the order
``start()``/``submit()`` was called, whatever order their INSERTs commit in, and a claim
takes a thread's runs in the order the store admitted them (its seq)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from langchain_core.messages import AIMessage
from langchain_core.runnables import RunnableConfig

from langgraph_runstore import RunManager, RunRecord, RunStatus, RunStore
from langgraph_runstore.workers import utc_in
from tests.graphs import State, single_node_graph

pytestmark = pytest.mark.asyncio

#: How long the held INSERT waits for the second run's INSERT when none begins: admission
#: in call order lets no second INSERT of the thread begin while the first is pending.
HOLD_LIMIT = 0.5

THREADS, RUNS_PER_THREAD = 20, 10


class Recorder:
    """A graph whose one node notes, per thread, the input it executes."""

    def __init__(self) -> None:
        self.order: dict[str, list[str]] = {}

        async def step(state: State, config: RunnableConfig) -> dict[str, Any]:
            thread_id = config["configurable"]["thread_id"]
            self.order.setdefault(thread_id, []).append(_text(state["messages"][-1]))
            return {"messages": [AIMessage(content="ok")]}

        self.graph = single_node_graph(step).compile()


def _text(message: Any) -> str:
    return str(getattr(message, "content", message))


class HeldFirstInsert:
    """A hook at the store's write: the first row written is held until ``release`` is set
    (or HOLD_LIMIT passes), so that the second run's row commits first, as concurrent
    INSERTs on PostgreSQL's pool do. ``committed`` lists the run_ids in commit order."""

    def __init__(self, store: RunStore, method: str) -> None:
        self.release = asyncio.Event()
        self.committed: list[str] = []
        real: Callable[..., Awaitable[None]] = getattr(store, method)
        calls = 0

        async def hooked(run_id: str, **fields: Any) -> None:
            nonlocal calls
            calls += 1
            index = calls
            if index == 1:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self.release.wait(), HOLD_LIMIT)
            await real(run_id, **fields)
            self.committed.append(run_id)

        setattr(store, method, hooked)  # on this instance only


async def seqs(store: RunStore, runs: list[RunRecord]) -> list[int]:
    rows = [await store.get(r.run_id) for r in runs]
    return [int(row["seq"]) for row in rows if row is not None]


async def test_start_enqueue_runs_in_call_order_when_the_later_insert_commits_first(
    store: RunStore,
) -> None:
    recorder = Recorder()
    hold = HeldFirstInsert(store, "insert")
    manager = RunManager(store=store)

    async def start(text: str) -> RunRecord:
        run = await manager.start(
            recorder.graph,
            {"messages": [("user", text)]},
            thread_id="t",
            multitask_strategy="enqueue",
        )
        if text == "second":
            hold.release.set()  # the second row is in: let the first one commit now
        return run

    first, second = await asyncio.gather(start("first"), start("second"))
    for run in (first, second):
        assert (await manager.join(run.run_id)).status is RunStatus.success
    assert recorder.order["t"] == ["first", "second"]
    # the second start() waited for the first one's row instead of overtaking it
    assert hold.committed == [first.run_id, second.run_id]
    assert await seqs(store, [first, second]) == sorted(await seqs(store, [first, second]))
    assert first.created_at <= second.created_at
    await manager.aclose()


async def test_submit_runs_in_call_order_when_the_later_insert_commits_first(
    store: RunStore,
) -> None:
    recorder = Recorder()
    hold = HeldFirstInsert(store, "put")
    real_claim = store.claim_next

    async def claim_next(**options: Any) -> dict[str, Any] | None:
        claimed = await real_claim(**options)
        if claimed is not None:
            hold.release.set()  # a run of the thread was claimed: let the held row commit
        return claimed

    store.claim_next = claim_next  # type: ignore[method-assign]
    client = RunManager(store=store)
    async with RunManager(store=store, graphs={"a": recorder.graph}, poll_interval=0.02):
        runs = await asyncio.gather(
            *(
                client.submit(
                    "a",
                    {"messages": [{"role": "user", "content": text}]},
                    thread_id="t",
                    multitask_strategy="enqueue",
                )
                for text in ("first", "second")
            )
        )
        for run in runs:
            joined = await asyncio.wait_for(client.join(run.run_id, poll_interval=0.02), 30)
            assert joined.status is RunStatus.success
    assert recorder.order["t"] == ["first", "second"]
    assert hold.committed == [r.run_id for r in runs]
    await client.aclose()


async def test_a_claim_takes_a_threads_runs_in_the_order_the_store_admitted_them(
    store: RunStore,
) -> None:
    # created_at is each client's clock: across processes a row created earlier can commit
    # after a later one. The thread's order is the store's seq; across threads, oldest first.
    queued = {"assistant_id": "a", "status": "pending", "shared_queue": True}
    await store.put(
        "admitted-first", thread_id="t", created_at="2025-01-01T00:00:02+00:00", **queued
    )
    await store.put(
        "created-first", thread_id="t", created_at="2025-01-01T00:00:01+00:00", **queued
    )
    await store.put("other-thread", thread_id="u", created_at="2025-01-01T00:00:00+00:00", **queued)
    claimed = []
    for _ in range(3):
        row = await store.claim_next(
            worker_id="w", assistant_ids=["a"], lease_expires_at=utc_in(30)
        )
        claimed.append(row["run_id"] if row else None)
    # the third claim finds thread t busy with the run it admitted first
    assert claimed == ["other-thread", "admitted-first", None]
    await store.update_status("admitted-first", "success")
    row = await store.claim_next(worker_id="w", assistant_ids=["a"], lease_expires_at=utc_in(30))
    assert row is not None and row["run_id"] == "created-first"


async def test_twenty_threads_of_ten_concurrent_enqueued_starts_run_in_call_order(
    store: RunStore,
) -> None:
    recorder = Recorder()
    manager = RunManager(store=store)
    calls = [(f"t{t}", f"job {i}") for i in range(RUNS_PER_THREAD) for t in range(THREADS)]
    runs = await asyncio.gather(
        *(
            manager.start(
                recorder.graph,
                {"messages": [("user", text)]},
                thread_id=thread_id,
                multitask_strategy="enqueue",
            )
            for thread_id, text in calls
        )
    )
    for run in runs:
        assert (await manager.join(run.run_id)).status is RunStatus.success
    expected = [f"job {i}" for i in range(RUNS_PER_THREAD)]
    assert {t: recorder.order[t] for t in sorted(recorder.order)} == {
        f"t{t}": expected for t in range(THREADS)
    }
    for t in range(THREADS):
        mine = [r for r in runs if r.thread_id == f"t{t}"]  # in call order
        assert [r.created_at for r in mine] == sorted(r.created_at for r in mine)
        assert await seqs(store, mine) == sorted(await seqs(store, mine))
    await manager.aclose()


async def test_twenty_threads_of_ten_concurrent_submits_run_in_call_order(
    store: RunStore,
) -> None:
    recorder = Recorder()
    client = RunManager(store=store)
    calls = [(f"t{t}", f"job {i}") for i in range(RUNS_PER_THREAD) for t in range(THREADS)]
    async with RunManager(store=store, graphs={"a": recorder.graph}, poll_interval=0.02):
        runs = await asyncio.gather(
            *(
                client.submit(
                    "a",
                    {"messages": [{"role": "user", "content": text}]},
                    thread_id=thread_id,
                    multitask_strategy="enqueue",
                )
                for thread_id, text in calls
            )
        )
        for run in runs:
            joined = await asyncio.wait_for(client.join(run.run_id, poll_interval=0.02), 60)
            assert joined.status is RunStatus.success
    expected = [f"job {i}" for i in range(RUNS_PER_THREAD)]
    assert {t: recorder.order[t] for t in sorted(recorder.order)} == {
        f"t{t}": expected for t in range(THREADS)
    }
    for t in range(THREADS):
        mine = [r for r in runs if r.thread_id == f"t{t}"]
        assert await seqs(store, mine) == sorted(await seqs(store, mine))
    await client.aclose()
