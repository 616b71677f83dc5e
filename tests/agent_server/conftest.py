"""One real Agent Server per backend for this folder's tests: the example deployment's
``langgraph.json`` (its graphs and its checkpointer key, unchanged) plus the test graphs and
an auth handler, with ``LANGGRAPH_RUNSTORE_URL`` on a SQLite file or a PostgreSQL database."""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.agent_server.server import ROOT, AgentServer, agent_server
from tests.backends import libpq_url

EXAMPLE = ROOT / "examples" / "agent_server"
HERE = Path(__file__).resolve().parent


@dataclass
class Deployment:
    server: AgentServer
    #: the run store's URL, as the server got it in LANGGRAPH_RUNSTORE_URL
    db_url: str
    #: BG_JOB_ISOLATED_LOOPS: each background run on an event loop of its own
    isolated_loops: bool = False

    def skip_cancel(self) -> None:
        if self.isolated_loops:
            pytest.skip(
                "langgraph-runtime-inmem 0.36.7 puts a cancel into the run's control queue "
                "(a plain asyncio.Queue, inmem_stream.StreamManager.put) from the server's "
                "main loop, which does not wake the run's own loop: the graph stops only "
                "when that loop next wakes for another reason"
            )


def server_config(folder: Path) -> Path:
    """The example's langgraph.json with absolute graph paths, the test graphs and auth."""
    config = json.loads((EXAMPLE / "langgraph.json").read_text())
    graphs = {
        name: f"{(EXAMPLE / path.split(':')[0]).resolve()}:{path.split(':')[1]}"
        for name, path in config["graphs"].items()
    }
    graphs["held"] = f"{HERE / 'server_graphs.py'}:held"
    config.update(
        dependencies=[str(EXAMPLE)],
        graphs=graphs,
        auth={"path": f"{HERE / 'server_auth.py'}:auth"},
    )
    path = folder / "langgraph.json"
    path.write_text(json.dumps(config, indent=2))
    return path


@contextlib.contextmanager
def pg_database() -> Iterator[str]:
    """A fresh PostgreSQL database on the test server, dropped afterwards."""
    import psycopg

    base = os.environ.get("RUNSTORE_TEST_PG_URL")
    if not base:
        if os.environ.get("RUNSTORE_REQUIRE_PG") == "1":
            pytest.fail("RUNSTORE_REQUIRE_PG=1 but RUNSTORE_TEST_PG_URL is not set")
        pytest.skip("no PostgreSQL server: run scripts/pg.sh start and set RUNSTORE_TEST_PG_URL")
    raw = libpq_url(base)
    name = f"t_{uuid.uuid4().hex[:16]}"

    def admin(sql: str) -> None:
        with psycopg.connect(raw, autocommit=True) as conn:
            conn.execute(sql)

    admin(f'CREATE DATABASE "{name}"')
    try:
        yield base.rsplit("/", 1)[0] + f"/{name}"
    finally:
        admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(
    scope="module",
    params=[
        "sqlite",
        pytest.param("postgres", marks=pytest.mark.postgres),
        # each background worker on an event loop of its own: the server enters the
        # checkpointer once per loop, and asyncpg connections belong to one loop
        pytest.param("postgres-isolated-loops", marks=pytest.mark.postgres),
    ],
)
def deployment(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployment]:
    """The server, started once per set-up for the module's tests, killed afterwards."""
    folder = tmp_path_factory.mktemp(f"agent-server-{request.param}")
    env: dict[str, str] = {}
    with contextlib.ExitStack() as stack:
        if request.param == "sqlite":
            env["LANGGRAPH_RUNSTORE_URL"] = f"sqlite+aiosqlite:///{folder / 'runstore.db'}"
        else:
            env["LANGGRAPH_RUNSTORE_URL"] = stack.enter_context(pg_database())
        if request.param.endswith("isolated-loops"):
            env["BG_JOB_ISOLATED_LOOPS"] = "true"
        server = stack.enter_context(agent_server(server_config(folder), cwd=folder, env=env))
        yield Deployment(server, env["LANGGRAPH_RUNSTORE_URL"], "BG_JOB_ISOLATED_LOOPS" in env)
