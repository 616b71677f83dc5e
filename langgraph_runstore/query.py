"""The read side of the run store: pages of runs, usage aggregates, retention results.

Also the helpers every backend shares: time windows (``"7d"``, ISO timestamps, datetimes),
keyset cursors, and the pure-Python versions of the queries that ``MemoryRunStore`` and a
store-less ``RunManager`` run over rows in memory.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Generic, Literal, TypeAlias, TypeVar, cast

from langgraph_runstore.errors import InvalidInputError
from langgraph_runstore.latency import call_samples, latency_fields, run_ms
from langgraph_runstore.schemas import (
    FINAL_STATUSES,
    ROW_FIELDS,
    TOKEN_FIELDS,
    RunRecord,
    RunStatus,
    TokenUsage,
    as_record,
    normalize_timestamp,
)

T = TypeVar("T")

#: A ``status=`` filter: one status, several, or None for any.
StatusFilter: TypeAlias = str | RunStatus | Iterable[str | RunStatus] | None
#: A ``since=``/``until=`` bound: a datetime, an ISO-8601 string, a timedelta or a duration
#: such as ``"7d"`` (both meaning that long ago), or None for no bound.
TimeBound: TypeAlias = str | datetime | timedelta | None

UsageGrouping = Literal["model", "thread", "day", "user", "assistant"]
#: The groupings ``aggregate_usage(by=...)`` accepts.
USAGE_GROUPINGS: tuple[str, ...] = ("model", "thread", "day", "user", "assistant")
#: What ``top_runs(by=...)`` can rank by.
TOP_RUN_ORDERS: tuple[str, ...] = ("duration", "tokens", "cost")

FINAL_STATUS_VALUES = tuple(sorted(s.value for s in FINAL_STATUSES))
#: Statuses that count as failures in ``UsageRow.error_rate``.
FAILED_STATUS_VALUES = (RunStatus.error.value, RunStatus.timeout.value)
#: The model name runs are counted under when they name none.
UNKNOWN_MODEL = "unknown"

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|m|min|h|d|w)\s*$", re.IGNORECASE)
_UNIT_SECONDS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 604800}


@dataclass(frozen=True)
class RunPage(Generic[T]):
    """One page of ``list_runs``: runs newest first, and the cursor of the next page.

    ``next_cursor`` is None on the last page; pass it as ``cursor=`` to get the next one.
    Iterating a page iterates its runs. In a notebook a page of RunRecords shows as a table.
    """

    runs: tuple[T, ...]
    next_cursor: str | None = None

    def __iter__(self) -> Iterator[T]:
        return iter(self.runs)

    def __len__(self) -> int:
        return len(self.runs)

    def __getitem__(self, index: int) -> T:
        return self.runs[index]

    def _repr_html_(self) -> str:
        from langgraph_runstore.display import runs_html

        return runs_html(self._displayable(), next_cursor=self.next_cursor)

    def to_dataframe(self) -> Any:
        """The runs as a pandas DataFrame, one row per run (needs the ``pandas`` extra)."""
        from langgraph_runstore.display import runs_dataframe

        return runs_dataframe(self._displayable(), fields=ROW_FIELDS)

    def _displayable(self) -> list[RunRecord]:
        # a page holds RunRecords (manager) or row dicts (store)
        return [as_record(cast("RunRecord | Mapping[str, Any]", run)) for run in self.runs]


@dataclass(frozen=True)
class UsageRow:
    """Usage of one group (a model, thread, user, assistant or UTC day) from
    ``aggregate_usage``.

    ``runs`` counts runs; with ``by="model"`` a run that called several models counts under
    each, and ``tokens``, ``llm_calls``, ``cost_usd`` and ``llm_ms`` are the model's own
    (rows written before calls were counted per model give the run's calls). Percentiles
    are ``percentile_cont`` in ms: of the durations of the group's finished runs, and of the
    durations of its LLM calls; None without samples. ``cost_usd`` is None when no call of
    the group was priced.
    """

    key: str | None
    runs: int
    by_status: Mapping[str, int] = field(default_factory=dict)
    llm_calls: int = 0
    tokens: TokenUsage = field(default_factory=TokenUsage)
    #: of the ``success`` runs, those that paused on an interrupt (stop_reason "interrupt")
    paused: int = 0
    cost_usd: float | None = None
    unpriced_calls: int = 0
    #: summed duration of the group's LLM calls
    llm_ms: float = 0.0
    duration_p50_ms: float | None = None
    duration_p95_ms: float | None = None
    llm_call_p50_ms: float | None = None
    llm_call_p95_ms: float | None = None

    @property
    def finished(self) -> int:
        """Runs in a final status."""
        return sum(self.by_status.get(status, 0) for status in FINAL_STATUS_VALUES)

    @property
    def error_rate(self) -> float:
        """Share of finished runs that ended ``error`` or ``timeout`` (0.0 when none finished)."""
        failed = sum(self.by_status.get(status, 0) for status in FAILED_STATUS_VALUES)
        return failed / self.finished if self.finished else 0.0

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: key, runs, by_status, paused, error_rate, llm_calls, tokens,
        cost and latency."""
        return {
            "key": self.key,
            "runs": self.runs,
            "by_status": dict(self.by_status),
            "paused": self.paused,
            "error_rate": round(self.error_rate, 6),
            "llm_calls": self.llm_calls,
            **self.tokens.as_dict(),
            "cost_usd": self.cost_usd,
            "unpriced_calls": self.unpriced_calls,
            "llm_ms": self.llm_ms,
            "duration_p50_ms": self.duration_p50_ms,
            "duration_p95_ms": self.duration_p95_ms,
            "llm_call_p50_ms": self.llm_call_p50_ms,
            "llm_call_p95_ms": self.llm_call_p95_ms,
        }


@dataclass(frozen=True)
class PruneResult:
    """What ``prune_runs`` did: runs deleted (or, for a dry run, that would be) and batches.

    ``longest_write_seconds`` is the longest single write (one batch's checkpoint delete or
    run delete): how long the pruner held the database's write lock at most, on SQLite.
    """

    runs: int
    batches: int = 0
    longest_write_seconds: float = 0.0
    cutoff: str = ""
    dry_run: bool = False


# -- arguments ------------------------------------------------------------------------------


def parse_duration(value: str) -> timedelta:
    """``"30d"``, ``"12h"``, ``"15m"``, ``"45s"`` or ``"2w"`` as a timedelta.

    Raises InvalidInputError for anything else.
    """
    match = _DURATION.match(value) if isinstance(value, str) else None
    if match is None:
        raise InvalidInputError(
            f"invalid duration {value!r}: expected a number and a unit, e.g. 30d, 12h, 15m, 45s, 2w"
        )
    return timedelta(seconds=float(match.group(1)) * _UNIT_SECONDS[match.group(2).lower()])


def resolve_time(
    value: str | datetime | timedelta | None, *, name: str, now: datetime | None = None
) -> str | None:
    """A point in time as the stored text form (UTC ISO-8601, microseconds).

    Accepts a datetime, an ISO-8601 string or date, a timedelta or a duration such as
    ``"7d"`` (both meaning that long before ``now``), or None (no bound).
    """
    if value is None:
        return None
    now = now or datetime.now(timezone.utc)
    if isinstance(value, timedelta):
        return normalize_timestamp(now - value, name=name)
    if isinstance(value, str) and _DURATION.match(value):
        return normalize_timestamp(now - parse_duration(value), name=name)
    try:
        return normalize_timestamp(value, name=name)
    except InvalidInputError:
        raise InvalidInputError(
            f"invalid {name} {value!r}: expected a duration such as 7d, 12h or 30m, "
            "or an ISO-8601 date or timestamp such as 2026-01-31"
        ) from None


def parse_statuses(status: str | RunStatus | Iterable[str | RunStatus] | None) -> tuple[str, ...]:
    """Status filter values as sorted, distinct strings (empty: no filter)."""
    if status is None:
        return ()
    items = [status] if isinstance(status, (str, RunStatus)) else list(status)
    return tuple(sorted({RunStatus.parse(item).value for item in items}))


def check_limit(limit: int, *, name: str = "limit", maximum: int = 10_000) -> int:
    """``limit`` as an int in 1..maximum, else InvalidInputError."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= maximum:
        raise InvalidInputError(f"{name} must be an int from 1 to {maximum}, got {limit!r}")
    return limit


def check_grouping(by: str) -> str:
    """``by`` if it is one of USAGE_GROUPINGS, else InvalidInputError."""
    if by not in USAGE_GROUPINGS:
        raise InvalidInputError(f"unknown usage grouping {by!r}: expected one of {USAGE_GROUPINGS}")
    return by


def encode_cursor(created_at: str, seq: int) -> str:
    """An opaque keyset cursor for the run after (older than) this position."""
    raw = json.dumps([created_at, int(seq)], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[str, int]:
    """``(created_at, seq)`` from a cursor of ``encode_cursor``; InvalidInputError otherwise."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created_at, seq = json.loads(raw)
        if not isinstance(created_at, str) or not isinstance(seq, int):
            raise ValueError(cursor)
        return created_at, seq
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError):
        raise InvalidInputError(
            f"malformed cursor {cursor!r}: pass the next_cursor of a previous page"
        ) from None


# -- the same queries over rows in memory ---------------------------------------------------


def _in_window(row: Mapping[str, Any], since: str | None, until: str | None) -> bool:
    created = row.get("created_at") or ""
    return (since is None or created >= since) and (until is None or created < until)


def page_rows(
    rows: Iterable[dict[str, Any]],
    *,
    thread_id: str | None,
    statuses: Sequence[str],
    user_id: str | None,
    since: str | None,
    until: str | None,
    limit: int,
    cursor: str | None,
) -> RunPage[dict[str, Any]]:
    """``list_runs`` over rows that carry ``seq``: newest first, ties in insertion order."""
    after = decode_cursor(cursor) if cursor is not None else None
    kept = [
        row
        for row in rows
        if (thread_id is None or row["thread_id"] == thread_id)
        and (not statuses or row.get("status") in statuses)
        and (user_id is None or row.get("user_id") == user_id)
        and _in_window(row, since, until)
        and (
            after is None
            or row["created_at"] < after[0]
            or (row["created_at"] == after[0] and row["seq"] > after[1])
        )
    ]
    kept.sort(key=lambda row: row["seq"])
    kept.sort(key=lambda row: row["created_at"], reverse=True)
    page = kept[:limit]
    more = len(kept) > limit
    next_cursor = encode_cursor(page[-1]["created_at"], page[-1]["seq"]) if more else None
    return RunPage(tuple(page), next_cursor)


def usage_rows(
    groups: Mapping[str | None, dict[str, Any]],
    latency: Mapping[str | None, Mapping[str, float | None]] | None = None,
) -> list[UsageRow]:
    """UsageRows from ``{key: {"by_status": {...}, "llm_calls": n, <token fields>, ...}}``
    (``new_group``) and each key's percentiles."""
    latency = latency or {}
    result = [
        UsageRow(
            key=key,
            runs=sum(acc["by_status"].values()),
            by_status=dict(sorted(acc["by_status"].items())),
            llm_calls=int(acc["llm_calls"]),
            tokens=TokenUsage(*(int(acc[name]) for name in TOKEN_FIELDS)),
            paused=int(acc["paused"]),
            cost_usd=acc["cost_usd"],
            unpriced_calls=int(acc["unpriced_calls"]),
            llm_ms=round(float(acc["llm_ms"]), 3),
            **dict(latency.get(key) or {}),
        )
        for key, acc in groups.items()
    ]
    return result


def sort_usage(by: str, rows: list[UsageRow]) -> list[UsageRow]:
    """Days in calendar order; other groups by total tokens, then runs, then key."""
    if by == "day":
        return sorted(rows, key=lambda row: row.key or "")
    return sorted(rows, key=lambda row: (-row.tokens.total_tokens, -row.runs, row.key or ""))


def new_group() -> dict[str, Any]:
    """An empty accumulator for ``usage_rows``."""
    return {
        "by_status": {},
        "llm_calls": 0,
        "paused": 0,
        **dict.fromkeys(TOKEN_FIELDS, 0),
        "cost_usd": None,
        "unpriced_calls": 0,
        "llm_ms": 0.0,
    }


def add_to_group(
    groups: dict[str | None, dict[str, Any]],
    key: str | None,
    status: str | None,
    runs: int,
    llm_calls: int,
    tokens: Mapping[str, Any],
    paused: int = 0,
) -> None:
    """Fold one (key, status) aggregate into ``groups``; ``tokens`` also carries the
    ``cost_usd`` (None: nothing priced), ``unpriced_calls`` and ``llm_ms`` sums."""
    acc = groups.setdefault(key, new_group())
    name = status or RunStatus.pending.value  # a NULL status reads as pending everywhere
    acc["by_status"][name] = acc["by_status"].get(name, 0) + int(runs)
    acc["llm_calls"] += int(llm_calls or 0)
    acc["paused"] += int(paused or 0)
    for token in TOKEN_FIELDS:
        acc[token] += int(tokens.get(token) or 0)
    cost = tokens.get("cost_usd")
    if cost is not None:
        acc["cost_usd"] = (acc["cost_usd"] or 0.0) + float(cost)
    acc["unpriced_calls"] += int(tokens.get("unpriced_calls") or 0)
    acc["llm_ms"] += float(tokens.get("llm_ms") or 0.0)


_KEY_OF: dict[str, Callable[[Mapping[str, Any]], str | None]] = {
    "thread": lambda row: row["thread_id"],
    "user": lambda row: row.get("user_id"),
    "assistant": lambda row: row.get("assistant_id"),
    # created_at is UTC ISO-8601 text, so its first ten characters are the UTC day
    "day": lambda row: (row.get("created_at") or "")[:10],
}


def aggregate_rows(
    rows: Iterable[Mapping[str, Any]],
    *,
    by: str,
    since: str | None,
    until: str | None,
    thread_id: str | None = None,
    user_id: str | None = None,
) -> list[UsageRow]:
    """``aggregate_usage`` over rows in memory (same rules as the SQL version)."""
    groups: dict[str | None, dict[str, Any]] = {}
    durations: dict[str | None, list[float]] = {}
    calls_ms: dict[str | None, list[float]] = {}

    def sample(key: str | None, elapsed: float | None, calls: list[float]) -> None:
        if elapsed is not None:
            durations.setdefault(key, []).append(elapsed)
        calls_ms.setdefault(key, []).extend(calls)

    for row in rows:
        if not _in_window(row, since, until):
            continue
        if (thread_id is not None and row["thread_id"] != thread_id) or (
            user_id is not None and row.get("user_id") != user_id
        ):
            continue
        status = row.get("status")
        calls = int(row.get("llm_call_count") or 0)
        paused = int(status == RunStatus.success.value and row.get("stop_reason") == "interrupt")
        elapsed = run_ms(row)
        if by == "model":
            per_model = row.get("token_usage_by_model") or {}
            if per_model:
                for model, usage in per_model.items():
                    usage = usage or {}
                    own = usage.get("llm_call_count")
                    own_calls = calls if own is None else own
                    add_to_group(groups, model, status, 1, own_calls, usage, paused)
                    sample(model, elapsed, call_samples(row, model))
            else:
                key = row.get("model_name") or UNKNOWN_MODEL
                add_to_group(groups, key, status, 1, calls, row, paused)
                sample(key, elapsed, call_samples(row))
            continue
        key = _KEY_OF[by](row)
        add_to_group(groups, key, status, 1, calls, row, paused)
        sample(key, elapsed, call_samples(row))
    latency = {key: latency_fields(durations.get(key, []), calls_ms[key]) for key in calls_ms}
    return sort_usage(by, usage_rows(groups, latency))


def duration_of(row: Mapping[str, Any]) -> float | None:
    """Seconds from started_at to ended_at of a finished row; None when either is missing."""
    start, end = row.get("started_at"), row.get("ended_at")
    if not start or not end:
        return None
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


def top_rows(
    rows: Iterable[Mapping[str, Any]],
    *,
    by: str,
    since: str | None,
    until: str | None,
    limit: int,
    user_id: str | None = None,
) -> list[dict[str, Any]]:
    """``top_runs`` over rows in memory: by duration (finished runs), total tokens or cost."""
    kept = [
        dict(row)
        for row in rows
        if _in_window(row, since, until) and (user_id is None or row.get("user_id") == user_id)
    ]
    if by == "duration":
        scored = [(duration_of(row), row) for row in kept]
        ranked = [(score, row) for score, row in scored if score is not None]
        ranked.sort(key=lambda pair: (-pair[0], pair[1]["created_at"]))
    else:
        column = "cost_usd" if by == "cost" else "total_tokens"
        ranked = [(float(row.get(column) or 0), row) for row in kept]
        ranked = [pair for pair in ranked if pair[0] > 0]
        ranked.sort(key=lambda pair: (-pair[0], pair[1]["created_at"]))
    return [row for _, row in ranked[:limit]]


def check_top_order(by: str) -> str:
    """``by`` if it is one of TOP_RUN_ORDERS, else InvalidInputError."""
    if by not in TOP_RUN_ORDERS:
        raise InvalidInputError(f"unknown ranking {by!r}: expected one of {TOP_RUN_ORDERS}")
    return by


__all__ = [
    "FINAL_STATUS_VALUES",
    "TOP_RUN_ORDERS",
    "USAGE_GROUPINGS",
    "PruneResult",
    "RunPage",
    "UsageGrouping",
    "UsageRow",
    "decode_cursor",
    "encode_cursor",
    "parse_duration",
    "resolve_time",
]


def list_arguments(
    *,
    thread_id: str | None,
    status: str | RunStatus | Iterable[str | RunStatus] | None,
    user_id: str | None,
    since: str | datetime | timedelta | None,
    until: str | datetime | timedelta | None,
    limit: int,
    cursor: str | None,
) -> dict[str, Any]:
    """``list_runs`` arguments checked and normalised, as every backend takes them."""
    if cursor is not None:
        decode_cursor(cursor)  # refuse a bad cursor before touching the database
    return {
        "thread_id": thread_id,
        "statuses": parse_statuses(status),
        "user_id": user_id,
        "since": resolve_time(since, name="since"),
        "until": resolve_time(until, name="until"),
        "limit": check_limit(limit),
        "cursor": cursor,
    }


def window_arguments(
    since: str | datetime | timedelta | None, until: str | datetime | timedelta | None
) -> dict[str, str | None]:
    """``since``/``until`` checked and normalised."""
    return {"since": resolve_time(since, name="since"), "until": resolve_time(until, name="until")}


def prune_cutoff(older_than: TimeBound) -> str:
    """The created_at before which finished runs are pruned; ``older_than`` is required."""
    if older_than is None:
        raise InvalidInputError("older_than is required: a duration such as 30d, or a timestamp")
    cutoff = resolve_time(older_than, name="older_than")
    assert cutoff is not None
    return cutoff
