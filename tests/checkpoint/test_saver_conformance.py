"""The official LangGraph checkpointer conformance suite, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from langgraph.checkpoint.conformance import checkpointer_test, validate
from langgraph.checkpoint.conformance.capabilities import ALL_CAPABILITIES
from langgraph.checkpoint.conformance.spec import (
    test_copy_thread,
    test_delete_for_runs,
    test_delete_thread,
    test_get_tuple,
    test_list,
    test_prune,
    test_put,
    test_put_writes,
)

from langgraph_runstore.checkpoint import SQLAlchemySaver

# Every check the installed suite registers, across all eight capabilities.
SUITE_SIZE = sum(
    len(tests)
    for tests in (
        test_put.ALL_PUT_TESTS,
        test_put_writes.ALL_PUT_WRITES_TESTS,
        test_get_tuple.ALL_GET_TUPLE_TESTS,
        test_list.ALL_LIST_TESTS,
        test_delete_thread.ALL_DELETE_THREAD_TESTS,
        test_delete_for_runs.ALL_DELETE_FOR_RUNS_TESTS,
        test_copy_thread.ALL_COPY_THREAD_TESTS,
        test_prune.ALL_PRUNE_TESTS,
    )
)


def test_suite_size_is_pinned() -> None:
    # langgraph-checkpoint-conformance 0.0.2 has 81 checks; a new version must be looked at.
    assert SUITE_SIZE == 81


@pytest.mark.asyncio
async def test_conformance_full(db_url: str) -> None:
    @checkpointer_test(name=f"SQLAlchemySaver[{db_url.split(':', 1)[0]}]")
    async def factory() -> AsyncIterator[SQLAlchemySaver]:
        async with SQLAlchemySaver.from_url(db_url) as saver:
            yield saver

    report = await validate(factory)

    failures = {name: r.failures for name, r in report.results.items() if r.failures}
    assert not failures, failures
    assert set(report.results) == {c.value for c in ALL_CAPABILITIES}
    assert all(r.detected and r.passed is True for r in report.results.values())
    assert report.conformance_level() == "FULL"
    assert sum(r.tests_failed + r.tests_skipped for r in report.results.values()) == 0
    assert sum(r.tests_passed for r in report.results.values()) == SUITE_SIZE
