"""Costing: what a request cost, what it would have cost without Thrifty, and what each lever
saved. Runs when the answer's usage is known (before the response headers of a JSON answer, at
the usage chunk of a stream, and always before the record stage).

The baseline is the requested model's price for the same usage with no Thrifty lever; levers
(cache, routing, compression, max-tokens cap) add their own saving to ``ctx.savings`` as they
act, so the split adds up to ``saved_usd`` and nothing is counted twice.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from thrifty.metrics import Metrics
from thrifty.pipeline.context import RequestContext
from thrifty.pipeline.response_limits import CapSavings
from thrifty.pricing import CostCalculator, ModelPrice, Usage, compute_cost
from thrifty.providers.registry import ProviderRegistry

log = logging.getLogger("thrifty.cost")

LEVERS = ("cache", "semantic_cache", "routing", "compression", "max_tokens")
_USD_MEMO = 8192


def usage_from_any(usage: Mapping[str, Any] | None) -> Usage:
    """Canonical ``Usage`` from an OpenAI-, Anthropic- or Gemini-convention usage object."""
    if not usage:
        return Usage()
    if "promptTokenCount" in usage:
        return Usage.from_gemini(usage)
    if "prompt_tokens" not in usage and (
        "cache_read_input_tokens" in usage or "cache_creation_input_tokens" in usage
    ):
        return Usage.from_anthropic(usage)
    return Usage.from_openai(usage)


def format_usd(value: float | None) -> str:
    """Header form of a cost: fixed-point USD, or ``unpriced`` (never a silent 0)."""
    return "unpriced" if value is None else f"{value:.10f}"


def cost_fields(ctx: RequestContext) -> dict[str, Any]:
    """The cost fields added to a stream's final usage object."""
    return {"thrifty_cost_usd": ctx.cost_usd, "thrifty_saved_usd": ctx.saved_usd}


class Costing:
    def __init__(
        self,
        calculator: CostCalculator,
        registry: ProviderRegistry,
        metrics: Metrics,
        cap_savings: CapSavings | None = None,
    ) -> None:
        self.calculator = calculator
        self.cap_savings = cap_savings
        self._registry = registry
        self._metrics = metrics
        self._prices: dict[tuple[str, str], ModelPrice | None] = {}
        self._usd: dict[tuple[str, Usage], tuple[ModelPrice, float]] = {}
        self.unpriced_seen: dict[str, int] = {}

    def usd(self, price: ModelPrice, usage: Usage) -> float:
        """``compute_cost(price, usage).total_usd``, memoised: repeated usages (cache hits,
        fixed-size calls) skip the exact decimal arithmetic. Bounded; cleared when full."""
        key = (price.id, usage)
        hit = self._usd.get(key)
        if hit is not None and hit[0] is price:  # the same price object: a reload misses
            return hit[1]
        if len(self._usd) >= _USD_MEMO:
            self._usd.clear()
        value = compute_cost(price, usage).total_usd
        self._usd[key] = (price, value)
        return value

    def price(self, public_model: str, upstream_model: str | None = None) -> ModelPrice | None:
        """The price of a served model: its upstream id first, then its public name."""
        key = (public_model, upstream_model or "")
        if key not in self._prices:
            found = None
            for name in (upstream_model, public_model):
                if name:
                    found = self.calculator.price_of(name)
                    if found is not None:
                        break
            self._prices[key] = found
        return self._prices[key]

    def unpriced_models(self) -> list[tuple[str, str]]:
        """(public model, deployment) pairs in the config that have no price."""
        out = []
        for entry in self._registry.models.values():
            for dep in entry.deployments:
                if self.price(entry.name, dep.upstream_model) is None:
                    out.append((entry.name, dep.id))
        return out

    def _cap_saving(self, ctx: RequestContext, price: ModelPrice) -> None:
        """The ``max_tokens`` lever: what the response limit saved, measured on its holdout."""
        complexity, cap = ctx.response_limit or ("", None)
        dep = ctx.deployment
        if cap is None or dep is None or self.cap_savings is None:
            return
        saved = self.cap_savings.saved_tokens(dep.public_model, complexity, cap, ctx.finish_reason)
        if saved is None:
            if "max_tokens_saving_unmeasured" not in ctx.flags:
                ctx.flags.append("max_tokens_saving_unmeasured")
        elif saved > 0:
            ctx.savings["max_tokens"] = self.usd(price, Usage(completion_tokens=round(saved)))

    def apply(self, ctx: RequestContext) -> None:
        """Set ``cost_usd``, ``baseline_cost_usd`` and ``unpriced`` on ``ctx`` (idempotent)."""
        try:
            usage = usage_from_any(ctx.usage)
        except ValueError as exc:
            # Inconsistent provider numbers: keep the plain totals, flag the row.
            log.warning("inconsistent usage from %s: %s", ctx.served_model, exc)
            u = ctx.usage or {}
            usage = Usage(
                prompt_tokens=int(u.get("prompt_tokens") or 0),
                completion_tokens=int(u.get("completion_tokens") or 0),
            )
            if "inconsistent_usage" not in ctx.flags:
                ctx.flags.append("inconsistent_usage")
        ctx.usage_parsed = usage
        ctx.unpriced = False
        dep = ctx.deployment
        if (usage.total_tokens == 0 and not ctx.cache_hit_tokens) or (
            dep is None and ctx.error is not None
        ):
            # Nothing was spent: no tokens, or refused before any provider (or cache entry of a
            # known model) answered, e.g. embeddings partly cached, then over budget.
            ctx.cost_usd = 0.0
            ctx.baseline_cost_usd = 0.0 + ctx.saved_usd
            return
        price = self.price(dep.public_model, dep.upstream_model) if dep else None
        if price is None:
            ctx.cost_usd = None
            ctx.baseline_cost_usd = None
            ctx.unpriced = True
            model = ctx.served_model or ctx.requested_model
            first = model not in self.unpriced_seen
            self.unpriced_seen[model] = self.unpriced_seen.get(model, 0) + 1
            if first:
                log.warning("model %r has no price: its cost is recorded as UNPRICED", model)
            return
        ctx.cost_usd = self.usd(price, usage)
        if ctx.cascade_first is not None:
            # The cheap answer that failed its checks was paid for too.
            first_dep, first_usage = ctx.cascade_first
            first_price = self.price(first_dep.public_model, first_dep.upstream_model)
            if first_price is not None:
                ctx.cost_usd += self.usd(first_price, usage_from_any(first_usage))
        if ctx.compression_saved_tokens and ctx.cache_status not in ("hit", "semantic"):
            trimmed = Usage(prompt_tokens=ctx.compression_saved_tokens)
            ctx.savings["compression"] = self.usd(price, trimmed)
        if ctx.response_limit is not None and ctx.cache_status not in ("hit", "semantic"):
            self._cap_saving(ctx, price)
        if ctx.cache_hit_tokens:
            # Embedding items answered from the cache: what their tokens would have cost.
            hit = Usage(prompt_tokens=ctx.cache_hit_tokens)
            ctx.savings["cache"] = self.usd(price, hit)
        elif ctx.cache_status in ("hit", "semantic"):
            # Answered from the cache: nothing is spent upstream, and the saving is exactly
            # what the served model would have charged for this answer.
            lever = "cache" if ctx.cache_status == "hit" else "semantic_cache"
            ctx.savings[lever] = ctx.cost_usd
            ctx.cost_usd = 0.0
        ctx.baseline_cost_usd = ctx.cost_usd + ctx.saved_usd
        entry = ctx.requested_entry
        if (
            entry is not None
            and dep is not None
            and (dep.public_model != entry.name or ctx.cascade_first is not None)
        ):
            # Failed over to another model: the baseline is still the requested model (a
            # failover is not a saving lever, so nothing is added to ``savings``).
            requested = self.price(entry.name, entry.deployments[0].upstream_model)
            if requested is None:
                ctx.baseline_cost_usd = None
            else:
                baseline = self.usd(requested, usage)
                if ctx.cascade_first is not None:
                    # A cascade that escalated: the saving is net of the wasted cheap call
                    # (negative when the escalation cost more than the baseline).
                    ctx.savings["routing"] = baseline - ctx.cost_usd
                elif (ctx.degraded_from or ctx.route_group) and baseline > ctx.cost_usd:
                    # Routing (a route group, or a budget's degrade) chose the cheaper model.
                    ctx.savings["routing"] = baseline - ctx.cost_usd
                ctx.baseline_cost_usd = baseline + sum(
                    v for k, v in ctx.savings.items() if k != "routing"
                )
