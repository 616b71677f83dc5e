"""The query string of each page, checked: filters, time window, cursor and page size.

Every bad value is refused with ``InvalidInputError`` naming the parameter and what it
takes (the page answers 400); unknown parameters are refused too, since a misspelt filter
that is silently ignored shows the wrong runs. Empty values count as absent: the filter form
sends every field.

Filters that the installed read API does not take (assistant, model, metadata before they
landed) are feature-detected from the signatures of ``list_runs`` and ``aggregate_usage``:
their inputs are hidden and their parameters refused with a message saying so.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from langgraph_runstore.errors import InvalidInputError
from langgraph_runstore.query import USAGE_GROUPINGS, decode_cursor, resolve_time
from langgraph_runstore.schemas import RunStatus
from langgraph_runstore.validate import check_id

#: URL name -> the keyword names a read method may call that filter (first found wins).
OPTIONAL_FILTERS: dict[str, tuple[str, ...]] = {
    "assistant": ("assistant_id", "assistant"),
    "model": ("model", "model_name"),
    "meta": ("metadata",),
}
#: URL name -> keyword of the filters every version takes.
BASE_FILTERS = {"thread": "thread_id", "user": "user_id"}
DEFAULT_LIMIT = 50
MAX_LIMIT = 500
#: The time windows the filter form offers (any duration or ISO time works in the URL).
WINDOWS = ("1h", "24h", "7d", "30d", "90d")
STATUS_VALUES = tuple(s.value for s in RunStatus)


def supported_filters(method: Callable[..., Any]) -> dict[str, str]:
    """URL filter name -> keyword, for the optional filters ``method`` accepts."""
    try:
        names = set(inspect.signature(method).parameters)
    except (TypeError, ValueError):
        return {}
    found = {}
    for url_name, candidates in OPTIONAL_FILTERS.items():
        for keyword in candidates:
            if keyword in names:
                found[url_name] = keyword
                break
    return found


@dataclass(frozen=True)
class Filters:
    """The filters of the runs, thread and usage pages, as the URL gave them."""

    statuses: tuple[str, ...] = ()
    ids: Mapping[str, str] = field(default_factory=dict)  # thread, user, assistant, model
    meta: tuple[tuple[str, str], ...] = ()
    since: str | None = None
    until: str | None = None
    cursor: str | None = None
    limit: int = DEFAULT_LIMIT

    @property
    def active(self) -> bool:
        """Whether anything narrows the runs (the empty state then says "no match")."""
        return bool(self.statuses or self.ids or self.meta or self.since or self.until)

    def keywords(self, optional: Mapping[str, str]) -> dict[str, Any]:
        """The read method's keywords for these filters (``optional`` from supported_filters)."""
        kwargs: dict[str, Any] = {}
        for name, value in self.ids.items():
            kwargs[BASE_FILTERS.get(name) or optional[name]] = value
        if self.meta:
            kwargs[optional["meta"]] = dict(self.meta)
        if self.since is not None:
            kwargs["since"] = self.since
        if self.until is not None:
            kwargs["until"] = self.until
        return kwargs

    def query(self, **changes: Any) -> list[tuple[str, str]]:
        """These filters as query pairs (for links), with ``changes`` applied."""
        values: dict[str, Any] = {
            "status": list(self.statuses),
            **self.ids,
            "meta": [f"{k}={v}" for k, v in self.meta],
            "since": self.since,
            "until": self.until,
            "cursor": self.cursor,
            "limit": self.limit if self.limit != DEFAULT_LIMIT else None,
        }
        values.update(changes)
        pairs: list[tuple[str, str]] = []
        for name, value in values.items():
            for item in value if isinstance(value, list) else [value]:
                if item is not None and item != "":
                    pairs.append((name, str(item)))
        return pairs


def _single(params: Mapping[str, Sequence[str]], name: str) -> str | None:
    values = [v for v in params.get(name, ()) if v != ""]
    if len(values) > 1:
        raise InvalidInputError(f"query parameter {name!r} given {len(values)} times: give it once")
    return values[0] if values else None


def _limit(value: str | None) -> int:
    if value is None:
        return DEFAULT_LIMIT
    try:
        limit = int(value)
    except ValueError:
        limit = 0
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInputError(
            f"invalid limit {value!r}: expected a whole number from 1 to {MAX_LIMIT}"
        )
    return limit


def _time(value: str | None, name: str) -> str | None:
    if value is not None:
        resolve_time(value, name=name)  # refused here, resolved again by the query
    return value


def _meta(values: Sequence[str]) -> tuple[tuple[str, str], ...]:
    pairs = []
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InvalidInputError(f"invalid meta {item!r}: expected key=value")
        pairs.append((key.strip(), value))
    return tuple(pairs)


def parse_filters(
    params: Mapping[str, Sequence[str]],
    *,
    optional: Mapping[str, str],
    statuses: bool = True,
    paging: bool = True,
    extra: Sequence[str] = (),
) -> Filters:
    """The filters in ``params`` (name -> every value given); InvalidInputError if bad.

    ``optional`` are the optional filters the read method takes; ``extra`` names further
    parameters the page reads itself.
    """
    known = {"thread", "user", "since", "until", *optional, *extra}
    if statuses:
        known.add("status")
    if paging:
        known |= {"cursor", "limit"}
    for name in params:
        if name in known:
            continue
        if name in OPTIONAL_FILTERS:
            raise InvalidInputError(
                f"this version of langgraph-runstore cannot filter by {name}: "
                "its list_runs/aggregate_usage take no such filter"
            )
        raise InvalidInputError(
            f"unknown query parameter {name!r}: expected one of {', '.join(sorted(known))}"
        )
    chosen: list[str] = []
    for value in params.get("status", ()):
        if value == "":
            continue
        if value not in STATUS_VALUES:
            raise InvalidInputError(
                f"invalid status {value!r}: expected one of {', '.join(STATUS_VALUES)}"
            )
        if value not in chosen:
            chosen.append(value)
    ids: dict[str, str] = {}
    for name in ("thread", "user", "assistant", "model"):
        given = _single(params, name) if name in known else None
        if given is not None:
            check_id(given, name=name)
            ids[name] = given
    cursor = _single(params, "cursor") if paging else None
    if cursor is not None:
        decode_cursor(cursor)
    return Filters(
        statuses=tuple(chosen),
        ids=ids,
        meta=_meta([v for v in params.get("meta", ()) if v != ""]) if "meta" in known else (),
        since=_time(_single(params, "since"), "since"),
        until=_time(_single(params, "until"), "until"),
        cursor=cursor,
        limit=_limit(_single(params, "limit")) if paging else DEFAULT_LIMIT,
    )


def parse_grouping(params: Mapping[str, Sequence[str]]) -> str:
    """The usage page's ``by`` (model by default)."""
    by = _single(params, "by") or "model"
    if by not in USAGE_GROUPINGS:
        raise InvalidInputError(f"invalid by {by!r}: expected one of {', '.join(USAGE_GROUPINGS)}")
    return by


def refuse_any(params: Mapping[str, Sequence[str]]) -> None:
    """Refuse the parameters a page does not take (all of them, for a run's page)."""
    for name in params:
        raise InvalidInputError(f"unknown query parameter {name!r}: this page does not take it")


__all__ = [
    "BASE_FILTERS",
    "DEFAULT_LIMIT",
    "MAX_LIMIT",
    "OPTIONAL_FILTERS",
    "STATUS_VALUES",
    "WINDOWS",
    "Filters",
    "parse_filters",
    "parse_grouping",
    "refuse_any",
    "supported_filters",
]
