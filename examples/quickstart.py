"""Quickstart: a two-node agent whose runs are recorded in an embedded SQLite file.

No server and no API key needed (a fake chat model that reports token usage stands in; set
OPENAI_API_KEY or ANTHROPIC_API_KEY to use a real one, which the price library prices; the
fake model gets a price of its own). The runs go to ./runstore.db, the
file the ``langgraph-runstore`` CLI reads by default (LANGGRAPH_RUNSTORE_URL overrides both).
Run it twice: the second time it also lists the runs of the first, read back from the file.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _agents import build_agent

from langgraph_runstore import RunManager, SQLRunStore, TokenPrice
from langgraph_runstore.db import default_url


async def main(url: str | None = None) -> None:
    url = url or default_url()
    async with SQLRunStore.from_url(url) as store:
        graph = build_agent().compile(checkpointer=store.checkpointer)
        # a real model is priced from genai-prices' data; the fake one gets gpt-4o's price
        manager = RunManager(store=store, prices={"fake-gpt": TokenPrice(2.5, 10.0)})

        # 1. a managed run: start it, wait for it, read its record
        run = await manager.wait(
            graph, {"messages": [("user", "What is a checkpoint?")]}, thread_id="demo"
        )
        print(
            f"managed run {run.run_id[:8]}: {run.status}, {run.total_tokens} tokens, "
            f"{run.llm_call_count} LLM call(s), last AI message: {run.last_ai_message!r}"
        )
        print(f"  cost ${run.cost_usd or 0:.6f}, LLM time {run.llm_ms:.1f} ms")

        # 2. your own ainvoke, tracked
        async with manager.track(thread_id="demo") as tracked:
            await graph.ainvoke({"messages": [("user", "And the run store?")]}, tracked.config)
        print(f"tracked run {tracked.run_id[:8]}: {tracked.status}, {tracked.total_tokens} tokens")

        # 3. everything this thread ever ran, newest first, read from the database
        print()
        print(f"{'run':10} {'status':12} {'tokens':>6} {'calls':>5}  last AI message")
        for record in await manager.list_by_thread("demo", limit=10):
            print(
                f"{record.run_id[:8]:10} {record.status.value:12} {record.total_tokens:>6} "
                f"{record.llm_call_count:>5}  {(record.last_ai_message or '')[:48]}"
            )
        print(f"\nthread 'demo' is {(await manager.thread_status('demo')).value}; database: {url}")


if __name__ == "__main__":
    asyncio.run(main())
