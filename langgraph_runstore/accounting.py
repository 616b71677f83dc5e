"""How a run's LLM calls are priced and attributed: the options a manager hands its trackers.

Attribution keys each call by where it ran, from the callback metadata LangGraph sets on
every runnable inside a node (``langgraph_node``, ``langgraph_checkpoint_ns``):

* the key is the node's checkpoint namespace with its task ids taken out: ``agent`` for a
  node of the root graph, ``researcher|agent`` for the node ``agent`` of a sub-graph that
  the node ``researcher`` runs. ``Send`` fan-out to one node sums under that node;
* an LLM called inside a tool counts under the node that ran the tool (``tools``), since
  the tool's runnables inherit that node's metadata;
* with ``usage_tags`` prefixes (deer-flow's ``("subagent:", "middleware:")``), a call that
  carries a tag with one of them counts under that tag instead, so the entries still add up
  to the run's totals;
* a call outside any node counts under ``(none)``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from langgraph_runstore.errors import InvalidInputError
from langgraph_runstore.pricing import PriceBook

#: The usage_by_node key of calls made outside any graph node.
NO_NODE = "(none)"


@dataclass(frozen=True)
class Accounting:
    """What trackers price calls with (None: not priced) and the tag prefixes they attribute
    by; ``attribution=False`` keeps no per-node usage."""

    prices: PriceBook | None = None
    usage_tags: tuple[str, ...] = ()
    attribution: bool = True

    @classmethod
    def of(cls, *, prices: Any = None, usage_tags: Sequence[str] = ()) -> Accounting:
        """Checked options: ``prices=False`` turns pricing off, else see ``PriceBook``."""
        tags = check_usage_tags(usage_tags)
        if prices is False:
            return cls(None, tags)
        return cls(PriceBook(prices), tags)


#: What a tracker given no options uses: the price library, attribution by node.
DEFAULT_ACCOUNTING = Accounting(PriceBook())


def check_usage_tags(usage_tags: Any) -> tuple[str, ...]:
    """``usage_tags`` as a tuple of non-empty prefixes, else InvalidInputError."""
    if isinstance(usage_tags, str) or not isinstance(usage_tags, Iterable):
        raise InvalidInputError(
            f"usage_tags must be a list of tag prefixes such as ['subagent:'], got {usage_tags!r}"
        )
    tags = tuple(usage_tags)
    for tag in tags:
        if not isinstance(tag, str) or not tag:
            raise InvalidInputError(f"usage_tags entries must be non-empty strings, got {tag!r}")
    return tags


def tag_key(tags: Any, prefixes: tuple[str, ...]) -> str | None:
    """The first of a call's tags that starts with one of ``prefixes``, if any."""
    if prefixes and tags:
        for tag in tags:
            if isinstance(tag, str) and tag.startswith(prefixes):
                return tag
    return None


def node_key(metadata: Mapping[str, Any] | None) -> str:
    """Where a call ran, as its usage_by_node key (see the module docstring)."""
    if not metadata:
        return NO_NODE
    ns = metadata.get("langgraph_checkpoint_ns") or metadata.get("checkpoint_ns")
    if isinstance(ns, str) and ns:
        return "|".join(part.split(":", 1)[0] for part in ns.split("|"))
    node = metadata.get("langgraph_node")
    return node if isinstance(node, str) and node else NO_NODE


def node_entry(key: str, *, tag: bool) -> dict[str, Any]:
    """The naming fields of a usage_by_node entry: node and namespace, or the tag."""
    if tag:
        return {"tag": key}
    namespace, _, node = key.rpartition("|")
    return {"node": node, "namespace": namespace}


__all__ = [
    "DEFAULT_ACCOUNTING",
    "NO_NODE",
    "Accounting",
    "check_usage_tags",
    "node_entry",
    "node_key",
    "tag_key",
]
