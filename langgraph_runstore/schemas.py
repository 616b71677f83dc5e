"""Value types of the run lifecycle: statuses, strategies, token usage and the RunRecord."""

from __future__ import annotations

import asyncio
import json
import re
import reprlib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime, timezone
from enum import Enum
from typing import Any

from langgraph_runstore.budget import Budget
from langgraph_runstore.errors import InvalidInputError, InvalidTransitionError


class _Choice(str, Enum):
    """A str-valued enum whose parse() names a bad value and lists the good ones."""

    def __str__(self) -> str:
        return str(self.value)

    @classmethod
    def _lookup(
        cls,
        value: Any,
        what: str,
        *,
        error: type[InvalidInputError] = InvalidInputError,
        **context: Any,
    ) -> Any:
        if isinstance(value, cls):
            return value
        if isinstance(value, str):
            member = cls._value2member_map_.get(value)  # the common case, without Enum.__call__
            if member is not None:
                return member
        try:
            return cls(value)
        except ValueError:
            choices = ", ".join(repr(member.value) for member in cls)
            raise error(f"{what} {value!r}: expected one of {choices}", **context) from None


class RunStatus(_Choice):
    """Where a run is in its lifecycle."""

    pending = "pending"
    running = "running"
    success = "success"
    error = "error"
    timeout = "timeout"
    interrupted = "interrupted"

    @property
    def is_final(self) -> bool:
        """True for success, error, timeout and interrupted: a final status never changes."""
        return self in FINAL_STATUSES

    @classmethod
    def parse(cls, value: RunStatus | str, *, run_id: str | None = None) -> RunStatus:
        """Return the RunStatus for ``value``; raise InvalidInputError naming a bad one."""
        return cls._lookup(value, "unknown run status", run_id=run_id)  # type: ignore[no-any-return]


class DisconnectMode(_Choice):
    """What a streamed run does when its consumer goes away."""

    cancel = "cancel"
    continue_ = "continue"

    @classmethod
    def parse(cls, value: DisconnectMode | str | None) -> DisconnectMode:
        """Return the DisconnectMode for ``value`` (None means ``cancel``)."""
        if value is None:
            return cls.cancel
        return cls._lookup(value, "unknown on_disconnect")  # type: ignore[no-any-return]


class MultitaskStrategy(_Choice):
    """What a new run does when its thread already has a pending or running run."""

    reject = "reject"
    enqueue = "enqueue"
    interrupt = "interrupt"
    rollback = "rollback"

    @classmethod
    def parse(cls, value: MultitaskStrategy | str) -> MultitaskStrategy:
        """Return the strategy for ``value``; raise UnsupportedStrategyError for a bad one."""
        from langgraph_runstore.errors import UnsupportedStrategyError

        return cls._lookup(  # type: ignore[no-any-return]
            value, "unsupported multitask strategy", error=UnsupportedStrategyError
        )


class CancelAction(_Choice):
    """How a cancelled run treats the checkpoints it wrote."""

    interrupt = "interrupt"
    rollback = "rollback"

    @classmethod
    def parse(cls, value: CancelAction | str) -> CancelAction:
        """Return the CancelAction for ``value``; raise InvalidInputError for a bad one."""
        return cls._lookup(value, "unknown cancel action")  # type: ignore[no-any-return]


class ThreadStatus(_Choice):
    """A thread's state as LangGraph Platform reports it."""

    idle = "idle"
    busy = "busy"
    interrupted = "interrupted"
    error = "error"


FINAL_STATUSES = frozenset(
    {RunStatus.success, RunStatus.error, RunStatus.timeout, RunStatus.interrupted}
)
ACTIVE_STATUSES = frozenset({RunStatus.pending, RunStatus.running})


def check_transition(
    current: RunStatus, requested: RunStatus, *, run_id: str | None = None
) -> bool:
    """Validate ``current -> requested``; return False when it is a no-op.

    pending may go to running or to any final status; running to a final status, or back to
    pending when recovery re-queues it; a final status never changes, and setting the same
    status again is a no-op. Anything else raises InvalidTransitionError.
    """
    if current == requested:
        return False
    if current == RunStatus.pending or (
        current == RunStatus.running and requested != RunStatus.running
    ):
        return True
    raise InvalidTransitionError(
        f"run {run_id!r} cannot go from {current.value!r} to {requested.value!r}: "
        "a final status never changes",
        run_id=run_id,
        current=current,
        requested=requested,
    )


def now_iso() -> str:
    """The current UTC time in the one text form the package stores: sortable as text."""
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


_CANONICAL_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}\+00:00")


def normalize_timestamp(value: str | datetime | None, *, name: str = "timestamp") -> str | None:
    """Return ``value`` as a UTC ISO-8601 string with microseconds, so text order is time order.

    Naive datetimes and strings without an offset are taken as UTC.
    """
    if value is None:
        return None
    if isinstance(value, str) and _CANONICAL_TIMESTAMP.fullmatch(value):
        return value  # already in the stored form (the package writes only this form)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise InvalidInputError(
                f"{name} {value!r} is not an ISO-8601 timestamp (e.g. '2026-01-01T00:00:00+00:00')"
            ) from None
    elif isinstance(value, datetime):
        parsed = value
    else:
        raise InvalidInputError(f"{name} {value!r} must be an ISO-8601 string or a datetime")
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.astimezone(timezone.utc).isoformat(timespec="microseconds")


def ensure_json(value: Any, *, name: str, run_id: str | None = None) -> None:
    """Raise InvalidInputError naming ``name`` when ``value`` cannot be stored as JSON."""
    if not value and isinstance(value, (dict, list)):
        return
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError, RecursionError) as exc:
        raise InvalidInputError(
            f"{name} must be JSON-serialisable: {exc} (value: {_short_repr(value)})",
            run_id=run_id,
        ) from None


def _short_repr(value: Any, limit: int = 120) -> str:
    try:
        text = repr(value)
    except RecursionError:  # nested too deep to show whole
        text = reprlib.repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass(frozen=True)
class TokenUsage:
    """Token counts of one LLM call, or a sum of several."""

    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    cache_read_tokens: int = 0
    cache_creation_tokens: int = 0
    reasoning_tokens: int = 0

    def __add__(self, other: TokenUsage) -> TokenUsage:
        # spelled out: this runs for every LLM call a tracker counts
        return TokenUsage(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.total_tokens + other.total_tokens,
            self.cache_read_tokens + other.cache_read_tokens,
            self.cache_creation_tokens + other.cache_creation_tokens,
            self.reasoning_tokens + other.reasoning_tokens,
        )

    def as_dict(self) -> dict[str, int]:
        return {
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "total_tokens": self.total_tokens,
            "cache_read_tokens": self.cache_read_tokens,
            "cache_creation_tokens": self.cache_creation_tokens,
            "reasoning_tokens": self.reasoning_tokens,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> TokenUsage:
        """Build from a mapping with our field names; unknown keys are ignored."""
        if not data:
            return cls()
        return cls(**{f.name: int(data.get(f.name) or 0) for f in fields(cls)})


TOKEN_FIELDS = tuple(f.name for f in fields(TokenUsage))

#: deer-flow's names for two of the token fields (its RunRecord, RunStore rows and
#: ``update_run_completion`` keywords), read and accepted as ours
TOKEN_ALIASES = {"total_input_tokens": "input_tokens", "total_output_tokens": "output_tokens"}


def resolve_token_aliases(
    fields: Mapping[str, Any], *, run_id: str | None = None
) -> Mapping[str, Any]:
    """``fields`` with deer-flow's ``total_input_tokens``/``total_output_tokens`` renamed to
    ``input_tokens``/``output_tokens``. Both names of one count with different values raise
    InvalidInputError."""
    if "total_input_tokens" not in fields and "total_output_tokens" not in fields:
        return fields
    resolved = dict(fields)
    for alias, name in TOKEN_ALIASES.items():
        if alias not in resolved:
            continue
        value = resolved.pop(alias)
        if name in resolved and resolved[name] != value:
            raise InvalidInputError(
                f"{alias}={value!r} and {name}={resolved[name]!r} name the same count with "
                f"different values: give one of them ({alias} is deer-flow's name for {name})",
                run_id=run_id,
            )
        resolved[name] = value
    return resolved


#: What a run's calls cost and how long they took: per run, per model and per node.
COST_FIELDS = (
    "cost_usd",
    "unpriced_calls",
    "llm_ms",
    "first_token_ms",
    "usage_by_node",
    "llm_call_ms",
)

#: Fields that ``update_run_completion`` (manager and stores) accepts besides ``status``.
COMPLETION_FIELDS = frozenset(
    {
        *TOKEN_FIELDS,
        "token_usage_by_model",
        "llm_call_count",
        "calls_without_usage",
        *COST_FIELDS,
        "message_count",
        "interrupts",
        "last_ai_message",
        "first_human_message",
        "error",
        "stop_reason",
        "started_at",
        "ended_at",
        "model_name",
    }
)


#: Row fields whose column defaults to 0 (False): a sparse row may leave them out.
_ZERO_DEFAULT_FIELDS = frozenset(
    {
        *TOKEN_FIELDS,
        "llm_call_count",
        "calls_without_usage",
        "unpriced_calls",
        "llm_ms",
        "message_count",
        "attempt",
        "shared_queue",
    }
)

#: Row fields stored as JSON text.
JSON_FIELDS = (
    "metadata",
    "kwargs",
    "token_usage_by_model",
    "interrupts",
    "usage_by_node",
    "llm_call_ms",
)


@dataclass(eq=False)
class RunRecord:
    """One run: its durable fields plus the live state of an executing run.

    Records held by a RunManager are live and mutable: the manager is their only writer.
    ``store_only`` records were read back from the store and carry no live state.
    """

    run_id: str
    thread_id: str
    assistant_id: str | None = None
    status: RunStatus = RunStatus.pending
    on_disconnect: DisconnectMode = DisconnectMode.cancel
    multitask_strategy: str = MultitaskStrategy.reject.value
    metadata: dict[str, Any] = field(default_factory=dict)
    kwargs: dict[str, Any] = field(default_factory=dict)
    created_at: str = ""
    updated_at: str = ""
    started_at: str | None = None
    ended_at: str | None = None
    error: str | None = None
    stop_reason: str | None = None
    model_name: str | None = None
    user_id: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    cache_read_tokens: int = 0
    cache_creation_tokens: int = 0
    reasoning_tokens: int = 0
    #: per model: the six token counts, ``llm_call_count``, ``llm_ms``, ``cost_usd``
    #: (None: no call of it was priced) and ``unpriced_calls``
    token_usage_by_model: dict[str, dict[str, Any]] = field(default_factory=dict)
    llm_call_count: int = 0
    calls_without_usage: int = 0
    #: USD of the run's priced calls; None when no call could be priced
    cost_usd: float | None = None
    #: calls that ended without a price (no usage, or a model nothing prices)
    unpriced_calls: int = 0
    #: summed duration of the run's LLM calls, ms
    llm_ms: float = 0.0
    #: from the graph's start to the first streamed token, ms; None when nothing streamed
    first_token_ms: float | None = None
    #: the same counters per graph node (``accounting.py``): key -> tokens, calls, cost
    usage_by_node: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: model -> its calls' durations, ms (a sample of at most 1000): for the percentiles
    llm_call_ms: dict[str, list[float]] = field(default_factory=dict, repr=False)
    message_count: int = 0
    #: what a paused run waits for: ``{"id", "value", "ns"}`` per interrupt (interrupts.py)
    interrupts: list[dict[str, Any]] = field(default_factory=list)
    last_ai_message: str | None = None
    first_human_message: str | None = None
    owner_worker_id: str | None = None
    lease_expires_at: str | None = None
    cancel_requested_at: str | None = None
    cancel_action: str | None = None
    attempt: int = 0
    shared_queue: bool = False
    #: names this run for retries of the request that made it: unique in the store
    idempotency_key: str | None = None
    # live state, never persisted
    store_only: bool = False
    #: True once a create/start/submit with this run's ``idempotency_key`` returned it
    #: instead of making a new run (deer-flow's flag): read it right after that call
    idempotency_reused: bool = False
    #: False while the store does not hold this record's latest status: a write failed,
    #: and a final one is being retried in the background (see durability.py)
    durable: bool = True
    task: asyncio.Task[Any] | None = field(default=None, repr=False)
    abort_action: str = CancelAction.interrupt.value
    output: Any = field(default=None, repr=False)
    config: dict[str, Any] = field(default_factory=dict, repr=False)
    #: the limits the run's tracker enforces (budget.py)
    budget: Budget | None = field(default=None, repr=False)
    # made on first use: most runs are never cancelled, and a manager keeps finished
    # records for a while (each object they hold is garbage-collector work)
    _abort_event: asyncio.Event | None = field(default=None, init=False, repr=False)

    @property
    def abort_event(self) -> asyncio.Event:
        """Set when the run is asked to stop (cancel, timeout); ``abort_action`` says how."""
        if self._abort_event is None:
            self._abort_event = asyncio.Event()
        return self._abort_event

    @property
    def abort_requested(self) -> bool:
        """Whether the run has been asked to stop (without creating the event)."""
        return self._abort_event is not None and self._abort_event.is_set()

    @property
    def total_input_tokens(self) -> int:
        """deer-flow's name for ``input_tokens`` (read-only)."""
        return self.input_tokens

    @property
    def total_output_tokens(self) -> int:
        """deer-flow's name for ``output_tokens`` (read-only)."""
        return self.output_tokens

    @property
    def token_usage(self) -> TokenUsage:
        """The run's token totals as one value."""
        return TokenUsage(*(getattr(self, name) for name in TOKEN_FIELDS))

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES

    @property
    def paused(self) -> bool:
        """True for a run that ended waiting on an interrupt (``success`` with
        ``stop_reason="interrupt"``): its thread resumes with ``Command(resume=...)``."""
        return self.status is RunStatus.success and self.stop_reason == "interrupt"

    @property
    def queue_ms(self) -> float | None:
        """Milliseconds from created to started (time spent queued); None before it starts."""
        if not self.started_at or not self.created_at:
            return None
        waited = datetime.fromisoformat(self.started_at) - datetime.fromisoformat(self.created_at)
        return max(waited.total_seconds() * 1000.0, 0.0)

    @property
    def duration_seconds(self) -> float | None:
        """Seconds from start to end (or to now while running); None before it starts."""
        if not self.started_at:
            return None
        start = datetime.fromisoformat(self.started_at)
        end = datetime.fromisoformat(self.ended_at) if self.ended_at else datetime.now(timezone.utc)
        return (end - start).total_seconds()

    def to_row(self, *, sparse: bool = False) -> dict[str, Any]:
        """The persisted fields as a store row (status and enums as plain strings).

        ``sparse`` leaves out what a new row of the runs table holds anyway (None, and zero
        counters): fewer values to check, encode and bind when a run is inserted.
        """
        if sparse:
            row = {
                name: value
                for name in ROW_FIELDS
                if (value := getattr(self, name)) is not None
                and (value or name not in _ZERO_DEFAULT_FIELDS)
                and (value or name != "interrupts")
            }
        else:
            row = {name: getattr(self, name) for name in ROW_FIELDS}
        row["status"] = self.status.value
        row["on_disconnect"] = self.on_disconnect.value
        return row

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> RunRecord:
        """Hydrate a store row; NULL status and on_disconnect become pending and cancel.
        A row written by deer-flow's stores (``total_input_tokens``…) is read too."""
        values = {name: row[name] for name in ROW_FIELDS if name in row}
        for alias, name in TOKEN_ALIASES.items():
            if name not in values and alias in row:
                values[name] = row[alias]
        status = values.get("status")
        values["status"] = RunStatus(status) if status else RunStatus.pending
        values["on_disconnect"] = DisconnectMode.parse(values.get("on_disconnect") or None)
        values["metadata"] = dict(values.get("metadata") or {})
        values["kwargs"] = dict(values.get("kwargs") or {})
        values["token_usage_by_model"] = dict(values.get("token_usage_by_model") or {})
        values["interrupts"] = list(values.get("interrupts") or [])
        values["usage_by_node"] = dict(values.get("usage_by_node") or {})
        values["llm_call_ms"] = dict(values.get("llm_call_ms") or {})
        values["llm_ms"] = float(values.get("llm_ms") or 0.0)
        for name in ("cost_usd", "first_token_ms"):
            if values.get(name) is not None:
                values[name] = float(values[name])
        values["multitask_strategy"] = values.get("multitask_strategy") or "reject"
        for name in (
            *TOKEN_FIELDS,
            "llm_call_count",
            "calls_without_usage",
            "unpriced_calls",
            "message_count",
            "attempt",
        ):
            values[name] = int(values.get(name) or 0)
        values["shared_queue"] = bool(values.get("shared_queue"))
        values["created_at"] = values.get("created_at") or ""
        values["updated_at"] = values.get("updated_at") or values["created_at"]
        return cls(**values, store_only=True)

    def _repr_html_(self) -> str:
        """Notebook display: status coloured, tokens, duration, last AI message shortened."""
        from langgraph_runstore.display import run_html

        return run_html(self)

    def to_dataframe(self) -> Any:
        """This run as a one-row pandas DataFrame (needs the ``pandas`` extra)."""
        from langgraph_runstore.display import runs_dataframe

        return runs_dataframe([self], fields=ROW_FIELDS)


#: The persisted fields of a RunRecord, in the order of the runs table.
ROW_FIELDS: tuple[str, ...] = tuple(
    f.name
    for f in fields(RunRecord)
    if f.name
    not in {
        "store_only",
        "durable",
        "task",
        "_abort_event",
        "abort_action",
        "output",
        "config",
        "idempotency_reused",
        "budget",
    }
)


def as_record(run: RunRecord | Mapping[str, Any]) -> RunRecord:
    """A RunRecord for a record or a store row."""
    return run if isinstance(run, RunRecord) else RunRecord.from_row(run)
