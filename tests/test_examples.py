"""Every example runs as a user runs it (a fresh interpreter) and prints what it promises.

Each one runs in a subprocess whose working directory is an empty temporary folder, with
no API key (so the fake chat models answer) and ``LANGGRAPH_RUNSTORE_URL`` pointing at a
test database: nothing is written into the repository, and the folder must stay empty.
The assertions read the printed statuses and numbers, not just the exit code.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.backends import PG_BACKENDS

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def run_example(
    args: list[str], cwd: Path, *, url: str | None = None, stdin: str | None = None
) -> str:
    """Run ``python *args`` in ``cwd`` and return its stdout; fail with stderr if it fails."""
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY")}
    env.pop("LANGGRAPH_RUNSTORE_URL", None)
    if url is not None:
        env["LANGGRAPH_RUNSTORE_URL"] = url
    cwd.mkdir(exist_ok=True)
    done = subprocess.run(
        [sys.executable, *args],
        cwd=cwd,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert done.returncode == 0, f"{args} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_quickstart_records_its_runs_and_reads_them_back(db_url: str, tmp_path: Path) -> None:
    cwd = tmp_path / "cwd"
    first = run_example([str(EXAMPLES / "quickstart.py")], cwd, url=db_url)
    assert re.search(r"managed run \w{8}: success, 22 tokens, 1 LLM call\(s\)", first)
    assert "last AI message: 'LangGraph keeps each step of the agent in a checkpoint.'" in first
    # 12 input and 10 output tokens at 2.50 and 10 USD per million
    assert re.search(r"  cost \$0\.000130, LLM time \d+\.\d ms", first)
    assert re.search(r"tracked run \w{8}: success, 21 tokens", first)
    assert f"thread 'demo' is idle; database: {db_url}" in first

    # a second process sees the first one's runs in the database, newest first
    second = run_example([str(EXAMPLES / "quickstart.py")], cwd, url=db_url)
    rows = re.findall(r"^(\w{8}) +(\w+) +(\d+) +(\d+)  (.*)$", second, flags=re.MULTILINE)
    assert [(status, int(tokens), int(calls)) for _, status, tokens, calls, _ in rows] == [
        ("success", 21, 1),
        ("success", 22, 1),
        ("success", 21, 1),
        ("success", 22, 1),
    ]
    assert rows[0][4] == "The run store records how many tokens that took."
    assert len({run_id for run_id, *_ in rows}) == 4
    assert list(cwd.iterdir()) == []  # the database went where the URL said, nowhere else


@pytest.fixture(params=["sqlite", *PG_BACKENDS])
def example_url(request: pytest.FixtureRequest) -> str | None:
    """None: the example's own temporary SQLite file; else a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return None
    return str(request.getfixturevalue("pg_url"))


def test_human_in_the_loop_pauses_then_resumes_as_a_new_run(
    example_url: str | None, tmp_path: Path
) -> None:
    args = [str(EXAMPLES / "human_in_the_loop.py"), *([example_url] if example_url else [])]
    out = run_example(args, tmp_path / "cwd")
    lines = out.splitlines()

    first = re.fullmatch(
        r"run 1: run (\w{8}) status=success stop_reason=interrupt tokens=22 llm_calls=1", lines[0]
    )
    assert first, out
    assert lines[1] == "thread status: interrupted"
    assert lines[2].startswith("waiting in node: ['review']; asks: {'question': 'Publish this")
    second = re.fullmatch(
        r"run 2: run (\w{8}) status=success stop_reason=None tokens=0 llm_calls=0", lines[3]
    )
    assert second, out
    assert first.group(1) != second.group(1)
    assert lines[4] == "thread status: idle"
    assert lines[5] == "final message: Published, with note: ship it"
    assert lines[6] == (
        f"runs on thread 'review' (newest first): ['{second.group(1)}', '{first.group(1)}']"
    )
    assert list((tmp_path / "cwd").iterdir()) == []


def test_multitask_shows_all_four_strategies(example_url: str | None, tmp_path: Path) -> None:
    args = [str(EXAMPLES / "multitask.py"), *([example_url] if example_url else [])]
    out = run_example(args, tmp_path / "cwd")
    reject, enqueue, interrupt, rollback = out.strip().split("\n\n")

    assert "second run refused: ConflictError: thread 'reject' already has" in reject
    assert re.search(r"first run +run \w{8}: success, 16 tokens", reject)

    assert re.findall(r"job (\d) +run \w{8}: (\w+), (\d+) tokens", enqueue) == [
        ("1", "success", "16"),
        ("2", "success", "16"),
        ("3", "success", "16"),
    ]
    assert "each started after the previous one ended: True" in enqueue
    assert (
        "answers in thread order: [\"answer to 'job 1'\", \"answer to 'job 2'\", "
        "\"answer to 'job 3'\"]" in enqueue
    )

    assert re.search(r"cancelled run +run \w{8}: interrupted \(cancelled\), 0 tokens", interrupt)
    assert re.search(r"new run +run \w{8}: success, 15 tokens", interrupt)
    kept = "thread messages: ['long report', \"working on 'long report'\", 'urgent', "
    assert kept in interrupt  # the cancelled run's checkpoint stays

    assert re.search(r"cancelled run +run \w{8}: interrupted \(rolled_back\), 0 tokens", rollback)
    assert re.search(r"new run +run \w{8}: success, 15 tokens", rollback)
    while_running, after = (
        line.split(":", 1)[1].strip()
        for line in rollback.splitlines()
        if line.strip().startswith(("while it runs", "thread after"))
    )
    assert "working on 'long report'" in while_running
    assert "long report" not in after  # the cancelled run's checkpoints are gone
    assert after.endswith("'urgent', \"working on 'urgent'\", \"answer to 'urgent'\"]")
    assert "started from the thread as it was before the cancelled run: True" in rollback
    assert list((tmp_path / "cwd").iterdir()) == []


def _notebook_command() -> str:
    """The shell recipe of the notebook's docstring, as written there."""
    source = (EXAMPLES / "notebook.py").read_text()
    recipe = re.search(r"python - <<'EOF'\n(.*?)\n#     EOF", source, flags=re.DOTALL)
    assert recipe, "notebook.py no longer documents how to run it from a shell"
    code = "\n".join(line.removeprefix("#     ") for line in recipe.group(1).splitlines())
    return code.replace('"examples/notebook.py"', repr(str(EXAMPLES / "notebook.py")))


def test_notebook_cells_run_with_top_level_await(tmp_path: Path) -> None:
    out = run_example(["-"], tmp_path / "cwd", stdin=_notebook_command())
    assert out.splitlines()[:5] == [
        "success: 28 tokens in 1 LLM call(s)",
        "last AI message: Paris is the capital of France.",
        "update from node: answer",
        "update from node: cite",
        "success: 28 tokens",
    ]
    assert "'fake-notebook-model': {'input_tokens': 20, 'output_tokens': 8" in out
    runs = re.findall(r"^\w{8} (\w+) (\d+) (.*)$", out, flags=re.MULTILINE)
    assert runs == [
        ("success", "28", "How many people live there?"),
        ("success", "28", "What is the capital of France?"),
    ]
    assert out.rstrip().endswith("thread status: idle")
    assert list((tmp_path / "cwd").iterdir()) == []
