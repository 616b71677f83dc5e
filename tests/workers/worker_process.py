"""A worker process for the multi-worker tests and benchmark.

    python -m tests.workers.worker_process URL WORKER_ID [--lease S] [--grace S]
        [--policy error|requeue] [--poll S] [--concurrency N]

It serves two assistants from the shared queue: ``echo`` (one node that waits like an LLM
call, ``configurable.sleep`` seconds, default 0.05, then answers) and ``slow`` (the same with
a 30-second default). Prints ``ready`` once its services run; SIGTERM shuts it down
gracefully.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from typing import Annotated, Any, TypedDict

from langchain_core.messages import AIMessage
from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages

from langgraph_runstore import RunManager, SQLRunStore
from langgraph_runstore.workers import RecoveryPolicy


class State(TypedDict):
    messages: Annotated[list[Any], add_messages]


def build(default_sleep: float) -> StateGraph[State]:
    async def answer(state: State, config: RunnableConfig) -> dict[str, Any]:
        await asyncio.sleep(float(config["configurable"].get("sleep", default_sleep)))
        return {"messages": [AIMessage(content=f"done: {state['messages'][-1].content}")]}

    builder = StateGraph(State)
    builder.add_node("answer", answer)
    builder.add_edge(START, "answer")
    builder.add_edge("answer", END)
    return builder


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("worker_id")
    parser.add_argument("--lease", type=float, default=1.0)
    parser.add_argument("--grace", type=float, default=0.5)
    parser.add_argument("--policy", default="error")
    parser.add_argument("--poll", type=float, default=0.2)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()

    url = args.url
    if url.startswith("postgresql"):
        # lets a test find (and cut) this worker's connections in pg_stat_activity; a libpq
        # URL parameter, so it works on either driver
        url += ("&" if "?" in url else "?") + f"application_name={args.worker_id}"
    async with SQLRunStore.from_url(url) as store:
        saver = store.checkpointer
        graphs = {
            "echo": build(0.05).compile(checkpointer=saver),
            "slow": build(30.0).compile(checkpointer=saver),
        }
        manager = RunManager(
            store=store,
            worker_id=args.worker_id,
            graphs=graphs,
            lease_seconds=args.lease,
            grace_seconds=args.grace,
            recovery=RecoveryPolicy(running=args.policy),
            poll_interval=args.poll,
            max_concurrent_runs=args.concurrency,
            drain_timeout=2.0,
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        async with manager:
            print("ready", flush=True)
            await stop.wait()


if __name__ == "__main__":
    asyncio.run(main())
