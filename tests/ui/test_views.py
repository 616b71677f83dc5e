"""The parts of the pages that adapt to the installed version: filters found from the read
API's signatures, usage tables whatever numbers an entry carries, journal events whatever
their field names, and how numbers read."""

from __future__ import annotations

from typing import Any

import pytest

from langgraph_runstore.errors import InvalidInputError
from langgraph_runstore.query import UsageRow
from langgraph_runstore.ui.pages import event_rows
from langgraph_runstore.ui.params import parse_filters, supported_filters
from langgraph_runstore.ui.views import (
    format_number,
    interrupt_rows,
    percentile_keys,
    usage_table,
)


async def today(*, thread_id: str | None = None, user_id: str | None = None) -> None: ...


async def later(
    *,
    thread_id: str | None = None,
    assistant_id: str | None = None,
    model: str | None = None,
    metadata: dict[str, Any] | None = None,
) -> None: ...


def test_optional_filters_follow_the_read_apis_signature() -> None:
    assert supported_filters(today) == {}
    assert supported_filters(later) == {
        "assistant": "assistant_id",
        "model": "model",
        "meta": "metadata",
    }
    with pytest.raises(InvalidInputError, match="cannot filter by assistant"):
        parse_filters({"assistant": ["a1"]}, optional=supported_filters(today))
    filters = parse_filters(
        {"assistant": ["a1"], "meta": ["team=red", "env=prod"], "thread": ["t"]},
        optional=supported_filters(later),
    )
    assert filters.keywords(supported_filters(later)) == {
        "assistant_id": "a1",
        "metadata": {"team": "red", "env": "prod"},
        "thread_id": "t",
    }
    with pytest.raises(InvalidInputError, match="invalid meta 'team': expected key=value"):
        parse_filters({"meta": ["team"]}, optional=supported_filters(later))


def test_usage_tables_show_every_number_an_entry_carries() -> None:
    table = usage_table(
        {
            "gpt-4o": {"input_tokens": 1200, "output_tokens": 30, "total_tokens": 1230,
                       "llm_call_count": 2, "llm_ms": 812.4, "cost_usd": 0.0123},
            "mystery": {"input_tokens": 5, "output_tokens": 1, "total_tokens": 6,
                        "cost_usd": None},
        }
    )  # fmt: skip
    assert table is not None
    assert table.titles[:3] == ("input", "output", "total")
    assert table.titles[-3:] == ("calls", "LLM time", "cost")
    cells = dict(table.rows)
    assert cells["gpt-4o"][:3] == ("1,200", "30", "1,230")
    assert cells["gpt-4o"][-3:] == ("2", "812 ms", "$0.0123")
    assert cells["mystery"][-1] == ""  # no price: no number
    assert usage_table({}) is None


def test_journal_events_read_whatever_their_field_names() -> None:
    rows = event_rows(
        [
            {"seq": 1, "created_at": "2026-01-31T12:00:00.5+00:00", "kind": "run.started",
             "run_id": "r1", "payload": {"node": "agent"}},
            {"id": 2, "ts": "2026-01-31T12:00:01+00:00", "type": "llm.ended", "tokens": 15},
        ]
    )  # fmt: skip
    assert rows == [
        ("1", "2026-01-31 12:00:00", "run.started", '{"payload": {"node": "agent"}}'),
        ("2", "2026-01-31 12:00:01", "llm.ended", '{"tokens": 15}'),
    ]


def test_latency_percentiles_are_found_in_usage_rows() -> None:
    rows = [UsageRow(key="a", runs=1), UsageRow(key="b", runs=2, duration_p50_ms=120.0)]
    assert percentile_keys(rows) == [
        "duration_p50_ms",
        "duration_p95_ms",
        "llm_call_p50_ms",
        "llm_call_p95_ms",
    ]
    assert percentile_keys([]) == []


def test_numbers_read_as_money_time_or_counts() -> None:
    assert format_number("cost_usd", 1.5) == "$1.5000"
    assert format_number("cost_usd", 1234.5) == "$1,234.50"
    assert format_number("llm_ms", 1234.4) == "1,234 ms"
    assert format_number("total_tokens", 1234) == "1,234"
    assert format_number("anything", None) == ""


def test_interrupt_namespaces_read_as_a_path() -> None:
    rows = interrupt_rows([{"id": "i1", "value": {"q": "ok?"}, "ns": ["outer:1", "inner:2"]}])
    assert rows == [("i1", '{"q": "ok?"}', "outer:1 / inner:2")]
