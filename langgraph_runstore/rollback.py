"""Rollback: putting a thread back where it stood before a cancelled run.

A run that resumes a thread (input ``None`` or a ``Command``) adds pending writes to the
checkpoint it resumes from: the resume values, the output of the tasks it finishes, a new
interrupt. So before such a run starts, :func:`capture` records the pending writes of that
checkpoint (and of the sub-graph checkpoints its waiting tasks continue). A run with new
input starts a checkpoint of its own and needs no capture.

:func:`roll_back` then restores the thread in one of two ways:

* a saver with ``adelete_for_runs`` and ``areplace_writes`` (``SQLAlchemySaver``): the
  captured writes go back in place, then the run's checkpoints are deleted. The thread is
  exactly as before the run, checkpoint ids, task ids and interrupt ids included.
* any other saver (``InMemorySaver``, ``AsyncSqliteSaver``, ``AsyncPostgresSaver``): the
  checkpoint the run started from is copied as the newest one (LangGraph's ``__copy__``
  fork, a sibling of the original under the same parent), and its pending writes are put
  on the copy under the copy's task ids, so the same tasks wait with the same interrupt
  values. The copy has new ids, so the interrupts get the ids LangGraph derives for them
  there (what ``aget_state`` shows, and what ``Command(resume={id: value})`` must name).
  The run's checkpoints stay in the history. An interrupt raised inside a sub-graph is
  answered again from the sub-graph's start, as after a LangGraph time-travel fork.

Every saver call is made outside any iteration of ``alist``: the stock SQLite and
PostgreSQL savers hold a lock for as long as their ``alist`` is being iterated.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterable, Mapping, Sequence
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import WRITES_IDX_MAP, CheckpointTuple, PendingWrite
from langgraph.types import Command, Interrupt, StateSnapshot

logger = logging.getLogger(__name__)

# LangGraph's reserved channel and task names (langgraph._internal._constants)
_INTERRUPT = "__interrupt__"
_RESUME = "__resume__"
_ERROR = "__error__"


@dataclass(frozen=True)
class SavedWrites:
    """One checkpoint's pending writes as a run found them."""

    config: RunnableConfig
    writes: tuple[PendingWrite, ...]


@dataclass(frozen=True)
class RollbackPoint:
    """The pending writes a resuming run may change, taken before it started: the root
    checkpoint it resumes from first, then sub-graph checkpoints."""

    saved: tuple[SavedWrites, ...]


def resumes(graph_input: Any) -> bool:
    """Whether a run with this input continues the thread's newest checkpoint (and so
    may add writes to it), as LangGraph decides: no input, or a ``Command``."""
    return graph_input is None or isinstance(graph_input, Command)


def restores_in_place(checkpointer: Any) -> bool:
    """Whether ``checkpointer`` can delete a run's checkpoints and replace the pending
    writes of another, so that a rollback leaves no trace of the run."""
    return callable(getattr(checkpointer, "adelete_for_runs", None)) and callable(
        getattr(checkpointer, "areplace_writes", None)
    )


async def capture(checkpointer: Any, graph: Any, config: Mapping[str, Any]) -> RollbackPoint | None:
    """Record the pending writes of the checkpoint a run with ``config`` resumes from
    (None on a thread without checkpoints). Call it before the run's graph starts."""
    saved = await checkpointer.aget_tuple(_root_config(config))
    if saved is None:
        return None
    entries = [SavedWrites(saved.config, tuple(saved.pending_writes or ()))]
    if graph is not None and restores_in_place(checkpointer) and _has_waiting_tasks(saved):
        # sub-graph checkpoints only matter where they can be restored in place: a fork
        # gives the tasks new ids, so their sub-graphs start over anyway
        state = await graph.aget_state(saved.config, subgraphs=True)
        for sub_config in _subgraph_configs(state):
            sub = await checkpointer.aget_tuple(sub_config)
            if sub is not None:
                entries.append(SavedWrites(sub.config, tuple(sub.pending_writes or ())))
    return RollbackPoint(tuple(entries))


async def roll_back(
    checkpointer: Any,
    graph: Any,
    *,
    run_id: str,
    thread_id: str,
    point: RollbackPoint | None,
) -> bool:
    """Put ``thread_id`` back as it was before run ``run_id``; False when that needs a
    fork and ``graph`` is unknown (the thread is then left as the run left it)."""
    root = _root_config({"configurable": {"thread_id": thread_id}})
    in_place = restores_in_place(checkpointer)
    if in_place and point is not None:
        # the writes first: a crash before the delete leaves the run's checkpoints on
        # top of a sound thread, as a cancel with "interrupt" would
        for saved in point.saved:
            await checkpointer.areplace_writes(saved.config, saved.writes)
    try:
        await checkpointer.adelete_for_runs([run_id])
    except NotImplementedError:
        return await _fork_back(checkpointer, graph, run_id, root, point)
    if not in_place and point is not None:
        # the run's checkpoints are gone, but the one it resumed cannot be mended in place
        return await _fork_back(checkpointer, graph, run_id, root, point)
    return True


async def _fork_back(
    checkpointer: Any,
    graph: Any,
    run_id: str,
    root: RunnableConfig,
    point: RollbackPoint | None,
) -> bool:
    if point is not None:
        target_config, carried = point.saved[0].config, list(point.saved[0].writes)
    else:
        target = await _newest_not_of(checkpointer, root, run_id)
        if target is None:  # the thread began with this run: nothing of it existed before
            await checkpointer.adelete_thread(root["configurable"]["thread_id"])
            return True
        target_config, carried = target.config, list(target.pending_writes or ())
    latest = await checkpointer.aget_tuple(root)
    if (
        latest is not None
        and _checkpoint_id(latest.config) == _checkpoint_id(target_config)
        and _same_writes(latest.pending_writes or (), carried)
    ):
        return True  # the run wrote nothing the thread would read
    if graph is None:
        return False
    fork = await graph.aupdate_state(target_config, None, as_node="__copy__")
    if carried:
        await _carry_writes(checkpointer, graph, target_config, fork, carried)
    return True


async def _newest_not_of(
    checkpointer: Any, root: RunnableConfig, run_id: str
) -> CheckpointTuple | None:
    # closed before anything else calls the saver: its iteration may hold the saver's lock
    async with aclosing(checkpointer.alist(root)) as listed:
        async for saved in listed:
            if (saved.metadata or {}).get("run_id") != run_id:
                found: CheckpointTuple = saved
                return found
    return None


async def _carry_writes(
    checkpointer: Any,
    graph: Any,
    source: RunnableConfig,
    fork: RunnableConfig,
    writes: Sequence[PendingWrite],
) -> None:
    """Put ``source``'s pending writes on its copy ``fork``, each under the id the same
    task has there (task ids derive from the checkpoint id)."""
    old_tasks = {task.id: task for task in (await graph.aget_state(source)).tasks}
    new_tasks = {task.path: task for task in (await graph.aget_state(fork)).tasks}
    by_task: dict[str, list[tuple[str, Any]]] = {}
    for task_id, channel, value in writes:
        by_task.setdefault(task_id, []).append((channel, value))
    for task_id, task_writes in by_task.items():
        old = old_tasks.get(task_id)
        new = new_tasks.get(old.path) if old is not None else None
        new_id = task_id
        if old is not None and new is not None:
            new_id = new.id
            answered = _answered(task_writes)
            old_ns, new_ns = f"{old.name}:{old.id}", f"{new.name}:{new.id}"
            task_writes = [
                (c, _renamed(v, old_ns, new_ns, answered) if c == _INTERRUPT else v)
                for c, v in task_writes
            ]
        # one call per kind, as LangGraph makes them: savers number the regular writes
        # of a call and key the special ones by channel
        special = [w for w in task_writes if w[0] in WRITES_IDX_MAP]
        regular = [w for w in task_writes if w[0] not in WRITES_IDX_MAP]
        for part in (special, regular):
            if part:
                await checkpointer.aput_writes(fork, part, new_id)


def _answered(task_writes: Iterable[tuple[str, Any]]) -> int:
    """How many of the task's interrupts were answered (its resume values so far)."""
    for channel, value in task_writes:
        if channel == _RESUME and isinstance(value, list):
            return len(value)
    return 0


def _renamed(value: Any, old_ns: str, new_ns: str, answered: int) -> Any:
    """Interrupts with the ids LangGraph gives them in the task namespace ``new_ns``.

    The id is derived from the task's namespace (and, past the first answer, how many
    answers it has). An id this derivation does not reproduce from ``old_ns`` is kept.
    """
    if not isinstance(value, (list, tuple)):
        return value
    suffixes = [f"|{answered}", ""] if answered else [""]
    renamed = []
    for item in value:
        if isinstance(item, Interrupt):
            for suffix in suffixes:
                if Interrupt.from_ns(item.value, old_ns + suffix).id == item.id:
                    item = copy.copy(item)
                    item.id = Interrupt.from_ns(item.value, new_ns + suffix).id
                    break
        renamed.append(item)
    return type(value)(renamed) if isinstance(value, tuple) else renamed


def _root_config(config: Mapping[str, Any]) -> RunnableConfig:
    configurable = config.get("configurable") or {}
    root: dict[str, Any] = {"thread_id": configurable["thread_id"], "checkpoint_ns": ""}
    if configurable.get("checkpoint_id"):
        root["checkpoint_id"] = configurable["checkpoint_id"]
    return {"configurable": root}


def _checkpoint_id(config: RunnableConfig) -> Any:
    return (config.get("configurable") or {}).get("checkpoint_id")


def _has_waiting_tasks(saved: CheckpointTuple) -> bool:
    return any(channel in (_INTERRUPT, _ERROR) for _, channel, _ in saved.pending_writes or ())


def _subgraph_configs(state: StateSnapshot) -> list[RunnableConfig]:
    found: list[RunnableConfig] = []
    for task in state.tasks:
        if isinstance(task.state, StateSnapshot):
            found.append(task.state.config)
            found.extend(_subgraph_configs(task.state))
    return found


def _same_writes(a: Sequence[PendingWrite], b: Sequence[PendingWrite]) -> bool:
    if len(a) != len(b):
        return False
    try:
        return sorted(map(_write_key, a)) == sorted(map(_write_key, b)) and all(x in b for x in a)
    except Exception:  # values that do not compare: assume the run changed them
        return False


def _write_key(write: PendingWrite) -> tuple[str, str]:
    return (str(write[0]), str(write[1]))


__all__ = ["RollbackPoint", "SavedWrites", "capture", "restores_in_place", "resumes", "roll_back"]
