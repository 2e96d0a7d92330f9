"""Costing memoises exact costs per (price, usage), and never serves a stale price."""

from __future__ import annotations

from decimal import Decimal

from thrifty.pipeline.costing import Costing
from thrifty.pricing import ModelPrice, Usage, compute_cost


def price(rate: str) -> ModelPrice:
    return ModelPrice(id="m", provider="p", input=Decimal(rate), output=Decimal(rate))


def test_memo_returns_the_exact_cost_and_follows_a_new_price_object() -> None:
    costing = Costing.__new__(Costing)
    costing._usd = {}
    usage = Usage(prompt_tokens=1234, completion_tokens=56)
    first = price("2.5")
    assert costing.usd(first, usage) == compute_cost(first, usage).total_usd
    assert costing.usd(first, usage) == compute_cost(first, usage).total_usd  # memoised
    reloaded = price("5")  # same id, new object (a catalog reload): recomputed
    assert costing.usd(reloaded, usage) == compute_cost(reloaded, usage).total_usd
    assert costing.usd(reloaded, usage) == 2 * costing.usd(first, usage)
