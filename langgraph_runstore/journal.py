"""The run event journal's values: ``RunEvent``, the journal's settings (``JournalConfig``,
its levels), event ids and the bounds every payload keeps.

A run's journal is an append-only list of events in the store, numbered by a per-run
``seq`` from 1. An event is ``(run_id, seq, kind, ts, data)``: ``kind`` names what
happened (``KINDS``), ``ts`` is when it happened (ISO-8601 UTC with microseconds, taken
in the process that saw it, so a batched write keeps each event's own time) and ``data``
is a small JSON object. An event's ``id`` is ``"<run_id>:<seq>"``, what ``join_stream``
takes back as ``last_event_id``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from langgraph_runstore.errors import InvalidInputError
from langgraph_runstore.text import storable_text

JournalLevel = Literal["off", "runs", "nodes", "all"]
#: The levels, each recording what the one before it does and more.
LEVELS: tuple[str, ...] = ("off", "runs", "nodes", "all")

#: Each event kind and the lowest level that records it.
KINDS: Mapping[str, str] = {
    "run_admitted": "runs",
    "run_started": "runs",
    "progress": "runs",
    "interrupt": "runs",
    "error": "runs",
    "run_ended": "runs",
    "node_started": "nodes",
    "node_ended": "nodes",
    "llm_ended": "nodes",
    "tool_ended": "nodes",
    "llm_started": "all",
    "tool_started": "all",
}


@dataclass(frozen=True)
class JournalConfig:
    """How much of a run the journal keeps.

    ``level``: ``"off"`` (no journal), ``"runs"`` (admitted, started, progress,
    interrupt, error, ended), ``"nodes"`` (the default: also every node's start and end
    and every LLM and tool call when it ends, with its duration, tokens and error) or
    ``"all"`` (also LLM and tool calls when they start). ``max_text``: the characters of
    message text, tool output, error or interrupt value an event keeps (inputs and
    outputs of nodes are never copied). ``flush_interval``: seconds an event may wait in
    memory before it is written; a run shorter than that writes its whole journal in one
    statement, after its final write.
    """

    level: JournalLevel = "nodes"
    max_text: int = 200
    flush_interval: float = 1.0

    def __post_init__(self) -> None:
        if self.level not in LEVELS:
            raise InvalidInputError(
                f"unknown journal level {self.level!r}: expected one of {LEVELS}"
            )
        max_text = self.max_text
        if isinstance(max_text, bool) or not isinstance(max_text, int) or not max_text >= 0:
            raise InvalidInputError(
                f"journal max_text must be a whole number of characters >= 0, got {max_text!r}"
            )
        interval = self.flush_interval
        if (
            isinstance(interval, bool)
            or not isinstance(interval, (int, float))
            or not 0 < interval < math.inf
        ):
            raise InvalidInputError(
                f"journal flush_interval must be a finite number of seconds > 0, got {interval!r}"
            )

    @classmethod
    def of(cls, value: JournalConfig | str | None) -> JournalConfig:
        """``value`` as a JournalConfig: a config, a level name, or None (the default)."""
        if value is None:
            return cls()
        if isinstance(value, JournalConfig):
            return value
        if isinstance(value, str):
            return cls(level=value)  # type: ignore[arg-type]
        raise InvalidInputError(
            f"journal must be a JournalConfig or one of {LEVELS}, got {type(value).__name__}"
        )

    @property
    def rank(self) -> int:
        """The level's position in LEVELS (0 is off)."""
        return LEVELS.index(self.level)


@dataclass(frozen=True)
class RunEvent:
    """One event of a run's journal (see the module docstring)."""

    run_id: str
    seq: int
    kind: str
    ts: str
    data: Mapping[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        """``"<run_id>:<seq>"``: pass it as ``join_stream(last_event_id=...)`` to resume."""
        return event_id(self.run_id, self.seq)

    @property
    def summary(self) -> str:
        """What happened, in one line a person reads (the CLI and the report print it)."""
        return str(_SUMMARIES.get(self.kind, _data_summary)(self.data))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: id, run_id, seq, kind, ts, data."""
        return {
            "id": self.id,
            "run_id": self.run_id,
            "seq": self.seq,
            "kind": self.kind,
            "ts": self.ts,
            "data": dict(self.data),
        }


def _duration(data: Mapping[str, Any]) -> str:
    ms = data.get("duration_ms")
    if not isinstance(ms, (int, float)):
        return ""
    return f" in {ms:.1f} ms" if ms < 1000 else f" in {ms / 1000:.2f} s"


def _path(data: Mapping[str, Any]) -> str:
    """A node's place: its sub-graph path from the checkpoint namespace, "outer > inner"."""
    ns = data.get("ns")
    if isinstance(ns, str) and "|" in ns:
        return " > ".join(part.split(":", 1)[0] for part in ns.split("|"))
    return str(data.get("node") or "?")


def _failed(data: Mapping[str, Any]) -> str:
    if data.get("error"):
        return f" failed: {data['error']}"
    return " (interrupted)" if data.get("interrupted") else ""


def _where(data: Mapping[str, Any]) -> str:
    return f" in node {data['node']}" if data.get("node") else ""


def _llm(data: Mapping[str, Any]) -> str:
    text = f"{data.get('model') or '?'}{_where(data)}"
    if "total_tokens" in data:
        text += (
            f": {data['total_tokens']:,} tokens ({data.get('input_tokens', 0):,} in, "
            f"{data.get('output_tokens', 0):,} out)"
        )
    if data.get("usage") is False:
        text += ", no usage reported"
    text += _duration(data) + _failed(data)
    if data.get("tool_calls"):
        text += f", calls {', '.join(str(name) for name in data['tool_calls'])}"
    return text


def _run_ended(data: Mapping[str, Any]) -> str:
    reason = f" ({data['stop_reason']})" if data.get("stop_reason") else ""
    text = f"{data.get('status')}{reason}: {data.get('total_tokens', 0):,} tokens, "
    text += f"{data.get('llm_call_count', 0):,} LLM call(s){_duration(data)}"
    return text + (f"; {data['error']}" if data.get("error") else "")


def _data_summary(data: Mapping[str, Any]) -> str:
    return ", ".join(f"{key}={value}" for key, value in data.items())


_SUMMARIES: dict[str, Any] = {
    "run_admitted": lambda d: (
        f"thread {d.get('thread_id')}"
        + (f", assistant {d['assistant_id']}" if d.get("assistant_id") else "")
    ),
    "run_started": lambda d: f"attempt {d['attempt']}" if d.get("attempt") else "",
    "node_started": lambda d: _path(d),
    "node_ended": lambda d: _path(d) + _duration(d) + _failed(d),
    "llm_started": lambda d: f"{d.get('model') or '?'}{_where(d)}",
    "llm_ended": _llm,
    "tool_started": lambda d: f"{d.get('tool') or '?'}{_where(d)}",
    "tool_ended": lambda d: (
        f"{d.get('tool') or '?'}{_duration(d)}{_failed(d)}"
        + (f" -> {d['output']}" if d.get("output") else "")
    ),
    "interrupt": lambda d: (
        f"waiting on {len(d.get('interrupts') or [])} interrupt(s): "
        + "; ".join(str(entry.get("value")) for entry in d.get("interrupts") or [])
    ),
    "error": lambda d: str(d.get("error")),
    "progress": lambda d: (
        f"{d.get('total_tokens', 0):,} tokens, {d.get('llm_call_count', 0):,} LLM call(s) so far"
    ),
    "run_ended": _run_ended,
}


def event_id(run_id: str, seq: int) -> str:
    """The id of event ``seq`` of ``run_id``."""
    return f"{run_id}:{seq}"


def parse_event_id(value: Any, *, run_id: str) -> int:
    """The seq of ``value``, an event id of run ``run_id``; InvalidInputError naming it for
    anything else (another run's event, a malformed id)."""
    if not isinstance(value, str):
        raise InvalidInputError(
            f"last_event_id must be an event id '<run_id>:<seq>' (a str), got {value!r}",
            run_id=run_id,
        )
    owner, sep, seq = value.rpartition(":")
    if not sep or not seq.isdigit() or not seq.isascii():
        raise InvalidInputError(
            f"last_event_id {value!r} is not an event id: expected '<run_id>:<seq>', "
            "the id of an event of this run",
            run_id=run_id,
        )
    if owner != run_id:
        raise InvalidInputError(
            f"last_event_id {value!r} names an event of run {owner!r}, not of run {run_id!r}",
            run_id=run_id,
        )
    return int(seq)


def check_after(value: Any, *, run_id: str) -> int:
    """``events(after=...)``: None (from the start) or a seq >= 0."""
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidInputError(
            f"after must be an event seq (an int >= 0) or None, got {value!r}", run_id=run_id
        )
    return value


def cut(text: str, limit: int) -> str:
    """``text`` storable and at most ``limit`` characters (an ellipsis marks a cut)."""
    text = storable_text(text)
    if len(text) <= limit:
        return text
    return text[: max(limit - 1, 0)] + "…" if limit else ""


#: How deep, and how many items per list or object, a bounded JSON value keeps.
MAX_DEPTH = 4
MAX_ITEMS = 20


def bounded(value: Any, limit: int, _depth: int = 0) -> Any:
    """A JSON value (of ``interrupts.jsonable``) made small: strings cut to ``limit``
    characters, lists and objects to MAX_ITEMS entries and MAX_DEPTH levels."""
    if isinstance(value, str):
        return cut(value, limit)
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if _depth >= MAX_DEPTH:
        return cut(repr(value), limit)
    if isinstance(value, Mapping):
        items = list(value.items())[:MAX_ITEMS]
        return {cut(str(k), limit): bounded(v, limit, _depth + 1) for k, v in items}
    if isinstance(value, (list, tuple)):
        return [bounded(item, limit, _depth + 1) for item in value[:MAX_ITEMS]]
    return cut(repr(value), limit)


__all__ = [
    "KINDS",
    "LEVELS",
    "JournalConfig",
    "JournalLevel",
    "RunEvent",
    "bounded",
    "check_after",
    "cut",
    "event_id",
    "parse_event_id",
]
