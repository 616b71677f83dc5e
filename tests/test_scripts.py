"""scripts/test.sh: each run starts a PostgreSQL server of its own and stops only that one, so
two runs at once on one machine (and the server the suite itself runs on) survive each
other."""

from __future__ import annotations

import glob
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psycopg
import pytest

ROOT = Path(__file__).resolve().parent.parent
VENV = Path(sys.executable).parent.parent

# The sample suite each run executes. Run "a" signals that its server is up, waits until
# run "b" has finished (and stopped its own server), then checks its server still answers.
SAMPLE = textwrap.dedent(
    """
    import os, time
    from pathlib import Path

    import psycopg

    def answers(url):
        with psycopg.connect(url.replace("+asyncpg", ""), connect_timeout=5) as conn:
            return conn.execute("SELECT 1").fetchone()[0] == 1

    def data_directory(url):
        with psycopg.connect(url.replace("+asyncpg", ""), connect_timeout=5) as conn:
            return conn.execute("SHOW data_directory").fetchone()[0]

    def wait_for(path):
        deadline = time.monotonic() + 120
        while not path.exists():
            assert time.monotonic() < deadline, f"{path} never appeared"
            time.sleep(0.05)

    def test_own_server():
        url = os.environ["RUNSTORE_TEST_PG_URL"]
        meeting = Path(os.environ["MEETING"])
        me = os.environ["WHO"]
        assert answers(url)
        (meeting / f"{me}.dir").write_text(data_directory(url))
        (meeting / f"{me}.url").write_text(url)
        if me == "a":
            wait_for(meeting / "b.exited")
        else:
            wait_for(meeting / "a.url")
        assert answers(url)
    """
)


def _answers(url: str) -> bool:
    try:
        with psycopg.connect(url.replace("+asyncpg", ""), connect_timeout=5) as conn:
            row = conn.execute("SELECT 1").fetchone()
            return row is not None and row[0] == 1
    except psycopg.OperationalError:
        return False


@pytest.mark.postgres
@pytest.mark.timeout(300)
def test_two_test_runs_at_once_do_not_hurt_each_other(tmp_path: Path) -> None:
    if not glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"):
        pytest.skip("Debian's postgresql is not installed (scripts/test.sh installs it as root)")
    shared = os.environ.get("RUNSTORE_TEST_PG_URL")
    sample = tmp_path / "test_sample.py"
    sample.write_text(SAMPLE)
    runs: dict[str, subprocess.Popen[str]] = {}
    for who in ("a", "b"):
        env = {
            **os.environ,
            "VENV": str(VENV),
            "MEETING": str(tmp_path),
            "WHO": who,
        }
        env.pop("RUNSTORE_TEST_PG_URL", None)
        runs[who] = subprocess.Popen(
            ["bash", str(ROOT / "scripts" / "test.sh"), str(sample)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
    try:
        out_b, _ = runs["b"].communicate(timeout=240)
        assert runs["b"].returncode == 0, out_b
        (tmp_path / "b.exited").write_text("")
        out_a, _ = runs["a"].communicate(timeout=240)
        assert runs["a"].returncode == 0, out_a
    finally:
        for run in runs.values():
            if run.poll() is None:
                run.kill()
                run.communicate()
    url_a, url_b = ((tmp_path / f"{who}.url").read_text() for who in ("a", "b"))
    assert url_a != url_b
    # both servers are gone, and so are their directories; the suite's own server lives on
    deadline = time.monotonic() + 10
    while (_answers(url_a) or _answers(url_b)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _answers(url_a) and not _answers(url_b)
    for who in ("a", "b"):
        data = Path((tmp_path / f"{who}.dir").read_text())
        assert not data.exists() and not data.parent.exists(), data
    if shared:
        assert _answers(shared)
