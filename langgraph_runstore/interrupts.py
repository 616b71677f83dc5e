"""Interrupts as the run store keeps them: ``{"id", "value", "ns"}`` dicts of JSON values.

``id`` is LangGraph's interrupt id (what ``Command(resume={id: value})`` answers), ``value``
what the graph passed to ``interrupt()``, made JSON-storable, and ``ns`` the checkpoint
namespace of the task that raised it, as a list of ``"node:task_id"`` parts (empty when it
is not known, as for ``interrupt_before``/``interrupt_after`` pauses, which carry no value).

``read_pending()`` reads the interrupts still waiting for an answer from a thread's newest
checkpoint: those written by a task that produced nothing else, as LangGraph itself
decides which interrupts a resume must answer.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

# LangGraph's reserved channel and task names (langgraph._internal._constants)
INTERRUPT_CHANNEL = "__interrupt__"
_NULL_TASK_ID = "00000000-0000-0000-0000-000000000000"
_CONTROL_CHANNELS = frozenset({"__interrupt__", "__error__", "__error_source_node__", "__resume__"})
_MAX_DEPTH = 20


def jsonable(value: Any, _depth: int = 0) -> Any:
    """``value`` as plain JSON data: pydantic models, dataclasses and messages as dicts,
    tuples and sets as lists, anything else that JSON cannot hold as its ``repr``."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if _depth > _MAX_DEPTH:
        return repr(value)
    if isinstance(value, Mapping):
        return {str(key): jsonable(item, _depth + 1) for key, item in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [jsonable(item, _depth + 1) for item in value]
    dump = getattr(value, "model_dump", None)  # pydantic models, BaseMessage
    if callable(dump):
        try:
            return jsonable(dump(), _depth + 1)
        except Exception:
            return repr(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        # field by field: asdict() deep-copies, and refuses values that do not copy
        return {
            field.name: jsonable(getattr(value, field.name, None), _depth + 1)
            for field in dataclasses.fields(value)
        }
    return repr(value)


def interrupt_entry(interrupt: Any, ns: Sequence[str] = ()) -> dict[str, Any]:
    """One stored interrupt from a LangGraph ``Interrupt`` (or a dict of the same fields)."""
    if isinstance(interrupt, Mapping):
        value = interrupt.get("value")
        ns = namespace_parts(interrupt.get("ns")) or ns
    else:
        value = getattr(interrupt, "value", None)
    try:
        stored = jsonable(value)
    except Exception:  # a value that cannot even be walked is still recorded
        stored = _safe_repr(value)
    return {
        "id": interrupt_id_of(interrupt),
        "value": stored,
        "ns": [str(part) for part in ns],
    }


def interrupt_id_of(interrupt: Any) -> str | None:
    """The id of a LangGraph ``Interrupt`` (or of a dict with an ``id``), as text."""
    found = (
        interrupt.get("id") if isinstance(interrupt, Mapping) else getattr(interrupt, "id", None)
    )
    return None if found is None else str(found)


def _safe_repr(value: Any) -> str:
    try:
        return repr(value)
    except Exception:
        return f"<unrepresentable {type(value).__name__}>"


def namespace_parts(checkpoint_ns: Any) -> list[str]:
    """``"a:1|b:2"`` (LangGraph's ``langgraph_checkpoint_ns``) or a tuple of parts as a list."""
    if isinstance(checkpoint_ns, str):
        return checkpoint_ns.split("|") if checkpoint_ns else []
    if isinstance(checkpoint_ns, Iterable) and not isinstance(checkpoint_ns, Mapping):
        return [str(part) for part in checkpoint_ns]
    return []


def pending_interrupts(pending_writes: Iterable[Sequence[Any]]) -> list[Any]:
    """The ``Interrupt`` objects among a checkpoint's pending writes that await an answer."""
    interrupts: dict[str, list[Any]] = {}
    finished: set[str] = set()
    for task_id, channel, value in pending_writes:
        if task_id == _NULL_TASK_ID:
            continue
        if channel == INTERRUPT_CHANNEL:
            items = value if isinstance(value, (list, tuple)) else [value]
            interrupts.setdefault(task_id, []).extend(items)
        elif channel not in _CONTROL_CHANNELS:
            finished.add(task_id)
    return [
        interrupt
        for task_id, items in interrupts.items()
        if task_id not in finished
        for interrupt in items
    ]


async def read_pending(
    checkpointer: Any, thread_id: str, *, known: Iterable[Mapping[str, Any]] = ()
) -> list[dict[str, Any]]:
    """The interrupts ``thread_id`` waits on, from its newest root checkpoint; ``known``
    entries (a run's stored interrupts) supply the namespace a checkpoint does not keep."""
    config = {"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}}
    checkpoint = await checkpointer.aget_tuple(config)
    if checkpoint is None:
        return []
    where = {entry["id"]: entry.get("ns") or [] for entry in known if entry.get("id")}
    entries = []
    for interrupt in pending_interrupts(checkpoint.pending_writes or ()):
        entry = interrupt_entry(interrupt)
        entry["ns"] = list(where.get(entry["id"], entry["ns"]))
        entries.append(entry)
    return entries


__all__ = [
    "INTERRUPT_CHANNEL",
    "interrupt_entry",
    "interrupt_id_of",
    "jsonable",
    "namespace_parts",
    "pending_interrupts",
    "read_pending",
]
