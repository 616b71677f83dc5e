"""Coroutines of the async API that explain themselves when sync code forgets to await
them: ``record = manager.get(run_id)`` in a script gets a message that names
``SyncRunManager`` instead of a bare coroutine.

``@async_api`` wraps a public coroutine method. The call returns an ``ApiCoroutine``: a
``collections.abc.Coroutine`` that ``await``, ``asyncio.create_task`` and ``gather`` take
as they take the coroutine inside it. Using the result as the value it was meant to produce
(an attribute, truth, iteration) raises a TypeError or AttributeError naming both the
``await`` and the sync class; one that is never awaited warns the same way.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import warnings
from collections.abc import Callable, Coroutine, Generator
from typing import Any, NoReturn, ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")


def _hint(owner: str, name: str) -> str:
    return (
        f"{owner}.{name}() is a coroutine: use `await manager.{name}(...)` in async code, "
        f"or SyncRunManager, whose {name}() returns the result, in code with no event loop"
    )


class NotAwaitedError(TypeError, AttributeError):
    """A coroutine of the async API was used as if it were its result."""


class ApiCoroutine(Coroutine[Any, Any, T]):
    """The coroutine of one async API call (see the module docstring)."""

    __slots__ = ("_coro", "_hint", "_used")

    def __init__(self, coro: Coroutine[Any, Any, T], hint: str) -> None:
        self._coro = coro
        self._hint = hint
        self._used = False

    def __await__(self) -> Generator[Any, None, T]:
        self._used = True
        return self._coro.__await__()

    def send(self, value: Any) -> Any:
        self._used = True
        return self._coro.send(value)

    def throw(self, *args: Any) -> Any:
        self._used = True
        return self._coro.throw(*args)

    def close(self) -> None:
        self._used = True
        self._coro.close()

    # what asyncio reads of a coroutine to name a task and show where it is
    @property
    def cr_code(self) -> Any:
        return self._coro.cr_code  # type: ignore[attr-defined]

    @property
    def cr_frame(self) -> Any:
        return self._coro.cr_frame  # type: ignore[attr-defined]

    @property
    def cr_running(self) -> bool:
        return bool(self._coro.cr_running)  # type: ignore[attr-defined]

    @property
    def cr_await(self) -> Any:
        return self._coro.cr_await  # type: ignore[attr-defined]

    def _misused(self) -> NoReturn:
        self.close()
        raise NotAwaitedError(self._hint)

    def __getattr__(self, name: str) -> Any:
        if name in ("__name__", "__qualname__"):  # how asyncio names the task
            return getattr(self._coro, name)
        if name.startswith(("_", "cr_", "gi_", "ag_")):  # probes of what kind of object this is
            raise AttributeError(name)
        self._misused()

    def __bool__(self) -> bool:
        self._misused()

    def __iter__(self) -> NoReturn:
        self._misused()

    def __len__(self) -> int:
        self._misused()

    def __getitem__(self, key: Any) -> NoReturn:
        self._misused()

    def __repr__(self) -> str:
        return f"<ApiCoroutine {self._coro!r}>"

    def __del__(self) -> None:
        if not self._used:
            self._coro.close()  # silences Python's own "never awaited", which says less
            warnings.warn(self._hint + " (it was never awaited)", RuntimeWarning, stacklevel=2)


def async_api(
    owner: str,
) -> Callable[[Callable[P, Coroutine[Any, Any, T]]], Callable[P, Coroutine[Any, Any, T]]]:
    """Wrap a coroutine method of class ``owner`` so that its calls return ApiCoroutines."""

    def wrap(method: Callable[P, Coroutine[Any, Any, T]]) -> Callable[P, Coroutine[Any, Any, T]]:
        hint = _hint(owner, method.__name__)

        @functools.wraps(method)
        def call(*args: P.args, **kwargs: P.kwargs) -> Coroutine[Any, Any, T]:
            return ApiCoroutine(method(*args, **kwargs), hint)

        # still a coroutine function to inspect (Python 3.12+) and to asyncio
        mark = getattr(inspect, "markcoroutinefunction", None)
        if mark is not None:
            return mark(call)  # type: ignore[no-any-return]
        call._is_coroutine = asyncio.coroutines._is_coroutine  # type: ignore[attr-defined]
        return call

    return wrap


__all__ = ["ApiCoroutine", "NotAwaitedError", "async_api"]
