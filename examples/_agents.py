"""Small agents shared by the examples: a fake chat model that reports token usage, and a
two-node graph (an LLM call, then a node that writes a short summary)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from itertools import cycle
from typing import Annotated, Any, TypedDict

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, AIMessageChunk
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages

REPLIES = [
    "LangGraph keeps each step of the agent in a checkpoint.",
    "The run store records how many tokens that took.",
    "Both live in one SQLite file next to your script.",
]


class State(TypedDict):
    messages: Annotated[list[Any], add_messages]


def fake_reply(text: str, *, model_name: str = "fake-gpt", input_tokens: int = 12) -> AIMessage:
    """An AIMessage as a provider returns it: text, usage and the model's name."""
    output_tokens = len(text.split())
    return AIMessage(
        content=text,
        usage_metadata={
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "total_tokens": input_tokens + output_tokens,
        },
        response_metadata={"model_name": model_name},
    )


class UsageReportingFakeChatModel(GenericFakeChatModel):
    """GenericFakeChatModel whose streamed answers end with a chunk that carries usage."""

    def _stream(
        self, messages: Any, stop: Any = None, run_manager: Any = None, **kwargs: Any
    ) -> Iterator[Any]:
        usage = None
        for chunk in super()._stream(messages, stop=stop, run_manager=run_manager, **kwargs):
            message = chunk.message
            if getattr(message, "usage_metadata", None):
                usage = message.usage_metadata
                chunk.message = AIMessageChunk(
                    content=message.content,
                    id=message.id,
                    response_metadata=message.response_metadata,
                )
            yield chunk
        if usage:
            from langchain_core.outputs import ChatGenerationChunk

            yield ChatGenerationChunk(message=AIMessageChunk(content="", usage_metadata=usage))


def chat_model() -> Any:
    """A real model when an API key is set, else the fake one (no network, no key)."""
    if os.environ.get("OPENAI_API_KEY") or os.environ.get("ANTHROPIC_API_KEY"):
        from langchain.chat_models import init_chat_model

        name = (
            "openai:gpt-4o-mini"
            if os.environ.get("OPENAI_API_KEY")
            else "anthropic:claude-3-5-haiku-latest"
        )
        return init_chat_model(name)
    return UsageReportingFakeChatModel(messages=cycle(fake_reply(text) for text in REPLIES))


def build_agent(model: Any | None = None) -> StateGraph[State]:
    """A two-node agent: ``answer`` asks the model, ``summarize`` notes the answer's length."""
    model = model or chat_model()

    async def answer(state: State) -> dict[str, Any]:
        return {"messages": [await model.ainvoke(state["messages"])]}

    def summarize(state: State) -> dict[str, Any]:
        words = len(str(state["messages"][-1].content).split())
        return {"messages": [AIMessage(content=f"(answered in {words} words)")]}

    builder = StateGraph(State)
    builder.add_node("answer", answer)
    builder.add_node("summarize", summarize)
    builder.add_edge(START, "answer")
    builder.add_edge("answer", "summarize")
    builder.add_edge("summarize", END)
    return builder
