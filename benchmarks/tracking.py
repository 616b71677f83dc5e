"""What tracking costs: the same graph with and without a run record, same checkpointer.

The graph is a 3-node agent (plan: LLM, act: LLM, report: no LLM) on langchain-core's fake
chat model, whose answers carry token usage. Every invocation uses a new thread. Modes:

* untracked      ``await graph.ainvoke(inp, {"configurable": {"thread_id": ...}})``
* noop callback  the same with a do-nothing AsyncCallbackHandler: langchain-core's share
* track          ``async with manager.track(thread_id=...) as run:``
                 ``    await graph.ainvoke(inp, run.config)``
* wait           ``await manager.wait(graph, inp, thread_id=...)`` (a managed run)
* track, no cost  track with pricing and attribution by node off (``prices=False``,
                 no per-node usage): "track" minus this is what costing every LLM call adds
* track, 10k held  track on a manager that already holds 10,000 finished runs, on a
                 MemoryRunStore holding their rows (a manager keeps finished runs in memory
                 for ``retain_finished_for`` = 300 s)
* floor          SQLite only: what any durable, callback-driven run record must pay and none
                 of our Python: the noop callback, plus the run store's own two statements
                 (the admission insert before the graph, the completion update after it)
                 sent raw through a sqlite3 connection. "track" minus "floor" is what this
                 package's code adds.

Backends: InMemorySaver with a MemoryRunStore-backed RunManager (goal: tracking adds at most
0.3 ms per invocation), and SQLAlchemySaver on a SQLite file with a SQLRunStore on the same
file (goal: tracking adds at most 10% to ainvoke time). track and wait batches get a new
RunManager (and, in memory, a new MemoryRunStore), so a batch measures the per-run cost and
not the runs earlier batches left behind; "track, 10k held" measures those. Batches of all
modes are interleaved in rotating order, ``--runs`` times; the table shows the best and the
median batch, and the goals are judged on the best (the batch least disturbed by the
machine). Run-store statements per tracked run are counted for real in a separate pass:
calls to the store's primitives (counting subclasses of the stores), SQL statements on the
``runs`` table seen by aiosqlite and, when a PostgreSQL server is available
(RUNSTORE_BENCH_PG_URL or scripts/pg.sh), every statement asyncpg sends, over untracked.
Usage: benchmarks/tracking.py [--runs N] [--invocations N] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import re
import sqlite3
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AsyncExitStack, contextmanager
from pathlib import Path
from typing import Annotated, Any, TypedDict

import aiosqlite
import asyncpg
from langchain_core.callbacks import AsyncCallbackHandler
from langchain_core.language_models.fake_chat_models import FakeMessagesListChatModel
from langchain_core.messages import AIMessage, AnyMessage, HumanMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import Measure, pg_url, ratio_line, table

from langgraph_runstore import (
    MemoryRunStore,
    RunManager,
    RunRecord,
    RunStatus,
    RunStore,
    SQLRunStore,
)
from langgraph_runstore.accounting import Accounting
from langgraph_runstore.schemas import now_iso
from langgraph_runstore.store import drivers as sql_drivers
from langgraph_runstore.store import sql as sql_store
from langgraph_runstore.store.statements import encode_row

Call = Callable[[str], Awaitable[None]]
#: Per invocation: wall-clock ms and this process's CPU ms (all its threads).
Timing = tuple[float, float]
#: Runs one batch of the given number of invocations.
Batch = Callable[[int], Awaitable[Timing]]
HELD = 10_000


class State(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]


class PricedFakeModel(FakeMessagesListChatModel):
    """The fake chat model, reported as OpenAI's (``ls_provider``) so its calls are priced
    from the price library, as a real ChatOpenAI's are."""

    def _get_ls_params(self, stop: Any = None, **kwargs: Any) -> Any:
        params = super()._get_ls_params(stop=stop, **kwargs)
        params["ls_provider"] = "openai"
        return params


def _reply(text: str, model: str, input_tokens: int, output_tokens: int) -> AIMessage:
    return AIMessage(
        content=text,
        usage_metadata={
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "total_tokens": input_tokens + output_tokens,
        },
        response_metadata={"model_name": model},
    )


def build_graph(checkpointer: Any) -> Any:
    """plan (LLM) -> act (LLM) -> report (no LLM), compiled on ``checkpointer``."""
    planner = PricedFakeModel(
        responses=[_reply("1. look it up 2. summarise it", "gpt-4o-mini", 42, 9)]
    )
    actor = PricedFakeModel(
        responses=[_reply("The answer is 42, according to the guide.", "gpt-4.1-mini", 61, 11)]
    )

    async def plan(state: State) -> dict[str, Any]:
        return {"messages": [await planner.ainvoke(state["messages"])]}

    async def act(state: State) -> dict[str, Any]:
        return {"messages": [await actor.ainvoke(state["messages"])]}

    def report(state: State) -> dict[str, Any]:
        words = sum(len(str(m.content).split()) for m in state["messages"])
        return {"messages": [AIMessage(content=f"done: {words} words exchanged")]}

    builder = StateGraph(State)
    builder.add_node("plan", plan)
    builder.add_node("act", act)
    builder.add_node("report", report)
    builder.add_edge(START, "plan")
    builder.add_edge("plan", "act")
    builder.add_edge("act", "report")
    builder.add_edge("report", END)
    return builder.compile(checkpointer=checkpointer)


#: LLM calls per invocation of the benchmark graph (plan and act)
LLM_CALLS = 2


def _inp() -> dict[str, Any]:
    return {"messages": [HumanMessage(content="What is the answer to everything?")]}


class NoopHandler(AsyncCallbackHandler):
    """Receives every callback and does nothing: what langchain-core's dispatch costs."""

    run_inline = True


def calls(graph: Any, manager: RunManager) -> dict[str, Call]:
    """One invocation per mode, on the thread it is given."""
    noop = NoopHandler()

    async def untracked(thread_id: str) -> None:
        await graph.ainvoke(_inp(), {"configurable": {"thread_id": thread_id}})

    async def noop_callback(thread_id: str) -> None:
        await graph.ainvoke(_inp(), {"callbacks": [noop], "configurable": {"thread_id": thread_id}})

    async def track(thread_id: str) -> None:
        async with manager.track(thread_id=thread_id) as run:
            await graph.ainvoke(_inp(), run.config)

    async def wait(thread_id: str) -> None:
        run = await manager.wait(graph, _inp(), thread_id=thread_id)
        assert run.status is RunStatus.success, run.error

    return {"untracked": untracked, "noop callback": noop_callback, "track": track, "wait": wait}


async def batch(call: Call, invocations: int) -> Timing:
    """Wall and CPU ms per invocation over ``invocations`` calls, each on a new thread."""
    gc.collect()
    start, cpu = time.perf_counter(), time.process_time()
    for _ in range(invocations):
        await call(str(uuid.uuid4()))
    wall_ms = (time.perf_counter() - start) * 1000 / invocations
    return wall_ms, (time.process_time() - cpu) * 1000 / invocations


def floor_call(graph: Any, path: Path) -> tuple[Call, Callable[[], None]]:
    """The noop-callback invocation between the run store's two statements, sent raw on a
    connection set up like the store's own (autocommit, synchronous=NORMAL, no
    checkpoints at commit). Returns the call and a function that closes the connection."""
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA synchronous = NORMAL")
    db.execute("PRAGMA wal_autocheckpoint = 0")
    stamp = now_iso()
    # the very statements and values a tracked run sends, prepared once: no Python of ours
    # runs per invocation beyond filling in the ids
    record = RunRecord(run_id="x", thread_id="x", created_at=stamp, updated_at=stamp)
    record.status, record.started_at = RunStatus.running, stamp
    admit_row = encode_row(record.to_row(sparse=True))
    admit = sql_store._insert_if_idle_sql(tuple(admit_row)).sqlite
    usage = {"input_tokens": 103, "output_tokens": 20, "total_tokens": 123}
    completion = {
        **usage,
        "token_usage_by_model": '{"fake-actor": {}, "fake-planner": {}}',
        "llm_call_count": 2,
        "message_count": 4,
        "last_ai_message": "The answer is 42, according to the guide.",
        "first_human_message": "What is the answer to everything?",
        "started_at": stamp,
        "ended_at": stamp,
    }
    # the plain UPDATE: the store's own statement also returns the row it left (RETURNING),
    # a cost the package pays and the floor does not
    update = sql_store._completion_sql("success", tuple(sorted(completion)), False).sqlite
    completion.update(status="success", now=stamp)
    noop = NoopHandler()

    async def floor(thread_id: str) -> None:
        run_id = str(uuid.uuid4())
        db.execute(admit, {**admit_row, "run_id": run_id, "thread_id": thread_id})
        await graph.ainvoke(_inp(), {"callbacks": [noop], "configurable": {"thread_id": thread_id}})
        db.execute(update, {**completion, "run_id": run_id})

    return floor, db.close


def batches(
    graph: Any, new_store: Callable[[], RunStore], held: RunManager | None
) -> dict[str, Batch]:
    """Every mode as a batch; track and wait on a new manager per batch."""

    def plain(mode: str) -> Batch:
        async def run(invocations: int) -> Timing:
            return await batch(calls(graph, RunManager())[mode], invocations)

        return run

    def managed(mode: str, *, cost: bool = True) -> Batch:
        async def run(invocations: int) -> Timing:
            async with RunManager(store=new_store(), prices=None if cost else False) as manager:
                if not cost:
                    manager.accounting = Accounting(prices=None, attribution=False)
                return await batch(calls(graph, manager)[mode], invocations)

        return run

    modes = {name: plain(name) for name in ("untracked", "noop callback")}
    modes.update({name: managed(name) for name in ("track", "wait")})
    modes["track, no cost"] = managed("track", cost=False)
    if held is not None:
        track_held = calls(graph, held)["track"]

        async def run_held(invocations: int) -> Timing:
            return await batch(track_held, invocations)

        modes[f"track, {HELD // 1000}k held"] = run_held
    return modes


async def holding(store: RunStore, count: int) -> RunManager:
    """A manager that holds ``count`` finished runs, as one does after a busy 300 s."""
    manager = RunManager(store=store)
    for i in range(count):
        record = await manager.create(f"earlier-{i}")
        await manager.set_status(record.run_id, RunStatus.success)
    return manager


async def interleaved(
    modes: dict[str, Batch], runs: int, invocations: int
) -> dict[str, tuple[Measure, Measure]]:
    """``runs`` rounds of one batch per mode, rotating the order; a warm-up round first.
    Returns (wall, CPU) measures per mode."""
    for run in modes.values():
        await run(max(20, invocations // 10))
    values: dict[str, list[Timing]] = {name: [] for name in modes}
    names = list(modes)
    for round_ in range(runs):
        for name in names[round_ % len(names) :] + names[: round_ % len(names)]:
            values[name].append(await modes[name](invocations))
    return {
        name: (Measure(tuple(w for w, _ in v)), Measure(tuple(c for _, c in v)))
        for name, v in values.items()
    }


# --- counting store statements ---------------------------------------------------------------

_PRIMITIVES = (
    "put",
    "get",
    "delete",
    "list_by_thread",
    "update_status",
    "update_run_completion",
    "insert_if_thread_idle",
    "list_inflight",
)


def _counting(cls: type[RunStore]) -> Any:
    """A subclass of ``cls`` that counts calls to each store primitive in ``.calls``."""

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        cls.__init__(self, *args, **kwargs)
        self.calls = Counter()
        self.depth = 0

    def wrap(name: str) -> Any:
        async def method(self: Any, *args: Any, **kwargs: Any) -> Any:
            if self.depth == 0:  # a primitive that calls another one counts once
                self.calls[name] += 1
            self.depth += 1
            try:
                return await getattr(cls, name)(self, *args, **kwargs)
            finally:
                self.depth -= 1

        method.__name__ = name
        return method

    namespace = {"__init__": init, **{name: wrap(name) for name in _PRIMITIVES}}
    return type(f"Counting{cls.__name__}", (cls,), namespace)


CountingMemoryRunStore: Any = _counting(MemoryRunStore)
CountingSQLRunStore: Any = _counting(SQLRunStore)

_RUNS_TABLE = re.compile(r"\bruns\b", re.IGNORECASE)


@contextmanager
def count_runs_sql() -> Iterator[Counter[str]]:
    """Count SQL statements on the ``runs`` table, by first word: those sent through
    aiosqlite and those the run store's SQLite driver runs directly on the loop thread."""
    seen: Counter[str] = Counter()
    patched: list[tuple[Any, str, Any]] = []

    def count(sql: str) -> None:
        if _RUNS_TABLE.search(sql):
            seen[sql.split(None, 1)[0].upper()] += 1

    for cls in (aiosqlite.Connection, aiosqlite.Cursor):
        original = cls.execute

        def execute(self: Any, sql: str, *args: Any, _original: Any = original, **kw: Any) -> Any:
            count(sql)
            return _original(self, sql, *args, **kw)

        patched.append((cls, "execute", original))
        cls.execute = execute
    direct = sql_drivers.SQLiteDriver._try_direct

    def try_direct(self: Any, statement: Any, params: Any, fetch: bool) -> Any:
        done = direct(self, statement, params, fetch)
        if done is not sql_drivers.BUSY:
            count(statement.sqlite)  # run here; a busy one is counted when aiosqlite runs it
        return done

    patched.append((sql_drivers.SQLiteDriver, "_try_direct", direct))
    sql_drivers.SQLiteDriver._try_direct = try_direct  # type: ignore[method-assign]
    try:
        yield seen
    finally:
        for cls, name, original in patched:
            setattr(cls, name, original)


async def count_statements(backend: str, runs: int = 20) -> dict[str, tuple[float, float, str]]:
    """Per tracked run, on a fresh store: (store primitive calls, SQL statements on the
    ``runs`` table, calls by primitive)."""
    with tempfile.TemporaryDirectory(prefix="tracking-count-") as tmp:
        async with AsyncExitStack() as stack:
            if backend == "memory":
                store, checkpointer = CountingMemoryRunStore(), InMemorySaver()
            else:
                url = f"sqlite+aiosqlite:///{Path(tmp) / 'count.db'}"
                store = await stack.enter_async_context(CountingSQLRunStore.from_url(url))
                checkpointer = store.checkpointer
            manager = await stack.enter_async_context(RunManager(store=store))
            modes = calls(build_graph(checkpointer), manager)
            out = {}
            for mode in ("track", "wait"):
                await modes[mode](str(uuid.uuid4()))  # warm-up, not counted
                store.calls = Counter()
                with count_runs_sql() as sql:
                    for _ in range(runs):
                        await modes[mode](str(uuid.uuid4()))
                by_call = ", ".join(f"{k} {n / runs:g}" for k, n in sorted(store.calls.items()))
                out[mode] = (sum(store.calls.values()) / runs, sum(sql.values()) / runs, by_call)
            return out


@contextmanager
def count_asyncpg() -> Iterator[Counter[str]]:
    """Count every statement asyncpg sends (BEGIN and COMMIT included), by first word."""
    seen: Counter[str] = Counter()
    cls: Any = asyncpg.connection.Connection
    names = ("execute", "executemany", "fetch", "fetchrow", "fetchval")
    originals = {name: getattr(cls, name) for name in names}

    def counting(original: Any) -> Any:
        async def method(self: Any, query: str, *args: Any, **kwargs: Any) -> Any:
            seen[query.split(None, 1)[0].rstrip(";").upper()] += 1
            return await original(self, query, *args, **kwargs)

        return method

    for name, original in originals.items():
        setattr(cls, name, counting(original))
    try:
        yield seen
    finally:
        for name, original in originals.items():
            setattr(cls, name, original)


async def count_postgres(server: str, runs: int = 20) -> dict[str, tuple[float, str]]:
    """Statements per run that track and wait add at the asyncpg driver on PostgreSQL, over
    an untracked invocation of the same graph (so the checkpointer's cancel out)."""
    admin = await asyncpg.connect(server.replace("postgresql+asyncpg://", "postgresql://"))
    name = "runstore_bench_tracking"
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        url = server.rsplit("/", 1)[0] + f"/{name}"
        async with SQLRunStore.from_url(url) as store, RunManager(store=store) as manager:
            modes = calls(build_graph(store.checkpointer), manager)
            seen: dict[str, Counter[str]] = {}
            for mode in ("untracked", "track", "wait"):
                await modes[mode](str(uuid.uuid4()))  # warm-up, not counted
                with count_asyncpg() as seen[mode]:
                    for _ in range(runs):
                        await modes[mode](str(uuid.uuid4()))
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
    out = {}
    for mode in ("track", "wait"):
        added = seen[mode].copy()
        added.subtract(seen["untracked"])
        by_word = ", ".join(f"{k} {n / runs:g}" for k, n in sorted(added.items()) if n)
        out[mode] = (sum(added.values()) / runs, by_word)
    return out


# --- main ------------------------------------------------------------------------------------


def _rows(backend: str, measures: dict[str, tuple[Measure, Measure]]) -> list[list[str]]:
    base, base_cpu = measures["untracked"]
    rows = []
    for name, (m, cpu) in measures.items():
        if name == "untracked":
            extra = ["", "", "", ""]
        else:
            extra = [
                f"{m.min - base.min:+.3f}",
                f"{m.median - base.median:+.3f}",
                f"{(m.min / base.min - 1) * 100:+.1f}%",
                f"{cpu.min - base_cpu.min:+.3f}",
            ]
        rows.append(
            [
                backend,
                name,
                f"{m.min:.3f}",
                f"{m.median:.3f}",
                *extra[:3],
                f"{cpu.min:.3f}",
                extra[3],
            ]
        )
    return rows


def _verdict(met: bool, met_on_cpu: bool | None = None) -> str:
    if met and met_on_cpu is False:
        # a busy machine stretches wall time and dilutes the ratio; CPU time does not lie so
        return "met on wall time only, MISSED on CPU time (was the machine busy?)"
    return "met" if met else "MISSED"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=7, help="rounds per mode (>= 3)")
    parser.add_argument("--invocations", type=int, default=150, help="invocations per batch")
    parser.add_argument("--quick", action="store_true", help="3 rounds of 50 invocations")
    args = parser.parse_args()
    runs, invocations = (3, 50) if args.quick else (max(3, args.runs), args.invocations)

    # (a) InMemorySaver + a RunManager on a MemoryRunStore
    async with await holding(MemoryRunStore(), HELD) as held:
        modes = batches(build_graph(InMemorySaver()), MemoryRunStore, held)
        memory = await interleaved(modes, runs, invocations)

    # (b) SQLAlchemySaver on SQLite + a SQLRunStore on the same file
    with tempfile.TemporaryDirectory(prefix="tracking-bench-") as tmp:
        url = f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
        async with SQLRunStore.from_url(url) as store:
            graph = build_graph(store.checkpointer)
            modes = batches(graph, lambda: store, None)
            floor, close_floor = floor_call(graph, Path(tmp) / "bench.db")

            async def run_floor(count: int) -> Timing:
                return await batch(floor, count)

            modes["floor"] = run_floor
            try:
                sqlite = await interleaved(modes, runs, invocations)
            finally:
                close_floor()

    counts = {backend: await count_statements(backend) for backend in ("memory", "sqlite")}
    server = pg_url()
    postgres = await count_postgres(server) if server else None

    print(
        f"{runs} rounds x {invocations} invocations per mode, interleaved; ms per invocation, "
        "best and median batch; added = mode - untracked; CPU = this process's CPU time"
    )
    headers = ["backend", "mode", "best", "median", "added best", "added median", "% best"]
    headers += ["CPU best", "CPU added"]
    print(table(headers, _rows("memory", memory) + _rows("sqlite", sqlite)))
    for backend, per_mode in counts.items():
        for mode, (store_calls, sql, by_call) in per_mode.items():
            sql_part = f"{sql:g} SQL statements on runs, " if backend == "sqlite" else ""
            print(f"{backend} {mode}: {sql_part}{store_calls:g} store calls per run [{by_call}]")
    if postgres is None:
        print("postgres: statement count skipped (no server; run scripts/pg.sh start)")
    else:
        for mode, (statements, by_word) in postgres.items():
            print(f"postgres {mode}: {statements:g} statements per run over untracked [{by_word}]")
    print()
    wall = {name: m[0] for name, m in memory.items()}
    cpu = {name: m[1] for name, m in memory.items()}
    for mode in ("track", "wait"):
        added = wall[mode].min - wall["untracked"].min
        added_median = wall[mode].median - wall["untracked"].median
        added_cpu = cpu[mode].min - cpu["untracked"].min
        print(
            f"memory {mode} vs untracked: {added:+.3f} ms min, {added_median:+.3f} ms median "
            f"per invocation (CPU {added_cpu:+.3f} ms) (goal <= 0.3 ms): "
            f"{_verdict(added <= 0.3, added_cpu <= 0.3)}"
        )
    for backend, measured in (("memory", memory), ("sqlite", sqlite)):
        on, off = measured["track"], measured["track, no cost"]
        per_call = [(on[i].min - off[i].min) / LLM_CALLS for i in (0, 1)]
        median = (on[0].median - off[0].median) / LLM_CALLS
        print(
            f"{backend} cost and attribution on vs off: {per_call[0]:+.3f} ms min, "
            f"{median:+.3f} ms median per LLM call (CPU {per_call[1]:+.3f} ms) "
            f"(goal <= 0.05 ms): {_verdict(per_call[0] <= 0.05, per_call[1] <= 0.05)}"
        )
    for mode in ("track", "wait"):
        ours, theirs = sqlite[mode][0], sqlite["untracked"][0]
        line = ratio_line(
            f"sqlite {mode} vs untracked ainvoke",
            ours,
            theirs,
            goal="<= 1.10x",
            higher_is_better=False,
        )
        cpu_ratio = sqlite[mode][1].min / sqlite["untracked"][1].min
        verdict = _verdict(ours.min <= 1.10 * theirs.min, cpu_ratio <= 1.10)
        print(f"{line} (CPU {cpu_ratio:.2f}x): {verdict}")
    floor, untracked = sqlite["floor"][0], sqlite["untracked"][0]
    print(
        f"sqlite floor (noop callback + the two statements, raw) vs untracked: "
        f"{floor.min / untracked.min:.2f}x min, {floor.median / untracked.median:.2f}x median; "
        f"track adds {sqlite['track'][0].min - floor.min:+.3f} ms over the floor (best batches)"
    )
    per_run = {mode: counts["sqlite"][mode][1] for mode in ("track", "wait")}
    print(
        f"run-store statements per tracked run: track {per_run['track']:g}, "
        f"wait {per_run['wait']:g} (goal <= 3): {_verdict(max(per_run.values()) <= 3)}"
    )
    if postgres is not None:
        worst = max(statements for statements, _ in postgres.values())
        print(
            f"postgres statements per tracked run: track {postgres['track'][0]:g}, "
            f"wait {postgres['wait'][0]:g}, BEGIN and COMMIT included (goal <= 3): "
            f"{_verdict(worst <= 3)}"
        )


if __name__ == "__main__":
    asyncio.run(main())
