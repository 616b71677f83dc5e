"""Real faults for tests: a private PostgreSQL server that a test may stop and start, a
small full filesystem, and a second SQLite connection holding the write lock."""

from __future__ import annotations

import os
import shutil
import socket
import sqlite3
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PG_SCRIPT = ROOT / "scripts" / "pg.sh"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PrivateServer:
    """A PostgreSQL cluster of this test's own (scripts/pg.sh in another directory and port)."""

    def __init__(self) -> None:
        parent = Path(tempfile.mkdtemp(prefix="runstore-pg-"))
        parent.chmod(0o755)  # the server runs as the postgres user
        self.dir = parent / "data"
        self.port = _free_port()
        self.env = {
            **os.environ,
            "RUNSTORE_PG_DIR": str(self.dir),
            "RUNSTORE_PG_PORT": str(self.port),
        }
        self.url = ""

    def start(self) -> str:
        """Create and start the cluster the first time; start it again (data kept) after."""
        if self.url:
            options = f"-h 127.0.0.1 -p {self.port} -k {self.dir} -c fsync=off"
            self._pg_ctl("start", "-w", "-l", str(self.dir / "server.log"), "-o", options)
            return self.url
        out = subprocess.run(
            ["bash", str(PG_SCRIPT), "start"],
            env=self.env,
            check=True,
            capture_output=True,
            text=True,
        )
        self.url = out.stdout.strip().splitlines()[-1]
        return self.url

    def stop(self) -> None:
        """Stop the server (fast shutdown: open connections are cut)."""
        self._pg_ctl("stop", "-m", "fast", "-w")

    def reload(self) -> None:
        """Make the server read its configuration files again (pg_hba.conf ...)."""
        self._pg_ctl("reload")

    def _pg_ctl(self, *args: str) -> None:
        pg_ctl = next(iter(sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))), None)
        command = [str(pg_ctl or "pg_ctl"), "-D", str(self.dir), *args]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=False, capture_output=True)

    def remove(self) -> None:
        if self.url:
            self.stop()
        shutil.rmtree(self.dir.parent, ignore_errors=True)


@contextmanager
def private_server() -> Iterator[PrivateServer]:
    """A running PostgreSQL server of the caller's own, removed on exit (skips the test when
    PostgreSQL's server binaries are not installed)."""
    if shutil.which("pg_ctl") is None and not list(
        Path("/usr/lib/postgresql").glob("*/bin/pg_ctl")
    ):
        pytest.skip("PostgreSQL's server binaries are not installed")
    server = PrivateServer()
    server.start()
    try:
        yield server
    finally:
        server.remove()


@pytest.fixture
def private_pg() -> Iterator[PrivateServer]:
    """A running PostgreSQL server only this test uses (root or the postgres tools needed)."""
    with private_server() as server:
        yield server


@contextmanager
def small_filesystem(size: str = "4m") -> Iterator[Path]:
    """A tmpfs of ``size`` mounted for the test (root only), unmounted afterwards."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    mount = Path(tempfile.mkdtemp(prefix="runstore-full-"))
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        mount.rmdir()
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)
        mount.rmdir()


def fill(directory: Path) -> Path:
    """Write a file into ``directory`` until its filesystem is full; return the file."""
    filler = directory / f"filler-{uuid.uuid4().hex[:6]}"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        for size in (65536, 4096, 512, 1):  # big blocks, then whatever still fits
            block = b"\0" * size
            try:
                while True:
                    os.write(fd, block)
            except OSError:
                pass
    finally:
        os.close(fd)
    return filler


def hold_write_lock(path: Path) -> sqlite3.Connection:
    """A second connection that holds the SQLite file's write lock until it rolls back."""
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    return blocker
