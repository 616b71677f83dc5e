"""``langgraph-runstore runs events`` and ``runs watch``: a run's event journal (replayed,
or followed live until the run ends) and a live table of the active runs."""

from __future__ import annotations

import asyncio
import json
import sys
from typing import TYPE_CHECKING, Any

import click

from langgraph_runstore.cli.base import (
    CliError,
    Output,
    check_id_param,
    db_option,
    emit_json,
    json_option,
    make_console,
    open_store,
    resolve_db,
    resolve_run_id,
    run_async,
    runs,
    status_text,
)
from langgraph_runstore.display import format_duration, format_time, record_json, shorten
from langgraph_runstore.journal import RunEvent
from langgraph_runstore.journal_feed import follow_events
from langgraph_runstore.query import duration_of
from langgraph_runstore.schemas import ACTIVE_STATUSES, RunRecord, now_iso
from langgraph_runstore.store.listing import latest_events

if TYPE_CHECKING:  # rich loads when a table is printed: --json and errors do without it
    from rich.table import Table


def _event_line(event: RunEvent) -> str:
    # to the millisecond: a run's events are often that close together
    stamp = f"{event.ts[:10]} {event.ts[11:23]}"
    return f"{event.seq:>5}  {stamp}  {event.kind:<13} {event.summary}".rstrip()


@runs.command("events")
@click.argument("run_id", callback=check_id_param)
@click.option("--follow", "-f", is_flag=True, help="Keep printing new events until the run ends.")
@click.option(
    "--after",
    type=click.IntRange(min=0),
    default=0,
    help="Only events after this seq (resume where an earlier listing stopped).",
)
@click.option(
    "--poll",
    type=click.FloatRange(min=0.01, max=60),
    default=0.25,
    show_default=True,
    help="Seconds between looks for new events with --follow (PostgreSQL is woken at once).",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print each event as one JSON object per line (JSON Lines).",
)
@db_option
@click.pass_context
def runs_events(
    ctx: click.Context,
    run_id: str,
    follow: bool,
    after: int,
    poll: float,
    as_json: bool,
    db: str | None,
) -> None:
    """A run's events, oldest first: nodes, LLM and tool calls, interrupts, its end.

    RUN_ID may be a unique prefix of the id (at least 4 characters). With --follow the
    command waits for the run's new events, also when another process runs it, and
    returns once the run has ended.
    """

    async def go() -> None:
        async with open_store(resolve_db(ctx, db), read_only=True) as store:
            found = await resolve_run_id(store, run_id)
            if await store.get_status(found) is None:
                raise CliError(f"no run with id {run_id!r}")
            printed = 0
            async for event in follow_events(
                store, found, after=after, follow=follow, poll_interval=poll
            ):
                printed += 1
                line = json.dumps(event.to_dict(), default=str) if as_json else _event_line(event)
                click.echo(line)
        if not printed and not as_json:
            click.echo(f"run {found} has no events after seq {after}", err=True)

    run_async(go)


WATCH_HEADERS = (
    "RUN ID", "THREAD", "STATUS", "STARTED (UTC)", "ELAPSED", "TOKENS", "CALLS", "LAST EVENT",
)  # fmt: skip


def _elapsed(record: RunRecord) -> str:
    if record.started_at is None:
        return ""
    return format_duration(duration_of({"started_at": record.started_at, "ended_at": now_iso()}))


#: An active run and its newest event (None before its first batch is written).
RecordWithEvent = tuple[RunRecord, "dict[str, Any] | None"]


def _watch_rows(records: list[RecordWithEvent]) -> list[list[Any]]:
    rows = []
    for record, latest in records:
        last = ""
        if latest is not None:
            data = latest["data"]
            event = RunEvent(
                record.run_id,
                int(latest["seq"]),
                latest["kind"],
                latest["ts"],
                json.loads(data) if isinstance(data, str) else data,
            )
            last = shorten(f"{event.kind}: {event.summary}", 60)
        rows.append(
            [
                record.run_id,
                shorten(record.thread_id, 24),
                status_text(record.status.value),
                format_time(record.started_at) if record.started_at else "",
                _elapsed(record),
                f"{record.total_tokens:,}",
                str(record.llm_call_count),
                last,
            ]
        )
    return rows


def _watch_table(records: list[RecordWithEvent], *, stamp: str) -> Table:
    from rich.table import Table

    table = Table(
        title=f"active runs at {format_time(stamp)} UTC (Ctrl-C to stop)",
        title_justify="left",
        box=None,
        header_style="bold",
        pad_edge=False,
    )
    for header in WATCH_HEADERS:
        table.add_column(header, justify="right" if header in ("TOKENS", "CALLS") else "left")
    for row in _watch_rows(records):
        table.add_row(*row)
    if not records:
        table.add_row("no pending or running runs", *[""] * (len(WATCH_HEADERS) - 1))
    return table


@runs.command("watch")
@click.option(
    "--interval",
    type=click.FloatRange(min=0.1, max=3600),
    default=1.0,
    show_default=True,
    help="Seconds between refreshes.",
)
@click.option("--limit", type=click.IntRange(1, 1000), default=50, show_default=True)
@click.option("--once", is_flag=True, help="Print the table once and exit (for scripts).")
@json_option
@db_option
@click.pass_context
def runs_watch(
    ctx: click.Context,
    interval: float,
    limit: int,
    once: bool,
    as_json: bool,
    db: str | None,
) -> None:
    """A live table of the pending and running runs, with each one's latest event."""

    async def snapshot(store: Any) -> list[RecordWithEvent]:
        page = await store.list_runs(status=[s.value for s in ACTIVE_STATUSES], limit=limit)
        records = [RunRecord.from_row(row) for row in page]
        events = await latest_events(store, [record.run_id for record in records])
        return [(record, events.get(record.run_id)) for record in records]

    async def go() -> None:
        async with open_store(resolve_db(ctx, db), read_only=True) as store:
            if as_json or once:
                found = await snapshot(store)
                if as_json:
                    emit_json(
                        {
                            "runs": [
                                {"run": record_json(record), "last_event": latest}
                                for record, latest in found
                            ]
                        }
                    )
                else:
                    Output().print(_watch_table(found, stamp=now_iso()))
                return
            from rich.live import Live

            console = make_console()
            with Live(console=console, auto_refresh=False, transient=False) as live:
                while True:
                    live.update(_watch_table(await snapshot(store), stamp=now_iso()))
                    live.refresh()
                    await asyncio.sleep(interval)

    try:
        run_async(go)
    except KeyboardInterrupt:
        sys.stdout.flush()  # Ctrl-C is how a watch ends: no error


__all__ = ["WATCH_HEADERS", "runs_events", "runs_watch"]
