"""A process that executes one tracked run of the gated graph, for the follow tests.

    python -m tests.journal_process URL THREAD_ID

Prints the run id once the run exists, runs ``think``, waits at ``gate`` until a line
arrives on stdin, then finishes the run and prints ``done``.
"""

from __future__ import annotations

import asyncio
import sys

from langgraph_runstore import JournalConfig, RunManager, SQLRunStore
from tests.journal_graphs import gated_graph


async def main(url: str, thread_id: str) -> None:
    journal = JournalConfig(flush_interval=0.05)  # events reach the store within 50 ms
    async with SQLRunStore.from_url(url) as store, RunManager(store, journal=journal) as manager:
        gate = asyncio.Event()
        graph = gated_graph(gate, checkpointer=store.checkpointer)
        loop = asyncio.get_running_loop()

        async def open_gate() -> None:
            await loop.run_in_executor(None, sys.stdin.readline)
            gate.set()

        async with manager.track(thread_id=thread_id) as run:
            print(run.run_id, flush=True)
            opener = asyncio.ensure_future(open_gate())
            await graph.ainvoke({"messages": [("user", "go on")]}, run.config)
            await opener
    print("done", flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
