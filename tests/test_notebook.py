"""A real Jupyter kernel runs tests/notebooks/sync_calls_in_a_cell.ipynb: sync graph.invoke
and graph.stream on SQLAlchemySaver in a cell (whose thread runs the kernel's event loop), a
saver used straight away with ainvoke, and SyncRunManager.invoke/track/stream there."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "tests" / "notebooks" / "sync_calls_in_a_cell.ipynb"


def test_the_notebook_runs_in_a_real_kernel(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNSTORE_NOTEBOOK_URL", db_url)  # the kernel inherits the environment
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(
        notebook, timeout=90, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}
    )
    client.execute()
    printed = [
        output["text"].strip()
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
        if output.get("output_type") == "stream"
    ]
    assert printed == [
        "loop running",
        "sync saver 4 3 6",
        "fresh saver 4 6",
        "manager [('success', 2, 30), ('success', 2, 30), ('success', 2, 30)]",
    ]
