"""The HTML report: one self-contained page about the runs in a store.

Run counts by status, token usage per day and per model and cost per model as inline SVG
charts, latency per model (p50/p95 of runs and of LLM calls), the slowest runs, the most
expensive runs (in USD) and those with the most tokens, and recent errors. No scripts, no
fonts, no network: the file can be mailed or attached to a ticket and opens the same
anywhere.
"""

from __future__ import annotations

import asyncio
import html
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from langgraph_runstore.display import (
    STATUS_COLORS,
    format_cost,
    format_duration,
    format_ms,
    format_time,
    shorten,
    status_label,
)
from langgraph_runstore.query import TimeBound, UsageRow, resolve_time
from langgraph_runstore.schemas import RunRecord, RunStatus, as_record
from langgraph_runstore.store.base import RunStore

INPUT_COLOR = "#2563eb"
OUTPUT_COLOR = "#f59e0b"
MODEL_COLOR = "#0d9488"
COST_COLOR = "#16a34a"


@dataclass(frozen=True)
class ReportData:
    """What the report shows, read from a store by :func:`gather`."""

    generated_at: str
    since: str | None
    by_day: Sequence[UsageRow]
    by_model: Sequence[UsageRow]
    slowest: Sequence[RunRecord]
    most_tokens: Sequence[RunRecord]
    most_expensive: Sequence[RunRecord]
    errors: Sequence[RunRecord]
    status_counts: dict[str, int] = field(default_factory=dict)

    @property
    def total_runs(self) -> int:
        return sum(self.status_counts.values())


async def gather(store: RunStore, *, since: TimeBound = None, top: int = 10) -> ReportData:
    """Read everything the report needs: a handful of aggregate and bounded queries."""
    start = resolve_time(since, name="since")
    by_day = await store.aggregate_usage(by="day", since=start)
    # paused runs (success, stop_reason "interrupt") are counted apart from plain success
    counts: dict[str, int] = {status.value: 0 for status in RunStatus}
    counts["paused"] = 0
    for row in by_day:
        for status, n in row.by_status.items():
            counts[status] = counts.get(status, 0) + n
        counts[RunStatus.success.value] -= row.paused
        counts["paused"] += row.paused
    errors = await store.list_runs(
        status=[RunStatus.error.value, RunStatus.timeout.value], since=start, limit=top
    )
    return ReportData(
        generated_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        since=start,
        by_day=by_day,
        by_model=await store.aggregate_usage(by="model", since=start),
        slowest=[as_record(r) for r in await store.top_runs(by="duration", since=start, limit=top)],
        most_tokens=[
            as_record(r) for r in await store.top_runs(by="tokens", since=start, limit=top)
        ],
        most_expensive=[
            as_record(r) for r in await store.top_runs(by="cost", since=start, limit=top)
        ],
        errors=[as_record(r) for r in errors],
        status_counts=counts,
    )


async def write_report(
    store: RunStore, path: str | Path, *, since: TimeBound = None, title: str | None = None
) -> ReportData:
    """Write the report for ``store`` to ``path`` (UTF-8 HTML) and return its data."""
    data = await gather(store, since=since)
    page = render(data, title=title)
    await asyncio.to_thread(Path(path).write_text, page, encoding="utf-8")
    return data


# -- SVG -------------------------------------------------------------------------------------

_FONT = "font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif"


def _esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _empty_chart(name: str, width: int, message: str) -> str:
    return (
        f'<svg class="chart" data-chart="{name}" data-bars="0" width="{width}" height="60" '
        f'viewBox="0 0 {width} 60" role="img" xmlns="http://www.w3.org/2000/svg">'
        f'<text x="10" y="35" fill="#6b7280" style="{_FONT};font-size:13px">{_esc(message)}</text>'
        "</svg>"
    )


def hbar_chart(
    name: str,
    items: Sequence[tuple[str, float, str]],
    *,
    width: int = 560,
    unit: str = "",
    shown: Callable[[float], str] | None = None,
) -> str:
    """Horizontal bars: one ``(label, value, colour)`` per line, scaled to the largest;
    ``shown`` formats a value (default: with thousands separators and ``unit``)."""
    shown = shown or (lambda value: f"{value:,}{unit}")
    if not items or max(value for _, value, _ in items) <= 0:
        return _empty_chart(name, width, "no data")
    row, label_w, value_w = 26, 150, 90
    bar_w = width - label_w - value_w
    top = max(value for _, value, _ in items)
    height = row * len(items) + 10
    parts = [
        f'<svg class="chart" data-chart="{name}" data-bars="{len(items)}" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'xmlns="http://www.w3.org/2000/svg" style="{_FONT};font-size:12px">'
    ]
    for i, (label, value, color) in enumerate(items):
        y = 5 + i * row
        length = max(1.0, bar_w * value / top) if value > 0 else 0.0
        parts.append(
            f'<text x="{label_w - 8}" y="{y + 16}" text-anchor="end" fill="#111">'
            f"{_esc(shorten(label, 22))}</text>"
            f'<rect class="bar" x="{label_w}" y="{y + 3}" width="{length:.1f}" height="{row - 8}" '
            f'fill="{color}"><title>{_esc(label)}: {_esc(shown(value))}</title></rect>'
            f'<text x="{label_w + length + 6:.1f}" y="{y + 16}" fill="#374151">'
            f"{_esc(shown(value))}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def stacked_columns(
    name: str,
    labels: Sequence[str],
    series: Sequence[tuple[str, str, Sequence[int]]],
    *,
    width: int = 720,
    height: int = 240,
) -> str:
    """Vertical stacked columns, one per label; ``series`` are ``(name, colour, values)``."""
    totals = [sum(values[i] for _, _, values in series) for i in range(len(labels))]
    if not labels or max(totals) <= 0:
        return _empty_chart(name, width, "no token usage in this period")
    left, bottom, top_pad, legend_h = 64, 36, 10, 22
    plot_w, plot_h = width - left - 10, height - bottom - top_pad - legend_h
    peak = max(totals)
    slot = plot_w / len(labels)
    bar = max(1.0, slot * 0.7)
    parts = [
        f'<svg class="chart" data-chart="{name}" data-bars="{len(labels)}" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'xmlns="http://www.w3.org/2000/svg" style="{_FONT};font-size:11px">',
        # axes and the peak value, so bar heights can be read off
        f'<line x1="{left}" y1="{top_pad}" x2="{left}" y2="{top_pad + plot_h}" stroke="#9ca3af"/>',
        f'<line x1="{left}" y1="{top_pad + plot_h}" x2="{width - 10}" y2="{top_pad + plot_h}" '
        'stroke="#9ca3af"/>',
        f'<text x="{left - 6}" y="{top_pad + 10}" text-anchor="end" fill="#374151">{peak:,}</text>',
        f'<text x="{left - 6}" y="{top_pad + plot_h}" text-anchor="end" fill="#374151">0</text>',
    ]
    step = max(1, len(labels) // 8)  # at most about eight date labels
    for i, label in enumerate(labels):
        x = left + i * slot + (slot - bar) / 2
        base: float = top_pad + plot_h
        for series_name, color, values in series:
            value = values[i]
            if value <= 0:
                continue
            h = plot_h * value / peak
            base -= h
            parts.append(
                f'<rect class="bar" x="{x:.1f}" y="{base:.1f}" width="{bar:.1f}" height="{h:.1f}" '
                f'fill="{color}"><title>{_esc(label)} {_esc(series_name)}: {value:,}</title></rect>'
            )
        if i % step == 0 or i == len(labels) - 1:
            parts.append(
                f'<text x="{x + bar / 2:.1f}" y="{top_pad + plot_h + 14}" text-anchor="middle" '
                f'fill="#374151">{_esc(label[5:] if len(label) == 10 else label)}</text>'
            )
    legend_y = height - 8
    x = left
    for series_name, color, _ in series:
        parts.append(
            f'<rect x="{x}" y="{legend_y - 10}" width="12" height="12" fill="{color}"/>'
            f'<text x="{x + 16}" y="{legend_y}" fill="#111">{_esc(series_name)}</text>'
        )
        x += 24 + 8 * len(series_name)
    parts.append("</svg>")
    return "".join(parts)


# -- page ------------------------------------------------------------------------------------

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#111;
background:#fff;max-width:1100px}
h1{font-size:22px;margin:0 0 4px}
h2{font-size:16px;margin:28px 0 8px;border-bottom:1px solid #e5e7eb;padding-bottom:4px}
.meta{color:#6b7280;font-size:13px}
.cards{display:flex;gap:12px;flex-wrap:wrap;margin:16px 0}
.card{border:1px solid #e5e7eb;border-radius:6px;padding:8px 14px;min-width:120px}
.card b{display:block;font-size:20px}
table{border-collapse:collapse;font-size:13px;width:100%}
th,td{text-align:left;padding:4px 8px;border-bottom:1px solid #f3f4f6;vertical-align:top}
th{color:#374151;font-weight:600}
td.num{text-align:right;font-variant-numeric:tabular-nums}
code{font-size:12px}
.badge{color:#fff;border-radius:3px;padding:1px 6px;font-size:12px}
.empty{color:#6b7280;font-size:13px}
"""


def _badge(status: str) -> str:
    color = STATUS_COLORS.get(status, "#6b7280")
    return f'<span class="badge" style="background:{color}">{_esc(status)}</span>'


def _run_table(records: Sequence[RunRecord], *, detail: str) -> str:
    if not records:
        return '<p class="empty">none</p>'
    head = {
        "duration": "<th>duration</th>",
        "tokens": "<th>tokens</th><th>in</th><th>out</th>",
        "cost": "<th>cost</th><th>tokens</th><th>LLM calls</th><th>LLM time</th>",
        "error": "<th>error</th>",
    }[detail]
    lines = []
    for r in records:
        if detail == "duration":
            extra = f'<td class="num">{_esc(format_duration(r.duration_seconds))}</td>'
        elif detail == "tokens":
            extra = (
                f'<td class="num">{r.total_tokens:,}</td><td class="num">{r.input_tokens:,}</td>'
                f'<td class="num">{r.output_tokens:,}</td>'
            )
        elif detail == "cost":
            extra = (
                f'<td class="num">{_esc(format_cost(r.cost_usd))}</td>'
                f'<td class="num">{r.total_tokens:,}</td><td class="num">{r.llm_call_count:,}</td>'
                f'<td class="num">{_esc(format_ms(r.llm_ms))}</td>'
            )
        else:
            extra = f"<td>{_esc(shorten(r.error, 140))}</td>"
        lines.append(
            f'<tr><td><code title="{_esc(r.run_id)}">{_esc(r.run_id[:13])}</code></td>'
            f"<td>{_esc(shorten(r.thread_id, 28))}</td><td>{_badge(status_label(r))}</td>"
            f"<td>{_esc(format_time(r.created_at))}</td>{extra}</tr>"
        )
    return (
        f"<table><thead><tr><th>run</th><th>thread</th><th>status</th><th>created (UTC)</th>"
        f"{head}</tr></thead><tbody>{''.join(lines)}</tbody></table>"
    )


def _latency_table(rows: Sequence[UsageRow]) -> str:
    shown = [row for row in rows if row.llm_calls or row.duration_p50_ms is not None]
    if not shown:
        return '<p class="empty">none</p>'
    lines = "".join(
        f'<tr><td>{_esc(row.key or "unknown")}</td><td class="num">{row.llm_calls:,}</td>'
        + "".join(
            f'<td class="num">{_esc(format_ms(value))}</td>'
            for value in (
                row.duration_p50_ms,
                row.duration_p95_ms,
                row.llm_call_p50_ms,
                row.llm_call_p95_ms,
            )
        )
        + "</tr>"
        for row in shown
    )
    return (
        "<table><thead><tr><th>model</th><th>LLM calls</th><th>run p50</th><th>run p95</th>"
        f"<th>call p50</th><th>call p95</th></tr></thead><tbody>{lines}</tbody></table>"
    )


def render(data: ReportData, *, title: str | None = None) -> str:
    """The report page as one HTML string (inline CSS and SVG only)."""
    title = title or "LangGraph runs"
    counts = data.status_counts
    finished = sum(counts.get(s.value, 0) for s in RunStatus if s.is_final) + counts.get(
        "paused", 0
    )
    failed = counts.get("error", 0) + counts.get("timeout", 0)
    tokens = sum(row.tokens.total_tokens for row in data.by_day)
    calls = sum(row.llm_calls for row in data.by_day)
    priced = [row.cost_usd for row in data.by_day if row.cost_usd is not None]
    cards = [
        ("runs", f"{data.total_runs:,}"),
        ("error rate", f"{failed / finished:.1%}" if finished else "-"),
        ("tokens", f"{tokens:,}"),
        ("LLM calls", f"{calls:,}"),
        ("cost", format_cost(sum(priced)) if priced else "-"),
    ]
    status_chart = hbar_chart(
        "status",
        [(status, counts.get(status, 0), STATUS_COLORS[status]) for status in STATUS_COLORS],
        unit="",
    )
    days = [row.key or "" for row in data.by_day]
    time_chart = stacked_columns(
        "tokens-by-day",
        days,
        [
            ("input", INPUT_COLOR, [row.tokens.input_tokens for row in data.by_day]),
            ("output", OUTPUT_COLOR, [row.tokens.output_tokens for row in data.by_day]),
        ],
    )
    model_chart = hbar_chart(
        "tokens-by-model",
        [
            (row.key or "unknown", row.tokens.total_tokens, MODEL_COLOR)
            for row in data.by_model[:12]
            if row.tokens.total_tokens > 0
        ],
    )
    cost_chart = hbar_chart(
        "cost-by-model",
        [
            (row.key or "unknown", row.cost_usd or 0.0, COST_COLOR)
            for row in sorted(data.by_model, key=lambda row: -(row.cost_usd or 0.0))[:12]
            if row.cost_usd
        ],
        shown=format_cost,
    )
    window = f"runs created since {format_time(data.since)} UTC" if data.since else "all runs"
    card_html = "".join(f'<div class="card">{_esc(k)}<b>{_esc(v)}</b></div>' for k, v in cards)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_esc(title)}</title><style>{_CSS}</style></head>
<body>
<h1>{_esc(title)}</h1>
<div class="meta">{_esc(window)}; generated {_esc(data.generated_at)} by langgraph-runstore</div>
<div class="cards">{card_html}</div>
<h2>Runs by status</h2>
{status_chart}
<h2>Tokens per day (UTC)</h2>
{time_chart}
<h2>Tokens by model</h2>
{model_chart}
<h2>Cost by model</h2>
{cost_chart}
<h2>Latency by model</h2>
{_latency_table(data.by_model)}
<h2>Slowest runs</h2>
{_run_table(data.slowest, detail="duration")}
<h2>Most expensive runs</h2>
{_run_table(data.most_expensive, detail="cost")}
<h2>Most tokens</h2>
{_run_table(data.most_tokens, detail="tokens")}
<h2>Recent errors</h2>
{_run_table(data.errors, detail="error")}
</body></html>
"""
