"""The arguments of LangGraph's ``invoke``/``stream`` that a managed run passes on to the
graph: ``context``, ``durability``, ``interrupt_before``/``interrupt_after`` and
``checkpoint_id``; checked before anything is written, and made storable for ``submit``.

``checkpoint_id`` is not a graph argument: it goes into ``configurable``, where LangGraph
reads the checkpoint a run starts from (the Platform's ``checkpoint``). A run started from
an earlier checkpoint forks the thread there, as ``graph.ainvoke(input, config)`` with that
``checkpoint_id`` does.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from langgraph_runstore.errors import InvalidInputError
from langgraph_runstore.validate import check_id, check_json_mapping

#: LangGraph's durability modes: write checkpoints before the next step, beside it, or
#: only when the run exits
DURABILITY_MODES = ("sync", "async", "exit")

#: what ``start``/``wait``/``stream``/``submit`` hand on to admission (``create_or_reject``)
CREATE_OPTIONS = frozenset(
    {
        "assistant_id",
        "on_disconnect",
        "metadata",
        "kwargs",
        "multitask_strategy",
        "model_name",
        "user_id",
        "run_id",
        "idempotency_key",
        "budget",
    }
)

#: LangGraph's own invoke arguments that a managed run passes on
INVOKE_ARGUMENTS = ("context", "durability", "interrupt_before", "interrupt_after", "checkpoint_id")

#: the keywords of ``RunManager.start`` besides the create options
START_ARGUMENTS = frozenset(
    {
        "config",
        "timeout",
        "stream_mode",
        "subgraphs",
        "context",
        "durability",
        "interrupt_before",
        "interrupt_after",
        "checkpoint_id",
    }
)


@dataclass(frozen=True)
class InvokeArgs:
    """LangGraph invoke arguments of one managed run; None means LangGraph's default."""

    context: Any = None
    durability: str | None = None
    interrupt_before: str | tuple[str, ...] | None = None
    interrupt_after: str | tuple[str, ...] | None = None
    checkpoint_id: str | None = None

    def graph_kwargs(self) -> dict[str, Any]:
        """The keyword arguments for ``graph.ainvoke``/``astream`` (the unset left out)."""
        out: dict[str, Any] = {}
        if self.context is not None:
            out["context"] = self.context
        if self.durability is not None:
            out["durability"] = self.durability
        for name in ("interrupt_before", "interrupt_after"):
            nodes = getattr(self, name)
            if nodes is not None:
                out[name] = nodes if isinstance(nodes, str) else list(nodes)
        return out

    def config(self, config: Mapping[str, Any] | None) -> dict[str, Any]:
        """``config`` with ``checkpoint_id`` in its ``configurable``."""
        merged = dict(config or {})
        if self.checkpoint_id is not None:
            merged["configurable"] = {
                **dict(merged.get("configurable") or {}),
                "checkpoint_id": self.checkpoint_id,
            }
        return merged

    def to_json(self, *, run_id: str | None = None) -> dict[str, Any]:
        """The arguments as JSON, stored with a submitted run; ``context`` must be a
        mapping, a dataclass or a pydantic model (a worker's graph gets it back as a dict,
        which LangGraph turns into its ``context_schema``)."""
        out: dict[str, Any] = {}
        if self.context is not None:
            out["context"] = check_json_mapping(
                _as_mapping(self.context, run_id=run_id), name="context", run_id=run_id
            )
        for name in ("durability", "interrupt_before", "interrupt_after", "checkpoint_id"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value if isinstance(value, str) else list(value)
        return out

    @classmethod
    def from_json(cls, stored: Mapping[str, Any] | None, *, graph: Any = None) -> InvokeArgs:
        """The arguments a worker read back from a submitted run's row."""
        stored = dict(stored or {})
        return parse_invoke_args(graph, **stored)


def _as_mapping(context: Any, *, run_id: str | None) -> Any:
    if isinstance(context, Mapping):
        return dict(context)
    if dataclasses.is_dataclass(context) and not isinstance(context, type):
        return dataclasses.asdict(context)
    dump = getattr(context, "model_dump", None)
    if callable(dump):
        return dump(mode="json")
    raise InvalidInputError(
        f"context of a submitted run must be a mapping, a dataclass or a pydantic model, "
        f"got {type(context).__name__}: it is stored with the run for a worker",
        run_id=run_id,
    )


def _nodes(value: Any, *, name: str, graph: Any) -> str | tuple[str, ...] | None:
    if value is None:
        return None
    if value == "*":
        return "*"
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise InvalidInputError(f"{name} must be '*' or a list of node names, got {value!r}")
    names = tuple(value)
    for node in names:
        if not isinstance(node, str):
            raise InvalidInputError(f"{name} must list node names (str), got {node!r}")
    known = getattr(graph, "nodes", None)
    if isinstance(known, Mapping):
        unknown = [node for node in names if node not in known]
        if unknown:
            raise InvalidInputError(
                f"{name} names nodes the graph does not have: {unknown}; "
                f"its nodes are {sorted(n for n in known if not n.startswith('__'))}"
            )
    return names


def parse_invoke_args(
    graph: Any,
    *,
    context: Any = None,
    durability: Any = None,
    interrupt_before: Any = None,
    interrupt_after: Any = None,
    checkpoint_id: Any = None,
) -> InvokeArgs:
    """Check the arguments against LangGraph's (and ``graph``'s nodes); InvalidInputError
    names the bad value."""
    if durability is not None and durability not in DURABILITY_MODES:
        raise InvalidInputError(
            f"durability must be one of {', '.join(map(repr, DURABILITY_MODES))}, "
            f"got {durability!r}"
        )
    if checkpoint_id is not None:
        check_id(checkpoint_id, name="checkpoint_id")
        if graph is not None and getattr(graph, "checkpointer", None) in (None, False):
            raise InvalidInputError(
                f"checkpoint_id={checkpoint_id!r} needs a graph compiled with a checkpointer"
            )
    return InvokeArgs(
        context=context,
        durability=durability,
        interrupt_before=_nodes(interrupt_before, name="interrupt_before", graph=graph),
        interrupt_after=_nodes(interrupt_after, name="interrupt_after", graph=graph),
        checkpoint_id=checkpoint_id,
    )


async def check_checkpoint_exists(graph: Any, thread_id: str, args: InvokeArgs) -> None:
    """InvalidInputError when ``args.checkpoint_id`` names no checkpoint of the thread."""
    if args.checkpoint_id is None:
        return
    checkpointer = getattr(graph, "checkpointer", None)
    getter = getattr(checkpointer, "aget_tuple", None)
    if getter is None:
        return  # a checkpointer we cannot ask: LangGraph reports it when the run starts
    config = {"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}}
    config["configurable"]["checkpoint_id"] = args.checkpoint_id
    if await getter(config) is None:
        raise InvalidInputError(
            f"checkpoint_id {args.checkpoint_id!r} names no checkpoint of thread {thread_id!r}",
            thread_id=thread_id,
        )


def check_options(
    method: str, options: Mapping[str, Any], *, also: frozenset[str] = frozenset()
) -> None:
    """TypeError, as Python gives, for a keyword ``method`` does not take."""
    unknown = sorted(set(options) - CREATE_OPTIONS - also)
    if unknown:
        raise TypeError(f"{method}() got an unexpected keyword argument {unknown[0]!r}")


__all__ = [
    "CREATE_OPTIONS",
    "DURABILITY_MODES",
    "INVOKE_ARGUMENTS",
    "START_ARGUMENTS",
    "InvokeArgs",
    "check_checkpoint_exists",
    "check_options",
    "parse_invoke_args",
]
