"""Run records of real provider clients: langchain-openai and langchain-anthropic talking HTTP
to the fake provider API on 127.0.0.1, through every way in, on SQLite and PostgreSQL.

Every expected number is written by hand from the scripted replies: the fake API reports
usage as each provider documents it, and the comments say how each total adds up.
"""

from __future__ import annotations

import logging
import operator
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypedDict

import pytest
from langchain.agents import create_agent
from langchain_anthropic import ChatAnthropic
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI
from langgraph.graph import END, START, StateGraph
from langgraph.types import Send

from langgraph_runstore import RunManager, RunRecord, RunStatus, SQLRunStore
from langgraph_runstore.schemas import TOKEN_FIELDS
from tests.graphs import State, tokens_only
from tests.providers.fake_api import FakeProviderAPI, Reply, Usage

pytestmark = pytest.mark.asyncio

QUESTION = "What is the weather in Paris?"
ANSWER = "It is sunny in Paris."
TOKEN_NAMES = TOKEN_FIELDS  # input, output, total, cache_read, cache_creation, reasoning


@tool
def lookup(city: str) -> str:
    """Look up the weather in a city."""
    return f"sunny in {city}"


@dataclass(frozen=True)
class Provider:
    name: str
    model: str
    make: Callable[..., Any]
    replies: tuple[Reply, ...]
    expected: dict[str, int]


def _openai(api: FakeProviderAPI, model: str, **options: Any) -> ChatOpenAI:
    return ChatOpenAI(
        model=model, base_url=api.openai_base_url, api_key="test", max_retries=0, **options
    )


def _anthropic(api: FakeProviderAPI, model: str, **options: Any) -> ChatAnthropic:
    return ChatAnthropic(  # type: ignore[call-arg]
        model=model, base_url=api.anthropic_base_url, api_key="test", max_retries=0, **options
    )


# OpenAI, service tier flex. Call 1: 100 fresh + 50 cached = 150 prompt tokens, 20 completion
# (8 of them reasoning) = 170. Call 2: 130 + 50 = 180 prompt, 12 completion = 192.
OPENAI_REPLIES = (
    Reply(
        tool_calls=(("lookup", {"city": "Paris"}),),
        usage=Usage(input=100, cache_read=50, output=20, reasoning=8, service_tier="flex"),
    ),
    Reply(text=ANSWER, usage=Usage(input=130, cache_read=50, output=12, service_tier="flex")),
)
OPENAI_EXPECTED = dict(zip(TOKEN_NAMES, (330, 32, 362, 100, 0, 8), strict=True))

# Anthropic. Call 1: 40 fresh + 200 read + 60 (5m) + 30 (1h) written = 330 input, 25 output
# (10 of them thinking) = 355. Call 2: 20 + 290 read = 310 input, 15 output = 325.
ANTHROPIC_REPLIES = (
    Reply(
        tool_calls=(("lookup", {"city": "Paris"}),),
        thinking="I should look it up.",
        usage=Usage(
            input=40, output=25, cache_read=200, cache_write_5m=60, cache_write_1h=30, reasoning=10
        ),
    ),
    Reply(text=ANSWER, usage=Usage(input=20, output=15, cache_read=290)),
)
ANTHROPIC_EXPECTED = dict(zip(TOKEN_NAMES, (640, 40, 680, 490, 90, 10), strict=True))

PROVIDERS = {
    "openai-chat": Provider(
        "openai-chat",
        "gpt-4.1-mini",
        lambda api, model: _openai(api, model, stream_usage=True),
        OPENAI_REPLIES,
        OPENAI_EXPECTED,
    ),
    "openai-responses": Provider(
        "openai-responses",
        "gpt-5-mini",
        lambda api, model: _openai(api, model, stream_usage=True, use_responses_api=True),
        OPENAI_REPLIES,
        OPENAI_EXPECTED,
    ),
    "anthropic": Provider(
        "anthropic", "claude-sonnet-4-5", _anthropic, ANTHROPIC_REPLIES, ANTHROPIC_EXPECTED
    ),
}


@pytest.fixture
def api() -> Iterator[FakeProviderAPI]:
    with FakeProviderAPI() as server:
        yield server


def agent(model: Any, checkpointer: Any) -> Any:
    return create_agent(model, tools=[lookup], checkpointer=checkpointer)


# -- the ways in (async) ----------------------------------------------------------------------

Way = Callable[[RunManager, Any, Any, str], Awaitable[RunRecord]]


async def wait(manager: RunManager, graph: Any, inputs: Any, thread_id: str) -> RunRecord:
    return await manager.wait(graph, inputs, thread_id=thread_id)


async def start_join(manager: RunManager, graph: Any, inputs: Any, thread_id: str) -> RunRecord:
    run = await manager.start(graph, inputs, thread_id=thread_id)
    return await manager.join(run.run_id)


async def track_ainvoke(manager: RunManager, graph: Any, inputs: Any, thread_id: str) -> RunRecord:
    async with manager.track(thread_id=thread_id) as run:
        await graph.ainvoke(inputs, run.config)
    return run


async def track_astream_messages(
    manager: RunManager, graph: Any, inputs: Any, thread_id: str
) -> RunRecord:
    async with manager.track(thread_id=thread_id) as run:
        chunks = [
            chunk async for chunk in graph.astream(inputs, run.config, stream_mode="messages")
        ]
    assert chunks, "the graph streamed no message chunks"
    return run


async def manager_stream(manager: RunManager, graph: Any, inputs: Any, thread_id: str) -> RunRecord:
    modes = {
        mode
        async for mode, _ in manager.stream(
            graph, inputs, thread_id=thread_id, stream_mode=["messages"], subgraphs=True
        )
    }
    assert modes == {"messages"}
    [run] = await manager.list_by_thread(thread_id, limit=1)
    return run


async def bare_tracker(manager: RunManager, graph: Any, inputs: Any, thread_id: str) -> RunRecord:
    record = await manager.create(thread_id)
    config = {
        "callbacks": [manager.tracker(record.run_id)],
        "configurable": {"thread_id": thread_id, "run_id": record.run_id},
    }
    await graph.ainvoke(inputs, config)
    return record


WAYS: dict[str, Way] = {
    "wait": wait,
    "start+join": start_join,
    "track-ainvoke": track_ainvoke,
    "track-astream-messages": track_astream_messages,
    "manager.stream": manager_stream,
    "bare-tracker": bare_tracker,
}

#: the input forms LangGraph accepts, one per way, so every form meets a real provider
INPUTS: dict[str, Any] = {
    "wait": {"messages": [("user", QUESTION)]},
    "start+join": {"messages": [{"role": "user", "content": QUESTION}]},
    "track-ainvoke": {
        "messages": [{"role": "user", "content": [{"type": "text", "text": QUESTION}]}]
    },
    "track-astream-messages": {"messages": QUESTION},
    "manager.stream": {"messages": {"type": "human", "content": QUESTION}},
    "bare-tracker": {"messages": [["user", QUESTION]]},
}


def assert_record(run: RunRecord, provider: Provider, *, calls: int = 2) -> None:
    assert run.status is RunStatus.success, run.error
    assert {name: getattr(run, name) for name in TOKEN_NAMES} == provider.expected
    assert tokens_only(run.token_usage_by_model) == {provider.model: provider.expected}
    assert run.llm_call_count == calls and run.calls_without_usage == 0
    assert run.last_ai_message == ANSWER
    assert run.first_human_message == QUESTION
    assert run.model_name == provider.model
    # user, AI tool call, tool result, AI answer
    assert run.message_count == 4


async def assert_stored(store: SQLRunStore, run: RunRecord) -> None:
    """A fresh manager reads back exactly the live record's numbers."""
    fresh = await RunManager(store=store).get(run.run_id)
    assert fresh is not None and fresh.store_only
    for name in (
        *TOKEN_NAMES,
        "token_usage_by_model",
        "llm_call_count",
        "calls_without_usage",
        "last_ai_message",
        "first_human_message",
        "model_name",
        "message_count",
        "status",
    ):
        assert getattr(fresh, name) == getattr(run, name), name


@pytest.mark.parametrize("way", WAYS)
@pytest.mark.parametrize("provider_name", PROVIDERS)
async def test_agent_tool_loop_through_every_way_in(
    api: FakeProviderAPI, db_url: str, provider_name: str, way: str
) -> None:
    provider = PROVIDERS[provider_name]
    api.script(*provider.replies)
    async with SQLRunStore.from_url(db_url) as store:
        manager = RunManager(store=store)
        graph = agent(provider.make(api, provider.model), store.checkpointer)
        run = await WAYS[way](manager, graph, INPUTS[way], f"t-{way}")
        assert_record(run, provider)
        await assert_stored(store, run)
        await manager.aclose()
    assert api.pending == 0


async def test_submitted_runs_on_a_worker(api: FakeProviderAPI, db_url: str) -> None:
    provider = PROVIDERS["anthropic"]
    api.script(*provider.replies)
    async with SQLRunStore.from_url(db_url) as store:
        graph = agent(provider.make(api, provider.model), store.checkpointer)
        async with RunManager(store=store, lease_seconds=5, graphs={"agent": graph}) as worker:
            client = RunManager(store=store)
            # a tuple becomes a JSON list in the queue
            submitted = await client.submit(
                "agent", {"messages": [("user", QUESTION)]}, thread_id="t-submit"
            )
            run = await client.join(submitted.run_id)
            assert run.owner_worker_id == worker.worker_id
            assert_record(run, provider)
            await assert_stored(store, run)
            await client.aclose()


# -- sync ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("provider_name", PROVIDERS)
def test_sync_invoke_and_track_sync_around_stream(
    api: FakeProviderAPI, tmp_path: Path, provider_name: str
) -> None:
    provider = PROVIDERS[provider_name]
    api.script(*provider.replies, *provider.replies)
    with RunManager.sync_from_url(f"sqlite:///{tmp_path / 'sync.db'}") as manager:
        store = manager.store
        assert isinstance(store, SQLRunStore)
        graph = agent(provider.make(api, provider.model), store.checkpointer)
        invoked = manager.invoke(graph, {"messages": [("user", QUESTION)]}, thread_id="t-invoke")
        assert_record(invoked, provider)
        with manager.track_sync(thread_id="t-stream") as run:
            for _ in graph.stream({"messages": QUESTION}, run.config, stream_mode="messages"):
                pass
        assert_record(run, provider)
        fresh = manager.run_sync(lambda: store.get(run.run_id))
        assert fresh is not None and fresh["total_tokens"] == provider.expected["total_tokens"]


# -- more graphs: two providers, a sub-graph, a Send fan-out ---------------------------------------


def test_two_provider_graph_records_each_model(api: FakeProviderAPI, tmp_path: Path) -> None:
    """draft (OpenAI) -> review (Anthropic), in one run; sync, to cover both clients' sync paths."""
    api.reply_for("gpt-4.1-mini", Reply(text="draft", usage=Usage(input=30, output=10)))
    api.reply_for(
        "claude-haiku-4-5",
        Reply(text="looks good", usage=Usage(input=5, output=7, cache_read=40)),
    )
    openai, anthropic = _openai(api, "gpt-4.1-mini"), _anthropic(api, "claude-haiku-4-5")

    def draft(state: State) -> dict[str, Any]:
        return {"messages": [openai.invoke(state["messages"])]}

    def review(state: State) -> dict[str, Any]:
        return {"messages": [anthropic.invoke(state["messages"])]}

    builder = StateGraph(State)
    builder.add_node("draft", draft)
    builder.add_node("review", review)
    builder.add_edge(START, "draft")
    builder.add_edge("draft", "review")
    builder.add_edge("review", END)
    with RunManager.sync_from_url(f"sqlite:///{tmp_path / 'two.db'}") as manager:
        graph = builder.compile(checkpointer=manager.store.checkpointer)  # type: ignore[union-attr]
        run = manager.invoke(graph, {"messages": "write a haiku"}, thread_id="t-two")
    assert run.status is RunStatus.success, run.error
    # OpenAI: 30 in, 10 out. Anthropic: 5 fresh + 40 read = 45 in, 7 out.
    assert tokens_only(run.token_usage_by_model) == {
        "gpt-4.1-mini": dict(zip(TOKEN_NAMES, (30, 10, 40, 0, 0, 0), strict=True)),
        "claude-haiku-4-5": dict(zip(TOKEN_NAMES, (45, 7, 52, 40, 0, 0), strict=True)),
    }
    assert (run.total_tokens, run.cache_read_tokens, run.llm_call_count) == (92, 40, 2)
    assert run.model_name == "claude-haiku-4-5"  # the most tokens: 52 against 40
    assert run.last_ai_message == "looks good"


async def test_agent_as_a_sub_graph(api: FakeProviderAPI, db_url: str) -> None:
    provider = PROVIDERS["openai-chat"]
    api.script(*provider.replies)
    async with SQLRunStore.from_url(db_url) as store:
        inner = agent(provider.make(api, provider.model), None)
        outer = StateGraph(State)
        outer.add_node("assistant", inner)
        outer.add_edge(START, "assistant")
        outer.add_edge("assistant", END)
        graph = outer.compile(checkpointer=store.checkpointer)
        manager = RunManager(store=store)
        run = await manager.wait(graph, {"messages": [("user", QUESTION)]}, thread_id="t-sub")
        assert_record(run, provider)
        await assert_stored(store, run)
        await manager.aclose()


class Fan(TypedDict, total=False):
    topics: list[str]
    notes: Annotated[list[str], operator.add]


async def test_send_fan_out_over_two_models(api: FakeProviderAPI, db_url: str) -> None:
    api.reply_for("claude-sonnet-4-5", Reply(text="sonnet note", usage=Usage(input=12, output=3)))
    api.reply_for(
        "gpt-4.1-nano", Reply(text="nano note", usage=Usage(input=8, output=2, cache_read=4))
    )
    models = {"a": _anthropic(api, "claude-sonnet-4-5"), "b": _openai(api, "gpt-4.1-nano")}

    async def note(item: dict[str, str]) -> dict[str, Any]:
        message = await models[item["topic"]].ainvoke(f"note on {item['topic']}")
        return {"notes": [message.text]}

    def route(state: Fan) -> list[Send]:
        return [Send("note", {"topic": topic}) for topic in state["topics"]]

    builder = StateGraph(Fan)
    builder.add_node("note", note)  # type: ignore[arg-type]
    builder.add_conditional_edges(START, route, ["note"])
    builder.add_edge("note", END)
    async with SQLRunStore.from_url(db_url) as store:
        manager = RunManager(store=store)
        graph = builder.compile(checkpointer=store.checkpointer)
        run = await manager.wait(graph, {"topics": ["a", "b"]}, thread_id="t-fan")
        assert run.status is RunStatus.success, run.error
        # Anthropic 12 in + 3 out; OpenAI 8 + 4 cached = 12 in, 2 out
        assert tokens_only(run.token_usage_by_model) == {
            "claude-sonnet-4-5": dict(zip(TOKEN_NAMES, (12, 3, 15, 0, 0, 0), strict=True)),
            "gpt-4.1-nano": dict(zip(TOKEN_NAMES, (12, 2, 14, 4, 0, 0), strict=True)),
        }
        assert run.llm_call_count == 2 and run.first_human_message is None
        assert run.model_name == "claude-sonnet-4-5"
        await assert_stored(store, run)
        await manager.aclose()


# -- calls without usage, and failures ------------------------------------------------------------


async def test_openai_streaming_without_stream_usage_is_reported(
    api: FakeProviderAPI, db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """base_url set: ChatOpenAI streams no usage unless stream_usage=True. The calls are
    counted as calls without usage and one warning names the cause."""
    api.script(*OPENAI_REPLIES)
    async with SQLRunStore.from_url(db_url) as store:
        manager = RunManager(store=store)
        name = f"gpt-4o-{uuid.uuid4().hex[:8]}"  # the warning is once per model and process
        graph = agent(_openai(api, name), store.checkpointer)
        with caplog.at_level(logging.WARNING, logger="langgraph_runstore"):
            run = await track_astream_messages(
                manager, graph, {"messages": [("user", QUESTION)]}, "t-nousage"
            )
        assert run.status is RunStatus.success
        assert (run.llm_call_count, run.calls_without_usage, run.total_tokens) == (2, 2, 0)
        assert run.model_name == name
        warnings = [r.getMessage() for r in caplog.records if name in r.getMessage()]
        assert len(warnings) == 1 and "stream_usage=True" in warnings[0]
        assert all("stream_options" not in r["body"] for r in api.requests)
        await assert_stored(store, run)
        await manager.aclose()


@pytest.mark.parametrize("provider_name", ["openai-chat", "anthropic"])
async def test_a_model_that_breaks_mid_stream(
    api: FakeProviderAPI, db_url: str, provider_name: str
) -> None:
    provider = PROVIDERS[provider_name]
    first, second = provider.replies
    api.script(first, Reply(text=ANSWER, usage=second.usage, fail_after_chunks=3))
    async with SQLRunStore.from_url(db_url) as store:
        manager = RunManager(store=store)
        graph = agent(provider.make(api, provider.model), store.checkpointer)
        run = await manager_stream(manager, graph, {"messages": QUESTION}, "t-broken")
        assert run.status is RunStatus.error and run.error
        # the first call is counted in full; the broken one started but never ended
        first_call = {
            "openai-chat": (150, 20, 170, 50, 0, 8),
            "anthropic": (330, 25, 355, 200, 90, 10),
        }[provider_name]
        assert tuple(getattr(run, name) for name in TOKEN_NAMES) == first_call
        assert run.llm_call_count == 2 and run.calls_without_usage == 0
        await assert_stored(store, run)
        await manager.aclose()


async def test_an_http_error_ends_the_run_as_error(api: FakeProviderAPI, db_url: str) -> None:
    api.script(Reply(status=529))
    async with SQLRunStore.from_url(db_url) as store:
        manager = RunManager(store=store)
        graph = agent(_anthropic(api, "claude-sonnet-4-5"), store.checkpointer)
        run = await manager.wait(graph, {"messages": QUESTION}, thread_id="t-http")
        assert run.status is RunStatus.error and run.error
        assert (run.llm_call_count, run.total_tokens) == (1, 0)
        await assert_stored(store, run)
        await manager.aclose()
