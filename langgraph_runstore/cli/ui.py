"""``langgraph-runstore ui``: serve the local web page over the database (the ``[ui]`` extra).

It binds to loopback unless told otherwise: the page has no authentication, so another
``--host`` needs ``--allow-remote`` and prints a warning. Cancelling from the page needs
``--allow-cancel`` (the database is then opened for writing); without it the server only
reads. Starlette and uvicorn load only when the command runs.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import webbrowser

import click

from langgraph_runstore.cli.base import EXIT_USAGE, CliError, cli, db_option, resolve_db

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
EXTRA_HINT = "pip install 'langgraph-runstore[ui]'"


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine only (127.0.0.0/8, ::1, localhost)."""
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on host:port (port 0: a free one), or CliError saying why not."""
    try:
        infos = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise CliError(f"cannot serve on {host}: {exc.strerror}", EXIT_USAGE) from None
    family, kind, proto, _, address = infos[0]
    # the protocol number matters: asyncio turns Nagle off (TCP_NODELAY) only on sockets
    # that say IPPROTO_TCP, and with Nagle on, small pages wait 40 ms for a delayed ACK
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise CliError(f"cannot serve on {host}:{port}: {exc.strerror or exc}") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def page_url(sock: socket.socket, host: str) -> str:
    port = sock.getsockname()[1]
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else ("[::1]" if host == "::" else host)
    if ":" in shown and not shown.startswith("["):
        shown = f"[{shown}]"
    return f"http://{shown}:{port}/runs"


@cli.command("ui")
@db_option
@click.option("--host", default=DEFAULT_HOST, show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=DEFAULT_PORT,
    show_default=True,
    help="Port to listen on (0: any free port; the URL is printed).",
)
@click.option("--open", "open_browser", is_flag=True, help="Open the page in a web browser.")
@click.option(
    "--allow-cancel",
    is_flag=True,
    help="Show a cancel button on active runs (opens the database for writing).",
)
@click.option(
    "--allow-remote",
    is_flag=True,
    help="Allow a --host other than loopback: anyone who reaches it reads every run.",
)
@click.pass_context
def ui(
    ctx: click.Context,
    db: str | None,
    host: str,
    port: int,
    open_browser: bool,
    allow_cancel: bool,
    allow_remote: bool,
) -> None:
    """Serve a local web page over the runs: filters, run details, threads, usage charts."""
    loopback = is_loopback(host)
    if not loopback and not allow_remote:
        raise click.BadParameter(
            f"{host!r} is not a loopback address and the page has no authentication: "
            "pass --allow-remote to serve it to the network anyway",
            param_hint="'--host'",
        )
    try:
        import uvicorn

        from langgraph_runstore.ui import create_app
        from langgraph_runstore.ui.app import LOOPBACK_HOSTS
        from langgraph_runstore.ui.source import shown_database
    except ImportError as exc:
        raise CliError(
            f"the ui needs the [ui] extra ({exc.name} is missing): {EXTRA_HINT}"
        ) from None

    database = resolve_db(ctx, db)
    sock = bind(host, port)
    url = page_url(sock, host)
    hosts = [*LOOPBACK_HOSTS, host] if loopback else None
    app = create_app(database, allow_cancel=allow_cancel, allowed_hosts=hosts)
    if not loopback:
        can = "read every run and cancel runs" if allow_cancel else "read every run"
        click.echo(
            f"warning: serving on {host} with no authentication: anyone who can reach "
            f"port {sock.getsockname()[1]} can {can}",
            err=True,
        )
    click.echo(f"serving {shown_database(database)} at {url} (Ctrl+C to stop)")
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")
    server = uvicorn.Server(config)
    if open_browser:
        threading.Timer(0.5, webbrowser.open, args=(url,)).start()
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()


__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "bind", "is_loopback", "page_url", "ui"]
