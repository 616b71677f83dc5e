"""The token mapping: what an LLM call reported, read into the run record's six counters.

One rule for every integration, in this order (the first that yields counts wins):

1. ``AIMessage.usage_metadata`` (langchain-core's ``UsageMetadata``): ``input_tokens``,
   ``output_tokens``, ``total_tokens`` (input + output when absent), and from the details:

   - ``cache_read``: ``input_token_details["cache_read"]`` plus every service-tier-prefixed
     ``<tier>_cache_read`` (langchain-openai writes ``flex_cache_read``, ``priority_...``);
   - ``cache_creation``: the TTL-split writes ``ephemeral_5m_input_tokens`` +
     ``ephemeral_1h_input_tokens`` (any ``ephemeral_*``) when they add up to more than 0,
     else ``cache_creation`` plus every ``<tier>_cache_creation``. langchain-anthropic sets
     ``cache_creation`` to 0 when it splits by TTL, so the split is the truth;
   - ``reasoning``: ``output_token_details["reasoning"]`` plus every ``<tier>_reasoning``.

   Audio tokens (``audio``) and the per-tier remainders (``flex``, ``priority``) are parts
   of ``input_tokens``/``output_tokens`` and have no counter of their own.
2. The provider's raw usage in ``response_metadata`` (``usage``, ``token_usage``,
   ``usage_metadata``), then ``llm_output["token_usage"]`` / ``llm_output["usage"]``, read by
   :func:`provider_counts`: OpenAI Chat Completions and Responses, Anthropic Messages (whose
   ``input_tokens`` excludes the cache, which is added back), Gemini (whose candidates leave
   the thoughts out: they are added to the output), Bedrock Converse and Ollama key names.

``input_tokens`` always includes cached input, as langchain-core defines it. A count that is
not a non-negative whole number (None, negative, NaN, a non-numeric string) is dropped;
integral floats and digit strings are accepted. A call whose usage yields no usable
input, output or total count reports *no usage* (``calls_without_usage``).

When a message carries several generations (``n > 1``), each one repeats the request's
usage: the first generation that reports usage counts for its prompt.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

#: Token counts in ``schemas.TOKEN_FIELDS`` order: input, output, total, cache_read,
#: cache_creation, reasoning (plain ints: no object per LLM call).
Counts = tuple[int, int, int, int, int, int]


def count(value: Any) -> int | None:
    """``value`` as a token count, or None when it is not a non-negative whole number."""
    if type(value) is int:
        return value if value >= 0 else None
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, float):
        return int(value) if math.isfinite(value) and value >= 0 and value.is_integer() else None
    if isinstance(value, str):
        digits = value.strip()
        # isdigit() alone admits "²" and other digits int() refuses
        return int(digits) if digits.isascii() and digits.isdigit() else None
    return None


def _sum(values: Any) -> int:
    return sum(found for value in values if (found := count(value)) is not None)


def _details(usage: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    details = usage.get(name)
    return details if isinstance(details, Mapping) else {}


def _counted(
    input_tokens: int | None,
    output_tokens: int | None,
    total_tokens: int | None,
    cache_read: int,
    cache_creation: int,
    reasoning: int,
) -> Counts | None:
    if input_tokens is None and output_tokens is None and total_tokens is None:
        return None
    input_tokens = input_tokens or 0
    output_tokens = output_tokens or 0
    if total_tokens is None:
        total_tokens = input_tokens + output_tokens
    return (input_tokens, output_tokens, total_tokens, cache_read, cache_creation, reasoning)


def usage_metadata_counts(usage: Any) -> Counts | None:
    """Counts from a langchain-core ``UsageMetadata`` dict; None when it has none."""
    if not isinstance(usage, Mapping) or not usage:
        return None
    # one pass per details dict, plain ints taken as they are: this runs for every LLM call
    cache_read = cache_creation = ttl_split = reasoning = 0
    inputs = usage.get("input_token_details")
    if isinstance(inputs, Mapping):
        for key, value in inputs.items():
            if type(value) is not int or value < 0:
                value = count(value)
                if value is None:
                    continue
            if key.endswith("cache_read"):  # cache_read, flex_cache_read, ...
                cache_read += value
            elif key.endswith("cache_creation"):
                cache_creation += value
            elif key.startswith("ephemeral_"):  # the TTL split of the cache writes
                ttl_split += value
    outputs = usage.get("output_token_details")
    if isinstance(outputs, Mapping):
        for key, value in outputs.items():
            if key.endswith("reasoning"):
                if type(value) is not int or value < 0:
                    value = count(value)
                    if value is None:
                        continue
                reasoning += value
    return _counted(
        count(usage.get("input_tokens")),
        count(usage.get("output_tokens")),
        count(usage.get("total_tokens")),
        cache_read,
        ttl_split or cache_creation,
        reasoning,
    )


def _first(raw: Mapping[str, Any], *names: str) -> int | None:
    for name in names:
        if name in raw:
            found = count(raw[name])
            if found is not None:
                return found
    return None


def provider_counts(raw: Any) -> Counts | None:
    """Counts from a provider's own usage dict (the key names of the module docstring)."""
    if not isinstance(raw, Mapping) or not raw:
        return None
    prompt = _details(raw, "prompt_tokens_details") or _details(raw, "input_tokens_details")
    completion = _details(raw, "completion_tokens_details") or _details(
        raw, "output_tokens_details"
    )
    cache_read = (
        _first(prompt, "cached_tokens")
        or _first(raw, "cache_read_input_tokens", "cacheReadInputTokens")
        or _first(raw, "cached_content_token_count", "cachedContentTokenCount")
        or 0
    )
    ttl = raw.get("cache_creation")
    ttl_split = _sum(ttl.values()) if isinstance(ttl, Mapping) else 0
    cache_creation = (
        ttl_split
        or _first(prompt, "cache_write_tokens")
        or _first(raw, "cache_creation_input_tokens", "cacheWriteInputTokens")
        or 0
    )
    reasoning = (
        _first(completion, "reasoning_tokens", "thinking_tokens")
        or _first(raw, "thoughts_token_count", "thoughtsTokenCount")
        or 0
    )
    input_tokens = _first(
        raw,
        "prompt_tokens",
        "input_tokens",
        "inputTokens",
        "prompt_token_count",
        "promptTokenCount",
        "prompt_eval_count",
    )
    output_tokens = _first(
        raw,
        "completion_tokens",
        "output_tokens",
        "outputTokens",
        "candidates_token_count",
        "candidatesTokenCount",
        "eval_count",
    )
    if output_tokens is not None and (
        "candidates_token_count" in raw or "candidatesTokenCount" in raw
    ):
        output_tokens += reasoning  # Gemini counts thoughts apart from the candidates
    anthropic_shape = "total_tokens" not in raw and (
        "cache_read_input_tokens" in raw or "cache_creation_input_tokens" in raw
    )
    if anthropic_shape and input_tokens is not None:
        input_tokens += cache_read + cache_creation  # Anthropic counts the cache apart
    return _counted(
        input_tokens,
        output_tokens,
        _first(raw, "total_tokens", "totalTokens", "total_token_count", "totalTokenCount"),
        cache_read,
        cache_creation,
        reasoning,
    )


_RESPONSE_USAGE_KEYS = ("usage", "token_usage", "usage_metadata")


def message_counts(message: Any) -> Counts | None:
    """Counts of one generated message: its ``usage_metadata``, else its response metadata."""
    found = usage_metadata_counts(getattr(message, "usage_metadata", None))
    if found is not None:
        return found
    metadata = getattr(message, "response_metadata", None)
    if isinstance(metadata, Mapping):
        for key in _RESPONSE_USAGE_KEYS:
            found = provider_counts(metadata.get(key))
            if found is not None:
                return found
    return None


def result_counts(
    generations: Sequence[Sequence[Any]], llm_output: Mapping[str, Any] | None
) -> Counts | None:
    """Counts of one LLM call's result: per prompt, its first generation with usage;
    ``llm_output`` when no generation reports any."""
    total: Counts | None = None
    for prompt_generations in generations:
        for generation in prompt_generations:
            message = getattr(generation, "message", None)
            found = message_counts(message) if message is not None else None
            if found is not None:
                total = found if total is None else _add(total, found)
                break
    if total is None and isinstance(llm_output, Mapping):
        total = provider_counts(llm_output.get("token_usage")) or provider_counts(
            llm_output.get("usage")
        )
    return total


def reported_model(message: Any, llm_output: Mapping[str, Any] | None, started: Any) -> str | None:
    """The model an LLM call names: its message's response metadata, else the result's
    ``llm_output``, else the ``ls_model_name`` its start carried (None when none does)."""
    metadata = getattr(message, "response_metadata", None) or {}
    name = (
        metadata.get("model_name")
        or metadata.get("model")
        or (llm_output or {}).get("model_name")
        or (llm_output or {}).get("model")
        or (started.get("ls_model_name") if isinstance(started, Mapping) else None)
    )
    return str(name) if name else None


def _add(a: Counts, b: Counts) -> Counts:
    return (a[0] + b[0], a[1] + b[1], a[2] + b[2], a[3] + b[3], a[4] + b[4], a[5] + b[5])


__all__ = [
    "Counts",
    "count",
    "message_counts",
    "provider_counts",
    "reported_model",
    "result_counts",
    "usage_metadata_counts",
]
