"""``runs list`` over 100k runs on SQLite: the API call and the whole CLI process.

Goal (issue 6): the ``langgraph-runstore runs list`` process answers in under 200 ms.
Printed side by side: the query API for the usual listings (newest, one status, one thread,
one user, a deep page by cursor) against the same page by OFFSET; the CLI process (table and
JSON) against ``python -c "import langgraph_runstore.cli"`` (what it pays before running a
line of its own), the package import and a bare interpreter; and which heavy libraries the
command loaded (the read commands read SQLite with the standard library: no SQLAlchemy).

The processes run with this environment as it is. When it turns bytecode caching off
(PYTHONDONTWRITEBYTECODE, as some containers do), every run compiles the package's sources
again; an installed package has its bytecode, so the CLI is also measured with a bytecode
cache (a private PYTHONPYCACHEPREFIX). The verdict uses the slower of the two.
"""

from __future__ import annotations

import asyncio
import json
import os
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
            "same page by OFFSET 50000": lambda: store.driver.fetch(offset, {"offset": 50_000}),
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


HEAVY = ("sqlalchemy", "aiosqlite", "langgraph", "langchain_core", "genai_prices", "rich")


def process(*args: str, env: dict[str, str] | None = None) -> Measure:
    subprocess.run(args, check=True, capture_output=True, env=env)  # warm: OS cache, bytecode
    values = []
    for _ in range(REPEAT_CLI):
        started = time.perf_counter()
        subprocess.run(args, check=True, capture_output=True, env=env)
        values.append(time.perf_counter() - started)
    return Measure(tuple(values))


def loaded(*command: str) -> str:
    """Which of HEAVY one CLI command imports, run in a fresh interpreter."""
    code = (
        "import contextlib, io, sys\n"
        "from langgraph_runstore.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        f"    code = main({list(command)!r})\n"
        f"print(code, *(m for m in {HEAVY!r} if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout.split()
    assert out[0] == "0", out
    return ", ".join(f"{name} {'yes' if name in out[1:] else 'no'}" for name in HEAVY)


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
        runs_list = (str(SCRIPT), "runs", "list", "--db", str(path))
        cli = process(*runs_list)
        cli_json = process(*runs_list, "--json")
        cli_cached = None
        no_bytecode = bool(os.environ.get("PYTHONDONTWRITEBYTECODE"))
        if no_bytecode:
            cached = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
            cached["PYTHONPYCACHEPREFIX"] = str(Path(tmp) / "pycache")
            cli_cached = process(*runs_list, env=cached)
        floor = process(sys.executable, "-c", "import langgraph_runstore.cli")
        package = process(sys.executable, "-c", "import langgraph_runstore")
        bare = process(sys.executable, "-c", "pass")
        heavy = loaded("runs", "list", "--db", str(path))

    processes = [
        ("runs list", "CLI process", cli),
        ("runs list --json", "CLI process", cli_json),
        *([("runs list", "CLI, bytecode cached", cli_cached)] if cli_cached else []),
        ("import langgraph_runstore.cli", "python -c", floor),
        ("import langgraph_runstore", "python -c", package),
        ("pass", "python -c", bare),
    ]
    rows = [[name, "API", ms(m.min), ms(m.median), ms(m.max)] for name, m in results]
    rows += [[name, how, ms(m.min), ms(m.median), ms(m.max)] for name, how, m in processes]
    print(table(["measure", "how", "best", "median", "worst"], rows))
    print()
    newest = results[0][1]
    keyset, offset = results[4][1], results[5][1]
    worst_api = max(m.median for _, m in results[:5])
    slowest_cli = max(cli.median, cli_cached.median if cli_cached else 0.0)
    print(
        f"keyset vs OFFSET at 50k runs deep: {offset.median / keyset.median:.0f}x faster (median)"
    )
    compiled = (
        " (PYTHONDONTWRITEBYTECODE is set: sources compiled every run)" if no_bytecode else ""
    )
    print(
        f"CLI process: {ms(cli.median)} median, of which {ms(floor.median)} is starting python "
        f"and importing the CLI{compiled}; the command itself (rich, the query, the table) adds "
        f"{ms(cli.median - floor.median)}"
    )
    print(f"loaded by runs list: {heavy}")
    verdict = "met" if slowest_cli < GOAL_SECONDS else "MISSED"
    print(
        f"summary: `langgraph-runstore runs list` over {RUNS // 1000}k runs on SQLite answers "
        f"in {ms(slowest_cli)} (median process time; goal < {ms(GOAL_SECONDS)}: {verdict}); "
        f"the query itself takes {ms(newest.median)} (slowest listing {ms(worst_api)})"
    )


if __name__ == "__main__":
    sys.exit(main())
