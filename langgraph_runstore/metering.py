"""What the trackers add to a run's LLM calls: the budget check before each call starts,
the stop of a call the budget forbids, and streamed tokens.

Mixins of ``RunTracker`` (async) and ``SyncRunTracker``: a call's start is noted in the
run's tally (its time, node and tags) once the run's budget allows it (``budget.py``), and
its first streamed token gives the run's ``first_token_ms``.
A call the budget forbids never reaches the model: the async tracker cancels the run's
task, as ``cancel(action="interrupt")`` does, and waits for that cancel to reach the call
through the graph; the sync tracker raises ``CancelledError`` in the call, which LangGraph
reports as ``NodeCancelledError``. Either way the run ends ``interrupted`` with the stop
reason of the limit it reached.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any, NoReturn

from langgraph_runstore.accounting import Accounting
from langgraph_runstore.budget import Budget, check_budget
from langgraph_runstore.schemas import RunRecord, RunStatus
from langgraph_runstore.tally import Tally

logger = logging.getLogger(__name__)

#: How long a call the budget stopped waits for the run's cancel to reach it (seconds).
BUDGET_STOP_WAIT = 10.0


class Metering:
    """What both flavours share: the budget check and the verdict of a capped run."""

    record: RunRecord
    tally: Tally
    budget: Budget | None
    #: the stop reason once the budget stopped the run
    capped: str | None

    def current_fields(self) -> dict[str, Any]:
        raise NotImplementedError

    def llm_begins(self, run_id: uuid.UUID, metadata: Any, tags: Any) -> bool:
        """Note a call's start; True when the run's budget forbids it."""
        budget = self.budget
        if budget is not None and self.capped is None:
            tally = self.tally
            reason = budget.reached(tally.total_tokens, tally.cost, len(tally.llm_calls))
            if reason is not None:
                self.capped = reason
                self.record.abort_action = "interrupt"  # checkpoints stay, as a cancel keeps them
                self.record.abort_event.set()
                logger.info("Run %s reached its budget: %s", self.record.run_id, reason)
        if self.capped is not None:
            return True
        self.tally.llm_started(run_id, metadata, tags)
        return False

    def capped_verdict(self) -> tuple[RunStatus, dict[str, Any]]:
        """How a run the budget stopped ends: ``interrupted``, its stop reason the limit."""
        fields = self.current_fields()
        fields["stop_reason"] = self.capped
        return RunStatus.interrupted, fields

    def _stopped(self) -> asyncio.CancelledError:
        return asyncio.CancelledError(
            f"run {self.record.run_id!r} stopped by its budget ({self.capped})"
        )


class AsyncMetering(Metering):
    """The async tracker's LLM callbacks."""

    _loop: asyncio.AbstractEventLoop | None

    async def on_llm_new_token(
        self, token: str | list[str | dict[str, Any]], **kwargs: Any
    ) -> None:
        self.tally.llm_token()

    async def stop_call(self) -> NoReturn:
        """Keep a call the budget forbids from starting (see the module docstring)."""
        task, loop = self.record.task, self._loop
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if task is not None and not task.done() and loop is not None:
            if running is loop:
                task.cancel()
                if task is not asyncio.current_task():
                    await asyncio.sleep(BUDGET_STOP_WAIT)  # the cancel ends this wait
            elif not loop.is_closed():  # a sync model inside an async graph: another thread
                loop.call_soon_threadsafe(task.cancel)
        raise self._stopped()


class SyncMetering(Metering):
    """The sync tracker's LLM callbacks."""

    def on_llm_new_token(self, token: str | list[str | dict[str, Any]], **kwargs: Any) -> None:
        self.tally.llm_token()

    def stop_call(self) -> NoReturn:
        """Keep a call the budget forbids from starting (see the module docstring)."""
        raise self._stopped()


def tracker_options(
    record: RunRecord, *, accounting: Accounting, default: Budget | None, budget: Any = None
) -> dict[str, Any]:
    """A run's tracker options: the manager's accounting, and the first budget given of
    ``budget``, the run's own (``start(budget=...)``; a submitted run carries it in its
    kwargs) and the manager's default."""
    chosen = check_budget(budget) or record.budget
    if chosen is None and record.shared_queue:
        chosen = check_budget(record.kwargs.get("budget"))
    return {"accounting": accounting, "budget": chosen or default}


__all__ = ["BUDGET_STOP_WAIT", "AsyncMetering", "Metering", "SyncMetering", "tracker_options"]
