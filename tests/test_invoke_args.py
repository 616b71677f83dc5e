"""Managed runs take LangGraph's invoke arguments: ``context`` (a ``create_agent`` with a
``context_schema``), ``durability``, ``interrupt_before``/``interrupt_after``,
``checkpoint_id``, a merged ``config``, ``subgraphs`` for ``stream``, sync ``invoke`` with
``timeout``, and ``submit`` storing them for a worker. Bad values fail before a row is
written; unknown keywords raise TypeError naming the public method."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, SystemMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime

from langgraph_runstore import (
    InvalidInputError,
    RunManager,
    RunStatus,
    RunStore,
    SQLRunStore,
    SyncRunManager,
)
from tests.graphs import State, listed_model, reply, single_node_graph, two_model_graph

pytestmark = pytest.mark.asyncio


def hi(text: str) -> dict[str, Any]:
    return {"messages": [("user", text)]}


@dataclass
class Ctx:
    user_name: str


class PromptEcho(BaseChatModel):
    """Answers with the system prompt it was given, and reports usage."""

    @property
    def _llm_type(self) -> str:
        return "prompt-echo"

    def _generate(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kw: Any
    ) -> ChatResult:
        system = next((m.content for m in messages if isinstance(m, SystemMessage)), "")
        message = AIMessage(
            content=f"system said: {system}",
            usage_metadata={"input_tokens": 4, "output_tokens": 2, "total_tokens": 6},
            response_metadata={"model_name": "echo"},
        )
        return ChatResult(generations=[ChatGeneration(message=message)])

    def bind_tools(self, tools: Any, **kwargs: Any) -> Any:
        return self


async def test_create_agent_with_a_context_schema_under_wait(tmp_path: Path) -> None:
    from langchain.agents import create_agent
    from langchain.agents.middleware import ModelRequest, dynamic_prompt

    @dynamic_prompt
    def greet(request: ModelRequest) -> str:
        return f"The user is {request.runtime.context.user_name}."

    async with SQLRunStore.from_url(f"sqlite+aiosqlite:///{tmp_path / 'r.db'}") as store:
        agent = create_agent(
            PromptEcho(),
            tools=[],
            middleware=[greet],
            context_schema=Ctx,
            checkpointer=store.checkpointer,
        )
        async with RunManager(store=store) as manager:
            run = await manager.wait(agent, hi("who am I?"), thread_id="t1", context=Ctx("Ada"))
        assert run.status is RunStatus.success, run.error
        assert run.last_ai_message == "system said: The user is Ada."
        assert run.total_tokens == 6


def counting_checkpoints_graph(checkpointer: Any) -> Any:
    return two_model_graph(listed_model(reply("a")), listed_model(reply("b"))).compile(
        checkpointer=checkpointer
    )


async def checkpoint_count(graph: Any, thread_id: str) -> int:
    config: RunnableConfig = {"configurable": {"thread_id": thread_id}}
    return len([c async for c in graph.aget_state_history(config)])


async def test_durability_exit_writes_fewer_checkpoints(store: RunStore) -> None:
    graph = counting_checkpoints_graph(InMemorySaver())
    async with RunManager(store=store) as manager:
        await manager.wait(graph, hi("x"), thread_id="every-step", durability="sync")
        await manager.wait(graph, hi("x"), thread_id="at-exit", durability="exit")
    assert await checkpoint_count(graph, "at-exit") < await checkpoint_count(graph, "every-step")


async def test_interrupt_before_pauses_the_run(store: RunStore) -> None:
    graph = counting_checkpoints_graph(InMemorySaver())
    async with RunManager(store=store) as manager:
        run = await manager.wait(graph, hi("x"), thread_id="t1", interrupt_before=["check"])
        assert (run.status, run.stop_reason) == (RunStatus.success, "interrupt")
        state = await graph.aget_state({"configurable": {"thread_id": "t1"}})
        assert state.next == ("check",)
        after = await manager.wait(graph, None, thread_id="t1", interrupt_after="*")
        assert after.stop_reason == "interrupt"
        state = await graph.aget_state({"configurable": {"thread_id": "t1"}})
        assert state.next == ("note",)


async def test_checkpoint_id_starts_from_an_earlier_checkpoint(db_url: str) -> None:
    async with SQLRunStore.from_url(db_url) as store, RunManager(store=store) as manager:
        graph = counting_checkpoints_graph(store.checkpointer)
        await manager.wait(graph, hi("first"), thread_id="t1")
        config: RunnableConfig = {"configurable": {"thread_id": "t1"}}
        history = [c async for c in graph.aget_state_history(config)]
        start = next(c for c in history if c.next == ("ask",))  # before the first model
        forked = await manager.wait(
            graph,
            None,
            thread_id="t1",
            checkpoint_id=start.config["configurable"]["checkpoint_id"],
        )
        assert forked.status is RunStatus.success
        contents = [m.content for m in forked.output["messages"]]
        assert contents == ["first", "a", "b", "noted"]  # replayed from there, not appended

        before = len(await manager.list_by_thread("t1"))
        with pytest.raises(InvalidInputError, match="names no checkpoint"):
            await manager.start(graph, None, thread_id="t1", checkpoint_id="nope")
        assert len(await manager.list_by_thread("t1")) == before


async def test_config_is_merged_and_stream_takes_subgraphs(store: RunStore) -> None:
    seen: dict[str, Any] = {}

    def look(state: State, config: RunnableConfig) -> dict[str, Any]:
        seen.update(config["configurable"])
        seen["tags"] = config.get("tags")
        return {"messages": [("ai", "looked")]}

    inner = single_node_graph(look).compile()
    outer = StateGraph(State)
    outer.add_node("sub", inner)
    outer.add_edge(START, "sub")
    outer.add_edge("sub", END)
    graph = outer.compile(checkpointer=InMemorySaver())
    async with RunManager(store=store) as manager:
        chunks = [
            chunk
            async for chunk in manager.stream(
                graph,
                hi("x"),
                thread_id="t1",
                stream_mode="updates",
                subgraphs=True,
                config={"configurable": {"tenant": "acme"}, "tags": ["mine"]},
            )
        ]
    assert seen["tenant"] == "acme" and seen["thread_id"] == "t1" and "mine" in seen["tags"]
    namespaces = [chunk[1][0] for chunk in chunks]
    assert any(ns and ns[0].startswith("sub:") for ns in namespaces), chunks


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"durability": "sometimes"}, "durability must be one of"),
        ({"interrupt_before": ["nowhere"]}, "nodes the graph does not have"),
        ({"interrupt_after": "ask"}, "list of node names"),
        ({"checkpoint_id": ""}, "checkpoint_id"),
    ],
)
async def test_bad_invoke_arguments_write_nothing(
    store: RunStore, options: dict[str, Any], match: str
) -> None:
    graph = counting_checkpoints_graph(InMemorySaver())
    async with RunManager(store=store) as manager:
        with pytest.raises(InvalidInputError, match=match):
            await manager.wait(graph, hi("x"), thread_id="t1", **options)
        assert await manager.list_by_thread("t1") == []


async def test_unknown_keywords_name_the_public_method(store: RunStore) -> None:
    graph = counting_checkpoints_graph(InMemorySaver())
    async with RunManager(store=store) as manager:
        for method in ("start", "wait"):
            with pytest.raises(TypeError, match=rf"RunManager\.{method}\(\) .* 'contxt'"):
                await getattr(manager, method)(graph, hi("x"), thread_id="t1", contxt=1)
        with pytest.raises(TypeError, match=r"RunManager\.stream\(\)"):
            async for _ in manager.stream(graph, hi("x"), thread_id="t1", bogus=True):
                pass
        assert await manager.list_by_thread("t1") == []


def test_sync_invoke_takes_timeout_and_langgraph_arguments(tmp_path: Path) -> None:
    def slow(state: State) -> dict[str, Any]:
        time.sleep(0.3)
        return {"messages": [("ai", "slow")]}

    def never(state: State) -> dict[str, Any]:
        raise AssertionError("the deadline passed before this node")

    builder = StateGraph(State)
    builder.add_node("slow", slow)
    builder.add_node("never", never)
    builder.add_edge(START, "slow")
    builder.add_edge("slow", "never")
    builder.add_edge("never", END)
    with SyncRunManager.from_url(f"sqlite:///{tmp_path / 'r.db'}") as manager:
        graph = builder.compile(checkpointer=InMemorySaver())
        run = manager.invoke(graph, hi("x"), thread_id="t1", timeout=0.1)
        assert (run.status, run.stop_reason) == (RunStatus.timeout, "timeout")
        stored = manager.get(run.run_id)
        assert stored is not None and stored.status is RunStatus.timeout

        other = two_model_graph(listed_model(reply("a")), listed_model(reply("b")), sync=True)
        other = other.compile(checkpointer=InMemorySaver())
        paused = manager.invoke(other, hi("y"), thread_id="t2", interrupt_after=["ask"])
        assert paused.stop_reason == "interrupt"
        chunks = list(
            manager.stream(other, None, thread_id="t2", stream_mode="updates", durability="exit")
        )
        assert [next(iter(c)) for c in chunks] == ["check", "note"]
        with pytest.raises(TypeError, match=r"RunManager\.invoke\(\)"):
            manager.invoke(other, hi("z"), thread_id="t3", durabilty="exit")


async def test_submit_stores_the_invoke_arguments_for_a_worker(db_url: str) -> None:
    seen: list[Any] = []

    def node(state: State, runtime: Runtime[Ctx]) -> dict[str, Any]:
        seen.append(runtime.context)
        return {"messages": [("ai", f"hello {runtime.context.user_name}")]}

    builder = StateGraph(State, context_schema=Ctx)
    builder.add_node("greet", node)
    builder.add_edge(START, "greet")
    builder.add_edge("greet", END)
    async with SQLRunStore.from_url(db_url) as store:
        graph = builder.compile(checkpointer=store.checkpointer)
        client = RunManager(store=store)
        async with RunManager(store=store, graphs={"greeter": graph}, poll_interval=0.02):
            run = await client.submit(
                "greeter", hi("x"), thread_id="t1", context=Ctx("Bo"), durability="exit"
            )
            row = await store.get(run.run_id)
            assert row is not None
            assert row["kwargs"]["invoke"] == {"context": {"user_name": "Bo"}, "durability": "exit"}
            done = await asyncio.wait_for(client.join(run.run_id, poll_interval=0.02), 30)
        assert done.status is RunStatus.success, done.error
        assert seen == [Ctx("Bo")]
        with pytest.raises(InvalidInputError, match="context of a submitted run"):
            await client.submit("greeter", hi("x"), thread_id="t2", context=object())
        await client.aclose()
