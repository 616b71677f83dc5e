"""How the run store's statements reach the database: ``SQLiteDriver`` (a direct sqlite3
connection, falling back to the engine's aiosqlite one when the file is busy) and
``PostgresDriver`` (asyncpg or psycopg connections from the engine's pool), each committing
every statement by itself, and how their unique violations become the package's errors.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from langgraph_runstore.db.engine import DEFAULT_SQLITE_BUSY_TIMEOUT_MS, is_memory_sqlite
from langgraph_runstore.db.pg_connection import (
    constraint_name,
    install_autocommit_reset,
    is_psycopg,
    raw_connection,
    unique_violation,
)
from langgraph_runstore.db.pg_connection import listen as pg_listen
from langgraph_runstore.db.read_only import read_only_uri
from langgraph_runstore.errors import ConflictError, IdempotencyKeyError, InvalidInputError
from langgraph_runstore.store.statements import Statement

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

logger = logging.getLogger(__name__)

_ONE_RUNNING_INDEX = "runs_one_running_per_thread"
# PostgreSQL's names for the key on run_id (the primary key; a UNIQUE in older schemas)
_RUN_ID_KEYS = frozenset({"runs_pkey", "runs_run_id_key"})
_IDEMPOTENCY_KEY_INDEX = "runs_idempotency_key_idx"


class SQLiteDriver:
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

    ``direct=False`` sends every statement to aiosqlite's thread, for event loops where no
    blocking call is allowed (``langgraph dev`` raises on any, sqlite3's included).
    """

    def __init__(
        self,
        engine: AsyncEngine | None,
        *,
        read_only_file: Path | None = None,
        direct: bool = True,
    ) -> None:
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
        self._path = engine.url.database if plain_file and direct else None

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
        """Run on the calling thread if the file is free at once; BUSY otherwise.

        Without an engine to hand over to, wait for the file instead (never BUSY).
        """
        waits = self.engine is None
        if self._path is None or not self._direct_lock.acquire(blocking=waits):
            return BUSY
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
                return BUSY
            raise
        finally:
            self._direct_lock.release()

    def _open_direct(self, path: str) -> sqlite3.Connection:
        if self.engine is None:
            # never creates the file, never writes to it (nor switches it to WAL), and reads
            # it on read-only storage too (db.read_only)
            return sqlite3.connect(
                read_only_uri(Path(path)),
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
            if done is not BUSY:
                if self.engine is not None:
                    self._count_direct_statement()
                return done
            await asyncio.sleep(pause)
        return BUSY

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
                target=checkpoint_wal,
                args=(self._path,),
                name="langgraph-runstore WAL checkpoint",
                daemon=True,
            )
            self._checkpoint_thread = thread
            thread.start()

    async def execute(self, statement: Statement, params: dict[str, Any]) -> int:
        try:
            done = await self._run_direct(statement, params, fetch=False)
            if done is not BUSY:
                return int(done)
            raw = await self._connection()
            cursor = await raw.execute(statement.sqlite, params)
        except sqlite3.IntegrityError as exc:
            raise_refusal(exc, params)
        return int(cursor.rowcount)

    async def fetch(self, statement: Statement, params: dict[str, Any]) -> list[dict[str, Any]]:
        try:
            done = await self._run_direct(statement, params, fetch=True)
            if done is not BUSY:
                return done  # type: ignore[no-any-return]
            raw = await self._connection()
            cursor = await raw.execute(statement.sqlite, params)
            rows = await cursor.fetchall()
        except sqlite3.IntegrityError as exc:
            raise_refusal(exc, params)
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


BUSY = object()
# how long a checkpoint waits for a writer or reader in its way, and aclose() for it to end
_CHECKPOINT_BUSY_TIMEOUT = 0.1
_CHECKPOINT_JOIN_TIMEOUT = 5.0


def checkpoint_wal(path: str) -> None:
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


class PostgresDriver:
    """Each statement on a pooled connection (asyncpg or psycopg), autocommit; no lock
    across calls.

    Connections are borrowed from the engine's pool and, once used, kept in a small LIFO of
    idle ones (up to ``keep_idle``): checking a connection out of SQLAlchemy's pool costs more
    than the statement it carries. Concurrent callers each take their own connection. The
    statements are sent to the driver itself (``db.pg_connection``): ``$n`` parameters on
    both drivers, each statement committing by itself.
    """

    def __init__(self, engine: AsyncEngine, *, keep_idle: int = 4) -> None:
        self.engine = engine
        self.keep_idle = keep_idle
        self._idle: list[tuple[AsyncConnection, Any]] = []
        self._unique_violation = unique_violation(engine)
        self._psycopg = is_psycopg(engine)
        install_autocommit_reset(engine)

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[Any]:
        if self._idle:
            conn, pg = self._idle.pop()
        else:
            conn = await self.engine.connect()
            pg = await raw_connection(await conn.get_raw_connection())
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
        if pg.is_in_transaction():
            # a statement cut short (a cancelled caller): not worth handing to anyone
            await conn.invalidate()
            await conn.close()
        elif len(self._idle) < self.keep_idle:
            self._idle.append((conn, pg))
        else:
            await conn.close()

    async def execute(self, statement: Statement, params: dict[str, Any]) -> int:
        async with self._connection() as pg:
            try:
                status = await pg.execute(statement.postgresql, *statement.args(params))
            except self._unique_violation as exc:
                raise_refusal(exc, params)
        return rowcount(status)

    async def fetch(self, statement: Statement, params: dict[str, Any]) -> list[dict[str, Any]]:
        async with self._connection() as pg:
            try:
                if self._psycopg:
                    rows: list[dict[str, Any]] = await pg.fetch_dicts(
                        statement.postgresql, statement.args(params)
                    )
                    return rows
                records = await pg.fetch(statement.postgresql, *statement.args(params))
            except self._unique_violation as exc:
                raise_refusal(exc, params)
        return [dict(record) for record in records]

    async def aclose(self) -> None:
        idle, self._idle = self._idle, []
        for conn, _ in idle:
            await conn.close()

    async def listen(
        self,
        channels: Sequence[str],
        on_notice: Callable[[str, str], None],
        *,
        ready: Callable[[], None] | None = None,
    ) -> None:
        """LISTEN on ``channels`` until the connection drops: ``on_notice(channel,
        payload)`` on the loop for each NOTIFY, ``ready()`` once every LISTEN is in place.
        A dedicated connection (asyncpg or psycopg) outside the pool (``pg_connection``).
        """
        await pg_listen(self.engine, channels, on_notice, ready=ready)


def refusal(exc: BaseException, params: dict[str, Any]) -> Exception | None:
    """What a unique violation on the runs table means: InvalidInputError for a run_id that
    already names a run, ConflictError for a second running run on a thread (the partial
    index), IdempotencyKeyError for an idempotency key another run holds; None for any
    other constraint."""
    message = str(exc)
    constraint = constraint_name(exc)  # the PostgreSQL drivers name it; sqlite3 says it
    run_id, thread_id = params.get("run_id"), params.get("thread_id")
    if constraint in _RUN_ID_KEYS or "UNIQUE constraint failed: runs.run_id" in message:
        return InvalidInputError(
            f"run_id {run_id!r} already names a run: a run_id names exactly one run",
            run_id=run_id,
            thread_id=thread_id,
        )
    if (
        constraint == _IDEMPOTENCY_KEY_INDEX
        or "UNIQUE constraint failed: runs.idempotency_key" in message
    ):
        key = params.get("idempotency_key")
        return IdempotencyKeyError(
            f"idempotency_key {key!r} already names another run; run {run_id!r} was not written",
            run_id=run_id,
            thread_id=thread_id,
            idempotency_key=key if isinstance(key, str) else None,
        )
    if constraint == _ONE_RUNNING_INDEX or "UNIQUE constraint failed: runs.thread_id" in message:
        return ConflictError(
            f"thread {thread_id!r} already has a running run; "
            f"run {run_id!r} cannot start too ({message})",
            run_id=run_id,
            thread_id=thread_id,
        )
    return None


def raise_refusal(exc: BaseException, params: dict[str, Any]) -> NoReturn:
    """Raise what a driver's unique violation means (``refusal``), or ``exc`` itself."""
    refused = refusal(exc, params)
    if refused is None:
        raise exc
    raise refused from exc


def rowcount(status: str) -> int:
    """The row count at the end of a command tag such as 'UPDATE 1'."""
    tail = status.rsplit(" ", 1)[-1]
    return int(tail) if tail.isdigit() else 0


#: Either driver: ``execute`` returns the row count, ``fetch`` the rows as dicts.
Driver = SQLiteDriver | PostgresDriver

__all__ = [
    "BUSY",
    "Driver",
    "PostgresDriver",
    "SQLiteDriver",
    "checkpoint_wal",
    "raise_refusal",
    "refusal",
    "rowcount",
]
