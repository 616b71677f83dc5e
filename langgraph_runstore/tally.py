"""Counting what one run used, from its LLM calls' ends: tokens per model (the mapping of
``usage.py``), LLM calls, calls without usage, the first human and last AI message.

A Tally is thread-safe: a sync graph's parallel nodes report from several threads.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Mapping
from typing import Any

from langchain_core.messages import AIMessage
from langchain_core.outputs import LLMResult

from langgraph_runstore.messages import message_text
from langgraph_runstore.query import UNKNOWN_MODEL
from langgraph_runstore.schemas import TOKEN_FIELDS
from langgraph_runstore.usage import result_counts

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


class Tally:
    """What one run used: tokens per model, LLM calls, messages. Thread-safe.

    Kept small on purpose (one dict of calls, one list of six counters per model): a
    manager holds finished runs for a while, and every object they keep alive is work for
    the garbage collector.
    """

    __slots__ = (
        "by_model",
        "dirty",
        "first_human_message",
        "last_ai_message",
        "llm_calls",
        "lock",
        "message_count",
        "no_usage",
    )

    def __init__(self) -> None:
        self.lock = threading.Lock()
        #: model name -> [input, output, total, cache_read, cache_creation, reasoning]
        self.by_model: dict[str, list[int]] = {}
        #: LLM callback run id -> the metadata its start carried (a reference, not a copy),
        #: or _COUNTED once counted
        self.llm_calls: dict[uuid.UUID, Any] = {}
        #: calls that ended without usage -> their model (a later end may still report it)
        self.no_usage: dict[uuid.UUID, str] = {}
        self.last_ai_message: str | None = None
        self.first_human_message: str | None = None
        self.message_count = 0
        self.dirty = False

    def llm_started(self, run_id: uuid.UUID, metadata: Mapping[str, Any] | None) -> None:
        with self.lock:
            if run_id not in self.llm_calls:
                self.llm_calls[run_id] = metadata

    def llm_ended(self, run_id: uuid.UUID, response: LLMResult) -> None:
        """Count one call's end. A call's usage is counted once, however often its end is
        reported; an end without usage leaves room for a later end of it that has some."""
        unreported = self._count_end(run_id, response)
        if unreported is not None:
            _warn_no_usage(*unreported)  # outside the lock: logging may block

    def _count_end(self, run_id: uuid.UUID, response: LLMResult) -> tuple[str, Any] | None:
        """llm_ended under the lock; returns (model, provider) for a first end without usage."""
        with self.lock:
            started = self.llm_calls.get(run_id)
            if started is _COUNTED:
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
            model = self.no_usage.get(run_id) or _model_name(message, response.llm_output, started)
            counters = self.by_model.get(model)
            if counters is None:
                counters = self.by_model[model] = [0, 0, 0, 0, 0, 0]
            self.dirty = True
            if usage is None:
                if run_id in self.no_usage:
                    return None
                self.no_usage[run_id] = model
                self.llm_calls.setdefault(run_id, started)
                provider = started.get("ls_provider") if isinstance(started, Mapping) else None
                return model, provider
            self.no_usage.pop(run_id, None)
            self.llm_calls[run_id] = _COUNTED
            for index, value in enumerate(usage):
                counters[index] += value
            return None

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
            totals = [0, 0, 0, 0, 0, 0]
            by_model: dict[str, dict[str, int]] = {}
            for model in sorted(self.by_model):
                counters = self.by_model[model]
                by_model[model] = dict(zip(TOKEN_FIELDS, counters, strict=True))
                for index, value in enumerate(counters):
                    totals[index] += value
            fields: dict[str, Any] = dict(zip(TOKEN_FIELDS, totals, strict=True))
            fields["token_usage_by_model"] = by_model
            fields["llm_call_count"] = len(self.llm_calls)
            fields["calls_without_usage"] = len(self.no_usage)
            fields["last_ai_message"] = self.last_ai_message
            fields["first_human_message"] = self.first_human_message
            fields["message_count"] = self.message_count
            self.dirty = False
            return fields


class SpentTally(Tally):
    """Stands in for a finished run's tally: late LLM events are ignored, nothing is kept."""

    __slots__ = ()

    def llm_started(self, run_id: uuid.UUID, metadata: Mapping[str, Any] | None) -> None:
        return

    def llm_ended(self, run_id: uuid.UUID, response: LLMResult) -> None:
        return


SPENT_TALLY = SpentTally()

__all__ = ["SPENT_TALLY", "SpentTally", "Tally"]
