"""CancelWatch: brings the cancel requests other processes record in a SQL store to the runs
this process executes, when it is not a worker (workers have their own heartbeat).

``langgraph-runstore runs cancel`` or a second manager records a request on the run's row
(``cancel_requested_at``, ``cancel_action``). The process that executes the run looks for
requests on its running runs every ``poll_interval`` seconds (0.5 s by default), in one
indexed statement, and cancels the run itself, so that its graph stops, its tokens so far
are written and ``join()`` answers what the store holds. The watch runs only while the
process executes runs, and stops as soon as the last one ends.

On PostgreSQL this is a poll too, not ``LISTEN``: a listening connection must be held
outside the pool for as long as runs may execute, or opened anew for each burst of runs
(a connection per run for a script that runs one graph at a time); the poll meets the
one-second bound without either. Workers, which hold a connection for ``LISTEN`` anyway,
hear cancels at once (workers.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from langgraph_runstore.lifecycle import RunLifecycle
from langgraph_runstore.schemas import RunStatus

logger = logging.getLogger(__name__)


class CancelWatch:
    """Watches the store for cancel requests on ``lifecycle``'s live runs and hands each to
    ``cancel(run_id, action=...)`` once."""

    def __init__(
        self,
        lifecycle: RunLifecycle,
        *,
        cancel: Callable[..., Awaitable[bool]],
        poll_interval: float,
    ) -> None:
        self.lifecycle = lifecycle
        self._cancel = cancel
        self.poll_interval = poll_interval
        self._task: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._wake = asyncio.Event()
        self._delivered: set[str] = set()

    def supported(self) -> bool:
        return callable(getattr(self.lifecycle.store, "cancel_requests", None))

    def notice(self) -> None:
        """A run started or ended: start watching, or look again at what to watch."""
        if self._task is not None and not self._task.done():
            if not self._watched():
                self._wake.set()  # the last run ended: the poll loop can stop now
            return
        if self._timer is not None or not self.supported():
            return
        # a timer, not a task: a run that ends within one interval (most runs) costs no
        # task and no statement
        self._timer = asyncio.get_running_loop().call_later(self.poll_interval, self._due)

    def _due(self) -> None:
        self._timer = None
        if self._watched() and (self._task is None or self._task.done()):
            self._task = asyncio.get_running_loop().create_task(
                self._poll_loop(), name="runstore cancel watch"
            )

    async def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    def _watched(self) -> list[str]:
        return [
            run_id
            for run_id, record in self.lifecycle.live.items()
            if record.status is RunStatus.running
            and not record.store_only
            and run_id not in self._delivered
        ]

    async def _poll_loop(self) -> None:
        # started one interval after a run started (``_due``): look now, then every interval
        loop = asyncio.get_running_loop()
        while True:
            run_ids = self._watched()
            if not run_ids:
                self._delivered.intersection_update(self.lifecycle.live)
                return  # started again when a run starts
            await self.check(run_ids)
            deadline = loop.time() + self.poll_interval
            while self._watched():
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                self._wake.clear()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=remaining)

    async def check(self, run_ids: list[str]) -> None:
        """Deliver the requests recorded on ``run_ids``."""
        store: Any = self.lifecycle.store
        try:
            requested = await store.cancel_requests(run_ids)
        except Exception as exc:
            logger.debug("Could not look for cancel requests: %s", exc)
            return
        for row in requested:
            await self._deliver(row["run_id"], row.get("cancel_action"))

    async def _deliver(self, run_id: str, action: str | None) -> None:
        record = self.lifecycle.live.get(run_id)
        if record is None or run_id in self._delivered:
            return
        self._delivered.add(run_id)
        logger.info("Run %s was cancelled from another process (%s)", run_id, action)
        try:
            await self._cancel(run_id, action=action or "interrupt")
        except Exception:
            logger.exception("Could not deliver a cancel to run %s", run_id)


__all__ = ["CancelWatch"]
