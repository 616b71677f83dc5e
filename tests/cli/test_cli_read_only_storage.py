"""The console script on storage it cannot write: a read-only mount (a tmpfs remounted
``ro`` when running as root; a folder and files without write permission otherwise), a
``?mode=ro`` URL, a PostgreSQL database that accepts no writes.

The read commands work there, on a WAL database copied with its ``-wal``/``-shm`` files or
copied after its last writer closed (no ``-shm`` to read it through: it is read immutable).
The write commands refuse at once with one line saying the storage is read-only, and exit 1.
Nothing on the storage changes.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from langgraph_runstore import SQLRunStore
from tests.backends import libpq_url
from tests.cli.helpers import (
    Result,
    pg_base,
    pg_database,
    pg_snapshot,
    run_many,
    sqlite_snapshot,
)

RUNS = {"r-done": "success", "r-live": "running", "r-old": "error"}

READS: dict[str, tuple[str, ...]] = {
    "runs list": ("runs", "list", "--json"),
    "runs show": ("runs", "show", "r-done", "--json"),
    "threads show": ("threads", "show", "t1", "--json"),
    "usage": ("usage", "--json"),
    "prune --dry-run": ("prune", "--older-than", "1d", "--dry-run", "--json"),
}
WRITES: dict[str, tuple[str, ...]] = {
    "runs cancel": ("runs", "cancel", "r-live"),
    "runs delete": ("runs", "delete", "r-done"),
    "reconcile": ("reconcile",),
    "prune": ("prune", "--older-than", "1d", "--yes"),
    "migrate": ("migrate",),
}


async def seed(store: SQLRunStore) -> None:
    for run_id, status in RUNS.items():
        created = "2020-01-01T00:00:00+00:00" if run_id == "r-old" else None
        await store.put(
            run_id,
            thread_id="t1",
            status=status,
            created_at=created,
            total_tokens=15,
            last_ai_message=f"reply of {run_id}",
        )


@dataclass
class Shelf:
    """A folder that ``seal()`` makes read-only."""

    folder: Path
    seal: Callable[[], None]
    how: str


@pytest.fixture
def shelf(tmp_path: Path) -> Iterator[Shelf]:
    folder = tmp_path / "shelf"
    folder.mkdir()
    if os.geteuid() == 0:
        # root writes through any permission: only a read-only mount stops it
        mounted = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(folder)],
            capture_output=True,
            text=True,
            check=False,
        )
        if mounted.returncode != 0:
            pytest.skip(f"running as root without mount(8) rights: {mounted.stderr.strip()}")

        def remount() -> None:
            subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True)

        try:
            yield Shelf(folder, remount, "read-only mount")
        finally:
            subprocess.run(["umount", "-l", str(folder)], check=False)
        return

    def chmod() -> None:
        for path in folder.iterdir():
            path.chmod(0o444)
        folder.chmod(0o555)

    try:
        yield Shelf(folder, chmod, "no write permission")
    finally:
        folder.chmod(0o755)
        for path in folder.iterdir():
            path.chmod(0o644)


def state(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def stock(shelf: Shelf, tmp_path: Path, *, copy: tuple[str, ...], while_open: bool) -> Path:
    """A WAL database made in a writable folder, copied onto the shelf, then sealed.

    ``copy`` names the suffixes copied ("" the database, "-wal", "-shm"); ``while_open``
    copies while the store is still open (its writes still in the -wal), else after it
    closed (the log checkpointed into the file and removed, as SQLite does).
    """
    source = tmp_path / "source" / "runs.db"
    source.parent.mkdir()

    def copy_files() -> None:
        for suffix in copy:
            shutil.copyfile(f"{source}{suffix}", shelf.folder / f"runs.db{suffix}")

    def copy_open_files() -> None:
        assert Path(f"{source}-wal").stat().st_size > 0  # the runs are still in the log
        copy_files()

    async def go() -> None:
        async with SQLRunStore.from_url(f"sqlite+aiosqlite:///{source}") as store:
            await seed(store)
            if while_open:
                await asyncio.to_thread(copy_open_files)

    asyncio.run(go())
    if not while_open:
        assert sorted(p.name for p in source.parent.iterdir()) == ["runs.db"]
        copy_files()
    shelf.seal()
    return shelf.folder / "runs.db"


def check_reads(results: dict[str, Result]) -> None:
    wrong = [f"{name}: exit {r.code}: {r.err.strip()}" for name, r in results.items() if r.code]
    assert wrong == [], "\n".join(wrong)
    listed = json.loads(results["runs list"].out)["runs"]
    assert {run["run_id"]: run["status"] for run in listed} == RUNS
    assert json.loads(results["runs show"].out)["run"]["last_ai_message"] == "reply of r-done"
    assert json.loads(results["prune --dry-run"].out)["runs"] == 1


def check_writes_refused(results: dict[str, Result]) -> None:
    wrong = []
    for name, result in results.items():
        lines = result.err.strip().splitlines()
        said = lines[0] if len(lines) == 1 else result.err
        if result.code != 1 or "storage is read-only" not in said or result.out:
            wrong.append(f"{name}: exit {result.code}: {said!r} (stdout {result.out!r})")
    assert wrong == [], "\n".join(wrong)


@pytest.mark.parametrize(
    ("copy", "while_open"),
    [(("",), False), (("", "-wal", "-shm"), True)],
    ids=["copied-after-close", "copied-with-wal-and-shm"],
)
def test_read_commands_work_and_write_commands_refuse_on_read_only_storage(
    shelf: Shelf, tmp_path: Path, copy: tuple[str, ...], while_open: bool
) -> None:
    db = stock(shelf, tmp_path, copy=copy, while_open=while_open)
    before = state(shelf.folder)
    db_args = ("--db", str(db))
    report = tmp_path / "report.html"
    results = run_many(
        {
            **{name: (*args, *db_args) for name, args in READS.items()},
            "report": ("report", "--html", str(report), *db_args),
            **{f"write {name}": (*args, *db_args) for name, args in WRITES.items()},
        }
    )
    check_reads({name: r for name, r in results.items() if not name.startswith("write ")})
    assert report.stat().st_size > 0
    check_writes_refused({name: r for name, r in results.items() if name.startswith("write ")})
    assert state(shelf.folder) == before


@pytest.mark.asyncio
async def test_open_read_only_reads_a_wal_file_on_read_only_storage(
    shelf: Shelf, tmp_path: Path
) -> None:
    db = await asyncio.to_thread(stock, shelf, tmp_path, copy=("",), while_open=False)
    before = state(shelf.folder)
    reader = SQLRunStore.open_read_only(db)
    try:
        page = await reader.list_runs(limit=10)
        assert {run["run_id"] for run in page.runs} == set(RUNS)
        assert (await reader.get("r-live") or {}).get("status") == "running"
    finally:
        await reader.aclose()
    assert state(shelf.folder) == before


def test_a_wal_log_without_its_shm_on_read_only_storage_is_a_clear_error(
    shelf: Shelf, tmp_path: Path
) -> None:
    """Its -wal holds the runs; without the -shm SQLite cannot read that log there, and
    reading the file alone would miss them: said in one line, not a wrong answer."""
    db = stock(shelf, tmp_path, copy=("", "-wal"), while_open=True)
    before = state(shelf.folder)
    results = run_many({name: (*args, "--db", str(db)) for name, args in READS.items()})
    for name, result in results.items():
        assert result.code == 1, (name, result)
        assert "-shm" in result.error_line and "checkpoint" in result.error_line, result.err
    assert state(shelf.folder) == before


def test_write_commands_refuse_a_read_only_url(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"

    async def go() -> None:
        async with SQLRunStore.from_url(f"sqlite+aiosqlite:///{db}") as store:
            await seed(store)

    asyncio.run(go())
    before = db.read_bytes(), sqlite_snapshot(db)
    for query in ("mode=ro", "immutable=1"):
        url = f"sqlite:///{db}?{query}"
        reads = run_many({name: (*args, "--db", url) for name, args in READS.items()})
        check_reads(reads)
        check_writes_refused(
            run_many({name: (*args, "--db", url) for name, args in WRITES.items()})
        )
    # (a read-only connection leaves an empty -wal and a -shm beside a WAL file: SQLite's way)
    assert (db.read_bytes(), sqlite_snapshot(db)) == before


@pytest.mark.postgres
def test_write_commands_refuse_a_postgres_database_that_accepts_no_writes() -> None:
    if pg_base() is None:
        pytest.skip("no PostgreSQL server (RUNSTORE_TEST_PG_URL)")
    import psycopg

    with pg_database() as url:

        async def go() -> None:
            async with SQLRunStore.from_url(url) as store:
                await seed(store)

        asyncio.run(go())
        db_name = url.rsplit("/", 1)[1]
        base = pg_base()
        assert base is not None
        admin = libpq_url(base)
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'ALTER DATABASE "{db_name}" SET default_transaction_read_only = on')
        before = pg_snapshot(url)
        check_reads(run_many({name: (*args, "--db", url) for name, args in READS.items()}))
        check_writes_refused(
            run_many({name: (*args, "--db", url) for name, args in WRITES.items()})
        )
        assert pg_snapshot(url) == before
