"""Async fixtures that run on the loop of the test using them, whichever plugin runs that
test: pytest-asyncio (strict or auto mode) or anyio. ``async_fixture`` marks one; the plugin's
``pytest_fixture_setup`` hook calls ``route`` to hand it to the right plugin per test."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import pytest

F = TypeVar("F", bound=Callable[..., Any])

MARK = "_runstore_async_fixture"


def async_fixture(function: F | None = None, **fixture_options: Any) -> Any:
    """``@pytest.fixture`` for an async fixture that runs on the loop of the test that uses
    it, whichever plugin runs that test: pytest-asyncio (strict or auto mode; its loop
    scope follows the test's) or anyio (``@pytest.mark.anyio``). ``fixture_options`` are
    pytest.fixture's. Needs this plugin loaded (it is, once the package is installed)."""

    def decorate(fn: F) -> Any:
        setattr(fn, MARK, True)
        return pytest.fixture(fn, **fixture_options)

    return decorate(function) if function is not None else decorate


def route(func: Any, request: pytest.FixtureRequest) -> None:
    """Hand an ``async_fixture`` to the plugin that runs the requesting test."""
    config = request.config
    has_asyncio = config.pluginmanager.has_plugin("asyncio")
    mode = _asyncio_mode(config) if has_asyncio else None
    if "anyio_backend" in request.fixturenames:
        if mode == "auto":
            pytest.fail(
                f"fixture {request.fixturename!r} of anyio test {request.node.name!r}: "
                "pytest-asyncio's auto mode runs every async fixture on its own loop, not on "
                "the one anyio runs the test on. Mark the test pytest.mark.asyncio instead, "
                "or set asyncio_mode = strict",
                pytrace=False,
            )
        func._force_asyncio_fixture = False  # pytest-asyncio (strict) leaves it to anyio
        return
    if not has_asyncio:
        pytest.fail(
            f"fixture {request.fixturename!r} is async: run {request.node.name!r} with "
            "pytest-asyncio (pytest.mark.asyncio, or asyncio_mode = auto) or anyio "
            "(pytest.mark.anyio)",
            pytrace=False,
        )
    func._force_asyncio_fixture = True  # pytest-asyncio's flag for its own fixtures
    func._loop_scope = _test_loop_scope(request)


def _asyncio_mode(config: pytest.Config) -> str:
    return str(config.getoption("asyncio_mode", None) or config.getini("asyncio_mode"))


def _test_loop_scope(request: pytest.FixtureRequest) -> str:
    """The scope of the loop pytest-asyncio runs the requesting test on."""
    marker = request.node.get_closest_marker("asyncio")
    scope = marker.kwargs.get("loop_scope") if marker is not None else None
    if not scope:
        try:
            scope = request.config.getini("asyncio_default_test_loop_scope")
        except ValueError:  # an older pytest-asyncio: tests run on a function-scoped loop
            scope = None
    return str(scope or "function")


__all__ = ["MARK", "async_fixture", "route"]
