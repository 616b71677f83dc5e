"""``langgraph-runstore threads list``: the threads, most recently used first, each with its
status, its newest run and its totals."""

from __future__ import annotations

import click

from langgraph_runstore.cli.base import (
    Output,
    check_id_param,
    db_option,
    emit_json,
    json_option,
    open_store,
    resolve_db,
    run_async,
    status_text,
    threads,
)
from langgraph_runstore.display import format_time, shorten
from langgraph_runstore.schemas import ThreadStatus
from langgraph_runstore.store.listing import list_threads

THREAD_HEADERS = (
    "THREAD", "STATUS", "RUNS", "ACTIVE", "TOKENS", "CALLS",
    "LAST RUN", "LAST STATUS", "LAST (UTC)",
)  # fmt: skip


@threads.command("list")
@click.option(
    "--status",
    "statuses",
    multiple=True,
    type=click.Choice([s.value for s in ThreadStatus]),
    help="Only threads in this status (repeat for several).",
)
@click.option(
    "--user",
    "user_id",
    metavar="USER_ID",
    callback=check_id_param,
    help="Only this user's runs count (for the status and the totals too).",
)
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True)
@json_option
@db_option
@click.pass_context
def threads_list(
    ctx: click.Context,
    statuses: tuple[str, ...],
    user_id: str | None,
    limit: int,
    as_json: bool,
    db: str | None,
) -> None:
    """Threads, most recently used first: status (idle, busy, interrupted, error), runs,
    tokens, LLM calls and the newest run."""

    async def go() -> None:
        async with open_store(resolve_db(ctx, db), read_only=True) as store:
            found = await list_threads(store, statuses=statuses, user_id=user_id, limit=limit)
        if as_json:
            emit_json({"threads": found})
            return
        console = Output()
        if not found:
            console.print("no threads match")
            return
        rows = [
            [
                shorten(row["thread_id"], 40),
                status_text(row["thread_status"]),
                f"{row['runs']:,}",
                f"{row['active']:,}",
                f"{row['total_tokens']:,}",
                f"{row['llm_calls']:,}",
                row["last_run_id"],
                (row["last_status"] or "pending")
                + (f" ({row['last_stop_reason']})" if row["last_stop_reason"] else ""),
                format_time(row["last_created_at"]),
            ]
            for row in found
        ]
        console.listing(
            THREAD_HEADERS, rows, right=("RUNS", "ACTIVE", "TOKENS", "CALLS"), flexible_last=False
        )

    run_async(go)


__all__ = ["THREAD_HEADERS", "threads_list"]
