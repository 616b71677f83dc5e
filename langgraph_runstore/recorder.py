"""RunRecorder: one callback handler, attached once, that records every root graph
invocation it sees as a run, with no other change to the app.

::

    graph = builder.compile(checkpointer=saver).with_config(callbacks=[RunRecorder(store)])
    await graph.ainvoke(inputs, {"configurable": {"thread_id": "t1"}})  # recorded

Each root invocation gets its own ``RunTracker`` (the same counting code as managed and
tracked runs); the recorder only routes every callback to the tracker of the invocation it
belongs to, by following ``parent_run_id`` from the root. One instance serves any number of
concurrent invocations, from asyncio tasks and from threads, sync and async.

Where its store writes run: on the loop the invocation runs on, when that is the store's
loop; otherwise on the store's loop (a sync ``invoke`` from a worker thread beside the app's
loop), or, when no loop owns the store, on a private loop thread of the recorder's.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar, runtime_checkable

from langchain_core.callbacks import AsyncCallbackHandler
from langchain_core.outputs import LLMResult
from langgraph.callbacks import GraphCallbackHandler, GraphInterruptEvent

from langgraph_runstore.accounting import DEFAULT_ACCOUNTING
from langgraph_runstore.budget import Budget, check_budget
from langgraph_runstore.errors import InvalidInputError
from langgraph_runstore.lifecycle import PersistenceRetryPolicy, RunLifecycle
from langgraph_runstore.loop_thread import LoopThread
from langgraph_runstore.schemas import MultitaskStrategy, RunRecord, RunStatus
from langgraph_runstore.store.base import RunStore
from langgraph_runstore.tracking import RunTracker, check_flush_interval
from langgraph_runstore.validate import check_id, check_json_mapping

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: how long a write handed to the store's loop may wait to be picked up before the recorder
#: decides that loop is blocked (a sync ``invoke`` on the loop's own thread, in a notebook)
#: and runs the write on its own loop thread instead
HOME_LOOP_START_TIMEOUT = 0.25

#: metadata keys that name the user (LangGraph does not pass ``configurable`` user ids on
#: to callbacks; the Agent Server puts its authenticated user under the second)
USER_KEYS = ("user_id", "langgraph_auth_user_id")


class RecordingManager(Protocol):
    """What the recorder needs of a RunManager: its lifecycle, its options, its loop."""

    lifecycle: RunLifecycle
    flush_interval: float
    worker_id: str
    loop_thread: LoopThread | None


@runtime_checkable
class RunLifecycleOwner(Protocol):
    """Anything that holds a RunLifecycle (a RunManager)."""

    lifecycle: RunLifecycle


Target = RunStore | RecordingManager


@dataclass
class _Invocation:
    tracker: RunTracker
    #: callback run ids routed to this invocation (the root, its chains, LLMs and tools)
    ids: set[uuid.UUID] = field(default_factory=set)


class _HomeWriter:
    """The lifecycle's writes, each run on the loop the recorder picked for the store."""

    def __init__(self, recorder: RunRecorder, lifecycle: RunLifecycle) -> None:
        self.recorder = recorder
        self.lifecycle = lifecycle

    async def mark_running(self, record: RunRecord) -> None:
        await self.recorder.on_home(lambda: self.lifecycle.mark_running(record))

    async def flush_progress(self, record: RunRecord, **fields: Any) -> None:
        await self.recorder.on_home(lambda: self.lifecycle.flush_progress(record, **fields))

    async def finish(
        self,
        record: RunRecord,
        status: RunStatus,
        *,
        error: str | None = None,
        stop_reason: str | None = None,
        **fields: Any,
    ) -> bool:
        return await self.recorder.on_home(
            lambda: self.lifecycle.finish(
                record, status, error=error, stop_reason=stop_reason, **fields
            )
        )


def _sync_driven() -> bool:
    """Whether this callback runs under a sync ``invoke``/``stream``: langchain-core then
    runs each async callback as the only task of a short-lived loop, so the current task
    is the callback's own coroutine rather than the graph's."""
    task = asyncio.current_task()
    if task is None:
        return True
    code = getattr(task.get_coro(), "cr_code", None)
    return code is not None and code in _CALLBACK_CODES


class RunRecorder(AsyncCallbackHandler, GraphCallbackHandler):
    """Records every root graph invocation it sees as one run.

    ``target`` is a RunManager (``manager.recorder()``: its live records, so ``get`` and
    ``cancel`` see the runs), a RunStore, or a zero-argument callable returning either,
    called at the first invocation (for a graph module imported before its store opens).

    - ``run_id``: ``configurable["run_id"]`` when set (the Agent Server sets it), else the
      root callback run id (``config["run_id"]``, or the one langchain-core made up).
    - ``thread_id`` and ``assistant_id`` come from ``configurable``; ``user_id`` from
      ``config["metadata"]`` (``user_id``, or the Agent Server's ``langgraph_auth_user_id``),
      else the options here. An invocation without a ``thread_id`` (a graph with no
      checkpointer) is recorded as a one-run thread whose ``thread_id`` is the run id.
    - A graph invoked inside a node is part of the outer run: only root invocations count.
    - An invocation that already runs as a run of the same manager (``start``, ``track``)
      is left to that run's own tracker.

    Nothing admits these runs, so multitask strategies cannot apply: each invocation is
    recorded as it happens (its row reads ``multitask_strategy="enqueue"``, and concurrent
    invocations of one thread are each recorded). ``cancel()`` of
    an async invocation cancels the task running it, as for ``track()``; a sync one only
    records the request.
    """

    run_inline = True  # awaited in the graph's own task, in callback order

    def __init__(
        self,
        target: Target | Callable[[], Target],
        *,
        assistant_id: str | None = None,
        user_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        flush_interval: float | None = None,
        budget: Budget | None = None,
    ) -> None:
        check_id(assistant_id, name="assistant_id", optional=True)
        #: every recorded run's budget (else the manager's); README "Cost, latency and budgets"
        self.budget = check_budget(budget)
        check_id(user_id, name="user_id", optional=True)
        self.assistant_id = assistant_id
        self.user_id = user_id
        self.metadata = check_json_mapping(metadata, name="metadata")
        self._flush_interval = (
            None if flush_interval is None else check_flush_interval(flush_interval)
        )
        self._target = target
        self._manager: RecordingManager | None = None
        self._lifecycle: RunLifecycle | None = None
        self._resolve_lock = threading.Lock()
        self._routes: dict[uuid.UUID, _Invocation] = {}
        self._routes_lock = threading.Lock()
        #: the loop of the latest async invocation, where the store is in use
        self._async_loop: asyncio.AbstractEventLoop | None = None
        self._own_loop: LoopThread | None = None
        if _is_target(target) or not callable(target):
            self._bind(target)  # a wrong target fails here, not inside the first graph call

    # -- the target ----------------------------------------------------------------------

    def _resolve(self) -> RunLifecycle:
        with self._resolve_lock:
            if self._lifecycle is None:
                target = self._target
                if callable(target) and not _is_target(target):
                    target = target()
                self._bind(target)
            assert self._lifecycle is not None
            return self._lifecycle

    def _bind(self, target: Any) -> None:
        # a SyncRunManager records through the RunManager it wraps
        wrapped = getattr(target, "manager", None)
        if not isinstance(target, RunStore) and isinstance(wrapped, RunLifecycleOwner):
            target = wrapped
        if isinstance(target, RunStore):
            self._lifecycle = RunLifecycle(
                target,
                retry_policy=PersistenceRetryPolicy(),
                retain_finished_for=60.0,
                log=logger,
            )
        elif isinstance(target, RunLifecycleOwner) and isinstance(target.lifecycle, RunLifecycle):
            self._manager = target  # type: ignore[assignment]
            self._lifecycle = target.lifecycle
        else:
            raise InvalidInputError(
                "RunRecorder needs a RunManager, SyncRunManager or RunStore, or a callable "
                f"returning one; got {type(target).__name__}"
            )

    @property
    def store(self) -> RunStore | None:
        """The store the runs are written to (None before the first invocation)."""
        return None if self._lifecycle is None else self._lifecycle.store

    # -- where the writes run ------------------------------------------------------------

    def _store_loop(self) -> asyncio.AbstractEventLoop | None:
        """The running loop that owns the store's connections, when one is known."""
        manager = self._manager
        loops = [
            manager.loop_thread.loop if manager is not None and manager.loop_thread else None,
            getattr(self.store, "home_loop", None),
            self._async_loop,
        ]
        for loop in loops:
            if loop is not None and loop.is_running() and not loop.is_closed():
                return loop
        return None

    async def on_home(self, factory: Callable[[], Awaitable[T]]) -> T:
        """Await ``factory()`` on the store's loop (see the module docstring)."""
        current = asyncio.get_running_loop()
        home = self._store_loop()
        if home is None or home is current:
            if not _sync_driven():
                return await factory()
            home = None  # this loop dies with the callback: use a loop that lives on
        if home is not None:
            started = threading.Event()
            future = asyncio.run_coroutine_threadsafe(_started(factory, started), home)
            wrapped = asyncio.wrap_future(future)
            done, _ = await asyncio.wait({wrapped}, timeout=HOME_LOOP_START_TIMEOUT)
            if done or started.is_set() or not future.cancel():
                return await wrapped
            # the store's loop did not pick the write up: its thread is blocked (a sync
            # invoke on it); the write goes to the recorder's own loop instead
        own = self._own_loop
        if own is None:
            with self._resolve_lock:
                if self._own_loop is None:
                    self._own_loop = LoopThread("langgraph-runstore recorder")
                own = self._own_loop
        loop = own.loop
        if loop is None:
            return await asyncio.to_thread(own.run, _coroutine(factory))
        coroutine = _coroutine(factory)()
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coroutine, loop))

    def close(self) -> None:
        """Stop the recorder's own loop thread, if it started one."""
        if self._own_loop is not None:
            self._own_loop.stop()
            self._own_loop = None

    # -- routing -------------------------------------------------------------------------

    def _route(self, run_id: uuid.UUID | None) -> RunTracker | None:
        if run_id is None:
            return None
        invocation = self._routes.get(run_id)
        return None if invocation is None else invocation.tracker

    def _adopt_child(self, run_id: uuid.UUID, parent_run_id: uuid.UUID | None) -> RunTracker | None:
        if parent_run_id is None:
            return None
        with self._routes_lock:
            invocation = self._routes.get(parent_run_id)
            if invocation is None:
                return None
            invocation.ids.add(run_id)
            self._routes[run_id] = invocation
        return invocation.tracker

    def _drop(self, run_id: uuid.UUID) -> None:
        with self._routes_lock:
            invocation = self._routes.pop(run_id, None)
            if invocation is None:
                return
            invocation.ids.discard(run_id)
            if invocation.tracker.finished:
                for child in invocation.ids:
                    self._routes.pop(child, None)
                invocation.ids.clear()

    async def _begin(
        self, run_id: uuid.UUID, metadata: Mapping[str, Any] | None
    ) -> RunTracker | None:
        lifecycle = self._resolve()
        meta = metadata or {}
        configured = meta.get("run_id")
        record_id = str(configured) if isinstance(configured, (str, uuid.UUID)) else str(run_id)
        if record_id in lifecycle.records:
            return None  # a managed or tracked run of this manager: its own tracker records it
        if not _sync_driven():
            self._async_loop = asyncio.get_running_loop()
        thread_id = meta.get("thread_id")
        user_id = next((meta[key] for key in USER_KEYS if meta.get(key)), self.user_id)
        assistant_id = meta.get("assistant_id") or self.assistant_id
        try:
            record = self._new_record(
                lifecycle,
                run_id=record_id,
                thread_id=str(thread_id) if thread_id else record_id,
                assistant_id=None if assistant_id is None else str(assistant_id),
                user_id=None if user_id is None else str(user_id),
            )
        except InvalidInputError:
            logger.warning("RunRecorder cannot record invocation %s", record_id, exc_info=True)
            return None

        async def insert() -> None:
            lifecycle.hold(record)
            await lifecycle.persist_new(record)

        try:
            await self.on_home(insert)
        except InvalidInputError:  # the run id names a stored run already
            logger.warning("RunRecorder skips invocation %s: the run exists", record_id)
            return None
        interval = self._flush_interval
        if interval is None:
            interval = self._manager.flush_interval if self._manager is not None else 5.0
        # the manager's pricing and default budget, or the defaults for a bare store
        accounting = getattr(self._manager, "accounting", None) or DEFAULT_ACCOUNTING
        budget = self.budget or getattr(self._manager, "budget", None)
        tracker = RunTracker(
            _HomeWriter(self, lifecycle),
            record,
            flush_interval=interval,
            accounting=accounting,
            budget=budget,
        )
        invocation = _Invocation(tracker, {run_id})
        with self._routes_lock:
            self._routes[run_id] = invocation
        return tracker

    def _new_record(
        self,
        lifecycle: RunLifecycle,
        *,
        run_id: str,
        thread_id: str,
        assistant_id: str | None,
        user_id: str | None,
    ) -> RunRecord:
        for name, value in (("run_id", run_id), ("thread_id", thread_id)):
            check_id(value, name=name, run_id=run_id)
        check_id(assistant_id, name="assistant_id", optional=True, run_id=run_id)
        check_id(user_id, name="user_id", optional=True, run_id=run_id)
        now = lifecycle.clock()
        return RunRecord(
            run_id=run_id,
            thread_id=thread_id,
            assistant_id=assistant_id,
            user_id=user_id,
            metadata=dict(self.metadata),
            status=RunStatus.running,  # nothing admits it: it is running as it is seen
            multitask_strategy=MultitaskStrategy.enqueue.value,
            created_at=now,
            updated_at=now,
            started_at=now,
            owner_worker_id=None if self._manager is None else self._manager.worker_id,
        )

    # -- callbacks -----------------------------------------------------------------------

    async def on_chain_start(
        self,
        serialized: dict[str, Any] | None,
        inputs: Any,
        *,
        run_id: uuid.UUID,
        parent_run_id: uuid.UUID | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if parent_run_id is None:
            tracker = await self._begin(run_id, metadata)
        else:
            tracker = self._adopt_child(run_id, parent_run_id)
        if tracker is not None:
            await tracker.on_chain_start(
                serialized,
                inputs,
                run_id=run_id,
                parent_run_id=parent_run_id,
                metadata=metadata,
                **kwargs,
            )

    async def on_chain_end(self, outputs: Any, *, run_id: uuid.UUID, **kwargs: Any) -> None:
        tracker = self._route(run_id)
        if tracker is not None:
            await tracker.on_chain_end(outputs, run_id=run_id, **kwargs)
            self._drop(run_id)

    async def on_chain_error(
        self, error: BaseException, *, run_id: uuid.UUID, **kwargs: Any
    ) -> None:
        tracker = self._route(run_id)
        if tracker is not None:
            await tracker.on_chain_error(error, run_id=run_id, **kwargs)
            self._drop(run_id)

    async def on_chat_model_start(
        self,
        serialized: dict[str, Any] | None,
        messages: Any,
        *,
        run_id: uuid.UUID,
        parent_run_id: uuid.UUID | None = None,
        **kwargs: Any,
    ) -> None:
        tracker = self._adopt_child(run_id, parent_run_id)
        if tracker is not None:
            await tracker.on_chat_model_start(
                serialized, messages, run_id=run_id, parent_run_id=parent_run_id, **kwargs
            )

    async def on_llm_start(
        self,
        serialized: dict[str, Any] | None,
        prompts: list[str],
        *,
        run_id: uuid.UUID,
        parent_run_id: uuid.UUID | None = None,
        **kwargs: Any,
    ) -> None:
        tracker = self._adopt_child(run_id, parent_run_id)
        if tracker is not None:
            await tracker.on_llm_start(
                serialized, prompts, run_id=run_id, parent_run_id=parent_run_id, **kwargs
            )

    async def on_llm_end(self, response: LLMResult, *, run_id: uuid.UUID, **kwargs: Any) -> None:
        tracker = self._route(run_id)
        if tracker is not None:
            await tracker.on_llm_end(response, run_id=run_id, **kwargs)
            self._drop(run_id)

    async def on_llm_new_token(self, token: Any, *, run_id: uuid.UUID, **kwargs: Any) -> None:
        tracker = self._route(run_id)
        if tracker is not None:
            await tracker.on_llm_new_token(token, run_id=run_id, **kwargs)

    async def on_llm_error(self, error: BaseException, *, run_id: uuid.UUID, **kwargs: Any) -> None:
        tracker = self._route(run_id)
        if tracker is not None:
            await tracker.on_llm_error(error, run_id=run_id, **kwargs)
            self._drop(run_id)

    async def on_tool_start(
        self,
        serialized: dict[str, Any] | None,
        input_str: str,
        *,
        run_id: uuid.UUID,
        parent_run_id: uuid.UUID | None = None,
        **kwargs: Any,
    ) -> None:
        tracker = self._adopt_child(run_id, parent_run_id)
        if tracker is not None:
            await tracker.on_tool_start(
                serialized or {}, input_str, run_id=run_id, parent_run_id=parent_run_id, **kwargs
            )

    async def on_tool_end(self, output: Any, *, run_id: uuid.UUID, **kwargs: Any) -> None:
        tracker = self._route(run_id)
        if tracker is not None:
            await tracker.on_tool_end(output, run_id=run_id, **kwargs)
            self._drop(run_id)

    async def on_tool_error(
        self, error: BaseException, *, run_id: uuid.UUID, **kwargs: Any
    ) -> None:
        tracker = self._route(run_id)
        if tracker is not None:
            await tracker.on_tool_error(error, run_id=run_id, **kwargs)
            self._drop(run_id)

    async def on_interrupt(self, event: GraphInterruptEvent) -> None:
        tracker = self._route(event.run_id)
        if tracker is not None:
            await tracker.on_interrupt(event)


def _is_target(value: Any) -> bool:
    wrapped = getattr(value, "manager", None)
    return isinstance(value, (RunStore, RunLifecycleOwner)) or isinstance(
        wrapped, RunLifecycleOwner
    )


async def _started(factory: Callable[[], Awaitable[T]], started: threading.Event) -> T:
    started.set()
    return await factory()


def _coroutine(factory: Callable[[], Awaitable[T]]) -> Callable[[], Coroutine[Any, Any, T]]:
    async def call() -> T:
        return await factory()

    return lambda: call()


#: the recorder's callbacks that may run as their own task (see ``_sync_driven``)
_CALLBACK_CODES = frozenset(
    getattr(RunRecorder, name).__code__
    for name in vars(RunRecorder)
    if name.startswith("on_") and asyncio.iscoroutinefunction(getattr(RunRecorder, name))
)

__all__ = ["HOME_LOOP_START_TIMEOUT", "RecordingManager", "RunRecorder"]
