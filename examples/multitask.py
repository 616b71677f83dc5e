"""Multitask strategies: what a new run does when its thread already has one in flight.

Each strategy gets its own thread, and a graph ``note`` -> ``answer``: ``note`` writes a
checkpoint ("working on ...") and ``answer`` is a slow LLM call (a fake chat model with
token usage, slowed down by ``configurable.delay`` seconds).

* ``reject``    the second run raises ConflictError; the first one carries on.
* ``enqueue``   runs wait their turn and execute one at a time, first in, first out.
* ``interrupt`` the run in flight is cancelled (its checkpoints stay), then the new one runs.
* ``rollback``  the same, but the cancelled run's checkpoints are removed: the thread is back
                where it stood before that run.

Runs and checkpoints go to a SQLite file in a temporary folder, removed at exit; to use
another database, pass its URL: ``python examples/multitask.py postgresql://...``.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from collections import defaultdict
from itertools import pairwise
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _agents import State, fake_reply
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph

from langgraph_runstore import ConflictError, RunManager, RunRecord, SQLRunStore

#: Set when a thread's ``answer`` node begins its slow call, so the demo knows a run is busy.
ENTERED: defaultdict[str, asyncio.Event] = defaultdict(asyncio.Event)


class EchoChatModel(BaseChatModel):
    """A fake chat model that answers the last user message and reports token usage."""

    @property
    def _llm_type(self) -> str:
        return "echo"

    def _generate(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kwargs: Any
    ) -> ChatResult:
        asked = next(m.content for m in reversed(messages) if isinstance(m, HumanMessage))
        reply = fake_reply(f"answer to {asked!r}", model_name="echo-1")
        return ChatResult(generations=[ChatGeneration(message=reply)])


def build_job_graph() -> StateGraph[State]:
    """``note`` (writes a checkpoint) -> ``answer`` (a slow LLM call)."""
    model = EchoChatModel()

    def note(state: State) -> dict[str, Any]:
        return {"messages": [AIMessage(content=f"working on {state['messages'][-1].content!r}")]}

    async def answer(state: State, config: RunnableConfig) -> dict[str, Any]:
        configurable = config.get("configurable") or {}
        ENTERED[configurable["thread_id"]].set()
        await asyncio.sleep(configurable.get("delay", 0.05))
        return {"messages": [await model.ainvoke(state["messages"])]}

    builder = StateGraph(State)
    builder.add_node("note", note)
    builder.add_node("answer", answer)
    builder.add_edge(START, "note")
    builder.add_edge("note", "answer")
    builder.add_edge("answer", END)
    return builder


def ask(text: str) -> dict[str, Any]:
    return {"messages": [("user", text)]}


def slow(seconds: float) -> dict[str, Any]:
    return {"configurable": {"delay": seconds}}


def show(label: str, run: RunRecord) -> None:
    reason = f" ({run.stop_reason})" if run.stop_reason else ""
    print(
        f"  {label:<22} run {run.run_id[:8]}: {run.status.value}{reason}, {run.total_tokens} tokens"
    )


async def messages(graph: CompiledStateGraph[Any], thread_id: str) -> list[str]:
    state = await graph.aget_state({"configurable": {"thread_id": thread_id}})
    return [str(m.content) for m in state.values.get("messages", [])]


async def start_busy_run(
    manager: RunManager, graph: CompiledStateGraph[Any], thread_id: str, text: str
) -> RunRecord:
    """Start a run that takes 30 s and return once it is inside its slow LLM call."""
    ENTERED[thread_id].clear()
    run = await manager.start(graph, ask(text), thread_id=thread_id, config=slow(30))
    await asyncio.wait_for(ENTERED[thread_id].wait(), timeout=10)
    # LangGraph saves a step's checkpoint while the next step already runs (durability
    # "async"): wait until the "working on" checkpoint is there too
    for _ in range(200):
        if f"working on {text!r}" in await messages(graph, thread_id):
            break
        await asyncio.sleep(0.01)
    return run


async def demo_reject(manager: RunManager, graph: CompiledStateGraph[Any]) -> None:
    print("reject: a second run on a busy thread is refused")
    first = await manager.start(graph, ask("long report"), thread_id="reject", config=slow(0.3))
    try:
        await manager.start(
            graph, ask("quick question"), thread_id="reject", multitask_strategy="reject"
        )
    except ConflictError as exc:
        print(f"  second run refused: ConflictError: {exc}")
    show("first run", await manager.join(first.run_id))


async def demo_enqueue(manager: RunManager, graph: CompiledStateGraph[Any]) -> None:
    print("enqueue: runs wait for the earlier ones and execute one at a time, in order")
    runs = [
        await manager.start(
            graph,
            ask(f"job {i}"),
            thread_id="enqueue",
            multitask_strategy="enqueue",
            config=slow(0.1),
        )
        for i in (1, 2, 3)
    ]
    print(f"  just after start: {', '.join(r.status.value for r in runs)}")
    done = [await manager.join(r.run_id) for r in runs]
    for i, run in enumerate(done, 1):
        show(f"job {i}", run)
    in_turn = all(str(a.ended_at) <= str(b.started_at) for a, b in pairwise(done))
    print(f"  each started after the previous one ended: {in_turn}")
    answers = [m for m in await messages(graph, "enqueue") if m.startswith("answer")]
    print(f"  answers in thread order: {answers}")


async def demo_interrupt(manager: RunManager, graph: CompiledStateGraph[Any]) -> None:
    print("interrupt: the run in flight is cancelled, its checkpoints kept, then the new one runs")
    old = await start_busy_run(manager, graph, "interrupt", "long report")
    new = await manager.wait(
        graph, ask("urgent"), thread_id="interrupt", multitask_strategy="interrupt"
    )
    show("cancelled run", old)
    show("new run", new)
    print(f"  thread messages: {await messages(graph, 'interrupt')}")


async def demo_rollback(manager: RunManager, graph: CompiledStateGraph[Any]) -> None:
    print("rollback: the run in flight is cancelled and its checkpoints removed")
    await manager.wait(graph, ask("first question"), thread_id="rollback")
    before = await messages(graph, "rollback")
    print(f"  thread before the cancelled run: {before}")
    old = await start_busy_run(manager, graph, "rollback", "long report")
    print(f"  while it runs:                   {await messages(graph, 'rollback')}")
    new = await manager.wait(
        graph, ask("urgent"), thread_id="rollback", multitask_strategy="rollback"
    )
    show("cancelled run", old)
    show("new run", new)
    after = await messages(graph, "rollback")
    print(f"  thread after the new run:        {after}")
    restored = after[: len(before)] == before and "long report" not in " ".join(after)
    print(f"  the new run started from the thread as it was before the cancelled run: {restored}")


async def main(url: str | None = None) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        url = url or f"sqlite+aiosqlite:///{Path(tmp) / 'multitask.db'}"
        async with SQLRunStore.from_url(url) as store, RunManager(store=store) as manager:
            graph = build_job_graph().compile(checkpointer=store.checkpointer)
            for demo in (demo_reject, demo_enqueue, demo_interrupt, demo_rollback):
                await demo(manager, graph)
                print()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else None))
