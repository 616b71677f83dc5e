"""SQLRunStore: the RunStore on a SQLAlchemy AsyncEngine (sqlite+aiosqlite, postgresql+asyncpg
or postgresql+psycopg).

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
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from langgraph_runstore.db.engine import (
    create_engine,
    install_sqlite_pragmas,
)
from langgraph_runstore.db.migrations import setup as migrate
from langgraph_runstore.errors import (
    ConflictError,
    DatabaseConfigError,
    InvalidInputError,
    InvalidTransitionError,
)
from langgraph_runstore.query import (
    MetadataFilter,
    PruneResult,
    RunPage,
    UsageRow,
    check_grouping,
    check_limit,
    check_top_order,
    filter_arguments,
    list_arguments,
    prune_cutoff,
    window_arguments,
)
from langgraph_runstore.schemas import (
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
    StatusGuard,
    StatusWrite,
    allowed_from,
    prepare_completion,
    prepare_row,
    status_stamps,
)
from langgraph_runstore.store.drivers import PostgresDriver, SQLiteDriver
from langgraph_runstore.store.journal_sql import EventQueries
from langgraph_runstore.store.leases import WorkerQueries
from langgraph_runstore.store.statements import (
    SELECT_COLUMNS,
    Statement,
    decode_row,
    encode_row,
    inflight_select,
    insert_if_idle,
)
from langgraph_runstore.text import storable_text

if TYPE_CHECKING:
    from sqlalchemy.engine import URL
    from sqlalchemy.ext.asyncio import AsyncEngine

    from langgraph_runstore.checkpoint import SQLAlchemySaver

logger = logging.getLogger(__name__)

_ACTIVE_SQL = ", ".join(f"'{status}'" for status in ACTIVE_STATUS_VALUES)
_ONE_RUNNING_INDEX = "runs_one_running_per_thread"
# PostgreSQL's names for the key on run_id (the primary key; a UNIQUE in older schemas)
_RUN_ID_KEYS = frozenset({"runs_pkey", "runs_run_id_key"})


@lru_cache(maxsize=64)
def _insert_sql(columns: tuple[str, ...], lock_thread: bool, upsert: bool) -> Statement:
    """INSERT of a row; ``upsert`` replaces the given columns of an existing run_id, else a
    reused run_id is a unique violation (InvalidInputError, see drivers.refusal)."""
    names = ", ".join(columns)
    values = ", ".join(f":{name}" for name in columns)
    updates = ", ".join(f"{name} = excluded.{name}" for name in columns if name != "run_id")
    on_conflict = f" ON CONFLICT (run_id) DO UPDATE SET {updates}" if upsert else ""
    if lock_thread:
        # PostgreSQL only: holds the thread's admission lock until commit, so a concurrent
        # reject admission (which takes the same lock, then reads) sees this row
        return Statement.of(
            "WITH thread_lock AS (SELECT pg_advisory_xact_lock(hashtextextended(:thread_id, 0))) "
            f"INSERT INTO runs ({names}) SELECT {values} FROM thread_lock{on_conflict}"
        )
    return Statement.of(f"INSERT INTO runs ({names}) VALUES ({values}){on_conflict}")


WriteGuard = StatusGuard | None


def _guard(status: str, strictness: WriteGuard = None) -> str:
    if strictness is not None and strictness.only_from_active:
        guard = f"(status IS NULL OR status IN ({_ACTIVE_VALUES}))"
    else:
        allowed = ", ".join(f"'{value}'" for value in allowed_from(status))
        guard = f"(status IS NULL OR status = :status OR status IN ({allowed}))"
    if strictness is not None and strictness.yield_to_cancel:
        guard += " AND cancel_requested_at IS NULL"
    return guard


_ACTIVE_VALUES = ", ".join(f"'{value}'" for value in ACTIVE_STATUS_VALUES)


_RETURNING_STATUS = f" RETURNING thread_id, {', '.join(STATUS_FIELDS)}"


@lru_cache(maxsize=32)
def _update_status_sql(
    status: str, with_error: bool, returning: bool, strictness: WriteGuard = None
) -> Statement:
    sets = ["status = :status", "updated_at = :now"]
    sets += [f"{name} = COALESCE({name}, :now)" for name in status_stamps(status, "")]
    if with_error:
        sets.append("error = :error")
    return Statement.of(
        f"UPDATE runs SET {', '.join(sets)} "
        f"WHERE run_id = :run_id AND {_guard(status, strictness)}"
        + (_RETURNING_STATUS if returning else "")
    )


@lru_cache(maxsize=128)
def _completion_sql(
    status: str, columns: tuple[str, ...], returning: bool, strictness: WriteGuard = None
) -> Statement:
    sets = ["status = :status", "updated_at = :now"]
    sets += [f"{name} = :{name}" for name in columns]
    sets += [
        f"{name} = COALESCE({name}, :now)"
        for name in status_stamps(status, "")
        if name not in columns
    ]
    return Statement.of(
        f"UPDATE runs SET {', '.join(sets)} "
        f"WHERE run_id = :run_id AND {_guard(status, strictness)}"
        + (_RETURNING_STATUS if returning else "")
    )


_GET = Statement.of(f"SELECT {SELECT_COLUMNS} FROM runs WHERE run_id = :run_id")
_GET_BY_KEY = Statement.of(f"SELECT {SELECT_COLUMNS} FROM runs WHERE idempotency_key = :key")
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
            "unpriced_calls",
            "llm_ms",
            "message_count",
            "attempt",
            "shared_queue",
        ),
        0,
    ),
}


class _ReadAccess:
    """The store as ``reads.RunsDatabase``: its driver, row decoding and checkpointer."""

    def __init__(self, store: SQLRunStore) -> None:
        self._store = store

    @property
    def dialect(self) -> str:
        return self._store.dialect

    async def fetch(self, statement: Statement, params: dict[str, Any]) -> list[dict[str, Any]]:
        return await self._store.driver.fetch(statement, params)

    async def fetch_runs(
        self, statement: Statement, params: dict[str, Any]
    ) -> list[dict[str, Any]]:
        return await self._store._fetch(statement, params)

    async def execute(self, statement: Statement, params: dict[str, Any]) -> int:
        return await self._store.driver.execute(statement, params)

    async def delete_checkpoints(self, run_ids: list[str]) -> None:
        await self._store.checkpointer.adelete_for_runs(run_ids)


class SQLRunStore(WorkerQueries, EventQueries, RunStore):
    """A RunStore in the ``runs`` table of a SQLite file or a PostgreSQL database.

    ``SQLRunStore(engine)`` uses an engine you made (call ``await store.setup()`` once, and
    ``await store.aclose()`` when done); ``SQLRunStore.from_url(url)`` makes the engine,
    migrates the schema and disposes of everything on exit. ``store.checkpointer`` is a
    SQLAlchemySaver on the same engine. ``SQLRunStore.open_read_only(path)`` reads a SQLite
    file without an engine.

    On SQLite, short statements run right on the calling thread (tens of microseconds, less
    than a hop to aiosqlite's thread); ``sqlite_direct=False`` keeps every one off the event
    loop's thread, as servers that forbid blocking calls there require.
    """

    def __init__(self, engine: AsyncEngine, *, sqlite_direct: bool = True) -> None:
        from sqlalchemy.ext.asyncio import AsyncEngine

        if not isinstance(engine, AsyncEngine):
            raise InvalidInputError(
                f"SQLRunStore needs a sqlalchemy AsyncEngine, got {type(engine).__name__}; "
                "use SQLRunStore.from_url(url) to build one from a URL"
            )
        if not isinstance(sqlite_direct, bool):
            raise InvalidInputError(f"sqlite_direct must be True or False, got {sqlite_direct!r}")
        install_sqlite_pragmas(engine)
        dialect = engine.dialect.name
        driver = (
            SQLiteDriver(engine, direct=sqlite_direct)
            if dialect == "sqlite"
            else PostgresDriver(engine)
        )
        self._attach(engine, dialect, driver)

    def _attach(
        self, engine: AsyncEngine | None, dialect: str, driver: SQLiteDriver | PostgresDriver
    ) -> None:
        self._engine = engine
        self.dialect = dialect
        self.driver = driver
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
        store._attach(None, "sqlite", SQLiteDriver(None, read_only_file=Path(path)))
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
    async def from_url(
        cls,
        url: str | os.PathLike[str] | URL,
        *,
        sqlite_direct: bool = True,
        **engine_kwargs: Any,
    ) -> AsyncIterator[SQLRunStore]:
        """Open a store on ``url`` (a URL, or a plain path to a SQLite file, see
        ``db.normalize_url``), creating or migrating the schema; dispose on exit.

        ``sqlite_direct`` is the constructor's; other keywords go to ``create_engine``.
        """
        engine = create_engine(url, **engine_kwargs)
        store = cls(engine, sqlite_direct=sqlite_direct)
        try:
            await store.setup()
            yield store
        finally:
            await store.aclose()
            await engine.dispose()

    async def setup(self) -> None:
        """Create or migrate the runs and checkpoint tables. Idempotent."""
        await migrate(self.engine)
        self.home_loop = asyncio.get_running_loop()

    async def aclose(self) -> None:
        """Release the store's (and its checkpointer's) connections; the engine stays open."""
        await self.driver.aclose()
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
        await self._insert(run_id, thread_id, fields, upsert=True)

    async def insert(self, run_id: str, *, thread_id: str, **fields: Any) -> None:
        await self._insert(run_id, thread_id, fields, upsert=False)

    async def _insert(
        self, run_id: str, thread_id: str, fields: dict[str, Any], *, upsert: bool
    ) -> None:
        row = encode_row(prepare_row(run_id, thread_id, fields, check_json=False))
        lock = self.dialect == "postgresql" and row.get("status") in ACTIVE_STATUS_VALUES
        await self.driver.execute(_insert_sql(tuple(row), lock, upsert), row)

    async def insert_if_thread_idle(self, run_id: str, *, thread_id: str, **fields: Any) -> bool:
        row = encode_row(prepare_row(run_id, thread_id, fields, check_json=False))
        if self.dialect == "postgresql":
            full = {name: row.get(name, _PG_ROW_DEFAULTS.get(name)) for name in ROW_FIELDS}
            found = await self.driver.fetch(
                # run_id is not a parameter; it names the run in a refusal
                _PG_ADMIT,
                {
                    "thread_id": thread_id,
                    "row": json.dumps(full),
                    "run_id": run_id,
                    "idempotency_key": row.get("idempotency_key"),
                },
            )
            return bool(found and found[0]["admitted"])
        # one INSERT ... SELECT takes SQLite's write lock before it reads: atomic on its own
        return bool(await self.driver.execute(insert_if_idle(tuple(row), _ACTIVE_SQL), row))

    def _status_statement(
        self,
        run_id: str,
        status: str,
        error: str | None,
        fields: Mapping[str, Any] | None,
        *,
        returning: bool,
        strictness: WriteGuard = None,
    ) -> tuple[str, Statement, dict[str, Any]]:
        if fields is None:
            value = RunStatus.parse(status, run_id=run_id).value
            if error is not None:
                error = storable_text(error)
            params = {"run_id": run_id, "status": value, "now": now_iso(), "error": error}
            statement = _update_status_sql(value, error is not None, returning, strictness)
            return value, statement, params
        value, checked = prepare_completion(run_id, status, fields, check_json=False)
        params = encode_row(checked, run_id=run_id)
        params.update(run_id=run_id, status=value, now=now_iso())
        columns = tuple(sorted(checked))
        return value, _completion_sql(value, columns, returning, strictness), params

    async def get_status(self, run_id: str) -> dict[str, Any] | None:
        found = await self.driver.fetch(_STATUS, {"run_id": run_id})
        return found[0] if found else None

    async def write_status(
        self,
        run_id: str,
        status: str,
        *,
        error: str | None = None,
        fields: Mapping[str, Any] | None = None,
        only_from_active: bool = False,
        yield_to_cancel: bool = False,
    ) -> StatusWrite:
        """One ``UPDATE ... RETURNING``: the answer is the row the write left. Only a write
        that matched nothing reads the row again, to tell a missing row from a final one."""
        strictness = (
            StatusGuard(only_from_active=only_from_active, yield_to_cancel=yield_to_cancel)
            if only_from_active or yield_to_cancel
            else None
        )
        _, statement, params = self._status_statement(
            run_id, status, error, fields, returning=True, strictness=strictness
        )
        try:
            written = await self.driver.fetch(statement, params)
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
            if await self.driver.execute(statement, params):
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
        return bool(await self.driver.execute(_DELETE, {"run_id": run_id}))

    async def delete_run(self, run_id: str, *, include_checkpoints: bool = True) -> bool:
        return await reads.delete_run(
            self._read_access, run_id, include_checkpoints=include_checkpoints
        )

    # -- reads ----------------------------------------------------------------------------

    async def _fetch(self, statement: Statement, params: dict[str, Any]) -> list[dict[str, Any]]:
        return [decode_row(row) for row in await self.driver.fetch(statement, params)]

    async def get(self, run_id: str) -> dict[str, Any] | None:
        rows = await self._fetch(_GET, {"run_id": run_id})
        return rows[0] if rows else None

    async def get_by_idempotency_key(self, idempotency_key: str) -> dict[str, Any] | None:
        rows = await self._fetch(_GET_BY_KEY, {"key": idempotency_key})
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
        return await self._fetch(inflight_select(tuple(clauses)), params)

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
        assistant_id: str | None = None,
        model: str | None = None,
        metadata: MetadataFilter = None,
    ) -> RunPage[dict[str, Any]]:
        args = list_arguments(
            thread_id=thread_id,
            status=status,
            user_id=user_id,
            since=since,
            until=until,
            limit=limit,
            cursor=cursor,
            assistant_id=assistant_id,
            model=model,
            metadata=metadata,
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
        assistant_id: str | None = None,
        model: str | None = None,
        metadata: MetadataFilter = None,
    ) -> list[UsageRow]:
        return await reads.aggregate_usage(
            self._read_access,
            by=check_grouping(by),
            thread_id=thread_id,
            user_id=user_id,
            **filter_arguments(assistant_id=assistant_id, model=model, metadata=metadata),
            **window_arguments(since, until),
        )

    async def top_runs(
        self,
        *,
        by: str = "duration",
        since: str | datetime | timedelta | None = None,
        until: str | datetime | timedelta | None = None,
        limit: int = 10,
        user_id: str | None = None,
    ) -> list[dict[str, Any]]:
        return await reads.top_runs(
            self._read_access,
            by=check_top_order(by),
            limit=check_limit(limit),
            user_id=user_id,
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
