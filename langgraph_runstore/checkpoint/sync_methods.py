"""The blocking twins of SQLAlchemySaver's async methods (what ``graph.invoke`` calls).

Each one hands its async method to ``_sync``, which the saver implements by running the
coroutine on its private loop thread; see ``SQLAlchemySaver``.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Iterator, Sequence
from typing import Any, TypeVar

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    PendingWrite,
)

T = TypeVar("T")


class SyncMethods(BaseCheckpointSaver[str]):
    """Sync methods over the async ones; a subclass provides ``_sync``."""

    def _sync(self, method: str, factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
        raise NotImplementedError

    async def areplace_writes(self, config: RunnableConfig, writes: Sequence[PendingWrite]) -> None:
        """Make ``writes`` the pending writes of the checkpoint ``config`` names."""
        raise NotImplementedError

    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """Sync :meth:`aget_tuple`."""
        return self._sync("get_tuple", lambda: self.aget_tuple(config))

    def list(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> Iterator[CheckpointTuple]:
        """Sync :meth:`alist`."""

        async def collect() -> list[CheckpointTuple]:
            return [t async for t in self.alist(config, filter=filter, before=before, limit=limit)]

        return iter(self._sync("list", collect))

    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        """Sync :meth:`aput`."""
        return self._sync("put", lambda: self.aput(config, checkpoint, metadata, new_versions))

    def put_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        """Sync :meth:`aput_writes`."""
        self._sync("put_writes", lambda: self.aput_writes(config, writes, task_id, task_path))

    def replace_writes(self, config: RunnableConfig, writes: Sequence[PendingWrite]) -> None:
        """Sync :meth:`areplace_writes`."""
        self._sync("replace_writes", lambda: self.areplace_writes(config, writes))

    def delete_thread(self, thread_id: str) -> None:
        """Sync :meth:`adelete_thread`."""
        self._sync("delete_thread", lambda: self.adelete_thread(thread_id))

    def delete_for_runs(self, run_ids: Sequence[str]) -> None:
        """Sync :meth:`adelete_for_runs`."""
        self._sync("delete_for_runs", lambda: self.adelete_for_runs(run_ids))

    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Sync :meth:`acopy_thread`."""
        self._sync("copy_thread", lambda: self.acopy_thread(source_thread_id, target_thread_id))

    def prune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """Sync :meth:`aprune`."""
        self._sync("prune", lambda: self.aprune(thread_ids, strategy=strategy))
