"""Running the real ``langgraph-runstore`` console script, and databases to run it on."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from langgraph_runstore import RunManager, SQLRunStore
from langgraph_runstore.db import create_engine
from langgraph_runstore.store.sql import Statement
from tests.backends import libpq_url, with_driver
from tests.graphs import listed_model, reply, two_model_graph

SCRIPT = Path(sys.executable).parent / "langgraph-runstore"


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str

    @property
    def error_line(self) -> str:
        """The one line a failing command prints on stderr (asserts there is exactly one)."""
        lines = [line for line in self.err.splitlines() if line.strip()]
        assert "Traceback" not in self.err, self.err
        assert len(lines) == 1, f"expected one line on stderr, got:\n{self.err}"
        return lines[0]


def run_cli(
    *args: str, env: dict[str, str] | None = None, input: str | None = None, cwd: Path | None = None
) -> Result:
    """Run the installed console script in a fresh process, as a user would."""
    base = {k: v for k, v in os.environ.items() if k != "LANGGRAPH_RUNSTORE_URL"}
    base.update(COLUMNS="200", NO_COLOR="1")
    base.update(env or {})
    done = subprocess.run(
        [str(SCRIPT), *args],
        capture_output=True,
        text=True,
        input=input if input is not None else "",
        env=base,
        cwd=cwd,
        timeout=120,
    )
    return Result(done.returncode, done.stdout, done.stderr)


def run_many(calls: dict[str, tuple[Any, ...]], workers: int = 4) -> dict[str, Result]:
    """Independent invocations side by side: each process spends most of its time importing."""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {
            name: pool.submit(run_cli, *args)
            if not isinstance(args[-1], dict)
            else pool.submit(run_cli, *args[:-1], **args[-1])
            for name, args in calls.items()
        }
        return {name: future.result() for name, future in futures.items()}


@dataclass(frozen=True)
class Seeded:
    url: str
    graph_runs: tuple[str, str]  # two recent runs of thread t-graph, with checkpoints
    old_graph_run: str  # 45 days old, thread t-old-1, with checkpoints
    older_graph_run: str  # 20 days old, thread t-old-2, with checkpoints


def ago(days: float) -> str:
    return (datetime.now(timezone.utc) - timedelta(days=days)).isoformat()


async def _backdate(store: SQLRunStore, run_id: str, created_at: str) -> None:
    row = await store.get(run_id)
    assert row is not None
    row.pop("seq")
    await store.put(**{**row, "created_at": created_at})


async def _seed(url: str) -> Seeded:
    async with SQLRunStore.from_url(url) as store:
        manager = RunManager(store=store)
        answers = [
            reply(f"answer {i}", "model-a", input_tokens=20, output_tokens=7) for i in range(8)
        ]
        checks = [
            reply(f"checked {i}", "model-b", input_tokens=30, output_tokens=3) for i in range(8)
        ]
        graph = two_model_graph(listed_model(*answers), listed_model(*checks)).compile(
            checkpointer=store.checkpointer
        )
        runs = []
        for thread in ("t-graph", "t-graph", "t-old-1", "t-old-2"):
            run = await manager.wait(
                graph, {"messages": [("user", "hi")]}, thread_id=thread, user_id="u1"
            )
            assert run.status.value == "success", run.error
            runs.append(run.run_id)
        await manager.aclose()
        await _backdate(store, runs[2], ago(45))
        await _backdate(store, runs[3], ago(20))
        put = store.put
        await put(
            "r-error",
            thread_id="t-err",
            user_id="u2",
            status="error",
            created_at=ago(1),
            started_at=ago(1),
            ended_at=ago(0.99),
            error="ValueError: the tool said no",
            input_tokens=50,
            output_tokens=5,
            total_tokens=55,
            llm_call_count=2,
            token_usage_by_model={
                "model-c": {"input_tokens": 50, "output_tokens": 5, "total_tokens": 55}
            },
        )
        await put(
            "r-timeout",
            thread_id="t-err",
            user_id="u2",
            status="timeout",
            created_at=ago(2),
            error="TimeoutError: run exceeded 30 s",
            stop_reason="timeout",
        )
        await put("r-pending", thread_id="t-live-1", status="pending", created_at=ago(0.01))
        await put(
            "r-running",
            thread_id="t-live-2",
            status="running",
            created_at=ago(0.01),
            started_at=ago(0.01),
        )
        await put(
            "r-hitl",
            thread_id="t-hitl",
            status="success",
            stop_reason="interrupt",
            created_at=ago(0.5),
            last_ai_message="May I send the e-mail?",
            interrupts=[
                {"id": "0f" * 16, "value": {"question": "Send it?"}, "ns": ["approve:7"]},
            ],
        )
        for i in range(3):
            await put(f"r-old-{i}", thread_id="t-archive", status="success", created_at=ago(60 + i))
        await put("r-old-running", thread_id="t-old-run", status="running", created_at=ago(60))
        await put("r-old-pending", thread_id="t-old-pend", status="pending", created_at=ago(60))
    return Seeded(url, (runs[1], runs[0]), runs[2], runs[3])


def seed(url: str) -> Seeded:
    return asyncio.run(_seed(url))


async def _query(url: str, sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    # no setup(): reading must not migrate (some of these databases must stay as they are)
    engine = create_engine(url)
    store = SQLRunStore(engine)
    try:
        return await store.driver.fetch(Statement.of(sql), params)
    finally:
        await store.aclose()
        await engine.dispose()


def query(url: str, sql: str, **params: Any) -> list[dict[str, Any]]:
    """Rows straight from the database (``:name`` parameters)."""
    return asyncio.run(_query(url, sql, params))


def row(url: str, run_id: str) -> dict[str, Any] | None:
    found = query(url, "SELECT status, stop_reason, error FROM runs WHERE run_id = :r", r=run_id)
    return found[0] if found else None


def checkpoints_of(url: str, run_id: str) -> int:
    found = query(url, "SELECT COUNT(*) AS n FROM rs_checkpoints WHERE run_id = :r", r=run_id)
    return int(found[0]["n"])


def sqlite_snapshot(path: Path) -> str:
    """Everything in a SQLite file, as SQL text (what "unchanged" means)."""
    conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
    try:
        return "\n".join(conn.iterdump())
    finally:
        conn.close()


def pg_snapshot(url: str) -> list[Any]:
    return [
        query(url, "SELECT * FROM runs ORDER BY run_id"),
        query(url, "SELECT version FROM runstore_schema_version ORDER BY version"),
        query(url, "SELECT COUNT(*) AS n FROM rs_checkpoints"),
    ]


def pg_base() -> str | None:
    return os.environ.get("RUNSTORE_TEST_PG_URL")


@contextmanager
def pg_database(driver: str = "asyncpg") -> Iterator[str]:
    """A fresh PostgreSQL database for a module, dropped afterwards, its URL on ``driver``."""
    import psycopg

    base = pg_base()
    assert base is not None
    raw = libpq_url(base)
    name = f"cli_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(raw, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield with_driver(base.rsplit("/", 1)[0] + f"/{name}", driver)
    finally:
        with psycopg.connect(raw, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
