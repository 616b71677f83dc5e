"""A LangGraph Agent Server deployment whose runs land in langgraph-runstore.

    pip install 'langgraph-runstore[agent-server]'
    cd examples/agent_server && langgraph dev

``langgraph.json`` hands the server ``langgraph_runstore.agent_server.checkpointer``, so
the threads' checkpoints go to ``$LANGGRAPH_RUNSTORE_URL`` (default ``./runstore.db``), and
``recorded()`` gives each graph a recorder writing to that same store: every run the server
executes gets a row there under the server's run_id, thread_id and assistant_id, with its
tokens. ``langgraph-runstore runs list`` in this folder shows them.

No API key is needed: without one the model is a fake that reports token usage.
"""

from __future__ import annotations

import os
from typing import Any

from langchain_core.language_models.fake_chat_models import FakeMessagesListChatModel
from langchain_core.messages import AIMessage
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.types import interrupt

from langgraph_runstore.agent_server import recorded

REPLIES = [
    "The server ran me; the run store kept the count.",
    "Checkpoints and run rows share one database.",
]


def fake_reply(text: str) -> AIMessage:
    output_tokens = len(text.split())
    return AIMessage(
        content=text,
        usage_metadata={
            "input_tokens": 12,
            "output_tokens": output_tokens,
            "total_tokens": 12 + output_tokens,
        },
        response_metadata={"model_name": "fake-gpt"},
    )


def chat_model() -> Any:
    """A real model when an API key is set, else the fake one (no network, no key)."""
    if os.environ.get("OPENAI_API_KEY"):
        from langchain.chat_models import init_chat_model

        return init_chat_model("openai:gpt-4o-mini")
    # the fake cycles through its replies, one per call
    return FakeMessagesListChatModel(responses=[fake_reply(text) for text in REPLIES])


model = chat_model()


async def answer(state: MessagesState) -> dict[str, Any]:
    return {"messages": [await model.ainvoke(state["messages"])]}


def approve(state: MessagesState) -> dict[str, Any]:
    decision = interrupt("approve the answer?")
    return {"messages": [("user", f"approved: {decision}")]}


chat = StateGraph(MessagesState)
chat.add_node("answer", answer)
chat.add_edge(START, "answer")
chat.add_edge("answer", END)

#: one LLM call per run
agent = recorded(chat.compile())

review = StateGraph(MessagesState)
review.add_node("answer", answer)
review.add_node("approve", approve)
review.add_edge(START, "answer")
review.add_edge("answer", "approve")
review.add_edge("approve", END)

#: answer (LLM) -> approve (interrupt): resume with Command(resume=...)
approval = recorded(review.compile())
