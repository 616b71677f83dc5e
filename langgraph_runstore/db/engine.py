"""The one engine factory: turns a database URL into an AsyncEngine with the right settings.

SQLite (aiosqlite) connections get WAL journaling, a busy timeout and ``synchronous=NORMAL``
on every connection; PostgreSQL goes through asyncpg or psycopg 3, with libpq's URL
parameters translated for asyncpg (``db.urls``). Any other driver is refused up front.

SQLAlchemy (and tenacity) load inside the functions that use them: importing this module,
``default_url()`` and ``sqlite_file()`` stay cheap for the CLI's read-only commands.
"""

from __future__ import annotations

import os
import sqlite3
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote

from langgraph_runstore.db.foreign import check_new_sqlite_connection, not_sqlite
from langgraph_runstore.db.migrations import VERSION_TABLE, created_names
from langgraph_runstore.db.urls import (
    as_url,
    asyncpg_arguments,
    check_pg_parameters,
    choose_driver,
)
from langgraph_runstore.errors import DatabaseConfigError

if TYPE_CHECKING:
    from sqlalchemy.engine import URL
    from sqlalchemy.ext.asyncio import AsyncEngine

#: Where runs go when nothing else is said: a SQLite file in the current directory.
DEFAULT_URL = "sqlite+aiosqlite:///runstore.db"

#: Environment variable that overrides DEFAULT_URL (the CLI and the examples read it).
URL_ENV_VAR = "LANGGRAPH_RUNSTORE_URL"


def default_url() -> str:
    """``$LANGGRAPH_RUNSTORE_URL`` if set, else ``sqlite+aiosqlite:///runstore.db``."""
    return os.environ.get(URL_ENV_VAR) or DEFAULT_URL


#: Milliseconds a SQLite connection waits for another writer before "database is locked".
DEFAULT_SQLITE_BUSY_TIMEOUT_MS = 5_000

_SQLITE_PREFIXES = ("sqlite:///", "sqlite+aiosqlite:///")


def sqlite_file(url: str) -> str | None:
    """The file a plain SQLite URL names, read without SQLAlchemy; None for any other URL.

    ``sqlite:///runs.db`` and ``sqlite+aiosqlite:////abs/runs.db`` give ``runs.db`` and
    ``/abs/runs.db``, as :func:`normalize_url` would. Other backends and drivers, in-memory
    databases and URLs with query options give None: :func:`normalize_url` handles them.
    """
    for prefix in _SQLITE_PREFIXES:
        if url.startswith(prefix):
            rest = url[len(prefix) :]
            if "?" in rest:
                return None
            database = unquote(rest)
            return database if database not in ("", ":memory:") else None
    return None


def normalize_url(url: str | os.PathLike[str] | URL) -> URL:
    """Parse ``url`` and pick its async driver; raise DatabaseConfigError for anything else.

    A plain path (``agent.db``, a ``pathlib.Path``) names a SQLite file (``db.urls.as_url``).
    ``sqlite:///x.db`` becomes ``sqlite+aiosqlite:///x.db``; ``postgresql://`` (or
    ``postgres://``) becomes ``postgresql+asyncpg://`` when asyncpg is installed, else
    ``postgresql+psycopg://``. A PostgreSQL URL's query parameters are checked against
    what its driver takes (``db.urls.check_pg_parameters``). A SQLite URL carrying SQLite's
    own file options (``?mode=ro``, ``?immutable=1`` …) is turned into the ``file:`` URI
    form (``uri=true``); the driver would otherwise ignore the options and open the file
    read-write.
    """
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    url = as_url(url)
    try:
        parsed = make_url(url)
        if parsed.drivername.split("+")[0] == "postgres":  # Heroku-style alias
            parsed = parsed.set(drivername="postgresql" + parsed.drivername[len("postgres") :])
    except (ArgumentError, ValueError) as exc:
        raise DatabaseConfigError(
            f"cannot parse database URL {str(url)!r}: expected e.g. 'agent.db', "
            "'sqlite+aiosqlite:///agent.db' or 'postgresql+asyncpg://user@host/db'"
        ) from exc
    backend, _, driver = parsed.drivername.partition("+")
    shown = parsed.render_as_string(hide_password=True)
    driver = choose_driver(backend, driver, shown)
    parsed = parsed.set(drivername=f"{backend}+{driver}")
    if backend == "postgresql":
        check_pg_parameters(parsed, shown)
        return parsed
    database = parsed.database or ""
    if (
        "uri" not in parsed.query
        and _SQLITE_URI_OPTIONS & set(parsed.query)
        and not database.startswith("file:")
    ):
        # an in-memory database is "file::memory:" (a bare "file:" would be a temp file)
        uri = "file::memory:" if database in ("", ":memory:") else _file_uri(database)
        parsed = parsed.set(database=uri).update_query_dict({"uri": "true"})
    return parsed


def _file_uri(path: str) -> str:
    """``path`` as a SQLite ``file:`` URI: ``?``, ``#`` and ``%`` escaped, no authority."""
    quoted = quote(path, safe="/:\\")
    # an absolute path gets an empty authority, so one starting with "//" is not read as one
    return f"file://{quoted}" if quoted.startswith("/") else f"file:{quoted}"


def sqlite_path(url: URL) -> str:
    """The file a parsed SQLite URL opens, for URI-form URLs (``file:…?uri=true``) too."""
    database = url.database or ""
    if url.query.get("uri") in ("true", "1") and database.startswith("file:"):
        path = database[len("file:") :].split("?", 1)[0].split("#", 1)[0]
        if path.startswith("//"):  # an authority (empty or "localhost"), then the path
            authority_and_path = path[2:]
            path = authority_and_path[authority_and_path.find("/") :] if "/" in path[2:] else ""
        database = unquote(path)
    return database


#: Query options that SQLite reads from a ``file:`` URI (https://sqlite.org/uri.html).
_SQLITE_URI_OPTIONS = frozenset({"mode", "cache", "immutable", "nolock", "psow", "vfs", "modeof"})


def is_memory_sqlite(url: URL) -> bool:
    """Whether a SQLite URL names an in-memory database (every form SQLite accepts)."""
    database = url.database or ""
    return (
        database in ("", ":memory:")
        or database.startswith("file::memory:")
        or "mode=memory" in str(url.query)
    )


def create_engine(
    url: str | os.PathLike[str] | URL,
    *,
    sqlite_busy_timeout_ms: int = DEFAULT_SQLITE_BUSY_TIMEOUT_MS,
    **engine_kwargs: Any,
) -> AsyncEngine:
    """Create an AsyncEngine for ``url`` (see :func:`normalize_url`) with the package's
    connection settings.

    Extra keyword arguments go to :func:`sqlalchemy.ext.asyncio.create_async_engine`; its
    ``connect_args`` win over those the URL's parameters become. An in-memory SQLite
    database is one connection shared by every user of the engine (StaticPool), from any
    thread, so the store, its checkpointer and their sync paths all see the same database.
    """
    from sqlalchemy.ext.asyncio import create_async_engine
    from sqlalchemy.pool import StaticPool

    parsed = normalize_url(url)
    if parsed.get_backend_name() == "sqlite":
        if is_memory_sqlite(parsed):
            # every pooled connection to ":memory:" would be a separate empty database
            engine_kwargs.setdefault("poolclass", StaticPool)
            connect_args = dict(engine_kwargs.get("connect_args") or {})
            connect_args.setdefault("check_same_thread", False)
            engine_kwargs["connect_args"] = connect_args
        engine = create_async_engine(parsed, **engine_kwargs)
        install_sqlite_pragmas(engine, busy_timeout_ms=sqlite_busy_timeout_ms)
        return engine
    if "poolclass" not in engine_kwargs:  # sizes of the default pool (NullPool takes none)
        engine_kwargs.setdefault("pool_size", 10)
        engine_kwargs.setdefault("max_overflow", 20)
    engine_kwargs.setdefault("pool_pre_ping", False)
    engine = create_async_engine(parsed, **engine_kwargs)
    if parsed.get_driver_name() == "asyncpg":
        _translate_for_asyncpg(engine, given=engine_kwargs.get("connect_args") or {})
    return engine


def _translate_for_asyncpg(engine: AsyncEngine, *, given: dict[str, Any]) -> None:
    """Hand asyncpg the URL's libpq parameters as the connect arguments it takes.

    Done as each connection is made, so ``engine.url`` stays the URL as written (what
    messages show). ``connect_args`` given to create_engine win over translated ones.
    """
    from sqlalchemy import event

    moved, translated = asyncpg_arguments(engine.url)
    if not moved:
        return

    @event.listens_for(engine.sync_engine, "do_connect")
    def _on_connect(_dialect: Any, _record: Any, _cargs: Any, cparams: dict[str, Any]) -> None:
        for name in moved:
            if name not in given:
                cparams.pop(name, None)
        for name, value in translated.items():
            if name == "server_settings":
                cparams[name] = {**value, **(given.get(name) or {})}
            elif name not in given:
                cparams[name] = value


def install_sqlite_pragmas(
    engine: AsyncEngine, *, busy_timeout_ms: int = DEFAULT_SQLITE_BUSY_TIMEOUT_MS
) -> None:
    """Set WAL, busy_timeout and synchronous=NORMAL on every new connection of ``engine``.

    Safe to call on an engine the user made; it is a no-op for non-SQLite engines and
    installs the listener only once per engine. A file that is not SQLite, or that holds
    another application's objects under the package's names, is refused on connect
    (ForeignDatabaseError) before it is switched to WAL (see ``db.foreign``).
    """
    if engine.dialect.name != "sqlite":
        return
    from sqlalchemy import event

    sync_engine = engine.sync_engine
    if getattr(sync_engine, "_runstore_pragmas", False):
        return
    in_memory = is_memory_sqlite(engine.url)
    shown = sqlite_path(engine.url) or ":memory:"

    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            try:
                cursor.execute("PRAGMA journal_mode")  # the first read of the file
                journal_mode = str(cursor.fetchone()[0]).lower()
            except sqlite3.OperationalError:
                raise
            except sqlite3.DatabaseError as exc:  # not a database, or a damaged one
                raise not_sqlite(shown, exc) from None
            if journal_mode != "wal":
                if not in_memory:
                    # WAL is a lasting change to the file: only on a file the package may use
                    check_new_sqlite_connection(
                        cursor,
                        owned=created_names("sqlite"),
                        version_table=VERSION_TABLE,
                        shown=shown,
                    )
                try:
                    _enable_wal(cursor)
                except Exception as exc:
                    # a read-only connection (?mode=ro) reads the file in its own mode
                    if "readonly" not in str(exc).lower():
                        raise
            cursor.execute("PRAGMA synchronous = NORMAL")
            cursor.execute("PRAGMA foreign_keys = ON")
        finally:
            cursor.close()

    sync_engine._runstore_pragmas = True  # type: ignore[attr-defined]


def _enable_wal(cursor: Any) -> None:
    """Switch a new file to WAL.

    That needs a moment of exclusive access and SQLite does not call the busy handler for
    it, so processes opening one new file together retry here (a short, bounded wait that
    happens only while the file is being created).
    """
    from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_fixed

    for attempt in Retrying(
        retry=retry_if_exception(lambda exc: "locked" in str(exc).lower()),
        wait=wait_fixed(0.02),
        stop=stop_after_delay(5),
        reraise=True,
    ):
        with attempt:
            cursor.execute("PRAGMA journal_mode = WAL")
