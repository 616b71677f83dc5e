"""Reading a SQLite file without changing it, on writable and on read-only storage.

A read-only connection (``?mode=ro``) to a file in WAL mode still needs the file's ``-shm``
index, and creates it when it is missing. On storage this process cannot write (a read-only
mount, a directory it may not write), that fails with "unable to open database file". Such
a file is opened with SQLite's ``immutable=1`` instead, which reads the database file alone:
right when its ``-wal`` log is missing or empty (the log was checkpointed into the file, as
SQLite does when the last writer closes), and the file cannot change while it is read. A
non-empty log without its ``-shm`` cannot be read there, and says so.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

_HEADER = b"SQLite format 3\x00"
# bytes 18 and 19 of the header: the file format's write and read versions, 2 for WAL
_WAL_FORMAT = 2


def _is_wal_file(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            header = handle.read(20)
    except OSError:
        return False
    return header.startswith(_HEADER) and len(header) == 20 and header[18] == _WAL_FORMAT


def cannot_write(path: Path) -> str | None:
    """Why this process cannot write the SQLite file at ``path`` (or create it), or None.

    SQLite writes the file and, beside it, its ``-wal``/``-shm`` (or ``-journal``) files: the
    folder must be writable too.
    """
    for target in (path, path.parent) if path.exists() else (path.parent,):
        if os.access(target, os.W_OK):
            continue
        if os.statvfs(target).f_flag & os.ST_RDONLY:
            return f"{target} is on a read-only file system"
        return f"{target} is not writable by this user"
    return None


def read_only_uri(path: Path) -> str:
    """The ``file:`` URI that opens ``path`` read-only: never created, migrated or changed.

    ``immutable=1`` on read-only storage where SQLite could not make a WAL file's ``-shm``
    (see the module docstring); ``sqlite3.OperationalError`` when that would hide changes
    still in its ``-wal`` log.
    """
    uri = path.absolute().as_uri()
    shm = Path(f"{path}-shm")
    if not _is_wal_file(path) or shm.exists() or os.access(path.parent, os.W_OK):
        return f"{uri}?mode=ro"
    wal = Path(f"{path}-wal")
    if wal.exists() and wal.stat().st_size > 0:
        raise sqlite3.OperationalError(
            f"{path} is a WAL database on storage that cannot be written, and its {wal.name} "
            f"holds changes that need {shm.name}, which is missing: copy {shm.name} beside it "
            "too, or checkpoint the database before making it read-only"
        )
    return f"{uri}?immutable=1"


__all__ = ["cannot_write", "read_only_uri"]
