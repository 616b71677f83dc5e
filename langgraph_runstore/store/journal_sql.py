"""The SQL of the run event journal (the ``runstore_events`` table), per dialect.

A batch of events goes out as one statement with one parameter: the events as a JSON
array of ``[seq, ts, kind, data]``, unpacked by the database (``json_each`` on SQLite,
``jsonb_array_elements`` on PostgreSQL), so the statement text is the same for every
batch size. ``ON CONFLICT DO NOTHING`` makes a batch sent twice (its first answer lost)
land once. On PostgreSQL the same statement sends ``NOTIFY runstore_events`` with the run
id, which followers in other processes wait on.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Protocol

from langgraph_runstore.store.statements import Statement

#: The channel a batch of events notifies on PostgreSQL (its payload is the run id).
EVENTS_CHANNEL = "runstore_events"

_APPEND_SQLITE = Statement.of(
    "INSERT INTO runstore_events (run_id, seq, ts, kind, data) "
    "SELECT :run_id, json_extract(e.value, '$[0]'), json_extract(e.value, '$[1]'), "
    "json_extract(e.value, '$[2]'), json_extract(e.value, '$[3]') "
    "FROM json_each(:batch) AS e WHERE true ON CONFLICT (run_id, seq) DO NOTHING"
)
_APPEND_POSTGRES = Statement.of(
    "WITH written AS (INSERT INTO runstore_events (run_id, seq, ts, kind, data) "
    "SELECT :run_id, CAST(e ->> 0 AS bigint), e ->> 1, e ->> 2, CAST(e -> 3 AS text) "
    "FROM jsonb_array_elements(CAST(:batch AS jsonb)) AS e "
    "ON CONFLICT (run_id, seq) DO NOTHING) "
    f"SELECT pg_notify('{EVENTS_CHANNEL}', :run_id) AS notified"
)
#: One page of a run's events after a seq: a range read of the primary key.
READ_EVENTS = Statement.of(
    "SELECT seq, ts, kind, data FROM runstore_events "
    "WHERE run_id = :run_id AND seq > :after ORDER BY seq LIMIT :limit"
)
LAST_SEQ = Statement.of(
    "SELECT COALESCE(MAX(seq), 0) AS seq FROM runstore_events WHERE run_id = :run_id"
)


class EventsDatabase(Protocol):
    """What the journal SQL needs of a SQL store: its dialect and its driver's calls."""

    @property
    def dialect(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""

    async def fetch(self, statement: Statement, params: dict[str, Any]) -> list[dict[str, Any]]:
        """Rows as the driver returns them."""

    async def execute(self, statement: Statement, params: dict[str, Any]) -> int:
        """Run a write; the number of rows it changed."""


def encode_batch(events: Sequence[tuple[int, str, str, Any]]) -> str:
    """The batch parameter: ``[[seq, ts, kind, data], ...]`` as JSON text."""
    return json.dumps(events, separators=(",", ":"), allow_nan=False)


async def append_events(
    db: EventsDatabase, run_id: str, events: Sequence[tuple[int, str, str, Any]]
) -> None:
    """Store one batch of a run's events in one statement."""
    params = {"run_id": run_id, "batch": encode_batch(events)}
    if db.dialect == "postgresql":
        await db.fetch(_APPEND_POSTGRES, params)
    else:
        await db.execute(_APPEND_SQLITE, params)


async def read_events(
    db: EventsDatabase, run_id: str, *, after: int, limit: int
) -> list[dict[str, Any]]:
    """Up to ``limit`` events of ``run_id`` with seq > ``after``, in seq order, their data
    decoded."""
    rows = await db.fetch(READ_EVENTS, {"run_id": run_id, "after": after, "limit": limit})
    for row in rows:
        data = row["data"]
        row["data"] = json.loads(data) if isinstance(data, str) else (data or {})
        row["seq"] = int(row["seq"])
    return rows


async def last_event_seq(db: EventsDatabase, run_id: str) -> int:
    """The highest seq stored for ``run_id`` (0 when it has no events)."""
    rows = await db.fetch(LAST_SEQ, {"run_id": run_id})
    return int(rows[0]["seq"]) if rows else 0


__all__ = [
    "EVENTS_CHANNEL",
    "LAST_SEQ",
    "READ_EVENTS",
    "EventsDatabase",
    "append_events",
    "encode_batch",
    "last_event_seq",
    "read_events",
]
