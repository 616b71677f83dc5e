"""Database plumbing shared by the run store and the checkpointer: engine, schema, setup."""

from langgraph_runstore.db.engine import (
    DEFAULT_URL,
    URL_ENV_VAR,
    create_engine,
    default_url,
    install_sqlite_pragmas,
    normalize_url,
)
from langgraph_runstore.db.migrations import MIGRATIONS, Migration, latest_version, setup
from langgraph_runstore.db.urls import SUPPORTED_DRIVERS

__all__ = [
    "DEFAULT_URL",
    "MIGRATIONS",
    "SUPPORTED_DRIVERS",
    "URL_ENV_VAR",
    "Migration",
    "create_engine",
    "default_url",
    "install_sqlite_pragmas",
    "latest_version",
    "normalize_url",
    "setup",
]
