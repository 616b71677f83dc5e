"""The SQL statements of the run store: one text in both paramstyles, and the runs columns."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from langgraph_runstore.schemas import ROW_FIELDS

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


__all__ = ["SELECT_COLUMNS", "Statement"]
