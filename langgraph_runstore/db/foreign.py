"""Refusing a database the package would clash with, before anything in it is changed.

The package sets its schema up beside whatever else a database holds. Before it changes
anything (on SQLite: before the first connection switches the file to WAL; everywhere:
before a migration runs), it checks that the database is one it may set up: a SQLite file
must be SQLite at all, and no table, index, sequence or function of another application may
carry a name that one of the package's migrations still has to create. Otherwise it raises
ForeignDatabaseError naming what is in the way, and the database stays exactly as it was.
Objects under other names are never touched.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from langgraph_runstore.errors import ForeignDatabaseError

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

# PostgreSQL's relation kinds, as the message names them
_PG_KINDS = "CASE c.relkind WHEN 'r' THEN 'table' WHEN 'p' THEN 'table' WHEN 'i' THEN 'index' "
_PG_KINDS += (
    "WHEN 'S' THEN 'sequence' WHEN 'v' THEN 'view' WHEN 'm' THEN 'view' ELSE 'relation' END"
)


def _described(found: Iterable[tuple[str, str]]) -> str:
    return ", ".join(f"{kind} {name!r}" for kind, name in sorted(found, key=lambda f: f[1]))


def refusal(shown: str, found: Iterable[tuple[str, str]]) -> ForeignDatabaseError:
    """The error for a database whose ``found`` objects (kind, name) are in the way."""
    found = sorted(found, key=lambda f: f[1])
    return ForeignDatabaseError(
        f"database {shown} already has {_described(found)}, which langgraph-runstore did not "
        "create and needs for its own schema: nothing was changed. Use another database (or "
        "SQLite file) for the runs, or rename what is in the way",
        names=tuple(name for _, name in found),
    )


def not_sqlite(shown: str, reason: object) -> ForeignDatabaseError:
    """The error for a file that SQLite cannot read as a database."""
    return ForeignDatabaseError(
        f"{shown} is not a SQLite database ({reason}): nothing was changed", names=()
    )


def clashes(
    found: Iterable[tuple[str, str]], owned: Mapping[str, int], version: int
) -> list[tuple[str, str]]:
    """The ``found`` objects (kind, name) that a migration after ``version`` would create.

    ``owned`` maps each name the migrations create to the version that creates it.
    """
    return [(kind, name) for kind, name in found if owned.get(name.lower(), 0) > version]


def _sqlite_found_sql(names: Iterable[str]) -> str:
    listed = ", ".join(f"'{name}'" for name in sorted(names))
    # sqlite_master's names compare case-insensitively in SQL, as SQLite resolves them
    return f"SELECT type, name FROM sqlite_master WHERE lower(name) IN ({listed})"


def _pg_found_sql(names: Iterable[str]) -> str:
    relations = sorted(name for name in names if "(" not in name)
    functions = sorted(name for name in names if "(" in name)
    # to_regclass and to_regprocedure resolve a name as an unqualified CREATE or query would:
    # on the search path
    found = [
        f"SELECT {_PG_KINDS} AS kind, v.name FROM (VALUES {_rows(relations)}) AS v(name) "
        "JOIN pg_class c ON c.oid = to_regclass(v.name)"
    ]
    if functions:
        found.append(
            f"SELECT 'function', v.name FROM (VALUES {_rows(functions)}) AS v(name) "
            "WHERE to_regprocedure(v.name) IS NOT NULL"
        )
    return " UNION ALL ".join(found)


def _rows(names: list[str]) -> str:
    return ", ".join(f"('{name}')" for name in names) or "(NULL)"


def check_new_sqlite_connection(
    cursor: Any, *, owned: Mapping[str, int], version_table: str, shown: str
) -> None:
    """On a SQLite connection the engine is about to switch to WAL, refuse a foreign file.

    One read of ``sqlite_master``: the package's names present without its version table
    mean another application's objects (a migration creates its objects and its version row
    in one transaction), as does a version table without a ``version`` column. A file that
    has the version table is checked in full by ``setup``.
    """
    cursor.execute(_sqlite_found_sql([*owned, version_table]))
    found = [(str(kind), str(name)) for kind, name in cursor.fetchall()]
    ours = [(kind, name) for kind, name in found if name.lower() == version_table]
    if not ours:
        if found:
            raise refusal(shown, found)
        return
    cursor.execute(f"SELECT 1 FROM pragma_table_info('{version_table}') WHERE name = 'version'")
    if cursor.fetchone() is None:
        raise refusal(shown, ours)


async def refuse_clashes(
    conn: AsyncConnection, *, owned: Mapping[str, int], version: int, shown: str
) -> None:
    """Raise ForeignDatabaseError when an object a migration after ``version`` creates
    already exists in the database behind ``conn`` (run it under the migration lock)."""
    wanted = [name for name, created_in in owned.items() if created_in > version]
    if not wanted:
        return
    sqlite = conn.dialect.name == "sqlite"
    result = await conn.exec_driver_sql(
        _sqlite_found_sql(wanted) if sqlite else _pg_found_sql(wanted)
    )
    rows: list[Any] = list(result.all())
    found = clashes([(str(kind), str(name)) for kind, name in rows], owned, version)
    if found:
        raise refusal(shown, found)


__all__ = [
    "check_new_sqlite_connection",
    "clashes",
    "not_sqlite",
    "refusal",
    "refuse_clashes",
]
