"""Shared helpers for the benchmarks: repeated timing, min/median, ratio lines, URLs."""

from __future__ import annotations

import os
import statistics
import subprocess
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Measure:
    """Repeated measurements of one quantity (ops/s or seconds)."""

    values: tuple[float, ...]

    @property
    def min(self) -> float:
        return min(self.values)

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    @property
    def max(self) -> float:
        return max(self.values)


async def repeat(runs: int, call: Callable[[], Awaitable[float]]) -> Measure:
    """Call ``call`` ``runs`` times; each call returns one measurement."""
    return Measure(tuple([await call() for _ in range(runs)]))


def ratio_line(
    label: str, ours: Measure, theirs: Measure, *, goal: str, higher_is_better: bool
) -> str:
    """'label: 1.62x min, 1.70x median (goal >= 1.5x)'.

    ``min`` compares each side's best run (the least disturbed by machine noise: highest
    ops/s, or lowest time), ``median`` compares the medians.
    """
    best = ours.max / theirs.max if higher_is_better else ours.min / theirs.min
    median = ours.median / theirs.median
    return f"{label}: {best:.2f}x min, {median:.2f}x median (goal {goal})"


def pg_url() -> str | None:
    """The PostgreSQL server to benchmark on: RUNSTORE_BENCH_PG_URL, else scripts/pg.sh."""
    url = os.environ.get("RUNSTORE_BENCH_PG_URL")
    if url:
        return url
    try:
        out = subprocess.run(
            [str(REPO / "scripts" / "pg.sh"), "start"], capture_output=True, text=True, check=True
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return out.stdout.strip() or None


def table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(out)
