"""Giving a SQLite file's free pages back to the file system (``prune --vacuum``).

Deleted rows leave free pages that SQLite reuses but does not return. ``VACUUM`` rewrites
the file without them; in WAL mode the new pages go through the log, so the log is
checkpointed and truncated before and after, and the space counted is the file's plus its
``-wal``'s. It holds the write lock while it runs (other writers wait, up to their busy
timeout) and needs free space about the size of the file.
"""

from __future__ import annotations

import contextlib
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from langgraph_runstore.db.engine import DEFAULT_SQLITE_BUSY_TIMEOUT_MS


@dataclass(frozen=True)
class VacuumResult:
    """The database's size on disk (file and WAL) before and after ``VACUUM``, in bytes."""

    before: int
    after: int

    @property
    def freed(self) -> int:
        """Bytes given back (0 when the file did not shrink)."""
        return max(self.before - self.after, 0)


def disk_size(path: Path) -> int:
    """The bytes a SQLite database occupies: its file and its write-ahead log."""
    total = 0
    for part in (path, path.with_name(path.name + "-wal")):
        with contextlib.suppress(FileNotFoundError):
            total += part.stat().st_size
    return total


def vacuum_sqlite(path: Path) -> VacuumResult:
    """``VACUUM`` the SQLite file at ``path`` and say how much space it gave back."""
    before = disk_size(path)
    conn = sqlite3.connect(
        f"{path.absolute().as_uri()}?mode=rw",
        uri=True,
        isolation_level=None,
        timeout=DEFAULT_SQLITE_BUSY_TIMEOUT_MS / 1000,
    )
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        conn.execute("VACUUM")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    finally:
        conn.close()
    return VacuumResult(before=before, after=disk_size(path))


__all__ = ["VacuumResult", "disk_size", "vacuum_sqlite"]
