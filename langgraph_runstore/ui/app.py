"""The Starlette application: routes, the shared layout, error pages and the guards of a
local server with no authentication.

``create_app(db)`` serves the pages of ``pages.py`` over one database. Every failure is a
page, never a traceback: a bad query parameter 400, an unknown run or thread 404, cancel
while it is off 403, a database that is missing, foreign, older or newer 503 (with what to
run), anything else 500 with one line (the traceback goes to the log). Requests whose
``Host`` is not the server's own are refused (DNS rebinding), and so is a cancel posted
from another site's page (a cross-site form); every page forbids scripts, styles and
fonts from anywhere but the server itself.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlencode

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from langgraph_runstore.display import STATUS_COLORS
from langgraph_runstore.errors import InvalidInputError
from langgraph_runstore.manager import RunManager
from langgraph_runstore.ui import pages
from langgraph_runstore.ui.source import DatabaseProblem, StoreSource

_log = logging.getLogger("langgraph_runstore.ui")
HERE = Path(__file__).parent
#: How often a page that shows active runs asks for fresh values, ms.
DEFAULT_POLL_MS = 1500
#: The cancel form carries one short field; anything much longer is no form of this page.
MAX_FORM_BYTES = 4096
#: Host names a loopback server answers to.
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def _templates() -> Environment:
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["q"] = lambda value: quote(str(value), safe="")
    env.globals["qs"] = lambda pairs: ("?" + urlencode(pairs)) if pairs else ""
    env.globals["status_colors"] = STATUS_COLORS
    return env


class HostGuard:
    """Refuses requests whose Host header names another server (421), so that a page of
    another site whose name resolves to 127.0.0.1 cannot read this one (DNS rebinding)."""

    def __init__(self, app: ASGIApp, allowed: Sequence[str] | None) -> None:
        self.app = app
        self.allowed = None if allowed is None else {h.lower() for h in allowed}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.allowed is not None:
            host = ""
            for name, value in scope.get("headers", []):
                if name == b"host":
                    host = value.decode("latin-1")
            if _host_name(host) not in self.allowed:
                response = PlainTextResponse(
                    f"this server answers to {', '.join(sorted(self.allowed))} only", 421
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _host_name(header: str) -> str:
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:].split("]", 1)[0]
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


class UiState:
    """What every request shares: the database, the templates, the settings."""

    def __init__(self, source: StoreSource, *, allow_cancel: bool, poll_ms: int) -> None:
        self.source = source
        self.allow_cancel = allow_cancel
        self.poll_ms = poll_ms
        self.templates = _templates()

    def render(self, request: Request, page: pages.Page, status: int = 200) -> HTMLResponse:
        values = {
            "db": self.source.shown,
            "allow_cancel": self.allow_cancel,
            "poll_ms": self.poll_ms,
            "path": request.url.path,
            "nav": "",
            **page.values,
        }
        html = self.templates.get_template(page.template).render(values)
        return HTMLResponse(html, status, headers=_HEADERS)

    def error(
        self, request: Request, status: int, title: str, message: str, hint: str = ""
    ) -> HTMLResponse:
        page = pages.Page(
            "error.html",
            {"title": title, "code": status, "message": message, "hint": hint},
        )
        return self.render(request, page, status)


def _params(request: Request) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for name, value in request.query_params.multi_items():
        found.setdefault(name, []).append(value)
    return found


Handler = Callable[[Request, RunManager], Awaitable[Response | pages.Page]]


def _page(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """A route that opens the database and turns each kind of failure into its page."""

    async def endpoint(request: Request) -> Response:
        state: UiState = request.app.state.ui
        try:
            manager = await state.source.manager()
            result = await handler(request, manager)
        except InvalidInputError as exc:
            return state.error(request, 400, "Bad request", exc.message)
        except pages.PageNotFound as exc:
            return state.error(request, 404, "Not found", exc.message)
        except DatabaseProblem as exc:
            return state.error(
                request,
                503,
                "The database cannot be read",
                exc.message,
                "Fix it and reload: the server keeps trying, no restart needed.",
            )
        except Exception as exc:
            _log.exception("%s %s failed", request.method, request.url.path)
            first = (str(exc).strip().splitlines() or [""])[0]
            return state.error(
                request, 500, "This page failed", f"{type(exc).__name__}: {first}".rstrip(": ")
            )
        return result if isinstance(result, Response) else state.render(request, result)

    return endpoint


async def _runs(request: Request, manager: RunManager) -> pages.Page:
    return await pages.runs_page(manager, _params(request))


async def _run(request: Request, manager: RunManager) -> pages.Page:
    state: UiState = request.app.state.ui
    return await pages.run_page(
        manager, request.path_params["run_id"], _params(request), allow_cancel=state.allow_cancel
    )


async def _thread(request: Request, manager: RunManager) -> pages.Page:
    return await pages.thread_page(manager, request.path_params["thread_id"], _params(request))


async def _usage(request: Request, manager: RunManager) -> pages.Page:
    return await pages.usage_page(manager, _params(request))


def _same_origin(request: Request) -> bool:
    """Whether a POST comes from this server's own page. Browsers say where a request
    comes from in Sec-Fetch-Site, which a page cannot forge; older ones only send Origin.
    A request with neither is no browser's form (curl, a script): it is let through."""
    site = request.headers.get("sec-fetch-site")
    if site is not None:
        return site in ("same-origin", "none")
    origin = request.headers.get("origin")
    if origin is None:
        return True
    return origin.partition("://")[2].lower() == request.headers.get("host", "").lower()


async def _cancel(request: Request) -> Response:
    state: UiState = request.app.state.ui
    if not state.allow_cancel:
        return state.error(
            request,
            403,
            "Cancelling is off",
            "this server was started without --allow-cancel, so it changes nothing",
            "Restart it with `langgraph-runstore ui --allow-cancel` to cancel runs from here.",
        )
    if not _same_origin(request):
        return state.error(
            request, 403, "Refused", "a cancel must be sent from this server's own page"
        )
    raw = await request.body()
    if len(raw) > MAX_FORM_BYTES:
        return state.error(request, 400, "Bad request", "the cancel form is a few bytes, not this")
    body = raw.decode("utf-8", "replace")

    async def go(request: Request, manager: RunManager) -> Response:
        action = pages.cancel_action(parse_qs(body, keep_blank_values=True))
        run_id = request.path_params["run_id"]
        await pages.cancel_run(manager, run_id, action)
        return RedirectResponse(f"/runs/{quote(run_id, safe='')}", 303)

    return await _page(go)(request)


async def _root(request: Request) -> Response:
    query = request.url.query
    return RedirectResponse("/runs" + (f"?{query}" if query else ""), 307)


async def _not_found(request: Request, exc: Exception) -> Response:
    state: UiState = request.app.state.ui
    return state.error(request, 404, "Not found", f"no page at {request.url.path}")


async def _wrong_method(request: Request, exc: Exception) -> Response:
    state: UiState = request.app.state.ui
    return state.error(
        request, 405, "Method not allowed", f"{request.method} is not served at {request.url.path}"
    )


def create_app(
    db: str | None = None,
    *,
    allow_cancel: bool = False,
    allowed_hosts: Sequence[str] | None = None,
    poll_ms: int = DEFAULT_POLL_MS,
) -> ASGIApp:
    """The web app over ``db`` (a URL or a SQLite file, as ``--db``; None: the CLI's default).

    ``allow_cancel`` adds the cancel button to active runs (and opens the database for
    writing); ``allowed_hosts`` are the Host names it answers to (None: any); ``poll_ms``
    is how often a page with active runs refreshes them.
    """
    if isinstance(poll_ms, bool) or not isinstance(poll_ms, int) or poll_ms < 100:
        raise InvalidInputError(f"poll_ms must be an int of at least 100, got {poll_ms!r}")
    state = UiState(
        StoreSource(db, writable=allow_cancel), allow_cancel=allow_cancel, poll_ms=poll_ms
    )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await state.source.aclose()

    routes = [
        Route("/", _root),
        Route("/runs", _page(_runs)),
        Route("/runs/{run_id:path}/cancel", _cancel, methods=["POST"]),
        Route("/runs/{run_id:path}", _page(_run)),
        Route("/threads/{thread_id:path}", _page(_thread)),
        Route("/usage", _page(_usage)),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    handlers: dict[Any, Any] = {404: _not_found, 405: _wrong_method}
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers=handlers)
    app.state.ui = state
    return HostGuard(app, allowed_hosts)


__all__ = ["CSP", "DEFAULT_POLL_MS", "LOOPBACK_HOSTS", "HostGuard", "UiState", "create_app"]
