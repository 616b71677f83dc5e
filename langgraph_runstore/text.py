"""Making text storable: the one rule every text value written to a runs row follows.

SQLite's and PostgreSQL's drivers encode text as UTF-8, which has no form for a lone UTF-16
surrogate (``"\\ud800"``, which a JSON decoder or a broken tokenizer can produce), and
PostgreSQL refuses NUL (``"\\x00"``) in ``text`` and in ``jsonb``. A run whose last AI
message held either used to lose its final write. The rule, applied before any write, on
every backend alike so that a run reads back the same everywhere:

* each NUL and each lone surrogate becomes U+FFFD (the replacement character);
* everything else is kept as it is.

It covers the free-text columns (``error``, ``stop_reason``, ``model_name``,
``last_ai_message``, ``first_human_message``) and every string, keys included, inside the
JSON columns (``metadata``, ``kwargs``, ``token_usage_by_model``, ``interrupts``). Ids are
not rewritten: an id holding NUL or a lone surrogate is refused (``InvalidInputError``),
because a changed id would name another run.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

REPLACEMENT = "\ufffd"
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")

#: The free-text columns of the runs table (ids and enums are checked, not rewritten).
TEXT_FIELDS = frozenset(
    {"error", "stop_reason", "model_name", "last_ai_message", "first_human_message"}
)


def storable_text(value: str) -> str:
    """``value`` with each NUL and lone surrogate replaced by U+FFFD."""
    if _UNSTORABLE.search(value) is None:
        return value
    # a valid surrogate pair cannot occur in a Python str (it would be one code point),
    # so every surrogate left here is a lone one
    return _UNSTORABLE.sub(REPLACEMENT, value)


def is_storable(value: str) -> bool:
    """Whether ``storable_text`` would leave ``value`` unchanged."""
    return _UNSTORABLE.search(value) is None


_SCALARS = frozenset({int, float, bool, type(None)})


def _is_clean(value: Any) -> bool:
    """Whether no string in ``value`` (keys included) needs the rule: one walk that builds
    nothing, for the usual case where nothing does."""
    kind = type(value)
    if kind is str:
        return _UNSTORABLE.search(value) is None
    if kind is int or kind is float or kind is bool or value is None:
        return True
    if kind is dict:
        for key, item in value.items():
            if type(key) is str and _UNSTORABLE.search(key) is not None:
                return False
            # numbers and None inline: usage entries and call times are mostly those
            if type(item) not in _SCALARS and not _is_clean(item):
                return False
        return True
    if kind is list or kind is tuple:
        for item in value:  # noqa: SIM110 (a plain loop: all() would build a generator)
            if type(item) not in _SCALARS and not _is_clean(item):
                return False
        return True
    return not isinstance(value, (str, Mapping, list, tuple))


def storable_json(value: Any) -> Any:
    """A JSON value with ``storable_text`` applied to every string in it, keys included.
    Returns ``value`` itself when nothing needed changing (the usual case)."""
    if _is_clean(value):
        return value
    return _rewritten(value)


def _rewritten(value: Any) -> Any:
    # reached only when ``_is_clean`` found something to rewrite: copy as it goes
    if isinstance(value, str):
        return storable_text(value)
    if isinstance(value, Mapping):
        return {
            (storable_text(key) if isinstance(key, str) else key): _rewritten(item)
            for key, item in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [_rewritten(item) for item in value]
    return value


def storable_fields(fields: Mapping[str, Any], json_fields: tuple[str, ...]) -> dict[str, Any]:
    """A copy of a row's ``fields`` with the rule applied to its text and JSON columns."""
    out = dict(fields)
    for name in TEXT_FIELDS:
        value = out.get(name)
        if type(value) is str:
            out[name] = storable_text(value)
    for name in json_fields:
        value = out.get(name)
        if value:
            out[name] = storable_json(value)
    return out


__all__ = [
    "REPLACEMENT",
    "TEXT_FIELDS",
    "is_storable",
    "storable_fields",
    "storable_json",
    "storable_text",
]
