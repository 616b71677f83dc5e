"""``langgraph-runstore ui`` over 100k runs on SQLite: each page as a browser gets it.

Goal (issue 18): the runs page answers in under 300 ms over 100k runs on SQLite. The real
server process is started on a file of 100k runs (benchmarks/cli.py's data: 90 days, 5k
threads, 50 users, 3 models) and each page is fetched over HTTP, side by side with the read
API call it is built on, so the page's own cost (rendering, HTTP) reads as the difference.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import httpx
from _common import Measure, table
from cli import RUNS, SCRIPT, fill

from langgraph_runstore import SQLRunStore

REPEAT = 30
GOAL_SECONDS = 0.3


def start_server(path: Path) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [str(SCRIPT), "ui", "--db", str(path), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert " at http://" in line, (line, proc.stderr.read() if proc.stderr else "")
    return proc, line.split(" at ", 1)[1].split(" ", 1)[0].removesuffix("/runs")


def measure(call: Callable[[], Any]) -> Measure:
    call()  # warm: statement cache, pages in the OS cache, templates compiled
    values = []
    for _ in range(REPEAT):
        started = time.perf_counter()
        call()
        values.append(time.perf_counter() - started)
    return Measure(tuple(values))


async def measure_async(call: Callable[[], Awaitable[Any]]) -> Measure:
    await call()
    values = []
    for _ in range(REPEAT):
        started = time.perf_counter()
        await call()
        values.append(time.perf_counter() - started)
    return Measure(tuple(values))


async def api_cases(url: str) -> tuple[dict[str, Measure], str]:
    async with SQLRunStore.from_url(url) as store:
        deep = await store.list_runs(limit=50)
        for _ in range(1000):  # 50k runs in
            assert deep.next_cursor
            deep = await store.list_runs(limit=50, cursor=deep.next_cursor)
        assert deep.next_cursor
        cursor = deep.next_cursor
        calls: dict[str, Callable[[], Awaitable[Any]]] = {
            "newest 50": lambda: store.list_runs(limit=50),
            "status=error": lambda: store.list_runs(status="error", limit=50),
            "thread=thread-42": lambda: store.list_runs(thread_id="thread-42", limit=50),
            "user=user-7&since=7d": lambda: store.list_runs(user_id="user-7", since="7d", limit=50),
            "cursor (page 1001)": lambda: store.list_runs(limit=50, cursor=cursor),
            "limit=500": lambda: store.list_runs(limit=500),
        }
        return {name: await measure_async(call) for name, call in calls.items()}, cursor


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
        fill(path)
        api, cursor = asyncio.run(api_cases(url))
        proc, base = start_server(path)
        try:
            with httpx.Client(base_url=base, timeout=30) as client:

                def get(path: str) -> Callable[[], None]:
                    def call() -> None:
                        response = client.get(path)
                        assert response.status_code == 200, (path, response.text[-500:])

                    return call

                runs_pages = {
                    "newest 50": "/runs",
                    "status=error": "/runs?status=error",
                    "thread=thread-42": "/runs?thread=thread-42",
                    "user=user-7&since=7d": "/runs?user=user-7&since=7d",
                    "cursor (page 1001)": f"/runs?cursor={cursor}",
                    "limit=500": "/runs?limit=500",
                }
                other_pages = {
                    "run detail": "/runs/run-050000",
                    "thread page": "/threads/thread-42",
                    "usage, last 7 days": "/usage?since=7d",
                    "usage, all 100k runs": "/usage",
                }
                pages = {name: measure(get(path)) for name, path in runs_pages.items()}
                others = {name: measure(get(path)) for name, path in other_pages.items()}
        finally:
            proc.terminate()
            proc.wait(timeout=10)

    rows = []
    for name, page in pages.items():
        rows.append(
            [
                f"/runs {name}",
                ms(page.min),
                ms(page.median),
                ms(page.max),
                ms(api[name].median),
                f"{(page.median - api[name].median) * 1000:.1f} ms",
            ]
        )
    for name, page in others.items():
        rows.append([name, ms(page.min), ms(page.median), ms(page.max), "", ""])
    print(f"{RUNS:,} runs on SQLite; each page fetched over HTTP from the real server")
    print(table(["page", "best", "median", "worst", "API call (median)", "page's own cost"], rows))
    print()
    worst = max(page.median for page in pages.values())
    worst_name = max(pages, key=lambda name: pages[name].median)
    verdict = "ok" if worst < GOAL_SECONDS else "MISSED"
    print(
        f"runs page over {RUNS:,} runs on SQLite: slowest median {ms(worst)} ({worst_name}), "
        f"goal < {GOAL_SECONDS * 1000:.0f} ms: {verdict}"
    )


if __name__ == "__main__":
    main()
