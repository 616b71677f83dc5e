"""Run budgets on a real tool-calling agent (``create_agent`` + ``ChatOpenAI`` talking HTTP
to the fake provider API) that would call its model eleven times: ten tool calls, then the
answer. Each limit stops the run before the call after the one that reached it; the run
ends ``interrupted`` with the limit's stop reason, the checkpoints so far stay, the thread
reads ``error`` and a later run resumes it to the end.

Each scripted call reports 100 input and 10 output tokens (110). gpt-4o-mini costs 0.15 USD
per million input and 0.60 per million output tokens (genai-prices 0.2.3): 2.1e-5 USD a call.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from langchain.agents import create_agent
from langchain_core.messages import AIMessage
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI

from langgraph_runstore import (
    InvalidInputError,
    RecoveryPolicy,
    RunManager,
    RunRecord,
    RunStatus,
    SQLRunStore,
    SyncRunManager,
    ThreadStatus,
)
from langgraph_runstore.budget import Budget
from tests.providers.fake_api import FakeProviderAPI, Reply, Usage

pytestmark = pytest.mark.anyio

QUESTION = {"messages": [{"role": "user", "content": "check ten cities"}]}
LOOPS = 10
CALL_TOKENS = 110
CALL_USD = (100 * 0.15 + 10 * 0.60) / 1e6


@tool
def lookup(city: str) -> str:
    """Look up the weather in a city."""
    return f"sunny in {city}"


def script(api: FakeProviderAPI) -> None:
    api.script(
        *(
            Reply(
                tool_calls=(("lookup", {"city": f"city-{i}"}),), usage=Usage(input=100, output=10)
            )
            for i in range(LOOPS)
        ),
        Reply(text="all sunny", usage=Usage(input=100, output=10)),
    )


@dataclass
class Env:
    api: FakeProviderAPI
    store: SQLRunStore
    manager: RunManager
    graph: Any

    def model_requests(self) -> int:
        return sum(1 for r in self.api.requests if r["path"].endswith("/chat/completions"))


@pytest.fixture
def api() -> Iterator[FakeProviderAPI]:
    with FakeProviderAPI() as server:
        script(server)
        yield server


def agent(api: FakeProviderAPI, checkpointer: Any) -> Any:
    model = ChatOpenAI(
        model="gpt-4o-mini", base_url=api.openai_base_url, api_key="t", max_retries=0
    )
    return create_agent(model, tools=[lookup], checkpointer=checkpointer)


@pytest.fixture
async def env(api: FakeProviderAPI, db_url: str) -> AsyncIterator[Env]:
    async with SQLRunStore.from_url(db_url) as store:
        manager = RunManager(store=store)
        yield Env(api, store, manager, agent(api, store.checkpointer))
        await manager.aclose()


LIMITS = {
    # 110, 220 < 250; the third call makes 330 >= 250: the fourth never starts
    "token_capped": Budget(max_total_tokens=250),
    # 2 calls 4.2e-5 < 5e-5, 3 calls 6.3e-5 >= 5e-5
    "cost_capped": Budget(max_cost_usd=5e-5),
    "loop_capped": Budget(max_llm_calls=3),
}


async def assert_capped_and_resumable(env: Env, run: RunRecord, reason: str) -> None:
    assert run.status is RunStatus.interrupted, run.error
    assert run.stop_reason == reason
    assert run.llm_call_count == 3 and env.model_requests() == 3  # the fourth never went out
    assert run.total_tokens == 3 * CALL_TOKENS
    assert run.cost_usd == pytest.approx(3 * CALL_USD)
    row = await env.store.get(run.run_id)
    assert row is not None and row["status"] == "interrupted" and row["stop_reason"] == reason
    # the checkpoints so far are intact: three model turns and their tool results, and the
    # model node is next
    config = {"configurable": {"thread_id": run.thread_id}}
    state = await env.graph.aget_state(config)
    assert len(state.values["messages"]) == 1 + 3 * 2
    assert state.next == ("model",)
    assert await env.manager.thread_status(run.thread_id) is ThreadStatus.error
    resumed = await env.manager.wait(env.graph, None, thread_id=run.thread_id)
    assert resumed.status is RunStatus.success, resumed.error
    assert resumed.llm_call_count == LOOPS + 1 - 3 and resumed.last_ai_message == "all sunny"
    assert await env.manager.thread_status(run.thread_id) is ThreadStatus.idle


@pytest.mark.parametrize("reason", list(LIMITS))
async def test_each_limit_stops_a_managed_run_before_its_next_call(env: Env, reason: str) -> None:
    run = await env.manager.wait(env.graph, QUESTION, thread_id="t1", budget=LIMITS[reason])
    await assert_capped_and_resumable(env, run, reason)


async def test_track_ends_the_block_like_a_cancel(env: Env) -> None:
    after: list[str] = []
    async with env.manager.track(thread_id="t1", budget=Budget(max_llm_calls=3)) as run:
        await env.graph.ainvoke(QUESTION, run.config)
        after.append("not reached")  # the cancel ends the block here, as cancel() does
    assert after == []
    await assert_capped_and_resumable(env, run, "loop_capped")


async def test_a_bare_tracker_with_a_budget(env: Env) -> None:
    record = await env.manager.create("t1")
    tracker = env.manager.tracker(record.run_id, budget=Budget(max_total_tokens=250))
    config = {"callbacks": [tracker], "configurable": {"thread_id": "t1", "run_id": record.run_id}}
    task = asyncio.ensure_future(env.graph.ainvoke(QUESTION, config))
    with pytest.raises(asyncio.CancelledError):
        await task  # the task that ran the graph is cancelled, as cancel() cancels it
    await assert_capped_and_resumable(env, await env.manager.get(record.run_id), "token_capped")


async def test_a_streamed_run_stops_too(env: Env) -> None:
    chunks = [
        chunk
        async for chunk in env.manager.stream(
            env.graph, QUESTION, thread_id="t1", stream_mode="updates", budget=LIMITS["cost_capped"]
        )
    ]
    assert len(chunks) == 3 * 2  # three model and three tool updates
    [run] = await env.manager.list_by_thread("t1")
    await assert_capped_and_resumable(env, run, "cost_capped")


async def test_the_managers_budget_is_every_runs_default(env: Env) -> None:
    manager = RunManager(store=env.store, budget=Budget(max_llm_calls=3))
    run = await manager.wait(env.graph, QUESTION, thread_id="t1")
    await manager.aclose()
    await assert_capped_and_resumable(env, run, "loop_capped")


async def test_a_run_budget_overrides_the_managers(env: Env) -> None:
    manager = RunManager(store=env.store, budget=Budget(max_llm_calls=1))
    run = await manager.wait(env.graph, QUESTION, thread_id="t1", budget=Budget(max_llm_calls=3))
    await manager.aclose()
    await assert_capped_and_resumable(env, run, "loop_capped")


def test_a_sync_invoke_stops_too(api: FakeProviderAPI, tmp_path: Any) -> None:
    with SyncRunManager.from_url(f"sqlite:///{tmp_path / 'sync.db'}") as manager:
        graph = agent(api, manager.store.checkpointer)  # type: ignore[union-attr]
        run = manager.invoke(graph, QUESTION, thread_id="t1", budget=Budget(max_llm_calls=3))
        assert run.status is RunStatus.interrupted and run.stop_reason == "loop_capped"
        assert run.llm_call_count == 3
        assert len(api.requests) == 3
        state = graph.get_state({"configurable": {"thread_id": "t1"}})
        assert len(state.values["messages"]) == 7 and state.next == ("model",)
        assert manager.thread_status("t1") is ThreadStatus.error
        resumed = manager.invoke(graph, None, thread_id="t1")
        assert resumed.status is RunStatus.success and resumed.llm_call_count == 8


async def test_a_submitted_run_carries_its_budget_to_the_worker(
    api: FakeProviderAPI, tmp_path: Any
) -> None:
    """The worker that claims a run enforces the budget it was submitted with, and its
    recovery never retries the capped run."""
    async with SQLRunStore.from_url(f"sqlite+aiosqlite:///{tmp_path / 'q.db'}") as store:
        graph = agent(api, store.checkpointer)
        async with RunManager(
            store=store,
            graphs={"agent": graph},
            lease_seconds=2,
            grace_seconds=0,
            recovery=RecoveryPolicy(running="requeue", max_attempts=5),
        ) as worker:
            run = await worker.submit(
                "agent", QUESTION, thread_id="t1", budget=Budget(max_llm_calls=3)
            )
            assert run.kwargs["budget"] == {"max_llm_calls": 3}
            done = await worker.join(run.run_id)
            assert done.status is RunStatus.interrupted and done.stop_reason == "loop_capped"
            assert done.llm_call_count == 3
            assert await worker._workers.sweep() == []  # type: ignore[union-attr]
            again = await store.get(run.run_id)
            assert again is not None and again["status"] == "interrupted"
            assert again["attempt"] <= 1


async def test_a_budget_with_enqueue_counts_from_the_runs_start(env: Env) -> None:
    """A queued run's budget applies once it starts: what runs before it on the thread, and
    the time it waits, do not count."""
    first = await env.manager.start(
        env.graph, QUESTION, thread_id="t1", budget=Budget(max_llm_calls=2)
    )
    second = await env.manager.start(
        env.graph,
        None,
        thread_id="t1",
        multitask_strategy="enqueue",
        budget=Budget(max_llm_calls=2),
    )
    first, second = await env.manager.join(first.run_id), await env.manager.join(second.run_id)
    assert (first.stop_reason, first.llm_call_count) == ("loop_capped", 2)
    assert (second.stop_reason, second.llm_call_count) == ("loop_capped", 2)
    assert env.model_requests() == 4


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max_total_tokens": 0}, "max_total_tokens must be a whole number > 0"),
        ({"max_llm_calls": -1}, "max_llm_calls must be a whole number > 0"),
        ({"max_llm_calls": True}, "max_llm_calls"),
        ({"max_total_tokens": 1.5}, "max_total_tokens"),
        ({"max_cost_usd": 0}, "max_cost_usd must be a finite number of USD > 0"),
        ({"max_cost_usd": -0.5}, "max_cost_usd"),
        ({"max_cost_usd": float("inf")}, "max_cost_usd"),
        ({"max_cost_usd": float("nan")}, "max_cost_usd"),
    ],
)
def test_bad_limits_are_refused(options: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        Budget(**options)


@pytest.mark.parametrize("bad", ["10 calls", 5, {"max_calls": 3}, {"max_llm_calls": 0}])
async def test_a_bad_budget_is_refused_before_anything_is_written(env: Env, bad: Any) -> None:
    with pytest.raises(InvalidInputError, match=r"[bB]udget"):
        await env.manager.start(env.graph, QUESTION, thread_id="t1", budget=bad)
    with pytest.raises(InvalidInputError, match=r"[bB]udget"):
        async with env.manager.track(thread_id="t2", budget=bad):
            pass
    with pytest.raises(InvalidInputError):
        RunManager(budget=bad)
    assert (await env.store.list_runs()).runs == ()
    assert env.model_requests() == 0


async def test_a_run_within_its_budget_is_untouched(env: Env) -> None:
    run = await env.manager.wait(
        env.graph, QUESTION, thread_id="t1", budget=Budget(max_llm_calls=11, max_cost_usd=1.0)
    )
    assert run.status is RunStatus.success and run.stop_reason is None
    assert run.llm_call_count == 11 and isinstance(run.output["messages"][-1], AIMessage)


async def test_a_recorded_invocation_stops_at_the_recorders_budget(env: Env) -> None:
    recorder = env.manager.recorder(budget=Budget(max_llm_calls=3))
    graph = env.graph.with_config(callbacks=[recorder])
    task = asyncio.ensure_future(graph.ainvoke(QUESTION, {"configurable": {"thread_id": "t1"}}))
    with pytest.raises(asyncio.CancelledError):
        await task  # the invocation's task is cancelled, as cancel() cancels it
    [run] = await env.manager.list_by_thread("t1")
    await assert_capped_and_resumable(env, run, "loop_capped")
