"""Misusing the async API from sync code gets an error that names the fix: ``await`` in
async code, SyncRunManager in code with no event loop. Proper use is unchanged."""

from __future__ import annotations

import asyncio
import gc
import inspect
import warnings

import pytest

from langgraph_runstore import RunManager, RunStatus
from langgraph_runstore.awaitable import NotAwaitedError


def test_using_an_unawaited_call_as_its_result_names_sync_run_manager() -> None:
    manager = RunManager()
    with pytest.raises(AttributeError, match=r"RunManager\.get\(\) is a coroutine.*SyncRunManager"):
        manager.get("r1").status  # noqa: B018 - the misuse under test
    with pytest.raises(TypeError, match=r"has_inflight\(\).*SyncRunManager"):
        bool(manager.has_inflight("t1"))
    with pytest.raises(NotAwaitedError, match=r"list_by_thread\(\)"):
        list(manager.list_by_thread("t1"))  # type: ignore[call-overload]


def test_a_call_never_awaited_warns_with_the_same_advice() -> None:
    manager = RunManager()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        manager.create("t1")
        gc.collect()
    messages = [str(w.message) for w in caught if w.category is RuntimeWarning]
    assert len(messages) == 1  # ours only: Python's own "never awaited" is silenced
    assert "RunManager.create() is a coroutine" in messages[0]
    assert "SyncRunManager" in messages[0]


def test_the_calls_stay_coroutines_for_asyncio() -> None:
    manager = RunManager()
    assert inspect.iscoroutinefunction(manager.get) or asyncio.iscoroutinefunction(manager.get)

    async def main() -> None:
        record = await manager.create("t1")
        task = asyncio.create_task(manager.get(record.run_id))
        assert "RunManager.get" in repr(task) or "get" in repr(task)
        fetched, inflight = await asyncio.gather(task, manager.has_inflight("t1"))
        assert fetched is record and inflight
        await manager.set_status(record.run_id, RunStatus.success)
        assert not await manager.has_inflight("t1")

    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        asyncio.run(main())
        gc.collect()
