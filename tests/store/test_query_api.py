"""The read side and retention on every backend: list_runs, aggregate_usage, top_runs,
prune_runs (the ``store`` fixture runs each test on memory, SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from langgraph_runstore import InvalidInputError, RunStore
from langgraph_runstore.query import RunPage, UsageRow, parse_duration, resolve_time

pytestmark = pytest.mark.asyncio

DAY1 = "2026-01-01T10:00:00+00:00"
DAY2 = "2026-01-02T10:00:00+00:00"
DAY3 = "2026-01-03T10:00:00+00:00"


async def seed(store: RunStore) -> None:
    """Nine runs over three days, two users, three threads, two models, every status."""

    async def put(run_id: str, **fields: Any) -> None:
        await store.put(run_id, **fields)

    usage_a = {"input_tokens": 10, "output_tokens": 5, "total_tokens": 15}
    usage_b = {"input_tokens": 100, "output_tokens": 50, "total_tokens": 150}
    await put(
        "a1",
        thread_id="t1",
        user_id="u1",
        status="success",
        created_at=DAY1,
        started_at=DAY1,
        ended_at="2026-01-01T10:00:03+00:00",
        input_tokens=10,
        output_tokens=5,
        total_tokens=15,
        llm_call_count=1,
        token_usage_by_model={"model-a": usage_a},
        last_ai_message="first",
    )
    await put(
        "a2",
        thread_id="t1",
        user_id="u1",
        status="error",
        created_at=DAY1,
        started_at=DAY1,
        ended_at="2026-01-01T10:00:09+00:00",
        error="ValueError: boom",
        input_tokens=110,
        output_tokens=55,
        total_tokens=165,
        llm_call_count=3,
        token_usage_by_model={"model-a": usage_a, "model-b": usage_b},
    )
    await put(
        "a3",
        thread_id="t2",
        user_id="u2",
        status="timeout",
        created_at=DAY2,
        started_at=DAY2,
        ended_at="2026-01-02T10:00:30+00:00",
        input_tokens=100,
        output_tokens=50,
        total_tokens=150,
        llm_call_count=2,
        token_usage_by_model={"model-b": usage_b},
    )
    # no per-model usage: counted under its model_name, with its own token columns
    await put(
        "a4",
        thread_id="t2",
        user_id="u2",
        status="success",
        created_at=DAY2,
        model_name="model-c",
        input_tokens=7,
        output_tokens=3,
        total_tokens=10,
        llm_call_count=1,
    )
    await put("a5", thread_id="t3", user_id="u1", status="interrupted", created_at=DAY2)
    await put("a6", thread_id="t3", user_id="u1", status="pending", created_at=DAY3)
    await put("a7", thread_id="t1", user_id="u2", status="running", created_at=DAY3)
    await put("a8", thread_id="t2", status="success", created_at=DAY3)
    await put("a9", thread_id="t2", status="success", created_at=DAY3)


def ids(page: RunPage[dict[str, Any]] | list[dict[str, Any]]) -> list[str]:
    return [row["run_id"] for row in page]


async def test_list_runs_is_newest_first_with_insertion_order_for_ties(store: RunStore) -> None:
    await seed(store)
    page = await store.list_runs()
    assert ids(page) == ["a6", "a7", "a8", "a9", "a3", "a4", "a5", "a1", "a2"]
    assert page.next_cursor is None
    assert page.runs[0]["thread_id"] == "t3"  # whole rows, decoded
    assert (await store.list_runs(thread_id="t1")).runs[-1]["token_usage_by_model"]["model-b"] == {
        "input_tokens": 100,
        "output_tokens": 50,
        "total_tokens": 150,
    }


async def test_list_runs_filters_combine(store: RunStore) -> None:
    await seed(store)
    assert ids(await store.list_runs(thread_id="t2")) == ["a8", "a9", "a3", "a4"]
    assert ids(await store.list_runs(status="success")) == ["a8", "a9", "a4", "a1"]
    assert ids(await store.list_runs(status=["error", "timeout"])) == ["a3", "a2"]
    assert ids(await store.list_runs(user_id="u1")) == ["a6", "a5", "a1", "a2"]
    assert ids(await store.list_runs(user_id="u2", thread_id="t2")) == ["a3", "a4"]
    assert ids(await store.list_runs(since=DAY2, until=DAY3)) == ["a3", "a4", "a5"]
    assert ids(await store.list_runs(since=datetime(2026, 1, 3, tzinfo=timezone.utc))) == [
        "a6",
        "a7",
        "a8",
        "a9",
    ]
    assert ids(await store.list_runs(status="success", since=DAY2, thread_id="t2")) == [
        "a8",
        "a9",
        "a4",
    ]
    assert ids(await store.list_runs(thread_id="nobody")) == []


async def test_keyset_pages_cover_every_run_once_even_while_runs_arrive(store: RunStore) -> None:
    await seed(store)
    seen: list[str] = []
    page = await store.list_runs(limit=2)
    seen += ids(page)
    # runs created after the first page must not shift later pages (offset paging would)
    await store.put("new1", thread_id="t9", status="success", created_at="2026-02-01T00:00:00Z")
    while page.next_cursor:
        page = await store.list_runs(limit=2, cursor=page.next_cursor)
        seen += ids(page)
    assert seen == ["a6", "a7", "a8", "a9", "a3", "a4", "a5", "a1", "a2"]
    # a cut inside a group of equal created_at resumes after the right row
    first = await store.list_runs(limit=3)
    assert ids(first) == ["new1", "a6", "a7"]
    assert ids(await store.list_runs(limit=3, cursor=first.next_cursor)) == ["a8", "a9", "a3"]
    # filters apply across pages
    page = await store.list_runs(status="success", limit=1)
    got = ids(page)
    while page.next_cursor:
        page = await store.list_runs(status="success", limit=1, cursor=page.next_cursor)
        got += ids(page)
    assert got == ["new1", "a8", "a9", "a4", "a1"]


async def test_list_runs_refuses_bad_arguments_by_name(store: RunStore) -> None:
    with pytest.raises(InvalidInputError, match="malformed cursor"):
        await store.list_runs(cursor="not-a-cursor")
    with pytest.raises(InvalidInputError, match="limit"):
        await store.list_runs(limit=0)
    with pytest.raises(InvalidInputError, match="unknown run status 'done'"):
        await store.list_runs(status="done")
    with pytest.raises(InvalidInputError, match="invalid since '7x'"):
        await store.list_runs(since="7x")


def by_key(rows: list[UsageRow]) -> dict[str | None, UsageRow]:
    return {row.key: row for row in rows}


async def test_aggregate_by_model_reads_the_per_model_usage(store: RunStore) -> None:
    await seed(store)
    rows = await store.aggregate_usage(by="model")
    groups = by_key(rows)
    # a2 used both models: its tokens split exactly, and it counts as a run of each
    assert groups["model-a"].tokens.total_tokens == 30
    assert groups["model-a"].tokens.input_tokens == 20
    assert groups["model-a"].by_status == {"error": 1, "success": 1}
    assert groups["model-a"].llm_calls == 4
    assert groups["model-b"].tokens.total_tokens == 300
    assert groups["model-b"].by_status == {"error": 1, "timeout": 1}
    assert groups["model-b"].error_rate == 1.0
    assert groups["model-c"].tokens.total_tokens == 10
    # runs with neither per-model usage nor a model name: "unknown"
    assert groups["unknown"].runs == 5
    assert groups["unknown"].tokens.total_tokens == 0
    assert [row.key for row in rows][:3] == ["model-b", "model-a", "model-c"]


async def test_aggregate_by_thread_user_and_day(store: RunStore) -> None:
    await seed(store)
    threads = by_key(await store.aggregate_usage(by="thread"))
    assert threads["t1"].runs == 3
    assert threads["t1"].by_status == {"error": 1, "running": 1, "success": 1}
    assert threads["t1"].tokens.total_tokens == 180
    assert threads["t1"].llm_calls == 4
    assert threads["t1"].finished == 2
    assert threads["t1"].error_rate == 0.5
    assert threads["t2"].error_rate == 0.25
    users = by_key(await store.aggregate_usage(by="user"))
    assert set(users) == {"u1", "u2", None}
    assert users[None].runs == 2
    days = await store.aggregate_usage(by="day")
    assert [(row.key, row.runs) for row in days] == [
        ("2026-01-01", 2),
        ("2026-01-02", 3),
        ("2026-01-03", 4),
    ]
    window = await store.aggregate_usage(by="day", since=DAY2, until=DAY3)
    assert [row.key for row in window] == ["2026-01-02"]
    only = await store.aggregate_usage(by="thread", thread_id="t3")
    assert [(row.key, row.by_status) for row in only] == [("t3", {"interrupted": 1, "pending": 1})]
    assert only[0].error_rate == 0.0
    assert only[0].as_dict()["by_status"] == {"interrupted": 1, "pending": 1}
    with pytest.raises(InvalidInputError, match="unknown usage grouping 'week'"):
        await store.aggregate_usage(by="week")


async def test_top_runs_by_duration_and_tokens(store: RunStore) -> None:
    await seed(store)
    assert ids(await store.top_runs(by="duration")) == ["a3", "a2", "a1"]
    assert ids(await store.top_runs(by="tokens", limit=2)) == ["a2", "a3"]
    assert ids(await store.top_runs(by="tokens", since=DAY2)) == ["a3", "a4"]


async def test_prune_deletes_only_finished_runs_older_than_the_cutoff(store: RunStore) -> None:
    await seed(store)
    old_pending = "2025-06-01T00:00:00+00:00"
    await store.put("p-old", thread_id="t8", status="pending", created_at=old_pending)
    await store.put("r-old", thread_id="t9", status="running", created_at=old_pending)
    planned = await store.prune_runs(older_than=DAY3, dry_run=True)
    assert planned.runs == 5 and planned.dry_run
    assert len(await store.list_runs(limit=100)) == 11  # a dry run deletes nothing
    progress: list[int] = []
    result = await store.prune_runs(older_than=DAY3, on_progress=progress.append)
    assert result.runs == 5 and sum(progress) == 5
    assert result.cutoff == "2026-01-03T10:00:00.000000+00:00"
    assert ids(await store.list_runs(limit=100)) == ["a6", "a7", "a8", "a9", "p-old", "r-old"]
    assert (await store.prune_runs(older_than=DAY3)).runs == 0
    # a duration counts back from now: everything finished goes, the in-flight runs stay
    assert (await store.prune_runs(older_than="1s")).runs == 2
    assert sorted(ids(await store.list_runs())) == ["a6", "a7", "p-old", "r-old"]
    with pytest.raises(InvalidInputError, match="older_than"):
        await store.prune_runs(older_than="soon")


def test_durations_and_time_bounds() -> None:
    assert parse_duration("30d") == timedelta(days=30)
    assert parse_duration("1.5h") == timedelta(minutes=90)
    assert parse_duration(" 2w ") == timedelta(weeks=2)
    now = datetime(2026, 3, 1, tzinfo=timezone.utc)
    assert resolve_time("7d", name="since", now=now) == "2026-02-22T00:00:00.000000+00:00"
    assert (
        resolve_time(timedelta(hours=1), name="since", now=now)
        == "2026-02-28T23:00:00.000000+00:00"
    )
    assert resolve_time("2026-01-31", name="since") == "2026-01-31T00:00:00.000000+00:00"
    assert resolve_time(None, name="since") is None
    with pytest.raises(InvalidInputError, match="invalid until 'yesterday'"):
        resolve_time("yesterday", name="until")
