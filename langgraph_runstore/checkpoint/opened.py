"""OpenedSaver: what ``SQLAlchemySaver.from_url`` returns, a context manager for both
``async with`` (in async code) and ``with`` (in a script, like
``SqliteSaver.from_conn_string``). On entry the saver's schema is set up; on exit the saver
closes and its engine is disposed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, Protocol, TypeVar


class Openable(Protocol):
    """What OpenedSaver needs of the saver it opens."""

    @property
    def engine(self) -> Any: ...

    async def setup(self) -> None: ...

    async def aclose(self) -> None: ...

    def setup_sync(self) -> None: ...

    def close(self, *, dispose_engine: bool = False) -> None: ...


SaverT = TypeVar("SaverT", bound=Openable)


class OpenedSaver(Generic[SaverT]):
    """A saver made by ``make()`` on entry and closed, with its engine, on exit."""

    def __init__(self, make: Callable[[], SaverT]) -> None:
        self._make = make
        self._saver: SaverT | None = None

    async def __aenter__(self) -> SaverT:
        saver = self._saver = self._make()
        try:
            await saver.setup()
        except BaseException:
            await self._aclose(saver)
            raise
        return saver

    async def __aexit__(self, *exc_info: object) -> None:
        saver, self._saver = self._saver, None
        if saver is not None:
            await self._aclose(saver)

    @staticmethod
    async def _aclose(saver: SaverT) -> None:
        try:
            await saver.aclose()
        finally:
            await saver.engine.dispose()

    def __enter__(self) -> SaverT:
        saver = self._saver = self._make()
        try:
            saver.setup_sync()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return saver

    def __exit__(self, *exc_info: object) -> None:
        saver, self._saver = self._saver, None
        if saver is not None:
            saver.close(dispose_engine=True)


__all__ = ["Openable", "OpenedSaver"]
