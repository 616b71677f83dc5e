"""A real LangGraph Agent Server (``langgraph dev``, the in-memory runtime) in a subprocess.

The server needs ``langgraph-cli[inmem]`` (pyproject's ``agent-server`` extra, part of
``dev``). The Python that runs it is, in order: ``$RUNSTORE_AGENT_SERVER_PYTHON``; this
interpreter when it has the server packages; else a venv built once in the user's cache
directory from PyPI, layered on this interpreter's site-packages so that it adds only what
the server needs and changes nothing installed here. When none can be had the tests skip,
unless ``RUNSTORE_REQUIRE_AGENT_SERVER=1`` (set by scripts/test.sh), which makes it a failure.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.util
import os
import re
import shutil
import signal
import site
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PYTHON_ENV_VAR = "RUNSTORE_AGENT_SERVER_PYTHON"
REQUIRE_ENV_VAR = "RUNSTORE_REQUIRE_AGENT_SERVER"
#: seconds the server may take to answer /ok (imports and the checkpointer's migrations)
START_TIMEOUT = 90.0
BUILD_TIMEOUT = 600


def unavailable(reason: str) -> None:
    if os.environ.get(REQUIRE_ENV_VAR) == "1":
        pytest.fail(f"{REQUIRE_ENV_VAR}=1 but {reason}")
    pytest.skip(reason)


def server_requirements() -> list[str]:
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return list(project["optional-dependencies"]["agent-server"])


def _has_server_packages() -> bool:
    return all(importlib.util.find_spec(name) for name in ("langgraph_api", "langgraph_cli"))


def _layered_venv(requirements: list[str]) -> Path:
    """The cached venv's python, built under a file lock when missing."""
    base = site.getsitepackages()
    key = hashlib.sha256("\n".join([sys.prefix, *base, *requirements]).encode()).hexdigest()[:12]
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    version = f"{sys.version_info[0]}{sys.version_info[1]}"
    venv = cache / "langgraph-runstore" / f"agent-server-py{version}-{key}"
    python = venv / "bin" / "python"
    venv.parent.mkdir(parents=True, exist_ok=True)
    with open(venv.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if python.exists():
            return python
        building = venv.with_suffix(".building")
        shutil.rmtree(building, ignore_errors=True)
        subprocess.run(
            [sys._base_executable, "-m", "venv", str(building)],  # type: ignore[attr-defined]
            check=True,
            capture_output=True,
            timeout=BUILD_TIMEOUT,
        )
        (site_dir,) = (building / "lib").glob("python*/site-packages")
        (site_dir / "_runstore_base.pth").write_text("\n".join(base) + "\n")
        done = subprocess.run(
            [str(building / "bin" / "python"), "-m", "pip", "install", "-q", *requirements],
            capture_output=True,
            text=True,
            timeout=BUILD_TIMEOUT,
        )
        if done.returncode != 0:
            shutil.rmtree(building, ignore_errors=True)
            raise RuntimeError(f"pip install {requirements} failed:\n{done.stderr[-3000:]}")
        building.rename(venv)
    return python


def server_python() -> str:
    """The interpreter that runs the server (see the module docstring); skips or fails."""
    if sys.version_info < (3, 11):
        unavailable("langgraph-api needs Python 3.11 or newer")
    if explicit := os.environ.get(PYTHON_ENV_VAR):
        return explicit
    if _has_server_packages():
        return sys.executable
    try:
        return str(_layered_venv(server_requirements()))
    except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
        unavailable(f"cannot install the Agent Server's packages: {exc}")
    raise AssertionError("unreachable")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class AgentServer:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def _wait_until_up(process: subprocess.Popen[bytes], log: Path) -> str:
    """The server's URL once /ok answers; it moves to another port when its own is taken,
    so the URL is read from its banner."""
    deadline = time.monotonic() + START_TIMEOUT
    url = None
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited ({process.returncode}):\n{log.read_text()}")
        if url is None:
            banner = log.read_text(errors="replace")
            found = re.search(r"API: \S*?(http://127\.0\.0\.1:\d+)", banner)
            url = found.group(1) if found else None
        if url is not None:
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(f"{url}/ok", timeout=2) as response,
            ):
                if response.status == 200:
                    return url
        time.sleep(0.1)  # polling a subprocess's readiness: there is nothing to wait on
    raise RuntimeError(f"the server did not answer in {START_TIMEOUT} s:\n{log.read_text()}")


@contextlib.contextmanager
def agent_server(config: Path, *, cwd: Path, env: dict[str, str]) -> Iterator[AgentServer]:
    """Run ``langgraph dev`` on ``config`` in ``cwd``; killed (its whole group) on exit."""
    python = server_python()
    log = cwd / "server.log"
    full_env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("LANGSMITH_", "LANGCHAIN_", "OPENAI_", "ANTHROPIC_"))
        and key != "LANGGRAPH_RUNSTORE_URL"  # the test says where the runs go, or leaves it
    }
    full_env.update(
        {
            # the repository's package, whichever interpreter runs the server
            "PYTHONPATH": os.pathsep.join([str(ROOT), full_env.get("PYTHONPATH", "")]),
            # offline: no analytics, no version check against PyPI, no tracing
            "LANGGRAPH_CLI_NO_ANALYTICS": "1",
            "LANGGRAPH_NO_VERSION_CHECK": "true",
            "LANGSMITH_TRACING": "false",
            **env,
        }
    )
    command = [
        python,
        "-m",
        "langgraph_cli",
        "dev",
        "--no-browser",
        "--no-reload",
        "--host",
        "127.0.0.1",
        "--port",
        str(free_port()),
        "--config",
        str(config),
    ]
    with open(log, "wb") as out:
        process = subprocess.Popen(
            command,
            cwd=cwd,
            env=full_env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        url = _wait_until_up(process, log)
        yield AgentServer(url, process, log)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=15)
