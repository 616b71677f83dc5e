"""What a run cost: every LLM call priced when it ends, through the real provider clients
(langchain-openai, langchain-anthropic talking HTTP to the fake API), on SQLite and
PostgreSQL; user prices; models nothing prices.

Expected dollars are worked out by hand from genai-prices 0.2.3's published prices per
million tokens (USD): gpt-4o input 2.50, cached input 1.25, output 10; o3-mini input 1.10,
cached input 0.55, output 4.40; gpt-5-mini with service_tier "flex" input 0.125, cached
input 0.0125, output 1; claude-sonnet-4-5 (prompts under 200k tokens) input 3, cache read
0.30, cache write 3.75, output 15. Input priced as fresh excludes the cached and the written
tokens; reasoning and thinking tokens are output.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from typing import Any

import genai_prices
import pytest
from langchain_anthropic import ChatAnthropic
from langchain_core.outputs import ChatGeneration, LLMResult
from langchain_openai import ChatOpenAI

from langgraph_runstore import InvalidInputError, RunManager, SQLRunStore
from langgraph_runstore.accounting import Accounting
from langgraph_runstore.pricing import PriceBook, TokenPrice
from langgraph_runstore.schemas import TokenUsage
from langgraph_runstore.tally import Tally
from tests.graphs import listed_model, reply, single_node_graph
from tests.providers.fake_api import FakeProviderAPI, Reply, Usage

pytestmark = pytest.mark.anyio


def test_the_bundled_prices_are_those_the_expected_dollars_come_from() -> None:
    assert genai_prices.__version__ == "0.2.3"


@pytest.fixture
def api() -> Iterator[FakeProviderAPI]:
    with FakeProviderAPI() as server:
        yield server


def openai(api: FakeProviderAPI, model: str) -> ChatOpenAI:
    return ChatOpenAI(model=model, base_url=api.openai_base_url, api_key="t", max_retries=0)


def anthropic(api: FakeProviderAPI, model: str) -> ChatAnthropic:
    return ChatAnthropic(  # type: ignore[call-arg]
        model=model, base_url=api.anthropic_base_url, api_key="t", max_retries=0
    )


def calling(model: Any) -> Any:
    async def ask(state: dict[str, Any]) -> dict[str, Any]:
        return {"messages": [await model.ainvoke(state["messages"])]}

    return ask


CASES = {
    # 1000 fresh + 2000 cached input, 300 output: 1000*2.5 + 2000*1.25 + 300*10 per 1e6
    "gpt-4o": (openai, Usage(input=1000, cache_read=2000, output=300), 0.008),
    # 500 fresh + 1000 cached, 2000 output of which 1500 reasoning (priced as output):
    # 500*1.1 + 1000*0.55 + 2000*4.4 per 1e6
    "o3-mini": (openai, Usage(input=500, cache_read=1000, output=2000, reasoning=1500), 0.0099),
    # the flex tier's prices: 1000*0.125 + 1000*0.0125 + 100*1 per 1e6
    "gpt-5-mini": (
        openai,
        Usage(input=1000, cache_read=1000, output=100, service_tier="flex"),
        0.0002375,
    ),
    # 40 fresh, 200 read, 60 + 30 written, 25 output (10 thinking):
    # 40*3 + 200*0.3 + 90*3.75 + 25*15 per 1e6
    "claude-sonnet-4-5": (
        anthropic,
        Usage(input=40, cache_read=200, cache_write_5m=60, cache_write_1h=30, output=25),
        0.0008925,
    ),
}


@pytest.mark.parametrize("model", list(CASES))
async def test_a_call_of_a_known_model_is_priced_from_the_library(
    api: FakeProviderAPI, db_url: str, model: str
) -> None:
    make, usage, dollars = CASES[model]
    api.script(Reply(text="priced", usage=usage))
    async with SQLRunStore.from_url(db_url) as store:
        manager = RunManager(store=store)
        graph = single_node_graph(calling(make(api, model))).compile(
            checkpointer=store.checkpointer
        )
        run = await manager.wait(graph, {"messages": [("user", "hi")]}, thread_id="t1")
        await manager.aclose()
        assert run.status.value == "success", run.error
        assert run.cost_usd == pytest.approx(dollars, rel=1e-9)
        assert run.unpriced_calls == 0
        entry = run.token_usage_by_model[model]
        assert entry["cost_usd"] == pytest.approx(dollars, rel=1e-9)
        assert entry["llm_call_count"] == 1 and entry["llm_ms"] > 0
        row = await store.get(run.run_id)
        assert row is not None
        assert row["cost_usd"] == pytest.approx(dollars, rel=1e-9)
        assert row["token_usage_by_model"][model]["cost_usd"] == pytest.approx(dollars, rel=1e-9)


async def test_a_run_of_two_providers_adds_their_calls_up(api: FakeProviderAPI) -> None:
    api.reply_for("gpt-4o", Reply(text="a", usage=CASES["gpt-4o"][1]))
    api.reply_for("claude-sonnet-4-5", Reply(text="b", usage=CASES["claude-sonnet-4-5"][1]))
    first, second = openai(api, "gpt-4o"), anthropic(api, "claude-sonnet-4-5")

    async def both(state: dict[str, Any]) -> dict[str, Any]:
        return {"messages": [await first.ainvoke("x"), await second.ainvoke("y")]}

    manager = RunManager()
    run = await manager.wait(single_node_graph(both).compile(), {"messages": []}, thread_id="t")
    assert run.cost_usd == pytest.approx(0.008 + 0.0008925, rel=1e-9)
    assert set(run.token_usage_by_model) == {"gpt-4o", "claude-sonnet-4-5"}


async def test_an_unknown_model_is_unpriced_never_a_crash() -> None:
    model = reply("ok", "my-own-llama-7b", input_tokens=100, output_tokens=10)
    manager = RunManager()
    graph = single_node_graph(calling(listed_model(model))).compile()
    run = await manager.wait(graph, {"messages": [("user", "hi")]}, thread_id="t")
    assert run.status.value == "success"
    assert run.cost_usd is None and run.unpriced_calls == 1 and run.total_tokens == 110
    assert run.token_usage_by_model["my-own-llama-7b"]["cost_usd"] is None


async def test_user_prices_as_a_mapping_price_unlisted_models() -> None:
    # 100 input of which 40 cached, 10 output: 60*0.2 + 40*0.05 + 10*0.8 per 1e6 + 0.001
    message = reply("ok", "my-own-llama-7b", input_tokens=100, output_tokens=10)
    message.usage_metadata["input_token_details"] = {"cache_read": 40}  # type: ignore[index]
    prices = {
        "my-own-llama-7b": TokenPrice(
            input_mtok=0.2, output_mtok=0.8, cache_read_mtok=0.05, per_request=0.001
        )
    }
    manager = RunManager(prices=prices)
    graph = single_node_graph(calling(listed_model(message))).compile()
    run = await manager.wait(graph, {"messages": [("user", "hi")]}, thread_id="t")
    assert run.cost_usd == pytest.approx((60 * 0.2 + 40 * 0.05 + 10 * 0.8) / 1e6 + 0.001)
    # a dict of TokenPrice's fields works too
    book = PriceBook({"m": {"input_mtok": 1, "output_mtok": 2}})
    assert book.cost(None, "m", (1000, 1000, 2000, 0, 0, 0)) == pytest.approx(0.003)


def test_a_price_callable_is_asked_first_and_none_leaves_it_to_the_library() -> None:
    asked: list[tuple[str, str | None, TokenUsage]] = []

    def prices(model: str, provider: str | None, usage: TokenUsage) -> float | None:
        asked.append((model, provider, usage))
        return 0.5 if model == "in-house" else None

    book = PriceBook(prices)
    assert book.cost("acme", "in-house", (10, 5, 15, 0, 0, 0)) == 0.5
    assert asked[0] == ("in-house", "acme", TokenUsage(10, 5, 15))
    # gpt-4o from the library: 1000 * 2.5 per 1e6
    assert book.cost("openai", "gpt-4o", (1000, 0, 1000, 0, 0, 0)) == pytest.approx(0.0025)


def test_a_price_callable_that_raises_is_logged_once_per_model(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(model: str, provider: str | None, usage: TokenUsage) -> float:
        raise RuntimeError("price service down")

    tally = Tally(Accounting(PriceBook(broken)))
    with caplog.at_level(logging.WARNING, logger="langgraph_runstore.pricing"):
        for _ in range(3):
            run_id = uuid.uuid4()
            tally.llm_started(run_id, {"ls_provider": "openai"})
            tally.llm_ended(run_id, _result(reply("x", "gpt-4o")))
    fields = tally.fields()
    assert fields["cost_usd"] is None and fields["unpriced_calls"] == 3
    failures = [r for r in caplog.records if "prices= callable failed" in r.getMessage()]
    assert len(failures) == 1 and "'gpt-4o'" in failures[0].getMessage()


def test_a_provider_the_library_does_not_know_leaves_the_call_unpriced() -> None:
    """A self-hosted server (Ollama) is not billed at a cloud provider's price, whatever its
    model is called; without a provider the model name finds one."""
    book = PriceBook()
    assert book.cost("ollama", "gpt-4o", (1000, 0, 1000, 0, 0, 0)) is None
    assert book.cost(None, "gpt-4o", (1000, 0, 1000, 0, 0, 0)) == pytest.approx(0.0025)


def test_the_price_lookup_is_cached_per_provider_and_model(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls = []
    real = genai_prices.calc_price

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(args[1])
        return real(*args, **kwargs)

    monkeypatch.setattr(genai_prices, "calc_price", counting)
    book = PriceBook()
    for _ in range(50):
        book.cost("openai", "gpt-4o", (1000, 10, 1010, 0, 0, 0))
    first = len(calls)
    assert 0 < first <= 6  # one look-up: a handful of probes of the library's prices
    for _ in range(50):
        book.cost("openai", "gpt-4o", (5000, 10, 5010, 100, 0, 0))
    assert len(calls) == first


def test_a_tiered_price_switches_above_its_threshold() -> None:
    """claude-sonnet-4-5 above 200k prompt tokens: input 6, output 22.50 per 1e6."""
    book = PriceBook()
    assert book.cost("anthropic", "claude-sonnet-4-5", (300_000, 1000, 301_000, 0, 0, 0)) == (
        pytest.approx((300_000 * 6 + 1000 * 22.5) / 1e6)
    )


@pytest.mark.parametrize(
    "bad",
    [
        {"m": {"input_mtok": True, "output_mtok": 1}},
        "gpt-4o=1",
        {"": {"input_mtok": 1, "output_mtok": 1}},
        {"m": {"input_mtok": 1}},
        {"m": {"input_mtok": -1, "output_mtok": 1}},
        {"m": {"input_mtok": float("nan"), "output_mtok": 1}},
        {"m": {"input_mtok": 1, "output_mtok": 1, "per_token": 3}},
        {"m": 0.5},
    ],
)
def test_bad_prices_are_refused_before_any_run(bad: Any) -> None:
    with pytest.raises(InvalidInputError) as info:
        RunManager(prices=bad)
    assert "price" in str(info.value).lower()


def test_prices_false_turns_pricing_off() -> None:
    manager = RunManager(prices=False)
    assert manager.accounting.prices is None


def _result(message: Any) -> LLMResult:
    return LLMResult(generations=[[ChatGeneration(message=message)]])
