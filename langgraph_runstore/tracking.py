"""RunTracker: the callback handler that turns one graph invocation into a run record.

It marks the run ``running`` when the graph's root chain starts and ends it when the root
chain ends (``success``, or ``success`` with ``stop_reason="interrupt"`` when the graph paused
on an interrupt), fails (``error``, ``"Type: message"``) or is cancelled (``interrupted``).
On the way it counts tokens per model, LLM calls and messages. Counting happens in memory;
the store sees one write when the run starts, one when it ends, and a progress write at most
every ``flush_interval`` seconds in between.

``RunTracker`` is the async handler for ``ainvoke``/``astream``; ``SyncRunTracker`` serves
``invoke``/``stream`` in scripts without an event loop, doing its store writes on the
manager's background loop.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from langchain_core.callbacks import AsyncCallbackHandler
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langchain_core.outputs import ChatGeneration, LLMResult
from langgraph.callbacks import GraphCallbackHandler, GraphInterruptEvent
from langgraph.errors import GraphInterrupt

from langgraph_runstore.errors import ConflictError, RunAlreadyInvokedError
from langgraph_runstore.schemas import TOKEN_FIELDS, RunRecord, RunStatus

if TYPE_CHECKING:
    from langgraph_runstore.manager import RunManager

logger = logging.getLogger(__name__)

#: Model name recorded for LLM calls that report none.
UNKNOWN_MODEL = "unknown"


def message_text(message: Any) -> str:
    """The text of a message's content: a string, or the text parts of content blocks."""
    content = getattr(message, "content", message)
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence):
        parts = []
        for block in content:
            if isinstance(block, str):
                parts.append(block)
            elif isinstance(block, Mapping) and block.get("type") == "text":
                parts.append(str(block.get("text", "")))
        return "".join(parts)
    return ""


#: Token counts in TOKEN_FIELDS order: input, output, total, cache_read, cache_creation,
#: reasoning (plain ints: no object per LLM call).
Counts = tuple[int, int, int, int, int, int]


def _usage_counts(message: Any) -> Counts | None:
    """Counts from ``AIMessage.usage_metadata``, or None when the message has none."""
    usage = getattr(message, "usage_metadata", None)
    if not usage:
        return None
    input_details = usage.get("input_token_details") or {}
    output_details = usage.get("output_token_details") or {}
    input_tokens = int(usage.get("input_tokens") or 0)
    output_tokens = int(usage.get("output_tokens") or 0)
    return (
        input_tokens,
        output_tokens,
        int(usage.get("total_tokens") or input_tokens + output_tokens),
        int(input_details.get("cache_read") or 0),
        int(input_details.get("cache_creation") or 0),
        int(output_details.get("reasoning") or 0),
    )


def _llm_output_counts(llm_output: Mapping[str, Any] | None) -> Counts | None:
    """Counts from ``llm_output["token_usage"]`` (OpenAI or Anthropic key names)."""
    raw = (llm_output or {}).get("token_usage") or (llm_output or {}).get("usage")
    if not isinstance(raw, Mapping) or not raw:
        return None
    input_tokens = int(raw.get("prompt_tokens") or raw.get("input_tokens") or 0)
    output_tokens = int(raw.get("completion_tokens") or raw.get("output_tokens") or 0)
    prompt_details = raw.get("prompt_tokens_details") or {}
    completion_details = raw.get("completion_tokens_details") or {}
    return (
        input_tokens,
        output_tokens,
        int(raw.get("total_tokens") or input_tokens + output_tokens),
        int(prompt_details.get("cached_tokens") or raw.get("cache_read_input_tokens") or 0),
        int(raw.get("cache_creation_input_tokens") or 0),
        int(completion_details.get("reasoning_tokens") or 0),
    )


def _model_name(message: Any, llm_output: Mapping[str, Any] | None, started: str | None) -> str:
    metadata = getattr(message, "response_metadata", None) or {}
    name = (
        metadata.get("model_name")
        or metadata.get("model")
        or (llm_output or {}).get("model_name")
        or (llm_output or {}).get("model")
        or started
    )
    return str(name) if name else UNKNOWN_MODEL


def error_text(error: BaseException) -> str:
    """``"ExceptionType: message"``, the form stored in a run's ``error``."""
    message = str(error)
    name = type(error).__name__
    return f"{name}: {message}" if message else name


def _first_human_text(value: Any) -> str | None:
    messages = value.get("messages") if isinstance(value, Mapping) else None
    if not isinstance(messages, Sequence) or isinstance(messages, str):
        return None
    for message in messages:
        if isinstance(message, HumanMessage):
            text = message_text(message)
        elif isinstance(message, tuple) and len(message) == 2 and message[0] in ("user", "human"):
            text = str(message[1])
        elif isinstance(message, Mapping) and message.get("role") in ("user", "human"):
            text = message_text(message)
        else:
            continue
        if text:
            return text
    return None


def _message_count(value: Any) -> int | None:
    messages = value.get("messages") if isinstance(value, Mapping) else None
    if isinstance(messages, Sequence) and not isinstance(messages, str):
        return len(messages)
    return None


#: The value ``_Tally.llm_calls`` holds for a call whose end has been counted.
_COUNTED = object()


class _Tally:
    """What one run used: tokens per model, LLM calls, messages. Thread-safe.

    Kept small on purpose (one dict of calls, one list of six counters per model): a
    manager holds finished runs for a while, and every object they keep alive is work for
    the garbage collector.
    """

    __slots__ = (
        "by_model",
        "dirty",
        "first_human_message",
        "last_ai_message",
        "llm_calls",
        "lock",
        "message_count",
    )

    def __init__(self) -> None:
        self.lock = threading.Lock()
        #: model name -> [input, output, total, cache_read, cache_creation, reasoning]
        self.by_model: dict[str, list[int]] = {}
        #: LLM callback run id -> the model name its start reported, or _COUNTED once ended
        self.llm_calls: dict[uuid.UUID, Any] = {}
        self.last_ai_message: str | None = None
        self.first_human_message: str | None = None
        self.message_count = 0
        self.dirty = False

    def llm_started(self, run_id: uuid.UUID, metadata: Mapping[str, Any] | None) -> None:
        with self.lock:
            if self.llm_calls.get(run_id) is not _COUNTED:
                self.llm_calls[run_id] = metadata.get("ls_model_name") if metadata else None

    def llm_ended(self, run_id: uuid.UUID, response: LLMResult) -> None:
        with self.lock:
            started = self.llm_calls.get(run_id)
            if started is _COUNTED:
                return  # one LLM call is counted once, however often its end is reported
            self.llm_calls[run_id] = _COUNTED
            usage: Sequence[int] | None = None
            message: BaseMessage | None = None
            for generations in response.generations:
                for generation in generations:
                    if isinstance(generation, ChatGeneration):
                        message = generation.message
                        found = _usage_counts(message)
                        if found is not None:
                            usage = (
                                found
                                if usage is None
                                else [a + b for a, b in zip(usage, found, strict=True)]
                            )
                    if message is not None and isinstance(message, AIMessage):
                        text = message_text(message)
                        if text:
                            self.last_ai_message = text
                    elif getattr(generation, "text", ""):
                        self.last_ai_message = generation.text
            if usage is None:
                usage = _llm_output_counts(response.llm_output)
            model = _model_name(message, response.llm_output, started)
            counters = self.by_model.get(model)
            if counters is None:
                counters = self.by_model[model] = [0, 0, 0, 0, 0, 0]
            if usage is not None:
                for index, value in enumerate(usage):
                    counters[index] += value
            self.dirty = True

    def fields(self) -> dict[str, Any]:
        """The counters as ``update_run_completion`` fields."""
        with self.lock:
            totals = [0, 0, 0, 0, 0, 0]
            by_model: dict[str, dict[str, int]] = {}
            for model in sorted(self.by_model):
                counters = self.by_model[model]
                by_model[model] = dict(zip(TOKEN_FIELDS, counters, strict=True))
                for index, value in enumerate(counters):
                    totals[index] += value
            fields: dict[str, Any] = dict(zip(TOKEN_FIELDS, totals, strict=True))
            fields["token_usage_by_model"] = by_model
            fields["llm_call_count"] = len(self.llm_calls)
            fields["last_ai_message"] = self.last_ai_message
            fields["first_human_message"] = self.first_human_message
            fields["message_count"] = self.message_count
            self.dirty = False
            return fields


class _SpentTally(_Tally):
    """Stands in for a finished run's tally: late LLM events are ignored, nothing is kept."""

    __slots__ = ()

    def llm_started(self, run_id: uuid.UUID, metadata: Mapping[str, Any] | None) -> None:
        return

    def llm_ended(self, run_id: uuid.UUID, response: LLMResult) -> None:
        return


_SPENT = _SpentTally()


class _TrackerCore:
    """What both tracker flavours share: root detection, counting, the final verdict."""

    # Callbacks must never break the user's graph, so errors inside them are logged and
    # dropped; raise_error is switched on only for the deliberate second-invocation error.
    raise_error = False

    def __init__(self, manager: RunManager, record: RunRecord, *, flush_interval: float) -> None:
        self.manager = manager
        self.record = record
        self.flush_interval = flush_interval
        self.tally = _Tally()
        self.root_run_id: uuid.UUID | None = None
        self.interrupted = False
        self.finished = False
        self._last_flush = time.monotonic()

    @property
    def invoked(self) -> bool:
        """Whether a graph invocation has started under this tracker."""
        return self.root_run_id is not None

    def _is_root_start(
        self, run_id: uuid.UUID, parent_run_id: uuid.UUID | None, inputs: Any
    ) -> bool:
        if self.root_run_id is None:
            self.root_run_id = run_id
            self.tally.first_human_message = _first_human_text(inputs)
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
        return False

    def _root_end(self, outputs: Any) -> tuple[RunStatus, dict[str, Any]]:
        self.record.output = outputs
        count = _message_count(outputs)
        if count is not None:
            self.tally.message_count = count
        fields = self.tally.fields()
        if self.interrupted or (isinstance(outputs, Mapping) and "__interrupt__" in outputs):
            fields["stop_reason"] = "interrupt"
        return RunStatus.success, fields

    def _root_error(self, error: BaseException) -> tuple[RunStatus, dict[str, Any]]:
        fields = self.tally.fields()
        if isinstance(error, GraphInterrupt):
            fields["stop_reason"] = "interrupt"
            return RunStatus.success, fields
        if isinstance(error, (asyncio.CancelledError, KeyboardInterrupt)):
            if self.record.abort_action == "timeout":
                fields["stop_reason"] = "timeout"
                fields["error"] = self.record.error or "TimeoutError: run timed out"
                return RunStatus.timeout, fields
            fields["stop_reason"] = "cancelled"
            return RunStatus.interrupted, fields
        fields["error"] = error_text(error)
        return RunStatus.error, fields

    def _should_flush(self) -> bool:
        if not self.tally.dirty or self.finished:
            return False
        now = time.monotonic()
        if now - self._last_flush < self.flush_interval:
            return False
        self._last_flush = now
        return True

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


def _as_list(callbacks: Any) -> list[Any]:
    if callbacks is None:
        return []
    if isinstance(callbacks, list):
        return list(callbacks)
    raise TypeError(
        "run.config already carries a callback manager; pass callbacks as a list instead"
    )


class RunTracker(_TrackerCore, AsyncCallbackHandler, GraphCallbackHandler):
    """Async callback handler that records one graph invocation as one run.

    Get one from ``manager.tracker(run_id)``, or let ``manager.track()`` and the managed
    ``start``/``wait``/``stream`` set it up. Put it in ``config["callbacks"]``.
    """

    # awaited in the graph's own task, in order: no gather() task per callback, and
    # asyncio.current_task() at the root start is the task running the graph
    run_inline = True

    def __init__(
        self, manager: RunManager, record: RunRecord, *, flush_interval: float = 5.0
    ) -> None:
        _TrackerCore.__init__(self, manager, record, flush_interval=flush_interval)
        self._flush_task: asyncio.Task[Any] | None = None
        self._captured_task = False

    async def on_chain_start(
        self,
        serialized: dict[str, Any] | None,
        inputs: Any,
        *,
        run_id: uuid.UUID,
        parent_run_id: uuid.UUID | None = None,
        **kwargs: Any,
    ) -> None:
        if not self._is_root_start(run_id, parent_run_id, inputs):
            return
        if self.record.task is None:
            # lets manager.cancel() stop a graph the user invokes themselves
            self.record.task = asyncio.current_task()
            self._captured_task = True
        try:
            await self.manager.mark_running(self.record)
        except ConflictError:
            # another worker runs this thread right now: the graph must not start beside it
            self.raise_error = True
            raise
        except Exception:
            logger.exception("Tracker could not mark run %s running", self.record.run_id)

    async def on_chain_end(
        self,
        outputs: Any,
        *,
        run_id: uuid.UUID,
        parent_run_id: uuid.UUID | None = None,
        **kwargs: Any,
    ) -> None:
        if run_id == self.root_run_id and not self.finished:
            await self._finish(*self._root_end(outputs))

    async def on_chain_error(
        self,
        error: BaseException,
        *,
        run_id: uuid.UUID,
        parent_run_id: uuid.UUID | None = None,
        **kwargs: Any,
    ) -> None:
        if run_id == self.root_run_id and not self.finished:
            await self._finish(*self._root_error(error))

    async def on_chat_model_start(
        self,
        serialized: dict[str, Any] | None,
        messages: list[list[BaseMessage]],
        *,
        run_id: uuid.UUID,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        self.tally.llm_started(run_id, metadata)

    async def on_llm_start(
        self,
        serialized: dict[str, Any] | None,
        prompts: list[str],
        *,
        run_id: uuid.UUID,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        self.tally.llm_started(run_id, metadata)

    async def on_llm_end(self, response: LLMResult, *, run_id: uuid.UUID, **kwargs: Any) -> None:
        try:
            self.tally.llm_ended(run_id, response)
        except Exception:
            logger.exception(
                "Tracker could not count LLM call %s of run %s", run_id, self.record.run_id
            )
            return
        if self._should_flush() and (self._flush_task is None or self._flush_task.done()):
            # in the background: the graph must not wait for a progress write
            self._flush_task = asyncio.ensure_future(self._flush())

    async def on_interrupt(self, event: GraphInterruptEvent) -> None:
        self.interrupted = True

    async def _flush(self) -> None:
        try:
            await self.manager.flush_progress(self.record, **self.tally.fields())
        except Exception:
            logger.exception("Tracker could not flush progress of run %s", self.record.run_id)

    async def _finish(self, status: RunStatus, fields: dict[str, Any]) -> None:
        if self.finished or self.record.abort_action == "rollback":
            return  # a rollback is ended by manager.cancel(), after the checkpoints are gone
        self.finished = True
        if self._flush_task is not None and not self._flush_task.done():
            await asyncio.gather(self._flush_task, return_exceptions=True)
        try:
            await self.manager.finish(self.record, status, **fields)
        except Exception:
            logger.exception("Tracker could not record the end of run %s", self.record.run_id)
        self.tally = _SPENT  # the record holds the numbers now
        if self._captured_task:
            self.record.task = None  # the user's task goes on; it is no longer this run's

    async def aclose(self, error: BaseException | None = None) -> None:
        """End the run if the graph's own callbacks did not (a stream abandoned midway,
        an exception before the graph started); with no error it ends ``interrupted``."""
        if self.finished or self.record.is_final:
            return
        if error is not None:
            await self._finish(*self._root_error(error))
        else:
            fields = self.tally.fields()
            fields["stop_reason"] = "not_invoked" if not self.invoked else "abandoned"
            await self._finish(RunStatus.interrupted, fields)


class SyncRunTracker(_TrackerCore, GraphCallbackHandler):
    """The synchronous flavour of RunTracker, for ``graph.invoke``/``graph.stream``.

    Its store writes run on the manager's background loop; ``run_inline`` keeps
    langchain-core from sending every callback through a thread pool.
    """

    run_inline = True

    def __init__(
        self, manager: RunManager, record: RunRecord, *, flush_interval: float = 5.0
    ) -> None:
        _TrackerCore.__init__(self, manager, record, flush_interval=flush_interval)

    def on_chain_start(
        self,
        serialized: dict[str, Any] | None,
        inputs: Any,
        *,
        run_id: uuid.UUID,
        parent_run_id: uuid.UUID | None = None,
        **kwargs: Any,
    ) -> None:
        if self._is_root_start(run_id, parent_run_id, inputs):
            self._call(self.manager.mark_running, self.record)

    def on_chain_end(
        self,
        outputs: Any,
        *,
        run_id: uuid.UUID,
        parent_run_id: uuid.UUID | None = None,
        **kwargs: Any,
    ) -> None:
        if run_id == self.root_run_id and not self.finished:
            self._finish(*self._root_end(outputs))

    def on_chain_error(
        self,
        error: BaseException,
        *,
        run_id: uuid.UUID,
        parent_run_id: uuid.UUID | None = None,
        **kwargs: Any,
    ) -> None:
        if run_id == self.root_run_id and not self.finished:
            self._finish(*self._root_error(error))

    def on_chat_model_start(
        self,
        serialized: dict[str, Any] | None,
        messages: list[list[BaseMessage]],
        *,
        run_id: uuid.UUID,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        self.tally.llm_started(run_id, metadata)

    def on_llm_start(
        self,
        serialized: dict[str, Any] | None,
        prompts: list[str],
        *,
        run_id: uuid.UUID,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        self.tally.llm_started(run_id, metadata)

    def on_llm_end(self, response: LLMResult, *, run_id: uuid.UUID, **kwargs: Any) -> None:
        self.tally.llm_ended(run_id, response)
        if self._should_flush():
            self._call(self.manager.flush_progress, self.record, **self.tally.fields())

    def on_interrupt(self, event: GraphInterruptEvent) -> None:
        self.interrupted = True

    def _call(self, method: Any, *args: Any, **kwargs: Any) -> None:
        try:
            self.manager.run_sync(lambda: method(*args, **kwargs))
        except Exception:
            logger.exception("Tracker could not write run %s", self.record.run_id)

    def _finish(self, status: RunStatus, fields: dict[str, Any]) -> None:
        if self.finished or self.record.abort_action == "rollback":
            return  # a rollback is ended by manager.cancel(), after the checkpoints are gone
        self.finished = True
        self._call(self.manager.finish, self.record, status, **fields)
        self.tally = _SPENT  # the record holds the numbers now

    def close(self, error: BaseException | None = None) -> None:
        """End the run if the graph's callbacks did not (see ``RunTracker.aclose``)."""
        if self.finished or self.record.is_final:
            return
        if error is not None:
            self._finish(*self._root_error(error))
        else:
            fields = self.tally.fields()
            fields["stop_reason"] = "not_invoked" if not self.invoked else "abandoned"
            self._finish(RunStatus.interrupted, fields)


__all__ = ["UNKNOWN_MODEL", "RunTracker", "SyncRunTracker", "error_text", "message_text"]
