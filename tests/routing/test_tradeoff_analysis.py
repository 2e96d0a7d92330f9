"""Trade-off analysis: per model x class statistics, the best model, plain-words advice."""

from __future__ import annotations

import pytest

from thrifty.routing.analysis import UsageRow, analyze_tradeoffs


def _rows(model: str, cls: str, n: int, cost: float, successes: int) -> list[UsageRow]:
    return [UsageRow(model, cls, cost, i < successes) for i in range(n)]


def _traffic() -> list[UsageRow]:
    return (
        _rows("gpt-4o", "simple", 100, 0.01, 98)
        + _rows("gpt-4o-mini", "simple", 200, 0.0006, 196)
        + _rows("gpt-4o-mini", "complex", 50, 0.001, 30)
        + _rows("gpt-4o", "complex", 50, 0.02, 48)
    )


def test_cell_statistics() -> None:
    report = analyze_tradeoffs([*_traffic(), UsageRow("gpt-4o", "simple", 0.01, None)])
    cell = next(c for c in report.cells if (c.model, c.complexity) == ("gpt-4o", "simple"))
    assert cell.requests == 101
    assert cell.outcomes == 100
    assert cell.cost_usd == pytest.approx(1.01)
    assert cell.success_rate == pytest.approx(0.98)
    assert cell.cost_per_success_usd == pytest.approx(1.0 / 98)
    assert cell.avg_cost_usd == pytest.approx(1.01 / 101)


def test_best_model_per_class_and_recommendations() -> None:
    report = analyze_tradeoffs(_traffic(), days=2)
    assert report.best_by_class == {"simple": "gpt-4o-mini", "complex": "gpt-4o"}
    [down] = [r for r in report.recommendations if r.kind == "downgrade"]
    assert (down.complexity, down.from_model, down.to_model) == ("simple", "gpt-4o", "gpt-4o-mini")
    assert down.saving_usd == pytest.approx(100 * (0.01 - 0.0006) / 2)
    assert "simple requests on gpt-4o cost $0.50/day" in down.text
    assert "gpt-4o-mini succeeds as often" in down.text
    # mini fails 40% of complex requests, but is still cheaper per success: no upgrade advice
    assert not [r for r in report.recommendations if r.kind == "upgrade"]


def test_upgrade_when_the_cheap_model_fails_too_often() -> None:
    rows = _rows("mini", "complex", 100, 0.004, 20) + _rows("big", "complex", 100, 0.01, 95)
    report = analyze_tradeoffs(rows)
    assert report.best_by_class["complex"] == "big"
    [up] = report.recommendations
    assert (up.kind, up.from_model, up.to_model) == ("upgrade", "mini", "big")
    assert "succeed only 20%" in up.text
    assert up.saving_usd < 0  # costs more per request, less per successful query


def test_cheaper_model_that_fails_more_is_never_best() -> None:
    rows = _rows("mini", "simple", 100, 0.001, 80) + _rows("big", "simple", 100, 0.01, 99)
    report = analyze_tradeoffs(rows, tolerance=0.02)
    assert report.best_by_class["simple"] == "big"
    assert all(r.kind != "downgrade" for r in report.recommendations)


def test_too_few_outcomes_are_not_judged() -> None:
    rows = _rows("mini", "simple", 5, 0.001, 5) + [
        UsageRow("big", "simple", 0.01, None) for _ in range(100)
    ]
    report = analyze_tradeoffs(rows, min_outcomes=20)
    assert report.best_by_class == {"simple": None}
    assert report.recommendations == ()
    big = next(c for c in report.cells if c.model == "big")
    assert big.success_rate is None
    assert big.cost_per_success_usd is None


def test_accepts_mappings_and_checks_days() -> None:
    report = analyze_tradeoffs(
        [{"model": "m", "complexity": "simple", "cost_usd": 0.5, "success": 1}], min_outcomes=1
    )
    assert report.cells[0].successes == 1
    assert report.best_by_class == {"simple": "m"}
    with pytest.raises(ValueError):
        analyze_tradeoffs([], days=0)
