"""Human in the loop: a run that pauses on ``interrupt()``, then a second run that resumes it.

A fake chat model (with token usage, no API key) drafts a reply; the ``review`` node calls
``interrupt()`` to ask a human to approve it. The first run ends ``success`` with
``stop_reason="interrupt"`` and the thread reads ``interrupted``. Resuming with
``Command(resume=...)`` is a new run on the same thread, which publishes the draft.

Runs and checkpoints go to a SQLite file in a temporary folder, removed at exit; to use
another database, pass its URL: ``python examples/human_in_the_loop.py postgresql://...``.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _agents import State, chat_model
from langchain_core.messages import AIMessage
from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command, interrupt

from langgraph_runstore import RunManager, RunRecord, SQLRunStore


def build_review_graph(model: Any | None = None) -> StateGraph[State]:
    """``draft`` (LLM) -> ``review`` (waits for a human) -> END."""
    model = model or chat_model()

    async def draft(state: State) -> dict[str, Any]:
        return {"messages": [await model.ainvoke(state["messages"])]}

    def review(state: State) -> dict[str, Any]:
        decision = interrupt(
            {"question": "Publish this draft?", "draft": state["messages"][-1].content}
        )
        if decision.get("approved"):
            return {"messages": [AIMessage(content=f"Published, with note: {decision['note']}")]}
        return {"messages": [AIMessage(content="Discarded the draft.")]}

    builder = StateGraph(State)
    builder.add_node("draft", draft)
    builder.add_node("review", review)
    builder.add_edge(START, "draft")
    builder.add_edge("draft", "review")
    builder.add_edge("review", END)
    return builder


def describe(label: str, run: RunRecord) -> None:
    print(
        f"{label}: run {run.run_id[:8]} status={run.status.value} "
        f"stop_reason={run.stop_reason} tokens={run.total_tokens} llm_calls={run.llm_call_count}"
    )


async def main(url: str | None = None) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        url = url or f"sqlite+aiosqlite:///{Path(tmp) / 'hitl.db'}"
        async with SQLRunStore.from_url(url) as store:
            graph = build_review_graph().compile(checkpointer=store.checkpointer)
            manager = RunManager(store=store)
            thread: RunnableConfig = {"configurable": {"thread_id": "review"}}

            # run 1: drafts, then stops at interrupt() and waits for a human
            first = await manager.wait(
                graph,
                {"messages": [("user", "Draft one sentence about checkpoints.")]},
                thread_id="review",
            )
            describe("run 1", first)
            print(f"thread status: {(await manager.thread_status('review')).value}")
            state = await graph.aget_state(thread)
            print(f"waiting in node: {list(state.next)}; asks: {state.interrupts[0].value}")

            # the human answers: resuming is a new run on the same thread
            second = await manager.wait(
                graph, Command(resume={"approved": True, "note": "ship it"}), thread_id="review"
            )
            describe("run 2", second)
            print(f"thread status: {(await manager.thread_status('review')).value}")
            state = await graph.aget_state(thread)
            print(f"final message: {state.values['messages'][-1].content}")

            runs = await manager.list_by_thread("review")
            print(f"runs on thread 'review' (newest first): {[r.run_id[:8] for r in runs]}")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else None))
