"""``langgraph-runstore ui`` as a user starts it: loopback by default, another host only
with ``--allow-remote`` and a warning, a clear line for a busy port or a missing extra,
``--open`` handing the URL to the browser, and nothing of the web stack loaded by the
other commands."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from langgraph_runstore.cli.ui import bind
from tests.cli.helpers import run_cli
from tests.ui.helpers import SCRIPT, read_line, serve


def test_the_command_is_listed(sqlite_db: Path) -> None:
    listed = run_cli("--help")
    assert listed.code == 0 and "  ui " in listed.out
    helped = run_cli("ui", "--help")
    for option in ("--host", "--port", "--open", "--allow-cancel", "--allow-remote", "--db"):
        assert option in helped.out


def test_another_host_needs_allow_remote(sqlite_db: Path) -> None:
    refused = run_cli("ui", "--db", str(sqlite_db), "--host", "0.0.0.0", "--port", "0")
    assert refused.code == 2
    assert "'0.0.0.0' is not a loopback address and the page has no authentication" in (
        refused.error_line
    )
    assert "--allow-remote" in refused.error_line


def test_allow_remote_warns_and_serves_every_host_name(sqlite_db: Path) -> None:
    args = ["--db", str(sqlite_db), "--host", "0.0.0.0", "--port", "0", "--allow-remote"]
    proc = subprocess.Popen(
        [str(SCRIPT), "ui", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = read_line(proc, timeout=60)
        base = line.split(" at ", 1)[1].split(" ", 1)[0].removesuffix("/runs")
        assert base.startswith("http://127.0.0.1:")
        answer = httpx.get(f"{base}/runs", headers={"host": "my-laptop.lan"}, timeout=10)
        assert answer.status_code == 200
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=10)
    assert err.startswith(
        "warning: serving on 0.0.0.0 with no authentication: anyone who can reach port "
    )
    assert "can read every run" in err and "cancel" not in err.splitlines()[0]


def test_a_loopback_server_answers_only_to_its_own_names(sqlite_db: Path) -> None:
    with serve(str(sqlite_db)) as base:
        port = base.rsplit(":", 1)[1]
        assert httpx.get(f"{base}/runs", timeout=10).status_code == 200
        local = httpx.get(f"{base}/runs", headers={"host": f"localhost:{port}"}, timeout=10)
        assert local.status_code == 200
        rebound = httpx.get(f"{base}/runs", headers={"host": f"evil.example:{port}"}, timeout=10)
        assert rebound.status_code == 421


def test_a_busy_port_is_one_line(sqlite_db: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        busy = run_cli("ui", "--db", str(sqlite_db), "--port", str(port))
    assert busy.code == 1
    assert busy.error_line == f"error: cannot serve on 127.0.0.1:{port}: Address already in use"


def test_without_the_extra_it_says_what_to_install(sqlite_db: Path, tmp_path: Path) -> None:
    # a starlette that cannot be imported, ahead of the installed one
    shadow = tmp_path / "shadow" / "starlette"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'starlette'\", name='starlette')\n"
    )
    path = os.pathsep.join(p for p in (str(shadow.parent), os.environ.get("PYTHONPATH")) if p)
    missing = run_cli("ui", "--db", str(sqlite_db), env={"PYTHONPATH": path})
    assert missing.code == 1
    assert missing.error_line == (
        "error: the ui needs the [ui] extra (starlette is missing): "
        "pip install 'langgraph-runstore[ui]'"
    )
    # the other commands do without it
    listed = run_cli(
        "runs", "list", "--limit", "1", "--db", str(sqlite_db), env={"PYTHONPATH": path}
    )
    assert listed.code == 0, listed.err


def test_the_other_commands_load_no_web_stack() -> None:
    probe = (
        "import sys, langgraph_runstore.cli; "
        "print(sorted(m for m in ('starlette', 'uvicorn', 'jinja2') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_open_hands_the_page_to_the_browser(sqlite_db: Path, tmp_path: Path) -> None:
    opened = tmp_path / "opened.txt"
    browser = tmp_path / "browser.py"
    browser.write_text(
        f"import sys, pathlib; pathlib.Path({str(opened)!r}).write_text(sys.argv[1])\n"
    )
    env = {"BROWSER": f"{sys.executable} {browser} %s"}
    with serve(str(sqlite_db), "--open", env=env) as base:
        deadline = time.monotonic() + 30
        while not opened.exists() and time.monotonic() < deadline:
            time.sleep(0.05)  # the browser is another process: wait for its file
        assert opened.read_text() == f"{base}/runs"


def test_the_listening_socket_is_tcp_so_small_pages_are_not_delayed() -> None:
    # asyncio sets TCP_NODELAY only on sockets whose protocol says TCP; without it a small
    # page waits for a delayed ACK (40 ms on Linux)
    with bind("127.0.0.1", 0) as sock:
        assert sock.proto == socket.IPPROTO_TCP
        assert sock.getsockname()[0] == "127.0.0.1" and sock.getsockname()[1] > 0
