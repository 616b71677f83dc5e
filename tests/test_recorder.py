"""RunRecorder: one callback handler that records every root graph invocation it sees, on
every checkpointer (the package's SQLAlchemySaver on SQLite and PostgreSQL, the stock
InMemorySaver, AsyncSqliteSaver and AsyncPostgresSaver, and none), sync and async, from
many tasks and threads at once."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command

from langgraph_runstore import (
    MemoryRunStore,
    RunManager,
    RunRecorder,
    RunStatus,
    RunStore,
    SQLRunStore,
    SyncRunManager,
)
from tests.backends import libpq_url
from tests.graphs import (
    State,
    approval_graph,
    listed_model,
    reply,
    single_node_graph,
    tokens_only,
    two_model_graph,
)

pytestmark = pytest.mark.asyncio

CHECKPOINTERS = [
    "none",
    "memory",
    "stock-sqlite",
    pytest.param("stock-postgres", marks=pytest.mark.postgres),
    "runstore-sqlite",
    pytest.param("runstore-postgres", marks=pytest.mark.postgres),
    pytest.param("runstore-postgres-psycopg", marks=pytest.mark.postgres),
]
#: the stock async savers have no sync path
SYNC_CHECKPOINTERS = ["none", "memory", "runstore-sqlite"]


class CountingModel(BaseChatModel):
    """Answers with usage derived from the last message: ``input_tokens`` is its length,
    so concurrent invocations with different inputs report different numbers."""

    model_name: str = "count-model"

    @property
    def _llm_type(self) -> str:
        return "counting"

    def _generate(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kw: Any
    ) -> ChatResult:
        text = str(messages[-1].content)
        usage = {"input_tokens": len(text), "output_tokens": 2, "total_tokens": len(text) + 2}
        message = AIMessage(
            content=f"echo {text}",
            usage_metadata=usage,  # type: ignore[arg-type]
            response_metadata={"model_name": self.model_name},
        )
        return ChatResult(generations=[ChatGeneration(message=message)])


def counting_graph(checkpointer: Any) -> Any:
    model = CountingModel()

    def answer(state: State) -> dict[str, Any]:
        return {"messages": [model.invoke(state["messages"])]}

    return single_node_graph(answer).compile(checkpointer=checkpointer)


def hi(text: str) -> dict[str, Any]:
    return {"messages": [("user", text)]}


def thread(thread_id: str, **extra: Any) -> dict[str, Any]:
    return {"configurable": {"thread_id": thread_id}, **extra}


@dataclass
class Env:
    name: str
    store: RunStore
    checkpointer: Any


@pytest_asyncio.fixture(params=CHECKPOINTERS)
async def env(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Env]:
    name = request.param
    async with AsyncExitStack() as stack:
        if name.startswith("runstore"):
            url = (
                f"sqlite+aiosqlite:///{tmp_path / 'runstore.db'}"
                if name == "runstore-sqlite"
                else request.getfixturevalue("pg_url")
            )
            store = await stack.enter_async_context(SQLRunStore.from_url(url))
            yield Env(name, store, store.checkpointer)
            return
        store = await stack.enter_async_context(
            SQLRunStore.from_url(f"sqlite+aiosqlite:///{tmp_path / 'runs.db'}")
        )
        checkpointer: Any = None
        if name == "memory":
            checkpointer = InMemorySaver()
        elif name == "stock-sqlite":
            from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

            checkpointer = await stack.enter_async_context(
                AsyncSqliteSaver.from_conn_string(str(tmp_path / "stock.db"))
            )
        elif name == "stock-postgres":
            from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver

            url = libpq_url(request.getfixturevalue("pg_url"))
            checkpointer = await stack.enter_async_context(AsyncPostgresSaver.from_conn_string(url))
            await checkpointer.setup()
        yield Env(name, store, checkpointer)


def needs_thread(env: Env) -> str | None:
    return None if env.checkpointer is None else "t1"


async def only_run(store: RunStore, thread_id: str) -> dict[str, Any]:
    rows = await store.list_by_thread(thread_id)
    assert len(rows) == 1, rows
    return rows[0]


async def test_ainvoke_is_recorded_like_a_tracked_run(env: Env) -> None:
    models = (listed_model(reply("one", input_tokens=11)), listed_model(reply("two", "model-b")))
    graph = two_model_graph(*models).compile(checkpointer=env.checkpointer)
    recorded = graph.with_config(callbacks=[RunRecorder(env.store)])
    await recorded.ainvoke(hi("hello"), thread("t1"))
    row = await only_run(env.store, "t1")

    # the same invocation as a managed run: the numbers must be the same
    again = two_model_graph(
        listed_model(reply("one", input_tokens=11)), listed_model(reply("two", "model-b"))
    ).compile(checkpointer=env.checkpointer)
    manager = RunManager(store=env.store)
    managed = await manager.wait(again, hi("hello"), thread_id="t2")
    await manager.aclose()

    assert row["status"] == "success"
    assert row["run_id"] != managed.run_id
    for name in (
        "input_tokens",
        "output_tokens",
        "total_tokens",
        "llm_call_count",
        "token_usage_by_model",
        "last_ai_message",
        "first_human_message",
        "message_count",
        "model_name",
    ):
        if name == "token_usage_by_model":  # each model's call time differs between runs
            assert tokens_only(row[name]) == tokens_only(managed.token_usage_by_model)
            continue
        assert row[name] == getattr(managed, name), name
    assert row["total_tokens"] == 31 and row["llm_call_count"] == 2


@pytest.mark.parametrize("kind", ["invoke", "stream"])
@pytest.mark.parametrize("saver", SYNC_CHECKPOINTERS)
def test_sync_invoke_and_stream_are_recorded(tmp_path: Path, saver: str, kind: str) -> None:
    with SyncRunManager.from_url(f"sqlite:///{tmp_path / 'runs.db'}") as manager:
        store = manager.store
        assert store is not None
        checkpointer = {
            "none": None,
            "memory": InMemorySaver(),
            "runstore-sqlite": getattr(store, "checkpointer", None),
        }[saver]
        graph = counting_graph(checkpointer).with_config(callbacks=[manager.recorder()])
        config = thread("t1", run_id=uuid.uuid4()) if checkpointer else {"run_id": uuid.uuid4()}
        if kind == "invoke":
            graph.invoke(hi("hello"), config)
        else:
            list(graph.stream(hi("hello"), config, stream_mode="updates"))
        record = manager.get(str(config["run_id"]))
        assert record is not None
        assert record.status is RunStatus.success
        assert record.total_tokens == 7 and record.llm_call_count == 1
        assert record.last_ai_message == "echo hello"
        # without a thread_id the run is a thread of its own
        assert record.thread_id == ("t1" if checkpointer else record.run_id)


async def test_ids_come_from_the_config(tmp_path: Path) -> None:
    async with SQLRunStore.from_url(f"sqlite+aiosqlite:///{tmp_path / 'runs.db'}") as store:
        recorder = RunRecorder(store, assistant_id="fallback-assistant")
        graph = counting_graph(store.checkpointer).with_config(callbacks=[recorder])
        config = {
            "configurable": {"thread_id": "t1", "run_id": "server-run-1", "assistant_id": "a1"},
            "metadata": {"user_id": "alice"},
        }
        await graph.ainvoke(hi("hi"), config)
        row = await store.get("server-run-1")
        assert row is not None
        assert (row["thread_id"], row["assistant_id"], row["user_id"]) == ("t1", "a1", "alice")
        root = uuid.uuid4()
        await graph.ainvoke(hi("again"), {**thread("t1"), "run_id": root})
        second = await store.get(str(root))
        assert second is not None and second["assistant_id"] == "fallback-assistant"


async def test_a_graph_called_inside_a_node_is_part_of_the_outer_run(tmp_path: Path) -> None:
    inner = counting_graph(None)

    async def outer_node(state: State) -> dict[str, Any]:
        result = await inner.ainvoke(state)
        return {"messages": result["messages"][-1:]}

    async with SQLRunStore.from_url(f"sqlite+aiosqlite:///{tmp_path / 'runs.db'}") as store:
        graph = single_node_graph(outer_node).compile(checkpointer=store.checkpointer)
        await graph.with_config(callbacks=[RunRecorder(store)]).ainvoke(hi("hey"), thread("t1"))
        row = await only_run(store, "t1")
        assert row["status"] == "success" and row["llm_call_count"] == 1
        page = await store.list_runs(limit=10)
        assert len(page.runs) == 1


async def test_fifty_concurrent_invocations_through_one_recorder(db_url: str) -> None:
    async with SQLRunStore.from_url(db_url) as store:
        recorder = RunRecorder(store)
        graph = counting_graph(store.checkpointer).with_config(callbacks=[recorder])
        texts = {f"t{i}": "x" * (i + 1) for i in range(50)}
        await asyncio.gather(*(graph.ainvoke(hi(text), thread(t)) for t, text in texts.items()))
        for thread_id, text in texts.items():
            row = await only_run(store, thread_id)
            assert row["status"] == "success"
            assert row["input_tokens"] == len(text), thread_id
            assert row["last_ai_message"] == f"echo {text}"
        assert not recorder._routes  # every invocation's routes were dropped


async def test_sync_invoke_from_four_threads_beside_the_stores_loop(db_url: str) -> None:
    """The store lives on this test's loop; four threads run graph.invoke at once, so the
    recorder's writes go to that loop from each thread."""
    async with SQLRunStore.from_url(db_url) as store:
        recorder = RunRecorder(store)
        graph = counting_graph(InMemorySaver()).with_config(callbacks=[recorder])
        barrier = threading.Barrier(4)

        def call(i: int) -> None:
            barrier.wait()
            graph.invoke(hi("y" * (i + 1)), thread(f"t{i}"))

        await asyncio.gather(*(asyncio.to_thread(call, i) for i in range(4)))
        for i in range(4):
            row = await only_run(store, f"t{i}")
            assert (row["status"], row["input_tokens"]) == ("success", i + 1)


def test_sync_invoke_from_four_threads_on_a_sync_manager(tmp_path: Path) -> None:
    with SyncRunManager.from_url(f"sqlite:///{tmp_path / 'runs.db'}") as manager:
        graph = counting_graph(InMemorySaver()).with_config(callbacks=[manager.recorder()])
        barrier = threading.Barrier(4)

        def call(i: int) -> None:
            barrier.wait()
            graph.invoke(hi("z" * (i + 1)), thread(f"t{i}"))

        workers = [threading.Thread(target=call, args=(i,)) for i in range(4)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(30)
        for i in range(4):
            (run,) = manager.list_by_thread(f"t{i}")
            assert (run.status, run.input_tokens) == (RunStatus.success, i + 1)


async def test_interrupt_and_resume_are_two_runs(env: Env) -> None:
    if env.checkpointer is None:
        pytest.skip("an interrupt needs a checkpointer")
    graph = approval_graph(listed_model(reply("draft"))).compile(checkpointer=env.checkpointer)
    recorded = graph.with_config(callbacks=[RunRecorder(env.store)])
    await recorded.ainvoke(hi("write"), thread("t1"))
    (paused,) = await env.store.list_by_thread("t1")
    assert (paused["status"], paused["stop_reason"]) == ("success", "interrupt")
    assert paused["interrupts"][0]["value"] == "approve the draft?"
    await recorded.ainvoke(Command(resume="yes"), thread("t1"))
    rows = await env.store.list_by_thread("t1")
    assert len(rows) == 2
    resumed = next(row for row in rows if row["run_id"] != paused["run_id"])
    assert resumed["status"] == "success" and resumed["stop_reason"] is None


async def test_a_failing_graph_is_recorded_as_error(store: RunStore) -> None:
    def boom(state: State) -> dict[str, Any]:
        raise ValueError("bad node")

    graph = single_node_graph(boom).compile(checkpointer=InMemorySaver())
    with pytest.raises(ValueError):
        await graph.ainvoke(hi("x"), {**thread("t1"), "callbacks": [RunRecorder(store)]})
    row = await only_run(store, "t1")
    assert (row["status"], row["error"]) == ("error", "ValueError: bad node")


async def test_manager_recorder_holds_the_run_and_skips_managed_runs(tmp_path: Path) -> None:
    async with RunManager.from_url(f"sqlite+aiosqlite:///{tmp_path / 'runs.db'}") as manager:
        store = manager.store
        assert store is not None
        graph = counting_graph(store.checkpointer).with_config(callbacks=[manager.recorder()])
        root = uuid.uuid4()
        await graph.ainvoke(hi("a"), {**thread("t1"), "run_id": root})
        record = await manager.get(str(root))
        assert record is not None and not record.store_only  # held live by the manager
        managed = await manager.wait(graph, hi("b"), thread_id="t2")
        assert managed.total_tokens == 3
        assert [r.run_id for r in await manager.list_by_thread("t2")] == [managed.run_id]


async def test_a_callable_target_is_resolved_at_the_first_invocation(tmp_path: Path) -> None:
    opened: list[RunStore] = []
    recorder = RunRecorder(lambda: opened[0])
    graph = counting_graph(None).with_config(callbacks=[recorder])
    opened.append(MemoryRunStore())
    await graph.ainvoke(hi("late"), {"run_id": (root := uuid.uuid4())})
    row = await opened[0].get(str(root))
    assert row is not None and row["status"] == "success"
    assert recorder.store is opened[0]


def test_bad_targets_and_options_are_refused() -> None:
    from langgraph_runstore import InvalidInputError

    with pytest.raises(InvalidInputError, match="assistant_id"):
        RunRecorder(MemoryRunStore(), assistant_id=5)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="flush_interval"):
        RunRecorder(MemoryRunStore(), flush_interval=0)
    with pytest.raises(InvalidInputError, match="RunRecorder needs a RunManager"):
        RunRecorder("sqlite:///agent.db")  # type: ignore[arg-type]


def test_a_sync_manager_is_a_target_too(tmp_path: Path) -> None:
    with SyncRunManager.from_url(f"sqlite:///{tmp_path / 'runs.db'}") as manager:
        graph = counting_graph(None).with_config(callbacks=[RunRecorder(manager)])
        root = uuid.uuid4()
        graph.invoke(hi("sync"), {"run_id": root})
        record = manager.get(str(root))
        assert record is not None and record.total_tokens == 6


async def test_a_stream_the_caller_stops_reading_ends_abandoned(tmp_path: Path) -> None:
    async with SQLRunStore.from_url(f"sqlite+aiosqlite:///{tmp_path / 'runs.db'}") as store:
        graph = two_model_graph(listed_model(reply("a")), listed_model(reply("b"))).compile(
            checkpointer=InMemorySaver()
        )
        chunks = graph.with_config(callbacks=[RunRecorder(store)]).astream(
            hi("x"), thread("t1"), stream_mode="updates"
        )
        async for _ in chunks:
            break
        await chunks.aclose()
        row = await only_run(store, "t1")
        assert (row["status"], row["stop_reason"], row["error"]) == (
            "interrupted",
            "abandoned",
            None,
        )
