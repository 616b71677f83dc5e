"""The package's exceptions: one root, every error carrying the run or thread it concerns.

::

    RunStoreError
    ├── ConflictError              a thread already has an active run (multitask "reject")
    │   ├── ActiveRunError         the run is still pending or running (delete)
    │   └── IdempotencyKeyError    the idempotency key names a run the call cannot return
    ├── RunNotFoundError           no run with that run_id (also a LookupError)
    ├── InvalidTransitionError     a status change the lifecycle forbids
    ├── InvalidInputError          a bad argument value (also a ValueError)
    │   └── UnsupportedStrategyError   an unknown multitask strategy
    ├── DatabaseConfigError        an unsupported database URL or driver (also a ValueError)
    │   └── ForeignDatabaseError   a database the package would clash with, or not SQLite at all
    ├── DatabaseConnectionError    the database cannot be reached, or refused the login
    ├── SchemaVersionError         the database was migrated by a newer package version
    ├── CheckpointError            a checkpoint that cannot be read or written
    │   └── PruneRefusedError      keep_latest refused a DeltaChannel thread (a NotImplementedError)
    ├── RunAlreadyInvokedError     a second graph invocation under one run_id
    └── NoWorkerError              no live worker serves the assistant a run is submitted to
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class RunStoreError(Exception):
    """Root of every error raised by langgraph_runstore."""

    def __init__(
        self, message: str, *, run_id: str | None = None, thread_id: str | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.run_id = run_id
        self.thread_id = thread_id


class ConflictError(RunStoreError):
    """The thread already has a pending or running run, and the strategy is ``reject``."""


class ActiveRunError(ConflictError):
    """The run is still pending or running, and the operation needs a finished run (such as
    ``delete``): cancel it, or wait for its end, first."""


class IdempotencyKeyError(ConflictError):
    """``idempotency_key`` already names a run that the call cannot return: a run of another
    thread or another user, or (for ``track()``) any run. ``idempotency_key`` is the key."""

    def __init__(
        self,
        message: str,
        *,
        run_id: str | None = None,
        thread_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> None:
        super().__init__(message, run_id=run_id, thread_id=thread_id)
        self.idempotency_key = idempotency_key


class RunNotFoundError(RunStoreError, LookupError):
    """No run with the given run_id exists in memory or in the store."""


class InvalidTransitionError(RunStoreError):
    """A status change that the run lifecycle does not allow (a final status never changes)."""

    def __init__(
        self,
        message: str,
        *,
        run_id: str | None = None,
        thread_id: str | None = None,
        current: Any = None,
        requested: Any = None,
    ) -> None:
        super().__init__(message, run_id=run_id, thread_id=thread_id)
        self.current = current
        self.requested = requested


class InvalidInputError(RunStoreError, ValueError):
    """An argument has a value the package cannot accept; the message names it."""


class UnsupportedStrategyError(InvalidInputError):
    """An unknown multitask strategy was requested."""


class DatabaseConfigError(RunStoreError, ValueError):
    """The database URL names a backend or driver the package does not support."""


class ForeignDatabaseError(DatabaseConfigError):
    """The database holds another application's objects under names the package's schema
    needs (``names``), or the file is not a SQLite database; nothing in it was changed."""

    def __init__(
        self,
        message: str,
        *,
        run_id: str | None = None,
        thread_id: str | None = None,
        names: tuple[str, ...] = (),
    ) -> None:
        super().__init__(message, run_id=run_id, thread_id=thread_id)
        self.names = names


class DatabaseConnectionError(RunStoreError):
    """Opening the database failed: the server cannot be reached, refused the connection
    or the login (a wrong password), or the SSL set-up failed. The message names the URL
    (without its password) and the driver's reason; ``__cause__`` is the driver's error."""


class SchemaVersionError(RunStoreError):
    """The database schema is newer than this package knows; upgrade the package."""


class CheckpointError(RunStoreError):
    """A checkpoint, blob or write could not be stored or decoded."""


class PruneRefusedError(CheckpointError, NotImplementedError):
    """``prune(strategy="keep_latest")`` refused threads it cannot prune without losing state
    (they use a DeltaChannel); nothing was deleted. ``thread_ids`` names them."""

    def __init__(
        self,
        message: str,
        *,
        run_id: str | None = None,
        thread_id: str | None = None,
        thread_ids: Sequence[str] = (),
    ) -> None:
        super().__init__(message, run_id=run_id, thread_id=thread_id)
        self.thread_ids = tuple(thread_ids)


class RunAlreadyInvokedError(RunStoreError):
    """A run_id names one graph invocation; a second one under the same run was attempted."""


class NoWorkerError(RunStoreError):
    """``submit()`` found no live worker serving the assistant: nobody would claim the run."""


__all__ = [
    "ActiveRunError",
    "CheckpointError",
    "ConflictError",
    "DatabaseConfigError",
    "DatabaseConnectionError",
    "ForeignDatabaseError",
    "IdempotencyKeyError",
    "InvalidInputError",
    "InvalidTransitionError",
    "NoWorkerError",
    "PruneRefusedError",
    "RunAlreadyInvokedError",
    "RunNotFoundError",
    "RunStoreError",
    "SchemaVersionError",
    "UnsupportedStrategyError",
]
