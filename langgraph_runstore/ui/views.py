"""What the pages show, as plain values for the templates: rows of runs, a run's fields and
usage tables, the usage charts' bars, and which optional fields this version records.

Fields that other parts of the package add over time (``cost_usd``, ``llm_ms``,
``usage_by_node``, latency percentiles in usage rows) are read only when present, so a page
shows them as soon as the installed version records them, and hides them before.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import date, timedelta
from typing import Any

from langgraph_runstore.display import (
    format_duration,
    format_time,
    interrupt_values,
    record_json,
    shorten,
    status_label,
)
from langgraph_runstore.query import UsageRow
from langgraph_runstore.schemas import TOKEN_FIELDS, RunRecord, RunStatus

RECORD_FIELDS = frozenset(f.name for f in fields(RunRecord))
#: Optional per-run numbers, shown when RunRecord has them: field -> column title.
OPTIONAL_RUN_NUMBERS = {"cost_usd": "cost", "llm_ms": "LLM time"}
#: Fields left out of the detail page's field list: samples for percentiles, not for reading.
OWN_SECTIONS = frozenset({"llm_call_ms"})
#: Keys of a model's or node's usage entry, in the order the tables show them.
USAGE_KEY_ORDER = (*TOKEN_FIELDS, "llm_call_count", "calls", "llm_ms", "cost_usd", "unpriced_calls")


def has_field(name: str) -> bool:
    """Whether this version's RunRecord records ``name``."""
    return name in RECORD_FIELDS or isinstance(getattr(RunRecord, name, None), property)


def format_number(name: str, value: Any) -> str:
    """A stored number as a table cell: dollars, milliseconds, or a count."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if not isinstance(value, (int, float)):
        return str(value)
    if "cost" in name or name.endswith("_usd"):
        return f"${value:,.4f}" if value < 100 else f"${value:,.2f}"
    if name.endswith("_ms"):
        return f"{value:,.0f} ms"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.3f}"
    return f"{int(value):,}"


def column_title(name: str) -> str:
    """``input_tokens`` -> ``input``, ``llm_call_count`` -> ``calls``, ``cost_usd`` -> ``cost``."""
    titles = {"llm_call_count": "calls", "cost_usd": "cost", "llm_ms": "LLM time"}
    return titles.get(name, name.removesuffix("_tokens").replace("_", " "))


@dataclass(frozen=True)
class RunRow:
    """One line of a runs table."""

    run_id: str
    short_id: str
    thread_id: str
    status: str
    active: bool
    stop_reason: str
    created: str
    duration: str
    tokens: str
    calls: str
    numbers: tuple[str, ...]  # the OPTIONAL_RUN_NUMBERS this version has
    models: str
    user_id: str
    assistant_id: str
    message: str
    failed: bool


def optional_columns() -> list[tuple[str, str]]:
    """(field, title) of the optional numbers this version records."""
    return [(name, title) for name, title in OPTIONAL_RUN_NUMBERS.items() if has_field(name)]


def run_row(record: RunRecord) -> RunRow:
    failed = record.status in (RunStatus.error, RunStatus.timeout)
    return RunRow(
        run_id=record.run_id,
        short_id=record.run_id[:8],
        thread_id=record.thread_id,
        status=status_label(record),
        active=not record.is_final,
        stop_reason=record.stop_reason or "",
        created=format_time(record.created_at),
        duration=format_duration(record.duration_seconds),
        tokens=f"{record.total_tokens:,}",
        calls=str(record.llm_call_count),
        numbers=tuple(format_number(n, getattr(record, n, None)) for n, _ in optional_columns()),
        models=", ".join(sorted(record.token_usage_by_model)) or (record.model_name or ""),
        user_id=record.user_id or "",
        assistant_id=record.assistant_id or "",
        message=shorten(record.error if failed else record.last_ai_message, 140),
        failed=failed,
    )


def run_rows(records: Iterable[RunRecord]) -> list[RunRow]:
    return [run_row(record) for record in records]


def field_list(record: RunRecord) -> list[tuple[str, str, bool]]:
    """Every persisted field of the run as (name, text, is_json), in the table's order."""
    shown: list[tuple[str, str, bool]] = []
    for name, value in record_json(record).items():
        if name in OWN_SECTIONS:
            continue
        if name == "duration_seconds":
            shown.append(("duration", format_duration(record.duration_seconds), False))
        elif isinstance(value, (dict, list)):
            text = json.dumps(value, indent=2, default=str, ensure_ascii=False) if value else ""
            shown.append((name, text, bool(value)))
        elif isinstance(value, bool):
            shown.append((name, "true" if value else "false", False))
        elif isinstance(value, (int, float)):
            shown.append((name, format_number(name, value), False))
        else:
            shown.append((name, "" if value is None else str(value), False))
    for name in ("queue_ms", "first_token_ms"):  # derived numbers, when this version has them
        if name not in RECORD_FIELDS and has_field(name):
            shown.append((name, format_number(name, getattr(record, name, None)), False))
    return shown


@dataclass(frozen=True)
class UsageTable:
    """Tokens (and calls, time, cost where recorded) per model or per node."""

    columns: tuple[str, ...]
    titles: tuple[str, ...]
    rows: tuple[tuple[str, tuple[str, ...]], ...]


def usage_table(entries: Mapping[str, Mapping[str, Any]] | None) -> UsageTable | None:
    """A table of ``{name: {key: number}}`` (token_usage_by_model, usage_by_node)."""
    if not entries:
        return None
    keys = {key for entry in entries.values() if isinstance(entry, Mapping) for key in entry}
    numeric = [k for k in USAGE_KEY_ORDER if k in keys or k in TOKEN_FIELDS]
    numeric += sorted(
        k
        for k in keys - set(numeric)
        if all(
            isinstance(e.get(k), (int, float, type(None)))
            for e in entries.values()
            if isinstance(e, Mapping)
        )
    )
    rows = tuple(
        (
            name,
            tuple(
                format_number(k, (entry or {}).get(k, 0 if k in TOKEN_FIELDS else None))
                for k in numeric
            ),
        )
        for name, entry in sorted(entries.items())
    )
    return UsageTable(tuple(numeric), tuple(column_title(k) for k in numeric), rows)


def interrupt_rows(interrupts: Sequence[Mapping[str, Any]]) -> list[tuple[str, str, str]]:
    """(id, value, namespace) of each interrupt; the namespace's parts joined by `` / ``."""
    rows = []
    for entry in interrupts:
        ns = entry.get("ns") or ""
        parts = ns if isinstance(ns, (list, tuple)) else [ns]
        rows.append(
            (
                str(entry.get("id") or ""),
                interrupt_values([entry], width=2000),
                " / ".join(str(part) for part in parts if part),
            )
        )
    return rows


# -- usage page --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bar:
    """One bar of a chart: its label, value as shown, and share of the largest (0..100)."""

    label: str
    value: str
    share: float
    css: str = ""
    title: str = ""


def bars(items: Sequence[tuple[str, float, str]], *, name: str = "") -> list[Bar]:
    """Horizontal bars from ``(label, value, css class)``, scaled to the largest."""
    top = max((value for _, value, _ in items), default=0)
    return [
        Bar(
            label,
            format_number(name, value),
            round(100 * value / top, 2) if top > 0 else 0.0,
            css,
            f"{label}: {format_number(name, value)}",
        )
        for label, value, css in items
    ]


@dataclass(frozen=True)
class Column:
    """One day of the stacked token chart: the two parts' heights (0..100) and numbers."""

    day: str
    input_share: float
    output_share: float
    title: str


def peak_tokens(rows: Sequence[UsageRow]) -> int:
    """The most input plus output tokens of one row: the top of the day chart."""
    return max((row.tokens.input_tokens + row.tokens.output_tokens for row in rows), default=0)


#: The day chart draws at most this many days (the newest), so a long window stays legible.
MAX_DAYS = 120


def _every_day(rows: Sequence[UsageRow]) -> list[UsageRow]:
    """The rows with the days between them that had no runs added as empty rows."""
    known = {row.key: row for row in rows if row.key}
    try:
        first, last = date.fromisoformat(min(known)), date.fromisoformat(max(known))
    except ValueError:
        return list(rows)
    span = min((last - first).days, MAX_DAYS - 1)
    days = [(last - timedelta(days=n)).isoformat() for n in range(span, -1, -1)]
    return [known.get(day) or UsageRow(key=day, runs=0) for day in days]


def day_columns(rows: Sequence[UsageRow]) -> list[Column]:
    """One column per UTC day from the first to the last day with runs (gaps drawn empty)."""
    top = peak_tokens(rows)
    if top <= 0:
        return []
    return [
        Column(
            row.key or "",
            round(100 * row.tokens.input_tokens / top, 2),
            round(100 * row.tokens.output_tokens / top, 2),
            f"{row.key}: {row.tokens.input_tokens:,} input, {row.tokens.output_tokens:,} output",
        )
        for row in _every_day(rows)
    ]


def status_counts(by_day: Sequence[UsageRow]) -> dict[str, int]:
    """Runs per status over the rows, ``paused`` counted apart from ``success``."""
    counts: dict[str, int] = {status.value: 0 for status in RunStatus}
    counts["paused"] = 0
    for row in by_day:
        for status, n in row.by_status.items():
            counts[status] = counts.get(status, 0) + n
        counts[RunStatus.success.value] -= row.paused
        counts["paused"] += row.paused
    return counts


def row_cost(row: UsageRow) -> float | None:
    """The usage row's cost in USD, when this version records cost."""
    value = getattr(row, "cost_usd", None)
    if value is None:
        value = getattr(row.tokens, "cost_usd", None)
    return float(value) if isinstance(value, (int, float)) else None


def _row_values(row: UsageRow) -> dict[str, Any]:
    """The usage row's fields and the keys of its ``as_dict()``, whichever it has."""
    values = {f.name: getattr(row, f.name) for f in fields(row)}
    values.update(row.as_dict())
    return values


def percentile_keys(rows: Sequence[UsageRow]) -> list[str]:
    """The latency percentile fields the usage rows carry (``..._p50``, ``p95_...``)."""
    found: list[str] = []
    for row in rows:
        for key, value in _row_values(row).items():
            marked = any(mark in key for mark in ("p50", "p90", "p95", "p99"))
            if marked and isinstance(value, (int, float, type(None))) and key not in found:
                found.append(key)
    return found


@dataclass(frozen=True)
class GroupLine:
    """One line of the usage page's table (per model, thread, user or day)."""

    key: str
    runs: str
    by_status: tuple[str, ...]
    error_rate: str
    llm_calls: str
    input_tokens: str
    output_tokens: str
    total_tokens: str
    cost: str
    percentiles: tuple[str, ...]


GROUP_STATUSES = ("success", "paused", "error", "timeout", "interrupted", "active")
#: The status chart's bars, in lifecycle order (``paused`` beside ``success``).
STATUS_ORDER = ("pending", "running", "success", "paused", "error", "timeout", "interrupted")


def group_lines(rows: Sequence[UsageRow], percentiles: Sequence[str]) -> list[GroupLine]:
    lines = []
    for row in rows:
        s = row.by_status
        counts = {
            "success": s.get("success", 0) - row.paused,
            "paused": row.paused,
            "error": s.get("error", 0),
            "timeout": s.get("timeout", 0),
            "interrupted": s.get("interrupted", 0),
            "active": s.get("pending", 0) + s.get("running", 0),
        }
        data = _row_values(row)
        lines.append(
            GroupLine(
                key=row.key if row.key is not None else "(none)",
                runs=f"{row.runs:,}",
                by_status=tuple(f"{counts[name]:,}" for name in GROUP_STATUSES),
                error_rate=f"{row.error_rate:.1%}" if row.finished else "-",
                llm_calls=f"{row.llm_calls:,}",
                input_tokens=f"{row.tokens.input_tokens:,}",
                output_tokens=f"{row.tokens.output_tokens:,}",
                total_tokens=f"{row.tokens.total_tokens:,}",
                cost=format_number("cost_usd", row_cost(row)),
                percentiles=tuple(format_number(k, data.get(k)) for k in percentiles),
            )
        )
    return lines


__all__ = [
    "GROUP_STATUSES",
    "OPTIONAL_RUN_NUMBERS",
    "STATUS_ORDER",
    "Bar",
    "Column",
    "GroupLine",
    "RunRow",
    "UsageTable",
    "bars",
    "column_title",
    "day_columns",
    "field_list",
    "format_number",
    "group_lines",
    "has_field",
    "interrupt_rows",
    "optional_columns",
    "peak_tokens",
    "percentile_keys",
    "row_cost",
    "run_row",
    "run_rows",
    "status_counts",
    "usage_table",
]
