"""The Agent Server recipe, for real: ``langgraph dev`` serving the example deployment
(``langgraph_runstore.agent_server.checkpointer`` in its ``langgraph.json``, graphs wrapped
by ``recorded()``), driven by the real ``langgraph-sdk`` client; then the run store, opened
from the same URL, must hold each run under the server's ids, with its status and tokens,
and the threads' checkpoints must be in the package's own tables."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from langgraph_runstore import RunStatus, SQLRunStore, ThreadStatus
from tests.agent_server.conftest import Deployment

pytestmark = pytest.mark.anyio

#: seconds any one client call may take
CALL_TIMEOUT = 60
USER = "alice"


@pytest.fixture
async def client(deployment: Deployment) -> AsyncIterator[Any]:
    from langgraph_sdk import get_client

    async with get_client(url=deployment.server.url, headers={"x-user": USER}) as opened:
        yield opened


@pytest.fixture
async def store(deployment: Deployment) -> AsyncIterator[SQLRunStore]:
    async with SQLRunStore.from_url(deployment.db_url) as opened:
        yield opened


async def assistant_id(client: Any, graph_id: str) -> str:
    (found,) = await client.assistants.search(graph_id=graph_id)
    return str(found["assistant_id"])


async def checkpoint_run_ids(store: SQLRunStore, thread_id: str) -> set[str]:
    config = {"configurable": {"thread_id": thread_id}}
    return {
        str(item.metadata.get("run_id"))
        async for item in store.checkpointer.alist(config)  # type: ignore[arg-type]
    }


async def test_wait_records_the_servers_run(
    deployment: Deployment, client: Any, store: SQLRunStore
) -> None:
    async with asyncio.timeout(CALL_TIMEOUT):
        thread = await client.threads.create()
        thread_id = thread["thread_id"]
        state = await client.runs.wait(
            thread_id, "agent", input={"messages": [{"role": "user", "content": "hello"}]}
        )
        (server_run,) = await client.runs.list(thread_id)
        agent = await assistant_id(client, "agent")

    assert state["messages"][-1]["content"] == "The server ran me; the run store kept the count."
    run = await store.get(server_run["run_id"])
    assert run is not None, deployment.server.output()
    assert run["thread_id"] == thread_id
    assert run["assistant_id"] == agent == server_run["assistant_id"]
    assert run["user_id"] == USER
    assert run["status"] == RunStatus.success.value
    assert (run["input_tokens"], run["output_tokens"], run["total_tokens"]) == (12, 10, 22)
    assert run["llm_call_count"] == 1
    assert run["token_usage_by_model"]["fake-gpt"]["total_tokens"] == 22
    assert run["last_ai_message"] == "The server ran me; the run store kept the count."
    assert run["first_human_message"] == "hello"
    # the thread's checkpoints are in the package's tables, under the server's run id
    assert await checkpoint_run_ids(store, thread_id) == {server_run["run_id"]}


async def test_stream_records_the_streamed_run(client: Any, store: SQLRunStore) -> None:
    events: list[tuple[str, Any]] = []
    async with asyncio.timeout(CALL_TIMEOUT):
        thread = await client.threads.create()
        async for part in client.runs.stream(
            thread["thread_id"],
            "agent",
            input={"messages": [{"role": "user", "content": "stream it"}]},
            stream_mode=["updates", "messages-tuple"],
        ):
            events.append((part.event, part.data))
        server_run = await client.runs.get(thread["thread_id"], events[0][1]["run_id"])

    assert events[0][0] == "metadata"
    assert any(event == "updates" for event, _ in events)
    assert server_run["status"] == "success"
    run = await store.get(server_run["run_id"])
    assert run is not None
    assert run["thread_id"] == thread["thread_id"]
    assert run["status"] == RunStatus.success.value
    assert run["llm_call_count"] == 1
    assert run["total_tokens"] > 0


async def test_interrupt_then_resume_are_two_runs(client: Any, store: SQLRunStore) -> None:
    async with asyncio.timeout(CALL_TIMEOUT):
        thread = await client.threads.create()
        thread_id = thread["thread_id"]
        paused = await client.runs.wait(
            thread_id, "approval", input={"messages": [{"role": "user", "content": "draft"}]}
        )
        (first,) = await client.runs.list(thread_id)
        server_thread = await client.threads.get(thread_id)
        interrupted_status = server_thread["status"]
        resumed = await client.runs.wait(thread_id, "approval", command={"resume": "yes"})
        listed = await client.runs.list(thread_id)
        second = next(r for r in listed if r["run_id"] != first["run_id"])

    assert paused["__interrupt__"][0]["value"] == "approve the answer?"
    assert interrupted_status == "interrupted"
    assert resumed["messages"][-1]["content"] == "approved: yes"
    paused_run = await store.get(first["run_id"])
    resumed_run = await store.get(second["run_id"])
    assert paused_run is not None and resumed_run is not None
    # the Platform's semantics: a run that stops at interrupt() succeeded
    assert (paused_run["status"], paused_run["stop_reason"]) == ("success", "interrupt")
    assert paused_run["llm_call_count"] == 1 and paused_run["total_tokens"] > 0
    assert resumed_run["status"] == "success" and resumed_run["stop_reason"] is None
    assert resumed_run["llm_call_count"] == 0
    assert resumed_run["thread_id"] == thread_id
    # both runs checkpointed into the package's tables
    assert {first["run_id"], second["run_id"]} <= await checkpoint_run_ids(store, thread_id)


async def test_cancel_of_a_running_run_is_recorded_interrupted(
    deployment: Deployment, client: Any, store: SQLRunStore
) -> None:
    deployment.skip_cancel()
    run_id = None
    async with asyncio.timeout(CALL_TIMEOUT):
        thread = await client.threads.create()
        thread_id = thread["thread_id"]
        async for part in client.runs.stream(
            thread_id,
            "held",
            input={"messages": [{"role": "user", "content": "wait"}]},
            stream_mode="custom",
        ):
            if part.event == "metadata":
                run_id = part.data["run_id"]
            elif part.event == "custom" and part.data == "holding":
                # the run has made its LLM call and now waits: cancel it from the outside
                await client.runs.cancel(thread_id, run_id, action="interrupt", wait=True)
        server_run = await client.runs.get(thread_id, run_id)

    assert server_run["status"] == "interrupted"
    run = await store.get(run_id)
    assert run is not None
    assert run["status"] == RunStatus.interrupted.value
    assert run["stop_reason"] == "cancelled"
    # what the run did before the cancel is kept
    assert run["llm_call_count"] == 1
    assert (run["input_tokens"], run["output_tokens"]) == (11, 4)
    assert set(run["token_usage_by_model"]) == {"model-b"}


async def test_rollback_removes_the_runs_checkpoints(
    deployment: Deployment, client: Any, store: SQLRunStore
) -> None:
    deployment.skip_cancel()
    run_id = None
    async with asyncio.timeout(CALL_TIMEOUT):
        thread = await client.threads.create()
        thread_id = thread["thread_id"]
        async for part in client.runs.stream(
            thread_id,
            "held",
            input={"messages": [{"role": "user", "content": "wait"}]},
            stream_mode="custom",
        ):
            if part.event == "metadata":
                run_id = part.data["run_id"]
            elif part.event == "custom" and part.data == "holding":
                assert run_id in await checkpoint_run_ids(store, thread_id)
                await client.runs.cancel(thread_id, run_id, action="rollback", wait=True)

    # the server deletes the run and asks our saver to drop its checkpoints
    assert run_id not in await checkpoint_run_ids(store, thread_id)
    run = await store.get(run_id)
    assert run is not None
    assert run["status"] == RunStatus.interrupted.value


async def test_thread_status_reads_from_the_same_store(client: Any, store: SQLRunStore) -> None:
    from langgraph_runstore import RunManager

    async with asyncio.timeout(CALL_TIMEOUT):
        thread = await client.threads.create()
        await client.runs.wait(
            thread["thread_id"],
            "approval",
            input={"messages": [{"role": "user", "content": "again"}]},
        )
    manager = RunManager(store=store)
    try:
        assert await manager.thread_status(thread["thread_id"]) == ThreadStatus.interrupted
    finally:
        await manager.aclose()


async def test_the_authenticated_user_names_the_run_not_the_clients_metadata(
    client: Any, store: SQLRunStore
) -> None:
    async with asyncio.timeout(CALL_TIMEOUT):
        thread = await client.threads.create()
        await client.runs.wait(
            thread["thread_id"],
            "agent",
            input={"messages": [{"role": "user", "content": "who am i"}]},
            metadata={"user_id": "mallory"},
        )
        (server_run,) = await client.runs.list(thread["thread_id"])

    run = await store.get(server_run["run_id"])
    assert run is not None
    assert run["user_id"] == USER


async def test_a_stateless_run_is_recorded_on_its_temporary_thread(
    client: Any, store: SQLRunStore
) -> None:
    created: list[dict[str, Any]] = []
    async with asyncio.timeout(CALL_TIMEOUT):
        state = await client.runs.wait(
            None,
            "agent",
            input={"messages": [{"role": "user", "content": "no thread"}]},
            on_run_created=created.append,
        )
    assert state["messages"][-1]["type"] == "ai"
    (meta,) = created
    run = await store.get(meta["run_id"])
    assert run is not None
    # the server made a thread for the run and deleted it after; the row keeps its id
    assert run["thread_id"] == meta["thread_id"]
    assert run["status"] == RunStatus.success.value
    assert run["llm_call_count"] == 1
    # a stateless run runs without a checkpointer
    assert await checkpoint_run_ids(store, meta["thread_id"]) == set()
