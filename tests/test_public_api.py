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
    assert CONTRACT <= set(langgraph_runstore.__all__)


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
