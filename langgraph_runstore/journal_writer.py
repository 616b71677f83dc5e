"""RunJournal: one run's events, taken from its tracker's callbacks, kept in memory and
written in batches, so the journal never slows the graph.

A batch goes out at the run's own write points: the progress write and the final write
(after the run's row, so the ``run_ended`` event carries the end the store holds), and
otherwise ``JournalConfig.flush_interval`` seconds after the first event that waits (a
trailing timer, never more than one write at a time). A run shorter than that writes its
journal in one statement. Payloads are small by construction: names, counts, durations,
and text cut to ``max_text`` characters; node inputs and outputs are never copied.

A write that fails is logged and never fails the run: its events stay in memory (at most
MAX_PENDING) and go out with the next write, once, since a batch sent twice lands once.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any, TypeVar

from langchain_core.outputs import LLMResult
from langgraph.errors import GraphBubbleUp

from langgraph_runstore.interrupts import jsonable
from langgraph_runstore.journal import JournalConfig, bounded, cut
from langgraph_runstore.journal_feed import notify_written
from langgraph_runstore.messages import content_text, message_text
from langgraph_runstore.query import UNKNOWN_MODEL, duration_of
from langgraph_runstore.schemas import TOKEN_FIELDS, RunRecord, RunStatus
from langgraph_runstore.store.base import RunStore
from langgraph_runstore.text import error_text, storable_text
from langgraph_runstore.usage import reported_model, result_counts

logger = logging.getLogger(__name__)

T = TypeVar("T")
#: Runs a write on the loop that owns the store (the RunRecorder's ``on_home``).
Via = Callable[[Callable[[], Awaitable[None]]], Awaitable[None]]

#: Events a run keeps in memory while its writes fail; later ones are dropped (logged).
MAX_PENDING = 10_000
_NODE_TAG = "graph:step:"  # LangGraph tags the chain of each task (a node) with it
_ZERO_COUNTS = (0, 0, 0, 0, 0, 0)


#: the last whole second formatted, and its text: one tuple, replaced whole, so a thread
#: never reads one second's number with another's text
_second: list[tuple[int, str]] = [(-1, "")]


def _iso(ts: float | str) -> str:
    """ISO-8601 UTC with microseconds; the date and time of day are formatted once per
    second (a run's events mostly share it)."""
    if isinstance(ts, str):
        return ts
    whole, micros = divmod(round(ts * 1_000_000), 1_000_000)
    cached = _second[0]
    if cached[0] != whole:
        text = datetime.fromtimestamp(whole, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
        cached = _second[0] = (whole, text)
    return f"{cached[1]}.{micros:06d}+00:00"


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000.0, 3)


_NAMES: dict[tuple[str, int], str] = {}  # names (nodes, tools, models) as cut before


def _text(value: Any, limit: int) -> str | None:
    """A name, storable and cut: the same few names recur in every run, so each is cut once."""
    if value is None:
        return None
    key = (str(value), limit)
    found = _NAMES.get(key)
    if found is None:
        if len(_NAMES) >= 4096:
            _NAMES.clear()
        found = _NAMES[key] = cut(key[0], limit)
    return found


def _key(run_id: uuid.UUID) -> Any:
    # the UUID's integer: hashing a UUID runs Python code, hashing an int does not
    return getattr(run_id, "int", run_id)


def _is_node(tags: Sequence[str] | None, metadata: Mapping[str, Any] | None) -> bool:
    if not tags or not metadata or "langgraph_node" not in metadata:
        return False
    return any(tag.startswith(_NODE_TAG) for tag in tags)


class RunJournal:
    """The journal of one run (see the module docstring). Thread-safe: a sync graph's
    parallel nodes report from several threads."""

    def __init__(
        self,
        store: RunStore,
        record: RunRecord,
        config: JournalConfig,
        *,
        via: Via | None = None,
    ) -> None:
        self.store = store
        self.run_id = record.run_id
        self.config = config
        self.rank = config.rank
        self.limit = config.max_text
        self._via = via
        self._lock = threading.Lock()
        #: (local seq, time, kind, data): written as (base + seq, ...)
        self._pending: list[tuple[int, float | str, str, dict[str, Any]]] = []
        self._seq = 0
        self._dropped = 0
        # a retried attempt (a requeued shared-queue run) continues the run's journal
        self._base: int | None = 0 if record.attempt <= 1 else None
        #: node, LLM and tool callback run id -> (perf_counter at start, name, node or ns)
        self._open: dict[Any, tuple[float, Any, Any]] = {}
        #: LLM call -> whether its recorded end reported usage (a later end may, once)
        self._llm_usage: dict[Any, bool] = {}
        self._armed = False
        # one write at a time, each taking what waits when its turn comes, so batches land
        # in seq order (a follower reads after the last seq it has); it binds to no loop
        # until two writes meet, and they always meet on one loop
        self._writing = asyncio.Lock()
        #: whether the run_ended event is recorded, and whether the final write began
        self.ended = False
        self.ending = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._task: asyncio.Future[bool] | None = None  # the timed write, kept referenced
        self._thread_write: Callable[[], None] | None = None

    # -- recording ------------------------------------------------------------------------

    def _add(self, kind: str, data: dict[str, Any], ts: float | str | None = None) -> None:
        if self.ended:
            return  # a late callback: the journal is closed
        with self._lock:
            if len(self._pending) >= MAX_PENDING:
                self._dropped += 1
                if self._dropped == 1:
                    logger.warning(
                        "Run %s has %d journal events waiting to be written: dropping newer "
                        "ones until a write lands",
                        self.run_id,
                        MAX_PENDING,
                    )
                return
            self._seq += 1
            self._pending.append((self._seq, time.time() if ts is None else ts, kind, data))
            arm = not self._armed
            self._armed = True
        if arm:
            self._arm()

    def run_started(self, record: RunRecord, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """The run started: ``run_admitted`` (at its creation time) and ``run_started``;
        with ``loop``, the journal's timed writes run there (``bind_loop``)."""
        if loop is not None:
            self.bind_loop(loop)
        admitted: dict[str, Any] = {"thread_id": record.thread_id}
        if record.assistant_id is not None:
            admitted["assistant_id"] = record.assistant_id
        self._add("run_admitted", admitted, record.created_at)
        started: dict[str, Any] = {"attempt": record.attempt} if record.attempt > 1 else {}
        self._add("run_started", started, record.started_at)

    def chain_started(
        self,
        run_id: uuid.UUID,
        metadata: Mapping[str, Any] | None,
        tags: Sequence[str] | None,
    ) -> None:
        """A chain started: a node's when LangGraph tagged it as a task."""
        if self.rank < 2 or not _is_node(tags, metadata):
            return
        assert metadata is not None
        node = _text(metadata.get("langgraph_node"), self.limit)
        ns = storable_text(str(metadata.get("langgraph_checkpoint_ns") or ""))
        self._open[_key(run_id)] = (time.perf_counter(), node, ns)
        data: dict[str, Any] = {"node": node, "ns": ns}
        step = metadata.get("langgraph_step")
        if isinstance(step, int):
            data["step"] = step
        self._add("node_started", data)

    def chain_ended(self, run_id: uuid.UUID, error: BaseException | None = None) -> None:
        """A chain ended: ``node_ended`` when it was a node's (its error, or ``interrupted``
        when it stopped on ``interrupt()``)."""
        opened = self._open.pop(_key(run_id), None) if self._open else None
        if opened is None:
            return
        started, node, ns = opened
        data: dict[str, Any] = {"node": node, "ns": ns, "duration_ms": _ms(started)}
        if isinstance(error, GraphBubbleUp):  # an interrupt or a Command to a parent graph
            data["interrupted"] = True
        elif error is not None:
            data["error"] = cut(error_text(error), self.limit)
        self._add("node_ended", data)

    def llm_started(self, run_id: uuid.UUID, metadata: Mapping[str, Any] | None) -> None:
        if self.rank < 2 or _key(run_id) in self._open:
            return
        node = _text((metadata or {}).get("langgraph_node"), self.limit)
        self._open[_key(run_id)] = (time.perf_counter(), metadata, node)
        if self.rank >= 3:
            model = _text((metadata or {}).get("ls_model_name"), self.limit)
            self._add("llm_started", {"model": model, "node": node})

    def llm_ended(
        self,
        run_id: uuid.UUID,
        response: LLMResult | None,
        error: BaseException | None = None,
        *,
        cost: float | None = None,
    ) -> None:
        """An LLM call ended: ``llm_ended`` with its model, tokens, cost (when priced) and
        duration, once per call as the run counts it (a second end only when the first
        reported no usage and this one does), so the events' tokens add up to the run's."""
        if self.rank < 2:
            return
        reported = self._llm_usage.get(_key(run_id))
        if reported:
            return
        counts = None
        message: Any = None
        if response is not None:
            counts = result_counts(response.generations, response.llm_output)
            for generations in response.generations:
                for generation in generations:
                    message = getattr(generation, "message", message)
        if counts is None and reported is False:
            return
        self._llm_usage[_key(run_id)] = counts is not None
        started, metadata, node = self._open.get(_key(run_id)) or (time.perf_counter(), None, None)
        llm_output = response.llm_output if response is not None else None
        model = reported_model(message, llm_output, metadata) or UNKNOWN_MODEL
        data: dict[str, Any] = {"model": cut(model, self.limit), "node": node}
        data["duration_ms"] = _ms(started)
        data.update(zip(TOKEN_FIELDS, counts or _ZERO_COUNTS, strict=True))
        if cost is not None:
            data["cost_usd"] = round(cost, 12)
        if counts is None:
            data["usage"] = False
        if error is not None:
            data["error"] = cut(error_text(error), self.limit)
        elif message is not None:
            text = message_text(message)
            if text:
                data["text"] = cut(text, self.limit)
            calls = getattr(message, "tool_calls", None)
            if calls:
                data["tool_calls"] = [_text(call.get("name"), self.limit) for call in calls]
        self._add("llm_ended", data)

    def tool_started(
        self,
        run_id: uuid.UUID,
        serialized: Mapping[str, Any] | None,
        metadata: Mapping[str, Any] | None,
        name: Any,
    ) -> None:
        if self.rank < 2:
            return
        tool = _text(name or (serialized or {}).get("name"), self.limit)
        node = _text((metadata or {}).get("langgraph_node"), self.limit)
        self._open[_key(run_id)] = (time.perf_counter(), tool, node)
        if self.rank >= 3:
            self._add("tool_started", {"tool": tool, "node": node})

    def tool_ended(
        self, run_id: uuid.UUID, output: Any, error: BaseException | None = None
    ) -> None:
        opened = self._open.pop(_key(run_id), None) if self._open else None
        if opened is None:
            return
        started, tool, node = opened
        data: dict[str, Any] = {"tool": tool, "node": node, "duration_ms": _ms(started)}
        if error is not None:
            data["error"] = cut(error_text(error), self.limit)
        elif output is not None:
            content = getattr(output, "content", output)
            text = content if isinstance(content, str) else content_text(content) or repr(content)
            data["output"] = cut(text, self.limit)
        self._add("tool_ended", data)

    async def progress(self, fields: Mapping[str, Any]) -> None:
        """The run's counts at a progress write, written with what waits."""
        names = ("input_tokens", "output_tokens", "total_tokens", "llm_call_count")
        self._add("progress", {name: fields.get(name, 0) for name in names})
        await self.flush()

    def run_ended(self, record: RunRecord) -> None:
        """The run ended as ``record`` now shows (the store's end): its interrupts when it
        paused, its error when it failed, then ``run_ended``."""
        if self.ended:
            return
        limit = self.limit
        if record.paused and record.interrupts:
            entries = bounded(jsonable(record.interrupts), limit)
            self._add("interrupt", {"interrupts": entries}, record.ended_at)
        if record.status is RunStatus.error and record.error:
            self._add("error", {"error": cut(record.error, limit)}, record.ended_at)
        data: dict[str, Any] = {"status": record.status.value, "stop_reason": record.stop_reason}
        if record.error:
            data["error"] = cut(record.error, limit)
        data["total_tokens"] = record.total_tokens
        data["llm_call_count"] = record.llm_call_count
        seconds = duration_of({"started_at": record.started_at, "ended_at": record.ended_at})
        if seconds is not None:
            data["duration_ms"] = round(seconds * 1000.0, 3)
        self._add("run_ended", data, record.ended_at)
        self.ended = True

    # -- writing --------------------------------------------------------------------------

    def bind_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        """Write from ``loop``: the trailing timer and its writes run there."""
        self._loop = loop
        if self._armed:
            self._arm()

    def bind_thread(self, lock: threading.Lock, run_sync: Callable[[Any], Any]) -> None:
        """Write from a timer thread, under ``lock`` (the sync tracker's write lock), each
        write run to its end by ``run_sync`` (the manager's loop)."""

        def write() -> None:
            if self.ended:
                return  # the final write took everything
            with lock:
                try:
                    run_sync(self.write)
                except Exception:
                    logger.exception("Could not write the journal of run %s", self.run_id)

        self._thread_write = write

    def _arm(self) -> None:
        interval = self.config.flush_interval
        loop = self._loop
        if loop is not None:
            if loop.is_closed():
                return
            try:
                running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
            except RuntimeError:
                running = None
            if running is loop:
                self._start_timer()
            else:  # a sync model inside an async graph reports from a worker thread
                loop.call_soon_threadsafe(self._start_timer)
        elif self._thread_write is not None and not self.ended:
            timer = threading.Timer(interval, self._thread_write)
            timer.daemon = True
            timer.start()

    def _start_timer(self) -> None:
        if self._timer is None and not self.ending and self._loop is not None:
            self._timer = self._loop.call_later(self.config.flush_interval, self._fire)

    def _fire(self) -> None:
        self._timer = None
        if not self.ending:
            self._task = asyncio.ensure_future(self.write())

    async def flush(self) -> None:
        """Write what waits now, after any write in flight (progress and final writes)."""
        await self.write(final=self.ending)

    async def finish(self, record: RunRecord) -> None:
        """Record the run's end and write every event still in memory."""
        self.ending = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.run_ended(record)
        await self.flush()

    async def write(self, *, final: bool = False) -> bool:
        """Send the waiting events as one batch; False on failure, logged, the events kept
        for the next write (dropped, said so, when this was the run's last)."""
        async with self._writing:
            with self._lock:
                batch, self._pending = self._pending, []
                self._armed = False
            if not batch:
                return True
            try:
                if self._via is not None:
                    await self._via(lambda: self._send(batch))
                else:
                    await self._send(batch)
            except Exception as exc:
                then = "they are lost" if final else "they go out with its next write"
                logger.warning(
                    "Could not write %d journal event(s) of run %s (%s: %s); %s",
                    len(batch),
                    self.run_id,
                    type(exc).__name__,
                    exc,
                    then,
                )
                if not final:
                    with self._lock:
                        self._pending[:0] = batch[: MAX_PENDING - len(self._pending)]
                        self._armed = bool(self._pending)
                return False
        notify_written(self.store, self.run_id)
        return True

    async def _send(self, batch: list[tuple[int, float | str, str, dict[str, Any]]]) -> None:
        store = self.store
        if self._base is None:
            self._base = await store.last_event_seq(self.run_id)
        base = self._base
        rows = [(base + seq, _iso(ts), kind, data) for seq, ts, kind, data in batch]
        await store.append_events(self.run_id, rows)


def new_journal(
    store: RunStore | None,
    record: RunRecord,
    config: JournalConfig,
    *,
    via: Via | None = None,
) -> RunJournal | None:
    """The journal of a run about to be tracked; None when its level is off or the store
    keeps no journal."""
    if store is None or config.rank == 0 or not store.keeps_events:
        return None
    return RunJournal(store, record, config, via=via)


class AsyncJournalCallbacks:
    """The callbacks only the journal needs (LLM errors, tools), for an async tracker."""

    journal: RunJournal | None

    async def on_llm_error(
        self,
        error: BaseException,
        *,
        run_id: uuid.UUID,
        parent_run_id: uuid.UUID | None = None,
        tags: list[str] | None = None,
        **kwargs: Any,
    ) -> None:
        if self.journal is not None:
            self.journal.llm_ended(run_id, None, error)

    async def on_tool_start(
        self,
        serialized: dict[str, Any],
        input_str: str,
        *,
        run_id: uuid.UUID,
        parent_run_id: uuid.UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        inputs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if self.journal is not None:
            self.journal.tool_started(run_id, serialized, metadata, kwargs.get("name"))

    async def on_tool_end(
        self,
        output: Any,
        *,
        run_id: uuid.UUID,
        parent_run_id: uuid.UUID | None = None,
        tags: list[str] | None = None,
        **kwargs: Any,
    ) -> None:
        if self.journal is not None:
            self.journal.tool_ended(run_id, output)

    async def on_tool_error(
        self,
        error: BaseException,
        *,
        run_id: uuid.UUID,
        parent_run_id: uuid.UUID | None = None,
        tags: list[str] | None = None,
        **kwargs: Any,
    ) -> None:
        if self.journal is not None:
            self.journal.tool_ended(run_id, None, error)


class SyncJournalCallbacks:
    """``AsyncJournalCallbacks`` for a sync tracker."""

    journal: RunJournal | None

    def on_llm_error(
        self,
        error: BaseException,
        *,
        run_id: uuid.UUID,
        parent_run_id: uuid.UUID | None = None,
        **kwargs: Any,
    ) -> None:
        if self.journal is not None:
            self.journal.llm_ended(run_id, None, error)

    def on_tool_start(
        self,
        serialized: dict[str, Any],
        input_str: str,
        *,
        run_id: uuid.UUID,
        parent_run_id: uuid.UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        inputs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if self.journal is not None:
            self.journal.tool_started(run_id, serialized, metadata, kwargs.get("name"))

    def on_tool_end(
        self,
        output: Any,
        *,
        run_id: uuid.UUID,
        parent_run_id: uuid.UUID | None = None,
        **kwargs: Any,
    ) -> None:
        if self.journal is not None:
            self.journal.tool_ended(run_id, output)

    def on_tool_error(
        self,
        error: BaseException,
        *,
        run_id: uuid.UUID,
        parent_run_id: uuid.UUID | None = None,
        **kwargs: Any,
    ) -> None:
        if self.journal is not None:
            self.journal.tool_ended(run_id, None, error)


__all__ = [
    "MAX_PENDING",
    "AsyncJournalCallbacks",
    "RunJournal",
    "SyncJournalCallbacks",
    "Via",
    "new_journal",
]
