"""PostgreSQL connections cut under the checkpointer, on both drivers (asyncpg, psycopg):
pg_terminate_backend of its backends mid-write and mid-batch, and a stop and start of a
private server. Every caller gets an
answer (the operation retried on a fresh connection, or a CheckpointError that says the
connection was lost), no broken connection is used again, and the same saver and manager
keep working.

The cut always lands mid-operation: a second session holds an ACCESS EXCLUSIVE lock on the
table the writes go to, the test waits until the saver's statements are queued behind it on
the server (pg_stat_activity), and only then terminates their backends.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import pytest_asyncio
from langgraph.checkpoint.base import empty_checkpoint

from langgraph_runstore import RunManager, SQLRunStore
from langgraph_runstore.checkpoint import SQLAlchemySaver
from langgraph_runstore.checkpoint._backend import is_transient
from langgraph_runstore.errors import CheckpointError, InvalidInputError
from tests.backends import libpq_url, with_driver
from tests.graphs import listed_model, reply, two_model_graph

pytestmark = [pytest.mark.asyncio, pytest.mark.postgres]

REPO = Path(__file__).resolve().parents[2]


def cfg(thread_id: str, checkpoint_id: str | None = None) -> Any:
    conf: dict[str, Any] = {"thread_id": thread_id, "checkpoint_ns": ""}
    if checkpoint_id:
        conf["checkpoint_id"] = checkpoint_id
    return {"configurable": conf}


def raw(url: str) -> str:
    return libpq_url(url)


class Blocker:
    """A session that holds a table locked, so the saver's statements wait on the server
    until the test has cut their connections."""

    def __init__(self, url: str) -> None:
        self.url = raw(url)
        self.database = self.url.rsplit("/", 1)[1]
        self.conn: Any = None
        self.tx: Any = None

    async def lock(self, table: str) -> None:
        self.conn = await asyncpg.connect(self.url)
        self.tx = self.conn.transaction()
        await self.tx.start()
        await self.conn.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")

    async def waiting(self, count: int, *, timeout: float = 30) -> list[int]:
        """The pids of the saver's backends waiting on the lock, once there are ``count``."""
        async with contextlib.AsyncExitStack() as stack:
            monitor = await asyncpg.connect(self.url)
            stack.push_async_callback(monitor.close)
            deadline = time.monotonic() + timeout
            while True:
                pids = await monitor.fetchval(
                    "SELECT array_agg(pid) FROM pg_stat_activity WHERE datname = $1 "
                    "AND wait_event_type = 'Lock' AND pid <> $2",
                    self.database,
                    self.conn.get_server_pid(),
                )
                if pids and len(pids) >= count:
                    return list(pids)
                assert time.monotonic() < deadline, f"no {count} blocked statements"
                await asyncio.sleep(0.005)  # polling the server for a state, not a delay

    async def terminate(self, pids: list[int]) -> None:
        await terminate(self.conn, pids)

    async def release(self) -> None:
        if self.tx is not None:
            with contextlib.suppress(Exception):
                await self.tx.rollback()
            self.tx = None
        if self.conn is not None:
            with contextlib.suppress(Exception):
                await self.conn.close()
            self.conn = None


@pytest_asyncio.fixture
async def blocker(pg_url: str) -> AsyncIterator[Blocker]:
    b = Blocker(pg_url)
    yield b
    await b.release()


async def terminate(conn: Any, pids: list[int]) -> None:
    """pg_terminate_backend each pid, returning once the backend has exited."""
    for pid in pids:
        assert await conn.fetchval("SELECT pg_terminate_backend($1, 10000)", pid)


async def stored_writes(saver: SQLAlchemySaver, thread_id: str) -> list[Any]:
    tup = await saver.aget_tuple(cfg(thread_id))
    assert tup is not None and tup.pending_writes is not None
    return sorted(w[2] for w in tup.pending_writes)


async def saver_backends(url: str) -> list[int]:
    """The backends of this database that have run checkpoint statements."""
    conn = await asyncpg.connect(raw(url))
    try:
        return list(
            await conn.fetchval(
                "SELECT coalesce(array_agg(pid), '{}') FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid() "
                "AND query LIKE '%rs_checkpoint%'"
            )
        )
    finally:
        await conn.close()


async def test_cuts_mid_write_and_mid_batch_answer_every_waiter_on_a_fresh_connection(
    pg_url: str, blocker: Blocker
) -> None:
    async with SQLAlchemySaver.from_url(pg_url, max_connections=2) as saver:
        root = await saver.aput(cfg("t"), empty_checkpoint(), {"step": 0}, {})
        root_id = root["configurable"]["checkpoint_id"]
        await blocker.lock("rs_checkpoint_writes")
        writes = [
            asyncio.ensure_future(saver.aput_writes(cfg("t", root_id), [("ch", i)], f"task-{i}"))
            for i in range(40)
        ]
        # both connections run one write each; the other 38 queue for a batch
        await blocker.terminate(await blocker.waiting(2))
        # the two cut writes are sent again at once and queue too; all 40 go out as one
        # executemany on a fresh connection: cut that mid-batch as well
        await blocker.terminate(await blocker.waiting(1))
        await blocker.release()
        results = await asyncio.wait_for(asyncio.gather(*writes, return_exceptions=True), 30)
        assert [r for r in results if r is not None] == []
        assert await stored_writes(saver, "t") == list(range(40))

        # the same saver goes on: no dead connection is handed out again
        more = [saver.aput_writes(cfg("t", root_id), [("ch", i)], f"t-{i}") for i in range(40, 60)]
        await asyncio.wait_for(asyncio.gather(*more), 30)
        assert await stored_writes(saver, "t") == list(range(60))


async def test_a_cut_read_and_checkpoint_put_are_retried(pg_url: str, blocker: Blocker) -> None:
    async with SQLAlchemySaver.from_url(pg_url, max_connections=3) as saver:
        first = await saver.aput(cfg("r"), empty_checkpoint(), {"step": 0}, {})
        await blocker.lock("rs_checkpoints")
        read = asyncio.ensure_future(saver.aget_tuple(cfg("r")))
        put = asyncio.ensure_future(saver.aput(first, empty_checkpoint(), {"step": 1}, {}))
        listed = asyncio.ensure_future(saver.alist(cfg("r")).__anext__())
        await blocker.terminate(await blocker.waiting(3))
        await blocker.release()
        tup, second, newest = await asyncio.wait_for(asyncio.gather(read, put, listed), 30)
        # a read sent again after the cut may run after the put committed: either is right
        assert tup is not None and tup.config in (first, second)
        assert newest.config in (first, second)
        latest = await saver.aget_tuple(cfg("r"))
        assert latest is not None and latest.config == second and latest.parent_config == first


async def test_connections_cut_while_idle_are_never_handed_out(pg_url: str) -> None:
    async with SQLAlchemySaver.from_url(pg_url, max_connections=4) as saver:
        root = await saver.aput(cfg("i"), empty_checkpoint(), {"step": 0}, {})
        root_id = root["configurable"]["checkpoint_id"]
        # warm four connections, then cut every one of them while they sit idle
        await asyncio.gather(
            *(saver.aput_writes(cfg("i", root_id), [("ch", i)], f"w-{i}") for i in range(8))
        )
        monitor = await asyncpg.connect(raw(pg_url))
        try:
            pids = await saver_backends(pg_url)
            assert len(pids) >= 2
            await terminate(monitor, pids)
        finally:
            await monitor.close()
        for i in range(8, 12):  # one at a time: each would find a dead connection first
            await asyncio.wait_for(saver.aput_writes(cfg("i", root_id), [("ch", i)], f"w-{i}"), 10)
        assert await stored_writes(saver, "i") == list(range(12))


async def test_the_same_manager_finishes_a_run_cut_mid_checkpoint_and_runs_again(
    pg_url: str, blocker: Blocker
) -> None:
    async with SQLRunStore.from_url(pg_url) as store:
        manager = RunManager(store=store)
        saver = store.checkpointer
        graph = two_model_graph(
            listed_model(reply("a1"), reply("a2")), listed_model(reply("b1"), reply("b2"))
        ).compile(checkpointer=saver)
        try:
            await blocker.lock("rs_checkpoints")
            run = asyncio.ensure_future(
                manager.wait(graph, {"messages": [("user", "one")]}, thread_id="m")
            )
            await blocker.terminate(await blocker.waiting(1))  # the run's first checkpoint
            await blocker.release()
            first = await asyncio.wait_for(run, 30)
            assert first.status.value == "success", first.error
            second = await asyncio.wait_for(
                manager.wait(graph, {"messages": [("user", "two")]}, thread_id="m"), 30
            )
            assert second.status.value == "success", second.error
            state = await graph.aget_state({"configurable": {"thread_id": "m"}})
            contents = [m.content for m in state.values["messages"]]
            assert contents == ["one", "a1", "b1", "noted", "two", "a2", "b2", "noted"]
            history = [s async for s in graph.aget_state_history(cfg("m"))]
            assert len(history) == 10  # every checkpoint of both runs, none lost to the cut
        finally:
            await manager.aclose()


def test_transient_errors_are_classified() -> None:
    from asyncpg import exceptions as pg

    lost = [
        pg.InternalClientError("cannot switch to state 12; another operation (2) is in progress"),
        pg.InterfaceError("connection is closed"),
        pg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
        pg.AdminShutdownError("terminating connection due to administrator command"),
        pg.CannotConnectNowError("the database system is starting up"),
        ConnectionRefusedError(111, "Connect call failed"),
        ConnectionResetError(104, "Connection reset by peer"),
        pg.SerializationError("could not serialize access"),
        pg.DeadlockDetectedError("deadlock detected"),
    ]
    assert [is_transient(e) for e in lost] == [True] * len(lost)
    refused = [
        pg.UniqueViolationError("duplicate key"),
        pg.CharacterNotInRepertoireError("invalid byte sequence for encoding UTF8: 0x00"),
        pg.UndefinedTableError('relation "rs_checkpoints" does not exist'),
        ValueError("x"),
    ]
    assert [is_transient(e) for e in refused] == [False] * len(refused)


def test_psycopg_transient_errors_are_classified() -> None:
    import psycopg
    from psycopg import errors as pg

    lost = [
        # what psycopg raises when the server goes away mid-statement: no SQLSTATE
        psycopg.OperationalError("consuming input failed: server closed the connection"),
        psycopg.InterfaceError("the connection is closed"),
        pg.AdminShutdown("terminating connection due to administrator command"),
        pg.CannotConnectNow("the database system is starting up"),
        pg.SerializationFailure("could not serialize access"),
        pg.DeadlockDetected("deadlock detected"),
    ]
    assert [is_transient(e) for e in lost] == [True] * len(lost)
    refused = [
        pg.UniqueViolation("duplicate key"),
        pg.QueryCanceled("canceling statement due to statement timeout"),
        psycopg.DataError("PostgreSQL text fields cannot contain NUL (0x00) bytes"),
        pg.UndefinedTable('relation "rs_checkpoints" does not exist'),
    ]
    assert [is_transient(e) for e in refused] == [False] * len(refused)


@pytest.mark.parametrize("bad", [-1, float("nan"), float("inf"), "10", True])
async def test_reconnect_timeout_is_checked(pg_url: str, tmp_path: Path, bad: Any) -> None:
    from langgraph_runstore.db.engine import create_engine

    for url in (pg_url, f"sqlite+aiosqlite:///{tmp_path / 'x.db'}"):
        engine = create_engine(url)
        try:
            with pytest.raises(InvalidInputError, match="reconnect_timeout"):
                SQLAlchemySaver(engine, reconnect_timeout=bad)
        finally:
            await engine.dispose()


# --- a private server, stopped and started under the saver ---------------------------------


@dataclass
class PrivateServer:
    directory: str
    port: int
    url: str

    def _pg_ctl(self, *args: str) -> None:
        [bin_dir] = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))[-1:]
        subprocess.run(
            ["runuser", "-u", "postgres", "--", bin_dir, "-D", self.directory, *args],
            check=True,
            capture_output=True,
        )

    def stop(self, mode: str = "fast") -> None:
        self._pg_ctl("-m", mode, "-w", "stop")

    def start(self) -> None:
        # the options scripts/pg.sh starts it with; the data directory is kept
        options = f"-h 127.0.0.1 -p {self.port} -k {self.directory} -c fsync=off"
        self._pg_ctl("-l", f"{self.directory}/server.log", "-w", "-o", options, "start")


@pytest.fixture
def private_server(tmp_path: Path) -> Iterator[PrivateServer]:
    if os.geteuid() != 0:
        pytest.skip("stopping a private PostgreSQL server needs root (runuser -u postgres)")
    if not glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"):
        pytest.skip("Debian's postgresql is not installed")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    directory = f"/tmp/runstore-ckpt-{uuid.uuid4().hex[:12]}"
    env = {**os.environ, "RUNSTORE_PG_DIR": directory, "RUNSTORE_PG_PORT": str(port)}
    started = subprocess.run(
        [str(REPO / "scripts" / "pg.sh"), "start"], env=env, check=True, capture_output=True
    )
    server = PrivateServer(directory, port, started.stdout.decode().strip())
    try:
        yield server
    finally:
        subprocess.run([str(REPO / "scripts" / "pg.sh"), "stop"], env=env, capture_output=True)
        shutil.rmtree(directory, ignore_errors=True)


async def test_a_server_down_longer_than_the_budget_gives_every_waiter_a_clear_error(
    private_server: PrivateServer, pg_driver: str
) -> None:
    blocker = Blocker(private_server.url)
    async with SQLAlchemySaver.from_url(
        with_driver(private_server.url, pg_driver), max_connections=2, reconnect_timeout=2
    ) as saver:
        root = await saver.aput(cfg("s"), empty_checkpoint(), {"step": 0}, {})
        root_id = root["configurable"]["checkpoint_id"]
        await saver.aput_writes(cfg("s", root_id), [("ch", -1)], "before")
        await blocker.lock("rs_checkpoint_writes")
        writes = [
            asyncio.ensure_future(saver.aput_writes(cfg("s", root_id), [("ch", i)], f"t-{i}"))
            for i in range(20)
        ]
        await blocker.waiting(2)
        stopped_at = time.monotonic()
        # "immediate": every backend quits at once, the lock holder too, so nothing queued
        # behind the lock can commit on its way out (a fast stop may let some through)
        await asyncio.to_thread(private_server.stop, "immediate")
        results = await asyncio.wait_for(asyncio.gather(*writes, return_exceptions=True), 30)
        took = time.monotonic() - stopped_at
        await blocker.release()
        assert all(isinstance(r, CheckpointError) for r in results), results
        assert "lost the PostgreSQL connection" in str(results[0])
        assert "within 2 s" in str(results[0])
        assert took < 2 + 10  # the budget, one attempt and the stop itself

        await asyncio.to_thread(private_server.start)  # after crash recovery
        # the same saver works once the server is back: nothing half-written, nothing lost
        assert await stored_writes(saver, "s") == [-1]
        await saver.aput_writes(cfg("s", root_id), [("ch", 99)], "after")
        assert await stored_writes(saver, "s") == [-1, 99]


async def test_writes_in_flight_across_a_restart_land_once_the_server_is_back(
    private_server: PrivateServer, pg_driver: str
) -> None:
    blocker = Blocker(private_server.url)
    async with SQLAlchemySaver.from_url(
        with_driver(private_server.url, pg_driver), max_connections=2, reconnect_timeout=60
    ) as saver:
        root = await saver.aput(cfg("s"), empty_checkpoint(), {"step": 0}, {})
        root_id = root["configurable"]["checkpoint_id"]
        await blocker.lock("rs_checkpoint_writes")
        writes = [
            asyncio.ensure_future(saver.aput_writes(cfg("s", root_id), [("ch", i)], f"t-{i}"))
            for i in range(20)
        ]
        reads = [asyncio.ensure_future(saver.aget_tuple(cfg("s"))) for _ in range(3)]
        await blocker.waiting(2)
        await asyncio.to_thread(private_server.stop)
        await blocker.release()
        assert not any(w.done() for w in writes)  # they keep trying while it is down
        await asyncio.to_thread(private_server.start)
        await asyncio.wait_for(asyncio.gather(*writes, *reads), 60)
        assert await stored_writes(saver, "s") == list(range(20))
