"""Latency percentiles over runs held in memory, computed as PostgreSQL's
``percentile_cont`` computes them (the SQL stores compute them in the database:
``store/percentiles.py``).

Two samples per group of ``aggregate_usage``: the duration of each finished run (started to
ended), and the duration of each LLM call the runs recorded (``llm_call_ms``). With
``by="model"`` a run's duration counts under every model it used, and each call under its
own model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

#: The percentiles ``aggregate_usage`` reports.
PERCENTILES = (0.5, 0.95)


def percentile_cont(values: Sequence[float], fraction: float) -> float | None:
    """The ``fraction`` percentile of ``values`` with linear interpolation between the two
    nearest ranks (SQL's ``percentile_cont``); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    position = fraction * (len(ordered) - 1)
    lower = int(position)
    low = ordered[lower]
    if lower + 1 >= len(ordered):
        return float(low)
    return float(low + (position - lower) * (ordered[lower + 1] - low))


def run_ms(row: Mapping[str, Any]) -> float | None:
    """Milliseconds from a row's started_at to its ended_at; None unless both are set."""
    start, end = row.get("started_at"), row.get("ended_at")
    if not start or not end:
        return None
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds() * 1000.0


def call_samples(row: Mapping[str, Any], model: str | None = None) -> list[float]:
    """The recorded LLM call durations of a row, of one model or of all."""
    by_model = row.get("llm_call_ms") or {}
    if model is not None:
        return [float(value) for value in by_model.get(model) or ()]
    return [float(value) for samples in by_model.values() for value in samples or ()]


def latency_fields(durations: Sequence[float], calls: Sequence[float]) -> dict[str, float | None]:
    """The UsageRow latency fields of one group's samples."""
    p50, p95 = PERCENTILES
    return {
        "duration_p50_ms": percentile_cont(durations, p50),
        "duration_p95_ms": percentile_cont(durations, p95),
        "llm_call_p50_ms": percentile_cont(calls, p50),
        "llm_call_p95_ms": percentile_cont(calls, p95),
    }


__all__ = ["PERCENTILES", "call_samples", "latency_fields", "percentile_cont", "run_ms"]
