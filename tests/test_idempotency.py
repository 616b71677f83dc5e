"""``idempotency_key=`` on create, create_or_reject, start, wait, stream and submit: a second
call with the key returns the run it names (the same live record, or the stored one) and
makes nothing; the key is unique in every store and atomic between processes (forced
races: two managers on one database, and two real processes); a key of another thread or
user is an IdempotencyKeyError; bad keys are refused with nothing written."""

from __future__ import annotations

import asyncio
import multiprocessing
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from langchain_core.messages import AIMessage
from langgraph.checkpoint.memory import InMemorySaver

from langgraph_runstore import (
    ConflictError,
    IdempotencyKeyError,
    InvalidInputError,
    RunManager,
    RunStatus,
    RunStore,
    SQLRunStore,
)
from tests.graphs import State, blocked_graph, single_node_graph

pytestmark = pytest.mark.asyncio


def counting_graph(calls: list[str], checkpointer: Any = None) -> Any:
    def answer(state: State) -> dict[str, Any]:
        calls.append("ran")
        return {"messages": [AIMessage(content="done")]}

    return single_node_graph(answer).compile(checkpointer=checkpointer or InMemorySaver())


async def stored_rows(manager: RunManager, thread_id: str) -> list[dict[str, Any]]:
    if manager.store is None:
        return [r.to_row() for r in await manager.list_by_thread(thread_id)]
    return await manager.store.list_by_thread(thread_id)


# -- one manager ---------------------------------------------------------------------------


async def test_a_repeated_create_returns_the_same_record(manager: RunManager) -> None:
    first = await manager.create("t1", idempotency_key="order-1")
    assert first.idempotency_key == "order-1" and first.idempotency_reused is False
    again = await manager.create("t1", idempotency_key="order-1", metadata={"ignored": 1})
    assert again is first and again.idempotency_reused is True
    rows = await stored_rows(manager, "t1")
    assert [(row["run_id"], row["idempotency_key"]) for row in rows] == [(first.run_id, "order-1")]
    other = await manager.create("t1", idempotency_key="order-2")  # another key: another run
    assert other.run_id != first.run_id


async def test_create_or_reject_returns_the_keyed_run_while_it_keeps_its_thread_busy(
    manager: RunManager,
) -> None:
    first = await manager.create_or_reject("t1", idempotency_key="k")
    assert first.status is RunStatus.pending
    for strategy in ("reject", "enqueue", "interrupt", "rollback"):
        again = await manager.create_or_reject(
            "t1", idempotency_key="k", multitask_strategy=strategy
        )
        assert again is first, strategy
    assert first.status is RunStatus.pending  # interrupt/rollback cancelled nothing
    with pytest.raises(ConflictError):  # without the key, the thread is busy
        await manager.create_or_reject("t1")
    assert len(await stored_rows(manager, "t1")) == 1


async def test_start_with_a_key_executes_the_graph_once(manager: RunManager) -> None:
    calls: list[str] = []
    graph = counting_graph(calls)
    run = await manager.wait(graph, {"messages": []}, thread_id="t1", idempotency_key="k")
    assert run.status is RunStatus.success and calls == ["ran"]
    again = await manager.start(graph, {"messages": []}, thread_id="t1", idempotency_key="k")
    assert again is run and again.idempotency_reused is True
    waited = await manager.wait(graph, {"messages": []}, thread_id="t1", idempotency_key="k")
    assert waited is run
    streamed = [
        chunk
        async for chunk in manager.stream(
            graph, {"messages": []}, thread_id="t1", idempotency_key="k"
        )
    ]
    assert streamed == []  # the run's chunks were its own call's
    assert calls == ["ran"]
    assert len(await stored_rows(manager, "t1")) == 1


async def test_start_with_the_key_of_a_running_run_returns_it_without_a_second_execution(
    manager: RunManager,
) -> None:
    started, release = asyncio.Event(), asyncio.Event()
    graph = blocked_graph(started, release)
    run = await manager.start(graph, {"messages": []}, thread_id="t1", idempotency_key="k")
    await asyncio.wait_for(started.wait(), 10)
    again = await manager.start(graph, {"messages": []}, thread_id="t1", idempotency_key="k")
    assert again is run and run.status is RunStatus.running
    release.set()
    done = await manager.join(run.run_id)
    assert done.status is RunStatus.success and done.llm_call_count == 1


async def test_concurrent_calls_with_one_key_share_one_run(manager: RunManager) -> None:
    records = await asyncio.gather(
        *(manager.create_or_reject("t1", idempotency_key="k") for _ in range(20)),
        *(manager.create("t1", idempotency_key="k") for _ in range(5)),
    )
    assert all(record is records[0] for record in records)
    assert records[0].idempotency_reused  # the one record: the later calls reused it
    assert len(await stored_rows(manager, "t1")) == 1


async def test_a_key_of_another_thread_is_a_conflict_naming_both(manager: RunManager) -> None:
    first = await manager.create("t1", idempotency_key="k")
    with pytest.raises(IdempotencyKeyError) as caught:
        await manager.create_or_reject("t2", idempotency_key="k")
    message = str(caught.value)
    assert "'k'" in message and "'t1'" in message and "'t2'" in message
    assert isinstance(caught.value, ConflictError) and caught.value.idempotency_key == "k"
    assert caught.value.run_id == first.run_id and caught.value.thread_id == "t2"
    assert await stored_rows(manager, "t2") == []
    assert first.idempotency_reused is False


async def test_a_key_of_another_user_is_refused_without_naming_the_run(
    manager: RunManager,
) -> None:
    first = await manager.create("t1", idempotency_key="k", user_id="alice")
    for user in ("bob", None):
        with pytest.raises(IdempotencyKeyError, match="another user") as caught:
            await manager.create("t1", idempotency_key="k", user_id=user)
        assert first.run_id not in str(caught.value)
    assert len(await stored_rows(manager, "t1")) == 1


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("", "non-empty string"),
        (5, "must be a string"),
        ("a\x00b", "NUL"),
        ("x" * 1025, "1024 bytes"),
    ],
)
async def test_bad_keys_are_refused_with_nothing_written(
    manager: RunManager, key: Any, expected: str
) -> None:
    calls: list[str] = []
    with pytest.raises(InvalidInputError, match="idempotency_key") as caught:
        await manager.create("t1", idempotency_key=key)
    assert expected in str(caught.value)
    with pytest.raises(InvalidInputError, match="idempotency_key"):
        await manager.start(counting_graph(calls), {}, thread_id="t1", idempotency_key=key)
    assert calls == [] and await stored_rows(manager, "t1") == []


async def test_deleting_a_keyed_run_frees_its_key(manager: RunManager) -> None:
    first = await manager.create("t1", idempotency_key="k")
    await manager.set_status(first.run_id, "success")
    await manager.delete(first.run_id)
    second = await manager.create("t1", idempotency_key="k")
    assert second.run_id != first.run_id and second.idempotency_reused is False


async def test_without_a_store_a_key_is_known_while_its_record_is_held() -> None:
    async with RunManager() as manager:
        first = await manager.create("t1", idempotency_key="k")
        assert await manager.create("t1", idempotency_key="k") is first
        await manager.cleanup(first.run_id)  # the record leaves memory, and its key with it
        assert (await manager.create("t1", idempotency_key="k")).run_id != first.run_id


# -- the store holds the key ---------------------------------------------------------------


async def test_a_second_manager_gets_the_stored_run(store: RunStore) -> None:
    calls: list[str] = []
    async with RunManager(store) as first, RunManager(store) as second:
        run = await first.wait(counting_graph(calls), {}, thread_id="t1", idempotency_key="k")
        again = await second.start(counting_graph(calls), {}, thread_id="t1", idempotency_key="k")
        assert again.run_id == run.run_id and again.store_only and again.idempotency_reused
        assert again.status is RunStatus.success
        waited = await second.wait(counting_graph(calls), {}, thread_id="t1", idempotency_key="k")
        assert waited.run_id == run.run_id and calls == ["ran"]
        with pytest.raises(IdempotencyKeyError, match="'t1'"):
            await second.create("t9", idempotency_key="k")
    assert len(await store.list_by_thread("t1")) == 1
    assert await store.list_by_thread("t9") == []


async def test_each_store_refuses_a_key_another_run_holds(store: RunStore) -> None:
    await store.insert("r1", thread_id="t1", idempotency_key="k")
    with pytest.raises(IdempotencyKeyError, match="'k'"):
        await store.insert("r2", thread_id="t2", idempotency_key="k")
    with pytest.raises(IdempotencyKeyError):
        await store.put("r3", thread_id="t3", idempotency_key="k")
    assert await store.get("r2") is None and await store.get("r3") is None
    row = await store.get_by_idempotency_key("k")
    assert row is not None and row["run_id"] == "r1"
    answer = await store.insert_keyed("r4", thread_id="t1", idempotency_key="k")
    assert answer.inserted is False and answer.existing is not None
    assert answer.existing["run_id"] == "r1" and await store.get("r4") is None
    await store.put("r1", thread_id="t1", status="success")  # a rewrite keeps its key
    assert (await store.get_by_idempotency_key("k") or {}).get("run_id") == "r1"
    assert await store.delete_run("r1")
    assert await store.get_by_idempotency_key("k") is None


async def test_submit_with_a_key_queues_one_run(store: RunStore) -> None:
    calls: list[str] = []
    worker = RunManager(
        store, lease_seconds=5, poll_interval=0.05, graphs={"agent": counting_graph(calls)}
    )
    async with worker, RunManager(store) as client:
        run = await client.submit("agent", {"messages": []}, thread_id="t1", idempotency_key="k")
        again = await client.submit("agent", {"messages": []}, thread_id="t1", idempotency_key="k")
        assert again.run_id == run.run_id and again.idempotency_reused
        done = await asyncio.wait_for(client.join(run.run_id), 15)
        assert done.status is RunStatus.success
        # the run needs no worker any more: a key that names it returns at once
        later = await client.submit(
            "gone", {"messages": []}, thread_id="t1", idempotency_key="k", wait_for_worker=0
        )
        assert later.run_id == run.run_id and later.status is RunStatus.success
    assert calls == ["ran"] and len(await store.list_by_thread("t1")) == 1


# -- races between two managers on one database, forced at the insert -----------------------


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


def gate_before(
    store: RunStore, method: str, hook: Callable[[], Awaitable[None]], outcomes: list[Any]
) -> None:
    """Run ``hook()`` before each ``store.<method>`` of this instance; append what each call
    answered (or raised) to ``outcomes``."""
    real = getattr(store, method)

    async def hooked(*args: Any, **kwargs: Any) -> Any:
        await hook()
        try:
            answer = await real(*args, **kwargs)
        except Exception as exc:
            outcomes.append(exc)
            raise
        outcomes.append(answer)
        return answer

    setattr(store, method, hooked)


@pytest_asyncio.fixture
async def two_stores(store: RunStore) -> AsyncIterator[tuple[RunStore, RunStore]]:
    """Two stores on one database, as two processes have: the same MemoryRunStore, or a
    second SQLRunStore with its own engine on the same SQLite file or PostgreSQL database."""
    if not isinstance(store, SQLRunStore):
        yield store, store
        return
    async with SQLRunStore.from_url(store.engine.url) as second:
        yield store, second


@pytest.mark.parametrize(
    ("strategy", "insert"), [("reject", "insert_if_thread_idle"), ("enqueue", "insert")]
)
async def test_two_managers_racing_with_one_key_make_one_run(
    two_stores: tuple[RunStore, RunStore], strategy: str, insert: str
) -> None:
    one, two = two_stores
    gate = Gate(2)  # both have looked the key up, and found nothing, before either inserts
    outcomes: list[Any] = []
    for each in {id(one): one, id(two): two}.values():
        gate_before(each, insert, gate.wait, outcomes)
    async with RunManager(one) as first, RunManager(two) as second:
        a, b = await asyncio.gather(
            first.create_or_reject("t1", idempotency_key="k", multitask_strategy=strategy),
            second.create_or_reject("t1", idempotency_key="k", multitask_strategy=strategy),
        )
    # the race happened: the loser's insert was refused (a busy thread, or the key taken)
    if strategy == "reject":
        assert sorted(outcomes) == [False, True]
    else:
        assert sorted(type(outcome).__name__ for outcome in outcomes) == [
            "IdempotencyKeyError",
            "NoneType",
        ]
    assert a.run_id == b.run_id
    assert sorted([a.idempotency_reused, b.idempotency_reused]) == [False, True]
    rows = await one.list_by_thread("t1")
    assert [row["run_id"] for row in rows] == [a.run_id]


@pytest.mark.parametrize(
    ("strategy", "insert"), [("reject", "insert_if_thread_idle"), ("enqueue", "insert")]
)
async def test_racing_with_one_key_on_two_threads_one_wins_and_the_other_is_told(
    two_stores: tuple[RunStore, RunStore], strategy: str, insert: str
) -> None:
    one, two = two_stores
    gate = Gate(2)
    outcomes: list[Any] = []
    for each in {id(one): one, id(two): two}.values():
        gate_before(each, insert, gate.wait, outcomes)
    async with RunManager(one) as first, RunManager(two) as second:
        answers = await asyncio.gather(
            first.create_or_reject("t1", idempotency_key="k", multitask_strategy=strategy),
            second.create_or_reject("t2", idempotency_key="k", multitask_strategy=strategy),
            return_exceptions=True,
        )
    # the loser's insert hit the unique key (both threads were idle)
    assert [type(o).__name__ for o in outcomes].count("IdempotencyKeyError") == 1
    (won,) = [a for a in answers if not isinstance(a, BaseException)]
    (lost,) = [a for a in answers if isinstance(a, BaseException)]
    assert isinstance(lost, IdempotencyKeyError)
    assert "'t1'" in str(lost) and "'t2'" in str(lost)
    rows = [*await one.list_by_thread("t1"), *await one.list_by_thread("t2")]
    assert [row["run_id"] for row in rows] == [won.run_id]


async def _race_in_a_process(url: str, barrier: Any, answers: Any, strategy: str) -> None:
    async with SQLRunStore.from_url(url) as store:
        method = "insert_if_thread_idle" if strategy == "reject" else "insert"
        real = getattr(store, method)

        async def hooked(*args: Any, **kwargs: Any) -> Any:
            # both processes have found no run for the key: now both insert
            await asyncio.to_thread(barrier.wait, 60)
            return await real(*args, **kwargs)

        setattr(store, method, hooked)
        async with RunManager(store) as manager:
            record = await manager.create_or_reject(
                "t1", idempotency_key="k", multitask_strategy=strategy
            )
        answers.put((record.run_id, record.idempotency_reused))


def race_process(url: str, barrier: Any, answers: Any, strategy: str) -> None:
    """One of two processes racing to admit a run with one idempotency key."""
    asyncio.run(_race_in_a_process(url, barrier, answers, strategy))


@pytest.mark.parametrize("strategy", ["reject", "enqueue"])
async def test_two_processes_racing_with_one_key_make_one_run(db_url: str, strategy: str) -> None:
    async with SQLRunStore.from_url(db_url):
        pass  # migrated once, so neither process spends its race migrating
    context = multiprocessing.get_context("spawn")
    barrier, answers = context.Barrier(2), context.Queue()
    processes = [
        context.Process(target=race_process, args=(db_url, barrier, answers, strategy))
        for _ in range(2)
    ]
    for process in processes:
        process.start()
    got = [await asyncio.to_thread(answers.get, True, 120) for _ in processes]
    for process in processes:
        await asyncio.to_thread(process.join, 30)
        assert process.exitcode == 0
    (run_a, reused_a), (run_b, reused_b) = got
    assert run_a == run_b and sorted([reused_a, reused_b]) == [False, True]
    async with SQLRunStore.from_url(db_url) as store:
        rows = await store.list_by_thread("t1")
    assert [row["run_id"] for row in rows] == [run_a]
    assert rows[0]["idempotency_key"] == "k"


async def test_track_refuses_a_key_that_names_a_run(manager: RunManager) -> None:
    calls: list[str] = []
    graph = counting_graph(calls)
    async with manager.track(thread_id="t1", idempotency_key="k") as run:
        await graph.ainvoke({"messages": []}, run.config)
    assert calls == ["ran"]
    with pytest.raises(IdempotencyKeyError, match="track\\(\\) records a new invocation"):
        async with manager.track(thread_id="t1", idempotency_key="k"):
            pytest.fail("the block must not run")
    done = await manager.get(run.run_id)
    assert done is not None and done.status is RunStatus.success and calls == ["ran"]


def test_track_sync_refuses_a_key_that_names_a_run(tmp_path: Path) -> None:
    with RunManager.sync_from_url(f"sqlite:///{tmp_path / 'runs.db'}") as opened:
        first = opened.run_sync(lambda: opened.create("t1", idempotency_key="k"))
        with (
            pytest.raises(IdempotencyKeyError, match="track_sync"),
            opened.track_sync(thread_id="t1", idempotency_key="k"),
        ):
            pytest.fail("the block must not run")
        assert first.idempotency_reused
