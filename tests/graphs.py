"""Real LangGraph graphs and langchain-core fake chat models that report token usage."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Annotated, Any, TypedDict

from langchain_core.language_models.fake_chat_models import (
    FakeMessagesListChatModel,
    GenericFakeChatModel,
)
from langchain_core.messages import AIMessage, AIMessageChunk
from langchain_core.outputs import ChatGenerationChunk
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.types import interrupt

from langgraph_runstore.schemas import TOKEN_FIELDS


class State(TypedDict):
    messages: Annotated[list[Any], add_messages]


def reply(
    text: Any,
    model: str | None = "model-a",
    *,
    input_tokens: int = 10,
    output_tokens: int = 5,
    **extra: Any,
) -> AIMessage:
    usage = {
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "total_tokens": input_tokens + output_tokens,
        **extra,
    }
    metadata = {"model_name": model} if model is not None else {}
    return AIMessage(content=text, usage_metadata=usage, response_metadata=metadata)  # type: ignore[arg-type]


def tokens_only(by_model: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """``token_usage_by_model`` with only the six token counts of each entry."""
    return {
        model: {k: v for k, v in e.items() if k in TOKEN_FIELDS} for model, e in by_model.items()
    }


def listed_model(*messages: AIMessage) -> FakeMessagesListChatModel:
    return FakeMessagesListChatModel(responses=list(messages))


class StreamingUsageModel(GenericFakeChatModel):
    """Streams its answer word by word; the last chunk carries the usage, as OpenAI's does."""

    usage: dict[str, int] = {"input_tokens": 7, "output_tokens": 3, "total_tokens": 10}
    model_name: str = "stream-model"

    def _stream(
        self, messages: Any, stop: Any = None, run_manager: Any = None, **kwargs: Any
    ) -> Iterator[ChatGenerationChunk]:
        yield from super()._stream(messages, stop=stop, run_manager=run_manager, **kwargs)
        yield ChatGenerationChunk(
            message=AIMessageChunk(
                content="",
                usage_metadata=self.usage,  # type: ignore[arg-type]
                response_metadata={"model_name": self.model_name},
            )
        )


def two_model_graph(first: Any, second: Any, *, sync: bool = False) -> StateGraph[State]:
    """ask (first model) -> check (second model) -> note (no LLM); sync nodes if ``sync``."""

    async def ask(state: State) -> dict[str, Any]:
        return {"messages": [await first.ainvoke(state["messages"])]}

    async def check(state: State) -> dict[str, Any]:
        return {"messages": [await second.ainvoke(state["messages"])]}

    if sync:

        def ask(state: State) -> dict[str, Any]:  # type: ignore[misc]
            return {"messages": [first.invoke(state["messages"])]}

        def check(state: State) -> dict[str, Any]:  # type: ignore[misc]
            return {"messages": [second.invoke(state["messages"])]}

    def note(state: State) -> dict[str, Any]:
        return {"messages": [("system", "noted")]}

    builder = StateGraph(State)
    builder.add_node("ask", ask)
    builder.add_node("check", check)
    builder.add_node("note", note)
    builder.add_edge(START, "ask")
    builder.add_edge("ask", "check")
    builder.add_edge("check", "note")
    builder.add_edge("note", END)
    return builder


def single_node_graph(node: Any) -> StateGraph[State]:
    builder = StateGraph(State)
    builder.add_node("only", node)
    builder.add_edge(START, "only")
    builder.add_edge("only", END)
    return builder


def slow_graph(started: asyncio.Event | None = None, *, seconds: float = 30) -> StateGraph[State]:
    """write (a checkpoint) -> wait (an LLM that takes ``seconds``)."""

    def write(state: State) -> dict[str, Any]:
        return {"messages": [AIMessage(content="wrote")]}

    async def wait(state: State) -> dict[str, Any]:
        if started is not None:
            started.set()
        await asyncio.sleep(seconds)
        return {"messages": [AIMessage(content="late")]}

    builder = StateGraph(State)
    builder.add_node("write", write)
    builder.add_node("wait", wait)
    builder.add_edge(START, "write")
    builder.add_edge("write", "wait")
    builder.add_edge("wait", END)
    return builder


def approval_graph(model: Any) -> StateGraph[State]:
    """draft (LLM) -> approve (interrupt) -> END."""

    async def draft(state: State) -> dict[str, Any]:
        return {"messages": [await model.ainvoke(state["messages"])]}

    def approve(state: State) -> dict[str, Any]:
        answer = interrupt("approve the draft?")
        return {"messages": [("user", f"approved: {answer}")]}

    builder = StateGraph(State)
    builder.add_node("draft", draft)
    builder.add_node("approve", approve)
    builder.add_edge(START, "draft")
    builder.add_edge("draft", "approve")
    builder.add_edge("approve", END)
    return builder


def blocked_graph(
    started: asyncio.Event, release: asyncio.Event, *, checkpointer: Any = None
) -> Any:
    """think (an LLM call: 15 tokens) -> hold (waits for ``release``), compiled (on an
    InMemorySaver unless ``checkpointer`` is given)."""
    from langgraph.checkpoint.memory import InMemorySaver

    model = listed_model(reply("thought", input_tokens=11, output_tokens=4))

    async def think(state: State) -> dict[str, Any]:
        return {"messages": [await model.ainvoke(state["messages"])]}

    async def hold(state: State) -> dict[str, Any]:
        started.set()
        await release.wait()
        return {"messages": [("ai", "released")]}

    builder = StateGraph(State)
    builder.add_node("think", think)
    builder.add_node("hold", hold)
    builder.add_edge(START, "think")
    builder.add_edge("think", "hold")
    builder.add_edge("hold", END)
    return builder.compile(checkpointer=checkpointer or InMemorySaver())
