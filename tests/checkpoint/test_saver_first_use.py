"""SQLAlchemySaver used straight away (it sets itself up on first use, once, however the
first uses overlap) and its sync API on a thread that runs an event loop (a notebook cell)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from langchain_core.messages import HumanMessage

from langgraph_runstore.checkpoint import SQLAlchemySaver, first_use, saver
from langgraph_runstore.db import migrations
from langgraph_runstore.db.engine import create_engine
from tests.checkpoint.test_saver_graph import build, cfg, contents

pytestmark = pytest.mark.asyncio


def count_setups(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the saver's real set-ups (migrations.setup as the saver calls it)."""
    calls: list[int] = []
    real = migrations.setup

    async def counted(engine: Any) -> int:
        calls.append(1)
        return await real(engine)

    monkeypatch.setattr(saver.migrations, "setup", counted)
    return calls


async def test_ainvoke_straight_away_sets_the_saver_up(db_url: str) -> None:
    engine = create_engine(db_url)
    checkpointer = SQLAlchemySaver(engine)
    try:
        graph = build(checkpointer)
        out = await graph.ainvoke({"messages": [HumanMessage(content="hi")]}, cfg("t1"))
        assert contents(out)[-1] == "report: seen 3"
        state = await graph.aget_state(cfg("t1"))
        assert state.values["visits"] == 3
    finally:
        await checkpointer.aclose()
        await engine.dispose()


async def test_overlapping_first_uses_on_one_loop_set_up_once(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = count_setups(monkeypatch)
    arrived = 0
    both_arrived = asyncio.Event()
    real_ensure = first_use.FirstUse._ensure_schema

    async def ensure(self: first_use.FirstUse) -> None:
        nonlocal arrived
        arrived += 1
        if arrived == 2:
            both_arrived.set()
        await both_arrived.wait()  # both first uses are inside before either sets up
        await real_ensure(self)

    monkeypatch.setattr(first_use.FirstUse, "_ensure_schema", ensure)
    engine = create_engine(db_url)
    checkpointer = SQLAlchemySaver(engine)
    try:
        graph = build(checkpointer)
        outs = await asyncio.gather(
            graph.ainvoke({"messages": [("user", "a")]}, cfg("a")),
            graph.ainvoke({"messages": [("user", "b")]}, cfg("b")),
        )
        assert [out["visits"] for out in outs] == [3, 3]
        assert len(calls) == 1
    finally:
        await checkpointer.aclose()
        await engine.dispose()


async def test_a_sync_and_an_async_first_use_overlapping_set_up_once(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sync call's first use (on the saver's own loop) and the async one's (on this
    loop) both arrive before either sets up: one set-up runs, across the two loops, and both
    calls succeed."""
    calls = count_setups(monkeypatch)
    together = threading.Barrier(2, timeout=30)
    real_ensure = first_use.FirstUse._ensure_schema

    async def ensure(self: first_use.FirstUse) -> None:
        await asyncio.to_thread(together.wait)  # both loops are in here at once
        await real_ensure(self)

    monkeypatch.setattr(first_use.FirstUse, "_ensure_schema", ensure)
    engine = create_engine(db_url)
    checkpointer = SQLAlchemySaver(engine)
    try:
        graph = build(checkpointer)
        sync_out, async_out = await asyncio.gather(
            asyncio.to_thread(graph.invoke, {"messages": [("user", "s")]}, cfg("s")),
            graph.ainvoke({"messages": [("user", "a")]}, cfg("a")),
        )
        assert sync_out["visits"] == async_out["visits"] == 3
        assert (await graph.aget_state(cfg("s"))).values["visits"] == 3
        assert len(calls) == 1
    finally:
        await checkpointer.aclose()
        await engine.dispose()


async def test_a_failed_first_set_up_is_tried_again(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = migrations.setup
    failures = [OSError("disk went away")]

    async def flaky(engine: Any) -> int:
        if failures:
            raise failures.pop()
        return await real(engine)

    monkeypatch.setattr(saver.migrations, "setup", flaky)
    engine = create_engine(sqlite_url)
    checkpointer = SQLAlchemySaver(engine)
    try:
        with pytest.raises(OSError, match="disk went away"):
            await checkpointer.aget_tuple(cfg("t"))
        assert await checkpointer.aget_tuple(cfg("t")) is None
    finally:
        await checkpointer.aclose()
        await engine.dispose()


async def test_sync_graph_on_a_thread_that_runs_a_loop(db_url: str) -> None:
    """A notebook cell: graph.invoke / graph.stream on the loop's own thread work, as with
    the stock SqliteSaver, and the async API sees what they wrote."""
    async with SQLAlchemySaver.from_url(db_url) as checkpointer:
        graph = build(checkpointer)
        out = graph.invoke({"messages": [("user", "hi")]}, cfg("cell"))
        assert out["visits"] == 3
        assert len(list(graph.stream({"messages": [("user", "again")]}, cfg("cell")))) == 3
        assert checkpointer.get_tuple(cfg("cell")) is not None
        state = await graph.aget_state(cfg("cell"))
        assert state.values["visits"] == 6
        # and the async path still works beside it
        await graph.ainvoke({"messages": [("user", "async")]}, cfg("cell"))
        assert graph.get_state(cfg("cell")).values["visits"] == 9


def test_a_plain_with_inside_a_running_loop(db_url: str) -> None:
    async def cell() -> int:
        with SQLAlchemySaver.from_url(db_url) as checkpointer:
            graph = build(checkpointer)
            return int(graph.invoke({"messages": [("user", "hi")]}, cfg("w"))["visits"])

    assert asyncio.run(cell()) == 3


async def test_a_sync_call_while_this_loop_holds_the_set_up_open_raises(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The set-up started on this loop holds the migration lock, and cannot release it while
    a sync call blocks the loop: the call says so instead of waiting forever."""
    inside = asyncio.Event()
    release = asyncio.Event()
    real_refuse = migrations.refuse_clashes

    async def paused(*args: Any, **kwargs: Any) -> None:
        inside.set()  # the migration lock is held from here on
        await release.wait()
        await real_refuse(*args, **kwargs)

    monkeypatch.setattr(migrations, "refuse_clashes", paused)
    engine = create_engine(db_url)
    checkpointer = SQLAlchemySaver(engine)
    try:
        setting_up = asyncio.ensure_future(checkpointer.setup())
        await inside.wait()
        graph = build(checkpointer)
        with pytest.raises(RuntimeError, match="still open"):
            graph.invoke({"messages": [("user", "hi")]}, cfg("t"))
        release.set()
        await setting_up
        assert graph.invoke({"messages": [("user", "hi")]}, cfg("t"))["visits"] == 3
    finally:
        release.set()
        await checkpointer.aclose()
        await engine.dispose()


async def test_a_sync_call_on_the_savers_own_loop_raises(sqlite_url: str) -> None:
    async with SQLAlchemySaver.from_url(sqlite_url) as checkpointer:
        checkpointer.get_tuple(cfg("t"))  # starts the saver's own loop
        own_loop = checkpointer._bridge.loop
        assert own_loop is not None

        async def on_own_loop() -> Any:
            return checkpointer.get_tuple(cfg("t"))

        future = asyncio.run_coroutine_threadsafe(on_own_loop(), own_loop)
        with pytest.raises(RuntimeError, match="wait for itself"):
            await asyncio.wrap_future(future)
