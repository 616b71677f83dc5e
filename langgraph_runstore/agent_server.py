"""The LangGraph Agent Server recipe: the checkpointer that ``langgraph.json`` names, and
graphs recorded into the run store that checkpointer opened.

``langgraph.json``::

    {
      "graphs": {"agent": "./graph.py:graph"},
      "checkpointer": {"path": "langgraph_runstore.agent_server.checkpointer"}
    }

``graph.py``::

    from langgraph_runstore.agent_server import recorded

    graph = recorded(builder.compile())  # the server adds the checkpointer

Every run the server executes then gets a row in the run store at
``$LANGGRAPH_RUNSTORE_URL`` (default ``./runstore.db``, the file the ``langgraph-runstore``
command reads), under the server's run_id, thread_id and assistant_id, beside the thread's
checkpoints. The server loads a module path with dots only (``package.module.attr``); it
reads ``package.module:attr`` as an attribute of ``package`` and fails to start.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from langgraph_runstore.db.engine import URL_ENV_VAR, default_url
from langgraph_runstore.errors import DatabaseConfigError, InvalidInputError

if TYPE_CHECKING:
    from langgraph.pregel import Pregel

    from langgraph_runstore.checkpoint import SQLAlchemySaver
    from langgraph_runstore.recorder import RunRecorder
    from langgraph_runstore.store.sql import SQLRunStore

G = TypeVar("G", bound="Pregel[Any, Any, Any, Any]")

# The stores open in this process, oldest first. The server enters the checkpointer once per
# event loop (once in all, unless BG_JOB_ISOLATED_LOOPS gives each worker a loop of its own);
# the oldest store is the one opened on the server's main loop, which lives as long as the
# server and takes the recorder's writes from any other loop.
_open_stores: list[SQLRunStore] = []
_open_lock = threading.Lock()


def store_url() -> str:
    """``$LANGGRAPH_RUNSTORE_URL`` (a URL, or a SQLite file path as the CLI takes), else
    ``sqlite+aiosqlite:///runstore.db``."""
    url = default_url()
    if "://" not in url:
        url = f"sqlite+aiosqlite:///{Path(url).expanduser().resolve()}"
    return url


@asynccontextmanager
async def open_store(url: str | None = None, **engine_kwargs: Any) -> AsyncIterator[SQLRunStore]:
    """Open the run store at ``url`` (default :func:`store_url`), creating or migrating its
    schema, and make it the store that :func:`current_store` returns until it closes.

    For a checkpointer of your own (engine options, a URL from elsewhere)::

        @asynccontextmanager
        async def checkpointer():
            async with open_store(os.environ["DATABASE_URL"], pool_size=5) as store:
                yield store.checkpointer
    """
    from langgraph_runstore.store.sql import SQLRunStore

    # The server runs graphs on its event loop and, under `langgraph dev`, raises on any
    # blocking call there: the SQLite store's statements go to aiosqlite's thread.
    engine_kwargs.setdefault("sqlite_direct", False)
    async with SQLRunStore.from_url(url or store_url(), **engine_kwargs) as store:
        with _open_lock:
            _open_stores.append(store)
        try:
            yield store
        finally:
            with _open_lock:
                _open_stores.remove(store)


@asynccontextmanager
async def checkpointer() -> AsyncIterator[SQLAlchemySaver]:
    """The ``SQLAlchemySaver`` of the run store at :func:`store_url`, for ``langgraph.json``'s
    ``"checkpointer": {"path": "langgraph_runstore.agent_server.checkpointer"}``."""
    async with open_store() as store:
        yield store.checkpointer


def current_store() -> SQLRunStore:
    """The oldest run store still open in this process (see :func:`open_store`).

    Raises DatabaseConfigError when none is open: the server was not given this module's
    checkpointer, or the graph runs outside the server without ``open_store()``.
    """
    with _open_lock:
        if _open_stores:
            return _open_stores[0]
    raise DatabaseConfigError(
        "no run store is open in this process: set langgraph.json's "
        '"checkpointer": {"path": "langgraph_runstore.agent_server.checkpointer"}, '
        "or run the graph inside `async with langgraph_runstore.agent_server.open_store():`"
        f" (the URL comes from ${URL_ENV_VAR})"
    )


def recorder(
    *,
    assistant_id: str | None = None,
    user_id: str | None = None,
    metadata: dict[str, Any] | None = None,
) -> RunRecorder:
    """A RunRecorder writing to :func:`current_store`, looked up at the first run it sees
    (graph modules are imported before the server opens the checkpointer).

    ``assistant_id`` and ``user_id`` are used only when the run's config has none (the
    server always sets its assistant; its user comes with ``"auth"`` in ``langgraph.json``).
    """
    from langgraph_runstore.recorder import RunRecorder

    return RunRecorder(current_store, assistant_id=assistant_id, user_id=user_id, metadata=metadata)


def recorded(
    graph: G,
    *,
    assistant_id: str | None = None,
    user_id: str | None = None,
    metadata: dict[str, Any] | None = None,
) -> G:
    """``graph`` with a :func:`recorder` among its callbacks: every root invocation of it is
    recorded as a run, whoever invokes it (the server, a test, a script).

    Raises InvalidInputError for anything but a compiled graph (a ``StateGraph`` builder
    must be compiled first).
    """
    from langgraph.pregel import Pregel

    if not isinstance(graph, Pregel):
        raise InvalidInputError(
            f"recorded() needs a compiled graph (builder.compile()), got {type(graph).__name__}"
        )
    handler = recorder(assistant_id=assistant_id, user_id=user_id, metadata=metadata)
    return graph.with_config(callbacks=[handler])


__all__ = ["checkpointer", "current_store", "open_store", "recorded", "recorder", "store_url"]
