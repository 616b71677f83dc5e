"""Deleting one finished run: its row and the checkpoints it wrote (the Platform's
``runs.delete``).

``RunDeletion`` is a mixin on the facade, over the read side (``queries``) it looks the run
up with. The store deletes the row and, from its own checkpointer, the checkpoints whose
metadata names the run (``RunStore.delete_run``, the path ``prune_runs`` takes); a
checkpointer the store does not own is reached through ``checkpointer=``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from langgraph_runstore.awaitable import async_api
from langgraph_runstore.errors import ActiveRunError, InvalidInputError
from langgraph_runstore.queries import RunQueries
from langgraph_runstore.validate import check_id

#: how long ``delete`` waits for the graph task of a run that has just ended to stop
STOP_WAIT_SECONDS = 5.0


class RunDeletion(RunQueries):
    """``delete`` (see the module docstring)."""

    @async_api("RunManager")
    async def delete(
        self,
        run_id: str,
        *,
        keep_checkpoints: bool = False,
        user_id: str | None = None,
        checkpointer: Any = None,
    ) -> None:
        """Delete one finished run: its row and, unless ``keep_checkpoints=True``, the
        checkpoints it wrote (those whose metadata ``run_id`` is the run's).

        The checkpoints are deleted from the store's checkpointer (``SQLAlchemySaver`` on
        the store's database), or from ``checkpointer`` when given (a saver with
        ``adelete_for_runs``). Checkpoints in any other checkpointer are left alone: the
        store cannot see them, and the stock savers cannot delete one run's checkpoints
        (``checkpointer=`` one of them raises InvalidInputError, deleting nothing). The
        thread's other runs keep their checkpoints, and channel values they still need.

        Raises ActiveRunError (a ConflictError) for a pending or running run, and
        RunNotFoundError for an unknown run_id or, with ``user_id``, another user's run;
        nothing is deleted then.
        """
        check_id(run_id, name="run_id")
        check_id(user_id, name="user_id", optional=True, run_id=run_id)
        if not isinstance(keep_checkpoints, bool):
            raise InvalidInputError(
                f"keep_checkpoints must be True or False, got {keep_checkpoints!r}",
                run_id=run_id,
            )
        record = await self._visible_run(run_id, user_id)
        if not record.is_final:
            raise ActiveRunError(
                f"run {run_id!r} is {record.status.value}: only a finished run can be "
                "deleted (cancel it first, or wait for its end)",
                run_id=run_id,
                thread_id=record.thread_id,
            )
        task = record.task
        if task is not None and not task.done():
            # it ended a moment ago (a cancel) and its graph is still stopping: a graph
            # that stops can write one more checkpoint
            await asyncio.wait([task], timeout=STOP_WAIT_SECONDS)
            if not task.done():
                raise ActiveRunError(
                    f"run {run_id!r} has ended but its graph has not stopped after "
                    f"{STOP_WAIT_SECONDS:.0f} s: try again once it has",
                    run_id=run_id,
                    thread_id=record.thread_id,
                )
        if checkpointer is not None and not keep_checkpoints:
            try:
                await checkpointer.adelete_for_runs([run_id])
            except NotImplementedError:
                raise InvalidInputError(
                    f"{type(checkpointer).__name__} cannot delete one run's checkpoints (it "
                    "has no adelete_for_runs): pass keep_checkpoints=True, or delete the "
                    "whole thread with its adelete_thread()",
                    run_id=run_id,
                    thread_id=record.thread_id,
                ) from None
        store = self.store
        if store is not None:
            own_checkpoints = checkpointer is None and not keep_checkpoints
            await self.lifecycle.retrying(
                lambda: store.delete_run(run_id, include_checkpoints=own_checkpoints)
            )
        # a final write still owed to the store would bring the row back
        self.lifecycle.unsaved.pending.pop(run_id, None)
        self.lifecycle.forget(run_id)


__all__ = ["RunDeletion"]
