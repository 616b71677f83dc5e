"""What the ui tests share: databases filled by the examples and by real graph runs, the
real ``langgraph-runstore ui`` process, and runs that stay active until a test lets go.

Async work runs on threads of its own (``in_thread``, ``LiveRuns``): the browser tests
drive Playwright's sync API, which owns the main thread's event loop while it is open.
"""

from __future__ import annotations

import asyncio
import os
import selectors
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AsyncExitStack, contextmanager
from pathlib import Path
from typing import Any, TypeVar

from langgraph_runstore import RunManager, RunRecord, SQLRunStore
from langgraph_runstore.loop_thread import LoopThread
from tests.graphs import approval_graph, blocked_graph, listed_model, reply, single_node_graph

T = TypeVar("T")
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SCRIPT = Path(sys.executable).parent / "langgraph-runstore"
#: threads and users of the runs ``add_graph_runs`` makes
BATCH_THREADS = ("batch-0", "batch-1", "batch-2", "batch-3")
USERS = ("alice", "bob")


def store_url(db: str) -> str:
    """``--db`` as a URL that SQLRunStore.from_url takes."""
    return db if "://" in db else f"sqlite+aiosqlite:///{db}"


def in_thread(factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine on a fresh event loop in another thread and return its result."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(lambda: asyncio.run(factory())).result(timeout=120)


def _example_env(url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY")}
    env["LANGGRAPH_RUNSTORE_URL"] = url
    return env


def run_examples(url: str, cwd: Path) -> None:
    """The quickstart, human-in-the-loop and multitask examples, side by side, on ``url``."""
    cwd.mkdir(parents=True, exist_ok=True)
    procs = [
        subprocess.Popen(
            [sys.executable, str(EXAMPLES / name), *([url] if name != "quickstart.py" else [])],
            cwd=cwd,
            env=_example_env(url),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("quickstart.py", "human_in_the_loop.py", "multitask.py")
    ]
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, f"{proc.args} failed:\n{out}\n{err}"


async def add_graph_runs(url: str) -> None:
    """20 successful runs over four threads and two users (model-a and model-b answer in
    turn, with their own token counts), 3 runs whose graph fails (thread ``broken``) and
    one that pauses on ``interrupt()`` (thread ``awaiting``)."""
    async with SQLRunStore.from_url(url) as store:
        manager = RunManager(store=store)
        answers = [
            reply(
                f"batch answer {i}",
                "model-a" if i % 2 else "model-b",
                input_tokens=10 + i,
                output_tokens=5,
            )
            for i in range(20)
        ]
        model = listed_model(*answers)

        async def answer(state: Any) -> dict[str, Any]:
            return {"messages": [await model.ainvoke(state["messages"])]}

        async def fail(state: Any) -> dict[str, Any]:
            raise RuntimeError("the tool failed")

        good = single_node_graph(answer).compile(checkpointer=store.checkpointer)
        bad = single_node_graph(fail).compile(checkpointer=store.checkpointer)
        for i in range(20):
            run = await manager.wait(
                good,
                {"messages": [("user", f"question {i}")]},
                thread_id=BATCH_THREADS[i % 4],
                user_id=USERS[i % 2],
            )
            assert run.status.value == "success", run.error
        for _ in range(3):
            run = await manager.wait(
                bad, {"messages": [("user", "break")]}, thread_id="broken", user_id="bob"
            )
            assert run.status.value == "error"
        paused = approval_graph(
            listed_model(reply("a draft", "model-a", input_tokens=30, output_tokens=12))
        ).compile(checkpointer=store.checkpointer)
        run = await manager.wait(
            paused, {"messages": [("user", "draft it")]}, thread_id="awaiting", user_id="alice"
        )
        assert run.paused, run
        await manager.aclose()


def fill(url: str, cwd: Path) -> None:
    """A database as a user's would look: the examples' runs, then the graph runs."""
    run_examples(url, cwd)
    in_thread(lambda: add_graph_runs(url))


def copy_sqlite(source: Path, target: Path) -> Path:
    """A consistent copy of a SQLite database (its WAL included)."""
    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)
    return target


def all_rows(url: str, **filters: Any) -> list[dict[str, Any]]:
    """Every run row the store's own ``list_runs`` returns for ``filters``, newest first."""

    async def go() -> list[dict[str, Any]]:
        async with SQLRunStore.from_url(url) as store:
            rows: list[dict[str, Any]] = []
            cursor = None
            while True:
                page = await store.list_runs(limit=500, cursor=cursor, **filters)
                rows.extend(page.runs)
                cursor = page.next_cursor
                if cursor is None:
                    return rows

    return in_thread(go)


def get_row(url: str, run_id: str) -> dict[str, Any] | None:
    async def go() -> dict[str, Any] | None:
        async with SQLRunStore.from_url(url) as store:
            return await store.get(run_id)

    return in_thread(go)


def run_checkpoints(url: str, run_id: str) -> list[dict[str, Any]]:
    async def go() -> list[dict[str, Any]]:
        async with SQLRunStore.from_url(url) as store:
            return await store.run_checkpoints(run_id)

    return in_thread(go)


@contextmanager
def serve(db: str, *flags: str, env: dict[str, str] | None = None) -> Iterator[str]:
    """``langgraph-runstore ui --db DB --port 0 FLAGS`` in its own process; yields the
    base URL it printed, and stops that process (by its pid) on the way out."""
    proc = subprocess.Popen(
        [str(SCRIPT), "ui", "--db", db, "--port", "0", *flags],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )
    try:
        line = read_line(proc, timeout=60)
        assert " at http://" in line, line
        url = line.split(" at ", 1)[1].split(" ", 1)[0]
        yield url.removesuffix("/runs")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def read_line(proc: subprocess.Popen[str], *, timeout: float) -> str:
    """The process's first line on stdout, or a failure with what it printed on stderr."""
    assert proc.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if selector.select(timeout=0.5):
                line = proc.stdout.readline()
                if line:
                    return line.strip()
            if proc.poll() is not None:
                break
    err = proc.stderr.read() if proc.stderr is not None and proc.poll() is not None else ""
    raise AssertionError(f"the ui printed no URL (exit {proc.poll()}): {err}")


class LiveRuns:
    """Runs a RunManager on a loop thread of its own, executing graphs that stay running
    (``blocked_graph``) until the test releases them: another process, as the page sees it."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.loop = LoopThread("ui-live-runs")
        self._stack = AsyncExitStack()
        self._releases: dict[str, asyncio.Event] = {}
        self.manager: RunManager | None = None

    def __enter__(self) -> LiveRuns:
        async def open_() -> None:
            store = await self._stack.enter_async_context(SQLRunStore.from_url(self.url))
            self.store = store
            self.manager = RunManager(store=store, poll_interval=0.2)
            self._stack.push_async_callback(self.manager.aclose)

        self.loop.run(open_)
        return self

    def start(self, thread_id: str) -> str:
        """Start a run that makes one LLM call (15 tokens), then waits; return its id."""
        started, release = asyncio.Event(), asyncio.Event()
        manager = self.manager
        assert manager is not None

        async def go() -> str:
            graph = blocked_graph(started, release, checkpointer=self.store.checkpointer)
            run = await manager.start(graph, {"messages": [("user", "wait")]}, thread_id=thread_id)
            await asyncio.wait_for(started.wait(), 30)
            return run.run_id

        run_id = self.loop.run(go)
        self._releases[run_id] = release
        return run_id

    def release(self, run_id: str) -> None:
        loop = self.loop.loop
        assert loop is not None
        loop.call_soon_threadsafe(self._releases[run_id].set)

    def join(self, run_id: str) -> RunRecord:
        manager = self.manager
        assert manager is not None
        return self.loop.run(lambda: asyncio.wait_for(manager.join(run_id), 30))

    def __exit__(self, *exc: object) -> None:
        loop = self.loop.loop
        if loop is not None:
            for event in self._releases.values():
                loop.call_soon_threadsafe(event.set)
        try:
            self.loop.run(self._stack.aclose)
        finally:
            self.loop.stop()
