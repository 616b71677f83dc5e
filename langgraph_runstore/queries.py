"""The read side of RunManager: one run, a thread's runs and status, pages of runs, usage,
the longest and costliest runs, retention, and the checkpoints a run wrote.

``RunQueries`` is a mixin on the facade, so each query's signature is written once. It reads
the live records of the manager's ``lifecycle`` (they win over the store's copy of the same
run) and the store; without a store, it answers from memory.

``user_id=`` scopes a query to one user's runs, the same way everywhere: a run of another
user (or of no user) is treated as if it did not exist.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from langgraph_runstore.awaitable import async_api
from langgraph_runstore.budget import CAPPED_STOP_REASONS
from langgraph_runstore.errors import DatabaseConfigError, RunNotFoundError
from langgraph_runstore.interrupts import read_pending
from langgraph_runstore.lifecycle import RunLifecycle
from langgraph_runstore.query import (
    PruneResult,
    RunPage,
    StatusFilter,
    TimeBound,
    UsageRow,
    aggregate_rows,
    check_grouping,
    check_limit,
    check_top_order,
    list_arguments,
    page_rows,
    prune_cutoff,
    top_rows,
    window_arguments,
)
from langgraph_runstore.schemas import ACTIVE_STATUSES, RunRecord, RunStatus, ThreadStatus
from langgraph_runstore.store.base import RunStore

_log = logging.getLogger(__name__)


def _owned_by(record: RunRecord, user_id: str | None) -> bool:
    return user_id is None or record.user_id == user_id


class RunQueries:
    """Read methods over ``self.lifecycle`` and ``self.store`` (see the module docstring)."""

    lifecycle: RunLifecycle
    store: RunStore | None

    async def _visible_run(self, run_id: str, user_id: str | None) -> RunRecord:
        """The run's live record or store snapshot; RunNotFoundError when there is none or it
        belongs to another ``user_id`` (with the same message: the two look alike)."""
        record = await self.lifecycle.lookup(run_id)
        if not _owned_by(record, user_id):
            raise RunNotFoundError(f"no run with run_id {run_id!r}", run_id=run_id)
        return record

    @async_api("RunManager")
    async def active_runs(self, thread_id: str, *, user_id: str | None = None) -> list[RunRecord]:
        """The thread's pending and running runs (of ``user_id`` only, when given): live
        records, then store rows (a store that cannot be read contributes none; the failure
        is logged)."""
        active = {
            r.run_id: r
            for r in self.lifecycle.thread_records(thread_id)
            if r.status in ACTIVE_STATUSES and _owned_by(r, user_id)
        }
        if self.store is not None:
            try:
                rows = await self.store.list_inflight(thread_id=thread_id)
            except Exception:
                _log.exception("Could not list active runs of thread %s from the store", thread_id)
                rows = []
            for row in rows:
                if row["run_id"] in active or row["run_id"] in self.lifecycle.records:
                    continue
                if user_id is None or row.get("user_id") == user_id:
                    active[row["run_id"]] = RunRecord.from_row(row)
        return list(active.values())

    @async_api("RunManager")
    async def get(self, run_id: str, *, user_id: str | None = None) -> RunRecord | None:
        """The run's record: the live one if this process holds it, else read from the store.

        Returns None when the run does not exist, belongs to another ``user_id``, or the store
        cannot be read (the failure is logged).
        """
        record = self.lifecycle.records.get(run_id)
        if record is not None:
            return record if user_id is None or record.user_id == user_id else None
        if self.store is None:
            return None
        try:
            row = await self.store.get(run_id)
        except Exception:
            _log.exception("Could not read run %s from the store", run_id)
            return None
        if row is None or (user_id is not None and row.get("user_id") != user_id):
            return None
        return RunRecord.from_row(row)

    aget = get

    @async_api("RunManager")
    async def list_by_thread(
        self, thread_id: str, *, user_id: str | None = None, limit: int = 100
    ) -> list[RunRecord]:
        """Runs of a thread, newest first: live records merged over store rows.

        Runs created at the same instant keep their creation order. A store that cannot be
        read contributes nothing (the failure is logged).
        """
        by_id: dict[str, RunRecord] = {}
        if self.store is not None:
            try:
                rows = await self.store.list_by_thread(thread_id, user_id=user_id, limit=limit)
            except Exception:
                _log.exception("Could not list runs of thread %s from the store", thread_id)
                rows = []
            for row in rows:
                by_id[row["run_id"]] = RunRecord.from_row(row)
        for record in self.lifecycle.thread_records(thread_id):
            if user_id is None or record.user_id == user_id:
                by_id[record.run_id] = record
        runs = sorted(by_id.values(), key=lambda r: r.created_at, reverse=True)
        return runs[:limit]

    @async_api("RunManager")
    async def has_inflight(self, thread_id: str, *, user_id: str | None = None) -> bool:
        """True while the thread has a pending or running run (here or in the store); with
        ``user_id``, a run of that user."""
        if any(
            r.status in ACTIVE_STATUSES and _owned_by(r, user_id)
            for r in self.lifecycle.thread_records(thread_id)
        ):
            return True
        return bool(await self.active_runs(thread_id, user_id=user_id))

    @async_api("RunManager")
    async def thread_status(self, thread_id: str, *, user_id: str | None = None) -> ThreadStatus:
        """idle, busy (a run is pending or running), interrupted (the last run paused on
        an interrupt and waits to be resumed) or error (the last run failed, timed out or
        was stopped by its budget).

        With ``user_id`` only that user's runs count: a thread where the user has no run
        reads as idle, whatever other users run on it.
        """
        if await self.has_inflight(thread_id, user_id=user_id):
            return ThreadStatus.busy
        latest = await self._last_standing_run(thread_id, user_id=user_id)
        if not latest:
            return ThreadStatus.idle
        last = latest[0]
        if last.status in (RunStatus.error, RunStatus.timeout):
            return ThreadStatus.error
        if last.stop_reason in CAPPED_STOP_REASONS:  # stopped by its budget: no answer
            return ThreadStatus.error
        if last.paused:
            return ThreadStatus.interrupted
        return ThreadStatus.idle

    @async_api("RunManager")
    async def thread_interrupts(
        self, thread_id: str, *, checkpointer: Any = None
    ) -> list[dict[str, Any]]:
        """The interrupts the thread waits on, as ``{"id", "value", "ns"}`` dicts, read from
        its newest checkpoint like the Platform's ``thread.interrupts`` (empty when none).

        The checkpointer is ``checkpointer`` or the store's. Without either, the stored
        interrupts of the thread's latest run stand in, while that run is paused.
        """
        latest = await self._last_standing_run(thread_id)
        stored = latest[0].interrupts if latest and latest[0].paused else []
        saver = checkpointer
        if saver is None and self.store is not None:
            try:
                saver = self.store.checkpointer  # type: ignore[attr-defined]
            except (AttributeError, DatabaseConfigError):
                saver = None
        if saver is None:
            return [dict(entry) for entry in stored]
        return await read_pending(saver, thread_id, known=stored)

    async def _last_standing_run(
        self, thread_id: str, *, user_id: str | None = None
    ) -> list[RunRecord]:
        """The thread's newest run that was not rolled back (a rolled-back run left the
        thread as the run before it had left it), as a list of at most one."""
        limit = 1
        while True:
            runs = await self.list_by_thread(thread_id, user_id=user_id, limit=limit)
            for run in runs:
                if run.stop_reason != "rolled_back":
                    return [run]
            if len(runs) < limit:
                return []
            limit *= 8

    def _memory_rows(self) -> list[dict[str, Any]]:
        # records are kept in creation order, which stands in for the store's seq
        return [
            {**record.to_row(), "seq": seq}
            for seq, record in enumerate(self.lifecycle.records.values())
        ]

    @async_api("RunManager")
    async def list_runs(
        self,
        *,
        thread_id: str | None = None,
        status: StatusFilter = None,
        user_id: str | None = None,
        since: TimeBound = None,
        until: TimeBound = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> RunPage[RunRecord]:
        """One page of runs, newest first; ``page.next_cursor`` fetches the next one.

        Filters and cursors as in ``RunStore.list_runs``. Runs this process holds come back
        as their live records; without a store, the page is taken from memory.
        """
        args = list_arguments(
            thread_id=thread_id,
            status=status,
            user_id=user_id,
            since=since,
            until=until,
            limit=limit,
            cursor=cursor,
        )
        if self.store is None:
            page = page_rows(self._memory_rows(), **args)
        else:
            store = self.store
            page = await self.lifecycle.retrying(
                lambda: store.list_runs(
                    thread_id=thread_id,
                    status=args["statuses"] or None,
                    user_id=user_id,
                    since=args["since"],
                    until=args["until"],
                    limit=limit,
                    cursor=cursor,
                )
            )
        records = tuple(
            self.lifecycle.records.get(row["run_id"]) or RunRecord.from_row(row) for row in page
        )
        return RunPage(records, page.next_cursor)

    @async_api("RunManager")
    async def aggregate_usage(
        self,
        *,
        by: str = "model",
        since: TimeBound = None,
        until: TimeBound = None,
        thread_id: str | None = None,
        user_id: str | None = None,
    ) -> list[UsageRow]:
        """Token totals, run counts by status, error rate and LLM calls per model, thread,
        user or UTC day (see ``RunStore.aggregate_usage``)."""
        if self.store is None:
            return aggregate_rows(
                self._memory_rows(),
                by=check_grouping(by),
                thread_id=thread_id,
                user_id=user_id,
                **window_arguments(since, until),
            )
        store = self.store
        return await self.lifecycle.retrying(
            lambda: store.aggregate_usage(
                by=by, since=since, until=until, thread_id=thread_id, user_id=user_id
            )
        )

    @async_api("RunManager")
    async def top_runs(
        self,
        *,
        by: str = "duration",
        since: TimeBound = None,
        until: TimeBound = None,
        limit: int = 10,
        user_id: str | None = None,
    ) -> list[RunRecord]:
        """The longest finished runs (``by="duration"``) or those with the most tokens; with
        ``user_id``, of that user only."""
        if self.store is None:
            rows = top_rows(
                self._memory_rows(),
                by=check_top_order(by),
                limit=check_limit(limit),
                user_id=user_id,
                **window_arguments(since, until),
            )
        else:
            store = self.store
            rows = await self.lifecycle.retrying(
                lambda: store.top_runs(
                    by=by, since=since, until=until, limit=limit, user_id=user_id
                )
            )
        return [
            self.lifecycle.records.get(row["run_id"]) or RunRecord.from_row(row) for row in rows
        ]

    @async_api("RunManager")
    async def prune_runs(
        self,
        *,
        older_than: TimeBound,
        include_checkpoints: bool = True,
        dry_run: bool = False,
        on_progress: Callable[[int], None] | None = None,
    ) -> PruneResult:
        """Delete finished runs created before ``older_than`` and, unless
        ``include_checkpoints=False``, the checkpoints they wrote (see
        ``RunStore.prune_runs``). Pending and running runs are never touched."""
        cutoff = prune_cutoff(older_than)
        doomed = [
            run_id
            for run_id, record in self.lifecycle.records.items()
            if record.is_final
            and record.created_at < cutoff
            and (record.task is None or record.task.done())
        ]
        if self.store is not None:
            result = await self.store.prune_runs(
                older_than=cutoff,
                include_checkpoints=include_checkpoints,
                dry_run=dry_run,
                on_progress=on_progress,
            )
        else:
            batches = 1 if doomed and not dry_run else 0
            result = PruneResult(len(doomed), batches, cutoff=cutoff, dry_run=dry_run)
            if batches and on_progress is not None:
                on_progress(len(doomed))
        if not dry_run:
            for run_id in doomed:  # gone from the store: forget the in-memory records too
                self.lifecycle.forget(run_id)
        return result

    @async_api("RunManager")
    async def run_checkpoints(
        self, run_id: str, *, user_id: str | None = None
    ) -> list[dict[str, Any]]:
        """The checkpoints the run wrote, from the store (empty without one, and for a run
        of another ``user_id``)."""
        if self.store is None:
            return []
        if user_id is not None:
            try:
                await self._visible_run(run_id, user_id)
            except RunNotFoundError:
                return []
        store = self.store
        return await self.lifecycle.retrying(lambda: store.run_checkpoints(run_id))

    async def stored_output(self, record: RunRecord) -> Any:
        """The state a run of another process left: the values of the last checkpoint it
        wrote in the store's checkpointer (None when there is none to read)."""
        checkpointer = getattr(self.store, "checkpointer", None)
        if checkpointer is None:
            return None
        written = [
            row for row in await self.run_checkpoints(record.run_id) if not row.get("checkpoint_ns")
        ]
        if not written:
            return None
        last = max(written, key=lambda row: str(row["checkpoint_id"]))  # ids sort by time
        config = {
            "configurable": {
                "thread_id": record.thread_id,
                "checkpoint_ns": "",
                "checkpoint_id": last["checkpoint_id"],
            }
        }
        found = await checkpointer.aget_tuple(config)
        if found is None:
            return None
        values = found.checkpoint.get("channel_values", {})
        return {name: value for name, value in values.items() if not name.startswith("__")}


__all__ = ["RunQueries"]
