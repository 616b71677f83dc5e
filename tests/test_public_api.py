"""The public surface: a curated, sorted ``__all__`` and errors that carry context."""

from __future__ import annotations

from pathlib import Path

import langgraph_runstore
from langgraph_runstore import errors

CONTRACT = {
    "RunManager",
    "RunRecord",
    "RunStatus",
    "DisconnectMode",
    "PersistenceRetryPolicy",
    "RunStore",
    "MemoryRunStore",
    "SQLRunStore",
    "RunStoreError",
    "ConflictError",
    "RunNotFoundError",
}


def test_all_is_sorted_unique_and_importable() -> None:
    names = langgraph_runstore.__all__
    assert names == sorted(names)
    assert len(names) == len(set(names))
    for name in names:
        assert getattr(langgraph_runstore, name) is not None


def test_all_covers_the_design_contract() -> None:
    assert set(langgraph_runstore.__all__) >= CONTRACT


def test_every_public_name_has_a_docstring() -> None:
    for name in langgraph_runstore.__all__:
        assert getattr(langgraph_runstore, name).__doc__, name


def test_every_error_descends_from_the_one_root_and_carries_context() -> None:
    for name in errors.__all__:
        cls = getattr(errors, name)
        assert issubclass(cls, errors.RunStoreError)
        err = cls("message", run_id="r", thread_id="t")
        assert (err.run_id, err.thread_id, str(err)) == ("r", "t", "message")
        assert name in (errors.__doc__ or ""), f"{name} is missing from the tree in errors.py"


def test_package_is_typed() -> None:
    assert (Path(langgraph_runstore.__file__).parent / "py.typed").exists()


def test_every_export_names_its_module() -> None:
    assert set(langgraph_runstore._EXPORTS) == set(langgraph_runstore.__all__)


def test_importing_the_package_loads_no_langgraph() -> None:
    import subprocess
    import sys

    code = (
        "import sys, langgraph_runstore, langgraph_runstore.store.sql; "
        "print(any(m.startswith(('langgraph.', 'langchain_core')) for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_importing_the_package_db_and_cli_loads_no_sqlalchemy() -> None:
    """SQLAlchemy loads where an engine is made; rich where a table is printed."""
    import subprocess
    import sys

    code = (
        "import sys, langgraph_runstore, langgraph_runstore.db, langgraph_runstore.store.sql, "
        "langgraph_runstore.cli; "
        "print(*(m for m in ('sqlalchemy', 'aiosqlite', 'tenacity', 'langgraph', "
        "'langchain_core', 'rich') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
