"""The command line's plumbing: which database a command opens and how (read-only, checked
for version), printing (rich tables, JSON, one-line errors), the options commands share,
and the command groups (``cli``, ``runs``, ``threads``) the commands attach to."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import sys
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from contextlib import asynccontextmanager
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
from langgraph_runstore.db.read_only import cannot_write, read_only_uri
from langgraph_runstore.db.urls import as_url, connect_timeout_arguments
from langgraph_runstore.display import (
    STATUS_COLORS,
    format_cost,
    format_duration,
    format_ms,
    format_time,
    shorten,
    status_label,
)
from langgraph_runstore.errors import InvalidInputError, RunStoreError
from langgraph_runstore.query import (
    UsageRow,
    check_metadata_filter,
    decode_cursor,
    resolve_time,
)
from langgraph_runstore.schemas import (
    RunRecord,
)
from langgraph_runstore.store.listing import run_ids_with_prefix
from langgraph_runstore.store.sql import SQLRunStore
from langgraph_runstore.validate import check_id

if TYPE_CHECKING:  # rich loads when a table is printed: --json and errors do without it
    from rich.console import Console
    from rich.text import Text

T = TypeVar("T")

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
PROG = "langgraph-runstore"
DEBUG_ENV_VAR = "LANGGRAPH_RUNSTORE_DEBUG"
# an unreachable server should fail in seconds, not after the driver's default (a minute
# for asyncpg, no bound for libpq)
PG_CONNECT_TIMEOUT = 5.0


class CliError(Exception):
    """A failure reported as one line on stderr with an exit code."""

    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def one_line(exc: BaseException) -> str:
    """The first line of an exception's message (drivers add SQL and hints below it)."""
    text = str(getattr(exc, "orig", None) or exc).strip()
    first = text.splitlines()[0] if text else ""
    return first or type(exc).__name__


# -- opening the database --------------------------------------------------------------------


def database_url(value: str | None) -> str:
    """``--db`` as a URL: a plain path means a SQLite file (``db.urls.as_url``, as the
    library's ``from_url`` reads it); nothing means ``default_url()``."""
    try:
        url = as_url(value or default_url())
    except RunStoreError as exc:
        raise CliError(exc.message, EXIT_USAGE) from None
    return str(url)


def probe_sqlite(path: Path) -> int:
    """The schema version of a SQLite file, read through a read-only connection.

    Read-only on purpose: the engine switches files to WAL when it connects, and a file that
    turns out not to be ours must be left exactly as it was.
    """
    with path.open("rb") as handle:
        header = handle.read(16)
    if header and header != b"SQLite format 3\x00":
        raise CliError(f"{path} is not a SQLite database")
    try:
        conn = sqlite3.connect(read_only_uri(path), uri=True)
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


def check_sqlite_file(database: str, *, for_migrate: bool) -> Path:
    """The file's absolute path, once it is known to hold a usable schema (or may be made)."""
    path = Path(database).resolve()  # name the file, not a path relative to somewhere
    if path.is_dir():
        raise CliError(f"{path} is a directory, not a SQLite database")
    if path.exists():
        check_version(probe_sqlite(path), str(path), for_migrate=for_migrate)
    elif not for_migrate:
        raise CliError(
            f"no database at {path}: run your graph with a SQLRunStore there, "
            f"or create an empty one with `{PROG} migrate`"
        )
    return path


def check_version(version: int, shown: str, *, for_migrate: bool) -> None:
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


READ_COMMANDS = "runs list, runs show, threads show, usage, report, prune --dry-run"


def read_only_refusal(reason: str) -> CliError:
    """The one-line error of a command that writes, on a database it cannot write."""
    ctx = click.get_current_context(silent=True)
    command = f"`{ctx.command_path}`" if ctx is not None else "this command"
    return CliError(
        f"the storage is read-only ({reason}) and {command} writes to the database; "
        f"the read commands still work: {READ_COMMANDS}"
    )


@asynccontextmanager
async def open_store(
    db: str | None, *, for_migrate: bool = False, read_only: bool = False
) -> AsyncIterator[SQLRunStore]:
    """A SQLRunStore on ``db`` whose schema is current; CliError for anything else.

    Nothing is created or migrated here, unless ``for_migrate`` (then a missing SQLite file
    is fine and the caller migrates). With ``read_only``, a SQLite file is read through the
    standard library alone (``SQLRunStore.open_read_only``): the read commands never
    import SQLAlchemy, which costs more than the whole command otherwise. Without it the
    command writes, and a database it cannot write is refused up front ("the storage is
    read-only"), rather than failing half-way or reporting writes that never landed.
    """
    url = database_url(db)
    database = sqlite_file(url) if read_only else None
    if database is not None:
        path = check_sqlite_file(database, for_migrate=False)
        try:
            reader = SQLRunStore.open_read_only(path)
        except sqlite3.Error as exc:
            raise CliError(f"cannot open database {path}: {one_line(exc)}") from None
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
        path = check_sqlite_file(sqlite_path(parsed), for_migrate=for_migrate)
        shown = str(path)
        if not read_only:
            reason = cannot_write(path)
            if parsed.query.get("mode") == "ro" or parsed.query.get("immutable") in ("1", "true"):
                reason = f"the URL opens {path} read-only"
            if reason is not None:
                raise read_only_refusal(reason)
    else:
        engine_kwargs["connect_args"] = connect_timeout_arguments(parsed, PG_CONNECT_TIMEOUT)
    engine = create_engine(parsed, **engine_kwargs)
    try:
        try:
            async with engine.connect() as conn:
                version = await current_version(conn)
                writes_refused = (
                    not read_only
                    and conn.dialect.name == "postgresql"
                    and (await conn.exec_driver_sql("SHOW transaction_read_only")).scalar() == "on"
                )
        except Exception as exc:
            raise CliError(f"cannot open database {shown}: {one_line(exc)}") from None
        if writes_refused:
            raise read_only_refusal(
                f"{shown} accepts no writes (transaction_read_only is on: a standby, or "
                "default_transaction_read_only)"
            )
        check_version(version, shown, for_migrate=for_migrate)
        store = SQLRunStore(engine)
        try:
            yield store
        finally:
            await store.aclose()
    finally:
        await engine.dispose()


#: The shortest run id prefix the commands look up, as git abbreviates to 4 characters.
MIN_PREFIX = 4


async def resolve_run_id(store: SQLRunStore, given: str) -> str:
    """The run id ``given`` names: itself when a run has it, else the one run whose id
    starts with it (git style). CliError for none, or for a prefix several runs share."""
    if await store.get_status(given) is not None:
        return given
    if len(given) < MIN_PREFIX:
        raise CliError(
            f"no run with id {given!r} (a prefix of an id needs at least {MIN_PREFIX} characters)"
        )
    found = await run_ids_with_prefix(store, given, limit=6)
    if len(found) > 1:
        shown = ", ".join(found[:5]) + (", …" if len(found) > 5 else "")
        raise CliError(
            f"run id prefix {given!r} is ambiguous: {shown} start with it; give more of the id"
        )
    return found[0] if found else given  # the command reports an unknown run its own way


# -- output ----------------------------------------------------------------------------------


def make_console(*, stderr: bool = False) -> Console:
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    # piped output keeps whole lines (no terminal to fit); COLUMNS still wins when set
    width = None if stream.isatty() else int(os.environ.get("COLUMNS") or 160)
    return Console(file=stream, width=width, highlight=False, soft_wrap=False)


class Output:
    """Prints rich renderables; piped output loses rich's trailing padding."""

    def __init__(self, *, stderr: bool = False) -> None:
        self.console = make_console(stderr=stderr)

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


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


def status_text(status: str) -> Text:
    from rich.text import Text

    return Text(status, style=f"bold {STATUS_COLORS.get(status, 'white')}")


RUN_HEADERS = (
    "RUN ID", "THREAD", "STATUS", "STOP", "CREATED (UTC)", "DURATION", "TOKENS", "CALLS", "COST",
)  # fmt: skip


def print_runs(out: Output, records: Sequence[RunRecord]) -> None:
    rows: list[list[str | Text]] = [
        [
            r.run_id,
            shorten(r.thread_id, 24),
            status_text(status_label(r)),
            r.stop_reason or "",
            format_time(r.created_at),
            format_duration(r.duration_seconds),
            f"{r.total_tokens:,}",
            str(r.llm_call_count),
            format_cost(r.cost_usd),
            shorten(r.error if r.status.value in ("error", "timeout") else r.last_ai_message, 60),
        ]
        for r in records
    ]
    out.listing(
        [*RUN_HEADERS, "LAST AI MESSAGE / ERROR"],
        rows,
        right=("DURATION", "TOKENS", "CALLS", "COST"),
    )


USAGE_NUMBERS = (
    "RUNS", "SUCCESS", "PAUSED", "ERROR", "TIMEOUT", "INTERRUPTED", "ACTIVE", "ERROR RATE",
    "LLM CALLS", "INPUT", "OUTPUT", "TOTAL TOKENS", "COST", "RUN P50", "RUN P95", "CALL P50",
    "CALL P95",
)  # fmt: skip


def print_usage(out: Output, rows: Sequence[UsageRow], by: str) -> None:
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
                format_cost(row.cost_usd),
                format_ms(row.duration_p50_ms),
                format_ms(row.duration_p95_ms),
                format_ms(row.llm_call_p50_ms),
                format_ms(row.llm_call_p95_ms),
            ]
        )
    out.listing([by.upper(), *USAGE_NUMBERS], lines, right=USAGE_NUMBERS, flexible_last=False)


# -- click plumbing --------------------------------------------------------------------------


def run_async(factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
    return asyncio.run(factory())


def time_option(name: str, help_text: str, **kwargs: Any) -> Callable[[Any], Any]:
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


def check_id_param(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """An id argument or option must be one a run can have (``validate.check_id``)."""
    if value is not None:
        try:
            check_id(value, name=param.name or "id")
        except InvalidInputError as exc:
            raise click.BadParameter(exc.message) from None
    return value


def check_cursor(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is not None:
        try:
            decode_cursor(value)
        except InvalidInputError as exc:
            raise click.BadParameter(exc.message) from None
    return value


def _json_scalar(raw: str) -> Any:
    """A metadata value as typed: JSON when it reads as a JSON scalar (3, true, null,
    "quoted"), else the text itself."""
    try:
        value = json.loads(raw)
    except ValueError:
        return raw
    return value if value is None or isinstance(value, (bool, int, float, str)) else raw


def parse_metadata(
    ctx: click.Context, param: click.Parameter, values: tuple[str, ...]
) -> dict[str, Any] | None:
    """``--metadata KEY=VALUE`` (repeated) as the ``metadata=`` filter."""
    if not values:
        return None
    wanted: dict[str, Any] = {}
    for item in values:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{item!r} is not KEY=VALUE")
        wanted[key] = _json_scalar(raw)
    try:
        check_metadata_filter(wanted)
    except InvalidInputError as exc:
        raise click.BadParameter(exc.message) from None
    return wanted


def filter_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--assistant``, ``--model`` and ``--metadata``: the filters of ``list_runs`` and
    ``aggregate_usage``."""
    options = (
        click.option(
            "--metadata",
            "metadata",
            multiple=True,
            metavar="KEY=VALUE",
            callback=parse_metadata,
            help="Only runs whose metadata has KEY set to VALUE (JSON when it reads as a "
            "number, true, false, null or a quoted string; else text). Repeat to require several.",
        ),
        click.option("--model", "model", metavar="MODEL", help="Only runs of this model."),
        click.option(
            "--assistant",
            "assistant_id",
            metavar="ASSISTANT_ID",
            callback=check_id_param,
            help="Only runs of this assistant.",
        ),
    )
    for option in options:
        command = option(command)
    return command


db_option = click.option(
    "--db",
    "db",
    metavar="URL",
    default=None,
    help="Database URL or SQLite file (default: $LANGGRAPH_RUNSTORE_URL, else ./runstore.db).",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
SINCE_HELP = "Only runs created at or after WHEN: a duration ago (7d, 12h, 30m) or a date/time."
UNTIL_HELP = "Only runs created before WHEN (same forms as --since)."


def resolve_db(ctx: click.Context, db: str | None) -> str | None:
    """The command's own --db, else the one given before the command."""
    return db or (ctx.obj or {}).get("db")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@db_option
@click.version_option(package_name="langgraph-runstore", prog_name=PROG)
@click.pass_context
def cli(ctx: click.Context, db: str | None) -> None:
    """Look at and operate LangGraph runs recorded by langgraph-runstore."""
    ctx.obj = {"db": db}


@cli.group()
def runs() -> None:
    """List, show, cancel and delete runs."""


@cli.group()
def threads() -> None:
    """Show threads."""


__all__ = [
    "DEBUG_ENV_VAR",
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_USAGE",
    "MIN_PREFIX",
    "PG_CONNECT_TIMEOUT",
    "PROG",
    "READ_COMMANDS",
    "RUN_HEADERS",
    "SINCE_HELP",
    "UNTIL_HELP",
    "USAGE_NUMBERS",
    "CliError",
    "Output",
    "T",
    "check_cursor",
    "check_id_param",
    "check_sqlite_file",
    "check_version",
    "cli",
    "database_url",
    "db_option",
    "emit_json",
    "filter_options",
    "json_option",
    "make_console",
    "one_line",
    "open_store",
    "parse_metadata",
    "print_runs",
    "print_usage",
    "probe_sqlite",
    "read_only_refusal",
    "resolve_db",
    "resolve_run_id",
    "run_async",
    "runs",
    "status_text",
    "threads",
    "time_option",
]
