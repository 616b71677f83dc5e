"""Reading run event journals from a manager: ``events()`` and ``join_stream()``, and
their twins on ``SyncRunManager``.

``RunEvents`` is a mixin on the facade and ``SyncRunEvents`` one on the sync twin; what
each needs of its class is declared on it. The reading itself is ``journal_feed``'s.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any, TypeVar

from langgraph_runstore.errors import DatabaseConfigError, InvalidInputError
from langgraph_runstore.journal import RunEvent, check_after, parse_event_id
from langgraph_runstore.journal_feed import follow_events
from langgraph_runstore.schemas import RunRecord
from langgraph_runstore.store.base import RunStore

T = TypeVar("T")

#: How often a follower looks for new events when nothing wakes it (SQLite across processes).
EVENTS_POLL_INTERVAL = 0.25


def _check_poll(value: Any) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not 0 < value < math.inf
        or math.isnan(value)
    ):
        raise InvalidInputError(
            f"poll_interval must be a finite number of seconds > 0, got {value!r}"
        )
    return float(value)


class RunEvents:
    """``events`` and ``join_stream`` (see the module docstring)."""

    store: RunStore | None
    _visible_run: Callable[[str, str | None], Awaitable[RunRecord]]

    def _journal_store(self) -> RunStore:
        store = self.store
        if store is None or not store.keeps_events:
            kind = "no store" if store is None else type(store).__name__
            raise DatabaseConfigError(
                f"run events live in the store, and this manager has {kind}, which keeps "
                "none: give the manager a SQLRunStore or a MemoryRunStore"
            )
        return store

    async def events(
        self,
        run_id: str,
        *,
        after: int | None = None,
        follow: bool = True,
        poll_interval: float = EVENTS_POLL_INTERVAL,
        user_id: str | None = None,
    ) -> AsyncIterator[RunEvent]:
        """The run's journal: the stored events after seq ``after`` (from the first when
        None), then, with ``follow``, each new one as it is written until the run ends,
        also when another process executes it (``LISTEN``/``NOTIFY`` on PostgreSQL; on
        SQLite a look every ``poll_interval`` seconds, and at once for runs of this
        process). A follower whose run is deleted ends quietly.

        ::

            async for event in manager.events(run.run_id):
                print(event.seq, event.kind, event.data)

        RunNotFoundError for an unknown run (and, with ``user_id``, another user's),
        InvalidInputError for a bad ``after``, DatabaseConfigError without a store that
        keeps events.
        """
        seq = check_after(after, run_id=run_id)
        interval = _check_poll(poll_interval)
        store = self._journal_store()
        await self._visible_run(run_id, user_id)
        async for event in follow_events(
            store, run_id, after=seq, follow=follow, poll_interval=interval
        ):
            yield event

    async def join_stream(
        self,
        run_id: str,
        *,
        last_event_id: str | None = None,
        follow: bool = True,
        poll_interval: float = EVENTS_POLL_INTERVAL,
        user_id: str | None = None,
    ) -> AsyncIterator[RunEvent]:
        """Re-attach to a run, like the Platform's ``runs.join_stream``: its events after
        the one whose id is ``last_event_id`` (an ``event.id``, as an SSE client sends back
        in ``Last-Event-ID``), from the first when None, then the live ones until it ends.
        A consumer that dropped resumes from the last id it saw, losing and repeating
        nothing. InvalidInputError for an id of another run or of the wrong form."""
        after = None if last_event_id is None else parse_event_id(last_event_id, run_id=run_id)
        async for event in self.events(
            run_id, after=after, follow=follow, poll_interval=poll_interval, user_id=user_id
        ):
            yield event


class SyncRunEvents:
    """``events`` and ``join_stream`` as plain iterators, for ``SyncRunManager``."""

    _run: Callable[[Callable[[], Awaitable[Any]]], Any]

    def _event_source(self) -> RunEvents:
        """The async manager whose events these are."""
        raise NotImplementedError

    def _iterate(self, events: AsyncIterator[RunEvent]) -> Iterator[RunEvent]:
        async def step() -> RunEvent | None:
            try:
                return await events.__anext__()
            except StopAsyncIteration:  # as a value: it would not cross threads cleanly
                return None

        async def close() -> None:
            await events.aclose()  # type: ignore[attr-defined]

        try:
            while True:
                event = self._run(step)
                if event is None:
                    return
                yield event
        finally:
            self._run(close)

    def events(self, run_id: str, **options: Any) -> Iterator[RunEvent]:
        """See ``RunManager.events``: blocks between events while it follows the run."""
        return self._iterate(self._event_source().events(run_id, **options))

    def join_stream(self, run_id: str, **options: Any) -> Iterator[RunEvent]:
        """See ``RunManager.join_stream``."""
        return self._iterate(self._event_source().join_stream(run_id, **options))


__all__ = ["EVENTS_POLL_INTERVAL", "RunEvents", "SyncRunEvents"]
