"""Run-store throughput against the raw driver, and list_by_thread latency as the table grows.

For SQLite (aiosqlite) and PostgreSQL on each driver (asyncpg and psycopg 3, side by side)
it times create -> running -> completion cycles through RunManager + SQLRunStore, next to
the same driver issuing the same three statements by hand (the floor), and list_by_thread on
a thread of 50 runs when the table holds 1k and 100k runs. Prints a table and one summary
line per goal, and how the two PostgreSQL drivers compare.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import time
import uuid
from pathlib import Path

import aiosqlite
import asyncpg
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import Measure, pg_url, ratio_line, repeat, table

from langgraph_runstore import RunManager, RunStatus, SQLRunStore
from langgraph_runstore.schemas import JSON_FIELDS, ROW_FIELDS, RunRecord, now_iso

CYCLES = 300
RUNS = 5
USAGE = {
    "input_tokens": 120,
    "output_tokens": 30,
    "total_tokens": 150,
    "llm_call_count": 2,
    "last_ai_message": "All done.",
    "token_usage_by_model": {"m": {"input_tokens": 120, "output_tokens": 30, "total_tokens": 150}},
}

_COLS = ", ".join(ROW_FIELDS)
_COMPLETION_COLS = sorted([*USAGE, "ended_at", "started_at"])


def _raw_sql(dialect: str) -> tuple[str, str, str]:
    def p(i: int) -> str:
        return "?" if dialect == "sqlite" else f"${i}"

    insert = (
        f"INSERT INTO runs ({_COLS}) VALUES ({', '.join(p(i + 1) for i in range(len(ROW_FIELDS)))})"
    )
    running = (
        f"UPDATE runs SET status = {p(1)}, updated_at = {p(2)}, "
        f"started_at = COALESCE(started_at, {p(3)}) "
        f"WHERE run_id = {p(4)} AND (status IS NULL OR status = {p(5)} OR status IN ('pending'))"
    )
    sets = ", ".join(f"{c} = {p(i + 3)}" for i, c in enumerate(_COMPLETION_COLS))
    n = len(_COMPLETION_COLS) + 3
    done = (
        f"UPDATE runs SET status = {p(1)}, updated_at = {p(2)}, {sets} "
        f"WHERE run_id = {p(n)} AND (status IS NULL OR status = {p(n + 1)} "
        "OR status IN ('pending', 'running'))"
    )
    return insert, running, done


def _row_values() -> list[object]:
    record = RunRecord(run_id=str(uuid.uuid4()), thread_id=str(uuid.uuid4()), created_at=now_iso())
    record.updated_at = record.created_at
    row = record.to_row()
    for name in JSON_FIELDS:  # metadata, kwargs, token_usage_by_model, interrupts
        row[name] = json.dumps(row[name])
    row["shared_queue"] = int(row["shared_queue"])  # an integer column, as the store sends it
    return [row[name] for name in ROW_FIELDS]


def _completion_values(run_id: str) -> list[object]:
    now = now_iso()
    values = {**USAGE, "ended_at": now, "started_at": now}
    values["token_usage_by_model"] = json.dumps(values["token_usage_by_model"])
    return ["success", now, *(values[c] for c in _COMPLETION_COLS), run_id, "success"]


async def manager_cycles(manager: RunManager) -> float:
    start = time.perf_counter()
    for _ in range(CYCLES):
        run = await manager.create(str(uuid.uuid4()))
        await manager.set_status(run.run_id, RunStatus.running)
        await manager.update_run_completion(run.run_id, status="success", **USAGE)
    return CYCLES / (time.perf_counter() - start)


async def raw_sqlite_cycles(db: aiosqlite.Connection) -> float:
    insert, running, done = _raw_sql("sqlite")
    start = time.perf_counter()
    for _ in range(CYCLES):
        values = _row_values()
        run_id = values[0]
        await db.execute(insert, values)
        now = now_iso()
        await db.execute(running, ("running", now, now, run_id, "running"))
        await db.execute(done, _completion_values(str(run_id)))
    return CYCLES / (time.perf_counter() - start)


async def raw_pg_cycles(conn: asyncpg.Connection) -> float:
    insert, running, done = _raw_sql("postgresql")
    start = time.perf_counter()
    for _ in range(CYCLES):
        values = _row_values()
        run_id = values[0]
        await conn.execute(insert, *values)
        now = now_iso()
        await conn.execute(running, "running", now, now, run_id, "running")
        await conn.execute(done, *_completion_values(str(run_id)))
    return CYCLES / (time.perf_counter() - start)


async def raw_psycopg_cycles(conn: psycopg.AsyncConnection[object]) -> float:
    # the same $n statements through psycopg's raw cursor, in autocommit, as the store sends
    insert, running, done = _raw_sql("postgresql")
    cursor = psycopg.AsyncRawCursor(conn)
    start = time.perf_counter()
    for _ in range(CYCLES):
        values = _row_values()
        run_id = values[0]
        await cursor.execute(insert, values)
        now = now_iso()
        await cursor.execute(running, ("running", now, now, run_id, "running"))
        await cursor.execute(done, _completion_values(str(run_id)))
    return CYCLES / (time.perf_counter() - start)


async def fill(store: SQLRunStore, total: int) -> None:
    """Grow the table to ``total`` runs: 50 on the probed thread, the rest spread out."""
    async with store.engine.begin() as conn:
        have = (await conn.exec_driver_sql("SELECT COUNT(*) FROM runs")).scalar() or 0
    rows = []
    for i in range(int(have), total):
        record = RunRecord(
            run_id=f"fill-{i}",
            thread_id="probe" if i < 50 else f"thread-{i % 5000}",
            created_at=now_iso(),
            status=RunStatus.success,
        )
        row = record.to_row()
        for name in JSON_FIELDS:
            row[name] = json.dumps(row[name])
        row["updated_at"] = row["created_at"]
        row["shared_queue"] = int(row["shared_queue"])
        rows.append(row)
    from sqlalchemy import text

    stmt = text(f"INSERT INTO runs ({_COLS}) VALUES ({', '.join(':' + c for c in ROW_FIELDS)})")
    for chunk in range(0, len(rows), 5000):
        async with store.engine.begin() as conn:
            await conn.execute(stmt, rows[chunk : chunk + 5000])


async def list_latency(store: SQLRunStore) -> float:
    samples = []
    for _ in range(200):
        start = time.perf_counter()
        rows = await store.list_by_thread("probe", limit=20)
        samples.append(time.perf_counter() - start)
        assert len(rows) == 20
    samples.sort()
    return samples[len(samples) // 2] * 1000  # p50 in ms


async def bench_backend(name: str, url: str, results: list[list[str]], lines: list[str]) -> Measure:
    async with SQLRunStore.from_url(url) as store:
        manager = RunManager(store=store, retain_finished_for=0)
        if name == "sqlite":
            # autocommit, as the store runs: the floor is the driver at its fastest
            raw = await aiosqlite.connect(url.split("///", 1)[1], isolation_level=None)
            await raw.execute("PRAGMA busy_timeout = 5000")
            await raw.execute("PRAGMA journal_mode = WAL")
            await raw.execute("PRAGMA synchronous = NORMAL")

            async def floor() -> float:
                return await raw_sqlite_cycles(raw)
        elif store.engine.dialect.driver == "psycopg":
            raw = await psycopg.AsyncConnection.connect(
                url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True
            )

            async def floor() -> float:
                return await raw_psycopg_cycles(raw)
        else:
            raw = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))

            async def floor() -> float:
                return await raw_pg_cycles(raw)

        await manager_cycles(manager)  # warm-up: pool, statement caches
        await floor()
        ours_values, raw_values = [], []
        for _ in range(RUNS):  # interleaved, so machine noise hits both alike
            ours_values.append(await manager_cycles(manager))
            raw_values.append(await floor())
        ours, theirs = Measure(tuple(ours_values)), Measure(tuple(raw_values))
        await raw.close()
        results.append(
            [name, "RunManager+SQLRunStore cycles/s", f"{ours.max:.0f}", f"{ours.median:.0f}"]
        )
        results.append(
            [name, "raw driver cycles/s (floor)", f"{theirs.max:.0f}", f"{theirs.median:.0f}"]
        )
        lines.append(
            ratio_line(
                f"{name} cycles vs raw driver", ours, theirs, goal=">= 0.6x", higher_is_better=True
            )
        )

        async with store.engine.begin() as conn:
            await conn.exec_driver_sql("DELETE FROM runs")
        latencies = {}
        for total in (1_000, 100_000):
            await fill(store, total)
            latencies[total] = await repeat(3, lambda: list_latency(store))
            m = latencies[total]
            results.append(
                [
                    name,
                    f"list_by_thread p50 ms @ {total // 1000}k runs",
                    f"{m.min:.3f}",
                    f"{m.median:.3f}",
                ]
            )
        growth = latencies[100_000].median / latencies[1_000].median
        lines.append(f"{name} list_by_thread 100k/1k latency: {growth:.2f}x (goal <= 2x)")
    return ours


async def main() -> None:
    results: list[list[str]] = []
    lines: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        await bench_backend("sqlite", f"sqlite+aiosqlite:///{tmp}/bench.db", results, lines)
    url = pg_url()
    if url:
        by_driver = {}
        for driver in ("asyncpg", "psycopg"):

            async def bench(u: str, driver: str = driver) -> None:
                u = u.replace("postgresql+asyncpg://", f"postgresql+{driver}://")
                by_driver[driver] = await bench_backend(f"postgres ({driver})", u, results, lines)

            await _with_fresh_pg_db(url, bench)
        lines.append(
            ratio_line(
                "postgres cycles, ours on psycopg vs ours on asyncpg",
                by_driver["psycopg"],
                by_driver["asyncpg"],
                goal="side by side",
                higher_is_better=True,
            )
        )
    else:
        lines.append("postgres: skipped (no server; run scripts/pg.sh start)")
    print(table(["backend", "measure", "best", "median"], results))
    print()
    for line in lines:
        print(line)


async def _with_fresh_pg_db(url: str, body) -> None:  # type: ignore[no-untyped-def]
    raw = url.replace("postgresql+asyncpg://", "postgresql://")
    admin = await asyncpg.connect(raw)
    name = "runstore_bench_store"
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        await body(url.rsplit("/", 1)[0] + f"/{name}")
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


if __name__ == "__main__":
    asyncio.run(main())
