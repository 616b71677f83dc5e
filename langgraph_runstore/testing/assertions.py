"""``assert_run``: one assertion on a run record whose failure message prints the record's
numbers (status, tokens per model, LLM calls, last AI message), so a failing agent test
shows what the run did."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

_SHOWN_TEXT = 200  # characters of a message or error that a failure message shows


def assert_run(
    run: Any,
    *,
    status: str | None = "success",
    paused: bool | None = None,
    stop_reason: str | None = None,
    llm_calls: int | None = None,
    min_llm_calls: int | None = None,
    max_llm_calls: int | None = None,
    total_tokens: int | None = None,
    max_total_tokens: int | None = None,
    max_input_tokens: int | None = None,
    max_output_tokens: int | None = None,
    models: Iterable[str] | None = None,
    last_ai_message: str | None = None,
    last_ai_message_contains: str | None = None,
    error_contains: str | None = None,
) -> None:
    """Assert what a run recorded; on failure, list each unmet expectation and the record.

    ``run`` is a RunRecord (what the manager returns) or a store row (a mapping of the same
    fields). ``status`` defaults to ``"success"``; pass ``None`` to accept any. ``paused``
    checks whether the run stopped at an interrupt; ``models`` is the exact set of model
    names that reported tokens. Every other keyword left as ``None`` is not checked.
    Bad expectations (a negative count, an unknown status) raise InvalidInputError.
    """
    __tracebackhide__ = True
    from langgraph_runstore.errors import InvalidInputError
    from langgraph_runstore.schemas import RunStatus

    if run is None:
        raise AssertionError("expected a run record, got None (was the run found?)")
    if not isinstance(run, Mapping) and not hasattr(run, "run_id"):
        raise InvalidInputError(
            f"assert_run needs a RunRecord or a store row, not {type(run).__name__} {run!r}"
        )
    if status is not None:
        choices = [s.value for s in RunStatus]
        if str(getattr(status, "value", status)) not in choices:
            raise InvalidInputError(f"status must be one of {choices}, not {status!r}")
    limits = {
        "llm_calls": llm_calls,
        "min_llm_calls": min_llm_calls,
        "max_llm_calls": max_llm_calls,
        "total_tokens": total_tokens,
        "max_total_tokens": max_total_tokens,
        "max_input_tokens": max_input_tokens,
        "max_output_tokens": max_output_tokens,
    }
    for name, value in limits.items():
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or value < 0
        ):
            raise InvalidInputError(f"{name} must be a whole number >= 0, not {value!r}")
    if isinstance(models, str):
        raise InvalidInputError(f"models must be a collection of model names, not {models!r}")

    def field(name: str, default: Any = None) -> Any:
        if isinstance(run, Mapping):
            return run.get(name, default)
        return getattr(run, name, default)

    problems: list[str] = []

    def expect(what: str, ok: bool, wanted: str, got: Any) -> None:
        if not ok:
            problems.append(f"{what}: expected {wanted}, got {got!r}")

    got_status = str(getattr(field("status"), "value", field("status")))
    calls = int(field("llm_call_count", 0) or 0)
    tokens = {k: int(field(f"{k}_tokens", 0) or 0) for k in ("input", "output", "total")}
    last = field("last_ai_message")
    if status is not None:
        wanted = str(getattr(status, "value", status))
        expect("status", got_status == wanted, repr(wanted), got_status)
    if paused is not None:
        is_paused = got_status == "success" and field("stop_reason") == "interrupt"
        expect("paused", is_paused == paused, repr(paused), is_paused)
    if stop_reason is not None:
        expect(
            "stop_reason",
            field("stop_reason") == stop_reason,
            repr(stop_reason),
            field("stop_reason"),
        )
    if llm_calls is not None:
        expect("llm_calls", calls == llm_calls, str(llm_calls), calls)
    if min_llm_calls is not None:
        expect("llm_calls", calls >= min_llm_calls, f"at least {min_llm_calls}", calls)
    if max_llm_calls is not None:
        expect("llm_calls", calls <= max_llm_calls, f"at most {max_llm_calls}", calls)
    if total_tokens is not None:
        expect("total_tokens", tokens["total"] == total_tokens, str(total_tokens), tokens["total"])
    for kind, limit in (
        ("total", max_total_tokens),
        ("input", max_input_tokens),
        ("output", max_output_tokens),
    ):
        if limit is not None:
            expect(f"{kind}_tokens", tokens[kind] <= limit, f"at most {limit}", tokens[kind])
    if models is not None:
        wanted_models = sorted(set(models))
        got_models = sorted(field("token_usage_by_model") or {})
        expect("models", got_models == wanted_models, repr(wanted_models), got_models)
    if last_ai_message is not None:
        expect("last_ai_message", last == last_ai_message, repr(last_ai_message), _short(last))
    if last_ai_message_contains is not None:
        found = isinstance(last, str) and last_ai_message_contains in last
        expect("last_ai_message", found, f"to contain {last_ai_message_contains!r}", _short(last))
    if error_contains is not None:
        error = field("error")
        found = isinstance(error, str) and error_contains in error
        expect("error", found, f"to contain {error_contains!r}", _short(error))
    if problems:
        lines = [_title(field), *(f"  {p}" for p in problems), _numbers(field)]
        raise AssertionError("\n".join(lines))


def _short(value: Any) -> Any:
    if isinstance(value, str) and len(value) > _SHOWN_TEXT:
        return value[:_SHOWN_TEXT] + f"… ({len(value)} characters)"
    return value


def _title(field: Any) -> str:
    return f"run {field('run_id')} (thread {field('thread_id')}) does not match:"


def _numbers(field: Any) -> str:
    """The record's numbers, as a failure message shows them."""
    status = getattr(field("status"), "value", field("status"))
    lines = [
        f"the run: status={status} stop_reason={field('stop_reason')!r} "
        f"error={_short(field('error'))!r}",
        f"  llm_calls={field('llm_call_count', 0)} "
        f"(without usage: {field('calls_without_usage', 0)})",
        "  tokens: "
        + " ".join(
            f"{kind}={field(f'{kind}_tokens', 0)}"
            for kind in ("input", "output", "total", "cache_read", "cache_creation", "reasoning")
        ),
    ]
    for model, usage in sorted((field("token_usage_by_model") or {}).items()):
        shown = " ".join(f"{k.removesuffix('_tokens')}={v}" for k, v in usage.items() if v)
        lines.append(f"  {model}: {shown or 'no tokens'}")
    lines.append(f"  last_ai_message={_short(field('last_ai_message'))!r}")
    return "\n".join(lines)


__all__ = ["assert_run"]
