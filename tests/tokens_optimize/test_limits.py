"""Response limits: the seed's numbers, and caps only where the client set none."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from thrifty.tokens.optimize import (
    BASE_MAX_TOKENS,
    TIER_MULTIPLIERS,
    ComplexityThresholds,
    LimitPolicy,
    apply_response_limit,
    classify_complexity,
    response_limit,
)

SEED_CAPS = {  # seed 001: int(base_limits[complexity] * tier_multipliers[tier])
    ("simple", "basic"): 120,
    ("simple", "standard"): 150,
    ("simple", "premium"): 225,
    ("simple", "enterprise"): 300,
    ("complex", "basic"): 240,
    ("complex", "standard"): 300,
    ("complex", "premium"): 450,
    ("complex", "enterprise"): 600,
    ("very_complex", "basic"): 400,
    ("very_complex", "standard"): 500,
    ("very_complex", "premium"): 750,
    ("very_complex", "enterprise"): 1000,
}


def test_seed_numbers() -> None:
    assert dict(BASE_MAX_TOKENS) == {"simple": 150, "complex": 300, "very_complex": 500}
    assert dict(TIER_MULTIPLIERS) == {
        "basic": 0.8,
        "standard": 1.0,
        "premium": 1.5,
        "enterprise": 2.0,
    }


@pytest.mark.parametrize(("complexity", "tier"), list(SEED_CAPS))
def test_caps_by_complexity_and_tier(complexity: Any, tier: str) -> None:
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    new, result = apply_response_limit(body, complexity, enabled=True, tier=tier.upper())
    assert new["max_tokens"] == result.max_tokens == SEED_CAPS[complexity, tier]
    assert result.applied and result.tier == tier and result.tokens_saved == 0
    assert str(SEED_CAPS[complexity, tier]) in result.reason
    assert "max_tokens" not in body


def test_unknown_and_missing_tiers() -> None:
    assert response_limit("complex", "gold") == (300, 1.0, "gold")
    assert response_limit("complex") == (300, 1.0, "standard")
    assert response_limit("simple", None, LimitPolicy(default_tier="basic"))[0] == 120
    _, result = apply_response_limit({"model": "m"}, "simple", enabled=True, tier="gold")
    assert result.max_tokens == 150 and "unknown tier" in result.reason


body_limits = st.fixed_dictionaries(
    {},
    optional={
        "max_tokens": st.none() | st.integers(1, 10_000),
        "max_completion_tokens": st.none() | st.integers(1, 10_000),
    },
)


@settings(max_examples=100, deadline=None)
@given(
    limits=body_limits,
    enabled=st.booleans(),
    complexity=st.sampled_from(["simple", "complex", "very_complex"]),
    tier=st.none() | st.sampled_from([*TIER_MULTIPLIERS, "gold"]),
    model=st.sampled_from(["gpt-4o", "claude-sonnet-4-5", "o3-mini", "openai/gpt-5", "llama-3"]),
)
def test_applies_only_when_enabled_and_the_client_set_no_cap(
    limits: dict[str, Any], enabled: bool, complexity: Any, tier: str | None, model: str
) -> None:
    body = {"model": model, "messages": [{"role": "user", "content": "x"}], **limits}
    original = copy.deepcopy(body)
    new, result = apply_response_limit(body, complexity, enabled=enabled, tier=tier)
    assert body == original and new is not body
    client_set = any(v is not None for v in limits.values())
    reasoning = model in ("o3-mini", "openai/gpt-5")
    assert result.applied == (enabled and not client_set and not reasoning)
    if result.applied:
        assert new == {**body, "max_tokens": result.max_tokens}
        assert result.max_tokens == response_limit(complexity, tier)[0]
    else:
        assert new == body and result.max_tokens is None


def test_reasoning_models_and_field_choice() -> None:
    body = {"model": "o4-mini", "messages": []}
    _, skipped = apply_response_limit(body, "simple", enabled=True)
    assert not skipped.applied and "reasoning" in skipped.reason
    policy = LimitPolicy(skip_reasoning_models=False, output_field="max_completion_tokens")
    new, result = apply_response_limit(body, "simple", enabled=True, policy=policy)
    assert new["max_completion_tokens"] == 150 and "max_tokens" not in new and result.applied


def test_classify_thresholds() -> None:
    assert classify_complexity(0.0) == "simple"
    assert classify_complexity(0.39) == "simple"
    assert classify_complexity(0.4) == "complex"
    assert classify_complexity(0.69) == "complex"
    assert classify_complexity(0.7) == "very_complex"
    assert classify_complexity(tokens=199) == "simple"
    assert classify_complexity(tokens=200) == "complex"
    assert classify_complexity(tokens=1000) == "very_complex"
    assert classify_complexity(0.1, tokens=5000) == "simple"  # the score wins
    custom = ComplexityThresholds(score_complex=0.2, score_very_complex=0.5)
    assert classify_complexity(0.3, thresholds=custom) == "complex"
    with pytest.raises(ValueError):
        classify_complexity()
    with pytest.raises(ValueError):
        ComplexityThresholds(score_complex=0.8, score_very_complex=0.5)


ORDER = {"simple": 0, "complex": 1, "very_complex": 2}


@settings(max_examples=100, deadline=None)
@given(a=st.floats(0, 1), b=st.floats(0, 1), n=st.integers(0, 5000), m=st.integers(0, 5000))
def test_classification_is_monotonic(a: float, b: float, n: int, m: int) -> None:
    lo, hi = sorted((a, b))
    assert ORDER[classify_complexity(lo)] <= ORDER[classify_complexity(hi)]
    lo_n, hi_n = sorted((n, m))
    assert ORDER[classify_complexity(tokens=lo_n)] <= ORDER[classify_complexity(tokens=hi_n)]
