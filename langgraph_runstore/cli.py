"""``langgraph-runstore``: look at and operate the runs in a database from a terminal.

The database is ``--db URL`` (a URL or a SQLite file path), else ``$LANGGRAPH_RUNSTORE_URL``,
else ``./runstore.db``, the file the quickstart writes. Only ``migrate`` creates or migrates a
database; every other command refuses a missing, foreign or out-of-date one and changes
nothing. Exit codes: 0 ok, 1 not found or failed, 2 usage error. Errors are one line on
stderr (set ``LANGGRAPH_RUNSTORE_DEBUG=1`` for the traceback).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sqlite3
import sys
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from contextlib import asynccontextmanager
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from langgraph_runstore.db.engine import (
    create_engine,
    default_url,
    is_memory_sqlite,
    normalize_url,
    sqlite_file,
    sqlite_path,
)
from langgraph_runstore.db.migrations import VERSION_TABLE, current_version, latest_version
from langgraph_runstore.display import (
    STATUS_COLORS,
    format_duration,
    format_time,
    interrupt_values,
    record_json,
    shorten,
    status_label,
)
from langgraph_runstore.errors import InvalidInputError, RunNotFoundError, RunStoreError
from langgraph_runstore.query import USAGE_GROUPINGS, UsageRow, decode_cursor, resolve_time
from langgraph_runstore.schemas import (
    TOKEN_FIELDS,
    RunRecord,
    RunStatus,
    ThreadStatus,
    as_record,
)
from langgraph_runstore.store.sql import SQLRunStore

if TYPE_CHECKING:  # rich loads when a table is printed: --json and errors do without it
    from rich.console import Console
    from rich.text import Text

T = TypeVar("T")

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
PROG = "langgraph-runstore"
DEBUG_ENV_VAR = "LANGGRAPH_RUNSTORE_DEBUG"
# an unreachable server should fail in seconds, not after asyncpg's default minute
PG_CONNECT_TIMEOUT = 5.0


class CliError(Exception):
    """A failure reported as one line on stderr with an exit code."""

    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def _one_line(exc: BaseException) -> str:
    """The first line of an exception's message (drivers add SQL and hints below it)."""
    text = str(getattr(exc, "orig", None) or exc).strip()
    first = text.splitlines()[0] if text else ""
    return first or type(exc).__name__


# -- opening the database --------------------------------------------------------------------


def database_url(value: str | None) -> str:
    """``--db`` as a URL: a plain path means a SQLite file; nothing means ``default_url()``."""
    url = value or default_url()
    if "://" not in url:
        url = f"sqlite+aiosqlite:///{Path(url).expanduser().resolve()}"
    return url


def _probe_sqlite(path: Path) -> int:
    """The schema version of a SQLite file, read through a read-only connection.

    Read-only on purpose: the engine switches files to WAL when it connects, and a file that
    turns out not to be ours must be left exactly as it was.
    """
    with path.open("rb") as handle:
        header = handle.read(16)
    if header and header != b"SQLite format 3\x00":
        raise CliError(f"{path} is not a SQLite database")
    try:
        conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise CliError(f"cannot open {path}: {exc}") from None
    try:
        found = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (VERSION_TABLE,)
        ).fetchone()
        if found is None:
            return 0
        return int(conn.execute(f"SELECT MAX(version) FROM {VERSION_TABLE}").fetchone()[0] or 0)
    except sqlite3.DatabaseError as exc:
        raise CliError(f"{path} is not a usable SQLite database: {exc}") from None
    finally:
        conn.close()


def _check_sqlite_file(database: str, *, for_migrate: bool) -> Path:
    """The file's absolute path, once it is known to hold a usable schema (or may be made)."""
    path = Path(database).resolve()  # name the file, not a path relative to somewhere
    if path.is_dir():
        raise CliError(f"{path} is a directory, not a SQLite database")
    if path.exists():
        _check_version(_probe_sqlite(path), str(path), for_migrate=for_migrate)
    elif not for_migrate:
        raise CliError(
            f"no database at {path}: run your graph with a SQLRunStore there, "
            f"or create an empty one with `{PROG} migrate`"
        )
    return path


def _check_version(version: int, shown: str, *, for_migrate: bool) -> None:
    latest = latest_version()
    if version > latest:
        raise CliError(
            f"database {shown} has schema version {version}, newer than this package's "
            f"{latest}: upgrade langgraph-runstore"
        )
    if for_migrate:
        return
    if version == 0:
        raise CliError(
            f"database {shown} has no langgraph-runstore tables: create them with `{PROG} migrate`"
        )
    if version < latest:
        raise CliError(
            f"database {shown} has schema version {version}, older than this package's "
            f"{latest}: run `{PROG} migrate`"
        )


@asynccontextmanager
async def open_store(
    db: str | None, *, for_migrate: bool = False, read_only: bool = False
) -> AsyncIterator[SQLRunStore]:
    """A SQLRunStore on ``db`` whose schema is current; CliError for anything else.

    Nothing is created or migrated here, unless ``for_migrate`` (then a missing SQLite file
    is fine and the caller migrates). With ``read_only``, a SQLite file is read through the
    standard library alone (``SQLRunStore.open_read_only``): the read commands never
    import SQLAlchemy, which costs more than the whole command otherwise.
    """
    url = database_url(db)
    database = sqlite_file(url) if read_only else None
    if database is not None:
        path = _check_sqlite_file(database, for_migrate=False)
        try:
            reader = SQLRunStore.open_read_only(path)
        except sqlite3.Error as exc:
            raise CliError(f"cannot open database {path}: {_one_line(exc)}") from None
        try:
            yield reader
        finally:
            await reader.aclose()
        return
    try:
        parsed = normalize_url(url)
    except RunStoreError as exc:
        raise CliError(exc.message, EXIT_USAGE) from None
    shown = parsed.render_as_string(hide_password=True)
    engine_kwargs: dict[str, Any] = {}
    if parsed.get_backend_name() == "sqlite":
        if is_memory_sqlite(parsed):
            raise CliError("an in-memory SQLite database holds no runs: pass --db with a file")
        path = _check_sqlite_file(sqlite_path(parsed), for_migrate=for_migrate)
        shown = str(path)
    else:
        engine_kwargs["connect_args"] = {"timeout": PG_CONNECT_TIMEOUT}
    engine = create_engine(parsed, **engine_kwargs)
    try:
        try:
            async with engine.connect() as conn:
                version = await current_version(conn)
        except Exception as exc:
            raise CliError(f"cannot open database {shown}: {_one_line(exc)}") from None
        _check_version(version, shown, for_migrate=for_migrate)
        store = SQLRunStore(engine)
        try:
            yield store
        finally:
            await store.aclose()
    finally:
        await engine.dispose()


# -- output ----------------------------------------------------------------------------------


def _console(*, stderr: bool = False) -> Console:
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    # piped output keeps whole lines (no terminal to fit); COLUMNS still wins when set
    width = None if stream.isatty() else int(os.environ.get("COLUMNS") or 160)
    return Console(file=stream, width=width, highlight=False, soft_wrap=False)


class _Out:
    """Prints rich renderables; piped output loses rich's trailing padding."""

    def __init__(self, *, stderr: bool = False) -> None:
        self.console = _console(stderr=stderr)

    def print(self, *renderables: Any, style: str | None = None, width: int | None = None) -> None:
        """Print; ``width`` lays out that wide even past the terminal's edge (it wraps)."""
        console = self.console
        narrow = console.width
        if width is not None and width > narrow:
            console.width = width
        try:
            if console.is_terminal:
                console.print(*renderables, style=style, crop=False)
                return
            with console.capture() as captured:
                console.print(*renderables, style=style, crop=False)
        finally:
            console.width = narrow
        lines = [line.rstrip() for line in captured.get().splitlines()]
        console.file.write("\n".join(lines) + "\n")

    def listing(
        self,
        headers: Sequence[str],
        rows: Sequence[Sequence[str | Text]],
        *,
        right: Sequence[str] = (),
        flexible_last: bool = True,
        title: str | None = None,
    ) -> None:
        """A table whose columns keep their full width, except the last, which gives way.

        Rich would shrink every column of a table wider than the terminal, and ids or
        numbers cut short are useless: only the trailing text is shortened (to no less
        than 24 characters; past that the terminal wraps the lines).
        """
        from rich.table import Table

        widths = [max([len(h), *(len(str(row[i])) for row in rows)]) for i, h in enumerate(headers)]
        fixed = sum(widths[:-1]) + 2 * (len(headers) - 1)
        last = max(24, min(widths[-1], self.console.width - fixed)) if flexible_last else widths[-1]
        table = Table(
            title=title, title_justify="left", box=None, header_style="bold", pad_edge=False
        )
        for i, header in enumerate(headers):
            table.add_column(
                header,
                justify="right" if header in right else "left",
                no_wrap=True,
                overflow="ellipsis",
                width=widths[i] if i < len(headers) - 1 else last,
            )
        for row in rows:
            table.add_row(*row)
        self.print(table, width=fixed + last)


def _emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


def _status_text(status: str) -> Text:
    from rich.text import Text

    return Text(status, style=f"bold {STATUS_COLORS.get(status, 'white')}")


_RUN_HEADERS = (
    "RUN ID", "THREAD", "STATUS", "STOP", "CREATED (UTC)", "DURATION", "TOKENS", "CALLS",
)  # fmt: skip


def _print_runs(out: _Out, records: Sequence[RunRecord]) -> None:
    rows: list[list[str | Text]] = [
        [
            r.run_id,
            shorten(r.thread_id, 24),
            _status_text(status_label(r)),
            r.stop_reason or "",
            format_time(r.created_at),
            format_duration(r.duration_seconds),
            f"{r.total_tokens:,}",
            str(r.llm_call_count),
            shorten(r.error if r.status.value in ("error", "timeout") else r.last_ai_message, 60),
        ]
        for r in records
    ]
    out.listing(
        [*_RUN_HEADERS, "LAST AI MESSAGE / ERROR"], rows, right=("DURATION", "TOKENS", "CALLS")
    )


_USAGE_NUMBERS = (
    "RUNS", "SUCCESS", "PAUSED", "ERROR", "TIMEOUT", "INTERRUPTED", "ACTIVE", "ERROR RATE",
    "LLM CALLS", "INPUT", "OUTPUT", "TOTAL TOKENS",
)  # fmt: skip


def _print_usage(out: _Out, rows: Sequence[UsageRow], by: str) -> None:
    lines: list[list[str | Text]] = []
    for row in rows:
        s = row.by_status
        lines.append(
            [
                shorten(row.key, 40) if row.key is not None else "(none)",
                f"{row.runs:,}",
                f"{s.get('success', 0) - row.paused:,}",
                f"{row.paused:,}",
                f"{s.get('error', 0):,}",
                f"{s.get('timeout', 0):,}",
                f"{s.get('interrupted', 0):,}",
                f"{s.get('pending', 0) + s.get('running', 0):,}",
                f"{row.error_rate:.1%}" if row.finished else "-",
                f"{row.llm_calls:,}",
                f"{row.tokens.input_tokens:,}",
                f"{row.tokens.output_tokens:,}",
                f"{row.tokens.total_tokens:,}",
            ]
        )
    out.listing([by.upper(), *_USAGE_NUMBERS], lines, right=_USAGE_NUMBERS, flexible_last=False)


# -- click plumbing --------------------------------------------------------------------------


def _run(factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
    return asyncio.run(factory())


def _time_option(name: str, help_text: str, **kwargs: Any) -> Callable[[Any], Any]:
    def check(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return resolve_time(value, name=name.lstrip("-"))
        except InvalidInputError:
            raise click.BadParameter(
                f"{value!r} is neither a duration (30m, 12h, 7d, 2w) nor an ISO-8601 date or "
                "time (2026-01-31, 2026-01-31T12:00:00Z)"
            ) from None

    return click.option(name, metavar="WHEN", help=help_text, callback=check, **kwargs)


def _cursor_check(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is not None:
        try:
            decode_cursor(value)
        except InvalidInputError as exc:
            raise click.BadParameter(exc.message) from None
    return value


_db_option = click.option(
    "--db",
    "db",
    metavar="URL",
    default=None,
    help="Database URL or SQLite file (default: $LANGGRAPH_RUNSTORE_URL, else ./runstore.db).",
)
_json_option = click.option(
    "--json", "as_json", is_flag=True, help="Print JSON instead of a table."
)
_SINCE_HELP = "Only runs created at or after WHEN: a duration ago (7d, 12h, 30m) or a date/time."
_UNTIL_HELP = "Only runs created before WHEN (same forms as --since)."


def _db(ctx: click.Context, db: str | None) -> str | None:
    """The command's own --db, else the one given before the command."""
    return db or (ctx.obj or {}).get("db")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@_db_option
@click.version_option(package_name="langgraph-runstore", prog_name=PROG)
@click.pass_context
def cli(ctx: click.Context, db: str | None) -> None:
    """Look at and operate LangGraph runs recorded by langgraph-runstore."""
    ctx.obj = {"db": db}


@cli.group()
def runs() -> None:
    """List, show and cancel runs."""


@cli.group()
def threads() -> None:
    """Show threads."""


@runs.command("list")
@click.option("--thread", "thread_id", metavar="THREAD_ID", help="Only runs of this thread.")
@click.option(
    "--status",
    "statuses",
    multiple=True,
    type=click.Choice([s.value for s in RunStatus]),
    help="Only runs in this status (repeat for several).",
)
@click.option("--user", "user_id", metavar="USER_ID", help="Only runs of this user.")
@_time_option("--since", _SINCE_HELP)
@_time_option("--until", _UNTIL_HELP)
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True)
@click.option("--cursor", callback=_cursor_check, help="Next page: the cursor a page printed.")
@_json_option
@_db_option
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
    as_json: bool,
    db: str | None,
) -> None:
    """List runs, newest first."""

    async def go() -> None:
        async with open_store(_db(ctx, db), read_only=True) as store:
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
            _emit_json(
                {"runs": [record_json(as_record(r)) for r in page], "next_cursor": page.next_cursor}
            )
            return
        records = [RunRecord.from_row(r) for r in page]
        console = _Out()
        if not records:
            console.print("no runs match")
            return
        _print_runs(console, records)
        if page.next_cursor:
            console.print(f"more: --cursor {page.next_cursor}", style="dim")

    _run(go)


def _show_run(record: RunRecord, checkpoints: list[dict[str, Any]]) -> None:
    from rich.table import Table
    from rich.text import Text

    console = _Out()
    fields = Table(box=None, show_header=False, pad_edge=False)
    fields.add_column(style="bold", no_wrap=True)
    fields.add_column(overflow="fold")
    data = record_json(record)
    for name, value in data.items():
        if name == "status":
            fields.add_row(name, _status_text(status_label(record)))
            continue
        if name == "duration_seconds":
            fields.add_row("duration", format_duration(record.duration_seconds))
            continue
        if name == "token_usage_by_model":
            continue  # its own table below
        if isinstance(value, (dict, list)):
            value = json.dumps(value, default=str)
        fields.add_row(name, Text("" if value is None else str(value)))
    console.print(fields)
    console.print()
    if record.token_usage_by_model:
        names = [name.removesuffix("_tokens").upper() for name in TOKEN_FIELDS]
        usage_rows: list[list[str | Text]] = [
            [model, *(f"{int(usage.get(name) or 0):,}" for name in TOKEN_FIELDS)]
            for model, usage in sorted(record.token_usage_by_model.items())
        ]
        console.listing(
            ["MODEL", *names],
            usage_rows,
            right=names,
            flexible_last=False,
            title="tokens per model",
        )
    else:
        console.print("tokens per model: none recorded")
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


@runs.command("show")
@click.argument("run_id")
@_json_option
@_db_option
@click.pass_context
def runs_show(ctx: click.Context, run_id: str, as_json: bool, db: str | None) -> None:
    """Every field of a run, its tokens per model and the checkpoints it wrote."""

    async def go() -> None:
        async with open_store(_db(ctx, db), read_only=True) as store:
            row = await store.get(run_id)
            if row is None:
                raise CliError(f"no run with id {run_id!r}")
            checkpoints = await store.run_checkpoints(run_id)
        record = RunRecord.from_row(row)
        if as_json:
            _emit_json({"run": record_json(record), "checkpoints": checkpoints})
        else:
            _show_run(record, checkpoints)

    _run(go)


@runs.command("cancel")
@click.argument("run_id")
@click.option(
    "--action",
    type=click.Choice(["interrupt", "rollback"]),
    default="interrupt",
    show_default=True,
    help="interrupt keeps the checkpoints written so far; rollback removes them.",
)
@_json_option
@_db_option
@click.pass_context
def runs_cancel(
    ctx: click.Context, run_id: str, action: str, as_json: bool, db: str | None
) -> None:
    """Cancel a pending or running run (exit 1 if it is unknown or already finished)."""
    from langgraph_runstore.manager import RunManager

    async def go() -> None:
        async with open_store(_db(ctx, db)) as store:
            manager = RunManager(store=store)
            try:
                try:
                    cancelled = await manager.cancel(run_id, action=action)
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
            _emit_json({"cancelled": True, "action": action, "run": record_json(as_record(row))})
        elif RunStatus(status).is_final:
            reason = f" ({row['stop_reason']})" if row.get("stop_reason") else ""
            click.echo(f"cancelled run {run_id}: {status}{reason}")
        else:
            owner = row.get("owner_worker_id") or "its worker"
            click.echo(f"cancel ({action}) requested for run {run_id}: {owner} will stop it")

    _run(go)


async def thread_status(store: SQLRunStore, latest: dict[str, Any]) -> ThreadStatus:
    """``RunManager.thread_status`` of a process that runs nothing itself, from the store
    alone (so that ``threads show`` needs no LangGraph); ``latest`` is the thread's newest run.
    """
    if await store.list_inflight(thread_id=latest["thread_id"]):
        return ThreadStatus.busy
    last = RunRecord.from_row(latest)
    if last.status in (RunStatus.error, RunStatus.timeout):
        return ThreadStatus.error
    if last.paused:
        return ThreadStatus.interrupted
    return ThreadStatus.idle


@threads.command("show")
@click.argument("thread_id")
@click.option("--limit", type=click.IntRange(1, 10_000), default=20, show_default=True)
@_json_option
@_db_option
@click.pass_context
def threads_show(
    ctx: click.Context, thread_id: str, limit: int, as_json: bool, db: str | None
) -> None:
    """A thread's status, what it waits on when paused, its runs (newest first), its totals.

    The pending interrupts are those the paused latest run stored (no checkpoint is read,
    so the command needs no LangGraph); ``RunManager.thread_interrupts`` reads the checkpoint.
    """

    async def go() -> None:
        async with open_store(_db(ctx, db), read_only=True) as store:
            page = await store.list_runs(thread_id=thread_id, limit=limit)
            if not page.runs:
                raise CliError(f"no runs on thread {thread_id!r}")
            status = await thread_status(store, page.runs[0])
            totals = await store.aggregate_usage(by="thread", thread_id=thread_id)
        total = totals[0]
        latest = RunRecord.from_row(page.runs[0])
        waiting = latest if status is ThreadStatus.interrupted else None
        if as_json:
            _emit_json(
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

        console = _Out()
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
        _print_runs(console, [RunRecord.from_row(r) for r in page])
        if page.next_cursor:
            console.print(
                f"more: {PROG} runs list --thread {thread_id} --cursor {page.next_cursor}",
                style="dim",
            )

    _run(go)


@cli.command()
@click.option(
    "--by",
    type=click.Choice(USAGE_GROUPINGS),
    default="model",
    show_default=True,
    help="Group by model, thread, user or UTC day.",
)
@_time_option("--since", _SINCE_HELP)
@_time_option("--until", _UNTIL_HELP)
@_json_option
@_db_option
@click.pass_context
def usage(
    ctx: click.Context,
    by: str,
    since: str | None,
    until: str | None,
    as_json: bool,
    db: str | None,
) -> None:
    """Tokens, LLM calls, runs by status and error rate, per model, thread, user or day."""

    async def go() -> None:
        async with open_store(_db(ctx, db), read_only=True) as store:
            rows = await store.aggregate_usage(by=by, since=since, until=until)
        if as_json:
            _emit_json(
                {"by": by, "since": since, "until": until, "groups": [r.as_dict() for r in rows]}
            )
            return
        console = _Out()
        if not rows:
            console.print("no runs in this period")
            return
        _print_usage(console, rows, by)

    _run(go)


@cli.command()
@_time_option(
    "--older-than",
    "Only runs created before WHEN (a duration ago, e.g. 1h, or a date/time).",
)
@_json_option
@_db_option
@click.pass_context
def reconcile(ctx: click.Context, older_than: str | None, as_json: bool, db: str | None) -> None:
    """Mark pending/running runs that no live worker owns as error (orphan_recovered).

    Runs whose worker holds a live lease are left alone; without leases, every in-flight
    run counts as orphaned, so use --older-than while unleased workers may be running.
    """
    from langgraph_runstore.manager import RunManager

    async def go() -> None:
        async with open_store(_db(ctx, db)) as store:
            manager = RunManager(store=store)
            try:
                recovered = await manager.reconcile_orphaned_inflight_runs(before=older_than)
            finally:
                await manager.aclose()
        if as_json:
            _emit_json({"recovered": [record_json(r) for r in recovered]})
            return
        click.echo(f"marked {len(recovered)} orphaned run(s) as error")
        for record in recovered:
            click.echo(f"  {record.run_id}  thread {record.thread_id}")

    _run(go)


@cli.command()
@_time_option(
    "--older-than",
    "Delete finished runs created before WHEN: a duration ago (30d) or a date/time.",
    required=True,
)
@click.option(
    "--keep-checkpoints", is_flag=True, help="Delete the run records only, not their checkpoints."
)
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.option("--dry-run", is_flag=True, help="Only count what would be deleted.")
@_json_option
@_db_option
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
        async with open_store(_db(ctx, db)) as store:
            planned = await store.prune_runs(older_than=older_than, dry_run=True)
            what = "runs" if keep_checkpoints else "runs and their checkpoints"
            when = format_time(older_than)
            if dry_run or planned.runs == 0:
                if as_json:
                    _emit_json(asdict(planned))
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
                console=_console(stderr=True),
                transient=not as_json and sys.stderr.isatty(),
            ) as progress:
                task = progress.add_task("prune", total=planned.runs)
                result = await store.prune_runs(
                    older_than=older_than,
                    include_checkpoints=not keep_checkpoints,
                    on_progress=lambda n: progress.advance(task, n),
                )
        if as_json:
            _emit_json(asdict(result))
            return
        click.echo(
            f"deleted {result.runs:,} {what} created before {when} UTC in {result.batches} "
            f"batch(es); longest write {result.longest_write_seconds * 1000:.0f} ms"
        )

    _run(go)


@cli.command()
@_db_option
@click.pass_context
def migrate(ctx: click.Context, db: str | None) -> None:
    """Create the tables, or bring an existing database to this package's schema."""
    from langgraph_runstore.db.migrations import setup

    async def go() -> None:
        async with open_store(_db(ctx, db), for_migrate=True) as store:
            async with store.engine.connect() as conn:
                before = await current_version(conn)
            after = await setup(store.engine)
        target = database_url(_db(ctx, db))
        if before == after:
            click.echo(f"{target}: already at schema version {after}")
        else:
            click.echo(f"{target}: migrated from schema version {before} to {after}")

    _run(go)


@cli.command()
@click.option(
    "--html",
    "html_file",
    type=click.Path(dir_okay=False, writable=True),
    required=True,
    help="Where to write the report.",
)
@_time_option("--since", "Only runs created at or after WHEN (default: all runs).")
@click.option("--title", default=None, help="Page title (default: LangGraph runs).")
@_db_option
@click.pass_context
def report(
    ctx: click.Context, html_file: str, since: str | None, title: str | None, db: str | None
) -> None:
    """Write a self-contained HTML report: status counts, token charts, slow/costly runs, errors."""
    from langgraph_runstore.report import write_report

    async def go() -> None:
        async with open_store(_db(ctx, db), read_only=True) as store:
            data = await write_report(store, html_file, since=since, title=title)
        click.echo(f"wrote {html_file} ({data.total_runs:,} runs)")

    _run(go)


# -- entry point -----------------------------------------------------------------------------


class _OneLineWarnings(logging.Handler):
    """Package warnings as one line on stderr: the CLI promises no tracebacks."""

    def emit(self, record: logging.LogRecord) -> None:
        click.echo(f"warning: {record.getMessage()}", err=True)


def _quiet_logging() -> None:
    logger = logging.getLogger("langgraph_runstore")
    if not any(isinstance(h, _OneLineWarnings) for h in logger.handlers):
        handler = _OneLineWarnings(level=logging.WARNING)
        logger.addHandler(handler)
    logger.propagate = False


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code (the console script exits with it)."""
    _quiet_logging()
    debug = os.environ.get(DEBUG_ENV_VAR) == "1"
    try:
        result = cli.main(
            args=list(argv) if argv is not None else None, prog_name=PROG, standalone_mode=False
        )
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.Abort:
        # after a piped "n" the prompt's line is still open: the answer is not echoed
        lead = "" if sys.stdin is None or sys.stdin.isatty() else "\n"
        click.echo(f"{lead}aborted: nothing was changed", err=True)
        return EXIT_FAILED
    except click.UsageError as exc:
        hint = f" (see {exc.ctx.command_path} --help)" if exc.ctx is not None else ""
        click.echo(f"error: {exc.format_message()}{hint}", err=True)
        return EXIT_USAGE
    except click.ClickException as exc:
        click.echo(f"error: {exc.format_message()}", err=True)
        return exc.exit_code
    except CliError as exc:
        click.echo(f"error: {exc.message}", err=True)
        return exc.code
    except InvalidInputError as exc:
        click.echo(f"error: {exc.message}", err=True)
        return EXIT_USAGE
    except RunStoreError as exc:
        click.echo(f"error: {exc.message}", err=True)
        return EXIT_FAILED
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        return 130
    except Exception as exc:
        if debug:
            raise
        click.echo(f"error: {type(exc).__name__}: {_one_line(exc)}", err=True)
        return EXIT_FAILED
    return int(result) if isinstance(result, int) else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
