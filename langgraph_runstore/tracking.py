"""RunTracker: the callback handler that turns one graph invocation into a run record.

It marks the run ``running`` when the graph's root chain starts and ends it when the root
chain ends (``success``, or ``success`` with ``stop_reason="interrupt"`` when the graph paused
on an interrupt), fails (``error``, ``"Type: message"``) or is cancelled (``interrupted``).
On the way it counts tokens per model, LLM calls and messages (``tally.py``), and keeps the
interrupts a paused run waits for. Counting happens in memory; the store sees one write when
the run starts, one when it ends, and in between a progress write at most every
``flush_interval`` seconds, never more than ``flush_interval`` after the counts changed.

``RunTracker`` is the async handler for ``ainvoke``/``astream``; ``SyncRunTracker``
(``sync_tracking``) serves ``invoke``/``stream`` in scripts without an event loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol, TypeVar

from langchain_core.callbacks import AsyncCallbackHandler
from langchain_core.messages import BaseMessage
from langchain_core.outputs import LLMResult
from langgraph.callbacks import GraphCallbackHandler, GraphInterruptEvent
from langgraph.errors import GraphInterrupt

from langgraph_runstore.accounting import Accounting
from langgraph_runstore.budget import Budget
from langgraph_runstore.errors import ConflictError, InvalidInputError, RunAlreadyInvokedError
from langgraph_runstore.interrupts import (
    INTERRUPT_CHANNEL,
    interrupt_entry,
    interrupt_id_of,
    namespace_parts,
)
from langgraph_runstore.messages import first_human_text, message_count, message_text
from langgraph_runstore.metering import AsyncMetering, Metering
from langgraph_runstore.query import UNKNOWN_MODEL
from langgraph_runstore.schemas import RunRecord, RunStatus
from langgraph_runstore.tally import SPENT_TALLY, Tally

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


logger = logging.getLogger(__name__)


def error_text(error: BaseException) -> str:
    """``"ExceptionType: message"``, the form stored in a run's ``error``."""
    message = str(error)
    name = type(error).__name__
    return f"{name}: {message}" if message else name


class TrackerCore(Metering):
    """What both tracker flavours share: root detection, counting, the final verdict."""

    # Callbacks must never break the user's graph, so errors inside them are logged and
    # dropped; raise_error is switched on only for the deliberate second-invocation error.
    raise_error = False

    def __init__(
        self,
        writer: RunWriter,
        record: RunRecord,
        *,
        flush_interval: float,
        accounting: Accounting | None = None,
        budget: Budget | None = None,
    ) -> None:
        self.writer = writer
        self.record = record
        self.flush_interval = flush_interval
        self.tally = Tally(accounting)
        self.budget = budget
        self.capped = None
        self.root_run_id: uuid.UUID | None = None
        self.interrupted = False
        self.finished = False
        # filled from the models the run used unless the caller named one
        self._fill_model_name = record.model_name is None
        #: interrupt id -> stored entry (interrupts.py), in the order the graph raised them
        self._interrupts: dict[str, dict[str, Any]] = {}
        #: node-level chain run id -> its checkpoint namespace, to place an interrupt
        self._chain_ns: dict[uuid.UUID, str] = {}
        # a progress write is pending (at most one: the throttle's trailing write)
        self._flush_armed = False
        #: awaited with the graph's input when the graph starts, before it reads or writes a
        #: checkpoint (the manager records there what a rollback must restore)
        self.before_start: Callable[[Any], Awaitable[None]] | None = None

    @property
    def invoked(self) -> bool:
        """Whether a graph invocation has started under this tracker."""
        return self.root_run_id is not None

    def _is_root_start(
        self,
        run_id: uuid.UUID,
        parent_run_id: uuid.UUID | None,
        inputs: Any,
        metadata: Mapping[str, Any] | None,
    ) -> bool:
        if self.root_run_id is None:
            self.root_run_id = run_id
            self.tally.run_started = time.perf_counter()
            try:
                self.tally.first_human_message = first_human_text(inputs)
            except Exception:  # an input form nobody foresaw must not stop the run's record
                logger.exception("Tracker could not read the input of run %s", self.record.run_id)
            return True
        if parent_run_id is None:
            self.raise_error = True
            raise RunAlreadyInvokedError(
                f"run {self.record.run_id!r} already ran a graph invocation: a run_id names "
                "exactly one invocation (LangGraph would treat a second one as re-entry and drop "
                "its input). Start a new run for the next invocation.",
                run_id=self.record.run_id,
                thread_id=self.record.thread_id,
            )
        if metadata is not None and not self.finished:
            ns = metadata.get("langgraph_checkpoint_ns")
            # a runnable inside a task shares the task's namespace: the task's chain suffices
            if ns and (parent_run_id is None or self._chain_ns.get(parent_run_id) != ns):
                self._chain_ns[run_id] = ns
        return False

    def _note_interrupts(self, interrupts: Any, ns: Any = ()) -> None:
        if not isinstance(interrupts, (list, tuple)):
            return
        parts = namespace_parts(ns)
        for interrupt in interrupts:
            key = interrupt_id_of(interrupt) or f"#{len(self._interrupts)}"
            known = self._interrupts.get(key)
            if known is None:
                self._interrupts[key] = interrupt_entry(interrupt, parts)
            elif not known["ns"]:
                known["ns"] = parts

    def _chain_error(self, error: BaseException, run_id: uuid.UUID) -> None:
        """A node's chain failed: remember where an interrupt it raised comes from."""
        ns = self._chain_ns.pop(run_id, None)
        if ns is not None and isinstance(error, GraphInterrupt) and error.args:
            self._note_interrupts(error.args[0], ns)

    def _interrupt_event(self, event: GraphInterruptEvent) -> None:
        self.interrupted = True
        self._note_interrupts(event.interrupts, event.checkpoint_ns)

    def current_fields(self) -> dict[str, Any]:
        """The run's numbers so far as completion fields, with the model name filled in."""
        fields = self.tally.fields()
        if self._fill_model_name:
            model = self.tally.main_model()
            if model is not None:
                fields["model_name"] = model
        return fields

    def _paused_fields(self) -> dict[str, Any]:
        fields = self.current_fields()
        fields["stop_reason"] = "interrupt"
        fields["interrupts"] = list(self._interrupts.values())
        return fields

    def _root_end(self, outputs: Any) -> tuple[RunStatus, dict[str, Any]]:
        self.record.output = outputs
        count = message_count(outputs)
        if count is not None:
            self.tally.message_count = count
        if isinstance(outputs, Mapping) and INTERRUPT_CHANNEL in outputs:
            self.interrupted = True
            self._note_interrupts(outputs[INTERRUPT_CHANNEL])
        if self.capped is not None:
            return self.capped_verdict()
        if self.interrupted:
            return RunStatus.success, self._paused_fields()
        return RunStatus.success, self.current_fields()

    def _root_error(self, error: BaseException) -> tuple[RunStatus, dict[str, Any]]:
        if self.capped is not None:
            return self.capped_verdict()
        if isinstance(error, GraphInterrupt):
            if error.args:
                self._note_interrupts(error.args[0])
            return RunStatus.success, self._paused_fields()
        fields = self.current_fields()
        timed_out = self.record.abort_action == "timeout"
        if isinstance(error, (asyncio.CancelledError, KeyboardInterrupt)) or (
            timed_out and isinstance(error, TimeoutError)  # a sync run's Deadline
        ):
            if timed_out:
                fields["stop_reason"] = "timeout"
                fields["error"] = self.record.error or "TimeoutError: run timed out"
                return RunStatus.timeout, fields
            fields["stop_reason"] = "cancelled"
            return RunStatus.interrupted, fields
        if isinstance(error, GeneratorExit):  # the caller stopped reading its stream
            fields["stop_reason"] = "abandoned"
            return RunStatus.interrupted, fields
        fields["error"] = error_text(error)
        return RunStatus.error, fields

    def _abandoned(self) -> tuple[RunStatus, dict[str, Any]]:
        fields = self.current_fields()
        fields["stop_reason"] = "not_invoked" if not self.invoked else "abandoned"
        return RunStatus.interrupted, fields

    def _counted(self, run_id: uuid.UUID, response: LLMResult) -> bool:
        """Count an LLM call's end; False (logged) when its response could not be read."""
        try:
            self.tally.llm_ended(run_id, response)
        except Exception:
            logger.exception(
                "Tracker could not count LLM call %s of run %s", run_id, self.record.run_id
            )
            return False
        return True

    def _arm_flush(self) -> bool:
        """True when a progress write should be scheduled ``flush_interval`` from now: the
        counts changed and none is pending. The throttle is trailing, so a running row is
        never more than ``flush_interval`` behind, and a short run writes no progress."""
        with self.tally.lock:
            if self._flush_armed or self.finished or not self.tally.dirty:
                return False
            self._flush_armed = True
            return True

    def _flush_fields(self) -> dict[str, Any] | None:
        with self.tally.lock:
            self._flush_armed = False
        if self.finished:
            return None
        return self.current_fields()

    def config(self, *, thread_id: str, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The RunnableConfig that runs a graph under this record's run.

        ``run_id`` goes into ``configurable`` (LangGraph copies it into every checkpoint's
        metadata) and, when it is a UUID, names the root callback run too. It is not added
        to ``config["metadata"]``: langchain-core would copy it into every child callback.
        """
        config: dict[str, Any] = dict(extra or {})
        run_id = self.record.run_id
        config["callbacks"] = [*_as_list(config.get("callbacks")), self]
        config["configurable"] = {
            **dict(config.get("configurable") or {}),
            "thread_id": thread_id,
            "run_id": run_id,
        }
        try:
            config["run_id"] = uuid.UUID(run_id)
        except ValueError:
            config.pop("run_id", None)
        return config

    def _spend(self) -> None:
        self.tally = SPENT_TALLY  # the record holds the numbers now
        self._chain_ns = {}


def _as_list(callbacks: Any) -> list[Any]:
    if callbacks is None:
        return []
    if isinstance(callbacks, list):
        return list(callbacks)
    raise TypeError(
        "run.config already carries a callback manager; pass callbacks as a list instead"
    )


class RunTracker(AsyncMetering, TrackerCore, AsyncCallbackHandler, GraphCallbackHandler):
    """Async callback handler that records one graph invocation as one run.

    Get one from ``manager.tracker(run_id)``, or let ``manager.track()`` and the managed
    ``start``/``wait``/``stream`` set it up. Put it in ``config["callbacks"]``.
    """

    # awaited in the graph's own task, in order: no gather() task per callback, and
    # asyncio.current_task() at the root start is the task running the graph
    run_inline = True

    def __init__(
        self,
        writer: RunWriter,
        record: RunRecord,
        *,
        flush_interval: float = 5.0,
        accounting: Accounting | None = None,
        budget: Budget | None = None,
    ) -> None:
        TrackerCore.__init__(
            self,
            writer,
            record,
            flush_interval=flush_interval,
            accounting=accounting,
            budget=budget,
        )
        self._flush_task: asyncio.Task[Any] | None = None
        self._flush_timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._captured_task = False

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
        if not self._is_root_start(run_id, parent_run_id, inputs, metadata):
            return
        self._loop = asyncio.get_running_loop()
        if self.record.task is None:
            # lets manager.cancel() stop a graph the user invokes themselves
            self.record.task = asyncio.current_task()
            self._captured_task = True
        try:
            await self.writer.mark_running(self.record)
        except ConflictError:
            # another worker runs this thread right now: the graph must not start beside it
            self.raise_error = True
            raise
        except Exception:
            logger.exception("Tracker could not mark run %s running", self.record.run_id)
        if self.before_start is not None:
            await self.before_start(inputs)

    async def on_chain_end(
        self,
        outputs: Any,
        *,
        run_id: uuid.UUID,
        parent_run_id: uuid.UUID | None = None,
        **kwargs: Any,
    ) -> None:
        if run_id == self.root_run_id:
            if not self.finished:
                await self._finish(*self._root_end(outputs))
        elif self._chain_ns:
            self._chain_ns.pop(run_id, None)

    async def on_chain_error(
        self,
        error: BaseException,
        *,
        run_id: uuid.UUID,
        parent_run_id: uuid.UUID | None = None,
        **kwargs: Any,
    ) -> None:
        if run_id == self.root_run_id:
            if not self.finished:
                await self._finish(*self._root_error(error))
        else:
            self._chain_error(error, run_id)

    async def on_chat_model_start(
        self,
        serialized: dict[str, Any] | None,
        messages: list[list[BaseMessage]],
        *,
        run_id: uuid.UUID,
        metadata: dict[str, Any] | None = None,
        tags: list[str] | None = None,
        **kwargs: Any,
    ) -> None:
        if self.llm_begins(run_id, metadata, tags):
            await self.stop_call()

    async def on_llm_start(
        self,
        serialized: dict[str, Any] | None,
        prompts: list[str],
        *,
        run_id: uuid.UUID,
        metadata: dict[str, Any] | None = None,
        tags: list[str] | None = None,
        **kwargs: Any,
    ) -> None:
        if self.llm_begins(run_id, metadata, tags):
            await self.stop_call()

    async def on_llm_end(self, response: LLMResult, *, run_id: uuid.UUID, **kwargs: Any) -> None:
        loop = self._loop
        if self._counted(run_id, response) and loop is not None and self._arm_flush():
            try:
                running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
            except RuntimeError:
                running = None
            if running is loop:
                self._start_timer(loop)
            elif not loop.is_closed():
                # a sync chat model inside an async graph reports from a worker thread
                loop.call_soon_threadsafe(self._start_timer, loop)
            else:
                # a sync invoke drove this async handler: langchain-core ran each callback
                # in a loop of its own, now closed, so the write goes out now, unthrottled
                await self._flush()

    async def on_interrupt(self, event: GraphInterruptEvent) -> None:
        self._interrupt_event(event)

    def _start_timer(self, loop: asyncio.AbstractEventLoop) -> None:
        if not self.finished:
            self._flush_timer = loop.call_later(self.flush_interval, self._start_flush)

    def _start_flush(self) -> None:
        self._flush_timer = None
        # in the background: the graph must not wait for a progress write
        self._flush_task = asyncio.ensure_future(self._flush())

    async def _flush(self) -> None:
        fields = self._flush_fields()
        if fields is None:
            return
        try:
            await self.writer.flush_progress(self.record, **fields)
        except Exception:
            logger.exception("Tracker could not flush progress of run %s", self.record.run_id)

    async def _finish(self, status: RunStatus, fields: dict[str, Any]) -> None:
        if self.finished or self.record.abort_action == "rollback":
            return  # a rollback is ended by manager.cancel(), after the checkpoints are gone
        self.finished = True
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None
        cancelled: asyncio.CancelledError | None = None
        flush = self._flush_task
        if flush is not None and not flush.done():
            try:  # the final write goes after a progress write in flight, never before it
                await asyncio.shield(flush)
            except asyncio.CancelledError as exc:
                cancelled = exc  # cancelled while waiting: the final write still goes out
            except Exception:
                pass  # logged by _flush
        try:
            await self.writer.finish(self.record, status, **fields)
        except Exception:
            logger.exception("Tracker could not record the end of run %s", self.record.run_id)
        self._spend()
        if self._captured_task:
            self.record.task = None  # the user's task goes on; it is no longer this run's
        if cancelled is not None:
            raise cancelled

    async def aclose(self, error: BaseException | None = None) -> None:
        """End the run if the graph's own callbacks did not (a stream abandoned midway,
        an exception before the graph started); with no error it ends ``interrupted``."""
        if self.finished or self.record.is_final:
            return
        await self._finish(*(self._root_error(error) if error is not None else self._abandoned()))


def check_flush_interval(value: Any) -> float:
    """``flush_interval`` as seconds: a finite number > 0, else InvalidInputError."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise InvalidInputError(f"flush_interval must be a number of seconds > 0, got {value!r}")
    if value == float("inf"):
        raise InvalidInputError("flush_interval must be finite, got inf")
    return float(value)


__all__ = [
    "UNKNOWN_MODEL",
    "RunTracker",
    "RunWriter",
    "SyncRunWriter",
    "TrackerCore",
    "check_flush_interval",
    "error_text",
    "message_text",
]
