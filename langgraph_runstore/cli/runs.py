"""``langgraph-runstore runs list|show|cancel|delete``: pages of runs, one run in full with
the checkpoints it wrote, and cancelling or deleting a run from the terminal."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import click

from langgraph_runstore.display import (
    format_cost,
    format_duration,
    format_ms,
    record_json,
    status_label,
)
from langgraph_runstore.errors import ActiveRunError, RunNotFoundError
from langgraph_runstore.query import RunPage
from langgraph_runstore.schemas import (
    TOKEN_FIELDS,
    RunRecord,
    RunStatus,
    as_record,
)

if TYPE_CHECKING:  # rich loads when a table is printed: --json and errors do without it
    from rich.text import Text

from langgraph_runstore.cli.base import (
    PROG,
    SINCE_HELP,
    UNTIL_HELP,
    CliError,
    Output,
    check_cursor,
    check_id_param,
    db_option,
    emit_json,
    json_option,
    open_store,
    print_runs,
    resolve_db,
    run_async,
    runs,
    status_text,
    time_option,
)


@runs.command("list")
@click.option(
    "--thread",
    "thread_id",
    metavar="THREAD_ID",
    callback=check_id_param,
    help="Only runs of this thread.",
)
@click.option(
    "--status",
    "statuses",
    multiple=True,
    type=click.Choice([s.value for s in RunStatus]),
    help="Only runs in this status (repeat for several).",
)
@click.option(
    "--user", "user_id", metavar="USER_ID", callback=check_id_param, help="Only runs of this user."
)
@time_option("--since", SINCE_HELP)
@time_option("--until", UNTIL_HELP)
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True)
@click.option("--cursor", callback=check_cursor, help="Next page: the cursor a page printed.")
@click.option(
    "--sort",
    type=click.Choice(["created", "cost"]),
    default="created",
    show_default=True,
    help="created: newest first, a page at a time; cost: the costliest runs first.",
)
@json_option
@db_option
@click.pass_context
def runs_list(
    ctx: click.Context,
    thread_id: str | None,
    statuses: tuple[str, ...],
    user_id: str | None,
    since: str | None,
    until: str | None,
    limit: int,
    cursor: str | None,
    sort: str,
    as_json: bool,
    db: str | None,
) -> None:
    """List runs, newest first (or the costliest first with --sort cost)."""
    if sort == "cost" and (thread_id or statuses or cursor):
        raise click.UsageError("--sort cost takes --user, --since, --until and --limit only")

    async def go() -> None:
        async with open_store(resolve_db(ctx, db), read_only=True) as store:
            if sort == "cost":
                top = await store.top_runs(
                    by="cost", since=since, until=until, limit=limit, user_id=user_id
                )
                page = RunPage(tuple(top))
            else:
                page = await store.list_runs(
                    thread_id=thread_id,
                    status=statuses or None,
                    user_id=user_id,
                    since=since,
                    until=until,
                    limit=limit,
                    cursor=cursor,
                )
        if as_json:
            emit_json(
                {"runs": [record_json(as_record(r)) for r in page], "next_cursor": page.next_cursor}
            )
            return
        records = [RunRecord.from_row(r) for r in page]
        console = Output()
        if not records:
            console.print("no runs match")
            return
        print_runs(console, records)
        if page.next_cursor:
            console.print(f"more: --cursor {page.next_cursor}", style="dim")

    run_async(go)


def _show_run(record: RunRecord, checkpoints: list[dict[str, Any]]) -> None:
    from rich.table import Table
    from rich.text import Text

    console = Output()
    fields = Table(box=None, show_header=False, pad_edge=False)
    fields.add_column(style="bold", no_wrap=True)
    fields.add_column(overflow="fold")
    data = record_json(record)
    for name, value in data.items():
        if name == "status":
            fields.add_row(name, status_text(status_label(record)))
            continue
        if name == "duration_seconds":
            fields.add_row("duration", format_duration(record.duration_seconds))
            continue
        if name in ("token_usage_by_model", "usage_by_node", "llm_call_ms"):
            continue  # tables of their own below; the call times are a sample
        if name == "cost_usd":
            fields.add_row(name, format_cost(record.cost_usd) or "(not priced)")
            continue
        if name == "started_at":
            fields.add_row("queue_ms", format_ms(record.queue_ms))
        if isinstance(value, (dict, list)):
            value = json.dumps(value, default=str)
        fields.add_row(name, Text("" if value is None else str(value)))
    console.print(fields)
    console.print()
    _usage_table(console, "MODEL", record.token_usage_by_model, "tokens per model")
    console.print()
    _usage_table(console, "NODE", record.usage_by_node, "usage per node")
    console.print()
    if not checkpoints:
        console.print("checkpoints: none written under this run_id")
        return
    cp_rows: list[list[str | Text]] = [
        [
            cp["checkpoint_id"],
            "" if cp["step"] is None else str(cp["step"]),
            cp["source"] or "",
            cp["checkpoint_ns"] or "(root)",
            cp["thread_id"],
            cp["parent_checkpoint_id"] or "",
        ]
        for cp in checkpoints
    ]
    console.listing(
        ["CHECKPOINT ID", "STEP", "SOURCE", "NAMESPACE", "THREAD", "PARENT"],
        cp_rows,
        right=["STEP"],
        flexible_last=False,
        title=f"checkpoints ({len(checkpoints)})",
    )


_USAGE_NAMES = (*(name.removesuffix("_tokens").upper() for name in TOKEN_FIELDS), "CALLS")
_USAGE_NUMBERS = (*_USAGE_NAMES, "LLM TIME", "COST")


def _usage_table(console: Output, what: str, usage: dict[str, dict[str, Any]], title: str) -> None:
    """Tokens, calls, LLM time and cost per model or per node."""
    if not usage:
        console.print(f"{title}: none recorded")
        return
    rows: list[list[str | Text]] = [
        [
            key,
            *(f"{int(entry.get(name) or 0):,}" for name in (*TOKEN_FIELDS, "llm_call_count")),
            format_ms(entry.get("llm_ms")),
            format_cost(entry.get("cost_usd")),
        ]
        for key, entry in sorted(usage.items())
    ]
    console.listing(
        [what, *_USAGE_NUMBERS], rows, right=_USAGE_NUMBERS, flexible_last=False, title=title
    )


@runs.command("show")
@click.argument("run_id", callback=check_id_param)
@click.option(
    "--user",
    "user_id",
    metavar="USER_ID",
    callback=check_id_param,
    help="Only a run of this user: another user's run reads as unknown.",
)
@json_option
@db_option
@click.pass_context
def runs_show(
    ctx: click.Context, run_id: str, user_id: str | None, as_json: bool, db: str | None
) -> None:
    """Every field of a run, its tokens per model and the checkpoints it wrote."""

    async def go() -> None:
        async with open_store(resolve_db(ctx, db), read_only=True) as store:
            row = await store.get(run_id)
            if row is None or (user_id is not None and row.get("user_id") != user_id):
                raise CliError(f"no run with id {run_id!r}")
            checkpoints = await store.run_checkpoints(run_id)
        record = RunRecord.from_row(row)
        if as_json:
            emit_json({"run": record_json(record), "checkpoints": checkpoints})
        else:
            _show_run(record, checkpoints)

    run_async(go)


@runs.command("cancel")
@click.argument("run_id", callback=check_id_param)
@click.option(
    "--action",
    type=click.Choice(["interrupt", "rollback"]),
    default="interrupt",
    show_default=True,
    help="interrupt keeps the checkpoints written so far; rollback removes them.",
)
@click.option(
    "--user",
    "user_id",
    metavar="USER_ID",
    callback=check_id_param,
    help="Only a run of this user: another user's run reads as unknown and is left alone.",
)
@json_option
@db_option
@click.pass_context
def runs_cancel(
    ctx: click.Context,
    run_id: str,
    action: str,
    user_id: str | None,
    as_json: bool,
    db: str | None,
) -> None:
    """Cancel a pending or running run (exit 1 if it is unknown or already finished)."""
    from langgraph_runstore.manager import RunManager

    async def go() -> None:
        async with open_store(resolve_db(ctx, db)) as store:
            manager = RunManager(store=store)
            try:
                try:
                    cancelled = await manager.cancel(run_id, action=action, user_id=user_id)
                except RunNotFoundError:
                    raise CliError(f"no run with id {run_id!r}") from None
                row = await store.get(run_id)
            finally:
                await manager.aclose()
        if row is None:
            raise CliError(f"run {run_id!r} disappeared while being cancelled")
        status = row.get("status") or "pending"
        if not cancelled:
            raise CliError(f"run {run_id} already finished ({status}): nothing to cancel")
        if as_json:
            emit_json({"cancelled": True, "action": action, "run": record_json(as_record(row))})
        elif RunStatus(status).is_final:
            reason = f" ({row['stop_reason']})" if row.get("stop_reason") else ""
            click.echo(f"cancelled run {run_id}: {status}{reason}")
        else:
            owner = row.get("owner_worker_id") or "its worker"
            click.echo(f"cancel ({action}) requested for run {run_id}: {owner} will stop it")

    run_async(go)


@runs.command("delete")
@click.argument("run_id", callback=check_id_param)
@click.option(
    "--keep-checkpoints",
    is_flag=True,
    help="Delete the run's row only; the checkpoints it wrote stay.",
)
@click.option(
    "--user",
    "user_id",
    metavar="USER_ID",
    callback=check_id_param,
    help="Only a run of this user: another user's run reads as unknown and is left alone.",
)
@json_option
@db_option
@click.pass_context
def runs_delete(
    ctx: click.Context,
    run_id: str,
    keep_checkpoints: bool,
    user_id: str | None,
    as_json: bool,
    db: str | None,
) -> None:
    """Delete a finished run and the checkpoints it wrote (exit 1 if it is unknown or still
    pending or running)."""
    from langgraph_runstore.manager import RunManager

    async def go() -> None:
        async with open_store(resolve_db(ctx, db)) as store:
            manager = RunManager(store=store)
            try:
                record = await manager.get(run_id, user_id=user_id)
                checkpoints = len(await store.run_checkpoints(run_id)) if record else 0
                try:
                    await manager.delete(run_id, keep_checkpoints=keep_checkpoints, user_id=user_id)
                except RunNotFoundError:
                    raise CliError(f"no run with id {run_id!r}") from None
                except ActiveRunError as exc:
                    raise CliError(
                        f"{exc.message}: `{PROG} runs cancel {run_id}` stops it"
                    ) from None
            finally:
                await manager.aclose()
        assert record is not None  # delete() found it
        deleted = 0 if keep_checkpoints else checkpoints
        if as_json:
            emit_json(
                {
                    "deleted": True,
                    "run_id": run_id,
                    "thread_id": record.thread_id,
                    "checkpoints_deleted": deleted,
                }
            )
        elif keep_checkpoints:
            click.echo(
                f"deleted run {run_id} (thread {record.thread_id}); "
                f"its {checkpoints} checkpoint(s) stay"
            )
        else:
            click.echo(
                f"deleted run {run_id} (thread {record.thread_id}) and its {deleted} checkpoint(s)"
            )

    run_async(go)
