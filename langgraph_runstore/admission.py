"""Admission: creating runs and applying the multitask strategies to a thread's active runs
(``reject`` atomically in the store, ``enqueue``, ``interrupt``, ``rollback``), putting runs
in the workers' shared queue, and admitting the runs of a thread in call order
(``ThreadTurns``). Per-thread FIFO execution is ``execution``'s.

``RunAdmission`` is a mixin on the facade, over the read side (``queries``) it consults;
what else it needs of the facade is declared on the class.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager, nullcontext
from functools import cached_property
from typing import Any

from langgraph_runstore.awaitable import async_api
from langgraph_runstore.budget import Budget, check_budget
from langgraph_runstore.errors import ConflictError, InvalidInputError
from langgraph_runstore.idempotency import KeyedRuns, check_idempotency_key, reuse
from langgraph_runstore.invoke_args import INVOKE_ARGUMENTS, InvokeArgs
from langgraph_runstore.queries import RunQueries
from langgraph_runstore.remote import until_ended, until_served
from langgraph_runstore.schemas import (
    ACTIVE_STATUSES,
    CancelAction,
    DisconnectMode,
    MultitaskStrategy,
    RunRecord,
    RunStatus,
)
from langgraph_runstore.store.base import KeyedInsert
from langgraph_runstore.validate import check_id, check_json_mapping, check_timeout
from langgraph_runstore.workers import encode_input, utc_in

#: beyond a remote run's lease and grace period: how long a cancelled run may take to end
STOP_WAIT_SECONDS = 5.0


class ThreadTurns:
    """Admission of each thread's runs in the order it was asked for, within one process.

    ``async with turns.turn(thread_id)`` waits until every block entered before it on that
    thread has left. ``start()`` and ``submit()`` admit a run inside one: concurrent INSERTs
    finish in any order (on PostgreSQL, each on its own pooled connection), so without it
    runs would be launched, and take their place in the store's sequence, in that order
    rather than in the order the calls were made.
    """

    def __init__(self) -> None:
        self._last: dict[str, asyncio.Future[None]] = {}

    @asynccontextmanager
    async def turn(self, thread_id: object) -> AsyncIterator[None]:
        """Wait for the earlier turns of ``thread_id``, hold this one for the block."""
        if not isinstance(thread_id, str):
            yield  # admission refuses it with InvalidInputError
            return
        loop = asyncio.get_running_loop()
        previous = self._last.get(thread_id)
        if previous is not None and previous.get_loop() is not loop:
            previous = None  # a turn taken on another loop cannot be awaited on this one
        mine: asyncio.Future[None] = loop.create_future()
        self._last[thread_id] = mine
        try:
            if previous is not None and not previous.done():
                await asyncio.wait([previous])  # unlike await, never cancels it
            yield
        finally:
            if previous is None or previous.done():
                self._pass(thread_id, mine)
            else:
                # cancelled while waiting: the turns after ours still come after the earlier
                previous.add_done_callback(lambda _: self._pass(thread_id, mine))

    def _pass(self, thread_id: str, mine: asyncio.Future[None]) -> None:
        if not mine.done():
            mine.set_result(None)
        if self._last.get(thread_id) is mine:
            del self._last[thread_id]


class RunAdmission(RunQueries):
    """Creating and admitting runs (see the module docstring)."""

    worker_id: str
    lease_seconds: float | None
    grace_seconds: float
    graphs: dict[str, Any]
    #: assistant -> loop time until which a live worker is taken to serve it
    served_until: dict[str, float]
    #: orders ``start()`` and ``submit()`` of one thread (the facade makes it)
    admission_turns: ThreadTurns
    #: every run's budget unless it has its own
    budget: Budget | None

    @property
    def is_worker(self) -> bool:
        """Whether this manager runs as a worker (its runs carry an owner and a lease)."""
        raise NotImplementedError

    def wake_workers(self) -> None:
        """Tell this manager's worker to look at the shared queue now."""

    @cached_property
    def keyed_runs(self) -> KeyedRuns:
        """The idempotency keys of the runs this manager holds (``idempotency``)."""
        return KeyedRuns()

    async def cancel(
        self, run_id: str, *, action: CancelAction | str = CancelAction.interrupt
    ) -> bool:
        raise NotImplementedError

    @async_api("RunManager")
    async def create(
        self,
        thread_id: str,
        assistant_id: str | None = None,
        *,
        on_disconnect: DisconnectMode | str = DisconnectMode.cancel,
        metadata: dict[str, Any] | None = None,
        kwargs: dict[str, Any] | None = None,
        multitask_strategy: MultitaskStrategy | str = MultitaskStrategy.reject,
        model_name: str | None = None,
        user_id: str | None = None,
        run_id: str | None = None,
        idempotency_key: str | None = None,
        budget: Budget | None = None,
    ) -> RunRecord:
        """Create a pending run and persist it. Does not look at other runs of the thread.

        With ``idempotency_key``, a key that already names a run returns that run instead
        (``record.idempotency_reused`` is then True): the same record when this manager
        holds it, else the stored one. IdempotencyKeyError when that run is of another
        thread or user. A keyed row that cannot be written raises (a run without a key is
        kept in memory and written later).
        """
        record = self._new_record(
            thread_id,
            assistant_id,
            on_disconnect=on_disconnect,
            metadata=metadata,
            kwargs=kwargs,
            multitask_strategy=multitask_strategy,
            model_name=model_name,
            user_id=user_id,
            run_id=run_id,
            idempotency_key=idempotency_key,
            budget=budget,
        )
        if idempotency_key is None:
            self.lifecycle.hold(record)
            await self.lifecycle.persist_new(record)
            return record
        async with self.keyed_runs.claim(idempotency_key):
            existing = await self.keyed_runs.find(idempotency_key, self.lifecycle)
            if existing is not None:
                return reuse(existing, record)
            return await self._write_keyed(record, if_idle=False)

    async def _write_keyed(
        self, record: RunRecord, *, if_idle: bool, full_row: bool = False, hold: bool = True
    ) -> RunRecord:
        """Insert ``record``'s row under its idempotency key and (with ``hold``) hold it;
        the run the key names when another writer holds it (``record`` is dropped then).
        With ``if_idle`` a busy thread raises ConflictError. The caller holds the key's
        claim."""
        key = record.idempotency_key
        assert key is not None
        store = self.store
        if store is not None:
            row = record.to_row(sparse=not full_row)
            del row["run_id"], row["thread_id"], row["idempotency_key"]

            def insert() -> Awaitable[KeyedInsert]:
                return store.insert_keyed(
                    record.run_id,
                    thread_id=record.thread_id,
                    idempotency_key=key,
                    only_if_thread_idle=if_idle,
                    **row,
                )

            answer = await self.lifecycle.retrying(insert)
            # a busy thread's active row may be one of ours whose end had not landed: now
            # it has
            if (
                if_idle
                and answer == KeyedInsert(inserted=False)
                and await self.lifecycle.settle_thread(record.thread_id)
            ):
                answer = await self.lifecycle.retrying(insert)
            stored = answer.existing
            if stored is not None and stored["run_id"] != record.run_id:  # ours: retried
                held = self.lifecycle.records.get(stored["run_id"])
                return reuse(held or RunRecord.from_row(stored), record)
            if stored is None and not answer.inserted:
                raise ConflictError(
                    f"thread {record.thread_id!r} already has a pending or running run "
                    "(multitask_strategy='reject')",
                    thread_id=record.thread_id,
                )
        if hold:
            self.lifecycle.hold(record)
            self.keyed_runs.remember(record)
        return record

    def _new_record(
        self,
        thread_id: str,
        assistant_id: str | None,
        *,
        on_disconnect: DisconnectMode | str,
        metadata: dict[str, Any] | None,
        kwargs: dict[str, Any] | None,
        multitask_strategy: MultitaskStrategy | str,
        model_name: str | None,
        user_id: str | None,
        run_id: str | None,
        idempotency_key: str | None = None,
        budget: Budget | None = None,
    ) -> RunRecord:
        check_id(thread_id, name="thread_id")
        strategy = MultitaskStrategy.parse(multitask_strategy)
        if run_id is None:
            run_id = str(uuid.uuid4())
        else:
            check_id(run_id, name="run_id")
            if run_id in self.lifecycle.records:
                raise InvalidInputError(
                    f"run_id {run_id!r} already names a run: a run_id names exactly one run",
                    run_id=run_id,
                    thread_id=thread_id,
                )
        check_id(assistant_id, name="assistant_id", optional=True, run_id=run_id)
        check_id(user_id, name="user_id", optional=True, run_id=run_id)
        metadata = check_json_mapping(metadata, name="metadata", run_id=run_id)
        kwargs = check_json_mapping(kwargs, name="kwargs", run_id=run_id)
        check_idempotency_key(idempotency_key, run_id=run_id)
        now = self.lifecycle.clock()
        self.lifecycle.evict_expired()
        return RunRecord(
            run_id=run_id,
            thread_id=thread_id,
            assistant_id=assistant_id,
            on_disconnect=DisconnectMode.parse(on_disconnect),
            multitask_strategy=strategy.value,
            metadata=metadata,
            kwargs=kwargs,
            created_at=now,
            updated_at=now,
            model_name=model_name,
            user_id=user_id,
            # every run names the process that executes it; only workers hold a lease
            owner_worker_id=self.worker_id,
            lease_expires_at=(utc_in(self.lease_seconds or 30.0) if self.is_worker else None),
            idempotency_key=idempotency_key,
            budget=check_budget(budget),
        )

    async def create_or_reject(
        self,
        thread_id: str,
        assistant_id: str | None = None,
        *,
        start_now: bool = False,
        on_disconnect: DisconnectMode | str = DisconnectMode.cancel,
        metadata: dict[str, Any] | None = None,
        kwargs: dict[str, Any] | None = None,
        multitask_strategy: MultitaskStrategy | str = MultitaskStrategy.reject,
        model_name: str | None = None,
        user_id: str | None = None,
        run_id: str | None = None,
        idempotency_key: str | None = None,
        budget: Budget | None = None,
    ) -> RunRecord:
        """Create a run, applying the multitask strategy to the thread's active runs.

        ``reject`` raises ConflictError while the thread has a pending or running run (the
        check and insert are one atomic step in the store); ``interrupt`` and ``rollback``
        cancel those runs with that action first; ``enqueue`` just adds a pending run. With
        ``start_now`` a run admitted by ``reject`` is inserted already ``running`` (the
        admission proved its thread idle), saving a write when the caller starts it at once.

        A run that ``idempotency_key`` already names is returned as it is, whatever the
        strategy (even while it keeps its thread busy), and nothing else changes: see
        ``create``.
        ``budget`` limits the run once it starts (``budget.py``; queued time does not count).
        """
        strategy = MultitaskStrategy.parse(multitask_strategy)
        record = self._new_record(
            thread_id,
            assistant_id,
            on_disconnect=on_disconnect,
            metadata=metadata,
            kwargs=kwargs,
            multitask_strategy=strategy,
            model_name=model_name,
            user_id=user_id,
            run_id=run_id,
            idempotency_key=idempotency_key,
            budget=budget,
        )
        if idempotency_key is None:
            return await self._admit(record, strategy, start_now=start_now)
        async with self.keyed_runs.claim(idempotency_key):
            existing = await self.keyed_runs.find(idempotency_key, self.lifecycle)
            if existing is not None:
                return reuse(existing, record)
            return await self._admit(record, strategy, start_now=start_now)

    async def _admit(
        self, record: RunRecord, strategy: MultitaskStrategy, *, start_now: bool
    ) -> RunRecord:
        thread_id = record.thread_id
        if strategy == MultitaskStrategy.reject:
            if start_now:
                record.status = RunStatus.running
                record.started_at = record.created_at
            self._reject_if_busy_locally(thread_id)
            if record.idempotency_key is not None:
                return await self._write_keyed(record, if_idle=True)
            if self.store is not None:
                row = record.to_row(sparse=True)
                del row["run_id"], row["thread_id"]
                store = self.store

                def admit() -> Awaitable[bool]:
                    return store.insert_if_thread_idle(record.run_id, thread_id=thread_id, **row)

                admitted = await self.lifecycle.retrying(admit)
                if not admitted and await self.lifecycle.settle_thread(thread_id):
                    # the active row was one of ours whose end had not landed: now it has
                    admitted = await self.lifecycle.retrying(admit)
                if not admitted:
                    raise ConflictError(
                        f"thread {thread_id!r} already has a pending or running run "
                        "(multitask_strategy='reject')",
                        thread_id=thread_id,
                    )
            self.lifecycle.hold(record)
            return record
        if strategy in (MultitaskStrategy.interrupt, MultitaskStrategy.rollback):
            await self._cancel_active(thread_id, strategy.value)
        if record.idempotency_key is not None:
            return await self._write_keyed(record, if_idle=False)
        self.lifecycle.hold(record)
        await self.lifecycle.persist_new(record)
        return record

    async def _until_served(self, store: Any, assistant_id: str, wait: float) -> None:
        # a live worker seen serving the assistant is trusted for a second: a burst of
        # submits asks the fleet table once, not once per run
        loop = asyncio.get_running_loop()
        if self.served_until.get(assistant_id, 0.0) > loop.time():
            return
        await until_served(store, assistant_id, timeout=wait)
        self.served_until[assistant_id] = loop.time() + 1.0

    async def _cancel_active(self, thread_id: str, action: str) -> None:
        """Cancel the thread's active runs and wait until each has ended where it runs, so
        that the new run never executes beside an old one on another worker."""
        for active in await self.active_runs(thread_id):
            await self.cancel(active.run_id, action=action)
            if not active.store_only or self.store is None or active.is_final:
                continue
            # its owner stops it at its next renewal (or at once on a NOTIFY); if the owner
            # died, recovery ends it once the lease and the grace period have passed
            timeout = (self.lease_seconds or 0.0) + self.grace_seconds + STOP_WAIT_SECONDS
            if await until_ended(self.lifecycle, active, timeout=timeout) is None:
                raise ConflictError(
                    f"run {active.run_id!r} of thread {thread_id!r} was asked to stop "
                    f"({action}) but is still active after {timeout:.0f} s",
                    run_id=active.run_id,
                    thread_id=thread_id,
                )

    def _reject_if_busy_locally(self, thread_id: str) -> None:
        for other in self.lifecycle.thread_records(thread_id):
            if other.status in ACTIVE_STATUSES:
                raise ConflictError(
                    f"thread {thread_id!r} already has {other.status.value} run "
                    f"{other.run_id!r} (multitask_strategy='reject')",
                    run_id=other.run_id,
                    thread_id=thread_id,
                )

    @async_api("RunManager")
    async def submit(
        self,
        assistant_id: str,
        input: Any,
        *,
        thread_id: str,
        config: dict[str, Any] | None = None,
        timeout: float | None = None,
        multitask_strategy: MultitaskStrategy | str = MultitaskStrategy.enqueue,
        wait_for_worker: float = 10.0,
        **create_options: Any,
    ) -> RunRecord:
        """Put a run in the shared queue, for any worker whose ``graphs`` has ``assistant_id``.

        ``input`` (or a ``Command``) and ``config`` must be JSON-serialisable: they are stored
        with the run. Returns the pending record; ``join(run_id)`` waits for its end. When
        no live worker serves ``assistant_id`` (the fleet table), it waits up to
        ``wait_for_worker`` seconds for one to start, then raises NoWorkerError and writes
        nothing: a run nobody will claim would wait forever.
        """
        store = self.store
        if store is None:
            raise InvalidInputError("submit() needs a store that the workers share")
        strategy = MultitaskStrategy.parse(multitask_strategy)
        if not isinstance(wait_for_worker, (int, float)) or not 0 <= wait_for_worker < 1e9:
            raise InvalidInputError(
                f"wait_for_worker must be a number of seconds >= 0, got {wait_for_worker!r}"
            )
        invoke = InvokeArgs.from_json(
            {name: create_options.pop(name) for name in INVOKE_ARGUMENTS if name in create_options}
        )
        kwargs = {**encode_input(input), "config": config or {}, "timeout": check_timeout(timeout)}
        if stored := invoke.to_json():
            kwargs["invoke"] = stored
        budget = check_budget(create_options.pop("budget", None)) or self.budget
        if budget is not None:  # the worker that claims the run enforces it
            kwargs["budget"] = budget.as_dict()
        # in turn: the workers claim a thread's runs in the order their rows were inserted
        async with self.admission_turns.turn(thread_id):
            record = self._new_record(
                thread_id,
                assistant_id,
                kwargs=kwargs,
                multitask_strategy=strategy,
                on_disconnect=create_options.pop("on_disconnect", DisconnectMode.cancel),
                metadata=create_options.pop("metadata", None),
                model_name=create_options.pop("model_name", None),
                user_id=create_options.pop("user_id", None),
                run_id=create_options.pop("run_id", None),
                idempotency_key=create_options.pop("idempotency_key", None),
            )
            if create_options:
                raise InvalidInputError(f"unknown submit() option(s): {sorted(create_options)}")
            key = record.idempotency_key
            async with self.keyed_runs.claim(key) if key is not None else nullcontext():
                if key is not None:
                    existing = await self.keyed_runs.find(key, self.lifecycle)
                    if existing is not None:
                        return reuse(existing, record)  # it needs no worker, nor a wake-up
                queued = await self._queue(store, record, strategy, wait_for_worker)
            if queued is not record:
                return queued
        notify = getattr(store, "notify_queue", None)
        if notify is not None:
            await notify(assistant_id)
        self.wake_workers()
        record.store_only = True
        return record

    async def _queue(
        self, store: Any, record: RunRecord, strategy: MultitaskStrategy, wait_for_worker: float
    ) -> RunRecord:
        """Write a shared-queue run's row (the run its idempotency key names, if another
        writer got there first)."""
        thread_id, assistant_id = record.thread_id, record.assistant_id
        assert assistant_id is not None
        if not (self.is_worker and assistant_id in self.graphs):  # the input is valid
            await self._until_served(store, assistant_id, wait_for_worker)
        record.owner_worker_id = None
        record.lease_expires_at = None
        record.shared_queue = True
        if strategy in (MultitaskStrategy.interrupt, MultitaskStrategy.rollback):
            await self._cancel_active(thread_id, strategy.value)
        if record.idempotency_key is not None:
            return await self._write_keyed(
                record, if_idle=strategy == MultitaskStrategy.reject, full_row=True, hold=False
            )
        row = record.to_row()
        del row["run_id"], row["thread_id"]
        if strategy != MultitaskStrategy.reject:
            await self.lifecycle.put_record(record)
        elif not await self.lifecycle.retrying(
            lambda: store.insert_if_thread_idle(record.run_id, thread_id=thread_id, **row)
        ):
            raise ConflictError(
                f"thread {thread_id!r} already has a pending or running run "
                "(multitask_strategy='reject')",
                thread_id=thread_id,
            )
        return record


__all__ = ["RunAdmission"]
