"""``user_id=`` scoping of cancel, join, thread_status, has_inflight, run_checkpoints and
top_runs (async, sync twin and CLI) on memory, SQLite and PostgreSQL: a run of another user
reads as missing, and nothing of it is written."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
import pytest_asyncio
from langgraph.checkpoint.memory import InMemorySaver

from langgraph_runstore import (
    MemoryRunStore,
    RunManager,
    RunNotFoundError,
    RunRecord,
    RunStatus,
    RunStore,
    SQLRunStore,
    SyncRunManager,
    ThreadStatus,
)
from tests.backends import PG_BACKENDS
from tests.cli.helpers import query, run_cli, run_many
from tests.graphs import listed_model, reply, single_node_graph, slow_graph, two_model_graph

pytestmark = pytest.mark.asyncio


def hi(text: str = "hello") -> dict[str, Any]:
    return {"messages": [("user", text)]}


@dataclass
class Env:
    store: RunStore
    manager: RunManager  # runs the graphs
    other: RunManager  # a second manager on the same store: it sees runs as store rows
    checkpointer: Any


@pytest_asyncio.fixture
async def env(store: RunStore) -> AsyncIterator[Env]:
    checkpointer = store.checkpointer if isinstance(store, SQLRunStore) else InMemorySaver()
    manager, other = RunManager(store=store), RunManager(store=store)
    yield Env(store, manager, other, checkpointer)
    await manager.aclose()
    await other.aclose()


async def start_slow(env: Env, thread_id: str, user_id: str | None) -> RunRecord:
    started = asyncio.Event()
    graph = slow_graph(started, seconds=30).compile(checkpointer=env.checkpointer)
    run = await env.manager.start(graph, hi(), thread_id=thread_id, user_id=user_id)
    await asyncio.wait_for(started.wait(), 10)
    return run


def counted_graph(env: Env, answers: int = 1, tokens: int = 10) -> Any:
    first = listed_model(*(reply("a", input_tokens=tokens) for _ in range(answers)))
    second = listed_model(*(reply("b", input_tokens=tokens) for _ in range(answers)))
    return two_model_graph(first, second).compile(checkpointer=env.checkpointer)


async def not_found_message(call: Any) -> str:
    with pytest.raises(RunNotFoundError) as raised:
        await asyncio.wait_for(call, 5)
    return raised.value.message


async def test_cancel_of_another_users_run_is_not_found_and_writes_nothing(env: Env) -> None:
    run = await start_slow(env, "t1", "alice")
    pending = await env.manager.create("t2", user_id="alice")
    nobody = await env.manager.create("t3")
    rows = {r.run_id: await env.store.get(r.run_id) for r in (run, pending, nobody)}
    unknown = await not_found_message(env.manager.cancel("no-such-run", user_id="bob"))
    assert unknown == "no run with run_id 'no-such-run'"
    for manager in (env.manager, env.other):  # the live record, and the store's row
        for target in (run, pending, nobody):
            for action in ("interrupt", "rollback"):
                message = await not_found_message(
                    manager.cancel(target.run_id, action=action, user_id="bob")
                )
                # the same answer as for a run that does not exist
                assert message == unknown.replace("no-such-run", target.run_id)
    assert run.status is RunStatus.running and not run.abort_requested
    assert run.task is not None and not run.task.done()
    assert pending.status is RunStatus.pending
    for run_id, before in rows.items():
        assert await env.store.get(run_id) == before  # not even a cancel request
    assert await env.manager.cancel(run.run_id, user_id="alice") is True
    assert await env.other.cancel(pending.run_id, user_id="alice") is True
    assert run.status is RunStatus.interrupted
    stored = await env.store.get(pending.run_id)
    assert stored is not None and stored["status"] == "interrupted"


async def test_join_of_another_users_run_is_not_found(env: Env) -> None:
    running = await start_slow(env, "t1", "alice")
    for manager in (env.manager, env.other):
        # answered at once, not after the run ends
        await not_found_message(manager.join(running.run_id, user_id="bob"))
    await env.manager.cancel(running.run_id)
    done = await env.manager.wait(counted_graph(env), hi(), thread_id="t2", user_id="alice")
    assert done.status is RunStatus.success
    no_user = await env.manager.wait(counted_graph(env), hi(), thread_id="t3")
    for manager in (env.manager, env.other):
        for run in (running, done, no_user):
            await not_found_message(manager.join(run.run_id, user_id="bob"))
        joined = await manager.join(done.run_id, user_id="alice")
        assert joined.run_id == done.run_id and joined.status is RunStatus.success
        assert (await manager.join(no_user.run_id)).status is RunStatus.success


async def test_thread_status_and_has_inflight_count_the_users_runs_only(env: Env) -> None:
    run = await start_slow(env, "shared", "alice")
    for manager in (env.manager, env.other):
        assert await manager.has_inflight("shared")
        assert await manager.has_inflight("shared", user_id="alice")
        assert not await manager.has_inflight("shared", user_id="bob")
        assert await manager.thread_status("shared") is ThreadStatus.busy
        assert await manager.thread_status("shared", user_id="alice") is ThreadStatus.busy
        assert await manager.thread_status("shared", user_id="bob") is ThreadStatus.idle
    await env.manager.cancel(run.run_id)

    def fail(state: Any) -> Any:
        raise ValueError("bob's tool failed")

    failing = single_node_graph(fail).compile(checkpointer=env.checkpointer)
    failed = await env.manager.wait(failing, hi(), thread_id="shared", user_id="bob")
    assert failed.status is RunStatus.error
    for manager in (env.manager, env.other):
        assert await manager.thread_status("shared") is ThreadStatus.error
        assert await manager.thread_status("shared", user_id="bob") is ThreadStatus.error
        # alice's last run on the thread was cancelled: nothing failed for her
        assert await manager.thread_status("shared", user_id="alice") is ThreadStatus.idle
        assert await manager.thread_status("shared", user_id="carol") is ThreadStatus.idle
        assert not await manager.has_inflight("shared", user_id="alice")


async def test_top_runs_of_one_user(env: Env) -> None:
    alice = await env.manager.wait(
        counted_graph(env, tokens=100), hi(), thread_id="a", user_id="alice"
    )
    bob = await env.manager.wait(counted_graph(env, tokens=500), hi(), thread_id="b", user_id="bob")
    nobody = await env.manager.wait(counted_graph(env, tokens=900), hi(), thread_id="c")
    for manager in (env.manager, env.other):
        for by in ("tokens", "duration"):
            assert [r.run_id for r in await manager.top_runs(by=by, user_id="alice")] == [
                alice.run_id
            ]
            assert [r.run_id for r in await manager.top_runs(by=by, user_id="bob")] == [bob.run_id]
            assert await manager.top_runs(by=by, user_id="carol") == []
        everyone = [r.run_id for r in await manager.top_runs(by="tokens")]
        assert everyone == [nobody.run_id, bob.run_id, alice.run_id]
    rows = await env.store.top_runs(by="tokens", user_id="bob")
    assert [row["run_id"] for row in rows] == [bob.run_id]


async def test_top_runs_of_one_user_without_a_store() -> None:
    manager = RunManager()
    for user, tokens in (("alice", 10), ("bob", 20)):
        run = await manager.create("t", user_id=user)
        await manager.update_run_completion(
            run.run_id, status="success", total_tokens=tokens, llm_call_count=1
        )
    assert [r.user_id for r in await manager.top_runs(by="tokens", user_id="alice")] == ["alice"]
    assert [r.user_id for r in await manager.top_runs(by="tokens")] == ["bob", "alice"]


async def test_run_checkpoints_of_another_users_run_are_empty(db_url: str) -> None:
    async with SQLRunStore.from_url(db_url) as store:
        manager, other = RunManager(store=store), RunManager(store=store)
        graph = two_model_graph(listed_model(reply("a")), listed_model(reply("b"))).compile(
            checkpointer=store.checkpointer
        )
        run = await manager.wait(graph, hi(), thread_id="t1", user_id="alice")
        for reader in (manager, other):
            everything = await reader.run_checkpoints(run.run_id)
            assert everything  # the run wrote some
            assert await reader.run_checkpoints(run.run_id, user_id="alice") == everything
            assert await reader.run_checkpoints(run.run_id, user_id="bob") == []
            assert await reader.run_checkpoints("no-such-run", user_id="bob") == []
        await manager.aclose()
        await other.aclose()


@pytest.fixture(params=["memory", "sqlite", *PG_BACKENDS])
def sync_manager_url(request: pytest.FixtureRequest, tmp_path: Any) -> str | None:
    if request.param == "memory":
        return None
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'runs.db'}"
    return str(request.getfixturevalue("pg_url"))


def _sync_checks(manager: SyncRunManager) -> None:
    store = manager.store
    checkpointer = store.checkpointer if isinstance(store, SQLRunStore) else InMemorySaver()
    model = listed_model(reply("one"), reply("two"))
    graph = two_model_graph(model, model, sync=True).compile(checkpointer=checkpointer)
    done = manager.invoke(graph, hi(), thread_id="t1", user_id="alice")
    assert done.status is RunStatus.success
    pending = manager.create("t2", user_id="alice")
    with pytest.raises(RunNotFoundError):
        manager.join(done.run_id, user_id="bob")
    for action in ("interrupt", "rollback"):
        with pytest.raises(RunNotFoundError):
            manager.cancel(pending.run_id, action=action, user_id="bob")
    assert manager.get(pending.run_id) is not None
    assert manager.get(pending.run_id).status is RunStatus.pending  # type: ignore[union-attr]
    assert manager.has_inflight("t2", user_id="alice")
    assert not manager.has_inflight("t2", user_id="bob")
    assert manager.thread_status("t2", user_id="bob") is ThreadStatus.idle
    assert manager.thread_status("t2", user_id="alice") is ThreadStatus.busy
    assert manager.join(done.run_id, user_id="alice").status is RunStatus.success
    assert [r.run_id for r in manager.top_runs(by="tokens", user_id="alice")] == [done.run_id]
    assert manager.top_runs(by="tokens", user_id="bob") == []
    assert manager.run_checkpoints(done.run_id, user_id="bob") == []
    if isinstance(store, SQLRunStore):
        assert manager.run_checkpoints(done.run_id, user_id="alice")
    assert manager.cancel(pending.run_id, user_id="alice") is True


def test_sync_twin_scopes_by_user(sync_manager_url: str | None) -> None:
    if sync_manager_url is None:
        with SyncRunManager(MemoryRunStore()) as manager:
            _sync_checks(manager)
        return
    with SyncRunManager.from_url(sync_manager_url) as manager:
        _sync_checks(manager)


# -- the command line ---------------------------------------------------------------------------


async def _seed_cli(url: str) -> None:
    async with SQLRunStore.from_url(url) as store:
        await store.put(
            "r-alice", thread_id="shared", user_id="alice", status="pending", total_tokens=0
        )
        await store.put(
            "r-bob",
            thread_id="shared",
            user_id="bob",
            status="success",
            created_at="2020-01-01T00:00:00+00:00",
            total_tokens=42,
        )


def test_cli_user_option_on_show_cancel_and_threads(db_url: str) -> None:
    asyncio.run(_seed_cli(db_url))
    before = query(db_url, "SELECT * FROM runs ORDER BY run_id")
    results = run_many(
        {
            "show-bob": ("runs", "show", "r-alice", "--user", "bob", "--db", db_url),
            "show-alice": ("runs", "show", "r-alice", "--user", "alice", "--json", "--db", db_url),
            "cancel-bob": ("runs", "cancel", "r-alice", "--user", "bob", "--db", db_url),
            "thread-bob": ("threads", "show", "shared", "--user", "bob", "--json", "--db", db_url),
            "thread-all": ("threads", "show", "shared", "--json", "--db", db_url),
            "thread-carol": ("threads", "show", "shared", "--user", "carol", "--db", db_url),
        }
    )
    for name in ("show-bob", "cancel-bob"):
        assert results[name].code == 1
        assert results[name].error_line == "error: no run with id 'r-alice'"
    assert query(db_url, "SELECT * FROM runs ORDER BY run_id") == before  # nothing written
    assert results["show-alice"].code == 0
    assert json.loads(results["show-alice"].out)["run"]["user_id"] == "alice"
    bob_view = json.loads(results["thread-bob"].out)
    assert bob_view["status"] == "idle"
    assert [r["run_id"] for r in bob_view["runs"]] == ["r-bob"]
    assert bob_view["totals"]["runs"] == 1
    everyone = json.loads(results["thread-all"].out)
    assert everyone["status"] == "busy" and len(everyone["runs"]) == 2
    assert results["thread-carol"].code == 1
    assert results["thread-carol"].error_line == "error: no runs of user 'carol' on thread 'shared'"
    cancelled = run_cli("runs", "cancel", "r-alice", "--user", "alice", "--db", db_url)
    assert cancelled.code == 0, cancelled.err
    assert query(db_url, "SELECT status FROM runs WHERE run_id = 'r-alice'") == [
        {"status": "interrupted"}
    ]
