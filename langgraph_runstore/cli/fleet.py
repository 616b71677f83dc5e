"""``langgraph-runstore workers list``: the fleet of workers sharing the database, live or
stale, with the runs each holds."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import click

from langgraph_runstore.cli.base import (
    CliError,
    Output,
    cli,
    db_option,
    emit_json,
    json_option,
    open_store,
    resolve_db,
    run_async,
)
from langgraph_runstore.schemas import now_iso


@cli.group()
def workers() -> None:
    """The workers that share this database (the fleet)."""


def worker_state(worker: dict[str, Any], now: str) -> str:
    """``live`` while the worker's last heartbeat is within its lease, else ``stale``."""
    beat = datetime.fromisoformat(str(worker["heartbeat_at"]))
    alive_until = beat + timedelta(seconds=float(worker["lease_seconds"]))
    return "live" if alive_until > datetime.fromisoformat(now) else "stale"


@workers.command("list")
@json_option
@db_option
@click.pass_context
def workers_list(ctx: click.Context, as_json: bool, db: str | None) -> None:
    """Every worker of the fleet: live (heartbeat within its lease) or stale, with the
    assistants it serves and how many pending or running runs it holds."""

    async def go() -> list[dict[str, Any]]:
        async with open_store(resolve_db(ctx, db)) as store:
            try:
                return await store.list_workers()
            except NotImplementedError:
                raise CliError("this store keeps no fleet table") from None

    fleet = run_async(go)
    now = now_iso()
    for worker in fleet:
        worker["state"] = worker_state(worker, now)
    if as_json:
        emit_json({"workers": fleet})
        return
    if not fleet:
        click.echo("no workers have registered in this database")
        return
    from rich.text import Text

    rows: list[list[str | Text]] = [
        [
            Text(w["state"], style="green" if w["state"] == "live" else "yellow"),
            str(w["worker_id"]),
            str(w["host"]),
            str(w["pid"]),
            str(w["held"]),
            str(w["heartbeat_at"]),
            ", ".join(w["assistants"]) or "-",
        ]
        for w in fleet
    ]
    Output().listing(
        ["state", "worker", "host", "pid", "runs", "heartbeat", "assistants"],
        rows,
        right=["pid", "runs"],
    )


__all__ = ["worker_state", "workers", "workers_list"]
