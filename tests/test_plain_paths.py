"""Plain paths as database URLs: ``agent.db``, ``./data/runs.sqlite``, an absolute path and
a ``pathlib.Path`` open that SQLite file from every ``from_url`` (the store, the managers,
the saver), resolved as the CLI resolves ``--db`` (one shared function), so the CLI reads
back what a script wrote."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from langgraph_runstore import RunManager, SQLAlchemySaver, SQLRunStore, SyncRunManager
from tests.cli.helpers import run_cli
from tests.graphs import listed_model, reply, two_model_graph

HI = {"messages": [("user", "hi")]}


def graph_on(checkpointer: Any, *, sync: bool = False) -> Any:
    model = listed_model(reply("a"), reply("b"))
    return two_model_graph(model, model, sync=sync).compile(checkpointer=checkpointer)


def via_store(target: Any) -> None:
    async def go() -> None:
        async with SQLRunStore.from_url(target) as store:
            manager = RunManager(store=store)
            try:
                await manager.wait(graph_on(store.checkpointer), HI, thread_id="t1")
            finally:
                await manager.aclose()

    asyncio.run(go())


def via_manager(target: Any) -> None:
    async def go() -> None:
        async with RunManager.from_url(target) as manager:
            assert isinstance(manager.store, SQLRunStore)
            await manager.wait(graph_on(manager.store.checkpointer), HI, thread_id="t1")

    asyncio.run(go())


def via_sync_manager(target: Any) -> None:
    with SyncRunManager.from_url(target) as manager:
        assert isinstance(manager.store, SQLRunStore)
        manager.invoke(graph_on(manager.store.checkpointer, sync=True), HI, thread_id="t1")


def via_saver(target: Any) -> None:
    with SQLAlchemySaver.from_url(target) as saver:
        graph_on(saver, sync=True).invoke(HI, {"configurable": {"thread_id": "t1"}})


def via_async_saver(target: Any) -> None:
    async def go() -> None:
        async with SQLAlchemySaver.from_url(target) as saver:
            await graph_on(saver).ainvoke(HI, {"configurable": {"thread_id": "t1"}})

    asyncio.run(go())


WAYS: dict[str, Callable[[Any], None]] = {
    "SQLRunStore.from_url": via_store,
    "RunManager.from_url": via_manager,
    "SyncRunManager.from_url": via_sync_manager,
    "SQLAlchemySaver.from_url (with)": via_saver,
    "SQLAlchemySaver.from_url (async with)": via_async_saver,
}
KEEPS_RUNS = {"SQLRunStore.from_url", "RunManager.from_url", "SyncRunManager.from_url"}


def target_of(form: str, cwd: Path) -> tuple[Any, Path]:
    """(what the user passes, the file it must open) for each way of writing a path."""
    if form == "relative":
        return "agent.db", cwd / "agent.db"
    if form == "dotted":
        (cwd / "data").mkdir()
        return "./data/runs.sqlite", cwd / "data" / "runs.sqlite"
    if form == "absolute":
        return str(cwd / "abs.db"), cwd / "abs.db"
    return cwd / "as-path.db", cwd / "as-path.db"


@pytest.mark.parametrize("form", ["relative", "dotted", "absolute", "pathlib"])
@pytest.mark.parametrize("way", list(WAYS))
def test_a_plain_path_opens_that_sqlite_file(
    way: str, form: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    target, expected = target_of(form, tmp_path)
    WAYS[way](target)
    assert expected.is_file()
    assert sorted(p.name for p in tmp_path.rglob("*") if p.suffix in (".db", ".sqlite")) == [
        expected.name
    ]
    with sqlite3.connect(expected) as conn:
        checkpoints = conn.execute("SELECT count(*) FROM rs_checkpoints").fetchone()[0]
        runs = conn.execute("SELECT count(*) FROM runs").fetchone()[0]
    assert checkpoints > 0
    assert runs == (1 if way in KEEPS_RUNS else 0)


def test_the_cli_reads_the_file_a_script_wrote_under_the_same_plain_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "data").mkdir()
    monkeypatch.chdir(tmp_path)
    via_store("./data/runs.sqlite")
    listed = run_cli("runs", "list", "--db", "./data/runs.sqlite", "--json", cwd=tmp_path)
    assert listed.code == 0, listed.err
    assert '"thread_id": "t1"' in listed.out
