"""The pytest plugin for users' agent tests, run by pytest in a subprocess on small sample
test files: its fixtures under pytest-asyncio (strict and auto) and anyio, ``assert_run``'s
failure message, ``--runstore-url`` / ``RUNSTORE_TEST_URL`` on PostgreSQL with nothing left
behind, its entry point, and that a run which does not use it pays nothing for it."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import psycopg
import pytest

from tests.backends import libpq_url

ROOT = Path(__file__).resolve().parent.parent
PLUGIN = "langgraph_runstore.testing.plugin"

AGENT = """
from langchain_core.language_models.fake_chat_models import FakeMessagesListChatModel
from langchain_core.messages import AIMessage
from langgraph.graph import END, START, MessagesState, StateGraph


def build(checkpointer):
    answer = AIMessage(
        content="hello there",
        usage_metadata={"input_tokens": 12, "output_tokens": 8, "total_tokens": 20},
        response_metadata={"model_name": "fake-1"},
    )
    model = FakeMessagesListChatModel(responses=[answer])

    def call(state):
        return {"messages": [model.invoke(state["messages"])]}

    builder = StateGraph(MessagesState)
    builder.add_node("call", call)
    builder.add_edge(START, "call")
    builder.add_edge("call", END)
    return builder.compile(checkpointer=checkpointer)
"""

# {mark} is the line that marks the async tests (or nothing, in auto mode)
SAMPLE = """
import pytest
from agent import build
from langgraph_runstore import RunManager
from langgraph_runstore.testing import assert_run, async_fixture

{mark}

SEEN = []


@async_fixture
async def graph(run_store):
    # a user's own async fixture over the plugin's, on the same loop
    return build(run_store.checkpointer)


async def test_managed_run(run_manager, run_store):
    graph = build(run_store.checkpointer)
    run = await run_manager.wait(graph, {{"messages": [("user", "hi")]}}, thread_id="t1")
    assert_run(run, llm_calls=1, total_tokens=20, max_total_tokens=50, models={{"fake-1"}},
               last_ai_message="hello there")
    assert_run(await run_store.get(run.run_id))  # a store row works too
    SEEN.append(str(run_store.engine.url.database))
    print("DATABASE", run_store.engine.url.database)


async def test_each_test_has_a_fresh_store(run_store, graph):
    assert await run_store.list_by_thread("t1") == []
    manager = RunManager(store=run_store)
    async with manager.track(thread_id="t1") as run:
        await graph.ainvoke({{"messages": [("user", "hi")]}}, run.config)
    assert_run(run, llm_calls=1)
    await manager.aclose()
    assert str(run_store.engine.url.database) not in SEEN
    print("DATABASE", run_store.engine.url.database)


async def test_a_failing_expectation(run_manager, run_store):
    graph = build(run_store.checkpointer)
    run = await run_manager.wait(graph, {{"messages": [("user", "hi")]}}, thread_id="t2")
    assert_run(run, max_total_tokens=5, llm_calls=3)


def test_sync(sync_run_manager):
    graph = build(sync_run_manager.store.checkpointer)
    run = sync_run_manager.invoke(graph, {{"messages": [("user", "hi")]}}, thread_id="s1")
    assert_run(run, llm_calls=1, total_tokens=20)
    print("DATABASE", sync_run_manager.store.engine.url.database)
"""

MARKS = {
    "asyncio-strict": ("pytestmark = pytest.mark.asyncio", "asyncio_mode = strict"),
    "asyncio-auto": ("", "asyncio_mode = auto"),
    "anyio": (
        "pytestmark = pytest.mark.anyio\n\n\n"
        '@pytest.fixture\ndef anyio_backend():\n    return "asyncio"',
        "asyncio_mode = strict",
    ),
}


def write_sample(pytester: pytest.Pytester, flavour: str) -> None:
    mark, ini = MARKS[flavour]
    pytester.makepyfile(agent=AGENT, test_sample=SAMPLE.format(mark=mark))
    pytester.makeini(f"[pytest]\n{ini}\nasyncio_default_fixture_loop_scope = function\n")


def check_outcome(result: pytest.RunResult) -> list[str]:
    """The sample's one expected failure, with the record's numbers; the databases it used."""
    result.assert_outcomes(passed=3, failed=1)
    out = result.stdout.str()
    assert "test_a_failing_expectation" in out
    for line in (
        "does not match:",
        "total_tokens: expected at most 5, got 20",
        "llm_calls: expected 3, got 1",
        "the run: status=success",
        "tokens: input=12 output=8 total=20",
        "fake-1: input=12 output=8 total=20",
        "last_ai_message='hello there'",
    ):
        assert line in out, line
    return re.findall(r"DATABASE (\S+)", out)


@pytest.mark.parametrize("flavour", sorted(MARKS))
def test_the_fixtures_under_each_async_framework(pytester: pytest.Pytester, flavour: str) -> None:
    write_sample(pytester, flavour)
    used = check_outcome(pytester.runpytest_subprocess("-p", PLUGIN, "-s"))
    assert len(used) == 3 and len(set(used)) == 3
    assert all(not Path(path).exists() and not Path(path).parent.exists() for path in used)


def test_anyio_alone_without_pytest_asyncio(pytester: pytest.Pytester) -> None:
    write_sample(pytester, "anyio")
    pytester.makeini("[pytest]\n")
    check_outcome(pytester.runpytest_subprocess("-p", PLUGIN, "-p", "no:asyncio", "-s"))


def test_anyio_under_asyncio_auto_mode_says_what_to_change(pytester: pytest.Pytester) -> None:
    write_sample(pytester, "anyio")
    pytester.makeini(
        "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n"
    )
    result = pytester.runpytest_subprocess("-p", PLUGIN, "-k", "managed")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*pytest-asyncio's auto mode runs every async fixture*"])


def _pg_databases(server: str) -> set[str]:
    with psycopg.connect(libpq_url(server)) as conn:
        return {row[0] for row in conn.execute("SELECT datname FROM pg_database")}


@pytest.mark.postgres
@pytest.mark.parametrize("how", ["option", "env"])
def test_the_url_selects_postgres_with_a_database_per_test(
    pytester: pytest.Pytester, pg_url: str, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    write_sample(pytester, "asyncio-strict")
    if how == "option":
        result = pytester.runpytest_subprocess("-p", PLUGIN, "-s", f"--runstore-url={pg_url}")
    else:
        monkeypatch.setenv("RUNSTORE_TEST_URL", pg_url)
        result = pytester.runpytest_subprocess("-p", PLUGIN, "-s")
    used = check_outcome(result)
    assert len(used) == 3 and len(set(used)) == 3
    assert all(name.startswith("runstore_test_") for name in used)
    assert not set(used) & _pg_databases(pg_url)  # each dropped after its test


def test_a_url_of_another_kind_is_refused(pytester: pytest.Pytester) -> None:
    write_sample(pytester, "asyncio-strict")
    result = pytester.runpytest_subprocess("-p", PLUGIN, "--runstore-url=mysql://x/y")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*expected a sqlite or postgresql URL, not 'mysql://x/y'*"])


def test_an_unused_plugin_costs_nothing(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_plain="""
        import sys

        def test_nothing_heavy_was_imported(request):
            assert request.config.pluginmanager.has_plugin("langgraph_runstore.testing.plugin")
            heavy = [m for m in ("sqlalchemy", "langgraph", "langchain_core") if m in sys.modules]
            assert heavy == []
        """
    )
    pytester.runpytest_subprocess("-p", PLUGIN).assert_outcomes(passed=1)


def test_the_entry_point_loads_the_plugin(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pyproject's pytest11 entry point, installed as a distribution's metadata, loads the
    plugin by itself (no -p), and a conftest naming it too does not register it twice."""
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert f'[project.entry-points.pytest11]\n"{PLUGIN}" = "{PLUGIN}"' in pyproject
    site = pytester.mkdir("site")
    info = site / "runstore_entry_point-0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: runstore-entry-point\nVersion: 0\n"
    )
    (info / "entry_points.txt").write_text(f"[pytest11]\n{PLUGIN} = {PLUGIN}\n")
    pytester.makepyfile(
        test_fixture="""
        def test_sync(sync_run_manager):
            assert sync_run_manager.list_by_thread("t") == []
        """
    )
    paths = [str(site), *sys.path]
    monkeypatch.setenv("PYTHONPATH", ":".join(p for p in paths if p))
    pytester.runpytest_subprocess().assert_outcomes(passed=1)  # no -p: the entry point
    pytester.makeconftest(f'pytest_plugins = ["{PLUGIN}"]')
    pytester.runpytest_subprocess().assert_outcomes(passed=1)  # and named twice over


def test_assert_run_refuses_bad_expectations() -> None:
    from langgraph_runstore import RunRecord
    from langgraph_runstore.errors import InvalidInputError
    from langgraph_runstore.testing import assert_run

    run = RunRecord(run_id="r1", thread_id="t1")
    for bad in ({"max_total_tokens": -1}, {"llm_calls": True}, {"status": "done"}):
        with pytest.raises(InvalidInputError, match=re.escape(repr(next(iter(bad.values()))))):
            assert_run(run, **bad)
    with pytest.raises(InvalidInputError, match="RunRecord or a store row, not str"):
        assert_run("r1")
    with pytest.raises(AssertionError, match="got None"):
        assert_run(None)
    with pytest.raises(AssertionError, match="status: expected 'success', got 'pending'"):
        assert_run(run)
