"""What a request costs: exact decimal arithmetic, floats only at the edge.

``cost(price, usage)`` bills, at the rates of the tier chosen by ``prompt_tokens`` (a long-context
tier applies to the whole request, as providers bill it):

- uncached input (``prompt - cached - cache_write``) at ``input``;
- cache reads at ``cached_input`` (``input`` when the provider has none);
- cache writes at ``cache_write`` (``input`` when the provider has none);
- completion tokens (reasoning included) at ``output``.

Every amount is computed in ``Decimal`` from the decimal prices, so it is exact; ``*_usd``
properties give floats, ``total_nanos`` an integer count of nano-dollars for ledgers.

``CostCalculator`` looks models up in a ``PriceCatalog``. An unpriced model gives ``None``,
never 0: callers must report it as unknown rather than free.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from thrifty.pricing.catalog import PriceCatalog
from thrifty.pricing.schema import ModelPrice
from thrifty.pricing.usage import Usage

MILLION = Decimal(1_000_000)
_NANO = Decimal("1e-9")


def _amount(tokens: int, rate_per_million: Decimal) -> Decimal:
    return Decimal(tokens) * rate_per_million / MILLION


@dataclass(frozen=True, slots=True)
class CostBreakdown:
    """The exact cost of one request, by component (USD as ``Decimal``)."""

    model: str
    input: Decimal
    cached_input: Decimal
    cache_write: Decimal
    output: Decimal
    tier: int | None = None  # the long-context threshold applied, None for base rates

    @property
    def total(self) -> Decimal:
        """The exact total in USD."""
        return self.input + self.cached_input + self.cache_write + self.output

    @property
    def input_usd(self) -> float:
        return float(self.input)

    @property
    def cached_input_usd(self) -> float:
        return float(self.cached_input)

    @property
    def cache_write_usd(self) -> float:
        return float(self.cache_write)

    @property
    def output_usd(self) -> float:
        return float(self.output)

    @property
    def total_usd(self) -> float:
        """The exact total converted once to float."""
        return float(self.total)

    @property
    def total_nanos(self) -> int:
        """The total in nano-dollars (1e-9 USD), rounded half-even once."""
        return int((self.total / _NANO).quantize(Decimal(1), rounding=ROUND_HALF_EVEN))

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "input_usd": self.input_usd,
            "cached_input_usd": self.cached_input_usd,
            "cache_write_usd": self.cache_write_usd,
            "output_usd": self.output_usd,
            "total_usd": self.total_usd,
            "total_nanos": self.total_nanos,
            "tier": self.tier,
        }


def cost(price: ModelPrice, usage: Usage) -> CostBreakdown:
    """The exact cost of ``usage`` at ``price`` (see the module docstring for the rules)."""
    rates = price.rates_for(usage.prompt_tokens)
    return CostBreakdown(
        model=price.id,
        input=_amount(usage.uncached_prompt_tokens, rates.input),
        cached_input=_amount(usage.cached_tokens, rates.cached_rate),
        cache_write=_amount(usage.cache_write_tokens, rates.cache_write_rate),
        output=_amount(usage.completion_tokens, rates.output_rate),
        tier=rates.above_input_tokens or None,
    )


def worst_case_cost(
    price: ModelPrice, prompt_tokens: int, max_output_tokens: int | None
) -> Decimal:
    """An upper bound for a request: every prompt token at the highest input-side rate of the
    tier the prompt falls in (a cache write can cost more than plain input), plus
    ``max_output_tokens`` at the output rate. With no ``max_output_tokens`` the model's
    ``max_output`` is used, else what is left of its context window."""
    if prompt_tokens < 0:
        raise ValueError(f"prompt_tokens must be >= 0 (got {prompt_tokens})")
    rates = price.rates_for(prompt_tokens)
    input_rate = max(rates.input, rates.cached_rate, rates.cache_write_rate)
    if price.mode == "embedding":
        out_tokens = 0
    elif max_output_tokens is not None:
        out_tokens = max_output_tokens
    elif price.max_output is not None:
        out_tokens = price.max_output
    elif price.context_window is not None:
        out_tokens = max(0, price.context_window - prompt_tokens)
    else:
        raise ValueError(f"{price.id} has no max_output or context_window: pass max_output_tokens")
    if out_tokens < 0:
        raise ValueError(f"max_output_tokens must be >= 0 (got {out_tokens})")
    return _amount(prompt_tokens, input_rate) + _amount(out_tokens, rates.output_rate)


@dataclass(frozen=True, slots=True)
class Estimate:
    """A spend projection for steady traffic (USD as float, computed exactly)."""

    model: str
    per_request_usd: float
    daily_usd: float
    monthly_usd: float
    requests_per_day: float
    days: int


class CostCalculator:
    """Prices requests with a ``PriceCatalog``. ``None`` always means *unpriced*."""

    def __init__(self, catalog: PriceCatalog) -> None:
        self.catalog = catalog

    def price_of(self, model: str) -> ModelPrice | None:
        return self.catalog.get(model)

    def cost_of(self, model: str, usage: Usage) -> CostBreakdown | None:
        """The cost of ``usage`` on ``model``, or ``None`` when the model is unpriced."""
        price = self.catalog.get(model)
        return None if price is None else cost(price, usage)

    def worst_case(
        self, model: str, prompt_tokens: int, max_output_tokens: int | None = None
    ) -> float | None:
        """The most a request can cost (for budget reservations), or ``None`` if unpriced."""
        price = self.catalog.get(model)
        if price is None:
            return None
        return float(worst_case_cost(price, prompt_tokens, max_output_tokens))

    def compare(
        self,
        models: Iterable[str],
        prompt_tokens: int,
        completion_tokens: int,
        cached_tokens: int = 0,
    ) -> list[tuple[str, CostBreakdown | None]]:
        """The same request costed on each model, cheapest first; unpriced models last (in
        the order given). Ties keep the order given."""
        usage = Usage(
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            cached_tokens=cached_tokens,
        )
        rows = [(m, self.cost_of(m, usage)) for m in models]
        priced = sorted((r for r in rows if r[1] is not None), key=lambda r: _total(r[1]))
        return priced + [r for r in rows if r[1] is None]

    def cheapest(
        self,
        models: Iterable[str],
        prompt_tokens: int,
        completion_tokens: int,
        cached_tokens: int = 0,
    ) -> tuple[str, CostBreakdown] | None:
        """The cheapest priced model for this request, or ``None`` when none is priced."""
        for model, breakdown in self.compare(
            models, prompt_tokens, completion_tokens, cached_tokens
        ):
            if breakdown is not None:
                return model, breakdown
        return None

    def monthly_estimate(
        self,
        model: str,
        requests_per_day: float,
        avg_prompt_tokens: int,
        avg_completion_tokens: int,
        days: int = 30,
    ) -> Estimate | None:
        """Per-request, daily and ``days``-long spend for steady traffic; ``None`` if unpriced."""
        if requests_per_day < 0:
            raise ValueError(f"requests_per_day must be >= 0 (got {requests_per_day})")
        if days < 1:
            raise ValueError(f"days must be >= 1 (got {days})")
        breakdown = self.cost_of(
            model, Usage(prompt_tokens=avg_prompt_tokens, completion_tokens=avg_completion_tokens)
        )
        if breakdown is None:
            return None
        per_request = breakdown.total
        daily = per_request * Decimal(str(requests_per_day))
        return Estimate(
            model=model,
            per_request_usd=float(per_request),
            daily_usd=float(daily),
            monthly_usd=float(daily * days),
            requests_per_day=requests_per_day,
            days=days,
        )


def _total(breakdown: CostBreakdown | None) -> Decimal:
    assert breakdown is not None
    return breakdown.total
