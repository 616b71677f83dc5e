"""What a tracker writes its run through: ``RunWriter`` (the start, the progress, the end)
and ``SyncRunWriter``, which also runs a coroutine to its end from sync code."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

from langgraph_runstore.schemas import RunRecord, RunStatus

T = TypeVar("T")


class RunWriter(Protocol):
    """Where a tracker writes its run: the start, the progress, the end
    (``RunLifecycle`` is one, and ``RunManager`` passes its own through)."""

    async def mark_running(self, record: RunRecord) -> None: ...

    async def flush_progress(self, record: RunRecord, **fields: Any) -> None: ...

    async def finish(
        self,
        record: RunRecord,
        status: RunStatus,
        *,
        error: str | None = None,
        stop_reason: str | None = None,
        **fields: Any,
    ) -> bool: ...


class SyncRunWriter(RunWriter, Protocol):
    """A RunWriter that also runs a coroutine to its end from sync code (its own loop)."""

    def run_sync(self, factory: Callable[[], Awaitable[T]]) -> T: ...


__all__ = ["RunWriter", "SyncRunWriter"]
