"""APGR / CPT / curves on hand-made data with known answers, and against RouteLLM's formulas."""

from __future__ import annotations

import numpy as np
import pytest

from thrifty.routing import metrics

# Ten prompts; the cheap model is right on the five lowest scores, the strong one on all.
CHEAP = [1, 1, 1, 1, 1, 0, 0, 0, 0, 0]
STRONG = [1] * 10
PERFECT = list(range(10))  # highest scores exactly where the cheap model fails


def test_perfect_ranker_on_toy_data() -> None:
    m = metrics.evaluate(PERFECT, CHEAP, STRONG)
    assert [p.strong_share for p in m.curve] == pytest.approx([i / 10 for i in range(11)])
    expected = [0.5 + min(i, 5) / 10 for i in range(11)]
    assert [p.accuracy for p in m.curve] == pytest.approx(expected)
    # area 0.375 + 0.5 = 0.875 -> (0.875 - 0.5) / (1.0 - 0.5)
    assert m.apgr == pytest.approx(0.75)
    assert m.cpt50 == pytest.approx(0.25)
    assert m.cpt80 == pytest.approx(0.40)
    assert (m.cheap_accuracy, m.strong_accuracy) == (0.5, 1.0)


def test_reversed_ranker_on_toy_data() -> None:
    m = metrics.evaluate([-s for s in PERFECT], CHEAP, STRONG)
    assert m.apgr == pytest.approx(0.25)
    assert m.cpt50 == pytest.approx(0.75)
    assert m.cpt80 == pytest.approx(0.90)


def test_constant_scores_are_a_coin() -> None:
    m = metrics.evaluate([0.3] * 10, CHEAP, STRONG)
    assert {p.strong_share for p in m.curve} == {0.0, 1.0}
    assert m.apgr == pytest.approx(0.5)
    assert m.cpt50 == pytest.approx(0.5)


def test_ties_move_together() -> None:
    # two tied pairs: a threshold never splits a tie
    m = metrics.evaluate([0, 0, 1, 1], [1, 0, 1, 0], [1, 1, 1, 1])
    assert {p.strong_share for p in m.curve} <= {0.0, 0.5, 1.0}


def test_oracle_and_random_baselines() -> None:
    oracle = metrics.oracle_metrics(CHEAP, STRONG)
    assert oracle.apgr == pytest.approx(0.75)
    assert oracle.cpt50 == pytest.approx(0.25)
    assert oracle.curve[-1].accuracy == pytest.approx(1.0)
    line = metrics.random_curve(0.5, 1.0)
    assert metrics.apgr(line, 0.5, 1.0) == pytest.approx(0.5)
    assert metrics.cpt(line, 0.5, 1.0, 0.5) == pytest.approx(0.5)
    assert metrics.cpt(line, 0.5, 1.0, 0.8) == pytest.approx(0.8)


def test_oracle_beats_the_strong_model_when_it_can() -> None:
    # cheap right where strong is wrong: routing per prompt beats both models
    cheap, strong = [1, 0, 0, 1], [0, 1, 1, 1]
    oracle = metrics.oracle_metrics(cheap, strong)
    assert oracle.curve[-1].accuracy == pytest.approx(1.0)
    assert oracle.apgr > 1.0


def _routellm_reference(scores: np.ndarray, cheap: np.ndarray, strong: np.ndarray) -> tuple:
    """RouteLLM's evals (benchmarks.py + evaluate.py) transcribed with numpy only."""
    thresholds = np.quantile(scores, np.linspace(0, 1, 11))
    points = []
    for i, t in enumerate(thresholds):
        sel = scores >= t if i != len(thresholds) - 1 else scores > t
        acc = np.where(sel, strong, cheap).mean()
        points.append((sel.mean(), acc))
    points.sort()
    x = np.array([p[0] for p in points])
    y = np.array([p[1] for p in points])
    weak, strong_acc = cheap.mean(), strong.mean()
    apgr = (np.trapezoid(y, x) - weak * (x[-1] - x[0])) / ((strong_acc - weak) * (x[-1] - x[0]))
    cpt = [np.interp(p * (strong_acc - weak) + weak, y, x) for p in (0.5, 0.8)]
    return apgr, cpt, y


def test_matches_routellm_definitions() -> None:
    rng = np.random.default_rng(3)
    n = 5000
    signal = rng.random(n)
    cheap = (rng.random(n) > signal * 0.8).astype(float)
    strong = (rng.random(n) < 0.9).astype(float)
    scores = signal + rng.normal(0, 0.3, n)
    m = metrics.evaluate(scores, cheap, strong)
    apgr, (cpt50, cpt80), accuracy = _routellm_reference(scores, cheap, strong)
    assert m.apgr == pytest.approx(apgr, abs=1e-12)
    assert np.all(np.diff(accuracy) >= 0)  # np.interp is only defined on a rising curve
    assert m.cpt50 == pytest.approx(cpt50, abs=1e-12)
    assert m.cpt80 == pytest.approx(cpt80, abs=1e-12)


def test_bootstrap_is_seeded_and_brackets_the_estimate() -> None:
    rng = np.random.default_rng(0)
    n = 2000
    signal = rng.random(n)
    cheap = (rng.random(n) > signal).astype(float)
    strong = (rng.random(n) < 0.9).astype(float)
    a = metrics.bootstrap(cheap, strong, signal, n_boot=200, seed=7)
    b = metrics.bootstrap(cheap, strong, signal, n_boot=200, seed=7)
    assert a == b
    for iv in a.values():
        assert iv.low <= iv.estimate <= iv.high
    assert a["apgr"].low > 0.5
    noise = metrics.bootstrap(cheap, strong, metrics.random_scores(n, 1), n_boot=200)
    assert noise["apgr"].contains(0.5)
    oracle = metrics.bootstrap(cheap, strong, None, n_boot=100)
    assert oracle["apgr"].estimate > a["apgr"].estimate


def test_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        metrics.evaluate([1, 2], [1], [1, 0])
    with pytest.raises(ValueError):
        metrics.evaluate([], [], [])
    with pytest.raises(ValueError):
        metrics.evaluate([float("nan"), 1], [1, 0], [1, 1])
    assert np.isnan(metrics.evaluate([1, 2], [1, 1], [1, 1]).apgr)  # no gap to recover


def test_operating_points_of_a_discrete_scorer() -> None:
    scores = [0.0] * 28 + [0.5, 1.0]  # a rules scorer: mostly the default tier
    cheap, strong = [1] * 15 + [0] * 15, [1] * 30
    decile = metrics.evaluate(scores, cheap, strong)
    assert decile.apgr == pytest.approx(0.5)  # the deciles collapse onto one value
    points = metrics.operating_points(scores, cheap, strong)
    assert [(p.threshold, p.strong_share) for p in points] == [
        (float("inf"), 0.0),
        (1.0, pytest.approx(1 / 30)),
        (0.5, pytest.approx(2 / 30)),
        (0.0, 1.0),
    ]
    assert points[1].accuracy == pytest.approx(16 / 30)
