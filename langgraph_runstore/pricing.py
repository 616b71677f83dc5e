"""What an LLM call cost in USD: user prices first, then pydantic's ``genai-prices``.

``genai-prices`` is a maintained price library that works offline from the data it ships
(no network at any time here: its bundled snapshot is used, never an update). It knows
cache reads and writes, service tiers (``flex``, ``priority``) and prices that change above
a prompt size (Anthropic's long-context tiers). It is imported lazily, on the first call
that needs a price, so commands that never price anything (``runs list``) do not pay for it.

How a call is priced (``PriceBook.cost``):

1. ``prices=`` given by the user: a mapping from model name to a :class:`TokenPrice` (or a
   dict of its fields), or a callable ``(model, provider, usage) -> float | None`` that
   returns the call's cost in USD, None to leave it to the library. A callable that raises
   is logged once per model and the call stays unpriced.
2. The library, with the provider the callback metadata names (``ls_provider``: ``openai``,
   ``anthropic``, ``azure``, ``google_genai``, ``bedrock`` …, whose aliases the library
   knows); without a provider, the library infers it from the model name. A provider the
   library does not know (``ollama``, a self-hosted server) leaves the call unpriced: a
   local model is not billed at a cloud price.

Prices are per token kind: input not read from or written to the cache, cache reads, cache
writes (at the library's 5-minute rate: the counts keep no TTL split), and output
(reasoning tokens are output). The first look-up of a (provider, model, service tier) asks
the library for the price of one million tokens of each kind, once per tier of a tiered
price, and keeps those rates; every later call costs a few multiplications. The rates are
looked up again each UTC day, so a price change dated in the library takes effect.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from datetime import datetime, timezone
from typing import Any, TypeAlias

from langgraph_runstore.errors import InvalidInputError
from langgraph_runstore.schemas import TokenUsage
from langgraph_runstore.usage import Counts

logger = logging.getLogger(__name__)

#: USD of (per request, fresh input, output, cache read, cache write) per token
Rates: TypeAlias = tuple[float, float, float, float, float]
#: ((tier start, rates), ...) ascending: a call whose input exceeds a start uses its rates
Tiers: TypeAlias = tuple[tuple[int, Rates], ...]

_MILLION = 1_000_000


@dataclass(frozen=True)
class TokenPrice:
    """A model's price in USD per million tokens, for models the library does not know.

    ``cache_read_mtok`` and ``cache_write_mtok`` default to the input price;
    ``per_request`` is added once per call.
    """

    input_mtok: float
    output_mtok: float
    cache_read_mtok: float | None = None
    cache_write_mtok: float | None = None
    per_request: float = 0.0

    def __post_init__(self) -> None:
        for item in fields(self):
            value = getattr(self, item.name)
            if value is None and item.name.startswith("cache_"):
                continue
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not math.isfinite(value)
                or value < 0
            ):
                raise InvalidInputError(
                    f"TokenPrice.{item.name} must be a finite number of USD >= 0, got {value!r}"
                )

    def rates(self) -> Rates:
        fresh = self.input_mtok / _MILLION
        read = fresh if self.cache_read_mtok is None else self.cache_read_mtok / _MILLION
        write = fresh if self.cache_write_mtok is None else self.cache_write_mtok / _MILLION
        return (float(self.per_request), fresh, self.output_mtok / _MILLION, read, write)


#: ``prices(model, provider, usage)``: the call's cost in USD, or None for the library's
PriceCallable: TypeAlias = Callable[[str, "str | None", TokenUsage], "float | None"]
#: What ``prices=`` accepts: model name -> TokenPrice (or its fields as a dict), or a callable
PriceSource: TypeAlias = "Mapping[str, TokenPrice | Mapping[str, float]] | PriceCallable"


def cost_of(rates: Rates, counts: Counts) -> float:
    """USD of one call's counts at ``rates`` (cached and written tokens out of input)."""
    cached = counts[3] + counts[4]
    fresh = counts[0] - cached
    return (
        rates[0]
        + rates[1] * (fresh if fresh > 0 else 0)
        + rates[2] * counts[1]
        + rates[3] * counts[3]
        + rates[4] * counts[4]
    )


def _tiered_cost(tiers: Tiers, counts: Counts) -> float:
    rates = tiers[0][1]
    for start, tier in tiers[1:]:
        if counts[0] > start:
            rates = tier
    return cost_of(rates, counts)


def check_prices(prices: Any) -> Mapping[str, TokenPrice] | PriceCallable | None:
    """``prices=`` checked: a mapping's values become TokenPrices; InvalidInputError else."""
    if prices is None or callable(prices):
        return prices  # type: ignore[no-any-return]
    if not isinstance(prices, Mapping):
        raise InvalidInputError(
            f"prices must be a mapping of model name to TokenPrice, or a callable "
            f"(model, provider, usage) -> USD; got {type(prices).__name__}"
        )
    checked: dict[str, TokenPrice] = {}
    for model, price in prices.items():
        if not isinstance(model, str) or not model:
            raise InvalidInputError(f"prices keys must be model names, got {model!r}")
        if isinstance(price, TokenPrice):
            checked[model] = price
        elif isinstance(price, Mapping):
            try:
                checked[model] = TokenPrice(**price)
            except TypeError as exc:
                raise InvalidInputError(
                    f"prices[{model!r}] {dict(price)!r}: {exc}; expected input_mtok, "
                    "output_mtok, cache_read_mtok, cache_write_mtok, per_request"
                ) from None
        else:
            raise InvalidInputError(
                f"prices[{model!r}] must be a TokenPrice or a mapping of its fields, got {price!r}"
            )
    return checked


class _Library:
    """The price library, imported on first use; None-returning when it is missing."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._missing = False
        self._loading = False

    def preload(self) -> None:
        """Import the library on a background thread, once: the first call that needs a
        price then rarely waits for the import (about 0.15 s of CPU)."""
        with self._lock:
            loading, self._loading = self._loading, True
        if not loading:
            threading.Thread(
                target=self._import, name="langgraph-runstore prices", daemon=True
            ).start()

    def tiers(self, provider: str | None, model: str, tier: str | None) -> Tiers | None:
        """The rates of ``model``, one entry per price tier; None when it has no price."""
        calc_price, usage_type, tiered_type = self._import()
        if calc_price is None:
            return None
        now = datetime.now(timezone.utc)
        context = {"service_tier": tier} if tier else None

        def usd(**usage: int) -> float:
            result = calc_price(
                usage_type(**usage),
                model,
                provider_id=provider,
                genai_request_timestamp=now,
                price_context=context,
            )
            return float(result.total_price)

        try:
            found = calc_price(
                usage_type(), model, provider_id=provider, genai_request_timestamp=now
            )
            starts = sorted(
                {
                    item.start
                    for value in vars(found.model_price).values()
                    if isinstance(value, tiered_type)
                    for item in value.tiers
                }
            )
            entries = []
            # a prompt of ``base`` tokens falls in the tier (above its start, up to the next)
            regions = [(0, starts[0] if starts else _MILLION)] if not starts or starts[0] else []
            regions += [(start, start + 1) for start in starts]
            for start, base in regions:
                request = usd()
                fresh = usd(input_tokens=base)
                entries.append(
                    (
                        start,
                        (
                            request,
                            (fresh - request) / base,
                            (usd(input_tokens=base, output_tokens=_MILLION) - fresh) / _MILLION,
                            (usd(input_tokens=base, cache_read_tokens=base) - request) / base,
                            (usd(input_tokens=base, cache_write_tokens=base) - request) / base,
                        ),
                    )
                )
        except LookupError:
            return None
        return tuple(entries)

    def _import(self) -> tuple[Any, Any, Any]:
        if self._missing:
            return None, None, None
        try:
            import genai_prices
            from genai_prices.types import TieredPrices
        except ImportError:
            with self._lock:
                if not self._missing:
                    self._missing = True
                    logger.warning(
                        "genai-prices is not installed, so LLM calls are not priced "
                        "(cost_usd stays None): pip install genai-prices, or pass prices="
                    )
            return None, None, None
        return genai_prices.calc_price, genai_prices.Usage, TieredPrices


_LIBRARY = _Library()


class PriceBook:
    """Prices LLM calls; the look-up is cached per (provider, model, service tier) and day.

    Thread-safe: sync graphs report calls from several threads.
    """

    def __init__(self, prices: Any = None, *, library: bool = True) -> None:
        checked = check_prices(prices)
        self._mapping: Mapping[str, TokenPrice] = checked if isinstance(checked, Mapping) else {}
        self._callable: PriceCallable | None = None if isinstance(checked, Mapping) else checked
        self._library = _LIBRARY if library else None
        self._day = 0
        #: (provider, model, tier) -> rates per tier, or None for a model nobody prices
        self._cache: dict[tuple[str | None, str, str | None], Tiers | None] = {}
        self._lock = threading.Lock()
        self._failed: set[str] = set()

    def preload(self) -> None:
        """Start loading the price library in the background (LLM calls call this at start)."""
        if self._library is not None:
            self._library.preload()

    def cost(
        self, provider: str | None, model: str, counts: Counts, tier: str | None = None
    ) -> float | None:
        """USD of one call, or None when nothing prices its model."""
        if self._callable is not None:
            try:
                found = self._callable(model, provider, TokenUsage(*counts))
            except Exception:
                self._warn_failed(model)
                return None
            if found is not None:
                return self._checked_cost(model, found)
        day = int(time.time() // 86400)
        if day != self._day:
            with self._lock:
                self._cache = {}
                self._day = day
        key = (provider, model, tier)
        try:
            tiers = self._cache[key]
        except KeyError:
            tiers = self._resolve(provider, model, tier)
            self._cache[key] = tiers
        if tiers is None:
            return None
        if len(tiers) == 1:
            return cost_of(tiers[0][1], counts)
        return _tiered_cost(tiers, counts)

    def _resolve(self, provider: str | None, model: str, tier: str | None) -> Tiers | None:
        price = self._mapping.get(model)
        if price is not None:
            return ((0, price.rates()),)
        if self._library is None or model == "unknown":
            return None
        try:
            return self._library.tiers(provider, model, tier)
        except Exception:
            logger.warning(
                "Could not price model %r of provider %r", model, provider, exc_info=True
            )
            return None

    def _checked_cost(self, model: str, found: Any) -> float | None:
        if (
            isinstance(found, bool)
            or not isinstance(found, (int, float))
            or not math.isfinite(found)
            or found < 0
        ):
            self._warn_failed(model, f"returned {found!r}, not a number of USD >= 0")
            return None
        return float(found)

    def _warn_failed(self, model: str, why: str | None = None) -> None:
        with self._lock:
            if model in self._failed:
                return
            self._failed.add(model)
        if why is None:
            logger.exception(
                "The prices= callable failed for model %r: its calls stay unpriced "
                "(logged once per model)",
                model,
            )
        else:
            logger.warning(
                "The prices= callable %s for model %r: its calls stay unpriced "
                "(logged once per model)",
                why,
                model,
            )


__all__ = ["PriceBook", "PriceCallable", "PriceSource", "TokenPrice", "check_prices", "cost_of"]
