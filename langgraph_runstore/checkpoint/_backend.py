"""Driver-level database access for the checkpointer: one class per backend.

Both backends take their connections from the saver's SQLAlchemy engine, then talk to the
driver directly: SQLAlchemy's per-statement machinery costs more than the statement itself
at these sizes.

* SQLite: one connection, checked out on first use and kept until ``aclose()``. Every
  operation is a single hop to aiosqlite's worker thread that runs all of its statements and
  its commit there. SQLite has one writer at a time anyway; queueing on one connection avoids
  busy-waiting on the database lock.
* PostgreSQL: a few warm connections borrowed from the engine's pool (see ``_warm``), no
  lock of our own, so concurrent operations run in parallel. Each operation is one
  statement (data-modifying CTEs where it writes several tables), hence one round trip
  and atomic. Every operation is idempotent, so one whose connection is lost (the server
  cut it or restarted) is sent again on a fresh connection for up to ``reconnect_timeout``
  seconds, then fails with a CheckpointError that says so.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol, TypeVar

from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from tenacity import AsyncRetrying, retry_if_exception, stop_before_delay, wait_exponential_jitter

from langgraph_runstore.checkpoint._codec import dumps_json
from langgraph_runstore.checkpoint._prune import PG_PRUNE, prune_sqlite, refuse
from langgraph_runstore.checkpoint._sql import PostgresSQL, SqliteSQL
from langgraph_runstore.checkpoint._warm import WarmConnections, is_connection_lost
from langgraph_runstore.db.pg_connection import (
    adapted,
    install_autocommit_reset,
    statement_error_test,
)
from langgraph_runstore.errors import CheckpointError, InvalidInputError
from langgraph_runstore.loop_thread import LoopThread

T = TypeVar("T")
Row = Sequence[Any]
#: (thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id, run_id, type, checkpoint,
#: channel_versions JSON, metadata JSON)
CheckpointRow = tuple[str, str, str, "str | None", "str | None", str, bytes, str, str]
#: (channel, version, type, chain JSON or None, blob)
BlobRow = tuple[str, str, str, "str | None", bytes]
#: (thread_id, checkpoint_ns, checkpoint_id, task_id, task_path)
WriteKey = tuple[str, str, str, str, str]
#: (idx, channel, type, value)
WriteRow = tuple[int, str, str, bytes]
#: (thread_id, checkpoint_ns, checkpoint_id)
CheckpointKey = tuple[str, str, str]
#: (task_id, idx, channel, type, value)
TaskWriteRow = tuple[str, int, str, str, bytes]


class Backend(Protocol):
    """What the saver needs from a database."""

    @property
    def sql(self) -> type[SqliteSQL] | type[PostgresSQL]: ...

    async def fetch(self, sql: str, params: Sequence[Any]) -> list[Row]: ...

    async def put(self, checkpoint: CheckpointRow, blobs: Sequence[BlobRow]) -> None: ...

    async def put_writes(self, key: WriteKey, rows: Sequence[WriteRow], replace: bool) -> None: ...

    async def replace_writes(self, key: CheckpointKey, rows: Sequence[TaskWriteRow]) -> None: ...

    async def delete_threads(self, thread_ids: Sequence[str]) -> None: ...

    async def delete_runs(self, run_ids: Sequence[str]) -> None: ...

    async def copy_thread(self, source: str, target: str) -> None: ...

    async def prune_keep_latest(self, thread_ids: Sequence[str]) -> None:
        """keep_latest (see ``_prune``): PruneRefusedError, changing nothing, for DeltaChannel
        threads."""
        ...

    def setup_engine(self) -> AsyncEngine:
        """The engine for running migrations from the current loop."""
        ...

    def holds_connection(self) -> bool: ...

    async def aclose_bridge(self) -> None: ...

    async def aclose(self) -> None: ...


# --- SQLite: functions that run on aiosqlite's worker thread, one call per operation ------


def _sqlite_fetch(db: sqlite3.Connection, sql: str, params: Sequence[Any]) -> list[Row]:
    return db.execute(sql, params).fetchall()


def _sqlite_write(db: sqlite3.Connection, work: Callable[[sqlite3.Connection], T]) -> T:
    # BEGIN IMMEDIATE takes the write lock up front (waiting out busy_timeout if another
    # connection holds it), so a transaction that reads before it writes cannot deadlock.
    db.execute("BEGIN IMMEDIATE")
    try:
        result = work(db)
        db.commit()
    except BaseException:
        db.rollback()
        raise
    return result


class SqliteBackend:
    """SQLite through one aiosqlite connection taken from the engine's pool."""

    sql = SqliteSQL

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._sa_conn: AsyncConnection | None = None
        self._aio: Any = None  # aiosqlite.Connection
        self._db: sqlite3.Connection | None = None

    async def _open(self) -> None:
        sa_conn = await self._engine.connect()
        raw = await sa_conn.get_raw_connection()
        if self._aio is not None:  # another task opened it while we waited
            await sa_conn.close()
            return
        aio = raw.driver_connection
        assert aio is not None
        self._sa_conn, self._aio, self._db = sa_conn, aio, aio._conn

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        if self._aio is None:
            await self._open()
        # aiosqlite's own queue: run fn(db, *args) on the connection's thread in one hop.
        # SQLAlchemy's aiosqlite adapter uses the same private entry point.
        result: T = await self._aio._execute(fn, self._db, *args)
        return result

    async def fetch(self, sql: str, params: Sequence[Any]) -> list[Row]:
        return await self._call(_sqlite_fetch, sql, params)

    async def put(self, checkpoint: CheckpointRow, blobs: Sequence[BlobRow]) -> None:
        thread_id, ns = checkpoint[0], checkpoint[1]

        def work(db: sqlite3.Connection) -> None:
            if blobs:
                db.executemany(SqliteSQL.INSERT_BLOB, [(thread_id, ns, *b) for b in blobs])
            db.execute(SqliteSQL.UPSERT_CHECKPOINT, checkpoint)

        await self._call(_sqlite_write, work)

    async def put_writes(self, key: WriteKey, rows: Sequence[WriteRow], replace: bool) -> None:
        sql = SqliteSQL.UPSERT_WRITES if replace else SqliteSQL.INSERT_WRITES

        def work(db: sqlite3.Connection) -> None:
            db.executemany(sql, [(*key, *row) for row in rows])

        await self._call(_sqlite_write, work)

    async def replace_writes(self, key: CheckpointKey, rows: Sequence[TaskWriteRow]) -> None:
        def work(db: sqlite3.Connection) -> None:
            paths = dict(db.execute(SqliteSQL.WRITE_TASK_PATHS, key).fetchall())
            db.execute(SqliteSQL.DELETE_CHECKPOINT_WRITES, key)
            db.executemany(
                SqliteSQL.INSERT_WRITES,
                [(*key, task, paths.get(task, ""), *rest) for task, *rest in rows],
            )

        await self._call(_sqlite_write, work)

    async def delete_threads(self, thread_ids: Sequence[str]) -> None:
        arg = (dumps_json(list(thread_ids)),)

        def work(db: sqlite3.Connection) -> None:
            for statement in SqliteSQL.DELETE_THREADS:
                db.execute(statement, arg)

        await self._call(_sqlite_write, work)

    async def delete_runs(self, run_ids: Sequence[str]) -> None:
        arg = (dumps_json(list(run_ids)),)

        def work(db: sqlite3.Connection) -> None:
            threads = [r[0] for r in db.execute(SqliteSQL.THREADS_OF_RUNS, arg)]
            if not threads:
                return
            for statement in SqliteSQL.DELETE_RUNS:
                db.execute(statement, arg)
            db.execute(SqliteSQL.GC_BLOBS, (dumps_json(threads),))

        await self._call(_sqlite_write, work)

    async def copy_thread(self, source: str, target: str) -> None:
        def work(db: sqlite3.Connection) -> None:
            for statement in SqliteSQL.COPY_THREAD:
                db.execute(statement, (source, target))

        await self._call(_sqlite_write, work)

    async def prune_keep_latest(self, thread_ids: Sequence[str]) -> None:
        await self._call(_sqlite_write, lambda db: prune_sqlite(db, thread_ids))

    def setup_engine(self) -> AsyncEngine:
        # aiosqlite connections work from any loop: each call makes its future on the
        # caller's loop, so the one engine serves the bridge loop too.
        return self._engine

    def holds_connection(self) -> bool:
        return self._sa_conn is not None

    async def aclose_bridge(self) -> None:
        """Nothing is bound to the bridge loop."""

    async def aclose(self) -> None:
        """Return the connection to the engine's pool; the next operation takes a new one."""
        sa_conn, self._sa_conn, self._aio, self._db = self._sa_conn, None, None, None
        if sa_conn is not None:
            await sa_conn.close()


# --- PostgreSQL -----------------------------------------------------------------------------


class PostgresBackend:
    """PostgreSQL through asyncpg or psycopg connections borrowed from the engine's pool
    (in asyncpg's shape, see ``db.pg_connection``).

    Operations take a connection from a per-loop :class:`WarmConnections` set (at most
    ``max_connections`` of the pool's connections), so concurrent operations run in parallel
    without a lock. Async driver connections belong to the loop that opened them, so each loop
    gets its own set, and the bridge loop (sync calls) its own copy of the engine's pool,
    with the same settings and connect hooks.
    """

    sql = PostgresSQL

    def __init__(
        self,
        engine: AsyncEngine,
        bridge: LoopThread,
        max_connections: int | None,
        reconnect_timeout: float,
    ) -> None:
        install_autocommit_reset(engine)
        self._statement_error = statement_error_test(engine)
        self._reconnect_timeout = seconds(reconnect_timeout)
        self._engine = engine
        self._bridge = bridge
        self._bridge_engine: AsyncEngine | None = None
        if max_connections is None:
            size = getattr(engine.sync_engine.pool, "size", None)
            max_connections = min(8, size()) if callable(size) else 4
        self._max_connections = max_connections
        self._sets: dict[asyncio.AbstractEventLoop, WarmConnections] = {}

    def setup_engine(self) -> AsyncEngine:
        if not self._bridge.is_current():
            return self._engine
        if self._bridge_engine is None:
            sync = self._engine.sync_engine
            self._bridge_engine = AsyncEngine(Engine(sync.pool.recreate(), sync.dialect, sync.url))
        return self._bridge_engine

    def _connections(self) -> WarmConnections:
        loop = asyncio.get_running_loop()
        warm = self._sets.get(loop)
        if warm is None:
            for old_loop in [lp for lp in self._sets if lp.is_closed()]:
                self._sets.pop(old_loop).abandon()
            warm = WarmConnections(
                self.setup_engine(), self._max_connections, loop, self._statement_error
            )
            self._sets[loop] = warm
        return warm

    async def _run(self, op: Callable[[Any], Awaitable[T]]) -> T:
        return await self._retrying(lambda: self._run_once(op))

    async def _run_once(self, op: Callable[[Any], Awaitable[T]]) -> T:
        warm = self._sets.get(asyncio.get_running_loop()) or self._connections()
        fairy = await warm.acquire()
        try:
            result = await op(adapted(fairy))
        except BaseException as exc:
            # A server-side error leaves an idle connection fit for reuse; a cancellation or
            # a broken connection may leave a statement or transaction half done: drop it.
            if warm.broken(fairy, exc):
                warm.discard(fairy)
            else:
                warm.release(fairy)
            raise
        warm.release(fairy)
        return result

    async def _write(self, sql: str, args: Sequence[Any]) -> None:
        async def once() -> None:
            warm = self._sets.get(asyncio.get_running_loop()) or self._connections()
            if warm.busy():  # every connection is in use: ride along in the next batch
                await warm.queue_write(sql, args)
            else:
                await self._run_once(lambda conn: conn.execute(sql, *args))

        await self._retrying(once)

    async def _retrying(self, call: Callable[[], Awaitable[T]]) -> T:
        """``call()``, sent again on a fresh connection while its connection keeps being lost,
        for up to ``reconnect_timeout`` seconds; then a CheckpointError that says so.

        The first attempt runs bare: a tenacity controller per operation would cost more
        than most operations, and nearly all succeed first time.
        """
        timeout = self._reconnect_timeout
        try:
            return await call()
        except Exception as exc:
            if not is_transient(exc):
                raise
            if timeout <= 0:
                raise _gave_up(exc, timeout, 1) from exc
        # the first retry goes at once: a fresh connection usually works straight away
        attempts = 1
        retrying = AsyncRetrying(
            stop=stop_before_delay(timeout),
            wait=wait_exponential_jitter(multiplier=0.05, max=1.0, jitter=0.05),
            retry=retry_if_exception(is_transient),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    attempts += 1
                    return await call()
        except Exception as exc:
            if is_transient(exc):
                raise _gave_up(exc, timeout, attempts) from exc
            raise  # a retry reached the server, which refused the operation itself
        raise AssertionError("unreachable: tenacity reraises the last error")  # pragma: no cover

    async def fetch(self, sql: str, params: Sequence[Any]) -> list[Row]:
        rows: list[Row] = await self._run(lambda conn: conn.fetch(sql, *params))
        return rows

    async def put(self, checkpoint: CheckpointRow, blobs: Sequence[BlobRow]) -> None:
        columns: tuple[list[Any], ...] = ([], [], [], [], [])
        for blob in blobs:
            for column, value in zip(columns, blob, strict=True):
                column.append(value)
        await self._write(PostgresSQL.PUT, (*checkpoint, *columns))

    async def put_writes(self, key: WriteKey, rows: Sequence[WriteRow], replace: bool) -> None:
        sql = PostgresSQL.UPSERT_WRITES if replace else PostgresSQL.INSERT_WRITES
        columns: tuple[list[Any], ...] = ([], [], [], [])
        for row in rows:
            for column, value in zip(columns, row, strict=True):
                column.append(value)
        await self._write(sql, (*key, *columns))

    async def replace_writes(self, key: CheckpointKey, rows: Sequence[TaskWriteRow]) -> None:
        async def op(conn: Any) -> None:
            async with conn.transaction():
                paths = dict(await conn.fetch(PostgresSQL.DELETE_CHECKPOINT_WRITES, *key))
                columns: tuple[list[Any], ...] = ([], [], [], [], [], [])
                for task, *rest in rows:
                    for column, value in zip(
                        columns, (task, paths.get(task, ""), *rest), strict=True
                    ):
                        column.append(value)
                await conn.execute(PostgresSQL.INSERT_TASK_WRITES, *key, *columns)

        await self._run(op)

    async def delete_threads(self, thread_ids: Sequence[str]) -> None:
        await self._run(lambda conn: conn.execute(PostgresSQL.DELETE_THREADS, list(thread_ids)))

    async def delete_runs(self, run_ids: Sequence[str]) -> None:
        async def op(conn: Any) -> None:
            async with conn.transaction():
                rows = await conn.fetch(PostgresSQL.DELETE_RUNS, list(run_ids))
                if rows:
                    await conn.execute(PostgresSQL.GC_BLOBS, [r[0] for r in rows])

        await self._run(op)

    async def copy_thread(self, source: str, target: str) -> None:
        await self._run(lambda conn: conn.execute(PostgresSQL.COPY_THREAD, source, target))

    async def prune_keep_latest(self, thread_ids: Sequence[str]) -> None:
        rows = await self._run(lambda conn: conn.fetch(PG_PRUNE, list(thread_ids)))
        refuse([str(r[0]) for r in rows])

    def holds_connection(self) -> bool:
        return any(warm.size for warm in self._sets.values())

    async def aclose_bridge(self) -> None:
        """Close the bridge loop's connections and pool; must run on the bridge loop."""
        warm = self._sets.pop(asyncio.get_running_loop(), None)
        if warm is not None:
            await warm.aclose()
        engine, self._bridge_engine = self._bridge_engine, None
        if engine is not None:
            await engine.dispose()

    async def aclose(self) -> None:
        """Return the current loop's warm connections to the engine's pool."""
        loop = asyncio.get_running_loop()
        warm = self._sets.pop(loop, None)
        if warm is not None:
            await warm.aclose()
        for other in [lp for lp in self._sets if lp.is_closed()]:
            self._sets.pop(other).abandon()


def seconds(reconnect_timeout: float) -> float:
    """``reconnect_timeout`` checked: a finite number of seconds >= 0."""
    value = reconnect_timeout
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1e6:
        raise InvalidInputError(
            f"reconnect_timeout must be a number of seconds >= 0, not {reconnect_timeout!r}"
        )
    return float(value)


#: SQLSTATEs worth sending again on a healthy connection: serialisation failure, deadlock
_RETRY_SQLSTATES = frozenset({"40001", "40P01"})


def is_transient(exc: BaseException) -> bool:
    """Whether an operation that failed with ``exc`` may succeed if sent again: the
    connection was lost (or could not be opened), or the server asked for a retry."""
    return is_connection_lost(exc) or getattr(exc, "sqlstate", None) in _RETRY_SQLSTATES


def _gave_up(error: BaseException, timeout: float, attempts: int) -> CheckpointError:
    what = (
        "lost the PostgreSQL connection and could not complete the checkpoint operation on "
        "a new one"
        if is_connection_lost(error)
        else "PostgreSQL kept asking to retry the checkpoint operation"
    )
    return CheckpointError(
        f"{what} within {timeout:g} s ({attempts} attempts): {type(error).__name__}: {error}"
    )
