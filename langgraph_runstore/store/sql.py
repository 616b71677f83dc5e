"""SQLRunStore: the RunStore on a SQLAlchemy AsyncEngine (sqlite+aiosqlite, postgresql+asyncpg).

SQLAlchemy provides the engine, its pool and the migrations; the store's own statements are
one-line SQL sent straight to the driver connection the pool hands out. Measured here,
SQLAlchemy's per-statement layer (cursor wrappers, transaction begin/commit, reset on
return) cost three to four times the driver's own time on these small statements, and a run
makes three of them. Each write is one autocommit statement: on SQLite through one
long-lived connection (SQLite has one writer at a time anyway), on PostgreSQL through a
pooled connection, with no global lock. ``reject`` admission on PostgreSQL is the only
transaction: a per-thread advisory lock, then a conditional insert.

``SQLRunStore.open_read_only(path)`` reads a SQLite file with the standard library alone (no
engine): SQLAlchemy is imported only where an engine is made or used, so the CLI's
read-only commands start without it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from langgraph_runstore.db.engine import (
    DEFAULT_SQLITE_BUSY_TIMEOUT_MS,
    create_engine,
    install_sqlite_pragmas,
    is_memory_sqlite,
)
from langgraph_runstore.db.migrations import setup as migrate
from langgraph_runstore.errors import (
    ConflictError,
    DatabaseConfigError,
    InvalidInputError,
    InvalidTransitionError,
)
from langgraph_runstore.query import (
    PruneResult,
    RunPage,
    UsageRow,
    check_grouping,
    check_limit,
    check_top_order,
    list_arguments,
    prune_cutoff,
    window_arguments,
)
from langgraph_runstore.schemas import (
    JSON_FIELDS,
    ROW_FIELDS,
    RunStatus,
    normalize_timestamp,
    now_iso,
)
from langgraph_runstore.store import reads
from langgraph_runstore.store.base import (
    ACTIVE_STATUS_VALUES,
    STATUS_FIELDS,
    RunStore,
    StatusWrite,
    allowed_from,
    prepare_completion,
    prepare_row,
    status_stamps,
)
from langgraph_runstore.store.statements import SELECT_COLUMNS, Statement

if TYPE_CHECKING:
    from sqlalchemy.engine import URL
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

    from langgraph_runstore.checkpoint import SQLAlchemySaver

logger = logging.getLogger(__name__)

_ACTIVE_SQL = ", ".join(f"'{status}'" for status in ACTIVE_STATUS_VALUES)
_ONE_RUNNING_INDEX = "runs_one_running_per_thread"
# PostgreSQL's names for the key on run_id (the primary key; a UNIQUE in older schemas)
_RUN_ID_KEYS = frozenset({"runs_pkey", "runs_run_id_key"})


def _encode(row: dict[str, Any], *, run_id: str | None = None) -> dict[str, Any]:
    """The row with its JSON fields serialised (once: this is also their validation)."""
    encoded = dict(row)
    for name in JSON_FIELDS:
        value = encoded.get(name)
        if value is not None:
            if type(value) is dict and not value:
                encoded[name] = "{}"  # most runs have no metadata, kwargs or usage yet
                continue
            try:
                encoded[name] = json.dumps(value, allow_nan=False)
            except (TypeError, ValueError) as exc:
                raise InvalidInputError(
                    f"{name} must be JSON-serialisable: {exc}", run_id=run_id or row.get("run_id")
                ) from None
    if "shared_queue" in encoded:
        encoded["shared_queue"] = int(bool(encoded["shared_queue"]))
    return encoded


def _decode(row: dict[str, Any]) -> dict[str, Any]:
    if "shared_queue" in row:
        row["shared_queue"] = bool(row["shared_queue"])
    for name in JSON_FIELDS:
        value = row.get(name)
        if isinstance(value, str):
            row[name] = json.loads(value)
    return row


@lru_cache(maxsize=64)
def _upsert_sql(columns: tuple[str, ...], lock_thread: bool) -> Statement:
    names = ", ".join(columns)
    values = ", ".join(f":{name}" for name in columns)
    updates = ", ".join(f"{name} = excluded.{name}" for name in columns if name != "run_id")
    if lock_thread:
        # PostgreSQL only: holds the thread's admission lock until commit, so a concurrent
        # reject admission (which takes the same lock, then reads) sees this row
        return Statement.of(
            "WITH thread_lock AS (SELECT pg_advisory_xact_lock(hashtextextended(:thread_id, 0))) "
            f"INSERT INTO runs ({names}) SELECT {values} FROM thread_lock "
            f"ON CONFLICT (run_id) DO UPDATE SET {updates}"
        )
    return Statement.of(
        f"INSERT INTO runs ({names}) VALUES ({values}) ON CONFLICT (run_id) DO UPDATE SET {updates}"
    )


@lru_cache(maxsize=64)
def _insert_if_idle_sql(columns: tuple[str, ...]) -> Statement:
    names = ", ".join(columns)
    values = ", ".join(f":{name}" for name in columns)
    return Statement.of(
        f"INSERT INTO runs ({names}) SELECT {values} WHERE NOT EXISTS "
        f"(SELECT 1 FROM runs WHERE thread_id = :thread_id AND status IN ({_ACTIVE_SQL}))"
    )


def _guard(status: str) -> str:
    allowed = ", ".join(f"'{value}'" for value in allowed_from(status))
    return f"(status IS NULL OR status = :status OR status IN ({allowed}))"


_RETURNING_STATUS = f" RETURNING thread_id, {', '.join(STATUS_FIELDS)}"


@lru_cache(maxsize=32)
def _update_status_sql(status: str, with_error: bool, returning: bool) -> Statement:
    sets = ["status = :status", "updated_at = :now"]
    sets += [f"{name} = COALESCE({name}, :now)" for name in status_stamps(status, "")]
    if with_error:
        sets.append("error = :error")
    return Statement.of(
        f"UPDATE runs SET {', '.join(sets)} WHERE run_id = :run_id AND {_guard(status)}"
        + (_RETURNING_STATUS if returning else "")
    )


@lru_cache(maxsize=128)
def _completion_sql(status: str, columns: tuple[str, ...], returning: bool) -> Statement:
    sets = ["status = :status", "updated_at = :now"]
    sets += [f"{name} = :{name}" for name in columns]
    sets += [
        f"{name} = COALESCE({name}, :now)"
        for name in status_stamps(status, "")
        if name not in columns
    ]
    return Statement.of(
        f"UPDATE runs SET {', '.join(sets)} WHERE run_id = :run_id AND {_guard(status)}"
        + (_RETURNING_STATUS if returning else "")
    )


_GET = Statement.of(f"SELECT {SELECT_COLUMNS} FROM runs WHERE run_id = :run_id")
_STATUS = Statement.of(
    f"SELECT thread_id, {', '.join(STATUS_FIELDS)} FROM runs WHERE run_id = :run_id"
)
_DELETE = Statement.of("DELETE FROM runs WHERE run_id = :run_id")
_LIST_THREAD = Statement.of(
    f"SELECT {SELECT_COLUMNS} FROM runs WHERE thread_id = :thread_id "
    "ORDER BY created_at DESC, seq ASC LIMIT :limit"
)
_LIST_THREAD_USER = Statement.of(
    f"SELECT {SELECT_COLUMNS} FROM runs WHERE thread_id = :thread_id AND user_id = :user_id "
    "ORDER BY created_at DESC, seq ASC LIMIT :limit"
)
_PG_ADMIT = Statement.of("SELECT runstore_admit(:thread_id, CAST(:row AS jsonb)) AS admitted")
# what a runs column holds when the row leaves it out (the DDL's defaults)
_PG_ROW_DEFAULTS: dict[str, Any] = {
    "status": "pending",
    "on_disconnect": "cancel",
    "multitask_strategy": "reject",
    **dict.fromkeys(
        (
            "input_tokens",
            "output_tokens",
            "total_tokens",
            "cache_read_tokens",
            "cache_creation_tokens",
            "reasoning_tokens",
            "llm_call_count",
            "calls_without_usage",
            "message_count",
            "attempt",
            "shared_queue",
        ),
        0,
    ),
}


class _SQLiteDriver:
    """Statements on a SQLite file, each committing itself (autocommit).

    A statement first runs right on the calling thread, on a private connection whose busy
    timeout is zero: these statements take tens of microseconds, less than the round trip
    to aiosqlite's worker thread. When another writer holds the file (SQLITE_BUSY), it runs
    again on the engine's aiosqlite connection, which waits for the lock there (busy_timeout)
    without blocking the event loop. In-memory databases use only the aiosqlite path.

    With no engine (``read_only_file``), the private connection is the only one: it opens the
    file read-only, and a busy file makes it wait (busy_timeout) on the calling thread.

    The private connection never checkpoints the WAL itself (``wal_autocheckpoint = 0``): a
    checkpoint copies the log into the database and syncs it, several milliseconds that
    would stall the event loop. The engine's connections (the checkpointer's, aiosqlite's)
    keep SQLite's automatic checkpoints on their own threads, and every
    ``_CHECKPOINT_EVERY`` statements it runs directly (most of them writes) the driver runs
    a checkpoint on a short-lived thread of its own, so the log stays short when nothing
    else writes.
    """

    def __init__(self, engine: AsyncEngine | None, *, read_only_file: Path | None = None) -> None:
        self.engine = engine
        self._conn: AsyncConnection | None = None
        self._raw: Any = None
        self._opening = asyncio.Lock()
        self._direct: sqlite3.Connection | None = None
        self._direct_lock = threading.Lock()
        self._direct_statements = 0  # since the last checkpoint request
        self._checkpoint_thread: threading.Thread | None = None
        if engine is None:
            if read_only_file is None:
                raise ValueError("a SQLite driver needs an engine or a read-only file")
            self._path: str | None = str(read_only_file.absolute())
            self._direct = self._open_direct(self._path)  # a file that cannot be read fails here
            return
        # the direct path opens the file by name, so it sits out URLs with query options
        # (uri=true, mode=ro, ...) that only the engine knows how to apply
        plain_file = not is_memory_sqlite(engine.url) and not engine.url.query
        self._path = engine.url.database if plain_file else None

    async def _connection(self) -> Any:
        engine = self.engine
        # without an engine, _try_direct waits for the file and never hands a statement over
        assert engine is not None
        if self._raw is None:
            async with self._opening:
                if self._raw is None:
                    conn = await engine.connect()
                    fairy = await conn.get_raw_connection()
                    raw = fairy.driver_connection
                    assert raw is not None
                    # each statement commits itself: no BEGIN/COMMIT round trips
                    raw.isolation_level = None
                    self._conn, self._raw = conn, raw
        return self._raw

    def _try_direct(self, statement: Statement, params: dict[str, Any], fetch: bool) -> Any:
        """Run on the calling thread if the file is free at once; _BUSY otherwise.

        Without an engine to hand over to, wait for the file instead (never _BUSY).
        """
        waits = self.engine is None
        if self._path is None or not self._direct_lock.acquire(blocking=waits):
            return _BUSY
        try:
            if self._direct is None:
                self._direct = self._open_direct(self._path)
            cursor = self._direct.execute(statement.sqlite, params)
            if not fetch:
                return int(cursor.rowcount)
            rows = cursor.fetchall()
            names = [column[0] for column in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in rows]
        except sqlite3.OperationalError as exc:
            message = str(exc).lower()
            if not waits and ("locked" in message or "busy" in message):
                return _BUSY
            raise
        finally:
            self._direct_lock.release()

    def _open_direct(self, path: str) -> sqlite3.Connection:
        if self.engine is None:
            # mode=ro: never creates the file, never writes to it (nor switches it to WAL)
            return sqlite3.connect(
                f"{Path(path).as_uri()}?mode=ro",
                uri=True,
                isolation_level=None,
                check_same_thread=False,
                timeout=DEFAULT_SQLITE_BUSY_TIMEOUT_MS / 1000,
            )
        direct = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        direct.execute("PRAGMA busy_timeout = 0")
        direct.execute("PRAGMA synchronous = NORMAL")
        direct.execute("PRAGMA wal_autocheckpoint = 0")  # see the class docstring
        return direct

    async def _run_direct(self, statement: Statement, params: dict[str, Any], fetch: bool) -> Any:
        # Another connection of this process (the checkpointer's) usually holds the write
        # lock for a fraction of a millisecond: yield to the loop and try again a few times
        # rather than hand over to aiosqlite, whose busy handler sleeps a millisecond or more.
        for pause in _DIRECT_RETRY_PAUSES:
            done = self._try_direct(statement, params, fetch=fetch)
            if done is not _BUSY:
                if self.engine is not None:
                    self._count_direct_statement()
                return done
            await asyncio.sleep(pause)
        return _BUSY

    def _count_direct_statement(self) -> None:
        self._direct_statements += 1
        if self._direct_statements < _CHECKPOINT_EVERY or self._path is None:
            return
        running = self._checkpoint_thread
        if running is None or not running.is_alive():
            self._direct_statements = 0
            # a plain thread with its own connection: bound to no event loop (the store may
            # be used from several) and holding none of the engine's pooled connections
            thread = threading.Thread(
                target=_checkpoint_wal,
                args=(self._path,),
                name="langgraph-runstore WAL checkpoint",
                daemon=True,
            )
            self._checkpoint_thread = thread
            thread.start()

    async def execute(self, statement: Statement, params: dict[str, Any]) -> int:
        try:
            done = await self._run_direct(statement, params, fetch=False)
            if done is not _BUSY:
                return int(done)
            raw = await self._connection()
            cursor = await raw.execute(statement.sqlite, params)
        except sqlite3.IntegrityError as exc:
            refusal = _refusal(exc, params)
            if refusal is None:
                raise
            raise refusal from exc
        return int(cursor.rowcount)

    async def fetch(self, statement: Statement, params: dict[str, Any]) -> list[dict[str, Any]]:
        try:
            done = await self._run_direct(statement, params, fetch=True)
            if done is not _BUSY:
                return list(done)
            raw = await self._connection()
            cursor = await raw.execute(statement.sqlite, params)
            rows = await cursor.fetchall()
        except sqlite3.IntegrityError as exc:
            refusal = _refusal(exc, params)
            if refusal is None:
                raise
            raise refusal from exc
        names = [column[0] for column in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in rows]

    async def aclose(self) -> None:
        checkpoint, self._checkpoint_thread = self._checkpoint_thread, None
        if checkpoint is not None and checkpoint.is_alive():
            await asyncio.to_thread(checkpoint.join, _CHECKPOINT_JOIN_TIMEOUT)
        with self._direct_lock:
            if self._direct is not None:
                self._direct.close()
                self._direct = None
        if self._conn is not None:
            raw, conn = self._raw, self._conn
            self._conn = self._raw = None
            raw.isolation_level = ""  # give the pool back a connection in its default mode
            await conn.close()


_BUSY = object()
# how long a checkpoint waits for a writer or reader in its way, and aclose() for it to end
_CHECKPOINT_BUSY_TIMEOUT = 0.1
_CHECKPOINT_JOIN_TIMEOUT = 5.0


def _checkpoint_wal(path: str) -> None:
    """Checkpoint the WAL of the file at ``path`` on its own short-lived connection.

    RESTART rather than PASSIVE: a passive checkpoint that overlaps the next writes leaves
    the log growing (SQLite starts a log over only when a writer finds it fully copied), so
    this one holds off writers for the few milliseconds the copy takes, waiting at most
    ``_CHECKPOINT_BUSY_TIMEOUT`` for a writer or reader in the way. ``mode=rw``: a file
    deleted meanwhile is not created again.
    """
    try:
        conn = sqlite3.connect(
            f"{Path(path).absolute().as_uri()}?mode=rw",
            uri=True,
            timeout=_CHECKPOINT_BUSY_TIMEOUT,
            isolation_level=None,
        )
    except sqlite3.Error as exc:
        logger.debug("Could not open %s for a WAL checkpoint: %s", path, exc)
        return
    try:
        conn.execute("PRAGMA wal_checkpoint(RESTART)").fetchall()
    except sqlite3.Error as exc:  # the next request, or another connection, will do it
        logger.debug("WAL checkpoint of %s failed: %s", path, exc)
    finally:
        conn.close()


# direct statements between WAL checkpoints: a run-store write adds about five pages to
# the log, so this checkpoints about as often as SQLite's 1000-page autocheckpoint would
_CHECKPOINT_EVERY = 200
# seconds between direct attempts on a busy file: about 4 ms in all, then aiosqlite waits
_DIRECT_RETRY_PAUSES = (0.0, 0.0001, 0.0002, 0.0005, 0.001, 0.002)


class _PostgresDriver:
    """Each statement on a pooled asyncpg connection, autocommit; no lock across calls.

    Connections are borrowed from the engine's pool and, once used, kept in a small LIFO of
    idle ones (up to ``keep_idle``): checking a connection out of SQLAlchemy's pool costs more
    than the statement it carries. Concurrent callers each take their own connection.
    """

    def __init__(self, engine: AsyncEngine, *, keep_idle: int = 4) -> None:
        # imported here: asyncpg is the optional "postgres" extra, and the engine needs it too
        from asyncpg import UniqueViolationError

        self.engine = engine
        self.keep_idle = keep_idle
        self._idle: list[tuple[AsyncConnection, Any]] = []
        self._unique_violation = UniqueViolationError

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[Any]:
        if self._idle:
            conn, pg = self._idle.pop()
        else:
            conn = await self.engine.connect()
            pg = (await conn.get_raw_connection()).driver_connection
        try:
            yield pg
        except BaseException:
            if pg.is_closed():
                # we bypassed SQLAlchemy, so tell the pool this connection is dead; the idle
                # ones most likely died with it (a restarted server, a cut network)
                await conn.invalidate()
                await conn.close()
                idle, self._idle = self._idle, []
                for other, _ in idle:
                    await other.invalidate()
                    await other.close()
            else:
                await self._release(conn, pg)
            raise
        await self._release(conn, pg)

    async def _release(self, conn: AsyncConnection, pg: Any) -> None:
        if len(self._idle) < self.keep_idle and not pg.is_in_transaction():
            self._idle.append((conn, pg))
        else:
            await conn.close()

    async def execute(self, statement: Statement, params: dict[str, Any]) -> int:
        async with self._connection() as pg:
            try:
                status = await pg.execute(statement.postgresql, *statement.args(params))
            except self._unique_violation as exc:
                refusal = _refusal(exc, params)
                if refusal is None:
                    raise
                raise refusal from exc
        return _rowcount(status)

    async def fetch(self, statement: Statement, params: dict[str, Any]) -> list[dict[str, Any]]:
        async with self._connection() as pg:
            try:
                records = await pg.fetch(statement.postgresql, *statement.args(params))
            except self._unique_violation as exc:
                refusal = _refusal(exc, params)
                if refusal is None:
                    raise
                raise refusal from exc
        return [dict(record) for record in records]

    async def aclose(self) -> None:
        idle, self._idle = self._idle, []
        for conn, _ in idle:
            await conn.close()


def _refusal(exc: Exception, params: dict[str, Any]) -> Exception | None:
    """What a unique violation on the runs table means: InvalidInputError for a run_id that
    already names a run, ConflictError for a second running run on a thread (the partial
    index); None for any other constraint."""
    message = str(exc)
    constraint = getattr(exc, "constraint_name", None)  # asyncpg names it; sqlite3 says it
    run_id, thread_id = params.get("run_id"), params.get("thread_id")
    if constraint in _RUN_ID_KEYS or "UNIQUE constraint failed: runs.run_id" in message:
        return InvalidInputError(
            f"run_id {run_id!r} already names a run: a run_id names exactly one run",
            run_id=run_id,
            thread_id=thread_id,
        )
    if constraint == _ONE_RUNNING_INDEX or "UNIQUE constraint failed: runs.thread_id" in message:
        return ConflictError(
            f"thread {thread_id!r} already has a running run; "
            f"run {run_id!r} cannot start too ({message})",
            run_id=run_id,
            thread_id=thread_id,
        )
    return None


def _rowcount(status: str) -> int:
    """The row count at the end of an asyncpg command tag such as 'UPDATE 1'."""
    tail = status.rsplit(" ", 1)[-1]
    return int(tail) if tail.isdigit() else 0


# -- several workers ------------------------------------------------------------------------

_CLAIMABLE = (
    "r.status = 'pending' AND r.shared_queue = 1 AND r.owner_worker_id IS NULL "
    "AND r.assistant_id IN ({assistants}) "
    # the thread is free: nothing running, and no older pending run (FIFO per thread)
    "AND NOT EXISTS (SELECT 1 FROM runs o WHERE o.thread_id = r.thread_id "
    "AND o.status = 'running') "
    "AND NOT EXISTS (SELECT 1 FROM runs e WHERE e.thread_id = r.thread_id "
    "AND e.status = 'pending' AND (e.created_at < r.created_at "
    "OR (e.created_at = r.created_at AND e.seq < r.seq)))"
)


# The database's clock, in the stored text form. A claim stamps started_at with it: a time
# taken by the client before the statement could precede the commit that freed the thread.
_DB_NOW = {
    "sqlite": "strftime('%Y-%m-%dT%H:%M:%f000+00:00', 'now')",
    "postgresql": "to_char(clock_timestamp() AT TIME ZONE 'UTC', "
    '\'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"\')',
}


@lru_cache(maxsize=32)
def _claim_sql(dialect: str, assistant_count: int) -> Statement:
    assistants = ", ".join(f":assistant_{i}" for i in range(assistant_count))
    # SKIP LOCKED lets PostgreSQL workers pass over a row another worker is claiming; one
    # SQLite statement holds the file's write lock, which serialises claims by itself
    lock = " FOR UPDATE SKIP LOCKED" if dialect == "postgresql" else ""
    now = _DB_NOW[dialect]
    return Statement.of(
        "UPDATE runs SET status = 'running', owner_worker_id = :worker_id, "
        f"lease_expires_at = :lease, started_at = {now}, "
        f"updated_at = {now}, attempt = attempt + 1 "
        "WHERE status = 'pending' AND run_id = (SELECT r.run_id FROM runs r WHERE "
        + _CLAIMABLE.format(assistants=assistants)
        + f" ORDER BY r.created_at, r.seq LIMIT 1{lock}) RETURNING {SELECT_COLUMNS}"
    )


@lru_cache(maxsize=64)
def _renew_sql(count: int) -> Statement:
    ids = ", ".join(f":run_{i}" for i in range(count))
    return Statement.of(
        "UPDATE runs SET lease_expires_at = :lease WHERE owner_worker_id = :worker_id "
        f"AND status IN ({_ACTIVE_SQL}) AND run_id IN ({ids}) "
        "RETURNING run_id, cancel_requested_at, cancel_action"
    )


_REQUEST_CANCEL = Statement.of(
    "UPDATE runs SET cancel_requested_at = :now, cancel_action = :action, updated_at = :now "
    f"WHERE run_id = :run_id AND status IN ({_ACTIVE_SQL}) "
    "RETURNING owner_worker_id, lease_expires_at"
)
_PG_REQUEST_CANCEL = Statement.of(
    "WITH asked AS (UPDATE runs SET cancel_requested_at = :now, cancel_action = :action, "
    f"updated_at = :now WHERE run_id = :run_id AND status IN ({_ACTIVE_SQL}) "
    "RETURNING run_id, owner_worker_id, lease_expires_at) "
    # NOTIFY reaches the owner as soon as this autocommit statement commits
    "SELECT owner_worker_id, lease_expires_at, pg_notify('runstore_cancel', run_id) "
    "FROM asked"
)
_LIST_EXPIRED = Statement.of(
    f"SELECT {SELECT_COLUMNS} FROM runs WHERE owner_worker_id IS NOT NULL "
    f"AND status IN ({_ACTIVE_SQL}) AND lease_expires_at < :expired_before "
    "ORDER BY created_at, seq"
)
_EXPIRED_GUARD = (
    f"WHERE run_id = :run_id AND status IN ({_ACTIVE_SQL}) "
    "AND lease_expires_at IS NOT NULL AND lease_expires_at < :expired_before"
)
_RECOVER_REQUEUE = Statement.of(
    "UPDATE runs SET status = 'pending', owner_worker_id = NULL, lease_expires_at = NULL, "
    f"shared_queue = 1, started_at = NULL, updated_at = :now {_EXPIRED_GUARD}"
)
_RECOVER_ERROR = Statement.of(
    "UPDATE runs SET status = 'error', error = :error, stop_reason = 'orphan_recovered', "
    f"ended_at = :now, updated_at = :now {_EXPIRED_GUARD}"
)
_RELEASE = Statement.of(
    "UPDATE runs SET lease_expires_at = NULL, owner_worker_id = CASE WHEN shared_queue = 1 "
    "AND status = 'pending' THEN NULL ELSE owner_worker_id END "
    f"WHERE owner_worker_id = :worker_id AND status IN ({_ACTIVE_SQL})"
)
_PG_NOTIFY_QUEUE = Statement.of("SELECT pg_notify('runstore_queue', :assistant_id)")


class _WorkerQueries:
    """The SQLRunStore primitives for several workers (mixed into SQLRunStore)."""

    dialect: str
    _driver: _SQLiteDriver | _PostgresDriver

    async def claim_next(
        self, *, worker_id: str, assistant_ids: Sequence[str], lease_expires_at: str
    ) -> dict[str, Any] | None:
        if not assistant_ids:
            return None
        params: dict[str, Any] = {"worker_id": worker_id, "lease": lease_expires_at}
        params.update({f"assistant_{i}": name for i, name in enumerate(assistant_ids)})
        try:
            rows = await self._driver.fetch(_claim_sql(self.dialect, len(assistant_ids)), params)
        except ConflictError:
            return None  # another worker started a run of that thread first; try again later
        return _decode(rows[0]) if rows else None

    async def renew_leases(
        self, *, worker_id: str, run_ids: Sequence[str], lease_expires_at: str
    ) -> list[dict[str, Any]]:
        if not run_ids:
            return []
        params: dict[str, Any] = {"worker_id": worker_id, "lease": lease_expires_at}
        params.update({f"run_{i}": run_id for i, run_id in enumerate(run_ids)})
        # statement shapes are cached per count: round it up so they stay few
        padded = 1 << (len(run_ids) - 1).bit_length()
        params.update({f"run_{i}": run_ids[0] for i in range(len(run_ids), padded)})
        return await self._driver.fetch(_renew_sql(padded), params)

    async def request_cancel(self, run_id: str, *, action: str) -> dict[str, Any] | None:
        statement = _PG_REQUEST_CANCEL if self.dialect == "postgresql" else _REQUEST_CANCEL
        rows = await self._driver.fetch(
            statement, {"run_id": run_id, "action": action, "now": now_iso()}
        )
        return rows[0] if rows else None

    async def list_expired(self, *, expired_before: str) -> list[dict[str, Any]]:
        rows = await self._driver.fetch(_LIST_EXPIRED, {"expired_before": expired_before})
        return [_decode(row) for row in rows]

    async def recover_expired(
        self, run_id: str, *, expired_before: str, requeue: bool, error: str
    ) -> str | None:
        params = {"run_id": run_id, "expired_before": expired_before, "now": now_iso()}
        if requeue:
            changed = await self._driver.execute(_RECOVER_REQUEUE, params)
            return "pending" if changed else None
        params["error"] = error
        changed = await self._driver.execute(_RECOVER_ERROR, params)
        return "error" if changed else None

    async def release_leases(self, *, worker_id: str) -> int:
        return await self._driver.execute(_RELEASE, {"worker_id": worker_id})

    async def listen(self, on_notice: Any) -> None:
        """LISTEN for cancel requests and queue entries until the connection drops.

        PostgreSQL only, on a dedicated asyncpg connection outside the pool (a listening
        connection cannot be shared). ``on_notice(channel, payload)`` runs on the loop.
        """
        import asyncpg

        driver = self._driver
        assert isinstance(driver, _PostgresDriver)  # the workers listen on PostgreSQL only
        url = driver.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        conn = await asyncpg.connect(url)
        closed = asyncio.Event()
        conn.add_termination_listener(lambda _conn: closed.set())
        try:
            for channel in ("runstore_cancel", "runstore_queue"):
                await conn.add_listener(
                    channel, lambda _conn, _pid, name, payload: on_notice(name, payload)
                )
            await closed.wait()
        finally:
            if not conn.is_closed():
                await conn.close()

    async def notify_queue(self, assistant_id: str) -> None:
        """Wake dispatchers listening for new shared-queue runs (PostgreSQL only)."""
        if self.dialect == "postgresql":
            await self._driver.fetch(_PG_NOTIFY_QUEUE, {"assistant_id": assistant_id or ""})


class _ReadAccess:
    """The store as ``reads.RunsDatabase``: its driver, row decoding and checkpointer."""

    def __init__(self, store: SQLRunStore) -> None:
        self._store = store

    @property
    def dialect(self) -> str:
        return self._store.dialect

    async def fetch(self, statement: Statement, params: dict[str, Any]) -> list[dict[str, Any]]:
        return await self._store._driver.fetch(statement, params)

    async def fetch_runs(
        self, statement: Statement, params: dict[str, Any]
    ) -> list[dict[str, Any]]:
        return await self._store._fetch(statement, params)

    async def execute(self, statement: Statement, params: dict[str, Any]) -> int:
        return await self._store._driver.execute(statement, params)

    async def delete_checkpoints(self, run_ids: list[str]) -> None:
        await self._store.checkpointer.adelete_for_runs(run_ids)


class SQLRunStore(_WorkerQueries, RunStore):
    """A RunStore in the ``runs`` table of a SQLite file or a PostgreSQL database.

    ``SQLRunStore(engine)`` uses an engine you made (call ``await store.setup()`` once, and
    ``await store.aclose()`` when done); ``SQLRunStore.from_url(url)`` makes the engine,
    migrates the schema and disposes of everything on exit. ``store.checkpointer`` is a
    SQLAlchemySaver on the same engine. ``SQLRunStore.open_read_only(path)`` reads a SQLite
    file without an engine.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        from sqlalchemy.ext.asyncio import AsyncEngine

        if not isinstance(engine, AsyncEngine):
            raise InvalidInputError(
                f"SQLRunStore needs a sqlalchemy AsyncEngine, got {type(engine).__name__}; "
                "use SQLRunStore.from_url(url) to build one from a URL"
            )
        install_sqlite_pragmas(engine)
        dialect = engine.dialect.name
        driver = _SQLiteDriver(engine) if dialect == "sqlite" else _PostgresDriver(engine)
        self._attach(engine, dialect, driver)

    def _attach(
        self, engine: AsyncEngine | None, dialect: str, driver: _SQLiteDriver | _PostgresDriver
    ) -> None:
        self._engine = engine
        self.dialect = dialect
        self._driver = driver
        self._checkpointer: SQLAlchemySaver | None = None
        self._read_access = _ReadAccess(self)

    @classmethod
    def open_read_only(cls, path: str | os.PathLike[str]) -> SQLRunStore:
        """A store that reads the SQLite file at ``path`` with no engine (nor SQLAlchemy).

        The file is opened read-only: never created, migrated or switched to WAL, and its
        schema is not checked. Statements run on the calling thread; while another process
        holds the file they wait for it (up to the busy timeout) rather than fail. Writes
        fail; ``engine``, ``checkpointer`` and ``setup()`` raise DatabaseConfigError.
        ``await store.aclose()`` closes the file. Raises sqlite3.Error if it cannot be opened.
        """
        store = cls.__new__(cls)
        store._attach(None, "sqlite", _SQLiteDriver(None, read_only_file=Path(path)))
        return store

    @property
    def engine(self) -> AsyncEngine:
        """The store's engine (DatabaseConfigError for a store from ``open_read_only``)."""
        if self._engine is None:
            raise DatabaseConfigError(
                "this SQLRunStore reads a SQLite file read-only, without an engine "
                "(open_read_only): use SQLRunStore.from_url(url) to write, migrate or checkpoint"
            )
        return self._engine

    @classmethod
    @asynccontextmanager
    async def from_url(cls, url: str | URL, **engine_kwargs: Any) -> AsyncIterator[SQLRunStore]:
        """Open a store on ``url``, creating or migrating the schema; dispose on exit."""
        engine = create_engine(url, **engine_kwargs)
        store = cls(engine)
        try:
            await store.setup()
            yield store
        finally:
            await store.aclose()
            await engine.dispose()

    async def setup(self) -> None:
        """Create or migrate the runs and checkpoint tables. Idempotent."""
        await migrate(self.engine)

    async def aclose(self) -> None:
        """Release the store's (and its checkpointer's) connections; the engine stays open."""
        await self._driver.aclose()
        if self._checkpointer is not None:
            await self._checkpointer.aclose()

    @property
    def checkpointer(self) -> SQLAlchemySaver:
        """A SQLAlchemySaver on this store's engine (created once, then reused)."""
        if self._checkpointer is None:
            from langgraph_runstore.checkpoint import SQLAlchemySaver

            self._checkpointer = SQLAlchemySaver(self.engine)
        return self._checkpointer

    # -- writes ---------------------------------------------------------------------------

    async def put(self, run_id: str, *, thread_id: str, **fields: Any) -> None:
        row = _encode(prepare_row(run_id, thread_id, fields, check_json=False))
        lock = self.dialect == "postgresql" and row.get("status") in ACTIVE_STATUS_VALUES
        await self._driver.execute(_upsert_sql(tuple(row), lock), row)

    async def insert_if_thread_idle(self, run_id: str, *, thread_id: str, **fields: Any) -> bool:
        row = _encode(prepare_row(run_id, thread_id, fields, check_json=False))
        if self.dialect == "postgresql":
            full = {name: row.get(name, _PG_ROW_DEFAULTS.get(name)) for name in ROW_FIELDS}
            found = await self._driver.fetch(
                # run_id is not a parameter; it names the run in a refusal
                _PG_ADMIT,
                {"thread_id": thread_id, "row": json.dumps(full), "run_id": run_id},
            )
            return bool(found and found[0]["admitted"])
        # one INSERT ... SELECT takes SQLite's write lock before it reads: atomic on its own
        return bool(await self._driver.execute(_insert_if_idle_sql(tuple(row)), row))

    def _status_statement(
        self,
        run_id: str,
        status: str,
        error: str | None,
        fields: Mapping[str, Any] | None,
        *,
        returning: bool,
    ) -> tuple[str, Statement, dict[str, Any]]:
        if fields is None:
            value = RunStatus.parse(status, run_id=run_id).value
            params = {"run_id": run_id, "status": value, "now": now_iso(), "error": error}
            return value, _update_status_sql(value, error is not None, returning), params
        value, checked = prepare_completion(run_id, status, dict(fields), check_json=False)
        params = _encode(checked, run_id=run_id)
        params.update(run_id=run_id, status=value, now=now_iso())
        return value, _completion_sql(value, tuple(sorted(checked)), returning), params

    async def get_status(self, run_id: str) -> dict[str, Any] | None:
        found = await self._driver.fetch(_STATUS, {"run_id": run_id})
        return found[0] if found else None

    async def write_status(
        self,
        run_id: str,
        status: str,
        *,
        error: str | None = None,
        fields: Mapping[str, Any] | None = None,
    ) -> StatusWrite:
        """One ``UPDATE ... RETURNING``: the answer is the row the write left. Only a write
        that matched nothing reads the row again, to tell a missing row from a final one."""
        _, statement, params = self._status_statement(run_id, status, error, fields, returning=True)
        try:
            written = await self._driver.fetch(statement, params)
        except ConflictError as exc:
            exc.thread_id = (await self.get_status(run_id) or {}).get("thread_id")
            raise
        if written:
            return StatusWrite(applied=True, stored=written[0])
        return StatusWrite(applied=False, stored=await self.get_status(run_id))

    async def _update(
        self, run_id: str, status: str, error: str | None, fields: Mapping[str, Any] | None
    ) -> bool:
        value, statement, params = self._status_statement(
            run_id, status, error, fields, returning=False
        )
        try:
            if await self._driver.execute(statement, params):
                return True
        except ConflictError as exc:
            exc.thread_id = (await self.get_status(run_id) or {}).get("thread_id")
            raise
        current = await self.get_status(run_id)
        if current is None:
            return False
        raise InvalidTransitionError(
            f"run {run_id!r} cannot go from {current['status']!r} to {value!r}: "
            "a final status never changes",
            run_id=run_id,
            thread_id=current["thread_id"],
            current=current["status"],
            requested=value,
        )

    async def update_status(self, run_id: str, status: str, *, error: str | None = None) -> bool:
        return await self._update(run_id, status, error, None)

    async def update_run_completion(self, run_id: str, *, status: str, **kwargs: Any) -> bool:
        return await self._update(run_id, status, None, kwargs)

    async def delete(self, run_id: str) -> bool:
        return bool(await self._driver.execute(_DELETE, {"run_id": run_id}))

    # -- reads ----------------------------------------------------------------------------

    async def _fetch(self, statement: Statement, params: dict[str, Any]) -> list[dict[str, Any]]:
        return [_decode(row) for row in await self._driver.fetch(statement, params)]

    async def get(self, run_id: str) -> dict[str, Any] | None:
        rows = await self._fetch(_GET, {"run_id": run_id})
        return rows[0] if rows else None

    async def list_by_thread(
        self, thread_id: str, *, user_id: str | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"thread_id": thread_id, "limit": int(limit)}
        if user_id is None:
            return await self._fetch(_LIST_THREAD, params)
        params["user_id"] = user_id
        return await self._fetch(_LIST_THREAD_USER, params)

    async def list_inflight(
        self, *, before: str | None = None, thread_id: str | None = None
    ) -> list[dict[str, Any]]:
        clauses = [f"(status IS NULL OR status IN ({_ACTIVE_SQL}))"]
        params: dict[str, Any] = {}
        if before is not None:
            clauses.append("created_at < :before")
            params["before"] = normalize_timestamp(before, name="before")
        if thread_id is not None:
            clauses.append("thread_id = :thread_id")
            params["thread_id"] = thread_id
        return await self._fetch(_inflight_sql(tuple(clauses)), params)

    # -- reading and retention (the SQL lives in store/reads.py) -------------------------

    async def list_runs(
        self,
        *,
        thread_id: str | None = None,
        status: str | RunStatus | Iterable[str | RunStatus] | None = None,
        user_id: str | None = None,
        since: str | datetime | timedelta | None = None,
        until: str | datetime | timedelta | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> RunPage[dict[str, Any]]:
        args = list_arguments(
            thread_id=thread_id,
            status=status,
            user_id=user_id,
            since=since,
            until=until,
            limit=limit,
            cursor=cursor,
        )
        return await reads.list_runs(self._read_access, **args)

    async def aggregate_usage(
        self,
        *,
        by: str = "model",
        since: str | datetime | timedelta | None = None,
        until: str | datetime | timedelta | None = None,
        thread_id: str | None = None,
        user_id: str | None = None,
    ) -> list[UsageRow]:
        return await reads.aggregate_usage(
            self._read_access,
            by=check_grouping(by),
            thread_id=thread_id,
            user_id=user_id,
            **window_arguments(since, until),
        )

    async def top_runs(
        self,
        *,
        by: str = "duration",
        since: str | datetime | timedelta | None = None,
        until: str | datetime | timedelta | None = None,
        limit: int = 10,
    ) -> list[dict[str, Any]]:
        return await reads.top_runs(
            self._read_access,
            by=check_top_order(by),
            limit=check_limit(limit),
            **window_arguments(since, until),
        )

    async def prune_runs(
        self,
        *,
        older_than: str | datetime | timedelta,
        include_checkpoints: bool = True,
        dry_run: bool = False,
        on_progress: Callable[[int], None] | None = None,
        max_batch: int = 2000,
    ) -> PruneResult:
        return await reads.prune_runs(
            self._read_access,
            cutoff=prune_cutoff(older_than),
            include_checkpoints=include_checkpoints,
            dry_run=dry_run,
            on_progress=on_progress,
            max_batch=check_limit(max_batch, name="max_batch"),
        )

    async def run_checkpoints(self, run_id: str) -> list[dict[str, Any]]:
        return await reads.run_checkpoints(self._read_access, run_id)


@lru_cache(maxsize=8)
def _inflight_sql(clauses: Sequence[str]) -> Statement:
    return Statement.of(
        f"SELECT {SELECT_COLUMNS} FROM runs WHERE {' AND '.join(clauses)} ORDER BY created_at, seq"
    )
