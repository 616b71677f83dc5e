"""The four pages (runs, one run, a thread, usage) and the cancel action, each read through
the package's public read API: ``RunManager.list_runs`` keyset pages, ``get``,
``run_checkpoints``, ``thread_status``, ``thread_interrupts``, ``aggregate_usage``,
``events`` (when the installed version has a journal) and ``cancel``.

Each function returns the template to render and its values; ``app.py`` turns them into
responses and errors into error pages.
"""

from __future__ import annotations

import asyncio
import inspect
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from langgraph_runstore.display import format_time, shorten
from langgraph_runstore.errors import InvalidInputError, RunNotFoundError
from langgraph_runstore.manager import RunManager
from langgraph_runstore.query import USAGE_GROUPINGS
from langgraph_runstore.schemas import RunStatus
from langgraph_runstore.ui import views
from langgraph_runstore.ui.params import (
    MAX_LIMIT,
    STATUS_VALUES,
    WINDOWS,
    Filters,
    parse_filters,
    parse_grouping,
    refuse_any,
    supported_filters,
)
from langgraph_runstore.validate import check_id

#: What the event timeline shows at most, and how long it waits for the journal to go
#: quiet on a live run (its replay is then complete: what follows is the run going on).
MAX_EVENTS = 2000
EVENTS_QUIET_SECONDS = 0.25
EVENTS_FINAL_SECONDS = 5.0
CANCEL_ACTIONS = ("interrupt", "rollback")


class PageNotFound(Exception):
    """A run or thread that does not exist: the page answers 404 with ``message``."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Page:
    """A template and its values."""

    template: str
    values: dict[str, Any] = field(default_factory=dict)


Params = Mapping[str, Sequence[str]]


def _filter_form(filters: Filters, optional: Mapping[str, str]) -> dict[str, Any]:
    return {
        "filters": filters,
        "optional_filters": optional,
        "status_values": STATUS_VALUES,
        "windows": WINDOWS,
        "custom_window": bool(filters.until)
        or (filters.since is not None and filters.since not in WINDOWS),
        "max_limit": MAX_LIMIT,
    }


async def runs_page(manager: RunManager, params: Params) -> Page:
    """The filterable, keyset-paginated table of runs."""
    optional = supported_filters(manager.list_runs)
    filters = parse_filters(params, optional=optional)
    page = await manager.list_runs(
        status=filters.statuses or None,
        limit=filters.limit,
        cursor=filters.cursor,
        **filters.keywords(optional),
    )
    rows = views.run_rows(page)
    return Page(
        "runs.html",
        {
            **_filter_form(filters, optional),
            "nav": "runs",
            "title": "Runs",
            "rows": rows,
            "columns": views.optional_columns(),
            "next_cursor": page.next_cursor,
            "live": any(row.active for row in rows),
            "nothing_recorded": not rows and not filters.active and filters.cursor is None,
        },
    )


async def _events(manager: RunManager, run_id: str, *, final: bool) -> list[dict[str, Any]] | None:
    """The run's journal as dicts, or None when this version keeps no journal."""
    events = getattr(manager, "events", None)
    if events is None:
        return None
    kwargs: dict[str, Any] = {}
    if "follow" in inspect.signature(events).parameters:
        kwargs["follow"] = False
    stream = events(run_id, **kwargs)
    found: list[dict[str, Any]] = []
    # without follow=False the iterator follows a live run: stop once the replay is through
    quiet = EVENTS_FINAL_SECONDS if final or kwargs else EVENTS_QUIET_SECONDS
    try:
        while len(found) < MAX_EVENTS:
            try:
                event = await asyncio.wait_for(stream.__anext__(), quiet)
            except (StopAsyncIteration, asyncio.TimeoutError):
                break
            data = event.to_dict() if hasattr(event, "to_dict") else dict(event)
            found.append(data)
    finally:
        closer = getattr(stream, "aclose", None)
        if closer is not None:
            await closer()
    return found


def event_rows(events: Sequence[Mapping[str, Any]]) -> list[tuple[str, str, str, str]]:
    """(seq, time, kind, details) per event, whatever names the journal gives them."""
    rows = []
    for event in events:
        rest = dict(event)
        seq = next((rest.pop(k) for k in ("seq", "id", "event_id") if k in rest), "")
        when = next((rest.pop(k) for k in ("created_at", "at", "ts", "time") if k in rest), "")
        kind = next((rest.pop(k) for k in ("kind", "type", "event", "name") if k in rest), "")
        rest.pop("run_id", None)
        rest.pop("thread_id", None)
        detail = json.dumps(rest, default=str, ensure_ascii=False, separators=(", ", ": "))
        rows.append((str(seq), format_time(str(when)) if when else "", str(kind), detail))
    return rows


async def run_page(manager: RunManager, run_id: str, params: Params, *, allow_cancel: bool) -> Page:
    """Every field of one run, its usage per model and node, interrupts, checkpoints, events."""
    check_id(run_id, name="run_id")
    refuse_any(params)
    record = await manager.get(run_id)
    if record is None:
        raise PageNotFound(f"no run with id {run_id!r} in this database")
    checkpoints = await manager.run_checkpoints(run_id)
    events = await _events(manager, run_id, final=record.is_final)
    return Page(
        "run.html",
        {
            "nav": "runs",
            "title": f"Run {record.run_id[:8]}",
            "run": record,
            "row": views.run_row(record),
            "fields": views.field_list(record),
            "by_model": views.usage_table(record.token_usage_by_model),
            "has_nodes": views.has_field("usage_by_node"),
            "by_node": views.usage_table(getattr(record, "usage_by_node", None)),
            "interrupts": views.interrupt_rows(record.interrupts),
            "checkpoints": checkpoints,
            "events": None if events is None else event_rows(events),
            "cost": views.format_number("cost_usd", getattr(record, "cost_usd", None))
            if views.has_field("cost_usd")
            else None,
            "can_cancel": allow_cancel and not record.is_final,
            "cancel_actions": CANCEL_ACTIONS,
            "live": not record.is_final,
        },
    )


async def thread_page(manager: RunManager, thread_id: str, params: Params) -> Page:
    """A thread's status, what it waits on, its totals and its runs."""
    check_id(thread_id, name="thread_id")
    refuse_any({name: v for name, v in params.items() if name not in ("cursor", "limit")})
    filters = parse_filters(params, optional={}, statuses=False)
    page = await manager.list_runs(thread_id=thread_id, limit=filters.limit, cursor=filters.cursor)
    if not page.runs and filters.cursor is None:
        raise PageNotFound(f"no runs on thread {thread_id!r} in this database")
    status = await manager.thread_status(thread_id)
    interrupts = await manager.thread_interrupts(thread_id)
    totals = await manager.aggregate_usage(by="thread", thread_id=thread_id)
    rows = views.run_rows(page)
    return Page(
        "thread.html",
        {
            "nav": "runs",
            "title": f"Thread {shorten(thread_id, 40)}",
            "thread_id": thread_id,
            "status": status.value,
            "interrupts": views.interrupt_rows(interrupts),
            "total": totals[0] if totals else None,
            "total_cost": views.format_number("cost_usd", views.row_cost(totals[0]))
            if totals
            else "",
            "filters": filters,
            "rows": rows,
            "columns": views.optional_columns(),
            "next_cursor": page.next_cursor,
            "live": status.value == "busy" or any(row.active for row in rows),
        },
    )


async def usage_page(manager: RunManager, params: Params) -> Page:
    """The report's charts, live and filtered: tokens and cost per day and per model, runs
    per status, latency percentiles, and a table per model, thread, user or day."""
    optional = supported_filters(manager.aggregate_usage)
    filters = parse_filters(params, optional=optional, statuses=False, paging=False, extra=["by"])
    by = parse_grouping(params)
    kwargs = filters.keywords(optional)
    by_day = await manager.aggregate_usage(by="day", **kwargs)
    by_model = await manager.aggregate_usage(by="model", **kwargs)
    grouped = {"day": by_day, "model": by_model}.get(by)
    if grouped is None:
        grouped = await manager.aggregate_usage(by=by, **kwargs)
    counts = views.status_counts(by_day)
    finished = sum(counts[s.value] for s in RunStatus if s.is_final) + counts["paused"]
    failed = counts["error"] + counts["timeout"]
    costs = [views.row_cost(row) for row in by_day]
    has_cost = any(cost is not None for cost in costs)
    percentiles = views.percentile_keys([*by_day, *by_model])
    return Page(
        "usage.html",
        {
            **_filter_form(filters, optional),
            "nav": "usage",
            "title": "Usage",
            "by": by,
            "groupings": USAGE_GROUPINGS,
            "runs": sum(counts.values()),
            "error_rate": f"{failed / finished:.1%}" if finished else "-",
            "tokens": sum(row.tokens.total_tokens for row in by_day),
            "llm_calls": sum(row.llm_calls for row in by_day),
            "cost": views.format_number("cost_usd", sum(c or 0.0 for c in costs))
            if has_cost
            else None,
            "status_bars": views.bars(
                [(status, counts.get(status, 0), status) for status in views.STATUS_ORDER]
            ),
            "days": views.day_columns(by_day),
            "peak_tokens": f"{views.peak_tokens(by_day):,}",
            "day_cost_bars": views.bars(
                [(row.key or "", views.row_cost(row) or 0.0, "cost") for row in by_day],
                name="cost_usd",
            )
            if has_cost
            else None,
            "model_bars": views.bars(
                [
                    (row.key or "unknown", row.tokens.total_tokens, "model")
                    for row in by_model[:12]
                    if row.tokens.total_tokens > 0
                ]
            ),
            "model_cost_bars": views.bars(
                [(row.key or "unknown", views.row_cost(row) or 0.0, "cost") for row in by_model],
                name="cost_usd",
            )
            if has_cost
            else None,
            "percentiles": percentiles,
            "percentile_titles": [views.column_title(k) for k in percentiles],
            "percentile_lines": views.group_lines(by_model, percentiles) if percentiles else [],
            "percentile_days": views.group_lines(by_day, percentiles) if percentiles else [],
            "lines": views.group_lines(grouped, percentiles),
            "group_statuses": views.GROUP_STATUSES,
            "has_cost": has_cost,
            "nothing_recorded": not by_day and not filters.active,
        },
    )


def cancel_action(form: Mapping[str, Sequence[str]]) -> str:
    """The ``action`` of a cancel form: interrupt (the default) or rollback."""
    unknown = sorted(set(form) - {"action"})
    if unknown:
        raise InvalidInputError(f"unknown form field {unknown[0]!r}: expected action")
    values = [v for v in form.get("action", ()) if v]
    if len(values) > 1:
        raise InvalidInputError("action given more than once")
    action = values[0] if values else "interrupt"
    if action not in CANCEL_ACTIONS:
        raise InvalidInputError(
            f"invalid action {action!r}: expected one of {', '.join(CANCEL_ACTIONS)}"
        )
    return action


async def cancel_run(manager: RunManager, run_id: str, action: str) -> bool:
    """Cancel the run (``RunManager.cancel``); False when it had already finished."""
    check_id(run_id, name="run_id")
    try:
        return await manager.cancel(run_id, action=action)
    except RunNotFoundError:
        raise PageNotFound(f"no run with id {run_id!r} in this database") from None


__all__ = [
    "CANCEL_ACTIONS",
    "MAX_EVENTS",
    "Page",
    "PageNotFound",
    "cancel_action",
    "cancel_run",
    "event_rows",
    "run_page",
    "runs_page",
    "thread_page",
    "usage_page",
]
