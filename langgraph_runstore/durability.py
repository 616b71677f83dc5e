"""Final writes that did not land: kept, retried in the background until they land, and
flushed (or named) when the manager closes.

A run's final write (its status, counters and messages) can fail for longer than the retry
budget of one write: PostgreSQL down for a minute, a full disk, a connection cut mid-write.
Dropping it would leave the row ``running`` with no tokens and block the thread for reject
admission. Instead the record is kept here, marked ``durable=False``, and written again
with exponential backoff until the store takes it; ``flush()`` tries once more at close
and answers with the run ids that could still not be written.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from tenacity import AsyncRetrying, retry_if_exception_type, wait_exponential

from langgraph_runstore.errors import InvalidInputError
from langgraph_runstore.schemas import RunRecord


@dataclass(frozen=True)
class BackgroundRetryPolicy:
    """How a final write that did not land is retried in the background: waits grow from
    ``initial_delay`` by ``multiplier`` up to ``max_delay`` seconds, with no attempt limit."""

    initial_delay: float = 0.5
    max_delay: float = 30.0
    multiplier: float = 2.0

    def __post_init__(self) -> None:
        if not (0 < self.initial_delay <= self.max_delay) or self.multiplier < 1:
            raise InvalidInputError(
                "expected 0 < initial_delay <= max_delay and multiplier >= 1, got "
                f"initial_delay={self.initial_delay!r}, max_delay={self.max_delay!r}, "
                f"multiplier={self.multiplier!r}"
            )


class _NotLandedYet(Exception):
    """Some kept writes failed again this round (the retry loop waits, then retries)."""


class UnsavedFinalWrites:
    """The records whose final write has not landed, and the task that keeps writing them.

    ``land(record)`` writes a record's final state once and raises when it cannot;
    ``on_landed(record)`` runs after it did (the lifecycle schedules the record's eviction).
    """

    def __init__(
        self,
        land: Callable[[RunRecord], Awaitable[object]],
        *,
        on_landed: Callable[[RunRecord], None],
        policy: BackgroundRetryPolicy,
        log: logging.Logger,
    ) -> None:
        self._land = land
        self._on_landed = on_landed
        self.policy = policy
        self.log = log
        #: run_id -> record, for every final write still owed to the store
        self.pending: dict[str, RunRecord] = {}
        self._task: asyncio.Task[None] | None = None

    def keep(self, record: RunRecord, exc: BaseException) -> None:
        """Owe ``record``'s final write to the store, and retry it in the background."""
        record.durable = False
        first = record.run_id not in self.pending
        self.pending[record.run_id] = record
        if first:
            self.log.warning(
                "Final write for run %s (thread %s, %s) did not land: %s: %s. The record is "
                "not yet durable (durable=False); retrying in the background",
                record.run_id,
                record.thread_id,
                record.status.value,
                type(exc).__name__,
                exc,
            )
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(
                self._retry_forever(), name="runstore final-write retry"
            )

    def for_thread(self, thread_id: str) -> list[RunRecord]:
        return [r for r in self.pending.values() if r.thread_id == thread_id]

    async def land_now(self, records: list[RunRecord]) -> bool:
        """Try ``records`` once each now; True when all of them landed."""
        landed = True
        for record in records:
            try:
                await self._land(record)
            except Exception as exc:
                self.log.debug("Final write for run %s still failing: %s", record.run_id, exc)
                landed = False
            else:
                self._landed(record)
        return landed

    def _landed(self, record: RunRecord) -> None:
        if self.pending.pop(record.run_id, None) is not None:
            record.durable = True
            self.log.info("Final write for run %s landed after a retry", record.run_id)
            self._on_landed(record)

    async def _retry_forever(self) -> None:
        policy = self.policy
        retrying = AsyncRetrying(
            wait=wait_exponential(
                multiplier=policy.initial_delay,
                max=policy.max_delay,
                exp_base=policy.multiplier,
            ),
            retry=retry_if_exception_type(_NotLandedYet),
            reraise=True,
        )
        await asyncio.sleep(policy.initial_delay)
        try:
            async for attempt in retrying:
                with attempt:
                    if not await self.land_now(list(self.pending.values())):
                        raise _NotLandedYet
        except asyncio.CancelledError:
            raise
        except Exception:  # pragma: no cover - land_now catches what the store raises
            self.log.exception("The final-write retry loop stopped")

    async def flush(self, *, timeout: float) -> list[str]:
        """Stop retrying in the background and try every kept write for up to ``timeout``
        seconds; log and return the run ids whose final write still did not land."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        delay = self.policy.initial_delay
        while self.pending and not await self.land_now(list(self.pending.values())):
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            await asyncio.sleep(min(delay, remaining))
            delay = min(delay * self.policy.multiplier, self.policy.max_delay)
        unsaved = sorted(self.pending)
        if unsaved:
            self.log.error(
                "Closing with %d final write(s) that could not be written; the store still "
                "shows these runs as they were before they ended: %s",
                len(unsaved),
                ", ".join(unsaved),
            )
        return unsaved


__all__ = ["BackgroundRetryPolicy", "UnsavedFinalWrites"]
