"""Reading messages in every form LangGraph accepts: their text, the first human message of
a run's input, and the message count of its output.

Accepted message forms (as ``add_messages`` coerces them): ``BaseMessage``; a ``(role,
content)`` tuple, or a two-item list (what JSON makes of a tuple, as in ``submit()``); a
dict with ``role`` (``user``/``human``) or ``type`` (``human``/``user``) and ``content``; a
bare string, which is a human message. An input is a state (a dict, or a pydantic model or
dataclass) whose ``messages`` holds a list of those or a single one; a list or a single
message given as the whole input; or a ``Command`` (its ``update`` is read;
``Command(resume=...)`` has no human message).

Text is a string content, or the text parts of a list of content blocks: strings, and
blocks of type ``text``, ``output_text`` or ``input_text`` whose ``text`` (or ``content``)
is a string. Reasoning, thinking, tool-use and media blocks are not text.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

_TEXT_BLOCK_TYPES = frozenset({"text", "output_text", "input_text"})
_HUMAN_ROLES = frozenset({"user", "human"})
_ROLES = _HUMAN_ROLES | {"ai", "assistant", "system", "developer", "tool", "function"}


def content_text(content: Any) -> str:
    """The text of a message content: a string, or the text parts of content blocks."""
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence):
        parts: list[str] = []
        for block in content:
            if isinstance(block, str):
                parts.append(block)
            elif isinstance(block, Mapping) and block.get("type") in _TEXT_BLOCK_TYPES:
                text = block.get("text")
                if not isinstance(text, str):
                    text = block.get("content")
                if isinstance(text, str):
                    parts.append(text)
        return "".join(parts)
    return ""


def message_text(message: Any) -> str:
    """The text of a message (any accepted form) or of a bare content value."""
    if isinstance(message, Mapping):
        return content_text(message.get("content"))
    return content_text(getattr(message, "content", message))


def _human_text(message: Any) -> str | None:
    """The text of ``message`` if it is a human message in any accepted form, else None."""
    if isinstance(message, str):
        return message
    if isinstance(message, (tuple, list)):
        if len(message) == 2 and isinstance(message[0], str):
            return content_text(message[1]) if message[0] in _HUMAN_ROLES else None
        return None
    if isinstance(message, Mapping):
        kind = message.get("role", message.get("type"))
        human = isinstance(kind, str) and kind in _HUMAN_ROLES
        return content_text(message.get("content")) if human else None
    if getattr(message, "type", None) == "human":  # HumanMessage and its chunk
        return content_text(getattr(message, "content", None))
    return None


def _input_messages(value: Any) -> Sequence[Any]:
    update = getattr(value, "update", None)
    if update is not None and hasattr(value, "resume"):  # a Command
        value = update
    if isinstance(value, Mapping):
        if "messages" not in value:
            # one message dict given as the whole input
            return (value,) if "content" in value and ("role" in value or "type" in value) else ()
        value = value["messages"]
    elif not isinstance(value, (str, Sequence)) and not hasattr(value, "content"):
        value = getattr(value, "messages", None)  # a pydantic or dataclass state
    if value is None:
        return ()
    if isinstance(value, (str, Mapping)) or hasattr(value, "content"):
        return (value,)  # one message given on its own
    if (
        isinstance(value, tuple)
        and len(value) == 2
        and isinstance(value[0], str)
        and (value[0] in _ROLES)
    ):
        return (value,)  # one (role, content) pair, not a tuple of two messages
    if isinstance(value, Sequence):
        return value
    return ()


def first_human_text(value: Any) -> str | None:
    """The text of the first non-empty human message in a run's input, or None."""
    for message in _input_messages(value):
        text = _human_text(message)
        if text:
            return text
    return None


def message_count(value: Any) -> int | None:
    """The number of messages in a graph's output state, or None when it has no list."""
    messages = value.get("messages") if isinstance(value, Mapping) else None
    if isinstance(messages, Sequence) and not isinstance(messages, str):
        return len(messages)
    return None


__all__ = ["content_text", "first_human_text", "message_count", "message_text"]
