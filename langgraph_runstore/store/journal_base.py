"""The run event journal's place in the RunStore interface: the primitives a store that
keeps journals implements (MemoryRunStore and SQLRunStore do), and their defaults for one
that keeps none."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


class JournalPrimitives:
    """The journal's part of ``RunStore`` (a base of it)."""

    #: whether the store keeps run event journals; trackers write none to one that does not
    keeps_events: bool = False

    async def append_events(
        self, run_id: str, events: Sequence[tuple[int, str, str, Mapping[str, Any]]]
    ) -> None:
        """Store one run's events ``(seq, ts, kind, data)`` in one write; an event whose seq
        is stored already stays (a batch sent twice lands once). They go with the run."""
        raise NotImplementedError(f"{type(self).__name__} keeps no run events")

    async def read_events(
        self, run_id: str, *, after: int = 0, limit: int = 500
    ) -> list[dict[str, Any]]:
        """Up to ``limit`` events (``seq``, ``ts``, ``kind``, ``data``) after ``after``."""
        raise NotImplementedError(f"{type(self).__name__} keeps no run events")

    async def last_event_seq(self, run_id: str) -> int:
        """The highest seq stored for ``run_id``, 0 when it has none."""
        raise NotImplementedError(f"{type(self).__name__} keeps no run events")


__all__ = ["JournalPrimitives"]
