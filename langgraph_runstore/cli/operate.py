"""``langgraph-runstore threads show``, ``usage``, ``reconcile``, ``prune``, ``migrate`` and
``report``: a thread's status, token usage, and operating the database."""

from __future__ import annotations

import sys
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

import click

from langgraph_runstore.db.migrations import current_version
from langgraph_runstore.display import (
    format_time,
    interrupt_values,
    record_json,
)
from langgraph_runstore.query import USAGE_GROUPINGS
from langgraph_runstore.schemas import (
    RunRecord,
    RunStatus,
    ThreadStatus,
    as_record,
)
from langgraph_runstore.store.sql import SQLRunStore

if TYPE_CHECKING:  # rich loads when a table is printed: --json and errors do without it
    pass

from langgraph_runstore.cli.base import (
    PROG,
    SINCE_HELP,
    UNTIL_HELP,
    CliError,
    Output,
    check_id_param,
    cli,
    database_url,
    db_option,
    emit_json,
    json_option,
    make_console,
    open_store,
    print_runs,
    print_usage,
    resolve_db,
    run_async,
    threads,
    time_option,
)


async def thread_status(
    store: SQLRunStore, latest: dict[str, Any], *, user_id: str | None = None
) -> ThreadStatus:
    """``RunManager.thread_status`` of a process that runs nothing itself, from the store
    alone (so that ``threads show`` needs no LangGraph); ``latest`` is the thread's newest run
    (of ``user_id``, whose runs alone count when it is given).
    """
    inflight = await store.list_inflight(thread_id=latest["thread_id"])
    if any(user_id is None or row.get("user_id") == user_id for row in inflight):
        return ThreadStatus.busy
    last = RunRecord.from_row(latest)
    if last.status in (RunStatus.error, RunStatus.timeout):
        return ThreadStatus.error
    if last.paused:
        return ThreadStatus.interrupted
    return ThreadStatus.idle


@threads.command("show")
@click.argument("thread_id", callback=check_id_param)
@click.option("--limit", type=click.IntRange(1, 10_000), default=20, show_default=True)
@click.option(
    "--user",
    "user_id",
    metavar="USER_ID",
    callback=check_id_param,
    help="Only this user's runs, in the list, the totals and the status.",
)
@json_option
@db_option
@click.pass_context
def threads_show(
    ctx: click.Context,
    thread_id: str,
    limit: int,
    user_id: str | None,
    as_json: bool,
    db: str | None,
) -> None:
    """A thread's status, what it waits on when paused, its runs (newest first), its totals.

    The pending interrupts are those the paused latest run stored (no checkpoint is read,
    so the command needs no LangGraph); ``RunManager.thread_interrupts`` reads the checkpoint.
    """

    async def go() -> None:
        async with open_store(resolve_db(ctx, db), read_only=True) as store:
            page = await store.list_runs(thread_id=thread_id, user_id=user_id, limit=limit)
            if not page.runs:
                of_user = f" of user {user_id!r}" if user_id is not None else ""
                raise CliError(f"no runs{of_user} on thread {thread_id!r}")
            status = await thread_status(store, page.runs[0], user_id=user_id)
            totals = await store.aggregate_usage(by="thread", thread_id=thread_id, user_id=user_id)
        total = totals[0]
        latest = RunRecord.from_row(page.runs[0])
        waiting = latest if status is ThreadStatus.interrupted else None
        if as_json:
            emit_json(
                {
                    "thread_id": thread_id,
                    "status": status.value,
                    "interrupts": waiting.interrupts if waiting else [],
                    "totals": total.as_dict(),
                    "runs": [record_json(as_record(r)) for r in page],
                    "next_cursor": page.next_cursor,
                }
            )
            return
        from rich.text import Text

        console = Output()
        by_status = ", ".join(f"{n} {s}" for s, n in total.by_status.items())
        console.print(
            Text.assemble(("thread ", ""), (thread_id, "bold"), ": ", (status.value, "bold"))
        )
        console.print(
            f"{total.runs:,} runs ({by_status}); {total.tokens.total_tokens:,} tokens "
            f"({total.tokens.input_tokens:,} in, {total.tokens.output_tokens:,} out); "
            f"{total.llm_calls:,} LLM call(s); error rate {total.error_rate:.1%}"
        )
        if waiting is not None:
            console.print(
                f"waiting on {len(waiting.interrupts)} interrupt(s) of run {waiting.run_id}:"
            )
            for entry in waiting.interrupts:
                value = interrupt_values([entry])
                console.print(Text(f"  {entry.get('id') or '(no id)'}: {value}"))
        console.print()
        print_runs(console, [RunRecord.from_row(r) for r in page])
        if page.next_cursor:
            console.print(
                f"more: {PROG} runs list --thread {thread_id} --cursor {page.next_cursor}",
                style="dim",
            )

    run_async(go)


@cli.command()
@click.option(
    "--by",
    type=click.Choice(USAGE_GROUPINGS),
    default="model",
    show_default=True,
    help="Group by model, thread, user, assistant or UTC day.",
)
@time_option("--since", SINCE_HELP)
@time_option("--until", UNTIL_HELP)
@json_option
@db_option
@click.pass_context
def usage(
    ctx: click.Context,
    by: str,
    since: str | None,
    until: str | None,
    as_json: bool,
    db: str | None,
) -> None:
    """Tokens, cost, LLM calls, runs by status, error rate and p50/p95 run and LLM call
    times, per model, thread, user, assistant or day."""

    async def go() -> None:
        async with open_store(resolve_db(ctx, db), read_only=True) as store:
            rows = await store.aggregate_usage(by=by, since=since, until=until)
        if as_json:
            emit_json(
                {"by": by, "since": since, "until": until, "groups": [r.as_dict() for r in rows]}
            )
            return
        console = Output()
        if not rows:
            console.print("no runs in this period")
            return
        print_usage(console, rows, by)

    run_async(go)


@cli.command()
@time_option(
    "--older-than",
    "Only runs created before WHEN (a duration ago, e.g. 1h, or a date/time).",
)
@json_option
@db_option
@click.pass_context
def reconcile(ctx: click.Context, older_than: str | None, as_json: bool, db: str | None) -> None:
    """Mark pending/running runs that no live worker owns as error (orphan_recovered).

    Runs whose worker holds a live lease are left alone; without leases, every in-flight
    run counts as orphaned, so use --older-than while unleased workers may be running.
    """
    from langgraph_runstore.manager import RunManager

    async def go() -> None:
        async with open_store(resolve_db(ctx, db)) as store:
            manager = RunManager(store=store)
            try:
                recovered = await manager.reconcile_orphaned_inflight_runs(before=older_than)
            finally:
                await manager.aclose()
        if as_json:
            emit_json({"recovered": [record_json(r) for r in recovered]})
            return
        click.echo(f"marked {len(recovered)} orphaned run(s) as error")
        for record in recovered:
            click.echo(f"  {record.run_id}  thread {record.thread_id}")

    run_async(go)


@cli.command()
@time_option(
    "--older-than",
    "Delete finished runs created before WHEN: a duration ago (30d) or a date/time.",
    required=True,
)
@click.option(
    "--keep-checkpoints", is_flag=True, help="Delete the run records only, not their checkpoints."
)
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.option("--dry-run", is_flag=True, help="Only count what would be deleted.")
@json_option
@db_option
@click.pass_context
def prune(
    ctx: click.Context,
    older_than: str,
    keep_checkpoints: bool,
    yes: bool,
    dry_run: bool,
    as_json: bool,
    db: str | None,
) -> None:
    """Delete finished runs (and the checkpoints they wrote); pending and running stay."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    async def go() -> None:
        # a dry run only reads: it works on read-only storage too
        async with open_store(resolve_db(ctx, db), read_only=dry_run) as store:
            planned = await store.prune_runs(older_than=older_than, dry_run=True)
            what = "runs" if keep_checkpoints else "runs and their checkpoints"
            when = format_time(older_than)
            if dry_run or planned.runs == 0:
                if as_json:
                    emit_json(asdict(planned))
                elif planned.runs == 0:
                    click.echo(f"nothing to prune: no finished runs created before {when} UTC")
                else:
                    click.echo(
                        f"would delete {planned.runs:,} finished {what} created before {when} UTC"
                    )
                return
            if not yes:
                click.confirm(
                    f"delete {planned.runs:,} finished {what} created before {when} UTC?",
                    abort=True,
                    err=True,
                )
                if not sys.stdin.isatty():
                    click.echo(err=True)  # piped answers are not echoed: end the prompt's line
            with Progress(
                TextColumn("pruning"),
                BarColumn(),
                MofNCompleteColumn(),
                console=make_console(stderr=True),
                transient=not as_json and sys.stderr.isatty(),
            ) as progress:
                task = progress.add_task("prune", total=planned.runs)
                result = await store.prune_runs(
                    older_than=older_than,
                    include_checkpoints=not keep_checkpoints,
                    on_progress=lambda n: progress.advance(task, n),
                )
        if as_json:
            emit_json(asdict(result))
            return
        click.echo(
            f"deleted {result.runs:,} {what} created before {when} UTC in {result.batches} "
            f"batch(es); longest write {result.longest_write_seconds * 1000:.0f} ms"
        )

    run_async(go)


@cli.command()
@db_option
@click.pass_context
def migrate(ctx: click.Context, db: str | None) -> None:
    """Create the tables, or bring an existing database to this package's schema."""
    from langgraph_runstore.db.migrations import setup

    async def go() -> None:
        async with open_store(resolve_db(ctx, db), for_migrate=True) as store:
            async with store.engine.connect() as conn:
                before = await current_version(conn)
            after = await setup(store.engine)
        target = database_url(resolve_db(ctx, db))
        if before == after:
            click.echo(f"{target}: already at schema version {after}")
        else:
            click.echo(f"{target}: migrated from schema version {before} to {after}")

    run_async(go)


@cli.command()
@click.option(
    "--html",
    "html_file",
    type=click.Path(dir_okay=False, writable=True),
    required=True,
    help="Where to write the report.",
)
@time_option("--since", "Only runs created at or after WHEN (default: all runs).")
@click.option("--title", default=None, help="Page title (default: LangGraph runs).")
@db_option
@click.pass_context
def report(
    ctx: click.Context, html_file: str, since: str | None, title: str | None, db: str | None
) -> None:
    """Write a self-contained HTML report: status counts, token charts, slow/costly runs, errors."""
    from langgraph_runstore.report import write_report

    async def go() -> None:
        async with open_store(resolve_db(ctx, db), read_only=True) as store:
            data = await write_report(store, html_file, since=since, title=title)
        click.echo(f"wrote {html_file} ({data.total_runs:,} runs)")

    run_async(go)
