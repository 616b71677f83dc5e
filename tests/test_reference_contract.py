"""Runs the user's reference suite (deer-flow's run-manager tests) under our module names.

The file lives in ../shared/reference beside the checkout and is read from there, never
copied into this repository; the test is skipped where that folder is absent.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REFERENCE = (
    Path(__file__).resolve().parents[2] / "shared" / "reference" / "deerflow_test_run_manager.py"
)

# longest names first, so "deerflow.runtime" does not swallow its sub-modules
MODULE_MAP = [
    ("deerflow.runtime.runs.manager", "langgraph_runstore.manager"),
    ("deerflow.runtime.runs.store.memory", "langgraph_runstore.store.memory"),
    ("deerflow.runtime.runs.schemas", "langgraph_runstore.schemas"),
    ("deerflow.runtime", "langgraph_runstore"),
]


@pytest.mark.skipif(not REFERENCE.exists(), reason="shared/reference is not beside the checkout")
def test_reference_suite_passes_under_the_module_mapping(tmp_path: Path) -> None:
    source = REFERENCE.read_text()
    for old, new in MODULE_MAP:
        source = source.replace(old, new)
    assert "deerflow" not in source
    target = tmp_path / "test_reference_mapped.py"
    target.write_text(source)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(target)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
        timeout=120,
    )
    summary = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    passed = re.search(r"(\d+) passed", summary)
    assert passed and int(passed.group(1)) >= 40, summary
    assert "failed" not in summary and "error" not in summary, summary
