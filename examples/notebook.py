# %% [markdown]
# # langgraph-runstore in a notebook
#
# A jupytext "percent" notebook: each `# %%` marks a cell, and cells use top-level `await`
# as Jupyter (IPython's autoawait) runs it. Open it with jupytext or the VS Code / PyCharm
# interactive window, or run it whole from a shell; plain `python notebook.py` cannot,
# because top-level `await` is a syntax error outside a notebook:
#
#     python - <<'EOF'
#     import ast, asyncio
#     source = open("examples/notebook.py").read()
#     code = compile(source, "notebook.py", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
#     asyncio.run(eval(code, {}))
#     EOF
#
# That is how `tests/test_examples.py` runs it. It needs no API key: the chat model is a
# fake that reports token usage. Runs and checkpoints go to a SQLite file in a temporary
# folder, removed in the last cell.

# %%
import tempfile
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Annotated, Any, TypedDict

from langchain_core.language_models.fake_chat_models import FakeMessagesListChatModel
from langchain_core.messages import AIMessage
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages

from langgraph_runstore import RunManager, SQLRunStore


def reply(text: str) -> AIMessage:
    """An answer as a provider returns it: text, token usage and the model's name."""
    return AIMessage(
        content=text,
        usage_metadata={"input_tokens": 20, "output_tokens": 8, "total_tokens": 28},
        response_metadata={"model_name": "fake-notebook-model"},
    )


class State(TypedDict):
    messages: Annotated[list[Any], add_messages]


model = FakeMessagesListChatModel(
    responses=[reply("Paris is the capital of France."), reply("About 2.1 million people.")]
)


async def answer(state: State) -> dict[str, Any]:
    return {"messages": [await model.ainvoke(state["messages"])]}


def cite(state: State) -> dict[str, Any]:
    return {"messages": [AIMessage(content="(source: the fake model)")]}


builder = StateGraph(State)
builder.add_node("answer", answer)
builder.add_node("cite", cite)
builder.add_edge(START, "answer")
builder.add_edge("answer", "cite")
builder.add_edge("cite", END)

# %% [markdown]
# Open the store. A notebook cannot keep an `async with` block open across cells, so an
# `AsyncExitStack` holds it until the last cell closes it.

# %%
tmp = tempfile.TemporaryDirectory()
stack = AsyncExitStack()
store = await stack.enter_async_context(  # noqa: F704
    SQLRunStore.from_url(f"sqlite+aiosqlite:///{Path(tmp.name) / 'notebook.db'}")
)
graph = builder.compile(checkpointer=store.checkpointer)
manager = RunManager(store=store)

# %% [markdown]
# A managed run: `wait` runs the graph and returns the finished record.

# %%
run = await manager.wait(  # noqa: F704
    graph, {"messages": [("user", "What is the capital of France?")]}, thread_id="nb"
)
print(f"{run.status.value}: {run.total_tokens} tokens in {run.llm_call_count} LLM call(s)")
print(f"last AI message: {run.last_ai_message}")

# %% [markdown]
# Your own invocation, streamed and tracked: `run.config` carries the tracker.

# %%
async with manager.track(thread_id="nb") as tracked:
    async for update in graph.astream(
        {"messages": [("user", "How many people live there?")]},
        tracked.config,
        stream_mode="updates",
    ):
        print("update from node:", *update)
print(f"{tracked.status.value}: {tracked.total_tokens} tokens")
print("per model:", tracked.token_usage_by_model)

# %% [markdown]
# Every run of the thread, newest first, read back from the database.

# %%
for record in await manager.list_by_thread("nb"):  # noqa: F704
    print(record.run_id[:8], record.status.value, record.total_tokens, record.first_human_message)
print("thread status:", (await manager.thread_status("nb")).value)  # noqa: F704

# %%
await stack.aclose()  # noqa: F704
tmp.cleanup()
