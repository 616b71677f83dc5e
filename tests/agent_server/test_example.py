"""``examples/agent_server`` exactly as a user runs it: ``langgraph dev`` in a copy of the
folder, its ``langgraph.json`` unchanged, no ``LANGGRAPH_RUNSTORE_URL``; the runs land in
``./runstore.db``, where ``langgraph-runstore runs list`` finds them."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import pytest

from tests.agent_server.conftest import EXAMPLE
from tests.agent_server.server import agent_server
from tests.cli.helpers import run_cli

pytestmark = pytest.mark.anyio


async def test_the_example_records_into_runstore_db_beside_it(tmp_path: Path) -> None:
    from langgraph_sdk import get_client

    folder = tmp_path / "agent_server"
    shutil.copytree(EXAMPLE, folder, ignore=shutil.ignore_patterns("__pycache__"))
    with agent_server(folder / "langgraph.json", cwd=folder, env={}) as server:
        async with get_client(url=server.url) as client, asyncio.timeout(60):
            thread = await client.threads.create()
            hello = {"messages": [{"role": "user", "content": "hi"}]}
            await client.runs.wait(thread["thread_id"], "agent", input=hello)
            (server_run,) = await client.runs.list(thread["thread_id"])

    assert (folder / "runstore.db").exists()
    listed = run_cli("runs", "list", "--json", cwd=folder)
    assert listed.code == 0, listed.err
    (row,) = json.loads(listed.out)["runs"]
    assert row["run_id"] == server_run["run_id"]
    assert row["thread_id"] == thread["thread_id"]
    assert row["status"] == "success"
    assert row["total_tokens"] == 22
