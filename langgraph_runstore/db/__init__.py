"""Database plumbing shared by the run store and the checkpointer: engine, schema, setup."""

from langgraph_runstore.db.engine import (
    SUPPORTED_DRIVERS,
    create_engine,
    install_sqlite_pragmas,
    normalize_url,
)
from langgraph_runstore.db.migrations import MIGRATIONS, Migration, latest_version, setup

__all__ = [
    "MIGRATIONS",
    "SUPPORTED_DRIVERS",
    "Migration",
    "create_engine",
    "install_sqlite_pragmas",
    "latest_version",
    "normalize_url",
    "setup",
]
