"""Checking what callers pass in before anything is written: ids, metadata and timeouts.

Every check raises InvalidInputError naming the argument and the limit it breaks. The limits
hold on both backends:

- an id (``run_id``, ``thread_id``, ``assistant_id``, ``user_id``, ``worker_id``) is text of
  at most ``MAX_ID_BYTES`` (1024) bytes in UTF-8, without NUL and without a lone surrogate.
  PostgreSQL stores no NUL in text, neither backend stores a lone surrogate, and an id is a
  key of btree indexes, whose entries PostgreSQL caps near 2.7 kB. Ids are refused rather
  than made storable (``text``): a changed id would name another run;
- ``metadata`` (and ``kwargs``) is a mapping that encodes as JSON, nested at most
  ``MAX_JSON_DEPTH`` (32) containers deep (its strings follow ``text``'s rule when written);
- a ``timeout`` is a number of seconds > 0 that is finite as a float.
"""

from __future__ import annotations

import json
import math
import reprlib
from collections.abc import Mapping
from typing import Any

from langgraph_runstore.errors import InvalidInputError
from langgraph_runstore.text import is_storable

#: The most UTF-8 bytes an id may have (PostgreSQL's btree index entries stop near 2704).
MAX_ID_BYTES = 1024

#: How many containers (dicts, lists) deep ``metadata`` and ``kwargs`` may nest.
MAX_JSON_DEPTH = 32


def _short(value: Any, limit: int = 80) -> str:
    try:
        text = repr(value)
    except RecursionError:  # nested too deep to show whole
        text = reprlib.repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _clip(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _text_fault(text: str) -> str | None:
    """What makes ``text`` unstorable (NUL, a lone surrogate), or None when it is fine."""
    if is_storable(text):
        return None
    for index, char in enumerate(text):
        if char == "\x00":
            return f"a NUL character (U+0000) at index {index}"
        if "\ud800" <= char <= "\udfff":
            return f"a lone surrogate (U+{ord(char):04X}) at index {index}"
    return None


def check_id(value: Any, *, name: str, optional: bool = False, run_id: str | None = None) -> None:
    """Raise InvalidInputError unless ``value`` is an id the stores can keep (see the module
    docstring); ``optional`` ids may also be None."""
    if value is None and optional:
        return
    if not isinstance(value, str) or (not value and not optional):
        expected = "a string or None" if optional else "a non-empty string"
        raise InvalidInputError(f"{name} must be {expected}, got {_short(value)}", run_id=run_id)
    fault = _text_fault(value)
    if fault is not None:
        raise InvalidInputError(
            f"{name} {_short(value)} contains {fault}: ids must be text without NUL or "
            "lone surrogates",
            run_id=run_id,
        )
    # a UTF-8 character is at most 4 bytes: most ids need no encoding to be measured
    if len(value) * 4 > MAX_ID_BYTES and len(value.encode("utf-8")) > MAX_ID_BYTES:
        raise InvalidInputError(
            f"{name} is {len(value.encode('utf-8'))} bytes in UTF-8 ({_short(value, 40)}): "
            f"ids are limited to {MAX_ID_BYTES} bytes",
            run_id=run_id,
        )


def check_depth(value: Any, *, name: str, run_id: str | None = None) -> None:
    """Raise InvalidInputError when ``value`` nests more than ``MAX_JSON_DEPTH`` containers
    deep (or contains itself): encoding it, or any recursive walk, would exhaust the stack.
    Iterative, so a deep value is measured without that happening here."""
    if not isinstance(value, Mapping | list | tuple) or not value:
        return
    stack: list[tuple[Any, int, str]] = [(value, 1, name)]
    while stack:
        node, depth, where = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise InvalidInputError(
                f"{name} nests more than {MAX_JSON_DEPTH} levels deep (at {_clip(where)}), "
                "or contains itself",
                run_id=run_id,
            )
        items = node.items() if isinstance(node, Mapping) else enumerate(node)
        for key, item in items:
            if isinstance(item, Mapping | list | tuple):
                stack.append((item, depth + 1, f"{where}[{key!r}]"))


def check_json_mapping(value: Any, *, name: str, run_id: str | None = None) -> dict[str, Any]:
    """A dict copy of ``value`` once it is known to encode as JSON (module docstring).

    None is an empty mapping. A value nested deeper than ``MAX_JSON_DEPTH`` (or one that
    contains itself) is refused before it is encoded, which would exhaust the stack.
    """
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidInputError(
            f"{name} must be a mapping (a dict), got {type(value).__name__}: {_short(value)}",
            run_id=run_id,
        )
    if not value:
        return {}
    check_depth(value, name=name, run_id=run_id)
    try:
        json.dumps(value if type(value) is dict else dict(value), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(
            f"{name} must be JSON-serialisable: {exc} (value: {_short(value, 120)})",
            run_id=run_id,
        ) from None
    return dict(value)


def check_timeout(value: Any, *, name: str = "timeout") -> float | None:
    """``value`` as seconds (a float), or None for no timeout; InvalidInputError for a value
    that is not a finite number > 0 (NaN, infinity, a bool, an int too big for a float)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInputError(
            f"{name} must be a number of seconds > 0 or None, got {_short(value)}"
        )
    try:
        seconds = float(value)
    except OverflowError:
        raise InvalidInputError(
            f"{name} {_short(value, 40)} is too large: a timeout must fit a float "
            "(at most about 1.8e308 seconds)"
        ) from None
    if math.isnan(seconds) or math.isinf(seconds) or seconds <= 0:
        raise InvalidInputError(
            f"{name} must be a finite number of seconds > 0, got {_short(value)}"
        )
    return seconds


def check_flush_interval(value: Any) -> float:
    """``flush_interval`` as seconds: a finite number > 0, else InvalidInputError."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise InvalidInputError(f"flush_interval must be a number of seconds > 0, got {value!r}")
    if value == float("inf"):
        raise InvalidInputError("flush_interval must be finite, got inf")
    return float(value)


__all__ = [
    "MAX_ID_BYTES",
    "MAX_JSON_DEPTH",
    "check_depth",
    "check_flush_interval",
    "check_id",
    "check_json_mapping",
    "check_timeout",
]
