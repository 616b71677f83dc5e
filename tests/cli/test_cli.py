"""The ``langgraph-runstore`` console script, run as a real process against a real SQLite
file and the real PostgreSQL: every command, its JSON, its exit codes."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.backends import PG_BACKENDS, driver_of
from tests.cli.helpers import (
    Result,
    Seeded,
    checkpoints_of,
    pg_database,
    row,
    run_cli,
    run_many,
    seed,
)

BACKENDS = ["sqlite", *PG_BACKENDS]


def _fresh_url(request: pytest.FixtureRequest, tmp: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp / 'runs.db'}"
        return
    from tests.cli.helpers import pg_base

    if pg_base() is None:
        pytest.skip("no PostgreSQL server (RUNSTORE_TEST_PG_URL)")
    with pg_database(driver_of(request.param)) as url:
        yield url


@pytest.fixture(scope="module", params=BACKENDS)
def seeded(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Seeded]:
    """One seeded database per backend for the read-only commands."""
    for url in _fresh_url(request, tmp_path_factory.mktemp("cli")):
        yield seed(url)


@pytest.fixture(params=BACKENDS)
def fresh(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Seeded]:
    """A seeded database of its own, for a test that changes it."""
    for url in _fresh_url(request, tmp_path):
        yield seed(url)


@pytest.fixture(scope="module")
def reads(seeded: Seeded, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Result]:
    """Every read-only invocation, run side by side once per backend."""
    db = seeded.url
    g1 = seeded.graph_runs[0]
    report = tmp_path_factory.mktemp("report") / "report.html"
    calls: dict[str, tuple[Any, ...]] = {
        # every command, and its JSON, on both backends
        "list": ("runs", "list", "--limit", "10", "--db", db),
        "list_json": ("runs", "list", "--json", "--db", db),
        "list_failed": (
            "runs",
            "list",
            "--status",
            "error",
            "--status",
            "timeout",
            "--json",
            "--db",
            db,
        ),
        "list_thread_user": (
            "runs",
            "list",
            "--thread",
            "t-graph",
            "--user",
            "u1",
            "--json",
            "--db",
            db,
        ),
        "list_window": ("runs", "list", "--since", "50d", "--until", "10d", "--json", "--db", db),
        "list_page1": ("runs", "list", "--limit", "3", "--json", "--db", db),
        "show": ("runs", "show", g1, "--db", db),
        "show_json": ("runs", "show", g1, "--json", "--db", db),
        "show_missing": ("runs", "show", "no-such-run", "--db", db),
        "thread": ("threads", "show", "t-graph", "--db", db),
        "thread_json": ("threads", "show", "t-hitl", "--json", "--db", db),
        "thread_hitl": ("threads", "show", "t-hitl", "--db", db),
        "list_hitl": ("runs", "list", "--thread", "t-hitl", "--db", db),
        "usage": ("usage", "--db", db),
        "usage_day": ("usage", "--by", "day", "--json", "--db", db),
        "migrate": ("migrate", "--db", db),
        "report": ("report", "--html", str(report), "--db", db),
        "prune_dry": ("prune", "--older-than", "30d", "--dry-run", "--json", "--db", db),
    }
    if seeded.url.startswith("sqlite"):
        # the rest does not depend on the backend: checked once, on SQLite
        calls |= {
            "list_none": ("runs", "list", "--thread", "nobody", "--db", db),
            "thread_missing": ("threads", "show", "no-such-thread", "--db", db),
            "usage_user_week": ("usage", "--by", "user", "--since", "7d", "--json", "--db", db),
            "bad_since": ("runs", "list", "--since", "7x", "--db", db),
            "bad_cursor": ("runs", "list", "--cursor", "garbage", "--db", db),
            "bad_status": ("usage", "--by", "week", "--db", db),
            "db_before_command": ("--db", db, "runs", "list", "--json"),
            "db_from_env": ("runs", "list", "--json", {"env": {"LANGGRAPH_RUNSTORE_URL": db}}),
        }
    results = run_many(calls)
    page1 = json.loads(results["list_page1"].out)
    results["list_page2"] = run_cli(
        "runs", "list", "--limit", "3", "--json", "--cursor", page1["next_cursor"], "--db", db
    )
    results["report_file"] = Result(0, report.read_text() if report.exists() else "", "")
    return results


def ok(result: Result) -> Result:
    assert result.code == 0, f"exit {result.code}\nstdout:\n{result.out}\nstderr:\n{result.err}"
    assert "Traceback" not in result.err
    return result


def as_json(result: Result) -> Any:
    return json.loads(ok(result).out)


def run_ids(result: Result) -> list[str]:
    return [run["run_id"] for run in as_json(result)["runs"]]


# -- runs list -------------------------------------------------------------------------------


def test_runs_list_prints_a_table_newest_first(reads: dict[str, Result], seeded: Seeded) -> None:
    lines = ok(reads["list"]).out.splitlines()
    assert lines[0].split()[:4] == ["RUN", "ID", "THREAD", "STATUS"]
    assert all(line == line.rstrip() for line in lines)  # no padding at line ends
    listed = [line.split()[0] for line in lines[1:-1]]
    everything = [run["run_id"] for run in as_json(reads["list_json"])["runs"]]
    assert listed == everything[:10]
    assert listed[:2] == list(seeded.graph_runs)
    error_line = next(line for line in lines if line.startswith("r-error"))
    assert "error" in error_line and "ValueError: the tool said no" in error_line
    graph_line = next(line for line in lines if line.startswith(seeded.graph_runs[0]))
    assert "success" in graph_line and "checked" in graph_line
    assert lines[-1].startswith("more: --cursor ")


def test_runs_list_json_and_filters(reads: dict[str, Result], seeded: Seeded) -> None:
    everything = as_json(reads["list_json"])
    assert everything["next_cursor"] is None
    created = [run["created_at"] for run in everything["runs"]]
    assert created == sorted(created, reverse=True)
    assert len(everything["runs"]) == 14
    first = next(r for r in everything["runs"] if r["run_id"] == seeded.graph_runs[0])
    assert first["token_usage_by_model"]["model-a"]["input_tokens"] == 20
    assert first["duration_seconds"] is not None
    assert run_ids(reads["list_failed"]) == ["r-error", "r-timeout"]
    assert run_ids(reads["list_thread_user"]) == list(seeded.graph_runs)
    assert run_ids(reads["list_window"]) == [seeded.older_graph_run, seeded.old_graph_run]


def test_runs_list_defaults_and_empty_results(reads: dict[str, Result]) -> None:
    if "list_none" not in reads:
        pytest.skip("backend-independent: checked on SQLite")
    assert ok(reads["list_none"]).out.strip() == "no runs match"
    # --db before the command and $LANGGRAPH_RUNSTORE_URL reach the same database
    everything = as_json(reads["list_json"])
    assert as_json(reads["db_before_command"]) == everything
    assert as_json(reads["db_from_env"]) == everything


def test_runs_list_pages_with_a_cursor(reads: dict[str, Result]) -> None:
    everything = [run["run_id"] for run in as_json(reads["list_json"])["runs"]]
    page1 = as_json(reads["list_page1"])
    page2 = as_json(reads["list_page2"])
    assert [r["run_id"] for r in page1["runs"]] + [
        r["run_id"] for r in page2["runs"]
    ] == everything[:6]


# -- runs show -------------------------------------------------------------------------------


def test_runs_show_prints_every_field_tokens_per_model_and_checkpoints(
    reads: dict[str, Result], seeded: Seeded
) -> None:
    out = ok(reads["show"]).out
    from langgraph_runstore.schemas import ROW_FIELDS

    fields = {line.split()[0] for line in out.splitlines() if line.strip()}
    tables = {"token_usage_by_model", "usage_by_node", "llm_call_ms"}  # shown as tables
    assert set(ROW_FIELDS) - tables <= fields
    assert re.search(r"^status\s+success$", out, re.M)
    assert re.search(r"^model-a\s+20\s+7\s+27\s", out, re.M)
    assert re.search(r"^model-b\s+30\s+3\s+33\s", out, re.M)
    data = as_json(reads["show_json"])
    assert data["run"]["run_id"] == seeded.graph_runs[0]
    assert data["run"]["total_tokens"] == 60
    checkpoints = data["checkpoints"]
    assert len(checkpoints) == checkpoints_of(seeded.url, seeded.graph_runs[0]) >= 4
    assert {cp["thread_id"] for cp in checkpoints} == {"t-graph"}
    assert f"checkpoints ({len(checkpoints)})" in out
    for cp in checkpoints:
        assert cp["checkpoint_id"] in out


def test_unknown_run_id_is_one_line_and_exit_1(reads: dict[str, Result]) -> None:
    result = reads["show_missing"]
    assert result.code == 1 and result.out == ""
    assert result.error_line == "error: no run with id 'no-such-run'"


# -- threads show ----------------------------------------------------------------------------


def test_threads_show_prints_status_runs_and_totals(
    reads: dict[str, Result], seeded: Seeded
) -> None:
    out = ok(reads["thread"]).out
    assert out.splitlines()[0] == "thread t-graph: idle"
    assert "2 runs (2 success); 120 tokens (100 in, 20 out); 4 LLM call(s); error rate 0.0%" in out
    assert all(run_id in out for run_id in seeded.graph_runs)
    hitl = as_json(reads["thread_json"])
    assert hitl["status"] == "interrupted"
    assert hitl["totals"]["runs"] == 1
    assert [r["run_id"] for r in hitl["runs"]] == ["r-hitl"]
    assert hitl["interrupts"] == [
        {"id": "0f" * 16, "value": {"question": "Send it?"}, "ns": ["approve:7"]}
    ]
    assert hitl["runs"][0]["status"] == "success"  # JSON keeps the stored status
    text = ok(reads["thread_hitl"]).out
    assert "thread t-hitl: interrupted" in text
    assert "waiting on 1 interrupt(s) of run r-hitl:" in text
    assert f'{"0f" * 16}: {{"question": "Send it?"}}' in text
    listing = ok(reads["list_hitl"]).out.splitlines()
    assert listing[0].split()[3:5] == ["STATUS", "STOP"]  # "RUN ID" is two words
    assert listing[1].split()[2:4] == ["paused", "interrupt"]
    if "thread_missing" in reads:
        missing = reads["thread_missing"]
        assert missing.code == 1
        assert missing.error_line == "error: no runs on thread 'no-such-thread'"


# -- usage -----------------------------------------------------------------------------------


def test_usage_groups_tokens_runs_and_errors(reads: dict[str, Result]) -> None:
    table = ok(reads["usage"]).out.splitlines()
    assert table[0].split()[:4] == ["MODEL", "RUNS", "SUCCESS", "PAUSED"]
    model_a = next(line.split() for line in table if line.startswith("model-a"))
    # four graph runs, 20 input + 7 output tokens each from model-a
    assert model_a[1] == "4" and model_a[10:13] == ["80", "28", "108"]  # INPUT OUTPUT TOTAL
    model_c = next(line.split() for line in table if line.startswith("model-c"))
    assert model_c[4] == "1" and model_c[8] == "100.0%"
    days = as_json(reads["usage_day"])
    assert days["by"] == "day"
    keys = [group["key"] for group in days["groups"]]
    assert keys == sorted(keys) and len(keys) >= 4
    assert sum(group["runs"] for group in days["groups"]) == 14
    if "usage_user_week" in reads:
        users = {g["key"]: g for g in as_json(reads["usage_user_week"])["groups"]}
        assert users["u1"]["runs"] == 2  # the two recent graph runs; the older ones fall outside
        assert users["u2"]["by_status"] == {"error": 1, "timeout": 1}
        assert users["u2"]["error_rate"] == 1.0


# -- bad input -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("bad_since", "Invalid value for '--since': '7x' is neither a duration"),
        ("bad_cursor", "Invalid value for '--cursor': malformed cursor 'garbage'"),
        ("bad_status", "Invalid value for '--by': 'week' is not one of"),
    ],
)
def test_usage_errors_are_one_line_and_exit_2(
    reads: dict[str, Result], name: str, says: str
) -> None:
    if name not in reads:
        pytest.skip("backend-independent: checked on SQLite")
    result = reads[name]
    assert result.code == 2, result
    assert says in result.error_line


def test_migrate_leaves_a_current_database_alone(reads: dict[str, Result]) -> None:
    from langgraph_runstore.db import latest_version

    assert f"already at schema version {latest_version()}" in ok(reads["migrate"]).out
    planned = as_json(reads["prune_dry"])
    assert planned["dry_run"] is True and planned["runs"] == 4  # r-old-0..2 and the 45-day run


def test_report_writes_one_self_contained_page(reads: dict[str, Result]) -> None:
    assert ok(reads["report"]).out.startswith("wrote ")
    page = reads["report_file"].out
    assert page.startswith("<!DOCTYPE html>")
    # status, tokens by day, tokens and cost by model; and one timeline per run with events
    assert page.count('<svg class="chart"') == 4
    assert page.count('<svg class="timeline"') == page.count("<svg") - 4 > 0
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "https://" not in page and "<script" not in page
    assert "r-error" in page and "ValueError: the tool said no" in page


# -- commands that change the database -------------------------------------------------------


def test_runs_cancel(fresh: Seeded) -> None:
    db = fresh.url
    cancelled = ok(run_cli("runs", "cancel", "r-pending", "--db", db))
    assert cancelled.out.strip() == "cancelled run r-pending: interrupted (cancelled)"
    assert row(db, "r-pending") == {
        "status": "interrupted",
        "stop_reason": "cancelled",
        "error": None,
    }
    rolled = as_json(
        run_cli("runs", "cancel", "r-running", "--action", "rollback", "--json", "--db", db)
    )
    assert rolled["cancelled"] is True and rolled["run"]["stop_reason"] == "rolled_back"
    assert row(db, "r-running")["status"] == "interrupted"  # type: ignore[index]
    finished = run_cli("runs", "cancel", "r-error", "--db", db)
    assert finished.code == 1
    assert finished.error_line == "error: run r-error already finished (error): nothing to cancel"
    missing = run_cli("runs", "cancel", "nope", "--db", db)
    assert missing.code == 1 and missing.error_line == "error: no run with id 'nope'"
    bad = run_cli("runs", "cancel", "r-pending", "--action", "explode", "--db", db)
    assert bad.code == 2 and "Invalid value for '--action'" in bad.error_line


def test_prune_asks_then_deletes_finished_runs_and_their_checkpoints(fresh: Seeded) -> None:
    db = fresh.url
    old, older = fresh.old_graph_run, fresh.older_graph_run
    assert checkpoints_of(db, old) > 0 and checkpoints_of(db, older) > 0
    declined = run_cli("prune", "--older-than", "30d", "--db", db, input="n\n")
    assert declined.code == 1
    assert "delete 4 finished runs and their checkpoints created before" in declined.err
    assert "aborted: nothing was changed" in declined.err
    assert row(db, "r-old-0") is not None
    kept = ok(
        run_cli("prune", "--older-than", "30d", "--keep-checkpoints", "--db", db, input="y\n")
    )
    assert re.match(
        r"deleted 4 runs created before .* in \d+ batch\(es\); longest write \d+ ms", kept.out
    )
    assert row(db, old) is None and row(db, "r-old-2") is None
    assert checkpoints_of(db, old) > 0  # --keep-checkpoints
    # in-flight runs are never pruned, however old
    assert row(db, "r-old-running") is not None and row(db, "r-old-pending") is not None
    result = as_json(run_cli("prune", "--older-than", "10d", "--yes", "--json", "--db", db))
    assert result["runs"] == 1 and result["dry_run"] is False
    assert row(db, older) is None and checkpoints_of(db, older) == 0
    assert checkpoints_of(db, fresh.graph_runs[0]) > 0
    nothing = ok(run_cli("prune", "--older-than", "10d", "--yes", "--db", db))
    assert nothing.out.startswith("nothing to prune: no finished runs created before")


def test_reconcile_marks_old_inflight_runs_as_orphaned(fresh: Seeded) -> None:
    db = fresh.url
    result = as_json(run_cli("reconcile", "--older-than", "30d", "--json", "--db", db))
    assert sorted(r["run_id"] for r in result["recovered"]) == ["r-old-pending", "r-old-running"]
    assert row(db, "r-old-running") == {
        "status": "error",
        "stop_reason": "orphan_recovered",
        "error": "The worker that owned this run stopped before the run reached a final status.",
    }
    assert row(db, "r-running")["status"] == "running"  # type: ignore[index]
    again = ok(run_cli("reconcile", "--older-than", "30d", "--db", db))
    assert again.out.strip() == "marked 0 orphaned run(s) as error"
