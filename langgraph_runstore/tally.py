"""Counting what one run used, from its LLM calls' ends: tokens per model (the mapping of
``usage.py``), LLM calls, calls without usage, the first human and last AI message, and per
model and per node (``accounting.py``) the calls, their time and their cost (``pricing.py``).

A call's time runs from its start callback to its first end; ``first_token_ms`` from the
graph's start to the first streamed token of any call. Every call that ends is priced when
it ends; one without usage, or whose model nothing prices, counts in ``unpriced_calls``.

A Tally is thread-safe: a sync graph's parallel nodes report from several threads.
"""

from __future__ import annotations

import logging
import random
import threading
import time
import uuid
from collections.abc import Mapping
from typing import Any

from langchain_core.messages import AIMessage
from langchain_core.outputs import LLMResult

from langgraph_runstore.accounting import (
    DEFAULT_ACCOUNTING,
    Accounting,
    node_entry,
    node_key,
    tag_key,
)
from langgraph_runstore.messages import message_text
from langgraph_runstore.query import UNKNOWN_MODEL
from langgraph_runstore.schemas import TOKEN_FIELDS
from langgraph_runstore.usage import Counts, result_counts

logger = logging.getLogger(__name__)

#: Why an integration may report no usage, by ``ls_provider`` (README: "Calls without usage").
_NO_USAGE_HINTS = {
    "openai": "ChatOpenAI streams usage only with stream_usage=True, which is off by default "
    "when base_url or a custom client is set",
    "azure": "AzureChatOpenAI streams usage only with stream_usage=True",
}
_warned_models: set[str] = set()
_warned_lock = threading.Lock()


def _warn_no_usage(model: str, provider: Any) -> None:
    with _warned_lock:
        if model in _warned_models:
            return
        _warned_models.add(model)
    hint = _NO_USAGE_HINTS.get(str(provider), "turn on the integration's usage reporting")
    logger.warning(
        "LLM calls of model %r report no token usage, so their tokens are not counted "
        "(calls_without_usage); likely cause: %s. Warned once per model.",
        model,
        hint,
    )


def _model_name(message: Any, llm_output: Mapping[str, Any] | None, started: Any) -> str:
    metadata = getattr(message, "response_metadata", None) or {}
    name = (
        metadata.get("model_name")
        or metadata.get("model")
        or (llm_output or {}).get("model_name")
        or (llm_output or {}).get("model")
        or (started.get("ls_model_name") if isinstance(started, Mapping) else None)
    )
    return str(name) if name else UNKNOWN_MODEL


#: The value ``Tally.llm_calls`` holds for a call whose usage has been counted.
_COUNTED = object()

# The counters kept per model and per node: the six token counts (TOKEN_FIELDS order), then
_CALLS = 6  # calls that ended
_MS = 7  # their summed duration, ms
_COST = 8  # their summed cost, USD
_PRICED = 9  # how many of them were priced
_UNPRICED = 10  # how many reported usage but found no price
_WIDTH = 11

#: Call durations kept per model and run for the percentiles (a uniform sample beyond it).
MAX_CALL_SAMPLES = 1000


class _Call:
    """An LLM call that started: the metadata and tags it carried (references, not copies)
    and when it started (``time.perf_counter``)."""

    __slots__ = ("metadata", "started", "tags")

    def __init__(self, metadata: Any, tags: Any) -> None:
        self.metadata = metadata
        self.tags = tags
        self.started = time.perf_counter()


def _provider(call: Any) -> Any:
    metadata = getattr(call, "metadata", None)
    return metadata.get("ls_provider") if isinstance(metadata, Mapping) else None


def _tier(message: Any) -> str | None:
    metadata = getattr(message, "response_metadata", None)
    tier = metadata.get("service_tier") if isinstance(metadata, Mapping) else None
    return tier if isinstance(tier, str) and tier else None


class Tally:
    """What one run used: tokens, calls, time and cost per model and per node, messages.
    Thread-safe.

    Kept small on purpose (one dict of calls, one list of counters per model and node): a
    manager holds finished runs for a while, and every object they keep alive is work for
    the garbage collector.
    """

    __slots__ = (
        "accounting",
        "by_model",
        "by_node",
        "call_ms",
        "cost",
        "dirty",
        "first_human_message",
        "first_token_at",
        "last_ai_message",
        "llm_calls",
        "lock",
        "message_count",
        "no_usage",
        "run_started",
        "tag_keys",
        "total_tokens",
    )

    def __init__(self, accounting: Accounting | None = None) -> None:
        self.lock = threading.Lock()
        self.accounting = accounting if accounting is not None else DEFAULT_ACCOUNTING
        #: model name -> counters (see _WIDTH)
        self.by_model: dict[str, list[Any]] = {}
        #: usage_by_node key -> counters; tag_keys: the keys that are tags
        self.by_node: dict[str, list[Any]] = {}
        self.tag_keys: set[str] = set()
        #: model name -> durations of its calls, ms (at most MAX_CALL_SAMPLES)
        self.call_ms: dict[str, list[float]] = {}
        #: LLM callback run id -> the _Call its start recorded, or _COUNTED once counted
        self.llm_calls: dict[uuid.UUID, Any] = {}
        #: calls that ended without usage -> (model, node key): a later end may report it
        self.no_usage: dict[uuid.UUID, tuple[str, str | None]] = {}
        self.last_ai_message: str | None = None
        self.first_human_message: str | None = None
        self.message_count = 0
        self.dirty = False
        #: running totals of the counted calls, for budgets
        self.total_tokens = 0
        self.cost = 0.0
        #: perf_counter times: the graph's start and the first streamed token
        self.run_started: float | None = None
        self.first_token_at: float | None = None

    def llm_started(
        self, run_id: uuid.UUID, metadata: Mapping[str, Any] | None, tags: Any = None
    ) -> None:
        with self.lock:
            if run_id not in self.llm_calls:
                self.llm_calls[run_id] = _Call(metadata, tags)
        prices = self.accounting.prices
        if prices is not None:
            prices.preload()

    def llm_token(self) -> None:
        """A call streamed a token: the first one of the run is its first-token time."""
        if self.first_token_at is None:
            self.first_token_at = time.perf_counter()

    def llm_ended(self, run_id: uuid.UUID, response: LLMResult) -> None:
        """Count one call's end. A call's usage is counted once, however often its end is
        reported; an end without usage leaves room for a later end of it that has some."""
        unreported = self._count_end(run_id, response)
        if unreported is not None:
            _warn_no_usage(*unreported)  # outside the lock: logging may block

    def _node(self, call: Any) -> str | None:
        accounting = self.accounting
        if not accounting.attribution:
            return None
        metadata = getattr(call, "metadata", None)
        tag = tag_key(getattr(call, "tags", None), accounting.usage_tags)
        if tag is not None:
            self.tag_keys.add(tag)
            return tag
        return node_key(metadata if isinstance(metadata, Mapping) else None)

    def _count_end(self, run_id: uuid.UUID, response: LLMResult) -> tuple[str, Any] | None:
        """llm_ended under the lock; returns (model, provider) for a first end without usage."""
        ended = time.perf_counter()
        with self.lock:
            call = self.llm_calls.get(run_id)
            if call is _COUNTED:
                return None
            message: Any = None
            for generations in response.generations:
                for generation in generations:
                    message = getattr(generation, "message", None)
                    if message is not None:
                        if isinstance(message, AIMessage):
                            text = message_text(message)
                            if text:
                                self.last_ai_message = text
                    elif getattr(generation, "text", ""):
                        self.last_ai_message = generation.text
            usage = result_counts(response.generations, response.llm_output)
            earlier = self.no_usage.get(run_id)
            if earlier is None:
                metadata = getattr(call, "metadata", None)
                model = _model_name(message, response.llm_output, metadata)
                node = self._node(call)
                elapsed = (ended - call.started) * 1000.0 if call is not None else 0.0
                self._ended(model, node, elapsed)
            else:
                model, node = earlier
            self.dirty = True
            if usage is None:
                if earlier is not None:
                    return None
                self.no_usage[run_id] = (model, node)
                self.llm_calls.setdefault(run_id, call)
                return model, _provider(call)
            self.no_usage.pop(run_id, None)
            self.llm_calls[run_id] = _COUNTED
            prices = self.accounting.prices
            cost = (
                prices.cost(_provider(call), model, usage, _tier(message))
                if prices is not None
                else None
            )
            _add(self.by_model[model], usage, cost)
            if node is not None:
                _add(self.by_node[node], usage, cost)
            self.total_tokens += usage[2]
            if cost is not None:
                self.cost += cost
            return None

    def _ended(self, model: str, node: str | None, elapsed: float) -> None:
        counters = self.by_model.get(model)
        if counters is None:
            counters = self.by_model[model] = [0, 0, 0, 0, 0, 0, 0, 0.0, 0.0, 0, 0]
        counters[_CALLS] += 1
        counters[_MS] += elapsed
        if node is not None:
            counters = self.by_node.get(node)
            if counters is None:
                counters = self.by_node[node] = [0, 0, 0, 0, 0, 0, 0, 0.0, 0.0, 0, 0]
            counters[_CALLS] += 1
            counters[_MS] += elapsed
        samples = self.call_ms.get(model)
        if samples is None:
            self.call_ms[model] = [round(elapsed, 3)]
        elif len(samples) < MAX_CALL_SAMPLES:
            samples.append(round(elapsed, 3))
        else:  # reservoir sampling: every call equally likely to be kept
            slot = random.randrange(counters[_CALLS])
            if slot < MAX_CALL_SAMPLES:
                samples[slot] = round(elapsed, 3)

    def main_model(self) -> str | None:
        """The run's model: the one it used, else the one with the most tokens (ties: the
        name first in sort order); None when no call named its model."""
        with self.lock:
            named = [(model, c[2]) for model, c in self.by_model.items() if model != UNKNOWN_MODEL]
        if not named:
            return None
        return min(named, key=lambda item: (-item[1], item[0]))[0]

    def fields(self) -> dict[str, Any]:
        """The counters as ``update_run_completion`` fields."""
        with self.lock:
            # calls still without usage, per model and per node
            waiting: dict[str, int] = {}
            waiting_nodes: dict[str, int] = {}
            for model, node in self.no_usage.values():
                waiting[model] = waiting.get(model, 0) + 1
                if node is not None:
                    waiting_nodes[node] = waiting_nodes.get(node, 0) + 1
            totals = [0, 0, 0, 0, 0, 0, 0, 0.0, 0.0, 0, 0]
            by_model: dict[str, dict[str, Any]] = {}
            for model in sorted(self.by_model):
                counters = self.by_model[model]
                by_model[model] = _entry(counters, waiting.get(model, 0))
                for index, value in enumerate(counters):
                    totals[index] += value
            by_node: dict[str, dict[str, Any]] = {}
            for key in sorted(self.by_node):
                entry = node_entry(key, tag=key in self.tag_keys)
                entry.update(_entry(self.by_node[key], waiting_nodes.get(key, 0)))
                by_node[key] = entry
            fields: dict[str, Any] = dict(zip(TOKEN_FIELDS, totals[:_CALLS], strict=True))
            fields["token_usage_by_model"] = by_model
            fields["usage_by_node"] = by_node
            fields["llm_call_ms"] = {model: list(ms) for model, ms in sorted(self.call_ms.items())}
            fields["llm_call_count"] = len(self.llm_calls)
            fields["calls_without_usage"] = len(self.no_usage)
            fields["cost_usd"] = round(totals[_COST], 12) if totals[_PRICED] else None
            fields["unpriced_calls"] = totals[_UNPRICED] + len(self.no_usage)
            fields["llm_ms"] = round(totals[_MS], 3)
            first, started = self.first_token_at, self.run_started
            fields["first_token_ms"] = (
                round((first - started) * 1000.0, 3)
                if first is not None and started is not None
                else None
            )
            fields["last_ai_message"] = self.last_ai_message
            fields["first_human_message"] = self.first_human_message
            fields["message_count"] = self.message_count
            self.dirty = False
            return fields


def _add(counters: list[Any], usage: Counts, cost: float | None) -> None:
    for index in range(_CALLS):
        counters[index] += usage[index]
    if cost is None:
        counters[_UNPRICED] += 1
    else:
        counters[_COST] += cost
        counters[_PRICED] += 1


def _entry(counters: list[Any], waiting: int) -> dict[str, Any]:
    """One model's or node's counters as stored: tokens, calls, ms, cost (None: unpriced)."""
    entry: dict[str, Any] = dict(zip(TOKEN_FIELDS, counters[:_CALLS], strict=True))
    entry["llm_call_count"] = counters[_CALLS]
    entry["llm_ms"] = round(counters[_MS], 3)
    entry["cost_usd"] = round(counters[_COST], 12) if counters[_PRICED] else None
    entry["unpriced_calls"] = counters[_UNPRICED] + waiting
    return entry


class SpentTally(Tally):
    """Stands in for a finished run's tally: late LLM events are ignored, nothing is kept."""

    __slots__ = ()

    def llm_started(
        self, run_id: uuid.UUID, metadata: Mapping[str, Any] | None, tags: Any = None
    ) -> None:
        return

    def llm_token(self) -> None:
        return

    def llm_ended(self, run_id: uuid.UUID, response: LLMResult) -> None:
        return


SPENT_TALLY = SpentTally()

__all__ = ["SPENT_TALLY", "SpentTally", "Tally"]
