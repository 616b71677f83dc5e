"""The token mapping and the input forms, fed by the integrations' own usage builders.

The usage dicts come from langchain-openai's and langchain-anthropic's real conversion code
(what their chat models attach to every AIMessage), given raw provider usage written here
by hand; the expected counters are written by hand from that raw usage.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from typing import Any

import pytest
from anthropic.types import Usage as AnthropicUsage
from langchain_anthropic.chat_models import _create_usage_metadata as anthropic_usage
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langchain_core.outputs import ChatGeneration, Generation, LLMResult
from langchain_openai.chat_models.base import (
    _create_usage_metadata as openai_usage,
)
from langchain_openai.chat_models.base import (
    _create_usage_metadata_responses as responses_usage,
)
from langgraph.types import Command

from langgraph_runstore.messages import content_text, first_human_text, message_text
from langgraph_runstore.tally import Tally
from langgraph_runstore.usage import (
    count,
    message_counts,
    provider_counts,
    result_counts,
    usage_metadata_counts,
)
from tests.graphs import tokens_only

#: Chat Completions usage: 1000 prompt tokens (400 cached), 300 completion (120 reasoning)
OPENAI_RAW = {
    "prompt_tokens": 1000,
    "completion_tokens": 300,
    "total_tokens": 1300,
    "prompt_tokens_details": {"cached_tokens": 400, "audio_tokens": 0},
    "completion_tokens_details": {"reasoning_tokens": 120, "audio_tokens": 0},
}
RESPONSES_RAW = {
    "input_tokens": 1000,
    "input_tokens_details": {"cached_tokens": 400},
    "output_tokens": 300,
    "output_tokens_details": {"reasoning_tokens": 120},
    "total_tokens": 1300,
}


@pytest.mark.parametrize("tier", [None, "default", "flex", "priority"])
def test_openai_chat_completions_every_service_tier(tier: str | None) -> None:
    usage = openai_usage(OPENAI_RAW, service_tier=tier)
    assert usage_metadata_counts(usage) == (1000, 300, 1300, 400, 0, 120)


@pytest.mark.parametrize("tier", [None, "flex", "priority"])
def test_openai_responses_api_every_service_tier(tier: str | None) -> None:
    usage = responses_usage(RESPONSES_RAW, service_tier=tier)
    assert usage_metadata_counts(usage) == (1000, 300, 1300, 400, 0, 120)


def test_openai_cache_writes_and_audio() -> None:
    raw = {
        "prompt_tokens": 500,
        "completion_tokens": 50,
        "total_tokens": 550,
        "prompt_tokens_details": {
            "cached_tokens": 0,
            "cache_write_tokens": 200,
            "audio_tokens": 30,
        },
        "completion_tokens_details": {"audio_tokens": 10, "reasoning_tokens": 0},
    }
    usage = openai_usage(raw, service_tier="flex")
    # audio is part of input/output; the write is a cache creation
    assert usage_metadata_counts(usage) == (500, 50, 550, 0, 200, 0)


def test_anthropic_ttl_split_cache_writes() -> None:
    raw = AnthropicUsage(
        input_tokens=50,
        output_tokens=20,
        cache_read_input_tokens=100,
        cache_creation_input_tokens=300,
        cache_creation={"ephemeral_5m_input_tokens": 200, "ephemeral_1h_input_tokens": 100},
    )
    usage = anthropic_usage(raw)
    assert usage["input_token_details"]["cache_creation"] == 0  # what the integration does
    # Anthropic's input_tokens leave the cache out; langchain adds 100 read + 300 written
    assert usage_metadata_counts(usage) == (450, 20, 470, 100, 300, 0)


def test_anthropic_without_ttl_split() -> None:
    raw = AnthropicUsage(
        input_tokens=8, output_tokens=4, cache_read_input_tokens=0, cache_creation_input_tokens=64
    )
    assert usage_metadata_counts(anthropic_usage(raw)) == (72, 4, 76, 0, 64, 0)


def test_provider_usage_dicts() -> None:
    assert provider_counts(OPENAI_RAW) == (1000, 300, 1300, 400, 0, 120)
    assert provider_counts(RESPONSES_RAW) == (1000, 300, 1300, 400, 0, 120)
    anthropic = {
        "input_tokens": 50,
        "output_tokens": 20,
        "cache_read_input_tokens": 100,
        "cache_creation_input_tokens": 300,
        "cache_creation": {"ephemeral_5m_input_tokens": 200, "ephemeral_1h_input_tokens": 100},
    }
    assert provider_counts(anthropic) == (450, 20, 470, 100, 300, 0)
    gemini = {
        "prompt_token_count": 90,
        "candidates_token_count": 10,
        "total_token_count": 130,
        "cached_content_token_count": 40,
        "thoughts_token_count": 30,
    }
    # Gemini's candidates leave the 30 thoughts out: 10 + 30 = 40 output, as total says
    assert provider_counts(gemini) == (90, 40, 130, 40, 0, 30)
    bedrock = {"inputTokens": 12, "outputTokens": 3, "totalTokens": 15, "cacheReadInputTokens": 2}
    assert provider_counts(bedrock) == (12, 3, 15, 2, 0, 0)
    assert provider_counts({"prompt_eval_count": 26, "eval_count": 298}) == (26, 298, 324, 0, 0, 0)
    assert provider_counts({}) is None and provider_counts({"model": "x"}) is None


def test_response_metadata_and_llm_output_fallbacks() -> None:
    message = AIMessage(content="hi", response_metadata={"token_usage": OPENAI_RAW})
    assert message_counts(message) == (1000, 300, 1300, 400, 0, 120)
    generations = [[Generation(text="plain llm")]]
    assert result_counts(generations, {"token_usage": OPENAI_RAW}) == (
        1000, 300, 1300, 400, 0, 120,
    )  # fmt: skip
    assert result_counts([[]], None) is None


def test_n_choices_repeat_the_request_usage_once() -> None:
    usage = {"input_tokens": 10, "output_tokens": 8, "total_tokens": 18}
    choices = [ChatGeneration(message=AIMessage(content=t, usage_metadata=usage)) for t in "ab"]
    assert result_counts([choices], None) == (10, 8, 18, 0, 0, 0)


@pytest.mark.parametrize(
    ("value", "expected"),
    [(5, 5), (0, 0), (-3, None), (None, None), ("12", 12), (" 7 ", 7), ("x", None),
     (3.0, 3), (2.5, None), (float("nan"), None), (float("inf"), None), (True, None),
     ("²", None), ("①", None), ("١٢", None)],
)  # fmt: skip
def test_count_rules(value: Any, expected: int | None) -> None:
    assert count(value) == expected


def test_malformed_usage_is_partial_not_a_crash() -> None:
    bad = {
        "input_tokens": -5,
        "output_tokens": "seven",
        "total_tokens": None,
        "input_token_details": {"cache_read": 2.5, "flex_cache_read": "3"},
        "output_token_details": "nonsense",
    }
    assert usage_metadata_counts(bad) is None  # no usable count: a call without usage
    partial = {"input_tokens": 9.0, "output_tokens": None, "input_token_details": None}
    assert usage_metadata_counts(partial) == (9, 0, 9, 0, 0, 0)
    assert usage_metadata_counts({"input_tokens": 4, "output_tokens": 1, "total_tokens": -1}) == (
        4, 1, 5, 0, 0, 0,
    )  # fmt: skip


def _end(tally: Tally, run_id: uuid.UUID, usage: dict[str, Any] | None, model: str = "m") -> None:
    message = AIMessage(
        content="answer", usage_metadata=usage, response_metadata={"model_name": model}
    )
    tally.llm_ended(run_id, LLMResult(generations=[[ChatGeneration(message=message)]]))


def test_a_call_that_first_ends_without_usage_is_counted_when_usage_arrives(
    caplog: pytest.LogCaptureFixture,
) -> None:
    tally = Tally()
    first, second = uuid.uuid4(), uuid.uuid4()
    tally.llm_started(first, {"ls_provider": "openai", "ls_model_name": "gpt-x"})
    tally.llm_started(second, None)
    with caplog.at_level(logging.WARNING):
        _end(tally, first, None, model="no-usage-model-1")
        _end(tally, first, None, model="no-usage-model-1")  # the same end, reported again
    assert tally.fields()["calls_without_usage"] == 1
    assert [r.message for r in caplog.records].count(caplog.records[0].message) == 1
    assert "stream_usage=True" in caplog.records[0].getMessage()
    _end(tally, first, {"input_tokens": 3, "output_tokens": 2, "total_tokens": 5})
    _end(tally, first, {"input_tokens": 3, "output_tokens": 2, "total_tokens": 5})  # once
    _end(tally, second, {"input_tokens": 1, "output_tokens": 1, "total_tokens": 2}, model="n")
    fields = tally.fields()
    assert fields["calls_without_usage"] == 0 and fields["llm_call_count"] == 2
    assert fields["token_usage_by_model"]["no-usage-model-1"]["total_tokens"] == 5
    assert fields["total_tokens"] == 7
    assert tally.main_model() == "no-usage-model-1"


def test_a_response_with_no_generations() -> None:
    tally = Tally()
    run_id = uuid.uuid4()
    tally.llm_started(run_id, {"ls_model_name": "empty-model"})
    tally.llm_ended(run_id, LLMResult(generations=[]))
    fields = tally.fields()
    assert fields["llm_call_count"] == 1 and fields["calls_without_usage"] == 1
    assert tokens_only(fields["token_usage_by_model"]) == {"empty-model": dict.fromkeys(
        ("input_tokens", "output_tokens", "total_tokens", "cache_read_tokens",
         "cache_creation_tokens", "reasoning_tokens"), 0)}  # fmt: skip


def test_main_model_rule() -> None:
    tally = Tally()
    assert tally.main_model() is None
    for model, total in (("small", 5), ("big", 50), ("unknown", 500), ("also-big", 50)):
        usage = {"input_tokens": total, "output_tokens": 0, "total_tokens": total}
        _end(tally, uuid.uuid4(), usage, model=model)
    # the most tokens among named models; a tie goes to the name first in sort order
    assert tally.main_model() == "also-big"


# -- text and input forms ---------------------------------------------------------------------


def test_text_blocks_in_every_shape() -> None:
    blocks = [
        {"type": "thinking", "thinking": "hidden"},
        {"type": "text", "text": "a"},
        {"type": "text", "content": "b"},
        {"type": "output_text", "text": "c", "annotations": []},
        "d",
        {"type": "reasoning", "summary": [{"type": "summary_text", "text": "no"}]},
        {"type": "tool_use", "id": "t", "name": "x", "input": {}},
        {"type": "text", "text": None},
    ]
    assert content_text(blocks) == "abcd"
    assert message_text(AIMessage(content=blocks)) == "abcd"
    assert message_text({"role": "assistant", "content": blocks}) == "abcd"


HI = "hello there"


@dataclass
class MessagesModel:
    messages: list[Any]


@pytest.mark.parametrize(
    "inputs",
    [
        {"messages": [("user", HI)]},
        {"messages": [("human", HI)]},
        {"messages": [["user", HI]]},  # a tuple after a JSON round trip (submit)
        {"messages": [{"role": "user", "content": HI}]},
        {"messages": [{"type": "human", "content": HI}]},
        {"messages": [{"role": "user", "content": [{"type": "text", "text": HI}]}]},
        {"messages": [HumanMessage(content=[{"type": "text", "text": HI}])]},
        {"messages": [HumanMessage(HI)]},
        {"messages": HI},  # a bare string
        {"messages": HumanMessage(HI)},  # one message, not in a list
        {"messages": ("user", HI)},
        {"messages": {"role": "user", "content": HI}},
        {"messages": [SystemMessage("be brief"), ("assistant", "hi"), ("user", ""), HI]},
        [HumanMessage(HI)],  # a message list as the whole input
        HI,
        Command(update={"messages": [("user", HI)]}),
        MessagesModel(messages=[("user", HI)]),
        {"role": "user", "content": HI},  # one message dict as the whole input
        {"messages": (HumanMessage(HI), HumanMessage("second"))},  # a tuple of two messages
    ],
)
def test_first_human_message_of_every_input_form(inputs: Any) -> None:
    assert first_human_text(inputs) == HI


@pytest.mark.parametrize(
    "inputs",
    [
        Command(resume="yes"),
        {"messages": []},
        {"other": 1},
        None,
        42,
        {"messages": [("ai", "x")]},
        {"messages": (HumanMessage("a"), {"x": 1})[1:]},
        {"messages": [({"unhashable": 1}, "x")]},
        {"messages": [{"role": ["user"], "content": "x"}]},
    ],
)
def test_inputs_without_a_human_message(inputs: Any) -> None:
    assert first_human_text(inputs) is None


# -- interrupt values -------------------------------------------------------------------------


def test_interrupt_values_that_do_not_copy_or_print_are_still_recorded() -> None:
    import threading
    from dataclasses import field

    from langgraph.types import Interrupt

    from langgraph_runstore.interrupts import interrupt_entry

    @dataclass
    class Ask:
        question: str
        lock: Any = field(default_factory=threading.Lock)

    entry = interrupt_entry(Interrupt(value=Ask("ok?"), id="i1"), ["node:1"])
    assert entry["id"] == "i1" and entry["ns"] == ["node:1"]
    assert entry["value"]["question"] == "ok?" and isinstance(entry["value"]["lock"], str)

    class Hostile:
        def __repr__(self) -> str:
            raise RuntimeError("no repr")

    assert (
        interrupt_entry(Interrupt(value=Hostile(), id="i2"))["value"] == "<unrepresentable Hostile>"
    )
    # a stored dict: its ns as LangGraph writes it, "a:1|b:2"
    assert interrupt_entry({"id": "i3", "value": 1, "ns": "a:1|b:2"})["ns"] == ["a:1", "b:2"]
