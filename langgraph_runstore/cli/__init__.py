"""``langgraph-runstore``: look at and operate the runs in a database from a terminal.

The database is ``--db URL`` (a URL or a SQLite file path), else ``$LANGGRAPH_RUNSTORE_URL``,
else ``./runstore.db``, the file the quickstart writes. Only ``migrate`` creates or migrates a
database; every other command refuses a missing, foreign or out-of-date one and changes
nothing. Exit codes: 0 ok, 1 not found or failed, 2 usage error. Errors are one line on
stderr (set ``LANGGRAPH_RUNSTORE_DEBUG=1`` for the traceback).
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence

import click

# the command modules attach their commands to the groups of cli.base when imported
from langgraph_runstore.cli import fleet, operate, runs, ui
from langgraph_runstore.cli.base import (
    DEBUG_ENV_VAR,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    PROG,
    CliError,
    cli,
    one_line,
)
from langgraph_runstore.cli.operate import thread_status
from langgraph_runstore.errors import InvalidInputError, RunStoreError

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
        click.echo(f"error: {type(exc).__name__}: {one_line(exc)}", err=True)
        return EXIT_FAILED
    return int(result) if isinstance(result, int) else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["cli", "fleet", "main", "operate", "runs", "thread_status", "ui"]
