"""The SQL statements of the run store: one text in both paramstyles, the runs columns, and
the row codec (JSON fields as text, ``shared_queue`` as an integer)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from langgraph_runstore.errors import InvalidInputError
from langgraph_runstore.schemas import JSON_FIELDS, ROW_FIELDS

#: The columns every read of whole runs rows selects.
SELECT_COLUMNS = ", ".join(("seq", *ROW_FIELDS))

_PARAM = re.compile(r":([a-z_][a-z0-9_]*)")


@dataclass(frozen=True)
class Statement:
    """One SQL text in both paramstyles: ``:name`` for sqlite3, ``$n`` for asyncpg."""

    sqlite: str
    postgresql: str
    names: tuple[str, ...]

    @classmethod
    def of(cls, template: str) -> Statement:
        names: list[str] = []

        def number(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in names:
                names.append(name)
            return f"${names.index(name) + 1}"

        return cls(template, _PARAM.sub(number, template), tuple(names))

    def args(self, params: dict[str, Any]) -> list[Any]:
        return [params[name] for name in self.names]


@lru_cache(maxsize=8)
def inflight_select(clauses: tuple[str, ...]) -> Statement:
    """The runs matching every one of ``clauses``, oldest first (the in-flight listing)."""
    return Statement.of(
        f"SELECT {SELECT_COLUMNS} FROM runs WHERE {' AND '.join(clauses)} ORDER BY created_at, seq"
    )


@lru_cache(maxsize=64)
def insert_if_idle(columns: tuple[str, ...], active: str) -> Statement:
    """INSERT of a row unless its thread has a run whose status is in ``active`` (SQL)."""
    names = ", ".join(columns)
    values = ", ".join(f":{name}" for name in columns)
    return Statement.of(
        f"INSERT INTO runs ({names}) SELECT {values} WHERE NOT EXISTS "
        f"(SELECT 1 FROM runs WHERE thread_id = :thread_id AND status IN ({active}))"
    )


__all__ = ["SELECT_COLUMNS", "Statement", "inflight_select", "insert_if_idle"]


def encode_row(row: dict[str, Any], *, run_id: str | None = None) -> dict[str, Any]:
    """The row with its JSON fields serialised (once: this is also their validation)."""
    encoded = dict(row)
    for name in JSON_FIELDS:
        value = encoded.get(name)
        if value is not None:
            if type(value) is dict and not value:
                encoded[name] = "{}"  # most runs have no metadata, kwargs or usage yet
                continue
            try:
                encoded[name] = json.dumps(value, allow_nan=False)
            except (TypeError, ValueError, RecursionError) as exc:
                raise InvalidInputError(
                    f"{name} must be JSON-serialisable: {exc}", run_id=run_id or row.get("run_id")
                ) from None
    if "shared_queue" in encoded:
        encoded["shared_queue"] = int(bool(encoded["shared_queue"]))
    return encoded


def decode_row(row: dict[str, Any]) -> dict[str, Any]:
    """The row with its JSON fields parsed and ``shared_queue`` a bool (in place)."""
    if "shared_queue" in row:
        row["shared_queue"] = bool(row["shared_queue"])
    for name in JSON_FIELDS:
        value = row.get(name)
        if isinstance(value, str):
            row[name] = json.loads(value)
    return row
