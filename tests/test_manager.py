"""RunManager lifecycle, persistence and recovery, on every store backend."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from pathlib import Path

import pytest

from langgraph_runstore import (
    BackgroundRetryPolicy,
    ConflictError,
    DisconnectMode,
    InvalidInputError,
    InvalidTransitionError,
    PersistenceRetryPolicy,
    RunManager,
    RunNotFoundError,
    RunStatus,
    RunStore,
    SQLRunStore,
    ThreadStatus,
    UnsupportedStrategyError,
)
from langgraph_runstore.db import create_engine

pytestmark = pytest.mark.asyncio


async def test_a_run_walks_pending_running_success_and_the_store_follows(store: RunStore) -> None:
    manager = RunManager(store=store)
    run = await manager.create("t1", "agent", metadata={"team": "a"}, user_id="u1")
    assert run.status is RunStatus.pending and run.store_only is False
    await manager.set_status(run.run_id, "running")
    assert run.started_at is not None
    await manager.set_status(run.run_id, RunStatus.success)
    assert run.ended_at is not None and run.ended_at >= run.started_at
    row = await store.get(run.run_id)
    assert row is not None
    assert row["status"] == "success"
    assert row["assistant_id"] == "agent" and row["user_id"] == "u1"
    assert row["metadata"] == {"team": "a"}
    assert row["started_at"] is not None and row["ended_at"] is not None


async def test_final_statuses_never_change(store: RunStore) -> None:
    manager = RunManager(store=store)
    run = await manager.create("t1")
    await manager.set_status(run.run_id, RunStatus.timeout)
    await manager.set_status(run.run_id, RunStatus.timeout)  # same status: no-op
    with pytest.raises(InvalidTransitionError) as info:
        await manager.set_status(run.run_id, RunStatus.success)
    assert info.value.run_id == run.run_id
    assert run.status is RunStatus.timeout
    row = await store.get(run.run_id)
    assert row is not None and row["status"] == "timeout"


async def test_running_cannot_go_back_to_running_or_final_to_pending() -> None:
    manager = RunManager()
    run = await manager.create("t1")
    await manager.set_status(run.run_id, RunStatus.running)
    await manager.set_status(run.run_id, RunStatus.running)  # no-op
    await manager.set_status(run.run_id, RunStatus.error, error="E: x")
    with pytest.raises(InvalidTransitionError):
        await manager.set_status(run.run_id, RunStatus.pending)


async def test_bad_arguments_name_the_value_and_write_nothing(store: RunStore) -> None:
    manager = RunManager(store=store)
    with pytest.raises(InvalidInputError, match="''"):
        await manager.create("")
    with pytest.raises(UnsupportedStrategyError, match="'sideways'"):
        await manager.create_or_reject("t1", multitask_strategy="sideways")
    with pytest.raises(InvalidInputError, match="metadata"):
        await manager.create("t1", metadata={"when": object()})
    with pytest.raises(InvalidInputError, match="kwargs"):
        await manager.create("t1", kwargs={"f": lambda: 1})
    assert await manager.list_by_thread("t1") == []
    run = await manager.create("t1")
    with pytest.raises(InvalidInputError, match="'finished'"):
        await manager.set_status(run.run_id, "finished")
    with pytest.raises(RunNotFoundError) as missing:
        await manager.set_status("no-such-run", RunStatus.running)
    assert missing.value.run_id == "no-such-run"
    with pytest.raises(RunNotFoundError):
        await manager.update_run_completion("no-such-run", status="success")
    with pytest.raises(RunNotFoundError):
        await manager.cancel("no-such-run")
    with pytest.raises(InvalidInputError, match="tokens"):
        await manager.update_run_completion(run.run_id, status="success", tokens=3)
    assert run.status is RunStatus.pending
    row = await store.get(run.run_id)
    assert row is not None and row["status"] == "pending"


async def test_cancel_interrupts_an_active_run_once(store: RunStore) -> None:
    manager = RunManager(store=store)
    run = await manager.create("t1")
    await manager.set_status(run.run_id, RunStatus.running)
    assert await manager.cancel(run.run_id) is True
    assert run.abort_event.is_set()
    assert run.status is RunStatus.interrupted and run.stop_reason == "cancelled"
    assert await manager.cancel(run.run_id) is False
    row = await store.get(run.run_id)
    assert row is not None and row["status"] == "interrupted" and row["stop_reason"] == "cancelled"


async def test_cancel_with_rollback_records_the_action(store: RunStore) -> None:
    manager = RunManager(store=store)
    run = await manager.create("t1")
    assert await manager.cancel(run.run_id, action="rollback") is True
    assert run.abort_action == "rollback" and run.stop_reason == "rolled_back"
    with pytest.raises(InvalidInputError, match="'undo'"):
        await manager.cancel((await manager.create("t2")).run_id, action="undo")


async def test_reject_refuses_a_second_active_run_on_the_thread(store: RunStore) -> None:
    manager = RunManager(store=store)
    first = await manager.create_or_reject("t1")
    with pytest.raises(ConflictError) as info:
        await manager.create_or_reject("t1")
    assert info.value.thread_id == "t1"
    await manager.set_status(first.run_id, RunStatus.success)
    second = await manager.create_or_reject("t1")
    assert second.status is RunStatus.pending


async def test_reject_sees_active_runs_of_another_manager(store: RunStore) -> None:
    worker_a = RunManager(store=store)
    worker_b = RunManager(store=store)
    await worker_a.create_or_reject("t1")
    with pytest.raises(ConflictError):
        await worker_b.create_or_reject("t1")


async def test_concurrent_reject_admissions_admit_one(store: RunStore) -> None:
    managers = [RunManager(store=store) for _ in range(6)]
    results = await asyncio.gather(
        *(m.create_or_reject("t1") for m in managers), return_exceptions=True
    )
    admitted = [r for r in results if not isinstance(r, BaseException)]
    assert len(admitted) == 1
    assert all(isinstance(r, ConflictError) for r in results if isinstance(r, BaseException))


@pytest.mark.parametrize("strategy", ["interrupt", "rollback"])
async def test_interrupt_and_rollback_cancel_active_runs_first(
    store: RunStore, strategy: str
) -> None:
    manager = RunManager(store=store)
    old = await manager.create("t1")
    await manager.set_status(old.run_id, RunStatus.running)
    new = await manager.create_or_reject("t1", multitask_strategy=strategy)
    assert old.status is RunStatus.interrupted and old.abort_action == strategy
    assert new.status is RunStatus.pending
    row = await store.get(old.run_id)
    assert row is not None and row["status"] == "interrupted"


async def test_enqueue_keeps_several_pending_runs(store: RunStore) -> None:
    manager = RunManager(store=store)
    runs = [await manager.create_or_reject("t1", multitask_strategy="enqueue") for _ in range(3)]
    assert all(r.status is RunStatus.pending for r in runs)
    listed = await manager.list_by_thread("t1")
    assert {r.run_id for r in listed} == {r.run_id for r in runs}


async def test_list_by_thread_keeps_creation_order_for_equal_timestamps(
    store: RunStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("langgraph_runstore.manager._now_iso", lambda: "2026-05-01T00:00:00+00:00")
    manager = RunManager(store=store)
    made = [await manager.create("t1") for _ in range(4)]
    manager.lifecycle.records.clear()  # read them back from the store alone
    listed = await manager.list_by_thread("t1")
    assert [r.run_id for r in listed] == [r.run_id for r in made]


async def test_restart_reads_finished_runs_with_their_numbers(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'agent.db'}"
    async with SQLRunStore.from_url(url) as store:
        manager = RunManager(store=store)
        run = await manager.create("t1", on_disconnect="continue", model_name="m")
        await manager.set_status(run.run_id, RunStatus.running)
        await manager.update_run_completion(
            run.run_id,
            status="success",
            input_tokens=7,
            output_tokens=3,
            total_tokens=10,
            llm_call_count=2,
            last_ai_message="bye",
            token_usage_by_model={"m": {"input_tokens": 7, "output_tokens": 3, "total_tokens": 10}},
        )
    async with SQLRunStore.from_url(url) as store:
        fresh = RunManager(store=store)
        again = await fresh.get(run.run_id)
        assert again is not None and again.store_only is True
        assert again.status is RunStatus.success
        assert again.on_disconnect is DisconnectMode.continue_
        assert (again.input_tokens, again.output_tokens, again.total_tokens) == (7, 3, 10)
        assert again.llm_call_count == 2 and again.last_ai_message == "bye"
        assert again.token_usage_by_model["m"]["total_tokens"] == 10
        assert again.started_at == run.started_at and again.ended_at == run.ended_at


async def test_finished_records_are_evicted_from_memory_but_stay_readable(store: RunStore) -> None:
    manager = RunManager(store=store, retain_finished_for=0)
    done = await manager.create("t1")
    await manager.set_status(done.run_id, RunStatus.success)
    live = await manager.create("t1")
    assert done.run_id not in manager.lifecycle.records
    assert live.run_id in manager.lifecycle.records
    fetched = await manager.get(done.run_id)
    assert fetched is not None and fetched.store_only and fetched.status is RunStatus.success


async def test_memory_stays_bounded_over_many_runs() -> None:
    manager = RunManager(retain_finished_for=0)
    for _ in range(2_000):
        run = await manager.create("t1")
        await manager.set_status(run.run_id, RunStatus.success)
    assert len(manager.lifecycle.records) <= 1


async def test_thread_status_follows_the_latest_run(store: RunStore) -> None:
    manager = RunManager(store=store)
    assert await manager.thread_status("t1") is ThreadStatus.idle
    run = await manager.create("t1")
    assert await manager.thread_status("t1") is ThreadStatus.busy
    await manager.update_run_completion(run.run_id, status="success", stop_reason="interrupt")
    assert await manager.thread_status("t1") is ThreadStatus.interrupted
    failed = await manager.create("t1")
    await manager.set_status(failed.run_id, RunStatus.error, error="ValueError: x")
    assert await manager.thread_status("t1") is ThreadStatus.error
    ok = await manager.create("t1")
    await manager.set_status(ok.run_id, RunStatus.success)
    assert await manager.thread_status("t1") is ThreadStatus.idle


async def test_reconcile_marks_orphans_and_spares_live_and_leased_runs(store: RunStore) -> None:
    await store.put("orphan", thread_id="t1", status="running", created_at="2026-01-01T00:00:00Z")
    await store.put(
        "leased",
        thread_id="t2",
        status="running",
        owner_worker_id="other-worker",
        lease_expires_at="2999-01-01T00:00:00Z",
        created_at="2026-01-01T00:00:00Z",
    )
    manager = RunManager(store=store)
    mine = await manager.create("t3")
    recovered = await manager.reconcile_orphaned_inflight_runs()
    assert [r.run_id for r in recovered] == ["orphan"]
    orphan = await store.get("orphan")
    assert orphan is not None
    assert orphan["status"] == "error" and orphan["stop_reason"] == "orphan_recovered"
    assert orphan["error"]
    leased = await store.get("leased")
    assert leased is not None and leased["status"] == "running"
    assert mine.status is RunStatus.pending


async def test_missing_row_is_recreated_from_memory(store: RunStore) -> None:
    manager = RunManager(store=store)
    run = await manager.create("t1", assistant_id="a")
    await store.delete(run.run_id)
    await manager.set_status(run.run_id, RunStatus.running)
    row = await store.get(run.run_id)
    assert row is not None and row["status"] == "running" and row["assistant_id"] == "a"


async def test_an_unreadable_store_degrades_to_memory(caplog: pytest.LogCaptureFixture) -> None:
    # a real server that is not there: nothing listens on this loopback port
    engine = create_engine("postgresql+asyncpg://nobody@127.0.0.1:9/none")
    manager = RunManager(
        store=SQLRunStore(engine),
        persistence_retry_policy=PersistenceRetryPolicy(max_attempts=2, initial_delay=0),
    )
    with caplog.at_level(logging.ERROR, logger="langgraph_runstore.manager"):
        run = await manager.create("t1")
        assert [r.run_id for r in await manager.list_by_thread("t1")] == [run.run_id]
        assert await manager.get("other") is None
    assert run.run_id in caplog.text
    await engine.dispose()


async def test_a_locked_sqlite_file_loses_no_final_status(tmp_path: Path) -> None:
    path = tmp_path / "locked.db"
    engine = create_engine(f"sqlite+aiosqlite:///{path}", sqlite_busy_timeout_ms=20)
    store = SQLRunStore(engine)
    await store.setup()
    manager = RunManager(
        store=store,
        persistence_retry_policy=PersistenceRetryPolicy(
            max_attempts=30, initial_delay=0.02, max_delay=0.1
        ),
    )
    run = await manager.create("t1")
    await manager.set_status(run.run_id, RunStatus.running)

    # a second, real connection holds the write lock for a while
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    blocker.execute("UPDATE runs SET model_name = 'held' WHERE run_id = ?", (run.run_id,))
    asyncio.get_running_loop().call_later(0.6, blocker.execute, "COMMIT")
    await manager.update_run_completion(run.run_id, status="success", total_tokens=9)
    blocker.close()

    row = await store.get(run.run_id)
    assert row is not None
    assert row["status"] == "success" and row["total_tokens"] == 9
    await store.aclose()
    await engine.dispose()


async def test_a_final_write_held_off_past_the_retry_budget_lands_in_the_background(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "locked.db"
    engine = create_engine(f"sqlite+aiosqlite:///{path}", sqlite_busy_timeout_ms=10)
    store = SQLRunStore(engine)
    await store.setup()
    manager = RunManager(
        store=store,
        persistence_retry_policy=PersistenceRetryPolicy(max_attempts=2, initial_delay=0),
        final_write_retry_policy=BackgroundRetryPolicy(initial_delay=0.01, max_delay=0.05),
    )
    run = await manager.create("t1")
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    with caplog.at_level(logging.WARNING, logger="langgraph_runstore.manager"):
        await manager.set_status(run.run_id, RunStatus.error, error="E: boom")
    assert run.status is RunStatus.error  # the live record keeps the truth
    assert run.durable is False  # and says the store does not hold it yet
    assert run.run_id in caplog.text and "not yet durable" in caplog.text
    blocker.execute("ROLLBACK")
    blocker.close()
    for _ in range(200):  # the background retry lands it once the lock is gone
        if run.durable:
            break
        await asyncio.sleep(0.01)
    row = await store.get(run.run_id)
    assert run.durable and row is not None and row["status"] == "error"
    assert row["error"] == "E: boom"
    await manager.aclose()
    await store.aclose()
    await engine.dispose()


async def test_reconcile_leaves_shared_queue_runs_waiting(store: RunStore) -> None:
    await store.put("queued", thread_id="t1", status="pending", shared_queue=True)
    await store.put("stale", thread_id="t2", status="pending")
    recovered = await RunManager(store=store).reconcile_orphaned_inflight_runs()
    assert [r.run_id for r in recovered] == ["stale"]
    queued = await store.get("queued")
    assert queued is not None and queued["status"] == "pending"
