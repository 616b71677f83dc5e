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
from collections.abc import Mapping, Sequence
from typing import Any

from langgraph_runstore.store.drivers import Driver
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


class EventQueries:
    """The journal's store primitives (``RunStore.append_events`` and the rest), mixed into
    SQLRunStore, whose ``driver`` sends them and whose ``dialect`` picks the statement."""

    dialect: str
    driver: Driver

    #: this store keeps run event journals
    keeps_events = True

    async def append_events(
        self, run_id: str, events: Sequence[tuple[int, str, str, Mapping[str, Any]]]
    ) -> None:
        params = {"run_id": run_id, "batch": encode_batch(events)}
        if self.dialect == "postgresql":
            await self.driver.fetch(_APPEND_POSTGRES, params)
        else:
            await self.driver.execute(_APPEND_SQLITE, params)

    async def read_events(
        self, run_id: str, *, after: int = 0, limit: int = 500
    ) -> list[dict[str, Any]]:
        rows = await self.driver.fetch(
            READ_EVENTS, {"run_id": run_id, "after": after, "limit": limit}
        )
        for row in rows:
            data = row["data"]
            row["data"] = json.loads(data) if isinstance(data, str) else (data or {})
            row["seq"] = int(row["seq"])
        return rows

    async def last_event_seq(self, run_id: str) -> int:
        rows = await self.driver.fetch(LAST_SEQ, {"run_id": run_id})
        return int(rows[0]["seq"]) if rows else 0


def encode_batch(events: Sequence[tuple[int, str, str, Any]]) -> str:
    """The batch parameter: ``[[seq, ts, kind, data], ...]`` as JSON text."""
    return json.dumps(events, separators=(",", ":"), allow_nan=False)


__all__ = ["EVENTS_CHANNEL", "LAST_SEQ", "READ_EVENTS", "EventQueries", "encode_batch"]
