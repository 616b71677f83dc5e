"""SyncRunTracker: the synchronous flavour of ``RunTracker``, for ``graph.invoke`` and
``graph.stream`` in scripts without an event loop. The counting and the verdict are the
shared ``TrackerCore``'s; the store writes run on the manager's background loop.
"""

from __future__ import annotations

import threading
import uuid
from typing import Any

from langchain_core.messages import BaseMessage
from langchain_core.outputs import LLMResult
from langgraph.callbacks import GraphCallbackHandler, GraphInterruptEvent

from langgraph_runstore.accounting import Accounting
from langgraph_runstore.budget import Budget
from langgraph_runstore.metering import SyncMetering
from langgraph_runstore.schemas import RunRecord, RunStatus
from langgraph_runstore.tracking import SyncRunWriter, TrackerCore, logger


class SyncRunTracker(SyncMetering, TrackerCore, GraphCallbackHandler):
    """The synchronous flavour of RunTracker, for ``graph.invoke``/``graph.stream``.

    Its store writes run on the manager's background loop; ``run_inline`` keeps
    langchain-core from sending every callback through a thread pool. The throttle's
    progress write fires from a timer thread, serialised with the final write.
    """

    run_inline = True

    def __init__(
        self,
        writer: SyncRunWriter,
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
        self.sync_writer = writer
        self._write_lock = threading.Lock()
        self._flush_timer: threading.Timer | None = None

    def on_chain_start(
        self,
        serialized: dict[str, Any] | None,
        inputs: Any,
        *,
        run_id: uuid.UUID,
        parent_run_id: uuid.UUID | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if self._is_root_start(run_id, parent_run_id, inputs, metadata):
            self._call(self.writer.mark_running, self.record)
            if self.before_start is not None:
                self._call(self.before_start, inputs)

    def on_chain_end(
        self,
        outputs: Any,
        *,
        run_id: uuid.UUID,
        parent_run_id: uuid.UUID | None = None,
        **kwargs: Any,
    ) -> None:
        if run_id == self.root_run_id:
            if not self.finished:
                self._finish(*self._root_end(outputs))
        elif self._chain_ns:
            self._chain_ns.pop(run_id, None)

    def on_chain_error(
        self,
        error: BaseException,
        *,
        run_id: uuid.UUID,
        parent_run_id: uuid.UUID | None = None,
        **kwargs: Any,
    ) -> None:
        if run_id == self.root_run_id:
            if not self.finished:
                self._finish(*self._root_error(error))
        else:
            self._chain_error(error, run_id)

    def on_chat_model_start(
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
            self.stop_call()

    def on_llm_start(
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
            self.stop_call()

    def on_llm_end(self, response: LLMResult, *, run_id: uuid.UUID, **kwargs: Any) -> None:
        if self._counted(run_id, response) and self._arm_flush():
            timer = threading.Timer(self.flush_interval, self._timed_flush)
            timer.daemon = True
            self._flush_timer = timer
            timer.start()

    def on_interrupt(self, event: GraphInterruptEvent) -> None:
        self._interrupt_event(event)

    def _timed_flush(self) -> None:
        with self._write_lock:
            fields = self._flush_fields()
            if fields is not None:
                self._call(self.writer.flush_progress, self.record, **fields)

    def _call(self, method: Any, *args: Any, **kwargs: Any) -> None:
        try:
            self.sync_writer.run_sync(lambda: method(*args, **kwargs))
        except Exception:
            logger.exception("Tracker could not write run %s", self.record.run_id)

    def _finish(self, status: RunStatus, fields: dict[str, Any]) -> None:
        if self.finished or self.record.abort_action == "rollback":
            return  # a rollback is ended by manager.cancel(), after the checkpoints are gone
        self.finished = True
        timer, self._flush_timer = self._flush_timer, None
        if timer is not None:
            timer.cancel()
        with self._write_lock:  # after a progress write in flight, never before it
            self._call(self.writer.finish, self.record, status, **fields)
        self._spend()

    def close(self, error: BaseException | None = None) -> None:
        """End the run if the graph's callbacks did not (see ``RunTracker.aclose``)."""
        if self.finished or self.record.is_final:
            return
        self._finish(*(self._root_error(error) if error is not None else self._abandoned()))


__all__ = ["SyncRunTracker"]
