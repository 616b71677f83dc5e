"""RunLifecycle on its own, on every backend: the store's answer to each status write is
what the live record holds afterwards, and a write the store refuses leaves the record
showing the store's row, with a warning and no traceback."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from langgraph_runstore import (
    InvalidInputError,
    MemoryRunStore,
    PersistenceRetryPolicy,
    RunManager,
    RunRecord,
    RunStatus,
    RunStore,
)
from langgraph_runstore.lifecycle import RunLifecycle
from langgraph_runstore.store import StatusWrite
from langgraph_runstore.store.base import STATUS_FIELDS

pytestmark = pytest.mark.asyncio

FIXED = "2000-01-01T00:00:00+00:00"  # the lifecycle's clock: the store stamps real times


def lifecycle_on(store: RunStore | None) -> RunLifecycle:
    return RunLifecycle(
        store,
        retry_policy=PersistenceRetryPolicy(max_attempts=2, initial_delay=0),
        retain_finished_for=60,
        clock=lambda: FIXED,
        log=logging.getLogger("tests.lifecycle"),
    )


async def new_run(lifecycle: RunLifecycle, run_id: str = "r1") -> RunRecord:
    record = RunRecord(run_id=run_id, thread_id="t1", created_at=FIXED, updated_at=FIXED)
    lifecycle.hold(record)
    await lifecycle.persist_new(record)
    return record


ANSWER_FIELDS = ("thread_id", *STATUS_FIELDS)


def status_fields(record: RunRecord) -> dict[str, Any]:
    values = {name: getattr(record, name) for name in ANSWER_FIELDS}
    values["status"] = record.status.value
    return values


async def stored_status_fields(store: RunStore, run_id: str) -> dict[str, Any]:
    row = await store.get(run_id)
    assert row is not None
    return {name: row[name] for name in ANSWER_FIELDS}


async def test_each_write_leaves_the_record_equal_to_the_stored_row(store: RunStore) -> None:
    lifecycle = lifecycle_on(store)
    record = await new_run(lifecycle)

    await lifecycle.mark_running(record)
    assert record.started_at != FIXED  # the store's stamp, not the lifecycle's clock
    assert status_fields(record) == await stored_status_fields(store, "r1")

    await lifecycle.flush_progress(record, total_tokens=5)
    assert status_fields(record) == await stored_status_fields(store, "r1")

    assert await lifecycle.finish(record, RunStatus.success, total_tokens=7)
    assert status_fields(record) == await stored_status_fields(store, "r1")
    assert "r1" not in lifecycle.live


async def test_a_final_write_the_store_refuses_adopts_the_stored_end(
    store: RunStore, caplog: pytest.LogCaptureFixture
) -> None:
    lifecycle = lifecycle_on(store)
    record = await new_run(lifecycle)
    await lifecycle.mark_running(record)
    # another process ends the run first (a peer's cancel, an orphan recovery)
    await store.update_run_completion(
        "r1", status="error", error="recovered elsewhere", stop_reason="orphan_recovered"
    )

    with caplog.at_level(logging.WARNING, logger="tests.lifecycle"):
        await lifecycle.finish(record, RunStatus.success, total_tokens=7)

    assert record.status is RunStatus.error
    assert record.error == "recovered elsewhere"
    assert record.stop_reason == "orphan_recovered"
    assert status_fields(record) == await stored_status_fields(store, "r1")
    assert "refused success" in caplog.text
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert "r1" not in lifecycle.live


async def test_a_start_the_store_refuses_asks_the_running_task_to_stop(store: RunStore) -> None:
    lifecycle = lifecycle_on(store)
    record = await new_run(lifecycle)
    record.task = asyncio.get_running_loop().create_future()  # type: ignore[assignment]
    await store.update_status("r1", "interrupted")

    await lifecycle.mark_running(record)

    assert record.status is RunStatus.interrupted
    assert record.abort_requested
    assert not await lifecycle.finish(record, RunStatus.success)  # it has ended already
    assert (await stored_status_fields(store, "r1"))["status"] == "interrupted"


async def test_a_missing_row_is_recreated_from_the_record(store: RunStore) -> None:
    lifecycle = lifecycle_on(store)
    record = await new_run(lifecycle)
    await store.delete("r1")

    await lifecycle.mark_running(record)
    assert (await stored_status_fields(store, "r1"))["status"] == "running"

    await store.delete("r1")
    assert await lifecycle.finish(record, RunStatus.success, total_tokens=3)
    row = await store.get("r1")
    assert row is not None and row["status"] == "success" and row["total_tokens"] == 3


async def test_write_status_answers_applied_refused_and_missing(store: RunStore) -> None:
    await store.put("r1", thread_id="t1", status="pending", created_at=FIXED)

    started = await store.write_status("r1", "running")
    assert started.applied and started.stored is not None
    assert dict(started.stored) == await stored_status_fields(store, "r1")

    ended = await store.write_status(
        "r1", "success", fields={"total_tokens": 4, "stop_reason": "done"}
    )
    assert ended.applied and ended.stored is not None
    assert ended.stored["stop_reason"] == "done"
    assert ended.stored["ended_at"] is not None

    refused = await store.write_status("r1", "error", error="late")
    assert refused == StatusWrite(applied=False, stored=ended.stored)
    assert (await store.get("r1") or {})["error"] is None  # nothing half-written

    assert await store.write_status("ghost", "running") == StatusWrite(False, None)


class OnlyTheAbstractMethods(MemoryRunStore):
    """A third-party store that knows nothing of write_status: the default composes
    update_status/update_run_completion with get."""

    write_status = RunStore.write_status


async def test_a_store_without_write_status_gets_the_default() -> None:
    store = OnlyTheAbstractMethods()
    lifecycle = lifecycle_on(store)
    record = await new_run(lifecycle)
    await lifecycle.mark_running(record)
    await store.update_status("r1", "interrupted")
    await lifecycle.finish(record, RunStatus.success)
    assert record.status is RunStatus.interrupted
    assert status_fields(record) == await stored_status_fields(store, "r1")


async def test_join_agrees_with_the_database_after_a_refused_end(db_url: str) -> None:
    async with RunManager.from_url(db_url) as manager:
        record = await manager.create("t1")
        await manager.set_status(record.run_id, RunStatus.running)
        await manager.store.update_status(record.run_id, "error", error="ended by a peer")
        await manager.update_run_completion(record.run_id, status="success", total_tokens=9)
        live = await manager.get(record.run_id)
        row = await manager.store.get(record.run_id)
        assert live is not None and row is not None
        assert (
            (live.status.value, live.error)
            == (row["status"], row["error"])
            == (
                "error",
                "ended by a peer",
            )
        )


async def test_without_a_store_the_record_is_the_truth() -> None:
    lifecycle = lifecycle_on(None)
    record = await new_run(lifecycle)
    await lifecycle.mark_running(record)
    assert record.started_at == FIXED
    assert await lifecycle.finish(record, RunStatus.success)
    assert record.ended_at == FIXED


async def test_creating_a_run_with_a_stored_run_id_is_refused_and_writes_nothing(
    store: RunStore,
) -> None:
    await store.put("taken", thread_id="other", status="success", total_tokens=11)
    manager = RunManager(store)
    with pytest.raises(InvalidInputError, match="'taken' already names a run"):
        await manager.create("t1", run_id="taken")
    row = await store.get("taken")
    assert row is not None and (row["thread_id"], row["total_tokens"]) == ("other", 11)
    held = await manager.get("taken")
    assert held is not None and held.store_only  # the stored run, not a half-made new one
