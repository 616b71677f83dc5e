"""Peers on one store stay correct under races: the first cancel action stands, recovery is
a compare-and-set on the lease it saw, exactly one recoverer wins an orphan, strategies
never run two runs of a thread at once, renewals are bounded, a takeover that loses is
reported truthfully, the old owner's join() reads the stored end, a standing cancel beats
a late completion, and aclose() waits for the runs it ended. Each race is forced with a
hook at the store's write point, never by sleeping."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage

from langgraph_runstore import RunManager, RunStatus, RunStore, SQLRunStore
from langgraph_runstore.workers import utc_in
from tests.faults import hold_write_lock
from tests.graphs import State, blocked_graph, single_node_graph

pytestmark = pytest.mark.asyncio


async def running_row(store: RunStore, run_id: str, *, owner: str, lease_in: float) -> None:
    await store.put(
        run_id,
        thread_id=f"t-{run_id}",
        status="running",
        owner_worker_id=owner,
        lease_expires_at=utc_in(lease_in),
    )


class Gate:
    """Lets ``parties`` callers through together, once all of them have arrived."""

    def __init__(self, parties: int) -> None:
        self.parties = parties
        self.arrived = 0
        self.open = asyncio.Event()

    async def wait(self) -> None:
        self.arrived += 1
        if self.arrived >= self.parties:
            self.open.set()
        await asyncio.wait_for(self.open.wait(), 10)


def before(store: RunStore, method: str, hook: Callable[[], Awaitable[None]]) -> None:
    """Run ``hook()`` each time before ``store.<method>`` (on this instance only)."""
    real = getattr(store, method)

    async def hooked(*args: Any, **kwargs: Any) -> Any:
        await hook()
        return await real(*args, **kwargs)

    setattr(store, method, hooked)


def after(store: RunStore, method: str, hook: Callable[[], Awaitable[None]]) -> None:
    """Run ``hook()`` each time after ``store.<method>`` answered, before the caller sees it."""
    real = getattr(store, method)

    async def hooked(*args: Any, **kwargs: Any) -> Any:
        answer = await real(*args, **kwargs)
        await hook()
        return answer

    setattr(store, method, hooked)


# 1. first cancel action wins -------------------------------------------------------------


async def test_the_first_cancel_action_stands(store: RunStore) -> None:
    await running_row(store, "r1", owner="alive", lease_in=60)
    peer = RunManager(store=store)
    assert await peer.cancel("r1", action="rollback") is True
    first = await store.get("r1")
    assert await peer.cancel("r1", action="interrupt") is True  # a second request
    assert await peer.cancel("r1", action="rollback") is True  # a peer's retry of the first
    row = await store.get("r1")
    assert row is not None and first is not None and row["cancel_action"] == "rollback"
    assert row["cancel_requested_at"] == first["cancel_requested_at"]
    assert row["status"] == "running"  # the live owner ends it


# 2. a local cancel honours a request that stands -----------------------------------------


async def test_a_local_cancel_honours_a_peers_standing_request(store: RunStore) -> None:
    started, release = asyncio.Event(), asyncio.Event()
    owner = RunManager(store=store, poll_interval=3600)  # it has not seen the request yet
    run = await owner.start(blocked_graph(started, release), {"messages": []}, thread_id="t1")
    await asyncio.wait_for(started.wait(), 10)
    assert await store.request_cancel(run.run_id, action="rollback") is not None
    assert await owner.cancel(run.run_id) is True  # interrupt, by default
    row = await store.get(run.run_id)
    assert row is not None and row["status"] == "interrupted"
    assert row["stop_reason"] == "rolled_back" and row["cancel_action"] == "rollback"
    await owner.aclose()


# 3. recovery is a compare-and-set on what it saw -----------------------------------------


async def test_recovery_does_not_take_a_run_renewed_after_it_looked(store: RunStore) -> None:
    await running_row(store, "r1", owner="w1", lease_in=-60)
    (seen,) = await store.list_expired(expired_before=utc_in(0))
    # the owner renews between the sweep's look and its write
    assert await store.renew_leases(worker_id="w1", run_ids=["r1"], lease_expires_at=utc_in(30))
    outcome = await store.recover_expired(
        "r1", expired_before=utc_in(0), requeue=False, error="E", seen=seen
    )
    assert outcome is None
    row = await store.get("r1")
    assert row is not None and row["status"] == "running"


async def test_recovery_does_not_take_a_run_another_worker_took_meanwhile(
    store: RunStore,
) -> None:
    await running_row(store, "r1", owner="w1", lease_in=-60)
    (seen,) = await store.list_expired(expired_before=utc_in(0))
    # another worker took it over and (with a clock behind ours) holds a lease that has
    # also lapsed by our clock: only the owner and lease it saw tell the two apart
    await running_row(store, "r1", owner="w2", lease_in=-30)
    outcome = await store.recover_expired(
        "r1", expired_before=utc_in(0), requeue=False, error="E", seen=seen
    )
    assert outcome is None
    row = await store.get("r1")
    assert row is not None and row["owner_worker_id"] == "w2" and row["status"] == "running"


async def test_the_sweep_applies_the_grace_period(store: RunStore) -> None:
    await running_row(store, "r1", owner="w1", lease_in=-1)
    manager = RunManager(store=store, lease_seconds=5, grace_seconds=5)
    async with manager:
        assert manager._workers is not None
        assert await manager._workers.sweep() == []
    row = await store.get("r1")
    assert row is not None and row["status"] == "running"


# 4. two recoverers, one winner -----------------------------------------------------------


async def test_two_managers_reconciling_one_orphan_exactly_one_reports_it(
    store: RunStore,
) -> None:
    await store.put("orphan", thread_id="t1", status="running")
    gate = Gate(2)  # both have listed the orphan before either writes
    after(store, "list_inflight", gate.wait)
    first, second = RunManager(store=store), RunManager(store=store)
    found = await asyncio.gather(
        first.reconcile_orphaned_inflight_runs(), second.reconcile_orphaned_inflight_runs()
    )
    assert sorted(len(each) for each in found) == [0, 1]
    row = await store.get("orphan")
    assert row is not None and row["status"] == "error"


# 5. strategies across workers ------------------------------------------------------------


async def test_interrupt_across_workers_starts_the_new_run_after_the_old_one_ended(
    db_url: str,
) -> None:
    started, peer_returned = asyncio.Event(), asyncio.Event()

    async def slow_to_stop(state: State) -> dict[str, Any]:
        started.set()
        try:
            await asyncio.Event().wait()
        finally:
            # stopping takes until the peer's start() returned (bounded): a peer that does
            # not wait for the old run's end starts the new run while this one still runs
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(peer_returned.wait(), 1.0)
        return {}

    async with SQLRunStore.from_url(db_url) as store_a, SQLRunStore.from_url(db_url) as store_b:
        owner = RunManager(store=store_a, lease_seconds=0.6, grace_seconds=0, graphs={})
        peer = RunManager(store=store_b)
        async with owner:
            old_graph = single_node_graph(slow_to_stop).compile()
            old = await owner.start(old_graph, {"messages": []}, thread_id="t1")
            await asyncio.wait_for(started.wait(), 10)
            done = single_node_graph(lambda s: {"messages": [AIMessage(content="new")]})
            new = await peer.start(
                done.compile(), {"messages": []}, thread_id="t1", multitask_strategy="interrupt"
            )
            peer_returned.set()
            finished = await asyncio.wait_for(peer.join(new.run_id), 20)
            ended = await asyncio.wait_for(owner.join(old.run_id), 20)
        assert ended.status is RunStatus.interrupted and finished.status is RunStatus.success
        old_row, new_row = await store_a.get(old.run_id), await store_a.get(new.run_id)
        assert old_row is not None and new_row is not None
        assert old_row["ended_at"] <= new_row["started_at"]  # never both running
        await peer.aclose()


async def test_a_start_refused_by_the_one_running_run_index_does_not_execute(
    db_url: str,
) -> None:
    async with SQLRunStore.from_url(db_url) as store:
        await store.put("other", thread_id="t1", status="running", owner_worker_id="w9")
        manager = RunManager(store=store)
        executed: list[str] = []

        def step(state: State) -> dict[str, Any]:
            executed.append("ran")
            return {"messages": [AIMessage(content="x")]}

        graph = single_node_graph(step).compile()
        async with manager.track(thread_id="t1", multitask_strategy="enqueue") as run:
            await graph.ainvoke({"messages": []}, run.config)
        assert executed == []  # the graph stopped before its node
        row = await store.get(run.run_id)
        assert row is not None and row["status"] == "error" and "ConflictError" in row["error"]
        await manager.aclose()


# 6. a hanging renewal is bounded by the lease --------------------------------------------


async def test_a_renewal_that_hangs_fences_the_run_at_the_lease_deadline(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    async with SQLRunStore.from_url(f"sqlite+aiosqlite:///{path}") as store:
        started, release = asyncio.Event(), asyncio.Event()
        worker = RunManager(store=store, lease_seconds=1.0, graphs={})
        async with worker:
            run = await worker.start(
                blocked_graph(started, release), {"messages": []}, thread_id="t1"
            )
            await asyncio.wait_for(started.wait(), 10)
            blocker = hold_write_lock(path)  # the renewal waits on SQLite's busy timeout
            try:
                assert worker._workers is not None
                loop = asyncio.get_running_loop()
                began = loop.time()
                await asyncio.wait_for(worker._workers.heartbeat(), 3)
                assert loop.time() - began <= 1.5
                assert run.run_id in worker.lifecycle.fenced
            finally:
                blocker.execute("ROLLBACK")
                blocker.close()
            release.set()


# 8, 9. cancel tells the truth ------------------------------------------------------------


async def test_cancel_whose_takeover_loses_to_a_renewal_reports_the_run_alive(
    store: RunStore,
) -> None:
    await running_row(store, "r1", owner="w1", lease_in=-60)

    async def owner_renews() -> None:
        await store.renew_leases(worker_id="w1", run_ids=["r1"], lease_expires_at=utc_in(30))

    before(store, "recover_expired", owner_renews)
    assert await RunManager(store=store, grace_seconds=0).cancel("r1") is True
    row = await store.get("r1")
    assert row is not None and row["status"] == "running" and row["cancel_requested_at"]


async def test_cancel_does_not_take_over_a_run_within_its_grace_window(store: RunStore) -> None:
    await running_row(store, "r1", owner="w1", lease_in=-1)
    assert await RunManager(store=store, grace_seconds=5).cancel("r1") is True
    row = await store.get("r1")
    assert row is not None and row["status"] == "running" and row["cancel_requested_at"]


# 10. the old owner reads the stored end ---------------------------------------------------


async def test_after_a_takeover_the_old_owners_join_reports_the_stored_end(
    store: RunStore,
) -> None:
    started, release = asyncio.Event(), asyncio.Event()
    owner = RunManager(store=store, lease_seconds=30, grace_seconds=0, graphs={})
    async with owner:
        run = await owner.start(blocked_graph(started, release), {"messages": []}, thread_id="t1")
        await asyncio.wait_for(started.wait(), 10)
        # a peer whose clock runs a minute ahead sees the lease as expired and takes it
        outcome = await store.recover_expired(
            run.run_id, expired_before=utc_in(60), requeue=False, error="taken over"
        )
        assert outcome == "error"
        assert owner._workers is not None
        await owner._workers.heartbeat()  # its renewal finds the run gone: fenced
        joined = await asyncio.wait_for(owner.join(run.run_id), 10)
    assert joined.status is RunStatus.error and joined.stop_reason == "orphan_recovered"


# 11. a worker stopped at once leaves no asyncpg error -------------------------------------


@pytest.mark.postgres
async def test_stopping_a_postgres_worker_right_after_it_starts_is_clean(pg_url: str) -> None:
    loop = asyncio.get_running_loop()
    unhandled: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: unhandled.append(context))
    try:
        async with SQLRunStore.from_url(pg_url) as store:
            for _ in range(10):
                async with RunManager(store=store, lease_seconds=5, graphs={"a": object()}):
                    pass
        await asyncio.sleep(0.2)  # let a late connection_lost() surface, if any
    finally:
        loop.set_exception_handler(None)
    assert unhandled == []


# 12. a standing cancel beats a late completion ---------------------------------------------


@pytest.mark.parametrize("backend", ["memory", "sqlite"])
async def test_a_peers_rollback_wins_over_the_owners_late_completion(
    backend: str, tmp_path: Path
) -> None:
    from langgraph_runstore import MemoryRunStore

    started, release = asyncio.Event(), asyncio.Event()
    store: RunStore
    if backend == "memory":
        store = MemoryRunStore()
        opened = None
    else:
        opened = SQLRunStore.from_url(f"sqlite+aiosqlite:///{tmp_path / 'r.db'}")
        store = await opened.__aenter__()
    try:
        checkpointer = getattr(store, "checkpointer", None)
        owner = RunManager(store=store, lease_seconds=30, graphs={})
        peer = RunManager(store=store)
        async with owner:
            graph = blocked_graph(started, release, checkpointer=checkpointer)
            run = await owner.start(graph, {"messages": []}, thread_id="t1")
            await asyncio.wait_for(started.wait(), 10)
            assert await peer.cancel(run.run_id, action="rollback") is True  # recorded
            release.set()  # the owner completes before its heartbeat sees the request
            joined = await asyncio.wait_for(owner.join(run.run_id), 10)
            assert joined.status is RunStatus.interrupted
            assert joined.stop_reason == "rolled_back"
            row = await store.get(run.run_id)
            assert row is not None and row["stop_reason"] == "rolled_back"
            state = await graph.aget_state({"configurable": {"thread_id": "t1"}})
            assert not state.values  # the run's checkpoints are gone
    finally:
        if opened is not None:
            await opened.__aexit__(None, None, None)


# 13. aclose waits for the runs it cancelled -------------------------------------------------


async def test_aclose_returns_after_the_cancelled_runs_tasks_finished(store: RunStore) -> None:
    cleaned: list[str] = []
    started = asyncio.Event()

    async def slow_to_stop(state: State) -> dict[str, Any]:
        started.set()
        try:
            await asyncio.Event().wait()
        finally:
            for _ in range(20):  # cleanup that takes a few loop turns
                await asyncio.sleep(0)
            cleaned.append("done")
        return {}

    manager = RunManager(store=store)
    run = await manager.start(
        single_node_graph(slow_to_stop).compile(), {"messages": []}, thread_id="t1"
    )
    await asyncio.wait_for(started.wait(), 10)
    await manager.aclose()
    assert cleaned == ["done"]
    assert run.status is RunStatus.interrupted
