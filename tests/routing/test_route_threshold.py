"""Threshold from a target share: converges on live scores, follows drift, maps cost to share."""

from __future__ import annotations

import math

import numpy as np
import pytest

from thrifty.routing.threshold import TargetShareThreshold, share_for_cost


@pytest.mark.parametrize("target", [0.1, 0.3, 0.5, 0.8])
@pytest.mark.parametrize("dist", ["uniform", "beta", "normal"])
def test_realised_share_converges_to_the_target(target: float, dist: str) -> None:
    rng = np.random.default_rng(42)
    draw = {
        "uniform": lambda: rng.random(),
        "beta": lambda: rng.beta(0.5, 3.0),
        "normal": lambda: rng.normal(0.0, 1.0),
    }[dist]
    calib = TargetShareThreshold(target, window=2000, min_samples=100)
    for _ in range(300):  # warm-up: the initial threshold sends nothing strong
        calib.decide(draw())
    strong = sum(calib.decide(draw()) for _ in range(6000))
    assert strong / 6000 == pytest.approx(target, abs=0.03)
    assert calib.realised_share == pytest.approx(target, abs=0.03)
    assert calib.samples == 2000


def test_threshold_follows_a_shift_in_scores() -> None:
    rng = np.random.default_rng(0)
    calib = TargetShareThreshold(0.2, window=1000, min_samples=50)
    for _ in range(2000):
        calib.decide(rng.random())
    assert calib.threshold == pytest.approx(0.8, abs=0.05)
    for _ in range(2000):
        calib.decide(rng.random() + 5.0)  # new traffic scores much higher
    assert calib.threshold == pytest.approx(5.8, abs=0.05)
    assert calib.realised_share == pytest.approx(0.2, abs=0.05)


def test_before_enough_samples_the_initial_threshold_holds() -> None:
    calib = TargetShareThreshold(0.5, min_samples=10, initial_threshold=0.7)
    assert math.isnan(calib.realised_share)
    assert calib.threshold == 0.7
    for s in range(9):
        calib.observe(s / 10)
    assert calib.threshold == 0.7
    calib.observe(0.9)
    assert calib.threshold == pytest.approx(0.5)  # 5 of 10 scores are >= 0.5
    calib.observe(float("nan"))
    assert calib.samples == 10


def test_edge_targets_and_overrides() -> None:
    none = TargetShareThreshold(0.0, min_samples=1)
    every = TargetShareThreshold(1.0, min_samples=1)
    for s in (0.1, 0.5, 0.9):
        none.observe(s)
        every.observe(s)
    assert none.threshold == math.inf
    assert every.threshold == -math.inf
    assert not none.decide(100.0)
    assert every.decide(-100.0)
    calib = TargetShareThreshold(0.5, window=4)
    for strong in (True, True, False, False, False):
        calib.record(strong)
    assert calib.realised_share == pytest.approx(0.25)  # only the last 4 decisions count
    with pytest.raises(ValueError):
        TargetShareThreshold(1.5)


def test_cost_target_maps_to_a_share() -> None:
    # cheap $0.001/request, strong $0.011: $6 per 1k requests -> half strong
    assert share_for_cost(6.0, 0.001, 0.011) == pytest.approx(0.5)
    assert share_for_cost(0.5, 0.001, 0.011) == 0.0
    assert share_for_cost(50.0, 0.001, 0.011) == 1.0
    assert share_for_cost(5.0, 0.01, 0.01) == 0.0
    calib = TargetShareThreshold.for_cost(3.5, 0.001, 0.011, window=500)
    assert calib.target == pytest.approx(0.25)
    assert calib.window == 500
