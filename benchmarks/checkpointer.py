"""SQLAlchemySaver against LangGraph's stock savers, same workloads, same process.

Backends: SQLite (ours on aiosqlite vs AsyncSqliteSaver with its stock defaults) and
PostgreSQL (ours on asyncpg and ours on psycopg 3, side by side, vs AsyncPostgresSaver, the
stock saver, which runs on psycopg: the like-for-like anchor for ours on psycopg).
Workloads:

* seq      a 3-node message-appending graph, ainvoke on distinct threads, one at a time
* conc     the same graph, 200 ainvokes on distinct threads at once
* get      aget_tuple of a thread's latest checkpoint, p50 latency
* list     alist of one thread holding 1,000 checkpoints (with pending writes)
* grow     one thread grown to 800 messages by 200 ainvokes; invocations/s and storage size

Every run uses a fresh database; the candidates' runs are interleaved, because this machine
is small and noisy. Prints a table (min and median over the runs) and one ratio line per goal.
Usage: benchmarks/checkpointer.py [--runs N] [--quick] [--only sqlite|postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Annotated, Any, TypedDict

import asyncpg
from langchain_core.messages import AIMessage, AnyMessage, HumanMessage
from langgraph.checkpoint.base import BaseCheckpointSaver, empty_checkpoint
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import Measure, pg_url, ratio_line, table

from langgraph_runstore.checkpoint import SQLAlchemySaver

OURS = "SQLAlchemySaver"
OURS_PSYCOPG = "SQLAlchemySaver (psycopg)"
OURS_ASYNCPG = "SQLAlchemySaver (asyncpg)"
Saver = BaseCheckpointSaver[Any]
Opener = Callable[[], AbstractAsyncContextManager[Saver]]


class State(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]


def _node(name: str) -> Any:
    def run(state: State) -> dict[str, Any]:
        return {"messages": [AIMessage(content=f"{name} read {len(state['messages'])} messages")]}

    return run


def _graph(saver: Saver) -> Any:
    builder = StateGraph(State)
    for name in ("plan", "act", "report"):
        builder.add_node(name, _node(name))
    builder.add_edge(START, "plan")
    builder.add_edge("plan", "act")
    builder.add_edge("act", "report")
    builder.add_edge("report", END)
    return builder.compile(checkpointer=saver)


def _inp(i: int) -> dict[str, Any]:
    return {"messages": [HumanMessage(content=f"request number {i}, please handle it")]}


def _cfg(thread_id: str) -> Any:
    return {"configurable": {"thread_id": thread_id}}


# --- databases: a fresh one per run ---------------------------------------------------------


class Backend:
    """Opens fresh databases for one backend and measures their size."""

    name: str
    stock: str
    #: our savers on this backend (one per driver)
    ours: tuple[str, ...]

    def fresh(self) -> AbstractAsyncContextManager[dict[str, str]]:
        raise NotImplementedError

    async def size(self, db: dict[str, str], candidate: str) -> int:
        raise NotImplementedError

    def opener(self, candidate: str, db: dict[str, str]) -> Opener:
        raise NotImplementedError


def _remove_sqlite_files(path: str) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def _sqlite_size(path: str) -> int:
    conn = sqlite3.connect(path)
    try:  # fold the WAL into the file so both sides are measured the same way
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    return os.path.getsize(path)


class SqliteBackend(Backend):
    name = "sqlite"
    stock = "AsyncSqliteSaver"
    ours = (OURS,)

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="cp-bench-"))

    @asynccontextmanager
    async def fresh(self) -> AsyncIterator[dict[str, str]]:
        path = self.root / f"{uuid.uuid4().hex}.db"
        try:
            yield {"path": str(path)}
        finally:
            _remove_sqlite_files(str(path))

    async def size(self, db: dict[str, str], candidate: str) -> int:
        return _sqlite_size(db["path"])

    def opener(self, candidate: str, db: dict[str, str]) -> Opener:
        path = db["path"]
        if candidate == OURS:
            return lambda: SQLAlchemySaver.from_url(f"sqlite+aiosqlite:///{path}")

        @asynccontextmanager
        async def stock() -> AsyncIterator[Saver]:
            async with AsyncSqliteSaver.from_conn_string(path) as saver:
                await saver.setup()
                yield saver

        return stock


class PostgresBackend(Backend):
    name = "postgres"
    stock = "AsyncPostgresSaver"
    ours = (OURS_ASYNCPG, OURS_PSYCOPG)

    def __init__(self, url: str) -> None:
        self.url = url.replace("postgresql+asyncpg://", "postgresql://")
        self.base = self.url.rsplit("/", 1)[0]

    async def _admin(self, sql: str) -> None:
        conn = await asyncpg.connect(self.url)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    @asynccontextmanager
    async def fresh(self) -> AsyncIterator[dict[str, str]]:
        name = f"cp_bench_{uuid.uuid4().hex[:12]}"
        await self._admin(f'CREATE DATABASE "{name}"')
        try:
            yield {"url": f"{self.base}/{name}"}
        finally:
            await self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    async def size(self, db: dict[str, str], candidate: str) -> int:
        tables = (
            ["rs_checkpoints", "rs_checkpoint_blobs", "rs_checkpoint_writes"]
            if candidate in self.ours
            else ["checkpoints", "checkpoint_blobs", "checkpoint_writes"]
        )
        conn = await asyncpg.connect(db["url"])
        try:
            await conn.execute("CHECKPOINT")
            total = await conn.fetchval(
                "SELECT SUM(pg_total_relation_size(t::regclass)) FROM unnest($1::text[]) AS t",
                tables,
            )
        finally:
            await conn.close()
        return int(total)

    def opener(self, candidate: str, db: dict[str, str]) -> Opener:
        url = db["url"]
        if candidate in self.ours:
            driver = "psycopg" if candidate == OURS_PSYCOPG else "asyncpg"
            return lambda: SQLAlchemySaver.from_url(
                url.replace("postgresql://", f"postgresql+{driver}://")
            )

        @asynccontextmanager
        async def stock() -> AsyncIterator[Saver]:
            async with AsyncPostgresSaver.from_conn_string(url) as saver:
                await saver.setup()
                yield saver

        return stock


# --- workloads: each returns {metric: value} for one run ------------------------------------


async def seq(saver: Saver, n: int) -> dict[str, float]:
    graph = _graph(saver)
    for i in range(10):  # warm caches and prepared statements
        await graph.ainvoke(_inp(i), _cfg(f"warm-{i}"))
    start = time.perf_counter()
    for i in range(n):
        await graph.ainvoke(_inp(i), _cfg(f"seq-{i}"))
    return {"inv/s": n / (time.perf_counter() - start)}


async def conc(saver: Saver, n: int) -> dict[str, float]:
    graph = _graph(saver)
    await asyncio.gather(*(graph.ainvoke(_inp(i), _cfg(f"warm-{i}")) for i in range(20)))
    start = time.perf_counter()
    await asyncio.gather(*(graph.ainvoke(_inp(i), _cfg(f"conc-{i}")) for i in range(n)))
    return {"inv/s": n / (time.perf_counter() - start)}


async def get(saver: Saver, n: int) -> dict[str, float]:
    graph = _graph(saver)
    for i in range(3):  # a thread with 12 messages and pending writes history
        await graph.ainvoke(_inp(i), _cfg("get"))
    config = _cfg("get")
    for _ in range(50):
        await saver.aget_tuple(config)
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        await saver.aget_tuple(config)
        samples.append(time.perf_counter() - t0)
    return {"p50 us": statistics.median(samples) * 1e6}


async def listing(saver: Saver, n: int) -> dict[str, float]:
    thread = "list"
    parent: str | None = None
    for i in range(n):
        cp = empty_checkpoint()
        step = saver.get_next_version(None if i == 0 else f"{i:032}.0", None)
        cp["channel_values"] = {"step": i, "note": f"note {i}", "tags": ["a", "b", str(i)]}
        cp["channel_versions"] = {"step": step, "note": step, "tags": step}
        conf: Any = {"configurable": {"thread_id": thread, "checkpoint_ns": ""}}
        if parent:
            conf["configurable"]["checkpoint_id"] = parent
        stored = await saver.aput(
            conf, cp, {"source": "loop", "step": i, "parents": {}}, {"step": step, "note": step}
        )
        parent = stored["configurable"]["checkpoint_id"]
        await saver.aput_writes(stored, [("step", i + 1)], f"task-{i}")
    config = _cfg(thread)
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        found = [t async for t in saver.alist(config)]
        best = min(best, time.perf_counter() - t0)
        assert len(found) == n, len(found)
    return {"ms": best * 1e3}


async def grow(saver: Saver, n: int) -> dict[str, float]:
    graph = _graph(saver)
    start = time.perf_counter()
    for i in range(n):
        await graph.ainvoke(_inp(i), _cfg("grow"))
    elapsed = time.perf_counter() - start
    state = await graph.aget_state(_cfg("grow"))
    assert len(state.values["messages"]) == 4 * n
    return {"inv/s": n / elapsed}


WORKLOADS: dict[str, tuple[Callable[[Saver, int], Awaitable[dict[str, float]]], int, int]] = {
    # name: (function, size, size with --quick)
    "seq": (seq, 300, 100),
    "conc": (conc, 200, 200),
    "get": (get, 1000, 300),
    "list": (listing, 1000, 1000),
    "grow": (grow, 200, 50),
}
HIGHER_IS_BETTER = {"inv/s": True, "p50 us": False, "ms": False, "MiB": False}


async def run_backend(
    backend: Backend, runs: int, quick: bool
) -> dict[tuple[str, str, str], Measure]:
    candidates = [*backend.ours, backend.stock]
    results: dict[tuple[str, str, str], list[float]] = {}
    for workload, (fn, size, quick_size) in WORKLOADS.items():
        n = quick_size if quick else size
        for run in range(runs):
            # rotate who goes first, so drift on the machine hits every side alike
            shift = run % len(candidates)
            for candidate in candidates[shift:] + candidates[:shift]:
                async with backend.fresh() as db:
                    async with backend.opener(candidate, db)() as saver:
                        gc.collect()
                        metrics = await fn(saver, n)
                    if workload == "grow":
                        metrics["MiB"] = await backend.size(db, candidate) / 2**20
                for metric, value in metrics.items():
                    results.setdefault((workload, metric, candidate), []).append(value)
    return {key: Measure(tuple(values)) for key, values in results.items()}


GOALS = [
    # (workload, metric, goal text, threshold)
    ("seq", "inv/s", ">= 1.5x", 1.5),
    ("conc", "inv/s", None, None),  # per backend, below
    ("get", "p50 us", "<= 0.6x", 0.6),
    ("list", "ms", "<= 0.5x", 0.5),
    ("grow", "inv/s", ">= 1.5x", 1.5),
    ("grow", "MiB", "<= 0.5x", 0.5),
]


def report(backend: Backend, measures: dict[tuple[str, str, str], Measure]) -> list[str]:
    stock = backend.stock
    rows = []
    for (workload, metric, candidate), m in sorted(measures.items()):
        rows.append(
            [
                backend.name,
                workload,
                metric,
                candidate,
                f"{m.min:.2f}",
                f"{m.median:.2f}",
                f"{m.max:.2f}",
            ]
        )
    print(table(["backend", "workload", "metric", "saver", "min", "median", "max"], rows))
    lines = []
    for ours in backend.ours:
        for workload, metric, goal, _ in GOALS:
            if workload == "conc":
                goal = ">= 2x" if backend.name == "postgres" else ">= 1.5x"
            lines.append(
                ratio_line(
                    f"{backend.name} {workload} {metric} {ours} vs {stock}",
                    measures[(workload, metric, ours)],
                    measures[(workload, metric, stock)],
                    goal=goal or "",
                    higher_is_better=HIGHER_IS_BETTER[metric],
                )
            )
    return lines


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="smaller workloads")
    parser.add_argument("--only", choices=["sqlite", "postgres"])
    args = parser.parse_args()
    backends: list[Backend] = []
    if args.only in (None, "sqlite"):
        backends.append(SqliteBackend())
    if args.only in (None, "postgres"):
        url = pg_url()
        if url is None:
            print("no PostgreSQL server (scripts/pg.sh start); skipping PostgreSQL")
        else:
            backends.append(PostgresBackend(url))
    lines: list[str] = []
    for backend in backends:
        measures = await run_backend(backend, args.runs, args.quick)
        lines += report(backend, measures)
        print()
    for line in lines:
        print(line)


if __name__ == "__main__":
    asyncio.run(main())
