"""How runs look outside code: notebook HTML, pandas DataFrames, JSON-ready dicts, colours.

``RunRecord._repr_html_`` and ``RunPage._repr_html_`` call into this module, so Jupyter shows
a run or a page of runs as a small table. Everything here is escaped and self-contained
(inline styles, no scripts, no network). It imports nothing of the package: it reads runs
through ``ShownRun``, the few attributes of a RunRecord that it shows (callers turn store
rows into records with ``schemas.as_record``).
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import pandas

#: One colour per stored status value (and ``paused``), shared by the notebook display,
#: the HTML report and the CLI.
STATUS_COLORS: dict[str, str] = {
    "pending": "#6b7280",
    "running": "#2563eb",
    "success": "#15803d",
    "error": "#dc2626",
    "timeout": "#ea580c",
    "interrupted": "#9333ea",
    "paused": "#ca8a04",
}


class ShownStatus(Protocol):
    @property
    def value(self) -> str: ...


class ShownRun(Protocol):
    """What this module reads of a run: a RunRecord has all of it."""

    run_id: str
    thread_id: str
    created_at: str
    ended_at: str | None
    user_id: str | None
    model_name: str | None
    stop_reason: str | None
    error: str | None
    last_ai_message: str | None
    input_tokens: int
    output_tokens: int
    total_tokens: int
    llm_call_count: int
    token_usage_by_model: dict[str, dict[str, int]]
    interrupts: list[dict[str, Any]]

    @property
    def status(self) -> ShownStatus: ...

    @property
    def paused(self) -> bool: ...

    @property
    def duration_seconds(self) -> float | None: ...

    def to_row(self) -> dict[str, Any]: ...


def status_label(run: ShownRun) -> str:
    """The status as tables show it: ``paused`` for a run that ended waiting on an
    interrupt (stored as ``success`` with stop_reason ``interrupt``), else the status."""
    return "paused" if run.paused else run.status.value


def interrupt_values(interrupts: Iterable[Mapping[str, Any]], width: int = 160) -> str:
    """What a paused run waits for: its interrupts' values, shortened, ``; ``-separated."""
    values = []
    for entry in interrupts:
        value = entry.get("value")
        values.append(shorten(value if isinstance(value, str) else json.dumps(value), width))
    return "; ".join(values)


_TIMESTAMP_FIELDS = ("created_at", "updated_at", "started_at", "ended_at")


def shorten(text: str | None, width: int = 80) -> str:
    """``text`` on one line, cut to ``width`` characters with an ellipsis."""
    if not text:
        return ""
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1].rstrip() + "…"


def format_duration(seconds: float | None) -> str:
    """``0.42 s``, ``12.3 s``, ``4 min 05 s``, ``2 h 07 min``; empty for None."""
    if seconds is None:
        return ""
    if seconds < 10:
        return f"{seconds:.2f} s"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def format_cost(usd: float | None) -> str:
    """``$12.40``, ``$0.0123``, ``$0.0000078`` (two significant digits below a cent);
    empty for None (nothing priced)."""
    if usd is None:
        return ""
    if usd == 0 or abs(usd) >= 1:
        return f"${usd:,.2f}"
    if abs(usd) >= 0.01:
        return f"${usd:.4f}"
    digits = min(12, 1 - math.floor(math.log10(abs(usd))))
    return f"${usd:.{digits}f}"


def format_ms(ms: float | None) -> str:
    """``850 ms``, ``1.24 s``; empty for None."""
    if ms is None:
        return ""
    return f"{ms:,.0f} ms" if ms < 1000 else format_duration(ms / 1000.0)


def format_time(value: str | None) -> str:
    """A stored timestamp as ``2026-01-31 12:00:05`` (UTC), for tables."""
    return value[:19].replace("T", " ") if value else ""


def record_json(record: ShownRun) -> dict[str, Any]:
    """Every persisted field of a run as JSON-ready values, plus ``duration_seconds``."""
    data = record.to_row()
    data["duration_seconds"] = record.duration_seconds if record.ended_at else None
    return data


def _status_badge(status: str) -> str:
    color = STATUS_COLORS.get(status, "#6b7280")
    return (
        f'<span style="background:{color};color:#fff;border-radius:3px;padding:1px 6px;'
        f'font-size:0.85em">{html.escape(status)}</span>'
    )


def _models(record: ShownRun) -> str:
    names = list(record.token_usage_by_model) or ([record.model_name] if record.model_name else [])
    return ", ".join(names)


_TABLE = 'style="border-collapse:collapse;font-family:system-ui,sans-serif;font-size:13px"'
_CELL = 'style="text-align:left;padding:2px 10px 2px 0;vertical-align:top"'


def run_html(record: ShownRun) -> str:
    """One run as a small HTML table: status, thread, times, tokens, calls, messages."""
    tokens = (
        f"{record.total_tokens:,} total ({record.input_tokens:,} in, {record.output_tokens:,} out)"
    )
    rows: list[tuple[str, str]] = [
        ("status", _status_badge(status_label(record))),
        ("thread", html.escape(record.thread_id)),
        ("created", html.escape(format_time(record.created_at))),
        ("duration", html.escape(format_duration(record.duration_seconds))),
        ("tokens", html.escape(tokens)),
        ("LLM calls", str(record.llm_call_count)),
    ]
    optional = {
        "model": _models(record),
        "user": record.user_id or "",
        "stop reason": record.stop_reason or "",
        "waiting on": interrupt_values(record.interrupts),
        "error": shorten(record.error, 160),
        "last AI message": shorten(record.last_ai_message, 160),
    }
    rows += [(name, html.escape(value)) for name, value in optional.items() if value]
    body = "".join(
        f"<tr><th {_CELL}>{name}</th><td {_CELL}>{value}</td></tr>" for name, value in rows
    )
    return (
        f'<div><div style="font-family:monospace;font-size:12px;color:#555">run '
        f"{html.escape(record.run_id)}</div><table {_TABLE}>{body}</table></div>"
    )


_LIST_COLUMNS = ("run", "thread", "status", "created", "duration", "tokens", "calls", "last AI")


def runs_html(runs: Iterable[ShownRun], *, next_cursor: str | None = None) -> str:
    """Runs as one HTML table, one line per run, status coloured, messages shortened."""
    records = list(runs)
    head = "".join(f"<th {_CELL}>{name}</th>" for name in _LIST_COLUMNS)
    lines = []
    for record in records:
        cells = [
            f'<code title="{html.escape(record.run_id)}">{html.escape(record.run_id[:8])}</code>',
            html.escape(shorten(record.thread_id, 24)),
            _status_badge(status_label(record)),
            html.escape(format_time(record.created_at)),
            html.escape(format_duration(record.duration_seconds)),
            f"{record.total_tokens:,}",
            str(record.llm_call_count),
            html.escape(shorten(record.last_ai_message or record.error, 60)),
        ]
        lines.append("<tr>" + "".join(f"<td {_CELL}>{cell}</td>" for cell in cells) + "</tr>")
    footer = f"{len(records)} run{'s' if len(records) != 1 else ''}"
    if next_cursor:
        footer += f"; more with cursor={html.escape(next_cursor)!s}"
    return (
        f"<div><table {_TABLE}><thead><tr>{head}</tr></thead><tbody>{''.join(lines)}"
        f'</tbody></table><div style="font-size:12px;color:#555">{footer}</div></div>'
    )


def runs_dataframe(runs: Iterable[ShownRun], *, fields: Sequence[str]) -> pandas.DataFrame:
    """Runs as a pandas DataFrame: one row per run, a column per persisted field
    (``fields``), timestamps as UTC datetimes, plus ``duration_seconds`` and ``paused``.
    Needs pandas (``pip install 'langgraph-runstore[pandas]'``)."""
    try:
        import pandas as pd
    except ImportError as exc:
        raise ImportError(
            "to_dataframe() needs pandas: pip install 'langgraph-runstore[pandas]'"
        ) from exc
    columns = [*fields, "duration_seconds", "paused"]
    rows = [{**record_json(record), "paused": record.paused} for record in runs]
    frame = pd.DataFrame(rows, columns=columns)
    for name in _TIMESTAMP_FIELDS:
        frame[name] = pd.to_datetime(frame[name], utc=True, format="ISO8601")
    return frame
