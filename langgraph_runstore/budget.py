"""Run budgets: limits on a run's tokens, cost and LLM calls, checked before each LLM call.

A run whose finished calls have reached a limit is stopped before its next LLM call starts,
the way ``cancel(action="interrupt")`` stops it: the graph's task is cancelled, the
checkpoints written so far stay, and the thread can be resumed. The run ends
``interrupted`` with ``stop_reason`` ``token_capped`` (``max_total_tokens``), ``cost_capped``
(``max_cost_usd``) or ``loop_capped`` (``max_llm_calls``), checked in that order. A final
status is never touched by worker recovery, so a capped run is never retried, and
``thread_status()`` reads ``error`` afterwards: the thread did not get its answer.

Limits are reached, not exceeded: ``max_llm_calls=3`` lets exactly three calls run. Calls
that start together (``Send`` fan-out, parallel tool calls) are checked as each starts, so a
token or cost limit can be overshot by the calls already in flight when it is reached.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from langgraph_runstore.errors import InvalidInputError

#: The stop reasons of runs their budget stopped.
CAPPED_STOP_REASONS = frozenset({"token_capped", "cost_capped", "loop_capped"})


@dataclass(frozen=True)
class Budget:
    """Limits for one run; None means no limit. Each given limit must be > 0.

    ``Budget(max_total_tokens=50_000, max_cost_usd=0.50, max_llm_calls=20)``
    """

    max_total_tokens: int | None = None
    max_cost_usd: float | None = None
    max_llm_calls: int | None = None

    def __post_init__(self) -> None:
        for name in ("max_total_tokens", "max_llm_calls"):
            value = getattr(self, name)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or value <= 0
            ):
                raise InvalidInputError(f"Budget.{name} must be a whole number > 0, got {value!r}")
        cost = self.max_cost_usd
        if cost is not None and (
            isinstance(cost, bool)
            or not isinstance(cost, (int, float))
            or not math.isfinite(cost)
            or cost <= 0
        ):
            raise InvalidInputError(
                f"Budget.max_cost_usd must be a finite number of USD > 0, got {cost!r}"
            )

    def reached(self, total_tokens: int, cost_usd: float, llm_calls: int) -> str | None:
        """The stop reason once a limit is reached, else None."""
        if self.max_total_tokens is not None and total_tokens >= self.max_total_tokens:
            return "token_capped"
        if self.max_cost_usd is not None and cost_usd >= self.max_cost_usd:
            return "cost_capped"
        if self.max_llm_calls is not None and llm_calls >= self.max_llm_calls:
            return "loop_capped"
        return None

    def as_dict(self) -> dict[str, Any]:
        """The limits as JSON (how a submitted run carries its budget to a worker)."""
        return {name: value for name, value in asdict(self).items() if value is not None}


def check_budget(budget: Any) -> Budget | None:
    """``budget=`` as a Budget (a mapping of its fields is accepted), or None."""
    if budget is None or isinstance(budget, Budget):
        return budget
    if isinstance(budget, Mapping):
        try:
            return Budget(**budget)
        except TypeError as exc:
            raise InvalidInputError(
                f"budget {dict(budget)!r}: {exc}; expected max_total_tokens, max_cost_usd, "
                "max_llm_calls"
            ) from None
    raise InvalidInputError(f"budget must be a Budget, got {budget!r}")


__all__ = ["CAPPED_STOP_REASONS", "Budget", "check_budget"]
