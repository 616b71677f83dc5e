"""Cancel and rollback on every checkpointer: the stock InMemorySaver, AsyncSqliteSaver and
AsyncPostgresSaver, and the package's SQLAlchemySaver on SQLite and PostgreSQL.

Every test body runs under ``asyncio.wait_for``: a rollback that hangs (the stock savers
hold a lock while their ``alist`` is iterated) fails the test instead of blocking the run.
Runs are stopped mid-way at an ``asyncio.Event`` inside a node, never by sleeping.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from langchain_core.messages import AIMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command, interrupt

from langgraph_runstore import (
    MemoryRunStore,
    RunManager,
    RunRecord,
    RunStatus,
    SQLRunStore,
    ThreadStatus,
)
from tests.backends import PG_BACKENDS, libpq_url
from tests.graphs import State

pytestmark = pytest.mark.asyncio

#: no test needs more than a few seconds; a hang fails at this bound
BOUND = 30.0

SAVERS = [
    "memory",
    "stock-sqlite",
    pytest.param("stock-postgres", marks=pytest.mark.postgres),
    "runstore-sqlite",
    pytest.param("runstore-postgres", marks=pytest.mark.postgres),
    pytest.param("runstore-postgres-psycopg", marks=pytest.mark.postgres),
]


@dataclass
class Env:
    name: str
    checkpointer: Any
    manager: RunManager

    @property
    def in_place(self) -> bool:
        """The package's saver deletes the run's checkpoints; the stock ones get a fork."""
        return self.name.startswith("runstore")


@asynccontextmanager
async def closing_manager(store: Any) -> AsyncIterator[RunManager]:
    """A manager whose shutdown is bounded too: a rollback stuck on a saver's lock would
    otherwise hang the teardown, which waits for the runs it cancels."""
    manager = RunManager(store=store)
    try:
        yield manager
    finally:
        await asyncio.wait_for(manager.aclose(), BOUND)


@pytest_asyncio.fixture(params=SAVERS)
async def env(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Env]:
    name = request.param
    if name == "memory":
        async with closing_manager(MemoryRunStore()) as manager:
            yield Env(name, InMemorySaver(), manager)
    elif name == "stock-sqlite":
        from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

        async with (
            AsyncSqliteSaver.from_conn_string(str(tmp_path / "stock.db")) as saver,
            closing_manager(MemoryRunStore()) as manager,
        ):
            yield Env(name, saver, manager)
    elif name == "stock-postgres":
        from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver

        url = libpq_url(request.getfixturevalue("pg_url"))
        async with (
            AsyncPostgresSaver.from_conn_string(url) as saver,
            closing_manager(MemoryRunStore()) as manager,
        ):
            await saver.setup()
            yield Env(name, saver, manager)
    else:
        url = (
            f"sqlite+aiosqlite:///{tmp_path / 'runstore.db'}"
            if name == "runstore-sqlite"
            else request.getfixturevalue("pg_url")
        )
        async with SQLRunStore.from_url(url) as store, closing_manager(store) as manager:
            yield Env(name, store.checkpointer, manager)


async def bounded(body: Awaitable[None]) -> None:
    await asyncio.wait_for(body, BOUND)


THREAD = {"configurable": {"thread_id": "t1"}}


def hi(text: str) -> dict[str, Any]:
    return {"messages": [("user", text)]}


@dataclass
class Gate:
    """A node waits here: ``entered`` tells the test the run is mid-way, ``open`` lets it on."""

    entered: asyncio.Event = field(default_factory=asyncio.Event)
    open: asyncio.Event = field(default_factory=asyncio.Event)

    async def wait(self) -> None:
        self.entered.set()
        await self.open.wait()


def turn_graph(gate: Gate | None = None) -> StateGraph[State]:
    """write (one checkpoint) -> think (waits at ``gate``, if any) -> END."""

    def write(state: State) -> dict[str, Any]:
        return {"messages": [AIMessage(content=f"wrote after {state['messages'][-1].content}")]}

    async def think(state: State) -> dict[str, Any]:
        if gate is not None:
            await gate.wait()
        return {"messages": [AIMessage(content="thought")]}

    builder = StateGraph(State)
    builder.add_node("write", write)
    builder.add_node("think", think)
    builder.add_edge(START, "write")
    builder.add_edge("write", "think")
    builder.add_edge("think", END)
    return builder


def approval_graph(gate: Gate, *, stop_in: str) -> StateGraph[State]:
    """approve (interrupt, then waits at ``gate`` when ``stop_in="approve"``) -> after
    (waits at ``gate`` when ``stop_in="after"``) -> END."""

    async def approve(state: State) -> dict[str, Any]:
        answer = interrupt({"question": "ship it?"})
        if stop_in == "approve":
            await gate.wait()
        return {"messages": [("user", f"approved: {answer}")]}

    async def after(state: State) -> dict[str, Any]:
        if stop_in == "after":
            await gate.wait()
        return {"messages": [AIMessage(content="shipped")]}

    builder = StateGraph(State)
    builder.add_node("approve", approve)
    builder.add_node("after", after)
    builder.add_edge(START, "approve")
    builder.add_edge("approve", "after")
    builder.add_edge("after", END)
    return builder


def contents(state: Any) -> list[str]:
    return [m.content for m in state.values.get("messages", [])]


def pending(state: Any) -> dict[str, Any]:
    """What a caller resumes from: next, the interrupts' values, and each task's."""
    return {
        "values": contents(state),
        "next": state.next,
        "interrupts": [i.value for i in state.interrupts],
        "tasks": [(t.name, [i.value for i in t.interrupts]) for t in state.tasks],
    }


async def checkpoint_count(checkpointer: Any) -> int:
    return len([c async for c in checkpointer.alist(THREAD)])


Start = Callable[[Env, Any, Any], Awaitable[RunRecord]]


async def start_managed(env: Env, graph: Any, graph_input: Any) -> RunRecord:
    return await env.manager.start(graph, graph_input, thread_id="t1")


async def start_tracked(env: Env, graph: Any, graph_input: Any) -> RunRecord:
    started: asyncio.Future[RunRecord] = asyncio.get_running_loop().create_future()

    async def user_code() -> None:
        async with env.manager.track(thread_id="t1", graph=graph) as run:
            started.set_result(run)
            await graph.ainvoke(graph_input, run.config)

    asyncio.get_running_loop().create_task(user_code())
    return await started


async def start_bare(env: Env, graph: Any, graph_input: Any) -> RunRecord:
    record = await env.manager.create("t1")
    config = {
        "callbacks": [env.manager.tracker(record.run_id, graph=graph)],
        "configurable": {"thread_id": "t1", "run_id": record.run_id},
    }
    asyncio.get_running_loop().create_task(graph.ainvoke(graph_input, config))
    return record


WAYS = {"managed": start_managed, "track": start_tracked, "bare": start_bare}


# -- item 6: every cancel action and strategy, on every saver, never hangs ----------------


@pytest.mark.parametrize("action", ["interrupt", "rollback"])
async def test_cancel_after_an_earlier_turn_ends_and_leaves_the_thread_usable(
    env: Env, action: str
) -> None:
    async def body() -> None:
        first = await env.manager.wait(
            turn_graph().compile(checkpointer=env.checkpointer), hi("one"), thread_id="t1"
        )
        assert first.status is RunStatus.success, first.error
        gate = Gate()
        graph = turn_graph(gate).compile(checkpointer=env.checkpointer)
        before = await graph.aget_state(THREAD)
        run = await env.manager.start(graph, hi("two"), thread_id="t1")
        await gate.entered.wait()

        assert await env.manager.cancel(run.run_id, action=action) is True
        ended = await env.manager.join(run.run_id)
        assert ended.status is RunStatus.interrupted
        assert ended.stop_reason == ("cancelled" if action == "interrupt" else "rolled_back")
        state = await graph.aget_state(THREAD)
        if action == "interrupt":  # the checkpoint "write" made stays
            assert contents(state)[-1] == "wrote after two"
        else:
            assert pending(state) == pending(before)

        gate.open.set()
        again = await env.manager.wait(graph, hi("three"), thread_id="t1")
        assert again.status is RunStatus.success, again.error
        assert contents(await graph.aget_state(THREAD))[-2:] == ["wrote after three", "thought"]

    await bounded(body())


@pytest.mark.parametrize("strategy", ["interrupt", "rollback"])
async def test_a_new_run_replaces_the_active_one_without_hanging(env: Env, strategy: str) -> None:
    async def body() -> None:
        plain = turn_graph().compile(checkpointer=env.checkpointer)
        await env.manager.wait(plain, hi("one"), thread_id="t1")
        gate = Gate()
        slow = turn_graph(gate).compile(checkpointer=env.checkpointer)
        old = await env.manager.start(slow, hi("two"), thread_id="t1")
        await gate.entered.wait()

        new = await env.manager.wait(
            plain, hi("three"), thread_id="t1", multitask_strategy=strategy
        )
        assert new.status is RunStatus.success, new.error
        assert old.status is RunStatus.interrupted
        assert old.stop_reason == ("cancelled" if strategy == "interrupt" else "rolled_back")
        said = contents(await plain.aget_state(THREAD))
        assert said[-2:] == ["wrote after three", "thought"]
        assert ("wrote after two" in said) is (strategy == "interrupt")

    await bounded(body())


# -- item 8: rolling back a resumed human-in-the-loop run -----------------------------------


@pytest.mark.parametrize("way", sorted(WAYS))
@pytest.mark.parametrize("stop_in", ["approve", "after"])
async def test_rolling_back_a_resumed_run_restores_the_pending_interrupt(
    env: Env, way: str, stop_in: str
) -> None:
    async def body() -> None:
        gate = Gate()
        graph = approval_graph(gate, stop_in=stop_in).compile(checkpointer=env.checkpointer)
        first = await env.manager.wait(graph, hi("draft"), thread_id="t1")
        assert first.paused
        before = await graph.aget_state(THREAD)
        assert before.next == ("approve",) and before.interrupts

        resumed = await WAYS[way](env, graph, Command(resume="yes"))
        await gate.entered.wait()  # the resumed run is inside the node named by stop_in
        assert await env.manager.cancel(resumed.run_id, action="rollback") is True
        assert resumed.stop_reason == "rolled_back"

        after = await graph.aget_state(THREAD)
        assert pending(after) == pending(before)
        if env.in_place:  # nothing of the run is left: the same checkpoint, the same ids
            assert after.config == before.config
            assert [i.id for i in after.interrupts] == [i.id for i in before.interrupts]
        assert await env.manager.thread_status("t1") is ThreadStatus.interrupted
        waiting = await env.manager.thread_interrupts("t1", checkpointer=env.checkpointer)
        assert [w["value"] for w in waiting] == [{"question": "ship it?"}]
        if env.in_place:  # what the paused run recorded, its namespace included
            assert waiting == first.interrupts

        gate.open.set()
        third = await env.manager.wait(graph, Command(resume="sure"), thread_id="t1")
        assert third.status is RunStatus.success and not third.paused, third.error
        final = await graph.aget_state(THREAD)
        assert contents(final) == ["draft", "approved: sure", "shipped"]
        assert final.next == ()

    await bounded(body())


async def test_after_a_rollback_the_interrupt_answers_to_the_id_the_thread_shows(
    env: Env,
) -> None:
    async def body() -> None:
        gate = Gate()
        graph = approval_graph(gate, stop_in="after").compile(checkpointer=env.checkpointer)
        await env.manager.wait(graph, hi("draft"), thread_id="t1")
        resumed = await env.manager.start(graph, Command(resume="yes"), thread_id="t1")
        await gate.entered.wait()
        await env.manager.cancel(resumed.run_id, action="rollback")
        gate.open.set()

        (waiting,) = (await graph.aget_state(THREAD)).interrupts
        done = await env.manager.wait(graph, Command(resume={waiting.id: "by id"}), thread_id="t1")
        assert done.status is RunStatus.success and not done.paused, done.error
        assert contents(await graph.aget_state(THREAD))[-2:] == ["approved: by id", "shipped"]

    await bounded(body())


async def test_rolling_back_a_resume_that_asked_again_restores_the_first_question(
    env: Env,
) -> None:
    """A node with two interrupts: the rolled-back run answered the first and was stopped
    before the second; the thread waits on the first again, its answer forgotten."""
    gate = Gate()

    async def approve(state: State) -> dict[str, Any]:
        first = interrupt("first?")
        await gate.wait()
        second = interrupt("second?")
        return {"messages": [("user", f"{first} then {second}")]}

    async def body() -> None:
        builder = StateGraph(State)
        builder.add_node("approve", approve)
        builder.add_edge(START, "approve")
        builder.add_edge("approve", END)
        graph = builder.compile(checkpointer=env.checkpointer)
        await env.manager.wait(graph, hi("go"), thread_id="t1")
        before = await graph.aget_state(THREAD)
        resumed = await env.manager.start(graph, Command(resume="a"), thread_id="t1")
        await gate.entered.wait()
        await env.manager.cancel(resumed.run_id, action="rollback")
        assert pending(await graph.aget_state(THREAD)) == pending(before)

        gate.open.set()
        asked = await env.manager.wait(graph, Command(resume="b"), thread_id="t1")
        assert asked.paused
        assert [i.value for i in (await graph.aget_state(THREAD)).interrupts] == ["second?"]
        done = await env.manager.wait(graph, Command(resume="c"), thread_id="t1")
        assert done.status is RunStatus.success and not done.paused, done.error
        assert contents(await graph.aget_state(THREAD))[-1] == "b then c"

    await bounded(body())


@pytest.mark.parametrize("stop_in", ["ask", "check"])
async def test_rolling_back_a_resumed_run_of_an_interrupted_subgraph(
    env: Env, stop_in: str
) -> None:
    """The interrupt is raised inside a sub-graph (ask -> check): after the rollback, a new
    answer is the one the sub-graph gets, not the rolled-back run's."""
    gate = Gate()

    async def ask(state: State) -> dict[str, Any]:
        answer = interrupt("inner?")
        if stop_in == "ask":
            await gate.wait()
        return {"messages": [("user", f"inner: {answer}")]}

    async def check(state: State) -> dict[str, Any]:
        if stop_in == "check":
            await gate.wait()
        return {"messages": [AIMessage(content="checked")]}

    async def body() -> None:
        inner = StateGraph(State)
        inner.add_node("ask", ask)
        inner.add_node("check", check)
        inner.add_edge(START, "ask")
        inner.add_edge("ask", "check")
        inner.add_edge("check", END)
        outer = StateGraph(State)
        outer.add_node("sub", inner.compile())
        outer.add_edge(START, "sub")
        outer.add_edge("sub", END)
        graph = outer.compile(checkpointer=env.checkpointer)
        await env.manager.wait(graph, hi("go"), thread_id="t1")
        before = await graph.aget_state(THREAD)
        resumed = await env.manager.start(graph, Command(resume="old"), thread_id="t1")
        await gate.entered.wait()
        await env.manager.cancel(resumed.run_id, action="rollback")
        assert pending(await graph.aget_state(THREAD)) == pending(before)

        gate.open.set()
        done = await env.manager.wait(graph, Command(resume="new"), thread_id="t1")
        assert done.status is RunStatus.success and not done.paused, done.error
        assert contents(await graph.aget_state(THREAD)) == ["go", "inner: new", "checked"]

    await bounded(body())


async def test_rolling_back_the_first_run_of_a_thread_leaves_it_empty(env: Env) -> None:
    async def body() -> None:
        gate = Gate()
        graph = turn_graph(gate).compile(checkpointer=env.checkpointer)
        run = await env.manager.start(graph, hi("one"), thread_id="t1")
        await gate.entered.wait()
        # LangGraph saves checkpoints in the background: the run has some before the cancel
        while await checkpoint_count(env.checkpointer) < 2:  # noqa: ASYNC110
            await asyncio.sleep(0)
        await env.manager.cancel(run.run_id, action="rollback")
        assert run.stop_reason == "rolled_back"
        assert await checkpoint_count(env.checkpointer) == 0
        state = await graph.aget_state(THREAD)
        assert state.values == {} and state.next == ()

        gate.open.set()
        fresh = await env.manager.wait(graph, hi("again"), thread_id="t1")
        assert fresh.status is RunStatus.success, fresh.error
        assert contents(await graph.aget_state(THREAD)) == ["again", "wrote after again", "thought"]

    await bounded(body())


async def test_rolling_back_restores_the_previous_turns_latest_checkpoint(env: Env) -> None:
    async def body() -> None:
        plain = turn_graph().compile(checkpointer=env.checkpointer)
        await env.manager.wait(plain, hi("one"), thread_id="t1")
        await env.manager.wait(plain, hi("two"), thread_id="t1")
        before = await plain.aget_state(THREAD)
        count = await checkpoint_count(env.checkpointer)
        gate = Gate()
        slow = turn_graph(gate).compile(checkpointer=env.checkpointer)
        run = await env.manager.start(slow, hi("three"), thread_id="t1")
        await gate.entered.wait()
        await env.manager.cancel(run.run_id, action="rollback")

        after = await plain.aget_state(THREAD)
        assert after.values == before.values and after.next == ()
        assert contents(after)[-2:] == ["wrote after two", "thought"]
        if env.in_place:  # the run's checkpoints are gone
            assert after.config == before.config
            assert await checkpoint_count(env.checkpointer) == count
        else:  # a copy of the previous turn's last checkpoint is the newest one
            assert (after.metadata or {}).get("source") == "fork"
            assert after.parent_config == before.parent_config

    await bounded(body())


@pytest.mark.postgres
async def test_a_rollback_that_fails_still_ends_the_run(pg_url: str) -> None:
    """The stock PostgreSQL saver's connection is cut (pg_terminate_backend) before the
    rollback: cancel() answers, the run ends ``interrupted`` with ``rollback_failed``."""
    import psycopg
    from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver

    url = libpq_url(pg_url)

    async def body() -> None:
        async with (
            AsyncPostgresSaver.from_conn_string(url) as saver,
            RunManager(store=MemoryRunStore()) as manager,
        ):
            await saver.setup()
            plain = turn_graph().compile(checkpointer=saver)
            await manager.wait(plain, hi("one"), thread_id="t1")
            gate = Gate()
            run = await manager.start(
                turn_graph(gate).compile(checkpointer=saver), hi("two"), thread_id="t1"
            )
            await gate.entered.wait()
            pid = saver.conn.info.backend_pid
            async with await psycopg.AsyncConnection.connect(url, autocommit=True) as admin:
                await admin.execute("SELECT pg_terminate_backend(%s)", (pid,))

            assert await manager.cancel(run.run_id, action="rollback") is True
            ended = await manager.join(run.run_id)
            assert ended.status is RunStatus.interrupted
            assert ended.stop_reason == "rollback_failed"

    await bounded(body())


# -- SQLAlchemySaver.areplace_writes ------------------------------------------------------


@pytest_asyncio.fixture(params=["sqlite", *PG_BACKENDS])
async def saver(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Any]:
    url = (
        f"sqlite+aiosqlite:///{tmp_path / 'saver.db'}"
        if request.param == "sqlite"
        else request.getfixturevalue("pg_url")
    )
    async with SQLRunStore.from_url(url) as store:
        yield store.checkpointer


async def test_replace_writes_makes_them_exactly_the_given_ones(saver: Any) -> None:
    from langgraph.checkpoint.base import empty_checkpoint

    async def body() -> None:
        checkpoint = empty_checkpoint()
        config = await saver.aput(THREAD, checkpoint, {"step": 0}, {})
        # task paths order a checkpoint's writes: "b" before "a"
        await saver.aput_writes(config, [("__interrupt__", ["ask b"])], "b", "~1")
        await saver.aput_writes(config, [("x", 1), ("y", 2)], "b", "~1")
        await saver.aput_writes(config, [("__interrupt__", ["ask a"])], "a", "~2")
        await saver.aput_writes(config, [("__resume__", ["later"])], "a", "~2")

        kept = [
            ("b", "__interrupt__", ["ask b, again"]),
            ("b", "x", 1),
            ("a", "__interrupt__", ["ask a"]),
        ]
        await saver.areplace_writes(config, kept)
        found = await saver.aget_tuple(config)
        assert found is not None and found.pending_writes == kept

        await asyncio.to_thread(saver.replace_writes, config, [])
        found = await saver.aget_tuple(config)
        assert found is not None and found.pending_writes == []

    await bounded(body())


async def test_replace_writes_needs_a_checkpoint_id(saver: Any) -> None:
    from langgraph_runstore import InvalidInputError

    async def body() -> None:
        with pytest.raises(InvalidInputError, match="checkpoint_id"):
            await saver.areplace_writes(THREAD, [("t", "x", 1)])

    await bounded(body())


async def test_rolling_back_a_retry_of_a_failed_run_restores_the_error(env: Env) -> None:
    """Run 1 fails in ``flaky``; run 2 retries (input None) and is rolled back mid-way: the
    thread shows the failure again, and a third retry finishes."""
    gate = Gate()
    calls: list[str] = []

    async def flaky(state: State) -> dict[str, Any]:
        calls.append("flaky")
        if len(calls) == 1:
            raise ValueError("boom")
        await gate.wait()
        return {"messages": [AIMessage(content="recovered")]}

    async def body() -> None:
        builder = StateGraph(State)
        builder.add_node("flaky", flaky)
        builder.add_edge(START, "flaky")
        builder.add_edge("flaky", END)
        graph = builder.compile(checkpointer=env.checkpointer)
        failed = await env.manager.wait(graph, hi("go"), thread_id="t1")
        assert failed.status is RunStatus.error
        before = await graph.aget_state(THREAD)
        assert before.next == ("flaky",) and before.tasks[0].error is not None

        retry = await env.manager.start(graph, None, thread_id="t1")
        await gate.entered.wait()
        await env.manager.cancel(retry.run_id, action="rollback")
        after = await graph.aget_state(THREAD)
        assert pending(after) == pending(before)
        assert repr(after.tasks[0].error) == repr(before.tasks[0].error)
        assert await env.manager.thread_status("t1") is ThreadStatus.error

        gate.open.set()
        done = await env.manager.wait(graph, None, thread_id="t1")
        assert done.status is RunStatus.success, done.error
        assert contents(await graph.aget_state(THREAD)) == ["go", "recovered"]

    await bounded(body())


async def test_a_rollback_from_another_manager_restores_the_pending_interrupt(
    db_url: str,
) -> None:
    """A second manager on the same database rolls back a resumed run the first executes:
    the owner hears the request and restores the thread itself, exactly."""

    async def body() -> None:
        async with (
            SQLRunStore.from_url(db_url) as owner_store,
            SQLRunStore.from_url(db_url) as other_store,
        ):
            owner = RunManager(store=owner_store, poll_interval=0.1)
            other = RunManager(store=other_store)
            gate = Gate()
            graph = approval_graph(gate, stop_in="after").compile(
                checkpointer=owner_store.checkpointer
            )
            await owner.wait(graph, hi("draft"), thread_id="t1")
            before = await graph.aget_state(THREAD)
            resumed = await owner.start(graph, Command(resume="yes"), thread_id="t1")
            await gate.entered.wait()

            assert await other.cancel(resumed.run_id, action="rollback") is True
            ended = await owner.join(resumed.run_id)
            assert (ended.status, ended.stop_reason) == (RunStatus.interrupted, "rolled_back")
            after = await graph.aget_state(THREAD)
            assert pending(after) == pending(before) and after.config == before.config
            assert await other.thread_status("t1") is ThreadStatus.interrupted

            gate.open.set()
            done = await owner.wait(graph, Command(resume="sure"), thread_id="t1")
            assert done.status is RunStatus.success and not done.paused, done.error
            await other.aclose()
            await owner.aclose()

    await bounded(body())
