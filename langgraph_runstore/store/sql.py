"""SQLRunStore: the RunStore on a SQLAlchemy AsyncEngine (sqlite+aiosqlite, postgresql+asyncpg).

Every primitive is one statement in one short transaction, except ``reject`` admission on
PostgreSQL, which takes a per-thread advisory lock first. Statement texts are built once
per shape and cached, so the hot path pays no SQL compilation.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from sqlalchemy import TextClause, text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine

from langgraph_runstore.db.engine import create_engine, install_sqlite_pragmas
from langgraph_runstore.db.migrations import setup as migrate
from langgraph_runstore.errors import InvalidInputError, InvalidTransitionError
from langgraph_runstore.schemas import ROW_FIELDS, RunStatus, normalize_timestamp, now_iso
from langgraph_runstore.store.base import (
    ACTIVE_STATUS_VALUES,
    RunStore,
    allowed_from,
    prepare_completion,
    prepare_row,
    status_stamps,
)

if TYPE_CHECKING:
    from langgraph_runstore.checkpoint import SQLAlchemySaver

_JSON_COLUMNS = frozenset({"metadata", "kwargs", "token_usage_by_model"})
_SELECT_COLUMNS = ", ".join(("seq", *ROW_FIELDS))
_ACTIVE_SQL = ", ".join(f"'{status}'" for status in ACTIVE_STATUS_VALUES)


def _encode(row: dict[str, Any]) -> dict[str, Any]:
    return {
        name: (json.dumps(value) if name in _JSON_COLUMNS and value is not None else value)
        for name, value in row.items()
    }


def _decode(mapping: Any) -> dict[str, Any]:
    row = dict(mapping)
    for name in _JSON_COLUMNS:
        value = row.get(name)
        if isinstance(value, str):
            row[name] = json.loads(value)
    return row


@lru_cache(maxsize=64)
def _upsert_sql(columns: tuple[str, ...], dialect: str, lock_thread: bool) -> TextClause:
    names = ", ".join(columns)
    values = ", ".join(f":{name}" for name in columns)
    updates = ", ".join(f"{name} = excluded.{name}" for name in columns if name != "run_id")
    if lock_thread:
        # holds the thread's admission lock until commit, so a concurrent reject admission
        # (which takes the same lock, then reads) sees this row
        return text(
            f"WITH thread_lock AS (SELECT pg_advisory_xact_lock(hashtextextended(:thread_id, 0))) "
            f"INSERT INTO runs ({names}) SELECT {values} FROM thread_lock "
            f"ON CONFLICT (run_id) DO UPDATE SET {updates}"
        )
    return text(
        f"INSERT INTO runs ({names}) VALUES ({values}) "
        f"ON CONFLICT (run_id) DO UPDATE SET {updates}"
    )


@lru_cache(maxsize=64)
def _insert_if_idle_sql(columns: tuple[str, ...]) -> TextClause:
    names = ", ".join(columns)
    values = ", ".join(f":{name}" for name in columns)
    return text(
        f"INSERT INTO runs ({names}) SELECT {values} WHERE NOT EXISTS "
        f"(SELECT 1 FROM runs WHERE thread_id = :thread_id AND status IN ({_ACTIVE_SQL}))"
    )


@lru_cache(maxsize=16)
def _update_status_sql(status: str, with_error: bool) -> TextClause:
    sets = ["status = :status", "updated_at = :now"]
    sets += [f"{name} = COALESCE({name}, :now)" for name in status_stamps(status, "")]
    if with_error:
        sets.append("error = :error")
    allowed = ", ".join(f"'{value}'" for value in allowed_from(status))
    return text(
        f"UPDATE runs SET {', '.join(sets)} WHERE run_id = :run_id "
        f"AND (status IS NULL OR status = :status OR status IN ({allowed}))"
    )


@lru_cache(maxsize=64)
def _completion_sql(status: str, columns: tuple[str, ...]) -> TextClause:
    sets = ["status = :status", "updated_at = :now"]
    sets += [f"{name} = :{name}" for name in columns]
    sets += [
        f"{name} = COALESCE({name}, :now)"
        for name in status_stamps(status, "")
        if name not in columns
    ]
    allowed = ", ".join(f"'{value}'" for value in allowed_from(status))
    return text(
        f"UPDATE runs SET {', '.join(sets)} WHERE run_id = :run_id "
        f"AND (status IS NULL OR status = :status OR status IN ({allowed}))"
    )


_GET_SQL = text(f"SELECT {_SELECT_COLUMNS} FROM runs WHERE run_id = :run_id")
_STATUS_SQL = text("SELECT status, thread_id FROM runs WHERE run_id = :run_id")
_DELETE_SQL = text("DELETE FROM runs WHERE run_id = :run_id")
_LIST_THREAD_SQL = text(
    f"SELECT {_SELECT_COLUMNS} FROM runs WHERE thread_id = :thread_id "
    "ORDER BY created_at DESC, seq ASC LIMIT :limit"
)
_LIST_THREAD_USER_SQL = text(
    f"SELECT {_SELECT_COLUMNS} FROM runs WHERE thread_id = :thread_id AND user_id = :user_id "
    "ORDER BY created_at DESC, seq ASC LIMIT :limit"
)
_PG_THREAD_LOCK_SQL = text("SELECT pg_advisory_xact_lock(hashtextextended(:thread_id, 0))")


class SQLRunStore(RunStore):
    """A RunStore in the ``runs`` table of a SQLite file or a PostgreSQL database.

    ``SQLRunStore(engine)`` uses an engine you made (call ``await store.setup()`` once);
    ``SQLRunStore.from_url(url)`` makes the engine, migrates the schema and disposes of the
    engine on exit. ``store.checkpointer`` is a SQLAlchemySaver on the same engine.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        if not isinstance(engine, AsyncEngine):
            raise InvalidInputError(
                f"SQLRunStore needs a sqlalchemy AsyncEngine, got {type(engine).__name__}; "
                "use SQLRunStore.from_url(url) to build one from a URL"
            )
        install_sqlite_pragmas(engine)
        self.engine = engine
        self.dialect = engine.dialect.name
        self._checkpointer: SQLAlchemySaver | None = None

    @classmethod
    @asynccontextmanager
    async def from_url(cls, url: str | URL, **engine_kwargs: Any) -> AsyncIterator[SQLRunStore]:
        """Open a store on ``url``, creating or migrating the schema; dispose on exit."""
        engine = create_engine(url, **engine_kwargs)
        try:
            store = cls(engine)
            await store.setup()
            yield store
        finally:
            await engine.dispose()

    async def setup(self) -> None:
        """Create or migrate the runs and checkpoint tables. Idempotent."""
        await migrate(self.engine)

    async def aclose(self) -> None:
        await self.engine.dispose()

    @property
    def checkpointer(self) -> SQLAlchemySaver:
        """A SQLAlchemySaver on this store's engine (created once, then reused)."""
        if self._checkpointer is None:
            from langgraph_runstore.checkpoint import SQLAlchemySaver

            self._checkpointer = SQLAlchemySaver(self.engine)
        return self._checkpointer

    # -- writes ---------------------------------------------------------------------------

    async def _write(self, statement: TextClause, params: dict[str, Any]) -> int:
        async with self.engine.begin() as conn:
            result = await conn.execute(statement, params)
            return int(result.rowcount)

    async def put(self, run_id: str, *, thread_id: str, **fields: Any) -> None:
        row = _encode(prepare_row(run_id, thread_id, fields))
        lock = self.dialect == "postgresql" and row.get("status") in ACTIVE_STATUS_VALUES
        await self._write(_upsert_sql(tuple(row), self.dialect, lock), row)

    async def insert_if_thread_idle(self, run_id: str, *, thread_id: str, **fields: Any) -> bool:
        row = _encode(prepare_row(run_id, thread_id, fields))
        statement = _insert_if_idle_sql(tuple(row))
        async with self.engine.begin() as conn:
            if self.dialect == "postgresql":
                # READ COMMITTED reads a fresh snapshot per statement: after the lock is ours,
                # the NOT EXISTS below sees every active run committed before us
                await conn.execute(_PG_THREAD_LOCK_SQL, {"thread_id": thread_id})
            result = await conn.execute(statement, row)
            return bool(result.rowcount)

    async def _missing_or_refused(self, run_id: str, status: str) -> bool:
        async with self.engine.connect() as conn:
            found = (await conn.execute(_STATUS_SQL, {"run_id": run_id})).first()
        if found is None:
            return False
        raise InvalidTransitionError(
            f"run {run_id!r} cannot go from {found.status!r} to {status!r}: "
            "a final status never changes",
            run_id=run_id,
            thread_id=found.thread_id,
            current=found.status,
            requested=status,
        )

    async def update_status(self, run_id: str, status: str, *, error: str | None = None) -> bool:
        value = RunStatus.parse(status, run_id=run_id).value
        params = {"run_id": run_id, "status": value, "now": now_iso(), "error": error}
        if await self._write(_update_status_sql(value, error is not None), params):
            return True
        return await self._missing_or_refused(run_id, value)

    async def update_run_completion(self, run_id: str, *, status: str, **kwargs: Any) -> bool:
        value, fields = prepare_completion(run_id, status, kwargs)
        params = _encode(fields)
        params.update(run_id=run_id, status=value, now=now_iso())
        if await self._write(_completion_sql(value, tuple(sorted(fields))), params):
            return True
        return await self._missing_or_refused(run_id, value)

    async def delete(self, run_id: str) -> bool:
        return bool(await self._write(_DELETE_SQL, {"run_id": run_id}))

    # -- reads ----------------------------------------------------------------------------

    async def _fetch(self, statement: TextClause, params: dict[str, Any]) -> list[dict[str, Any]]:
        async with self.engine.connect() as conn:
            result = await conn.execute(statement, params)
            return [_decode(row) for row in result.mappings()]

    async def get(self, run_id: str) -> dict[str, Any] | None:
        rows = await self._fetch(_GET_SQL, {"run_id": run_id})
        return rows[0] if rows else None

    async def list_by_thread(
        self, thread_id: str, *, user_id: str | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"thread_id": thread_id, "limit": int(limit)}
        if user_id is None:
            return await self._fetch(_LIST_THREAD_SQL, params)
        params["user_id"] = user_id
        return await self._fetch(_LIST_THREAD_USER_SQL, params)

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
        statement = text(
            f"SELECT {_SELECT_COLUMNS} FROM runs WHERE {' AND '.join(clauses)} "
            "ORDER BY created_at, seq"
        )
        return await self._fetch(statement, params)
