"""The read commands' fast path on SQLite: ``SQLRunStore.open_read_only`` and no SQLAlchemy.

``runs list``, ``runs show``, ``threads show``, ``usage`` and ``report`` read a SQLite file
with the standard library: importing SQLAlchemy (or LangGraph) would cost more than the
command itself. These tests pin that, and that the engine-less store reads exactly what the
engine's does without creating or changing the file.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from langgraph_runstore import DatabaseConfigError, RunManager, SQLRunStore
from langgraph_runstore.cli import thread_status
from langgraph_runstore.db.engine import normalize_url, sqlite_file
from tests.backends import PG_BACKENDS, driver_of
from tests.cli.helpers import pg_base, pg_database, sqlite_snapshot

pytestmark = pytest.mark.asyncio

NOW = "2026-03-01T12:00:00+00:00"

# thread -> its runs, oldest first: (status, stop_reason)
THREADS: dict[str, list[tuple[str, str | None]]] = {
    "t-idle": [("error", None), ("success", None)],
    "t-error": [("success", None), ("error", None)],
    "t-timeout": [("timeout", "timeout")],
    "t-hitl": [("success", "interrupt")],
    "t-cancelled": [("interrupted", "cancelled")],
    "t-pending": [("success", None), ("pending", None)],
    "t-running": [("running", None), ("error", None)],
}


async def seed(store: SQLRunStore) -> None:
    usage = {"input_tokens": 10, "output_tokens": 5, "total_tokens": 15}
    for t, (thread, runs) in enumerate(THREADS.items()):
        for i, (status, stop_reason) in enumerate(runs):
            created = f"2026-02-{10 + i:02d}T0{t}:00:00+00:00"
            await store.put(
                f"{thread}-{i}",
                thread_id=thread,
                user_id=f"u{t % 2}",
                status=status,
                stop_reason=stop_reason,
                created_at=created,
                started_at=created,
                ended_at=None if status in ("pending", "running") else NOW,
                error="ValueError: no" if status == "error" else None,
                input_tokens=10,
                output_tokens=5,
                total_tokens=15,
                llm_call_count=1,
                token_usage_by_model={f"model-{t % 3}": usage},
                last_ai_message=f"reply {t}.{i}",
            )


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Path:
    path = tmp_path / "runs.db"

    async def go() -> None:
        async with SQLRunStore.from_url(f"sqlite+aiosqlite:///{path}") as store:
            await seed(store)

    asyncio.run(go())
    return path


# -- the CLI -----------------------------------------------------------------------------------

HEAVY = ("sqlalchemy", "aiosqlite", "langgraph", "langchain_core")


def test_read_commands_on_sqlite_import_no_sqlalchemy_nor_langgraph(
    sqlite_db: Path, tmp_path: Path
) -> None:
    db = ["--db", str(sqlite_db)]
    commands = [
        ["runs", "list", *db],
        ["runs", "list", "--status", "error", "--status", "timeout", "--json", *db],
        ["runs", "show", "t-idle-1", *db],
        ["runs", "show", "t-idle-1", "--json", *db],
        ["threads", "show", "t-hitl", *db],
        ["threads", "show", "t-pending", "--json", *db],
        ["usage", *db],
        ["usage", "--by", "day", "--json", *db],
        ["report", "--html", str(tmp_path / "report.html"), *db],
    ]
    # every command in one interpreter: what they import together, none of them imports
    code = (
        "import contextlib, io, json, sys\n"
        "from langgraph_runstore.cli import main\n"
        "codes = []\n"
        f"for argv in {commands!r}:\n"
        "    with contextlib.redirect_stdout(io.StringIO()):\n"
        "        codes.append(main(argv))\n"
        f"print(json.dumps([codes, [m for m in {HEAVY!r} if m in sys.modules]]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    codes, loaded = json.loads(done.stdout.splitlines()[-1])
    assert codes == [0] * len(commands), done.stderr
    assert loaded == []
    assert (tmp_path / "report.html").stat().st_size > 0


def test_threads_show_reads_the_status_from_the_store(sqlite_db: Path) -> None:
    from tests.cli.helpers import run_cli

    shown = run_cli("threads", "show", "t-pending", "--json", "--db", str(sqlite_db))
    assert shown.code == 0, shown
    assert json.loads(shown.out)["status"] == "busy"


def test_a_read_only_sqlite_url_is_honoured_without_warnings(sqlite_db: Path) -> None:
    """``?mode=ro`` goes through the engine (a URL with options), opened as a file: URI."""
    from tests.cli.helpers import run_cli

    before = sqlite_snapshot(sqlite_db)
    shown = run_cli("runs", "list", "--json", "--db", f"sqlite:///{sqlite_db}?mode=ro")
    assert shown.code == 0, shown
    assert shown.err == ""  # no SQLAlchemy warning about an ignored query option
    assert {run["thread_id"] for run in json.loads(shown.out)["runs"]} == set(THREADS)
    assert sqlite_snapshot(sqlite_db) == before


async def _statuses_agree(store: SQLRunStore) -> None:
    manager = RunManager(store=store)
    try:
        for thread in THREADS:
            page = await store.list_runs(thread_id=thread, limit=5)
            ours = await thread_status(store, page.runs[0])
            assert ours == await manager.thread_status(thread), thread
    finally:
        await manager.aclose()


@pytest.fixture(params=["sqlite", *PG_BACKENDS])
def backend_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'runs.db'}"
        return
    if pg_base() is None:
        pytest.skip("no PostgreSQL server (RUNSTORE_TEST_PG_URL)")
    with pg_database(driver_of(request.param)) as url:
        yield url


async def test_cli_thread_status_is_the_run_managers(backend_url: str) -> None:
    """``threads show`` computes the status without a RunManager: the same answer, every case."""
    async with SQLRunStore.from_url(backend_url) as store:
        await seed(store)
        await _statuses_agree(store)
        expected = {
            "t-idle": "idle",
            "t-error": "error",
            "t-timeout": "error",
            "t-hitl": "interrupted",
            "t-cancelled": "idle",
            "t-pending": "busy",
            "t-running": "busy",
        }
        for thread, status in expected.items():
            page = await store.list_runs(thread_id=thread, limit=1)
            assert (await thread_status(store, page.runs[0])).value == status, thread
    if backend_url.startswith("sqlite"):
        reader = SQLRunStore.open_read_only(backend_url.split("///", 1)[1])
        try:
            await _statuses_agree(reader)
        finally:
            await reader.aclose()


# -- SQLRunStore.open_read_only --------------------------------------------------------------


async def _everything(store: SQLRunStore) -> list[Any]:
    first = await store.list_runs(limit=4)
    assert first.next_cursor is not None
    return [
        first,
        await store.list_runs(limit=4, cursor=first.next_cursor),
        await store.list_runs(status=["error", "timeout"], user_id="u0"),
        await store.list_runs(thread_id="t-idle", since="2026-02-11"),
        *[await store.aggregate_usage(by=by) for by in ("model", "thread", "day", "user")],
        await store.top_runs(by="tokens"),
        await store.get("t-hitl-0"),
        await store.get("no-such-run"),
        await store.list_by_thread("t-idle"),
        await store.list_inflight(),
        await store.run_checkpoints("t-idle-1"),
        await store.prune_runs(older_than=NOW, dry_run=True),
    ]


async def test_open_read_only_reads_what_the_engine_reads(sqlite_db: Path) -> None:
    async with SQLRunStore.from_url(f"sqlite+aiosqlite:///{sqlite_db}") as store:
        expected = await _everything(store)
    reader = SQLRunStore.open_read_only(sqlite_db)
    try:
        assert reader.dialect == "sqlite"
        assert await _everything(reader) == expected
    finally:
        await reader.aclose()


def _state(path: Path) -> tuple[bytes, str, list[str]]:
    """The file's bytes, its contents as SQL, and the names in its folder."""
    return path.read_bytes(), sqlite_snapshot(path), sorted(p.name for p in path.parent.iterdir())


async def test_open_read_only_neither_creates_nor_changes_the_file(
    sqlite_db: Path, tmp_path: Path
) -> None:
    missing = tmp_path / "missing.db"
    with pytest.raises(sqlite3.OperationalError):
        SQLRunStore.open_read_only(missing)
    assert not missing.exists()

    # a file in rollback-journal mode stays so: nothing switches it to WAL
    conn = sqlite3.connect(sqlite_db)
    conn.execute("PRAGMA journal_mode = DELETE")
    conn.close()
    before = _state(sqlite_db)
    reader = SQLRunStore.open_read_only(str(sqlite_db))
    try:
        assert (await reader.list_runs(limit=100)).runs
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            await reader.put("new", thread_id="t", status="pending")
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            await reader.update_status("t-pending-1", "running")
        for needs_an_engine in ("engine", "checkpointer"):
            with pytest.raises(DatabaseConfigError, match="without an engine"):
                getattr(reader, needs_an_engine)
        with pytest.raises(DatabaseConfigError, match="without an engine"):
            await reader.setup()
        with pytest.raises(DatabaseConfigError, match="without an engine"):
            await reader.prune_runs(older_than=NOW)  # the checkpoints go through the saver
        await reader.aclose()
        # used again after aclose, it opens the file again, read-only again
        assert await reader.get("t-hitl-0") is not None
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            await reader.delete("t-hitl-0")
    finally:
        await reader.aclose()
    assert _state(sqlite_db) == before
    assert before[2] == ["runs.db"]  # no journal, WAL or missing.db beside it


async def test_open_read_only_waits_for_a_busy_file(sqlite_db: Path) -> None:
    """No engine to hand a statement to: a locked file is waited for, not an error."""
    conn = sqlite3.connect(sqlite_db, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode = DELETE")  # in WAL mode a writer never blocks readers
    conn.execute("BEGIN EXCLUSIVE")
    conn.execute("UPDATE runs SET last_ai_message = 'changed' WHERE run_id = 't-idle-1'")
    hold = 0.3
    release = threading.Timer(hold, lambda: conn.execute("COMMIT"))
    reader = SQLRunStore.open_read_only(sqlite_db)
    try:
        started = time.monotonic()
        release.start()
        row = await reader.get("t-idle-1")
        waited = time.monotonic() - started
    finally:
        release.join()
        await reader.aclose()
        conn.close()
    assert row is not None and row["last_ai_message"] == "changed"
    assert waited >= hold * 0.9


# -- reading a SQLite URL without SQLAlchemy ---------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:///runs.db",
        "sqlite+aiosqlite:///runs.db",
        "sqlite+aiosqlite:////abs/dir/runs.db",
        "sqlite:////abs/with%20space%23.db",
        "sqlite+aiosqlite:///./sub/runs.db",
    ],
)
def test_sqlite_file_reads_a_plain_sqlite_url_as_normalize_url_does(url: str) -> None:
    assert sqlite_file(url) == normalize_url(url).database


@pytest.mark.parametrize(
    "url",
    [
        "sqlite://",
        "sqlite:///",
        "sqlite:///:memory:",
        "sqlite+aiosqlite:///file:runs.db?mode=ro&uri=true",
        "sqlite+pysqlite:///runs.db",
        "SQLITE:///runs.db",
        "sqlite://host/runs.db",
        "postgresql+asyncpg://u@h/db",
        "runs.db",
    ],
)
def test_sqlite_file_leaves_every_other_url_to_normalize_url(url: str) -> None:
    assert sqlite_file(url) is None
