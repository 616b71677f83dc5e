"""The journal's commands and the new listing options, as real processes on SQLite and
PostgreSQL: ``runs events`` (replayed and followed while another process runs the run),
``runs watch``, ``threads list``, run ids by unique prefix, ``--assistant``/``--model``/
``--metadata``, and ``prune --vacuum``."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from langgraph_runstore import RunManager, SQLRunStore
from langgraph_runstore.schemas import now_iso
from tests.cli.helpers import SCRIPT, ago, pg_base, pg_database, run_cli
from tests.journal_graphs import AGENT_EVENTS, agent_graph

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
REPO = Path(__file__).resolve().parents[2]
INPUT = {"messages": [("user", "what is 1 + 2?")]}


@pytest.fixture(params=BACKENDS)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'runs.db'}"
        return
    if pg_base() is None:
        pytest.skip("no PostgreSQL server (RUNSTORE_TEST_PG_URL)")
    with pg_database() as found:
        yield found


async def _seed(url: str) -> str:
    """An agent run (thread t-agent, assistant helper, metadata tier=gold), and rows for
    threads in every status; returns the agent run's id."""
    async with SQLRunStore.from_url(url) as store, RunManager(store) as manager:
        run = await manager.wait(
            agent_graph(store.checkpointer),
            INPUT,
            thread_id="t-agent",
            assistant_id="helper",
            metadata={"tier": "gold", "n": 3},
        )
        put = store.put
        await put("abcd-1111", thread_id="t-busy", status="running", created_at=ago(0.01))
        await put("abcd-2222", thread_id="t-err", status="error", created_at=ago(0.02))
        await put(
            "r-paused",
            thread_id="t-hitl",
            status="success",
            stop_reason="interrupt",
            created_at=ago(0.03),
            user_id="u1",
        )
        await store.append_events("abcd-1111", [(1, now_iso(), "node_started", {"node": "think"})])
        return run.run_id


def seed(url: str) -> str:
    return asyncio.run(_seed(url))


def ok(result: Any) -> Any:
    assert result.code == 0, (result.out, result.err)
    return result


def test_runs_events_replays_a_run_and_takes_a_unique_prefix(url: str) -> None:
    run_id = seed(url)
    listed = ok(run_cli("runs", "events", run_id[:8], "--db", url)).out.splitlines()
    assert [line.split()[3] for line in listed] == [kind for kind, _ in AGENT_EVENTS]
    assert "planner in node call: 16 tokens (12 in, 4 out)" in listed[6]
    assert "success: 42 tokens, 2 LLM call(s)" in listed[-1]
    lines = ok(run_cli("runs", "events", run_id, "--json", "--after", "14", "--db", url)).out
    events = [json.loads(line) for line in lines.splitlines()]
    assert [e["seq"] for e in events] == [15, 16]
    assert events[-1]["id"] == f"{run_id}:16" and events[-1]["data"]["status"] == "success"
    shown = ok(run_cli("runs", "show", run_id[:6], "--db", url)).out
    assert run_id in shown
    ambiguous = run_cli("runs", "events", "abcd", "--db", url)
    assert ambiguous.code == 1
    assert ambiguous.error_line == (
        "error: run id prefix 'abcd' is ambiguous: abcd-1111, abcd-2222 start with it; "
        "give more of the id"
    )
    short = run_cli("runs", "show", "abc", "--db", url)
    assert short.code == 1 and "needs at least 4 characters" in short.error_line
    unknown = run_cli("runs", "events", "zzzz-none", "--db", url)
    assert unknown.code == 1 and unknown.error_line == "error: no run with id 'zzzz-none'"
    cancel = run_cli("runs", "cancel", "abcd-1", "--db", url)
    assert cancel.code == 0 and "abcd-1111" in cancel.out


def test_runs_events_follows_a_run_of_another_process(url: str) -> None:
    asyncio.run(_seed(url))
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.journal_process", url, "followed"],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    follower = None
    try:
        assert child.stdout is not None and child.stdin is not None
        run_id = child.stdout.readline().strip()
        follower = subprocess.Popen(
            [str(SCRIPT), "runs", "events", run_id, "--follow", "--poll", "0.05", "--db", url],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "COLUMNS": "200"},
        )
        assert follower.stdout is not None
        seen = []
        for line in follower.stdout:  # live: the gate is open only once the follower saw it
            seen.append(line.split()[3])
            if "node_started" in line and line.rstrip().endswith("gate"):
                child.stdin.write("go\n")
                child.stdin.flush()
        assert follower.wait(30) == 0, follower.stderr.read() if follower.stderr else ""
        assert seen[-1] == "run_ended" and seen.count("node_started") == 3
        assert child.wait(30) == 0
    finally:
        for proc in (child, follower):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait(10)


def test_threads_list_shows_each_threads_status_and_totals(url: str) -> None:
    seed(url)
    found = json.loads(ok(run_cli("threads", "list", "--json", "--db", url)).out)["threads"]
    by_thread = {row["thread_id"]: row for row in found}
    assert {name: row["thread_status"] for name, row in by_thread.items()} == {
        "t-agent": "idle",
        "t-busy": "busy",
        "t-err": "error",
        "t-hitl": "interrupted",
    }
    agent = by_thread["t-agent"]
    assert (agent["runs"], agent["total_tokens"], agent["llm_calls"]) == (1, 42, 2)
    assert found[0]["thread_id"] == "t-agent"  # newest run first
    table = ok(run_cli("threads", "list", "--status", "busy", "--status", "error", "--db", url))
    assert table.out.splitlines()[0].split()[:3] == ["THREAD", "STATUS", "RUNS"]
    assert sorted(line.split()[0] for line in table.out.splitlines()[1:]) == ["t-busy", "t-err"]
    mine = json.loads(ok(run_cli("threads", "list", "--user", "u1", "--json", "--db", url)).out)
    assert [row["thread_id"] for row in mine["threads"]] == ["t-hitl"]


def test_listing_filters_and_runs_watch(url: str) -> None:
    run_id = seed(url)

    def listed(*options: str) -> list[str]:
        out = ok(run_cli("runs", "list", "--json", *options, "--db", url)).out
        return [run["run_id"] for run in json.loads(out)["runs"]]

    assert listed("--assistant", "helper") == [run_id]
    assert listed("--model", "writer") == [run_id]
    assert listed("--metadata", "tier=gold", "--metadata", "n=3") == [run_id]
    assert listed("--metadata", 'n="3"') == []
    assert listed("--assistant", "nobody") == []
    usage = json.loads(
        ok(run_cli("usage", "--by", "thread", "--metadata", "tier=gold", "--json", "--db", url)).out
    )
    assert [(g["key"], g["total_tokens"]) for g in usage["groups"]] == [("t-agent", 42)]
    bad = run_cli("runs", "list", "--metadata", "tier", "--db", url)
    assert bad.code == 2 and "'tier' is not KEY=VALUE" in bad.error_line
    watch = ok(run_cli("runs", "watch", "--once", "--db", url)).out
    assert "abcd-1111" in watch and "node_started: think" in watch and run_id not in watch
    snapshot = json.loads(ok(run_cli("runs", "watch", "--json", "--db", url)).out)
    assert [entry["run"]["run_id"] for entry in snapshot["runs"]] == ["abcd-1111"]
    assert snapshot["runs"][0]["last_event"]["kind"] == "node_started"


async def _many_old_runs(url: str, count: int) -> None:
    async with SQLRunStore.from_url(url) as store:
        text = "x" * 2000
        for i in range(count):
            await store.put(
                f"old-{i}",
                thread_id="t",
                status="success",
                created_at=ago(40),
                last_ai_message=text,
            )
            await store.append_events(f"old-{i}", [(1, now_iso(), "progress", {"text": text})])


def test_prune_vacuum_gives_the_space_back(url: str) -> None:
    asyncio.run(_many_old_runs(url, 300))
    result = ok(run_cli("prune", "--older-than", "30d", "--yes", "--vacuum", "--db", url))
    lines = result.out.splitlines()
    assert lines[0].startswith("deleted 300 runs and their checkpoints")
    if url.startswith("sqlite"):
        assert lines[1].startswith("vacuum: ") and " on disk, " in lines[1]
        again = json.loads(
            ok(run_cli("prune", "--older-than", "30d", "--vacuum", "--json", "--db", url)).out
        )
        assert again["runs"] == 0 and again["vacuum"]["freed"] == 0
        path = Path(url.split("///", 1)[1])
        assert again["vacuum"]["after"] == path.stat().st_size  # the log is checkpointed away
    else:
        assert lines[1] == (
            "vacuum: PostgreSQL reuses the space of deleted rows itself (autovacuum); "
            "--vacuum compacts SQLite files only"
        )


def test_prune_vacuum_measures_what_it_freed(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'big.db'}"
    asyncio.run(_many_old_runs(url, 400))
    data = json.loads(
        ok(run_cli("prune", "--older-than", "30d", "--yes", "--vacuum", "--json", "--db", url)).out
    )
    freed = data["vacuum"]
    assert data["runs"] == 400
    assert freed["freed"] == freed["before"] - freed["after"] > 400 * 2000  # texts and events
