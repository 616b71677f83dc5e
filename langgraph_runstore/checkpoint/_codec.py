"""Byte-level encoding for the checkpointer: serde blobs with optional compression, and JSON.

Every channel value, pending write and checkpoint body goes through the saver's serde.
Large serde output is deflated before it is stored; the stored type then carries a suffix
so that decoding knows to inflate first. Metadata and channel versions are stored as JSON,
because the database filters on them.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from typing import Any

from langgraph.checkpoint.serde.base import SerializerProtocol

try:  # orjson ships with langsmith, a dependency of langchain-core; json is the fallback
    import orjson

    def _dumps(obj: Any) -> str:
        return orjson.dumps(obj).decode()

    _loads: Callable[[str | bytes], Any] = orjson.loads
    _JSON_ERRORS: tuple[type[Exception], ...] = (TypeError, orjson.JSONEncodeError)
except ImportError:  # pragma: no cover - orjson is normally present
    import json

    def _dumps(obj: Any) -> str:
        return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False)

    _loads = json.loads
    _JSON_ERRORS = (TypeError, ValueError)

#: Serde output at least this long is deflated (when that makes it smaller).
COMPRESS_MIN_BYTES = 16384
#: Suffix on the stored type of a deflated value.
COMPRESSED_SUFFIX = "@z"
# Level 1 gets most of the gain on msgpack'd messages at a fraction of level 6's cost.
_LEVEL = 1


def encode(serde: SerializerProtocol, value: Any) -> tuple[str, bytes]:
    """Serialise ``value`` with ``serde``; deflate it when it is large and compresses well."""
    type_, data = serde.dumps_typed(value)
    if len(data) >= COMPRESS_MIN_BYTES:
        packed = zlib.compress(data, _LEVEL)
        # encrypted or already-compressed output does not shrink: keep it as it is
        if len(packed) < len(data) - (len(data) >> 3):
            return type_ + COMPRESSED_SUFFIX, packed
    return type_, data


def decode(serde: SerializerProtocol, type_: str, data: bytes) -> Any:
    """Invert :func:`encode`."""
    if type_.endswith(COMPRESSED_SUFFIX):
        type_ = type_[: -len(COMPRESSED_SUFFIX)]
        data = zlib.decompress(data)
    return serde.loads_typed((type_, bytes(data)))


def dumps_json(obj: Any) -> str:
    """Compact JSON text; raises TypeError or ValueError for values JSON cannot hold."""
    try:
        return _dumps(obj)
    except _JSON_ERRORS as exc:
        raise TypeError(str(exc)) from exc


loads_json: Callable[[str | bytes], Any] = _loads
