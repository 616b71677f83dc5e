"""The first connection to a database: a server that cannot be reached, that refuses the
connection or the login, or whose SSL set-up fails is one DatabaseConnectionError line
naming the URL (password hidden) and the driver's reason, never a driver traceback."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from langgraph_runstore.errors import DatabaseConnectionError, RunStoreError

if TYPE_CHECKING:
    from sqlalchemy.engine import URL
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine


def connection_error(url: URL, exc: BaseException) -> DatabaseConnectionError:
    """``exc``, raised while connecting to ``url``, as one line."""
    cause = getattr(exc, "orig", None) or exc  # SQLAlchemy's wrapper holds the driver's error
    text = str(cause).strip()
    reason = text.splitlines()[0].strip() if text else ""
    if not reason or reason == "None":
        reason = type(cause).__name__
    shown = url.render_as_string(hide_password=True)
    return DatabaseConnectionError(f"cannot open database {shown}: {reason}")


@asynccontextmanager
async def first_connection(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """``engine.connect()``, its failure to connect raised as DatabaseConnectionError."""
    try:
        conn = await engine.connect()
    except RunStoreError:  # the package's own refusal (a foreign file ...) says it already
        raise
    except Exception as exc:
        raise connection_error(engine.url, exc) from exc
    try:
        yield conn
    finally:
        await conn.close()


__all__ = ["connection_error", "first_connection"]
