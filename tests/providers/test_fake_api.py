"""The fake provider API drives the real ChatOpenAI / ChatAnthropic clients correctly.

Expected token numbers are written out by hand from the scripted ``Usage``, never computed
by the code under test, so these tests also pin how each LangChain integration builds
``usage_metadata``.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from typing import Any

import anthropic
import anyio
import httpx2
import openai
import pytest
from anthropic.types import Message, RawMessageStreamEvent
from langchain_anthropic import ChatAnthropic
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.runnables import Runnable
from langchain_openai import ChatOpenAI
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import SecretStr, TypeAdapter

from tests.providers.fake_api import FakeProviderAPI, Reply, Usage

pytestmark = pytest.mark.asyncio

MODES = ["invoke", "ainvoke", "stream", "astream"]

# 100 fresh input tokens, 30 read from cache, 7 + 3 written (5m / 1h), 50 output of which 20
# are reasoning: the OpenAI input total is 100 + 30 + 10 = 140, the grand total 190.
OPENAI_USAGE = Usage(
    input=100, output=50, cache_read=30, cache_write_5m=7, cache_write_1h=3, reasoning=20,
    service_tier="flex",
)  # fmt: skip
ANTHROPIC_USAGE = Usage(
    input=100, output=50, cache_read=30, cache_write_5m=7, cache_write_1h=3, reasoning=20
)
KEY = SecretStr("test")
WEATHER = ("get_weather", {"city": "Paris", "unit": "C"})


def get_weather(city: str, unit: str) -> str:
    """Look up the weather in a city."""
    return "sunny"


@pytest.fixture
def api() -> Iterator[FakeProviderAPI]:
    with FakeProviderAPI() as server:
        yield server


def chat_openai(api: FakeProviderAPI, **kwargs: Any) -> ChatOpenAI:
    kwargs = {"model": "gpt-5-mini", "max_retries": 0, **kwargs}
    return ChatOpenAI(base_url=api.openai_base_url, api_key=KEY, **kwargs)


def chat_anthropic(api: FakeProviderAPI, **kwargs: Any) -> ChatAnthropic:
    kwargs = {"model": "claude-sonnet-4-5", "max_retries": 0, **kwargs}
    return ChatAnthropic(base_url=api.anthropic_base_url, api_key=KEY, **kwargs)


async def call(model: Runnable[Any, BaseMessage], mode: str) -> AIMessage:
    """Run one turn the way ``mode`` says; streamed chunks are summed like LangGraph does."""
    if mode == "invoke":
        message = model.invoke("hi")
    elif mode == "ainvoke":
        message = await model.ainvoke("hi")
    else:
        chunks: list[Any] = []
        if mode == "stream":
            chunks.extend(model.stream("hi"))
        else:
            chunks.extend([c async for c in model.astream("hi")])
        message = chunks[0]
        for chunk in chunks[1:]:
            message = message + chunk
        assert isinstance(message, AIMessageChunk)
    assert isinstance(message, AIMessage)
    return message


# ---------------------------------------------------------------- OpenAI Chat Completions

CHAT_USAGE = {
    "input_tokens": 140,
    "output_tokens": 50,
    "total_tokens": 190,
    # langchain-openai prefixes details with the tier, and books input - cache_read (110,
    # which still includes the 10 cache-write tokens) and output - reasoning (30) to "flex"
    "input_token_details": {
        "audio": 0, "flex_cache_read": 30, "flex_cache_creation": 10, "flex": 110,
    },
    "output_token_details": {"audio": 0, "flex_reasoning": 20, "flex": 30},
}  # fmt: skip


@pytest.mark.parametrize("mode", MODES)
async def test_chat_completions_usage(api: FakeProviderAPI, mode: str) -> None:
    api.script(Reply(text="Hello there, world", usage=OPENAI_USAGE))
    message = await call(chat_openai(api, stream_usage=True), mode)
    assert message.content == "Hello there, world"
    assert message.usage_metadata == CHAT_USAGE
    assert message.response_metadata["service_tier"] == "flex"
    assert api.pending == 0


@pytest.mark.parametrize("mode", ["stream", "astream"])
async def test_chat_completions_stream_usage_only_when_asked(
    api: FakeProviderAPI, mode: str
) -> None:
    api.script(Reply(text="no usage please", usage=OPENAI_USAGE))
    api.script(Reply(text="usage please", usage=OPENAI_USAGE))
    # a custom base_url leaves stream_usage off by default
    silent = await call(chat_openai(api), mode)
    counted = await call(chat_openai(api, stream_usage=True), mode)
    assert silent.content == "no usage please"
    assert silent.usage_metadata is None
    assert counted.usage_metadata == CHAT_USAGE
    first, second = (r["body"] for r in api.requests)
    assert first["stream"] is True and "stream_options" not in first
    assert second["stream_options"] == {"include_usage": True}
    assert api.requests[0]["path"] == "/v1/chat/completions"
    assert api.requests[0]["headers"]["authorization"] == "Bearer test"


@pytest.mark.parametrize("mode", MODES)
async def test_chat_completions_tool_calls(api: FakeProviderAPI, mode: str) -> None:
    api.script(Reply(tool_calls=(WEATHER, ("noop", {})), usage=Usage(input=5, output=9)))
    message = await call(chat_openai(api, stream_usage=True).bind_tools([get_weather]), mode)
    assert [(c["name"], c["args"]) for c in message.tool_calls] == [
        ("get_weather", {"city": "Paris", "unit": "C"}),
        ("noop", {}),
    ]
    assert all(c["id"] for c in message.tool_calls)
    assert message.content == ""
    assert message.usage_metadata is not None
    assert message.usage_metadata["input_tokens"] == 5
    assert message.usage_metadata["output_tokens"] == 9
    assert api.requests[0]["body"]["tools"][0]["function"]["name"] == "get_weather"


async def test_chat_completions_without_usage_and_echoed_model(api: FakeProviderAPI) -> None:
    api.script(Reply(text="a", usage=None, model="gpt-5-mini-2025-08-07"))
    message = await call(chat_openai(api), "invoke")
    assert message.usage_metadata is None
    assert message.response_metadata["model_name"] == "gpt-5-mini-2025-08-07"


# ---------------------------------------------------------------- OpenAI Responses


@pytest.mark.parametrize("mode", MODES)
async def test_responses_usage_reasoning_and_tools(api: FakeProviderAPI, mode: str) -> None:
    api.script(
        Reply(text="Let me check", thinking="User wants weather", tool_calls=(WEATHER,),
              usage=OPENAI_USAGE)
    )  # fmt: skip
    model = chat_openai(api, use_responses_api=True).bind_tools([get_weather])
    message = await call(model, mode)
    assert message.usage_metadata == {
        "input_tokens": 140,
        "output_tokens": 50,
        "total_tokens": 190,
        # Responses always carries cache_write_tokens; no audio keys on this API
        "input_token_details": {"flex_cache_read": 30, "flex_cache_creation": 10, "flex": 110},
        "output_token_details": {"flex_reasoning": 20, "flex": 30},
    }
    assert [(c["name"], c["args"]) for c in message.tool_calls] == [
        ("get_weather", {"city": "Paris", "unit": "C"})
    ]
    assert message.text == "Let me check"
    assert isinstance(message.content, list)
    reasoning = [b for b in message.content if isinstance(b, dict) and b["type"] == "reasoning"]
    assert [s["text"] for s in reasoning[0]["summary"]] == ["User wants weather"]
    assert message.response_metadata["service_tier"] == "flex"
    assert api.requests[0]["path"] == "/v1/responses"
    assert "stream_options" not in api.requests[0]["body"]


# ---------------------------------------------------------------- Anthropic Messages


@pytest.mark.parametrize("mode", MODES)
async def test_anthropic_usage_thinking_and_tools(api: FakeProviderAPI, mode: str) -> None:
    api.script(
        Reply(text="Checking", thinking="They want weather", tool_calls=(WEATHER,),
              usage=ANTHROPIC_USAGE)
    )  # fmt: skip
    model = chat_anthropic(api, thinking={"type": "enabled", "budget_tokens": 1024})
    message = await call(model.bind_tools([get_weather]), mode)
    # langchain-anthropic adds cache reads and writes back into input_tokens (100 + 30 + 10)
    expected: dict[str, Any] = {"input_tokens": 140, "output_tokens": 50, "total_tokens": 190}
    if mode in ("invoke", "ainvoke"):
        # the whole message carries usage.cache_creation, so writes are split by TTL and
        # the flat cache_creation is zeroed to avoid double counting
        expected["input_token_details"] = {
            "cache_read": 30,
            "cache_creation": 0,
            "ephemeral_5m_input_tokens": 7,
            "ephemeral_1h_input_tokens": 3,
        }
    else:
        # streamed, usage comes from message_delta alone, which has no TTL split
        expected["input_token_details"] = {"cache_read": 30, "cache_creation": 10}
    expected["output_token_details"] = {"reasoning": 20}
    assert message.usage_metadata == expected
    assert [(c["name"], c["args"]) for c in message.tool_calls] == [
        ("get_weather", {"city": "Paris", "unit": "C"})
    ]
    assert isinstance(message.content, list)
    thinking = [b for b in message.content if isinstance(b, dict) and b["type"] == "thinking"]
    assert [(b["thinking"], b["signature"]) for b in thinking] == [("They want weather", "sig")]
    assert message.text == "Checking"
    request = api.requests[0]
    assert request["path"] == "/v1/messages"
    assert "anthropic-version" in request["headers"]


@pytest.mark.parametrize("mode", MODES)
async def test_anthropic_plain_text_and_no_usage(api: FakeProviderAPI, mode: str) -> None:
    api.script(Reply(text="Just text", usage=None, model="claude-sonnet-4-5-20250929"))
    message = await call(chat_anthropic(api), mode)
    assert message.content == "Just text"
    assert message.usage_metadata == {
        "input_tokens": 0,
        "output_tokens": 0,
        "total_tokens": 0,
        "input_token_details": {},
    }
    assert message.response_metadata["model_name"] == "claude-sonnet-4-5-20250929"


# ---------------------------------------------------------------- failures and routing


@pytest.mark.parametrize("mode", ["stream", "astream"])
@pytest.mark.parametrize(
    ("make", "error"),
    [
        (chat_openai, openai.APIConnectionError),
        (lambda api: chat_openai(api, use_responses_api=True), openai.APIConnectionError),
        # the Anthropic SDK does not wrap transport errors raised while reading a stream
        (chat_anthropic, httpx2.RemoteProtocolError),
    ],
    ids=["chat", "responses", "anthropic"],
)
async def test_fail_after_chunks_breaks_the_stream(
    api: FakeProviderAPI, mode: str, make: Any, error: type[Exception]
) -> None:
    api.script(Reply(text="this will never finish", usage=OPENAI_USAGE, fail_after_chunks=3))
    with pytest.raises(error):
        await call(make(api), mode)


def test_error_status_uses_provider_error_bodies(api: FakeProviderAPI) -> None:
    api.script(Reply(status=429), Reply(status=529))
    with pytest.raises(openai.RateLimitError) as openai_error:
        chat_openai(api).invoke("hi")
    assert openai_error.value.body == {
        "message": "scripted error (HTTP 429)",
        "type": "requests",
        "param": None,
        "code": "rate_limit_exceeded",
    }
    with pytest.raises(anthropic.OverloadedError) as anthropic_error:
        list(chat_anthropic(api).stream("hi"))  # errors before the stream starts
    assert anthropic_error.value.body == {
        "type": "error",
        "error": {"type": "overloaded_error", "message": "scripted error (HTTP 529)"},
    }


def test_a_retrying_client_consumes_the_next_reply(api: FakeProviderAPI) -> None:
    api.script(Reply(status=529), Reply(text="second time lucky"))
    message = chat_anthropic(api, max_retries=1).invoke("hi")
    assert message.content == "second time lucky"
    assert len(api.requests) == 2


async def test_unscripted_request_fails_fast_with_500(api: FakeProviderAPI) -> None:
    # default retries: x-should-retry=false must stop them
    model = ChatOpenAI(model="gpt-5-mini", base_url=api.openai_base_url, api_key=KEY)
    with pytest.raises(openai.InternalServerError, match="no scripted reply"):
        await call(model, "invoke")
    assert len(api.requests) == 1
    with pytest.raises(anthropic.InternalServerError, match="no scripted reply"):
        await call(chat_anthropic(api, max_retries=2), "astream")
    assert len(api.requests) == 2


async def test_per_model_queues_take_priority_under_concurrency(api: FakeProviderAPI) -> None:
    api.script(Reply(text="shared"))
    for i in range(5):
        api.reply_for("gpt-5-mini", Reply(text=f"openai {i}"))
        api.reply_for("claude-sonnet-4-5", Reply(text=f"anthropic {i}"))
    assert api.pending == 11
    results: dict[str, list[str]] = {"openai": [], "anthropic": []}

    async def run(name: str, model: BaseChatModel) -> None:
        for _ in range(5):
            results[name].append(str((await call(model, "astream")).content))

    async with anyio.create_task_group() as tg:
        tg.start_soon(run, "openai", chat_openai(api))
        tg.start_soon(run, "anthropic", chat_anthropic(api))
    assert results == {
        "openai": [f"openai {i}" for i in range(5)],
        "anthropic": [f"anthropic {i}" for i in range(5)],
    }
    assert api.pending == 1
    # a model with no queue of its own falls back to the shared one
    assert (await call(chat_openai(api).bind(model="gpt-4.1"), "invoke")).content == "shared"


def test_unknown_route_is_404_and_urls_require_running_server() -> None:
    with FakeProviderAPI() as api:
        model = ChatOpenAI(model="x", base_url=api.base_url + "/v2", api_key=KEY, max_retries=0)
        with pytest.raises(openai.NotFoundError):
            model.invoke("hi")
        assert api.requests[0]["path"] == "/v2/chat/completions"
    with pytest.raises(RuntimeError):
        _ = api.base_url


# ---------------------------------------------------------------- strict wire-format check


def _post(api: FakeProviderAPI, path: str, body: dict[str, Any]) -> str:
    request = urllib.request.Request(
        api.base_url + path, json.dumps(body).encode(), {"content-type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        return str(response.read().decode())


def _sse_data(text: str) -> list[dict[str, Any]]:
    frames = [f for f in text.split("\n\n") if f.strip()]
    data = [line[6:] for f in frames for line in f.splitlines() if line.startswith("data: ")]
    return [json.loads(d) for d in data if d != "[DONE]"]


# "priority" is the one service tier both providers' SDK types accept
PRIORITY_USAGE = Usage(input=1, output=5, cache_read=2, cache_write_5m=3, cache_write_1h=4,
                       reasoning=2, service_tier="priority")  # fmt: skip


@pytest.mark.parametrize("usage", [PRIORITY_USAGE, None], ids=["usage", "no-usage"])
def test_payloads_validate_strictly_against_sdk_types(
    api: FakeProviderAPI, usage: Usage | None
) -> None:
    # the SDKs build their models without validation, so a missing or mistyped field would
    # otherwise go unnoticed until some code path reads it
    api.script(*[Reply(text="hi there", thinking="hmm", tool_calls=(WEATHER,), usage=usage)] * 6)
    streamed = {"model": "m", "stream": True, "stream_options": {"include_usage": True}}
    ChatCompletion.model_validate_json(_post(api, "/v1/chat/completions", {"model": "m"}))
    for chunk in _sse_data(_post(api, "/v1/chat/completions", streamed)):
        ChatCompletionChunk.model_validate(chunk)
    Response.model_validate_json(_post(api, "/v1/responses", {"model": "m"}))
    events = TypeAdapter(ResponseStreamEvent)
    for event in _sse_data(_post(api, "/v1/responses", streamed)):
        events.validate_python(event)
    Message.model_validate_json(_post(api, "/v1/messages", {"model": "m"}))
    anthropic_events = TypeAdapter(RawMessageStreamEvent)
    for event in _sse_data(_post(api, "/v1/messages", streamed)):
        if event["type"] != "ping":  # documented, but not part of the SDK's event union
            anthropic_events.validate_python(event)
    assert api.pending == 0
