"""The HTML report's drill-down: for each run the report lists, its event timeline.

Each run gets a ``<details id="run-<run_id>">`` section (the report's run ids link to it;
it opens without any script): an inline SVG of the run's nodes, LLM calls and tools as
bars on one time axis, and the table of its events with their time from the run's start.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from langgraph_runstore.display import format_duration, shorten
from langgraph_runstore.journal import RunEvent
from langgraph_runstore.schemas import RunRecord
from langgraph_runstore.store.base import RunStore

#: Events the report reads per run (its first page: the timeline of a long run is cut).
MAX_EVENTS = 500
#: The bars' colours: nodes, LLM calls, tools.
LANE_COLORS = {"node": "#6366f1", "llm": "#0d9488", "tool": "#f59e0b"}
_FONT = "font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif"


def _esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def anchor(run_id: str) -> str:
    """The id of a run's section (an HTML id may hold any character but spaces)."""
    return "run-" + run_id.replace(" ", "_")


async def read_timelines(
    store: RunStore, run_ids: Iterable[str], *, limit: int = MAX_EVENTS
) -> dict[str, list[RunEvent]]:
    """The first ``limit`` events of each run (none when the store keeps no journal)."""
    if not store.keeps_events:
        return {}
    found: dict[str, list[RunEvent]] = {}
    for run_id in dict.fromkeys(run_ids):
        rows = await store.read_events(run_id, limit=limit)
        found[run_id] = [
            RunEvent(run_id, int(row["seq"]), row["kind"], row["ts"], row["data"]) for row in rows
        ]
    return found


def _seconds(ts: str) -> float:
    return datetime.fromisoformat(ts).timestamp()


def _spans(events: Sequence[RunEvent]) -> list[tuple[str, str, float, float]]:
    """(lane, label, start, end) in seconds since the epoch, from the events that end a
    node, an LLM call or a tool call (their duration puts the start back)."""
    spans = []
    for event in events:
        lane = event.kind.removesuffix("_ended")
        if lane not in LANE_COLORS or not isinstance(event.data.get("duration_ms"), (int, float)):
            continue
        end = _seconds(event.ts)
        label = (
            event.data.get("node")
            if lane == "node"
            else event.data.get("model" if lane == "llm" else "tool")
        )
        spans.append((lane, str(label or lane), end - event.data["duration_ms"] / 1000.0, end))
    return sorted(spans, key=lambda span: (span[2], -span[3]))  # outer nodes above inner


def _took(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms" if seconds < 1 else format_duration(seconds)


def timeline_svg(events: Sequence[RunEvent], *, width: int = 720) -> str:
    """The run's nodes, LLM calls and tools as bars on one time axis."""
    spans = _spans(events)
    if not spans or not events:
        return '<p class="empty">no node, LLM or tool events</p>'
    origin = min([_seconds(events[0].ts), *(start for _, _, start, _ in spans)])
    finish = max([_seconds(events[-1].ts), *(end for _, _, _, end in spans)])
    total = max(finish - origin, 1e-6)
    label_w, row = 150, 18
    plot = width - label_w - 10
    height = row * len(spans) + 24
    parts = [
        f'<svg class="timeline" data-spans="{len(spans)}" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" xmlns="http://www.w3.org/2000/svg" '
        f'style="{_FONT};font-size:11px">'
    ]
    for i, (lane, label, start, end) in enumerate(spans):
        y = 4 + i * row
        x = label_w + plot * (start - origin) / total
        w = max(1.0, plot * (end - start) / total)
        took = _took(end - start)
        parts.append(
            f'<text x="{label_w - 6}" y="{y + 12}" text-anchor="end" fill="#111">'
            f"{_esc(shorten(f'{lane}: {label}', 24))}</text>"
            f'<rect class="span" x="{x:.1f}" y="{y + 2}" width="{w:.1f}" height="{row - 5}" '
            f'fill="{LANE_COLORS[lane]}"><title>{_esc(label)}: {_esc(took)}</title></rect>'
        )
    axis_y = height - 6
    parts.append(
        f'<text x="{label_w}" y="{axis_y}" fill="#374151">0</text>'
        f'<text x="{width - 10}" y="{axis_y}" text-anchor="end" fill="#374151">'
        f"{_esc(_took(total))}</text></svg>"
    )
    return "".join(parts)


def _event_rows(events: Sequence[RunEvent]) -> str:
    origin = _seconds(events[0].ts)
    rows = []
    for event in events:
        offset = (_seconds(event.ts) - origin) * 1000.0
        rows.append(
            f'<tr><td class="num">{event.seq}</td><td class="num">+{offset:,.1f} ms</td>'
            f"<td><code>{_esc(event.kind)}</code></td><td>{_esc(event.summary)}</td></tr>"
        )
    return "".join(rows)


def timeline_section(
    records: Sequence[RunRecord], timelines: Mapping[str, Sequence[RunEvent]]
) -> str:
    """One collapsible section per run, in the order given, each once."""
    if not timelines:
        return '<p class="empty">the store keeps no run events</p>'
    seen: dict[str, RunRecord] = {}
    for record in records:
        seen.setdefault(record.run_id, record)
    parts = []
    for run_id, record in seen.items():
        events = timelines.get(run_id) or []
        body = (
            timeline_svg(events)
            + "<table><thead><tr><th>seq</th><th>at</th><th>event</th><th>what</th></tr>"
            + f"</thead><tbody>{_event_rows(events)}</tbody></table>"
            if events
            else '<p class="empty">no events recorded</p>'
        )
        more = f" (first {len(events)})" if len(events) >= MAX_EVENTS else ""
        parts.append(
            f'<details class="run" id="{_esc(anchor(run_id))}"><summary><code>{_esc(run_id)}'
            f"</code> thread {_esc(shorten(record.thread_id, 40))}: {_esc(record.status.value)}, "
            f"{len(events)} event(s){more}</summary>{body}</details>"
        )
    return "".join(parts) or '<p class="empty">none</p>'


__all__ = ["MAX_EVENTS", "anchor", "read_timelines", "timeline_section", "timeline_svg"]
