"""What reading the run event journal costs: the first page of a long run's events, and how
soon a follower in another process hears of a new event.

* first page  ``manager.events(run_id)`` on a run of 10,000 events in a SQLite file: the
              time to the first event (the run's lookup and one page of 500 read), and to
              the end of that page; and the same read straight from the store
* follow lag  PostgreSQL: a writer store appends one event at a time; a follower on a store
              of its own (so only NOTIFY can wake it) sees each one; the lag is from the
              moment the writer sends the event (its write included) to the follower holding it

The journal's cost on a tracked run is measured side by side in ``benchmarks/tracking.py``
(track with the journal at its default level, off, and at "all").
Usage: benchmarks/journal.py [--runs N]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import Measure, pg_url, table

from langgraph_runstore import RunManager, SQLRunStore
from langgraph_runstore.schemas import now_iso

EVENTS = 10_000
PAGE = 500


async def first_page(runs: int) -> dict[str, Measure]:
    with tempfile.TemporaryDirectory(prefix="journal-bench-") as tmp:
        url = f"sqlite+aiosqlite:///{Path(tmp) / 'journal.db'}"
        async with SQLRunStore.from_url(url) as store, RunManager(store) as manager:
            # a few runs beside it, so the key is not the only one in the table
            for other in range(20):
                await store.put(f"other-{other}", thread_id="t", status="success")
                await store.append_events(
                    f"other-{other}", [(s, now_iso(), "progress", {"n": s}) for s in range(1, 501)]
                )
            await store.put("long", thread_id="t", status="success")
            stamp = now_iso()
            for start in range(1, EVENTS + 1, 1000):
                batch = [
                    (seq, stamp, "node_ended", {"node": "work", "ns": f"work:{seq}", "ms": 1.5})
                    for seq in range(start, start + 1000)
                ]
                await store.append_events("long", batch)
            first, page, raw = [], [], []
            for _ in range(runs):
                started = time.perf_counter()
                count = 0
                async for _event in manager.events("long", follow=False):
                    count += 1
                    if count == 1:
                        first.append((time.perf_counter() - started) * 1000)
                    if count == PAGE:
                        page.append((time.perf_counter() - started) * 1000)
                        break
                started = time.perf_counter()
                rows = await store.read_events("long", limit=PAGE)
                raw.append((time.perf_counter() - started) * 1000)
                assert len(rows) == PAGE
    return {
        "events(): first event": Measure(tuple(first)),
        "events(): first page (500)": Measure(tuple(page)),
        "store.read_events: first page": Measure(tuple(raw)),
    }


async def follow_lag(server: str, events: int) -> Measure:
    import asyncpg

    admin = await asyncpg.connect(server.replace("postgresql+asyncpg://", "postgresql://"))
    name = "runstore_bench_journal"
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        url = server.rsplit("/", 1)[0] + f"/{name}"
        async with SQLRunStore.from_url(url) as writer, SQLRunStore.from_url(url) as reader:
            await writer.put("r", thread_id="t", status="running")
            arrived: asyncio.Queue[float] = asyncio.Queue()

            async def follow() -> None:
                async with RunManager(reader) as manager:
                    async for _ in manager.events("r", poll_interval=60):
                        arrived.put_nowait(time.perf_counter())

            follower = asyncio.ensure_future(follow())
            lags = []
            for seq in range(1, events + 1):
                kind = "run_ended" if seq == events else "progress"
                sent = time.perf_counter()
                await writer.append_events("r", [(seq, now_iso(), kind, {"n": seq})])
                lags.append((await asyncio.wait_for(arrived.get(), 5) - sent) * 1000)
                await asyncio.sleep(0.005)
            await follower
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
    return Measure(tuple(lags[1:]))  # the first may be read before LISTEN is up


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=20, help="repeats of the page read")
    args = parser.parse_args()
    pages = await first_page(max(3, args.runs))
    rows = [[name, f"{m.min:.2f}", f"{m.median:.2f}", f"{m.max:.2f}"] for name, m in pages.items()]
    server = pg_url()
    lag = await follow_lag(server, 200) if server else None
    if lag is not None:
        p90 = statistics.quantiles(lag.values, n=10)[-1]
        rows.append(
            [
                "postgres follow lag (NOTIFY)",
                f"{lag.min:.2f}",
                f"{lag.median:.2f}",
                f"{p90:.2f} (p90)",
            ]
        )
    print(f"ms; {EVENTS:,}-event run on SQLite, pages of {PAGE}; {args.runs} repeats")
    print(table(["measure", "min", "median", "max"], rows))
    print()
    first = pages["events(): first page (500)"]
    verdict = "met" if first.median < 20 else "MISSED"
    print(
        f"sqlite events() first page of a {EVENTS:,}-event run: {first.min:.2f} ms min, "
        f"{first.median:.2f} ms median (goal < 20 ms): {verdict}"
    )
    if lag is None:
        print("postgres: follow lag skipped (no server; run scripts/pg.sh start)")
    else:
        worst = max(lag.values)
        print(
            f"postgres follower sees a new event {lag.median:.2f} ms median, {worst:.2f} ms "
            f"worst after it was written (goal < 100 ms): {'met' if worst < 100 else 'MISSED'}"
        )


if __name__ == "__main__":
    asyncio.run(main())
