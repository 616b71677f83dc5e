"""Bad ids, metadata and timeouts: InvalidInputError naming the argument and its limit, through
every entry point that takes them, and nothing written (no run row, no checkpoint).

The limits (``langgraph_runstore.validate``): ids are text of at most 1024 UTF-8 bytes without
NUL or lone surrogates; metadata is a JSON mapping nested at most 32 levels (its text is made
storable, not refused: ``langgraph_runstore.text``); a timeout is a finite number of
seconds > 0.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from langgraph.checkpoint.memory import InMemorySaver

from langgraph_runstore import (
    InvalidInputError,
    MemoryRunStore,
    RunManager,
    RunStore,
    SQLRunStore,
    SyncRunManager,
)
from langgraph_runstore.store.statements import Statement
from langgraph_runstore.validate import MAX_ID_BYTES, MAX_JSON_DEPTH
from tests.backends import PG_BACKENDS
from tests.graphs import listed_model, reply, two_model_graph

pytestmark = pytest.mark.asyncio

INPUT = {"messages": [("user", "hi")]}


def nested(levels: int) -> dict[str, Any]:
    """A mapping ``levels`` containers deep: {"a": {"a": ... {}}}."""
    value: dict[str, Any] = {}
    for _ in range(levels - 1):
        value = {"a": value}
    return value


def contains_itself() -> dict[str, Any]:
    value: dict[str, Any] = {}
    value["self"] = value
    return value


# (case name, keyword arguments, words the message must hold: the argument and its limit)
ID_CASES: list[tuple[str, dict[str, Any], tuple[str, ...]]] = [
    *[
        (f"{field} with NUL", {field: "x\x00y"}, (field, "NUL"))
        for field in ("thread_id", "run_id", "assistant_id", "user_id")
    ],
    *[
        (f"{field} with a lone surrogate", {field: "x\ud800"}, (field, "surrogate"))
        for field in ("thread_id", "run_id", "assistant_id", "user_id")
    ],
    *[
        # 1026 bytes in UTF-8 in 513 characters: the limit is in bytes
        (f"{field} over {MAX_ID_BYTES} bytes", {field: "é" * 513}, (field, str(MAX_ID_BYTES)))
        for field in ("thread_id", "run_id", "assistant_id", "user_id")
    ],
    # a PostgreSQL btree index entry cannot hold this one (2704 bytes at most)
    ("thread_id over the index row limit", {"thread_id": "0123456789abcdef" * 200}, ("1024",)),
    ("thread_id not a string", {"thread_id": 7}, ("thread_id", "string")),
    ("user_id not a string", {"user_id": 7}, ("user_id", "string")),
]

METADATA_CASES: list[tuple[str, dict[str, Any], tuple[str, ...]]] = [
    ("metadata a string", {"metadata": "abc"}, ("metadata", "mapping")),
    ("metadata a list of pairs", {"metadata": [("a", 1)]}, ("metadata", "mapping")),
    ("metadata an int", {"metadata": 3}, ("metadata", "mapping")),
    (
        "metadata one level too deep",
        {"metadata": nested(MAX_JSON_DEPTH + 1)},
        ("metadata", str(MAX_JSON_DEPTH)),
    ),
    ("metadata 5000 levels deep", {"metadata": nested(5000)}, ("metadata", str(MAX_JSON_DEPTH))),
    ("metadata that contains itself", {"metadata": contains_itself()}, ("metadata", "itself")),
    ("metadata not JSON", {"metadata": {"when": object()}}, ("metadata", "JSON")),
    ("metadata with NaN", {"metadata": {"score": float("nan")}}, ("metadata", "JSON")),
]

TIMEOUT_CASES: list[tuple[str, dict[str, Any], tuple[str, ...]]] = [
    ("timeout NaN", {"timeout": float("nan")}, ("timeout", "finite")),
    ("timeout infinite", {"timeout": float("inf")}, ("timeout", "finite")),
    ("timeout -infinite", {"timeout": float("-inf")}, ("timeout", "finite")),
    ("timeout negative", {"timeout": -1}, ("timeout", "> 0")),
    ("timeout zero", {"timeout": 0}, ("timeout", "> 0")),
    ("timeout too big for a float", {"timeout": 10**400}, ("timeout", "float")),
    ("timeout a bool", {"timeout": True}, ("timeout", "number")),
    ("timeout a string", {"timeout": "30"}, ("timeout", "number")),
]


def graph_for(store: RunStore) -> Any:
    saver = store.checkpointer if isinstance(store, SQLRunStore) else InMemorySaver()
    model = listed_model(*[reply(f"answer {i}") for i in range(4)])
    return two_model_graph(model, model).compile(checkpointer=saver)


async def written(store: RunStore, graph: Any) -> tuple[int, int]:
    """(run rows, checkpoints) in the store and the graph's checkpointer."""
    rows = len((await store.list_runs(limit=1000)).runs)
    if isinstance(store, SQLRunStore):
        found = await store.driver.fetch(
            Statement.of("SELECT COUNT(*) AS n FROM rs_checkpoints"), {}
        )
        return rows, int(found[0]["n"])
    return rows, sum(len(namespaces) for namespaces in graph.checkpointer.storage.values())


@dataclass
class Target:
    manager: RunManager
    store: RunStore
    graph: Any


@pytest_asyncio.fixture(params=["memory", "sqlite", *PG_BACKENDS])
async def target(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Target]:
    if request.param == "memory":
        store: RunStore = MemoryRunStore()
        manager = RunManager(store=store)
        yield Target(manager, store, graph_for(store))
        await manager.aclose()
        return
    url = (
        f"sqlite+aiosqlite:///{tmp_path / 'runs.db'}"
        if request.param == "sqlite"
        else request.getfixturevalue("pg_url")
    )
    async with SQLRunStore.from_url(url) as sql_store:
        manager = RunManager(store=sql_store)
        yield Target(manager, sql_store, graph_for(sql_store))
        await manager.aclose()


def split(kwargs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    options = dict(kwargs)
    return options.pop("thread_id", "t-bad"), options


async def via_create(t: Target, kwargs: dict[str, Any]) -> None:
    thread_id, options = split(kwargs)
    await t.manager.create(thread_id, options.pop("assistant_id", None), **options)


async def via_create_or_reject(t: Target, kwargs: dict[str, Any]) -> None:
    thread_id, options = split(kwargs)
    await t.manager.create_or_reject(thread_id, options.pop("assistant_id", None), **options)


async def via_start(t: Target, kwargs: dict[str, Any]) -> None:
    thread_id, options = split(kwargs)
    run = await t.manager.start(t.graph, INPUT, thread_id=thread_id, **options)
    await t.manager.join(run.run_id)


async def via_wait(t: Target, kwargs: dict[str, Any]) -> None:
    thread_id, options = split(kwargs)
    await t.manager.wait(t.graph, INPUT, thread_id=thread_id, **options)


async def via_stream(t: Target, kwargs: dict[str, Any]) -> None:
    thread_id, options = split(kwargs)
    async for _ in t.manager.stream(t.graph, INPUT, thread_id=thread_id, **options):
        pass


async def via_track(t: Target, kwargs: dict[str, Any]) -> None:
    thread_id, options = split(kwargs)
    async with t.manager.track(thread_id=thread_id, **options) as run:
        await t.graph.ainvoke(INPUT, run.config)


async def via_submit(t: Target, kwargs: dict[str, Any]) -> None:
    thread_id, options = split(kwargs)
    assistant_id = options.pop("assistant_id", "agent")
    await t.manager.submit(assistant_id, INPUT, thread_id=thread_id, **options)


WITHOUT_TIMEOUT = {
    "create": via_create,
    "create_or_reject": via_create_or_reject,
    "track": via_track,
}
WITH_TIMEOUT = {
    "start": via_start,
    "wait": via_wait,
    "stream": via_stream,
    "submit": via_submit,
}


def refusals(
    call: Callable[[dict[str, Any]], Any], cases: list[tuple[str, dict[str, Any], tuple[str, ...]]]
) -> Iterator[str]:
    """Run ``call`` on every case; yield a line for each that is not refused as it must be."""
    for name, kwargs, words in cases:
        try:
            call(kwargs)
        except InvalidInputError as exc:
            missing = [word for word in words if word not in exc.message]
            if missing:
                yield f"{name}: the message lacks {missing}: {exc.message}"
        except BaseException as exc:
            yield f"{name}: {type(exc).__name__}: {exc}"[:300]
        else:
            yield f"{name}: accepted"


async def arefusals(
    call: Callable[[Target, dict[str, Any]], Any],
    t: Target,
    cases: list[tuple[str, dict[str, Any], tuple[str, ...]]],
) -> list[str]:
    wrong = []
    for name, kwargs, words in cases:
        try:
            await call(t, kwargs)
        except InvalidInputError as exc:
            missing = [word for word in words if word not in exc.message]
            if missing:
                wrong.append(f"{name}: the message lacks {missing}: {exc.message}")
        except Exception as exc:
            wrong.append(f"{name}: {type(exc).__name__}: {exc}"[:300])
        else:
            wrong.append(f"{name}: accepted")
    return wrong


@pytest.mark.parametrize("entry", [*WITHOUT_TIMEOUT, *WITH_TIMEOUT])
async def test_bad_ids_and_metadata_are_refused_with_nothing_written(
    target: Target, entry: str
) -> None:
    call = {**WITHOUT_TIMEOUT, **WITH_TIMEOUT}[entry]
    wrong = await arefusals(call, target, [*ID_CASES, *METADATA_CASES])
    assert wrong == [], "\n".join(wrong)
    assert await written(target.store, target.graph) == (0, 0)
    assert target.manager.lifecycle.records == {}


@pytest.mark.parametrize("entry", list(WITH_TIMEOUT))
async def test_bad_timeouts_are_refused_with_nothing_written(target: Target, entry: str) -> None:
    wrong = await arefusals(WITH_TIMEOUT[entry], target, TIMEOUT_CASES)
    assert wrong == [], "\n".join(wrong)
    assert await written(target.store, target.graph) == (0, 0)


async def test_good_values_at_the_limits_are_accepted(target: Target) -> None:
    """Exactly at each limit is fine: 1024 bytes, 32 levels, a huge but finite timeout."""
    run = await target.manager.wait(
        target.graph,
        INPUT,
        thread_id="é" * (MAX_ID_BYTES // 2),
        run_id="r" * MAX_ID_BYTES,
        user_id="ü" * (MAX_ID_BYTES // 2),
        assistant_id="agent",
        metadata={"deep": nested(MAX_JSON_DEPTH - 1), "note": "ok ✓"},
        timeout=1e300,
    )
    assert run.status.value == "success", run.error
    stored = await target.manager.get(run.run_id)
    assert stored is not None and stored.metadata["deep"] == nested(MAX_JSON_DEPTH - 1)
    assert await written(target.store, target.graph) != (0, 0)


async def test_the_store_refuses_metadata_too_deep_to_encode(target: Target) -> None:
    """RunStore.put directly: an InvalidInputError naming the field, not a RecursionError."""
    with pytest.raises(InvalidInputError, match="metadata"):
        await target.store.put("r1", thread_id="t1", metadata=nested(5000))
    assert await target.store.get("r1") is None


@pytest.mark.parametrize("worker_id", ["w\x00", "w\udcff", "w" * (MAX_ID_BYTES + 1), 5])
def test_a_bad_worker_id_is_refused(worker_id: Any) -> None:
    with pytest.raises(InvalidInputError, match="worker_id"):
        RunManager(store=MemoryRunStore(), worker_id=worker_id)
    with pytest.raises(InvalidInputError, match="worker_id"):
        SyncRunManager(MemoryRunStore(), worker_id=worker_id)


# -- synchronous entry points ------------------------------------------------------------


@pytest.fixture(params=["memory", "sqlite", *PG_BACKENDS])
def sync_manager(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SyncRunManager]:
    if request.param == "memory":
        with SyncRunManager(MemoryRunStore()) as manager:
            yield manager
        return
    url = (
        f"sqlite:///{tmp_path / 'runs.db'}"
        if request.param == "sqlite"
        else request.getfixturevalue("pg_url")
    )
    with SyncRunManager.from_url(url) as manager:
        yield manager


def test_sync_entry_points_refuse_bad_input_with_nothing_written(
    sync_manager: SyncRunManager,
) -> None:
    store = sync_manager.store
    assert store is not None
    graph = graph_for(store)

    def invoke(kwargs: dict[str, Any]) -> None:
        thread_id, options = split(kwargs)
        sync_manager.invoke(graph, INPUT, thread_id=thread_id, **options)

    def stream(kwargs: dict[str, Any]) -> None:
        thread_id, options = split(kwargs)
        for _ in sync_manager.stream(graph, INPUT, thread_id=thread_id, **options):
            pass

    def track(kwargs: dict[str, Any]) -> None:
        thread_id, options = split(kwargs)
        with sync_manager.track(thread_id=thread_id, **options) as run:
            graph.invoke(INPUT, run.config)

    def create(kwargs: dict[str, Any]) -> None:
        thread_id, options = split(kwargs)
        sync_manager.create(thread_id, options.pop("assistant_id", None), **options)

    def submit(kwargs: dict[str, Any]) -> None:
        thread_id, options = split(kwargs)
        sync_manager.submit(
            options.pop("assistant_id", "agent"), INPUT, thread_id=thread_id, **options
        )

    def manager_invoke(kwargs: dict[str, Any]) -> None:
        # RunManager's own synchronous invoke (no SyncRunManager around it)
        thread_id, options = split(kwargs)
        sync_manager.manager.invoke(graph, INPUT, thread_id=thread_id, **options)

    wrong = []
    for name, call in {
        "invoke": invoke,
        "stream": stream,
        "track": track,
        "create": create,
        "RunManager.invoke": manager_invoke,
    }.items():
        wrong += [f"{name}: {line}" for line in refusals(call, [*ID_CASES, *METADATA_CASES])]
    wrong += [f"submit: {line}" for line in refusals(submit, TIMEOUT_CASES)]
    assert wrong == [], "\n".join(wrong)
    assert list(sync_manager.list_runs(limit=100).runs) == []
    assert sync_manager.manager.run_sync(lambda: written(store, graph)) == (0, 0)
