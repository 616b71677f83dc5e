"""libpq URL parameters and connection failures on a real server, on both drivers: what the
server sees (application_name, options, host lists), what it refuses (SSL on a server
without it, a wrong password, a closed port, a server that never answers) as one line
from every entry point (SQLRunStore, RunManager, SyncRunManager, SQLAlchemySaver)."""

from __future__ import annotations

import asyncio
import socket
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from langgraph.checkpoint.base import empty_checkpoint
from sqlalchemy.engine import make_url

from langgraph_runstore import (
    DatabaseConfigError,
    DatabaseConnectionError,
    RunManager,
    SQLAlchemySaver,
    SQLRunStore,
    SyncRunManager,
)
from tests.backends import libpq_url, with_driver
from tests.faults import PrivateServer, private_server
from tests.graphs import listed_model, reply, two_model_graph

pytestmark = pytest.mark.postgres


def with_query(url: str, query: str) -> str:
    return url + ("&" if "?" in url else "?") + query


def admin(url: str, sql: str, *args: Any) -> list[Any]:
    with psycopg.connect(libpq_url(url), autocommit=True) as conn:
        cursor = conn.execute(sql, args or None)
        return cursor.fetchall() if cursor.description else []


async def one_run(url: str) -> None:
    """A managed run through the store and its checkpointer on ``url``."""
    async with SQLRunStore.from_url(url) as store:
        model = listed_model(reply("a"), reply("b"))
        graph = two_model_graph(model, model).compile(checkpointer=store.checkpointer)
        manager = RunManager(store=store)
        try:
            run = await manager.wait(graph, {"messages": [("user", "hi")]}, thread_id="t")
            assert run.status.value == "success", run.error
            assert await store.run_checkpoints(run.run_id)
        finally:
            await manager.aclose()


# every way a URL is opened, each raising what it raises
def _store(url: str) -> None:
    async def go() -> None:
        async with SQLRunStore.from_url(url):
            pass

    asyncio.run(go())


def _manager(url: str) -> None:
    async def go() -> None:
        async with RunManager.from_url(url):
            pass

    asyncio.run(go())


def _sync_manager(url: str) -> None:
    with SyncRunManager.from_url(url):
        pass


def _saver_async(url: str) -> None:
    async def go() -> None:
        async with SQLAlchemySaver.from_url(url):
            pass

    asyncio.run(go())


def _saver_sync(url: str) -> None:
    with SQLAlchemySaver.from_url(url):
        pass


OPENERS: dict[str, Callable[[str], None]] = {
    "SQLRunStore.from_url": _store,
    "RunManager.from_url": _manager,
    "SyncRunManager.from_url": _sync_manager,
    "SQLAlchemySaver.from_url (async with)": _saver_async,
    "SQLAlchemySaver.from_url (with)": _saver_sync,
}


def refusals(url: str, error: type[Exception]) -> dict[str, str]:
    """What each opener raised for ``url`` (each must raise ``error``), as text."""
    said = {}
    for name, opener in OPENERS.items():
        with pytest.raises(error) as info:
            opener(url)
        said[name] = str(info.value)
    return said


def one_line(said: dict[str, str], *parts: str) -> None:
    for name, message in said.items():
        assert "\n" not in message, (name, message)
        for part in parts:
            assert part in message, (name, message)


# -- parameters the server sees ---------------------------------------------------------------


def test_application_name_reaches_the_server(pg_url: str) -> None:
    name = f"runstore-{uuid.uuid4().hex[:8]}"

    async def go() -> list[Any]:
        async with SQLRunStore.from_url(with_query(pg_url, f"application_name={name}")) as store:
            await store.put("r1", thread_id="t1")
            saver = store.checkpointer
            await saver.aput(
                {"configurable": {"thread_id": "t1", "checkpoint_ns": ""}},
                empty_checkpoint(),
                {},
                {},
            )
            # both the store's and the checkpointer's connections, as they are now
            return admin(
                pg_url,
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
                name,
            )

    [(count,)] = asyncio.run(go())
    assert count >= 2


def test_options_search_path_puts_every_table_in_that_schema(pg_url: str) -> None:
    admin(pg_url, "CREATE SCHEMA other")
    url = with_query(pg_url, "options=-c%20search_path%3Dother")
    asyncio.run(one_run(url))
    tables = admin(
        pg_url,
        "SELECT DISTINCT table_schema FROM information_schema.tables "
        "WHERE table_name IN ('runs', 'rs_checkpoints')",
    )
    assert tables == [("other",)]


@pytest.mark.parametrize("mode", ["disable", "allow", "prefer"])
def test_sslmodes_that_allow_plain_connections_work_without_ssl(pg_url: str, mode: str) -> None:
    asyncio.run(one_run(with_query(pg_url, f"sslmode={mode}")))


def test_a_host_list_and_target_session_attrs(pg_url: str) -> None:
    parsed = make_url(pg_url)
    with socket.socket() as closed:  # a port nothing listens on: the first host is down
        closed.bind(("127.0.0.1", 0))
        dead = closed.getsockname()[1]
    url = (
        f"{parsed.drivername}://{parsed.username}@/{parsed.database}"
        f"?host=127.0.0.1:{dead}&host={parsed.host}:{parsed.port}"
        "&target_session_attrs=read-write"
    )
    asyncio.run(one_run(url))


# -- connections the server (or nobody) refuses ---------------------------------------------


def test_sslmode_require_on_a_server_without_ssl_is_one_line(pg_url: str) -> None:
    said = refusals(with_query(pg_url, "sslmode=require"), DatabaseConnectionError)
    one_line(said, "cannot open database", "SSL")


def test_a_closed_port_is_one_line(pg_driver: str) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    url = f"postgresql+{pg_driver}://postgres:secret@127.0.0.1:{port}/x"
    said = refusals(url, DatabaseConnectionError)
    one_line(said, f"cannot open database postgresql+{pg_driver}://postgres:***@127.0.0.1:{port}/x")
    assert not [m for m in said.values() if "secret" in m]


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A port that accepts TCP connections and never answers (a hung server or proxy)."""
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen(16)
        yield listening.getsockname()[1]


def test_connect_timeout_bounds_a_server_that_never_answers(
    pg_driver: str, silent_server: int
) -> None:
    url = f"postgresql+{pg_driver}://postgres@127.0.0.1:{silent_server}/x?connect_timeout=1"
    started = time.monotonic()
    with pytest.raises(DatabaseConnectionError) as info:
        _store(url)
    took = time.monotonic() - started
    assert took < 10, took  # the driver's own default would wait a minute, or forever
    assert "cannot open database" in str(info.value) and "\n" not in str(info.value)


@pytest.fixture(scope="module")
def password_server() -> Iterator[PrivateServer]:
    """A private server where the role ``pwuser`` logs in with the password ``right`` (to
    its database ``pwdb``)."""
    with private_server() as server:
        admin(server.url, "CREATE ROLE pwuser LOGIN PASSWORD 'right'")
        admin(server.url, "CREATE DATABASE pwdb OWNER pwuser")
        hba = server.dir / "pg_hba.conf"
        # the first matching line wins: this one before the cluster's "trust" lines
        hba.write_text("host all pwuser 127.0.0.1/32 scram-sha-256\n" + hba.read_text())
        server.reload()
        yield server


def test_a_wrong_password_is_one_line_without_the_password(
    password_server: PrivateServer, pg_driver: str
) -> None:
    base = make_url(with_driver(password_server.url, pg_driver)).set(database="pwdb")
    good = base.set(username="pwuser", password="right")
    asyncio.run(one_run(good.render_as_string(hide_password=False)))
    wrong = base.set(username="pwuser", password="wrong-pw").render_as_string(hide_password=False)
    said = refusals(wrong, DatabaseConnectionError)
    one_line(said, "cannot open database", "password authentication failed", "pwuser")
    assert not [m for m in said.values() if "wrong-pw" in m]


def test_bad_urls_are_refused_by_every_entry_point_before_connecting() -> None:
    cases = {
        "postgresql+pg8000://u:secret@127.0.0.1/db": "unsupported driver 'pg8000'",
        "mysql://u:secret@127.0.0.1/db": "unsupported database backend 'mysql'",
        "postgresql+asyncpg://u:secret@127.0.0.1/db?keepalives=1": "not supported by asyncpg",
        "postgresql+psycopg://u:secret@127.0.0.1/db?sslmod=require": (
            'invalid connection option "sslmod"'
        ),
    }
    for url, says in cases.items():
        said = refusals(url, DatabaseConfigError)
        one_line(said, says)
        assert not [m for m in said.values() if "secret" in m]


def test_a_psycopg_url_without_psycopg_says_which_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)
    said = refusals("postgresql+psycopg://u@127.0.0.1/db", DatabaseConfigError)
    one_line(said, "needs the psycopg driver", "pip install 'langgraph-runstore[psycopg]'")


# -- psycopg connections go back to SQLAlchemy as they came ---------------------------------


def test_connections_the_store_and_saver_used_keep_sqlalchemy_transactions(
    pg_url: str,
) -> None:
    """The store and the checkpointer run psycopg connections in autocommit; once handed
    back, the pool's next user (migrations, your own code) gets transactions again."""
    from sqlalchemy import text

    async def go() -> tuple[list[Any], Any]:
        # one connection in the pool: whatever the store and saver used comes back next
        async with SQLRunStore.from_url(pg_url, pool_size=1, max_overflow=0) as store:
            await store.put("r1", thread_id="t1")
            await store.aclose()  # gives its connection back to the pool
            await store.checkpointer.aput(
                {"configurable": {"thread_id": "t1", "checkpoint_ns": ""}},
                empty_checkpoint(),
                {},
                {},
            )
            await store.aclose()  # the checkpointer's too
            async with store.engine.connect() as conn:
                await conn.execute(
                    text(
                        "INSERT INTO runs (run_id, thread_id, created_at, updated_at) "
                        "VALUES ('r2', 't', 'x', 'x')"
                    )
                )
                await conn.rollback()
                fairy = await conn.get_raw_connection()
                autocommit = getattr(fairy.driver_connection, "autocommit", False)
            rows = [row["run_id"] for row in await store.list_by_thread("t")]
            return rows, autocommit

    rows, autocommit = asyncio.run(go())
    assert rows == [] and autocommit is False


def test_a_store_statement_cancelled_mid_flight_leaves_the_pool_healthy(pg_url: str) -> None:
    """A caller cancelled while its statement waits on the server: the connection it held
    is not handed out again, and the store and the engine's other users go on."""
    from sqlalchemy import text

    async def go() -> list[str]:
        async with SQLRunStore.from_url(pg_url, pool_size=2, max_overflow=0) as store:
            await store.put("r0", thread_id="t")
            locker = await psycopg.AsyncConnection.connect(libpq_url(pg_url))
            try:
                await locker.execute("LOCK TABLE runs IN ACCESS EXCLUSIVE MODE")
                stuck = asyncio.ensure_future(store.put("r1", thread_id="t"))
                for _ in range(3000):  # poll the server until the put waits on the lock
                    if admin(
                        pg_url,
                        "SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                        "AND datname = current_database()",
                    ):
                        break
                    await asyncio.sleep(0.01)
                stuck.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await stuck
            finally:
                await locker.rollback()
                await locker.close()
            await store.put("r2", thread_id="t")
            async with store.engine.connect() as conn:  # a transaction means one again
                await conn.execute(text("DELETE FROM runs WHERE run_id = 'r0'"))
                await conn.rollback()
            return sorted(row["run_id"] for row in await store.list_by_thread("t"))

    assert asyncio.run(asyncio.wait_for(go(), 60)) in (["r0", "r2"], ["r0", "r1", "r2"])
