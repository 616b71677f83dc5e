"""Reading a run's journal: the stored events a page at a time, then the live run's new
ones until it ends, also when another process executes it.

A follower reads the events after the last one it has, then waits for news: a journal
write of this process wakes it at once (``notify_written``); on PostgreSQL so does the
``NOTIFY runstore_events`` every batch sends, from any process, heard on one ``LISTEN``
connection per store while anyone follows; otherwise it looks again every
``poll_interval`` seconds (SQLite across processes). It ends after the ``run_ended``
event, or when the run's row is final and a last look found nothing more (a run that never
started has no events), or when the run is deleted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import weakref
from collections.abc import AsyncIterator
from typing import Any

from langgraph_runstore.errors import RunNotFoundError
from langgraph_runstore.journal import RunEvent
from langgraph_runstore.query import FINAL_STATUS_VALUES
from langgraph_runstore.store.base import RunStore
from langgraph_runstore.store.journal_sql import EVENTS_CHANNEL

logger = logging.getLogger(__name__)

#: Events read per statement.
PAGE_SIZE = 500
#: How long a LISTEN connection may take to be ready before a follower polls instead.
LISTEN_READY_TIMEOUT = 5.0
#: Pause before listening again after the LISTEN connection dropped.
RELISTEN_PAUSE = 1.0


class _Signals:
    """The followers of one store, by run id, and its LISTEN connection (PostgreSQL)."""

    def __init__(self, store: RunStore) -> None:
        self._store = weakref.ref(store)
        self._lock = threading.Lock()
        self._waiting: dict[str, set[tuple[asyncio.AbstractEventLoop, asyncio.Event]]] = {}
        self._listener: asyncio.Task[None] | None = None
        self._ready: asyncio.Event | None = None

    def notify(self, run_id: str) -> None:
        with self._lock:
            waiting = list(self._waiting.get(run_id, ()))
        for loop, wake in waiting:
            if not loop.is_closed():
                loop.call_soon_threadsafe(wake.set)

    def subscribe(self, run_id: str) -> tuple[asyncio.AbstractEventLoop, asyncio.Event]:
        entry = (asyncio.get_running_loop(), asyncio.Event())
        with self._lock:
            self._waiting.setdefault(run_id, set()).add(entry)
        return entry

    def unsubscribe(self, run_id: str, entry: tuple[Any, asyncio.Event]) -> None:
        with self._lock:
            waiting = self._waiting.get(run_id)
            if waiting is not None:
                waiting.discard(entry)
                if not waiting:
                    del self._waiting[run_id]
            idle = not self._waiting
            listener = self._listener if idle else None
            if idle:
                self._listener = self._ready = None
        if listener is not None and not listener.done():
            listener.get_loop().call_soon_threadsafe(listener.cancel)

    async def listening(self) -> bool:
        """Start (or join) the store's LISTEN connection; True once it is ready."""
        store = self._store()
        driver = getattr(store, "driver", None)
        listen = getattr(driver, "listen", None)
        if listen is None or getattr(store, "dialect", None) != "postgresql":
            return False
        with self._lock:
            if self._listener is None or self._listener.done():
                self._ready = asyncio.Event()
                self._listener = asyncio.ensure_future(self._listen(listen, self._ready))
            ready = self._ready
        assert ready is not None
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(ready.wait(), LISTEN_READY_TIMEOUT)
        return ready.is_set()

    async def _listen(self, listen: Any, ready: asyncio.Event) -> None:
        def on_notice(channel: str, payload: str) -> None:
            self.notify(payload)

        while True:
            try:
                await listen((EVENTS_CHANNEL,), on_notice, ready=ready.set)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.warning("Lost the LISTEN connection for run events", exc_info=True)
            ready.clear()
            await asyncio.sleep(RELISTEN_PAUSE)


_SIGNALS: weakref.WeakKeyDictionary[RunStore, _Signals] = weakref.WeakKeyDictionary()
_SIGNALS_LOCK = threading.Lock()


def _signals(store: RunStore) -> _Signals:
    with _SIGNALS_LOCK:
        found = _SIGNALS.get(store)
        if found is None:
            found = _SIGNALS[store] = _Signals(store)
        return found


def notify_written(store: RunStore, run_id: str) -> None:
    """Wake this process's followers of ``run_id``: a batch of its events was written."""
    try:
        found = _SIGNALS.get(store)
    except TypeError:  # a store that cannot be weakly referenced has no followers here
        return
    if found is not None:
        found.notify(run_id)


async def _pause(wake: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(wake.wait(), seconds)


async def follow_events(
    store: RunStore,
    run_id: str,
    *,
    after: int = 0,
    follow: bool = True,
    poll_interval: float = 0.25,
    page_size: int = PAGE_SIZE,
) -> AsyncIterator[RunEvent]:
    """The events of ``run_id`` after seq ``after``, in order; with ``follow``, then the
    new ones until the run ends (see the module docstring). RunNotFoundError when the
    store has no such run."""
    if await store.get_status(run_id) is None:
        raise RunNotFoundError(f"no run with run_id {run_id!r}", run_id=run_id)
    signals = _signals(store) if follow else None
    entry = signals.subscribe(run_id) if signals is not None else None
    try:
        if signals is not None:
            await signals.listening()  # before the first read: no NOTIFY slips between
        last, final_seen, ended = after, False, False
        while True:
            if entry is not None:
                entry[1].clear()
            rows = await store.read_events(run_id, after=last, limit=page_size)
            for row in rows:
                event = RunEvent(run_id, int(row["seq"]), row["kind"], row["ts"], row["data"])
                last = event.seq
                ended = ended or event.kind == "run_ended"
                yield event
            if len(rows) == page_size:
                continue
            if entry is None or ended:
                return
            stored = await store.get_status(run_id)
            if stored is None:
                return  # the run was deleted while followed
            if stored.get("status") in FINAL_STATUS_VALUES:
                if final_seen:
                    return
                # the run's last batch is written just after its row's end: look once more
                final_seen = True
            await _pause(entry[1], poll_interval)
    finally:
        if signals is not None and entry is not None:
            signals.unsubscribe(run_id, entry)


__all__ = ["LISTEN_READY_TIMEOUT", "PAGE_SIZE", "follow_events", "notify_written"]
