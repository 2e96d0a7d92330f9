"""Exact request costs, worst cases, comparisons and estimates."""

from __future__ import annotations

from decimal import Decimal

import pytest

from thrifty.config import PricingConfig
from thrifty.pricing import CostCalculator, PriceCatalog, Usage, compute_cost
from thrifty.pricing.cost import cost


@pytest.fixture(scope="module")
def catalog() -> PriceCatalog:
    return PriceCatalog.load(
        PricingConfig(
            catalog_file=None,
            overrides={"local-llama": {"provider": "vllm", "input": 0, "output": 0}},
        )
    )


@pytest.fixture(scope="module")
def calc(catalog: PriceCatalog) -> CostCalculator:
    return CostCalculator(catalog)


# ---------------------------------------------------------------- usage


@pytest.mark.parametrize(
    "kwargs",
    [
        {"prompt_tokens": -1},
        {"completion_tokens": -5},
        {"prompt_tokens": 10, "cached_tokens": 11},
        {"prompt_tokens": 10, "cached_tokens": 6, "cache_write_tokens": 5},
        {"completion_tokens": 3, "reasoning_tokens": 4},
        {"prompt_tokens": True},
        {"prompt_tokens": 1.5},
    ],
)
def test_usage_rejects_negative_or_inconsistent_counts(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        Usage(**kwargs)


def test_usage_from_provider_shapes() -> None:
    openai = Usage.from_openai(
        {
            "prompt_tokens": 1200,
            "completion_tokens": 300,
            "prompt_tokens_details": {"cached_tokens": 1024},
            "completion_tokens_details": {"reasoning_tokens": 200},
        }
    )
    assert openai == Usage(1200, 300, cached_tokens=1024, reasoning_tokens=200)
    responses = Usage.from_openai(
        {"input_tokens": 50, "output_tokens": 7, "input_tokens_details": {"cached_tokens": 0}}
    )
    assert responses == Usage(50, 7)
    assert (
        Usage.from_openai({"prompt_tokens": 90, "prompt_cache_hit_tokens": 64}).cached_tokens == 64
    )
    assert Usage.from_openai(None) == Usage()
    anthropic = Usage.from_anthropic(
        {
            "input_tokens": 100,
            "cache_read_input_tokens": 5000,
            "cache_creation_input_tokens": 2000,
            "output_tokens": 40,
        }
    )
    assert anthropic == Usage(7100, 40, cached_tokens=5000, cache_write_tokens=2000)
    gemini = Usage.from_gemini(
        {
            "promptTokenCount": 900,
            "candidatesTokenCount": 100,
            "thoughtsTokenCount": 50,
            "cachedContentTokenCount": 800,
        }
    )
    assert gemini == Usage(900, 150, cached_tokens=800, reasoning_tokens=50)


# ---------------------------------------------------------------- exact costs


def test_gpt_4o_mini_exact(calc: CostCalculator) -> None:
    # 800 uncached x $0.15 + 200 cached x $0.075 + 500 out x $0.60, per million
    b = calc.cost_of("gpt-4o-mini-2024-07-18", Usage(1000, 500, cached_tokens=200))
    assert b is not None
    assert b.input == Decimal("0.00012")
    assert b.cached_input == Decimal("0.000015")
    assert b.cache_write == 0
    assert b.output == Decimal("0.0003")
    assert b.total == Decimal("0.000435")
    assert b.total_usd == 0.000435
    assert b.total_nanos == 435_000
    assert b.tier is None
    assert (b.input_usd, b.cached_input_usd, b.output_usd) == (0.00012, 0.000015, 0.0003)


def test_claude_sonnet_4_5_with_cache_read_and_write(calc: CostCalculator) -> None:
    # 2,000 uncached x $3 + 6,000 reads x $0.30 + 2,000 writes x $3.75 + 1,000 out x $15
    usage = Usage(10_000, 1_000, cached_tokens=6_000, cache_write_tokens=2_000)
    b = calc.cost_of("claude-sonnet-4-5", usage)
    assert b is not None
    assert (b.input, b.cached_input, b.cache_write, b.output) == (
        Decimal("0.006"),
        Decimal("0.0018"),
        Decimal("0.0075"),
        Decimal("0.015"),
    )
    assert b.total == Decimal("0.0303")
    assert b.total_usd == 0.0303


def test_claude_sonnet_4_5_above_200k_bills_the_whole_request_at_the_tier(
    calc: CostCalculator,
) -> None:
    # 130,000 x $6 + 100,000 x $0.60 + 20,000 x $7.50 + 1,000 x $22.50
    usage = Usage(250_000, 1_000, cached_tokens=100_000, cache_write_tokens=20_000)
    b = calc.cost_of("claude-sonnet-4-5", usage)
    assert b is not None and b.tier == 200_000
    assert b.total == Decimal("0.78") + Decimal("0.06") + Decimal("0.15") + Decimal("0.0225")


def test_gemini_2_5_pro_above_the_200k_tier(calc: CostCalculator) -> None:
    # 200,000 uncached x $2.50 + 50,000 cached x $0.25 + 2,000 out x $15
    b = calc.cost_of("gemini-2.5-pro", Usage(250_000, 2_000, cached_tokens=50_000))
    assert b is not None
    assert b.tier == 200_000
    assert (b.input, b.cached_input, b.output) == (
        Decimal("0.5"),
        Decimal("0.0125"),
        Decimal("0.03"),
    )
    assert b.total == Decimal("0.5425")


def test_gemini_2_5_pro_at_exactly_200k_uses_base_rates(calc: CostCalculator) -> None:
    b = calc.cost_of("gemini-2.5-pro", Usage(200_000, 1_000))
    assert b is not None and b.tier is None
    assert b.total == Decimal("0.25") + Decimal("0.01")


def test_missing_cache_prices_fall_back_to_input(
    calc: CostCalculator, catalog: PriceCatalog
) -> None:
    # gpt-4o-2024-05-13 has no cached-input price: cache reads bill as input ($5).
    b = calc.cost_of("gpt-4o-2024-05-13", Usage(1_000, 0, cached_tokens=400))
    assert b is not None and b.cached_input == Decimal("0.002") and b.total == Decimal("0.005")
    # OpenAI has no cache-write price: writes bill as input.
    price = catalog.get("gpt-4o-mini")
    assert price is not None
    assert cost(price, Usage(1_000, 0, cache_write_tokens=1_000)).cache_write == Decimal("0.00015")


def test_the_package_does_not_shadow_the_cost_module() -> None:
    import thrifty.pricing.cost as module

    assert module.cost is cost is compute_cost


def test_embedding_has_no_output_cost(calc: CostCalculator) -> None:
    b = calc.cost_of("text-embedding-3-small", Usage(1_000_000, 0))
    assert b is not None and b.total == Decimal("0.02") and b.output == 0


def test_costs_stay_exact_across_many_requests(calc: CostCalculator) -> None:
    one = calc.cost_of("command-r7b-12-2024", Usage(1, 1))  # $0.0375 + $0.15 per million
    assert one is not None and one.total == Decimal("0.0000001875")
    total = sum((one.total for _ in range(1_000_000)), Decimal(0))
    assert total == Decimal("0.1875")


def test_unpriced_is_none_and_self_hosted_is_zero(calc: CostCalculator) -> None:
    assert calc.cost_of("no-such-model", Usage(10, 10)) is None
    free = calc.cost_of("local-llama", Usage(10_000, 10_000))
    assert free is not None and free.total_usd == 0.0


# ---------------------------------------------------------------- worst case


def test_worst_case(calc: CostCalculator) -> None:
    assert calc.worst_case("gpt-4o-mini", 1_000, 500) == pytest.approx(0.00045, abs=1e-12)
    # default output budget: the model's max_output (16,384 for gpt-4o-mini)
    assert calc.worst_case("gpt-4o-mini", 1_000) == pytest.approx(0.0099804, abs=1e-12)
    # Anthropic: a cache write ($3.75) costs more than input ($3), so the prompt is priced at it
    assert calc.worst_case("claude-sonnet-4-5", 1_000, 100) == pytest.approx(0.00525, abs=1e-12)
    # above 200k the long-context tier applies: 300k x $7.50 + 1k x $22.50
    assert calc.worst_case("claude-sonnet-4-5", 300_000, 1_000) == pytest.approx(2.2725, abs=1e-12)
    assert calc.worst_case("gemini-2.5-pro", 300_000, 0) == pytest.approx(0.75, abs=1e-12)
    assert calc.worst_case("text-embedding-3-small", 1_000_000) == pytest.approx(0.02)
    assert calc.worst_case("no-such-model", 10, 10) is None


def test_worst_case_bounds_every_actual_cost(calc: CostCalculator, catalog: PriceCatalog) -> None:
    for price in catalog.models():
        for prompt, cached, written, out in [(1_000, 0, 0, 10), (250_000, 100_000, 50_000, 900)]:
            actual = calc.cost_of(price.id, Usage(prompt, out, cached, written))
            bound = calc.worst_case(price.id, prompt, out)
            assert actual is not None and bound is not None
            assert actual.total_usd <= bound + 1e-12, price.id


# ---------------------------------------------------------------- compare / cheapest / estimate


def test_compare_sorts_by_cost_with_unpriced_last(calc: CostCalculator) -> None:
    rows = calc.compare(
        ["claude-opus-4-1", "mystery", "gpt-4o-mini", "gemini-2.5-flash", "unknown-2"],
        prompt_tokens=10_000,
        completion_tokens=1_000,
    )
    assert [m for m, _ in rows] == [
        "gpt-4o-mini",
        "gemini-2.5-flash",
        "claude-opus-4-1",
        "mystery",
        "unknown-2",
    ]
    totals = [b.total for _, b in rows if b is not None]
    assert totals == sorted(totals)
    assert rows[-1][1] is None and rows[-2][1] is None


def test_compare_keeps_the_given_order_on_ties(calc: CostCalculator) -> None:
    rows = calc.compare(["claude-sonnet-4", "claude-sonnet-4-5"], 1_000, 100)
    assert [m for m, _ in rows] == ["claude-sonnet-4", "claude-sonnet-4-5"]


def test_cheapest(calc: CostCalculator) -> None:
    found = calc.cheapest(["gpt-4o", "gpt-4.1-nano", "nope"], 5_000, 500)
    assert found is not None
    model, breakdown = found
    assert model == "gpt-4.1-nano"
    assert breakdown.total == Decimal("0.0007")  # 5,000 x $0.10 + 500 x $0.40
    assert calc.cheapest(["nope", "also-nope"], 1, 1) is None


def test_cached_tokens_change_the_ranking(calc: CostCalculator) -> None:
    models = ["gpt-4.1-nano", "mistral-small-2506"]  # same input price; only one has a cache price
    plain = calc.compare(models, 100_000, 100)
    cached = calc.compare(models, 100_000, 100, cached_tokens=90_000)
    assert [m for m, _ in plain] == ["mistral-small-2506", "gpt-4.1-nano"]
    assert [m for m, _ in cached] == ["gpt-4.1-nano", "mistral-small-2506"]
    assert cached[0][1] is not None and cached[0][1].total == Decimal("0.00329")


def test_monthly_estimate_arithmetic(calc: CostCalculator) -> None:
    est = calc.monthly_estimate("gpt-4o-mini", 1_000, 1_000, 500)
    assert est is not None
    assert est.per_request_usd == pytest.approx(0.00045, abs=1e-15)  # 1,000 x $0.15 + 500 x $0.60
    assert est.daily_usd == pytest.approx(0.45, abs=1e-12)
    assert est.monthly_usd == pytest.approx(13.5, abs=1e-12)
    assert est.days == 30
    week = calc.monthly_estimate("gpt-4o-mini", 1_000, 1_000, 500, days=7)
    assert week is not None and week.monthly_usd == pytest.approx(3.15, abs=1e-12)
    assert calc.monthly_estimate("no-such-model", 1, 1, 1) is None
    with pytest.raises(ValueError):
        calc.monthly_estimate("gpt-4o-mini", -1, 1, 1)
    with pytest.raises(ValueError):
        calc.monthly_estimate("gpt-4o-mini", 1, 1, 1, days=0)
