"""``runs list`` over 100k runs on SQLite: the API call and the whole CLI process.

Goal (issue 6): under 200 ms. Printed side by side: the query API for the usual listings
(newest, one status, one thread, one user, a deep page by cursor) against the same page by
OFFSET, and the ``langgraph-runstore runs list`` process against a bare
``python -c "import langgraph_runstore"``, which is the floor any console script of the
package pays before it runs a line of its own.
"""

from __future__ import annotations

import asyncio
import json
import random
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import Measure, table

from langgraph_runstore import SQLRunStore
from langgraph_runstore.store.sql import Statement

RUNS = 100_000
REPEAT_API = 30
REPEAT_CLI = 7
GOAL_SECONDS = 0.2
SCRIPT = Path(sys.executable).parent / "langgraph-runstore"


def fill(path: Path) -> None:
    """100k finished and live runs over 90 days, 5k threads, 50 users, 3 models."""
    rnd = random.Random(6)
    statuses = ["success"] * 90 + ["error"] * 5 + ["timeout", "interrupted", "interrupted"]
    models = ["gpt-4o", "gpt-4o-mini", "claude-sonnet"]
    start = time.time() - 90 * 86400
    rows = []
    for i in range(RUNS):
        created = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(start + i * 77.76))
        created += f".{i % 1_000_000:06d}+00:00"
        status = statuses[rnd.randrange(len(statuses))]
        model = models[i % 3]
        inp, out = rnd.randint(200, 4000), rnd.randint(20, 900)
        usage = json.dumps(
            {model: {"input_tokens": inp, "output_tokens": out, "total_tokens": inp + out}}
        )
        rows.append(
            (
                f"run-{i:06d}",
                f"thread-{rnd.randrange(5000)}",
                f"user-{rnd.randrange(50)}",
                status,
                created,
                created,
                created,
                created,
                inp,
                out,
                inp + out,
                usage,
                rnd.randint(1, 6),
                "The answer, after looking it up, is " + "forty-two " * rnd.randint(1, 8),
            )
        )
    conn = sqlite3.connect(path)
    conn.executemany(
        "INSERT INTO runs (run_id, thread_id, user_id, status, created_at, updated_at, "
        "started_at, ended_at, input_tokens, output_tokens, total_tokens, token_usage_by_model, "
        "llm_call_count, last_ai_message) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        rows,
    )
    conn.commit()
    conn.close()


async def api(url: str) -> list[tuple[str, Measure]]:
    async with SQLRunStore.from_url(url) as store:
        deep = await store.list_runs(limit=50)
        for _ in range(1000):  # 50k runs in: a cursor deep into history
            assert deep.next_cursor
            deep = await store.list_runs(limit=50, cursor=deep.next_cursor)
        cursor = deep.next_cursor
        offset = Statement.of(
            "SELECT * FROM runs ORDER BY created_at DESC, seq ASC LIMIT 51 OFFSET :offset"
        )

        cases = {
            "runs list (newest 50)": lambda: store.list_runs(limit=50),
            "runs list --status error": lambda: store.list_runs(status="error", limit=50),
            "runs list --thread": lambda: store.list_runs(thread_id="thread-42", limit=50),
            "runs list --user --since 7d": lambda: store.list_runs(
                user_id="user-7", since="7d", limit=50
            ),
            "runs list --cursor (page 1001)": lambda: store.list_runs(limit=50, cursor=cursor),
            "same page by OFFSET 50000": lambda: store._driver.fetch(offset, {"offset": 50_000}),
        }
        results = []
        for name, call in cases.items():
            await call()  # warm: statement cache, pages in the OS cache
            values = []
            for _ in range(REPEAT_API):
                started = time.perf_counter()
                await call()
                values.append(time.perf_counter() - started)
            results.append((name, Measure(tuple(values))))
        return results


def process(*args: str) -> Measure:
    values = []
    for _ in range(REPEAT_CLI):
        started = time.perf_counter()
        subprocess.run(args, check=True, capture_output=True)
        values.append(time.perf_counter() - started)
    return Measure(tuple(values))


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "runs.db"
        url = f"sqlite+aiosqlite:///{path}"

        async def create() -> None:
            async with SQLRunStore.from_url(url):
                pass

        asyncio.run(create())
        started = time.perf_counter()
        fill(path)
        took = time.perf_counter() - started
        print(f"filled {RUNS:,} runs in {took:.1f} s ({path.stat().st_size / 1e6:.0f} MB)")
        results = asyncio.run(api(url))
        cli = process(str(SCRIPT), "runs", "list", "--db", str(path))
        cli_json = process(str(SCRIPT), "runs", "list", "--json", "--db", str(path))
        floor = process(sys.executable, "-c", "import langgraph_runstore")
        bare = process(sys.executable, "-c", "pass")

    rows = [[name, "API", ms(m.min), ms(m.median), ms(m.max)] for name, m in results]
    rows += [
        ["runs list", "CLI process", ms(cli.min), ms(cli.median), ms(cli.max)],
        [
            "runs list --json",
            "CLI process",
            ms(cli_json.min),
            ms(cli_json.median),
            ms(cli_json.max),
        ],
        ["import langgraph_runstore", "python -c", ms(floor.min), ms(floor.median), ms(floor.max)],
        ["python -c pass", "python -c", ms(bare.min), ms(bare.median), ms(bare.max)],
    ]
    print(table(["measure", "how", "best", "median", "worst"], rows))
    print()
    newest = results[0][1]
    keyset, offset = results[4][1], results[5][1]
    worst_api = max(m.median for _, m in results[:5])
    print(
        f"keyset vs OFFSET at 50k runs deep: {offset.median / keyset.median:.0f}x faster (median)"
    )
    print(
        f"CLI process: {ms(cli.median)} median, of which {ms(floor.median)} is importing the "
        f"package; the command itself adds {ms(cli.median - floor.median)}"
    )
    verdict = "met" if worst_api < GOAL_SECONDS else "MISSED"
    print(
        f"summary: runs list over {RUNS // 1000}k runs on SQLite answers in {ms(newest.median)} "
        f"(slowest listing {ms(worst_api)}; goal < {ms(GOAL_SECONDS)}: {verdict}); "
        f"the CLI process takes {ms(cli.median)}"
    )


if __name__ == "__main__":
    sys.exit(main())
