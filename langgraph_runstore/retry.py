"""How store writes are retried: the policy, which errors are transient (worth another
attempt), and the retry loop itself (tenacity)."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from sqlalchemy.exc import DBAPIError
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential

from langgraph_runstore.db.pg_connection import is_psycopg_connection_error
from langgraph_runstore.errors import InvalidInputError

T = TypeVar("T")

_TRANSIENT_SQLSTATES = frozenset({"40001", "40P01"})
# class 08: connection exceptions; 57P01-57P03: the server is shutting down or restarting
_CONNECTION_SQLSTATE_PREFIXES = ("08", "57P0")
# asyncpg's errors for a connection that closed under us (matched by name: asyncpg is
# optional). InternalClientError is what asyncpg raises on a connection whose protocol
# state a cut left inconsistent ("cannot switch to state 12"): a fresh connection succeeds.
_LOST_CONNECTION_ERRORS = frozenset(
    {"ConnectionDoesNotExistError", "InterfaceError", "InternalClientError"}
)


@dataclass(frozen=True)
class PersistenceRetryPolicy:
    """How store writes are retried on transient errors (locks, serialisation failures).

    Attempt ``n`` waits ``initial_delay * multiplier ** (n - 1)`` seconds, capped at
    ``max_delay``. Permanent errors are never retried.
    """

    max_attempts: int = 5
    initial_delay: float = 0.05
    max_delay: float = 2.0
    multiplier: float = 2.0

    def __post_init__(self) -> None:
        if not isinstance(self.max_attempts, int) or self.max_attempts < 1:
            raise InvalidInputError(f"max_attempts must be an int >= 1, got {self.max_attempts!r}")
        for name in ("initial_delay", "max_delay"):
            if getattr(self, name) < 0:
                raise InvalidInputError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        if self.multiplier < 1:
            raise InvalidInputError(f"multiplier must be >= 1, got {self.multiplier!r}")


def is_transient_error(exc: BaseException) -> bool:
    """True for errors worth retrying: a locked SQLite file, SQLSTATE 40001/40P01, a lost
    connection (asyncpg's or psycopg's). Walks SQLAlchemy's ``orig`` and the ``__cause__``
    chain."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, DBAPIError) and current.connection_invalidated:
            return True
        sqlstate = getattr(current, "sqlstate", None) or getattr(current, "pgcode", None)
        if isinstance(sqlstate, str) and (
            sqlstate in _TRANSIENT_SQLSTATES or sqlstate.startswith(_CONNECTION_SQLSTATE_PREFIXES)
        ):
            return True
        if type(current).__name__ in _LOST_CONNECTION_ERRORS:
            return True
        if is_psycopg_connection_error(current):
            return True
        if isinstance(current, sqlite3.OperationalError):
            message = str(current).lower()
            if "locked" in message or "busy" in message:
                return True
        if isinstance(current, (ConnectionError, TimeoutError)):
            return True
        current = getattr(current, "orig", None) or current.__cause__
    return False


async def retry_transient(
    call: Callable[[], Awaitable[T]], policy: PersistenceRetryPolicy, log: logging.Logger
) -> T:
    """``await call()``, again on transient errors as ``policy`` says; other errors raise."""
    # the first attempt runs bare: building a tenacity controller per store write would
    # cost more than the write itself, and nearly every write succeeds first time
    try:
        return await call()
    except Exception as exc:
        if policy.max_attempts == 1 or not is_transient_error(exc):
            raise
        log.debug("Transient store error, retrying: %s", exc)
    await asyncio.sleep(min(policy.initial_delay, policy.max_delay))
    retrying = AsyncRetrying(
        stop=stop_after_attempt(policy.max_attempts - 1),
        # continues the series: initial_delay * multiplier, * multiplier ** 2, ...
        wait=wait_exponential(
            multiplier=policy.initial_delay * policy.multiplier,
            max=policy.max_delay,
            exp_base=policy.multiplier,
        ),
        retry=retry_if_exception(is_transient_error),
        reraise=True,
    )
    async for attempt in retrying:
        with attempt:
            return await call()
    raise AssertionError("unreachable: tenacity reraises the last error")  # pragma: no cover


__all__ = ["PersistenceRetryPolicy", "is_transient_error", "retry_transient"]
