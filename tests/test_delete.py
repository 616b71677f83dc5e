"""``manager.delete(run_id)``, ``SyncRunManager.delete`` and ``langgraph-runstore runs
delete``: one finished run goes, with the checkpoints it wrote unless
``keep_checkpoints=True``; the thread's other runs and its latest state stay. Active runs
are refused (ActiveRunError), unknown runs and other users' runs are not found, and
nothing is deleted then. Run on every store and every checkpointer: the package's
SQLAlchemySaver (SQLite, PostgreSQL) and the stock InMemorySaver, AsyncSqliteSaver and
AsyncPostgresSaver, whose checkpoints the store cannot see."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from langchain_core.messages import AIMessage
from langgraph.checkpoint.memory import InMemorySaver

from langgraph_runstore import (
    ActiveRunError,
    ConflictError,
    InvalidInputError,
    MemoryRunStore,
    RunManager,
    RunNotFoundError,
    RunStatus,
    SQLAlchemySaver,
    SQLRunStore,
    SyncRunManager,
)
from tests.backends import PG_BACKENDS, libpq_url
from tests.cli.helpers import run_cli
from tests.graphs import State, blocked_graph, single_node_graph

pytestmark = pytest.mark.asyncio

THREAD = {"configurable": {"thread_id": "t1"}}

SETUPS = [
    "no-store+memory",
    "memory+memory",
    "sqlite+stock-sqlite",
    pytest.param("postgres+stock-postgres", marks=pytest.mark.postgres),
    "sqlite+runstore",
    pytest.param("postgres+runstore", marks=pytest.mark.postgres),
    pytest.param("postgres-psycopg+runstore", marks=pytest.mark.postgres),
]


@dataclass
class Env:
    name: str
    manager: RunManager
    checkpointer: Any

    @property
    def store_owns_checkpoints(self) -> bool:
        return self.name.endswith("+runstore")


@pytest_asyncio.fixture(params=SETUPS)
async def env(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Env]:
    """A run store (none, memory, SQLite, PostgreSQL) and the checkpointer the graphs use."""
    name = request.param
    store_kind, saver_kind = name.split("+")
    if store_kind in ("no-store", "memory"):
        store = MemoryRunStore() if store_kind == "memory" else None
        async with RunManager(store) as manager:
            yield Env(name, manager, InMemorySaver())
        return
    url = (
        f"sqlite+aiosqlite:///{tmp_path / 'runs.db'}"
        if store_kind == "sqlite"
        else request.getfixturevalue("pg_url")
    )
    async with SQLRunStore.from_url(url) as store, RunManager(store) as manager:
        if saver_kind == "runstore":
            yield Env(name, manager, store.checkpointer)
        elif saver_kind == "stock-sqlite":
            from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

            async with AsyncSqliteSaver.from_conn_string(str(tmp_path / "stock.db")) as saver:
                yield Env(name, manager, saver)
        else:
            from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver

            async with AsyncPostgresSaver.from_conn_string(libpq_url(url)) as saver:
                await saver.setup()
                yield Env(name, manager, saver)


def turn_graph(checkpointer: Any) -> Any:
    def answer(state: State) -> dict[str, Any]:
        return {"messages": [AIMessage(content=f"answer {len(state['messages'])}")]}

    return single_node_graph(answer).compile(checkpointer=checkpointer)


def hi(text: str) -> dict[str, Any]:
    return {"messages": [("user", text)]}


async def checkpoints_of(checkpointer: Any, run_id: str) -> list[str]:
    return [
        c.config["configurable"]["checkpoint_id"]
        async for c in checkpointer.alist(THREAD)
        if c.metadata.get("run_id") == run_id
    ]


async def two_runs(env: Env) -> tuple[str, str]:
    graph = turn_graph(env.checkpointer)
    first = await env.manager.wait(graph, hi("one"), thread_id="t1")
    second = await env.manager.wait(graph, hi("two"), thread_id="t1")
    assert first.status is second.status is RunStatus.success
    return first.run_id, second.run_id


async def test_delete_removes_the_run_and_the_checkpoints_the_store_holds(env: Env) -> None:
    first, second = await two_runs(env)
    assert await checkpoints_of(env.checkpointer, first)
    kept = await checkpoints_of(env.checkpointer, second)
    before = await checkpoints_of(env.checkpointer, first)
    assert await env.manager.delete(first) is None
    assert await env.manager.get(first) is None
    assert [r.run_id for r in await env.manager.list_by_thread("t1")] == [second]
    with pytest.raises(RunNotFoundError):
        await env.manager.delete(first)  # already gone
    # the store's own checkpointer loses the run's checkpoints; a stock saver, which the
    # store cannot see, keeps them
    expected = [] if env.store_owns_checkpoints else before
    assert await checkpoints_of(env.checkpointer, first) == expected
    assert await checkpoints_of(env.checkpointer, second) == kept
    state = await turn_graph(env.checkpointer).aget_state(THREAD)
    assert [m.content for m in state.values["messages"]][-1] == "answer 3"
    if env.manager.store is not None:
        assert await env.manager.store.get(first) is None
        assert await env.manager.store.run_checkpoints(first) == []


async def test_keep_checkpoints_deletes_the_row_only(env: Env) -> None:
    first, _ = await two_runs(env)
    before = await checkpoints_of(env.checkpointer, first)
    await env.manager.delete(first, keep_checkpoints=True)
    assert await env.manager.get(first) is None
    assert await checkpoints_of(env.checkpointer, first) == before


async def test_a_stock_saver_given_as_checkpointer_is_refused_and_nothing_is_deleted(
    env: Env,
) -> None:
    if env.store_owns_checkpoints:
        pytest.skip("SQLAlchemySaver deletes one run's checkpoints (the test below)")
    first, _ = await two_runs(env)
    before = await checkpoints_of(env.checkpointer, first)
    with pytest.raises(InvalidInputError, match="keep_checkpoints=True"):
        await env.manager.delete(first, checkpointer=env.checkpointer)
    assert (await env.manager.get(first)) is not None
    assert await checkpoints_of(env.checkpointer, first) == before
    await env.manager.delete(first, checkpointer=env.checkpointer, keep_checkpoints=True)
    assert await env.manager.get(first) is None


async def test_checkpoints_in_a_saver_the_store_does_not_own_go_with_checkpointer(
    tmp_path: Path,
) -> None:
    async with (
        SQLAlchemySaver.from_url(f"sqlite+aiosqlite:///{tmp_path / 'cp.db'}") as saver,
        RunManager(MemoryRunStore()) as manager,
    ):
        graph = turn_graph(saver)
        first = (await manager.wait(graph, hi("one"), thread_id="t1")).run_id
        second = (await manager.wait(graph, hi("two"), thread_id="t1")).run_id
        await manager.delete(first, checkpointer=saver)
        assert await checkpoints_of(saver, first) == []
        assert await checkpoints_of(saver, second)
        state = await graph.aget_state(THREAD)
        assert state.values["messages"][-1].content == "answer 3"


async def test_an_active_run_is_refused_and_keeps_everything(env: Env) -> None:
    pending = await env.manager.create("t2")
    with pytest.raises(ActiveRunError, match="pending") as caught:
        await env.manager.delete(pending.run_id)
    assert isinstance(caught.value, ConflictError)
    assert (caught.value.run_id, caught.value.thread_id) == (pending.run_id, "t2")
    await env.manager.set_status(pending.run_id, "success")

    started, release = asyncio.Event(), asyncio.Event()
    graph = blocked_graph(started, release, checkpointer=env.checkpointer)
    running = await env.manager.start(graph, hi("one"), thread_id="t1")
    await asyncio.wait_for(started.wait(), 10)
    written = await checkpoints_of(env.checkpointer, running.run_id)
    with pytest.raises(ActiveRunError, match="running"):
        await env.manager.delete(running.run_id)
    if env.manager.store is not None:
        async with RunManager(env.manager.store) as other:  # it reads the row: running
            with pytest.raises(ActiveRunError, match="running"):
                await other.delete(running.run_id)
    # a stock saver may still be writing the step before the one that blocks
    assert set(written) <= set(await checkpoints_of(env.checkpointer, running.run_id))
    release.set()
    assert (await env.manager.join(running.run_id)).status is RunStatus.success
    await env.manager.delete(running.run_id)  # now it may go
    assert await env.manager.get(running.run_id) is None


async def test_a_run_cancelled_a_moment_ago_can_be_deleted(env: Env) -> None:
    started, release = asyncio.Event(), asyncio.Event()
    graph = blocked_graph(started, release, checkpointer=env.checkpointer)
    run = await env.manager.start(graph, hi("one"), thread_id="t1")
    await asyncio.wait_for(started.wait(), 10)
    assert await env.manager.cancel(run.run_id)
    await env.manager.delete(run.run_id)  # waits for the graph task to stop, then deletes
    assert await env.manager.get(run.run_id) is None
    assert run.task is None  # the executor drops a task once it is done
    if env.store_owns_checkpoints:
        assert await checkpoints_of(env.checkpointer, run.run_id) == []


async def test_unknown_and_other_users_runs_are_not_found(env: Env) -> None:
    run = await env.manager.create("t1", user_id="alice")
    await env.manager.set_status(run.run_id, "success")
    with pytest.raises(RunNotFoundError):
        await env.manager.delete("no-such-run")
    with pytest.raises(RunNotFoundError) as caught:
        await env.manager.delete(run.run_id, user_id="bob")
    assert str(caught.value) == f"no run with run_id {run.run_id!r}"
    assert await env.manager.get(run.run_id) is not None
    await env.manager.delete(run.run_id, user_id="alice")
    assert await env.manager.get(run.run_id) is None


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ({"run_id": 5}, "run_id must be a non-empty string"),
        ({"run_id": "r", "keep_checkpoints": "yes"}, "keep_checkpoints must be True or False"),
        ({"run_id": "r", "user_id": 7}, "user_id must be a string or None"),
    ],
)
async def test_bad_arguments_are_refused(
    env: Env, arguments: dict[str, Any], expected: str
) -> None:
    run = await env.manager.create("t1", run_id="r")
    await env.manager.set_status(run.run_id, "success")
    with pytest.raises(InvalidInputError, match=expected):
        await env.manager.delete(**arguments)
    assert await env.manager.get("r") is not None


async def test_a_run_of_another_process_is_deleted_from_the_store(store_url: str) -> None:
    async with SQLRunStore.from_url(store_url) as store:
        async with RunManager(store) as first:
            run = await first.wait(turn_graph(store.checkpointer), hi("one"), thread_id="t1")
        assert await store.run_checkpoints(run.run_id)
        async with RunManager(store) as other:  # holds no record of it
            await other.delete(run.run_id)
        assert await store.get(run.run_id) is None
        assert await store.run_checkpoints(run.run_id) == []


@pytest.fixture(params=["sqlite", *PG_BACKENDS])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'runs.db'}"
    return str(request.getfixturevalue("pg_url"))


def test_the_sync_twin_deletes(tmp_path: Path) -> None:
    with SyncRunManager.from_url(f"sqlite:///{tmp_path / 'runs.db'}") as manager:
        assert manager.store is not None
        graph = turn_graph(manager.store.checkpointer)  # type: ignore[attr-defined]
        run = manager.invoke(graph, hi("one"), thread_id="t1")
        pending = manager.create("t2")
        with pytest.raises(ActiveRunError):
            manager.delete(pending.run_id)
        manager.delete(run.run_id)
        assert manager.get(run.run_id) is None
        assert manager.run_checkpoints(run.run_id) == []


# -- the command line ------------------------------------------------------------------------


async def test_runs_delete_on_the_command_line(store_url: str) -> None:
    async with SQLRunStore.from_url(store_url) as store, RunManager(store) as manager:
        graph = turn_graph(store.checkpointer)
        first = await manager.wait(graph, hi("one"), thread_id="t1")
        second = await manager.wait(graph, hi("two"), thread_id="t1")
        written = len(await store.run_checkpoints(first.run_id))
        started, release = asyncio.Event(), asyncio.Event()
        blocked = blocked_graph(started, release, checkpointer=store.checkpointer)
        running = await manager.start(blocked, hi("x"), thread_id="t3")
        await asyncio.wait_for(started.wait(), 10)

        done = await asyncio.to_thread(run_cli, "runs", "delete", first.run_id, "--db", store_url)
        assert done.code == 0, done.err
        assert done.out.strip() == (
            f"deleted run {first.run_id} (thread t1) and its {written} checkpoint(s)"
        )
        assert await store.get(first.run_id) is None
        assert await store.run_checkpoints(first.run_id) == []

        kept = len(await store.run_checkpoints(second.run_id))
        done = await asyncio.to_thread(
            run_cli,
            "runs",
            "delete",
            second.run_id,
            "--keep-checkpoints",
            "--json",
            "--db",
            store_url,
        )
        assert done.code == 0, done.err
        assert json.loads(done.out) == {
            "deleted": True,
            "run_id": second.run_id,
            "thread_id": "t1",
            "checkpoints_deleted": 0,
        }
        assert len(await store.run_checkpoints(second.run_id)) == kept

        missing = await asyncio.to_thread(run_cli, "runs", "delete", "nope", "--db", store_url)
        assert (missing.code, missing.error_line) == (1, "error: no run with id 'nope'")

        busy = await asyncio.to_thread(run_cli, "runs", "delete", running.run_id, "--db", store_url)
        assert busy.code == 1
        assert busy.error_line == (
            f"error: run {running.run_id!r} is running: only a finished run can be deleted "
            f"(cancel it first, or wait for its end): `langgraph-runstore runs cancel "
            f"{running.run_id}` stops it"
        )
        assert await store.get(running.run_id) is not None
        release.set()
        await manager.join(running.run_id)
