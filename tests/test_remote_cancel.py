"""A cancel from another process reaches a run that a plain RunManager (not a worker)
executes on a SQL store: its graph stops within the poll interval, the run ends
``interrupted`` with the tokens it spent, ``join()`` and the database agree, and the CLI
says what happened. A process that does not answer is taken over, and its late completion
cannot undo the cancel but still writes its tokens."""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path

import pytest

from langgraph_runstore import RunManager, RunStatus, SQLRunStore
from langgraph_runstore import remote as remote_module
from tests.graphs import blocked_graph

pytestmark = pytest.mark.asyncio

POLL = 0.2


def tracebacks(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]


async def test_a_second_manager_cancels_a_plain_managers_run(
    db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    started, release = asyncio.Event(), asyncio.Event()
    async with (
        SQLRunStore.from_url(db_url) as owner_store,
        SQLRunStore.from_url(db_url) as other_store,
    ):
        owner = RunManager(store=owner_store, poll_interval=POLL)
        other = RunManager(store=other_store)
        run = await owner.start(blocked_graph(started, release), {"messages": []}, thread_id="t1")
        await asyncio.wait_for(started.wait(), 10)
        loop = asyncio.get_running_loop()
        asked = loop.time()
        assert await other.cancel(run.run_id) is True
        joined = await asyncio.wait_for(owner.join(run.run_id), 10)
        assert run.task is None or run.task.done()
        stopped_after = loop.time() - asked
        assert stopped_after < POLL + 1.0  # the poll interval, plus the cancel itself
        assert joined.status is RunStatus.interrupted and joined.stop_reason == "cancelled"
        row = await owner_store.get(run.run_id)
        assert row is not None
        assert (row["status"], row["stop_reason"]) == ("interrupted", "cancelled")
        assert row["total_tokens"] == joined.total_tokens == 15
        assert not tracebacks(caplog)
        await other.aclose()
        await owner.aclose()


async def test_an_owner_that_does_not_answer_is_taken_over_and_keeps_its_tokens(
    db_url: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(remote_module, "CANCEL_HANDOFF_SECONDS", 0.3)
    started, release = asyncio.Event(), asyncio.Event()
    async with (
        SQLRunStore.from_url(db_url) as owner_store,
        SQLRunStore.from_url(db_url) as other_store,
    ):
        owner = RunManager(store=owner_store, poll_interval=3600)  # it never looks
        other = RunManager(store=other_store)
        run = await owner.start(blocked_graph(started, release), {"messages": []}, thread_id="t1")
        await asyncio.wait_for(started.wait(), 10)
        assert await other.cancel(run.run_id) is True  # ended there, after the handoff wait
        row = await other_store.get(run.run_id)
        assert row is not None and row["status"] == "interrupted"
        release.set()  # the owner completes later: its end is refused, its tokens kept
        joined = await asyncio.wait_for(owner.join(run.run_id), 10)
        assert joined.status is RunStatus.interrupted and joined.stop_reason == "cancelled"
        row = await owner_store.get(run.run_id)
        assert row is not None
        assert (row["status"], row["stop_reason"]) == ("interrupted", "cancelled")
        assert row["total_tokens"] == 15 and row["llm_call_count"] == 1
        assert not tracebacks(caplog)
        await other.aclose()
        await owner.aclose()


async def test_the_cli_cancels_a_run_another_process_executes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'runs.db'}"
    started, release = asyncio.Event(), asyncio.Event()
    async with SQLRunStore.from_url(url) as store:
        owner = RunManager(store=store, poll_interval=POLL)
        run = await owner.start(blocked_graph(started, release), {"messages": []}, thread_id="t1")
        await asyncio.wait_for(started.wait(), 10)
        cli = Path(sys.executable).parent / "langgraph-runstore"
        process = await asyncio.create_subprocess_exec(
            str(cli),
            "runs",
            "cancel",
            run.run_id,
            "--db",
            url,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(), 60)
        assert process.returncode == 0, err.decode()
        text = out.decode()
        assert f"cancelled run {run.run_id}: interrupted (cancelled)" in text
        joined = await asyncio.wait_for(owner.join(run.run_id), 10)
        assert joined.status is RunStatus.interrupted and joined.total_tokens == 15
        if run.task is not None:  # the graph stopped, though nothing released it
            await asyncio.wait_for(asyncio.wait([run.task]), 5)
        assert not release.is_set()
        row = await store.get(run.run_id)
        assert row is not None and row["total_tokens"] == 15
        assert not tracebacks(caplog)
        await owner.aclose()
