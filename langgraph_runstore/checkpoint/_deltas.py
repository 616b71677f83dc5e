"""Append-only storage for long list channels (message histories): store what was appended.

A ``messages`` channel grows by a message or two per step, and every step gives it a new
version, so storing each version in full writes the whole history again and again. When a
list channel's new value starts with exactly the objects of the version this process last
stored or read for that thread (same objects, none of their attributes reassigned since),
only the new tail is serialised and stored, with a ``chain``: the earlier versions whose
blobs, concatenated, give the prefix. A full copy is stored again every ``max_chain`` steps,
so a read never joins more than ``max_chain + 1`` blobs.

What it cannot see: an in-place change inside an already stored element (say, a dict in a
message's ``additional_kwargs`` mutated without reassigning the attribute). LangGraph state
is meant to be changed by returning updates; code that mutates stored messages in place
should turn this off (``SQLAlchemySaver(..., list_deltas=False)``).
"""

from __future__ import annotations

import operator
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

Key = tuple[str, str, str]  # (thread_id, checkpoint_ns, channel)


@dataclass(frozen=True)
class ListState:
    """What a stored version of a list channel holds, as this process saw it."""

    version: str
    items: tuple[Any, ...]
    # shallow copies of each item's __dict__, taken when the version was stored or read
    snapshots: list[dict[str, Any]]
    chain: tuple[str, ...]


def _snapshot(items: list[Any] | tuple[Any, ...]) -> list[dict[str, Any]] | None:
    """Shallow copies of the items' attribute dicts, or None if an item has none."""
    try:
        return [dict(attrs) for attrs in map(vars, items)]
    except TypeError:  # an int, a str, a tuple …: not the kind of list this is for
        return None


class ListDeltas:
    """Per-process memory of the last stored version of long list channels, LRU-bounded."""

    def __init__(self, *, min_len: int = 8, max_chain: int = 24, max_entries: int = 512) -> None:
        self.min_len = min_len
        self.max_chain = max_chain
        self.max_entries = max_entries
        self._entries: OrderedDict[Key, ListState] = OrderedDict()

    def plan(
        self, key: Key, version: object, value: list[Any]
    ) -> tuple[list[Any], tuple[str, ...] | None, ListState | None]:
        """What to store for ``value``: (items, chain or None for a full copy, new state).

        The new state is to be passed to :meth:`commit` once the write has succeeded.
        """
        if not isinstance(version, str) or len(value) < self.min_len:
            return value, None, None
        base = self._entries.get(key)
        if base is not None and base.version != version and len(base.chain) < self.max_chain:
            n = len(base.items)
            if len(value) >= n:
                prefix = value[:n]
                if all(map(operator.is_, prefix, base.items)):
                    try:
                        unchanged = list(map(vars, prefix)) == base.snapshots
                    except TypeError:
                        unchanged = False
                    tail = value[n:]
                    tail_snapshots = _snapshot(tail)
                    if unchanged and tail_snapshots is not None:
                        chain = (*base.chain, base.version)
                        state = ListState(
                            version, tuple(value), base.snapshots + tail_snapshots, chain
                        )
                        return tail, chain, state
        snapshots = _snapshot(value)
        if snapshots is None:
            return value, None, None
        return value, None, ListState(version, tuple(value), snapshots, ())

    def commit(self, key: Key, state: ListState) -> None:
        """Remember a version that is now stored."""
        entries = self._entries
        entries[key] = state
        entries.move_to_end(key)
        if len(entries) > self.max_entries:
            entries.popitem(last=False)

    def remember(self, key: Key, version: str, value: Any, chain: tuple[str, ...]) -> None:
        """Remember a version just read, so the next write can extend it."""
        if type(value) is not list or len(value) < self.min_len:
            return
        # the objects just read replace any remembered ones: they are what the graph will extend
        snapshots = _snapshot(value)
        if snapshots is not None:
            self.commit(key, ListState(version, tuple(value), snapshots, chain))

    def clear(self) -> None:
        """Forget everything (after deletes: a remembered version may be gone)."""
        self._entries.clear()
