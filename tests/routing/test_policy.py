"""Route policies: each knob (thresholds, target share / cost, user tiers, time sensitivity, cost
cap, capability filter, fallbacks, availability, rules, cascade) on the bundled price catalog."""

from __future__ import annotations

import json
import math
import random
import textwrap
from collections.abc import Mapping
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from thrifty.errors import ConfigError
from thrifty.keys.principal import Principal
from thrifty.pricing import CostCalculator, PriceCatalog, Usage
from thrifty.routing import policy_config
from thrifty.routing.capabilities import required_capabilities
from thrifty.routing.decision import RouteDecision
from thrifty.routing.length import LengthScorer
from thrifty.routing.policy import RoutePolicy
from thrifty.routing.policy_config import RouteGroupConfig, RoutingConfig
from thrifty.routing.scorers import RequestMeta
from thrifty.routing.threshold import share_for_cost

CATALOG = PriceCatalog.bundled()
CALC = CostCalculator(CATALOG)
TIERS = {
    "small": ["gpt-4o-mini", "gpt-4.1-nano"],
    "medium": ["gpt-4.1-mini"],
    "large": ["gpt-4o", "claude-sonnet-4-5"],
}


class FakeScorer:
    """Scores a body by its ``x_score`` key (extra keys are ignored by everything else)."""

    name = "fake"

    def __init__(self) -> None:
        self.metas: list[RequestMeta | None] = []

    def score(self, body: Mapping[str, Any], meta: RequestMeta | None = None) -> float:
        self.metas.append(meta)
        return float(body.get("x_score", 0.0))

    def score_text(self, text: str) -> float:
        return 0.0

    async def ascore(self, body: Mapping[str, Any], meta: RequestMeta | None = None) -> float:
        return self.score(body, meta)


def group(**overrides: Any) -> RouteGroupConfig:
    data: dict[str, Any] = {
        "name": "auto",
        "tiers": TIERS,
        "thresholds": {"medium": 0.4, "large": 0.7},
    }
    data.update(overrides)
    return RouteGroupConfig.model_validate(data)


def policy(**overrides: Any) -> RoutePolicy:
    return RoutePolicy(group(**overrides), CATALOG, CALC, scorer=FakeScorer())


def body(score: float = 0.0, content: Any = "hello", **extra: Any) -> dict[str, Any]:
    return {
        "model": "auto",
        "messages": [{"role": "user", "content": content}],
        "x_score": score,
        **extra,
    }


USER = Principal(tenant="acme", tier="standard")


# ------------------------------------------------------------------ thresholds


@pytest.mark.parametrize(
    ("score", "tier", "model", "text"),
    [
        (0.1, "small", "gpt-4o-mini", "score 0.10 < 0.40 → small"),
        (0.4, "medium", "gpt-4.1-mini", "score 0.40 ≥ 0.40 → medium"),
        (0.69, "medium", "gpt-4.1-mini", "score 0.69 ≥ 0.40 → medium"),
        (0.7, "large", "gpt-4o", "score 0.70 ≥ 0.70 → large"),
    ],
)
def test_fixed_cut_points_pick_the_tier(score: float, tier: str, model: str, text: str) -> None:
    d = policy().decide(body(score), USER)
    assert (d.score_tier, d.tier, d.model) == (tier, tier, model)
    assert d.reason.startswith(text)
    assert d.score == score
    assert d.threshold == (0.7 if tier == "large" else 0.4)


def test_default_cut_points_follow_the_scorer() -> None:
    p = RoutePolicy(RouteGroupConfig(tiers=TIERS), CATALOG)  # type: ignore[arg-type]
    assert isinstance(p.scorer, LengthScorer)
    assert p.thresholds == (0.5, 0.8)
    assert p.decide(body(content="What is S3?")).model == "gpt-4o-mini"
    long_prompt = "Please review this design document carefully. " * 300
    d = p.decide(body(content=long_prompt))
    assert (d.tier, d.model) == ("large", "gpt-4o")
    rules = RoutePolicy(RouteGroupConfig(tiers=TIERS, scorer="rules"), CATALOG)  # type: ignore[arg-type]
    assert rules.thresholds == (0.5, 1.0)
    assert rules.decide(body(content="Design a system for payments")).tier == "large"
    assert rules.decide(body(content="Explain how to use S3")).tier == "medium"
    assert rules.decide(body(content="What is S3?")).tier == "small"


@pytest.mark.parametrize("target", [0.1, 0.25, 0.5])
def test_target_share_converges_on_live_scores(target: float) -> None:
    thresholds = {"target_strong_share": target, "window": 2000, "medium": 0.4, "large": 0.7}
    p = policy(thresholds=thresholds)
    assert p.target_share == target
    assert p.thresholds == (0.4, 0.7)  # the fixed cut points until min_samples scores
    rng = random.Random(7)
    for _ in range(3000):
        p.decide(body(rng.random()), USER)
    assert p.realised_share == pytest.approx(target, abs=0.03)
    assert p.thresholds[1] == pytest.approx(1 - target, abs=0.03)
    assert p.thresholds[0] == p.thresholds[1]  # no medium band without target_medium_share


def test_target_medium_share_adds_a_medium_band() -> None:
    p = policy(thresholds={"target_strong_share": 0.2, "target_medium_share": 0.3, "window": 2000})
    rng = random.Random(3)
    tiers = [p.decide(body(rng.random()), USER).tier for _ in range(3000)][-2000:]
    assert tiers.count("large") / 2000 == pytest.approx(0.2, abs=0.03)
    assert tiers.count("medium") / 2000 == pytest.approx(0.3, abs=0.03)
    medium, large = p.thresholds
    assert (medium, large) == (pytest.approx(0.5, abs=0.03), pytest.approx(0.8, abs=0.03))


def test_target_cost_per_1k_becomes_a_share() -> None:
    p = policy(thresholds={"target_cost_per_1k": 2.0})
    usage = Usage(prompt_tokens=500, completion_tokens=300)
    cheap = CALC.cost_of("gpt-4o-mini", usage)
    strong = CALC.cost_of("gpt-4o", usage)
    assert cheap is not None and strong is not None
    expected = share_for_cost(2.0, cheap.total_usd, strong.total_usd)
    assert 0 < expected < 1
    assert p.target_share == pytest.approx(expected)
    with pytest.raises(ConfigError, match="priced large model"):
        policy(
            tiers={"small": ["gpt-4o-mini"], "large": ["my-own-llm"]},
            thresholds={"target_cost_per_1k": 2.0},
        )


def test_preview_has_no_side_effects() -> None:
    p = policy(thresholds={"target_strong_share": 0.5, "min_samples": 10})
    for i in range(50):
        p.preview(body(i / 50), USER)
    assert math.isnan(p.realised_share)
    assert p.thresholds == (0.5, 0.8)  # the length scorer's default cut points
    for i in range(50):
        p.decide(body(i / 50), USER)
    assert p.thresholds[1] == pytest.approx(0.5, abs=0.05)
    assert not math.isnan(p.realised_share)


def test_realised_share_counts_final_decisions() -> None:
    p = policy()
    premium = Principal(tenant="acme", tier="premium")
    p.decide(body(0.1), USER)
    p.decide(body(0.5), premium)  # upgraded: counts as large
    p.decide(body(0.9), USER)
    p.decide(body(0.5), USER)
    assert p.realised_share == 0.5
    p.record(True)
    assert p.realised_share == pytest.approx(3 / 5)


# ------------------------------------------------------------------ user tier, time sensitivity


@pytest.mark.parametrize(
    ("user_tier", "score", "tier"),
    [
        ("premium", 0.5, "large"),
        ("enterprise", 0.5, "large"),
        ("premium", 0.9, "large"),
        ("premium", 0.1, "small"),
        ("enterprise", 0.1, "small"),
        ("standard", 0.5, "medium"),
        ("basic", 0.5, "medium"),
    ],
)
def test_seed_user_tier_upgrades(user_tier: str, score: float, tier: str) -> None:
    d = policy().decide(body(score), Principal(tenant="acme", tier=user_tier))
    assert d.tier == tier
    assert d.model == TIERS[tier][0]
    if tier != d.score_tier:
        assert f"{user_tier} user: medium → large" in d.reason


def test_user_tier_upgrades_can_cap_a_tier() -> None:
    p = policy(user_tier_upgrades=[{"user_tiers": ["basic"], "when": ["complex"], "to": "medium"}])
    assert p.decide(body(0.9), Principal(tenant="a", tier="basic")).tier == "medium"
    assert p.decide(body(0.9), Principal(tenant="a", tier="premium")).tier == "large"
    assert p.decide(body(0.5), Principal(tenant="a", tier="premium")).tier == "medium"


@pytest.mark.parametrize(
    ("tags", "priority", "principal_tags"),
    [
        ({"latency": "low"}, "normal", {}),
        ({"Latency": "LOW"}, "normal", {}),
        ({}, "critical", {}),
        ({}, "normal", {"latency": "low"}),
    ],
)
def test_time_sensitive_large_requests_get_the_fast_model(
    tags: dict[str, str], priority: str, principal_tags: dict[str, str]
) -> None:
    p = policy(time_sensitive_model="gpt-4.1")
    who = Principal(tenant="acme", tags=principal_tags)
    d = p.decide(body(0.9), who, tags=tags, priority=priority)
    assert d.time_sensitive
    assert (d.tier, d.model) == ("large", "gpt-4.1")
    assert d.fallbacks[0] == "gpt-4o"
    assert "time-sensitive" in d.reason


def test_a_key_tag_wins_over_the_request_tag_of_the_same_name() -> None:
    """As in the gateway: the key's ``latency: high`` is not overridden by the request (the
    admin route preview passes the raw request tags)."""
    p = policy(time_sensitive_model="gpt-4.1")
    who = Principal(tenant="acme", tags={"latency": "high"})
    assert p.decide(body(0.9), who, tags={"latency": "low"}).model == "gpt-4o"


def test_time_sensitivity_leaves_other_tiers_alone_unless_listed() -> None:
    p = policy(time_sensitive_model="gpt-4.1")
    d = p.decide(body(0.1), USER, tags={"latency": "low"})
    assert d.time_sensitive and d.model == "gpt-4o-mini"
    assert p.decide(body(0.9), USER, tags={"latency": "high"}).model == "gpt-4o"
    every = policy(
        time_sensitive_model="gpt-4.1",
        time_sensitivity={"tiers": ["small", "medium", "large"], "priorities": []},
    )
    assert every.decide(body(0.1), USER, tags={"latency": "low"}).model == "gpt-4.1"
    assert not every.decide(body(0.1), USER, priority="critical").time_sensitive


# ------------------------------------------------------------------ cost cap


def worst(model: str, b: dict[str, Any], max_output: int | None, count: bool = False) -> float:
    prompt = required_capabilities(b, count=count).prompt_estimate
    value = CALC.worst_case(model, prompt, max_output)
    assert value is not None
    return value


def test_cost_cap_picks_the_best_model_whose_worst_case_fits() -> None:
    b = body(0.9, max_tokens=1000)
    gpt4o, sonnet = worst("gpt-4o", b, 1000), worst("claude-sonnet-4-5", b, 1000)
    assert gpt4o < sonnet
    tiers = {**TIERS, "large": ["claude-sonnet-4-5", "gpt-4o"]}
    d = policy(tiers=tiers, max_cost_usd=(gpt4o + sonnet) / 2).decide(b, USER)
    assert d.model == "gpt-4o"
    # a rejection on the cap makes the policy count the prompt instead of bounding it
    assert d.worst_case_usd == pytest.approx(worst("gpt-4o", b, 1000, count=True))
    assert d.considered[0].model == "claude-sonnet-4-5"
    assert "> cap" in d.considered[0].reason
    assert "≤ cap" in d.reason and "skipped claude-sonnet-4-5" in d.reason


def test_cost_cap_steps_down_a_tier_when_no_model_of_the_tier_fits() -> None:
    b = body(0.9, max_tokens=1000)
    cap = (worst("gpt-4.1-mini", b, 1000) + worst("gpt-4o", b, 1000)) / 2
    d = policy(max_cost_usd=cap).decide(b, USER)
    assert (d.score_tier, d.tier, d.model) == ("large", "medium", "gpt-4.1-mini")
    assert "no large model fits → medium" in d.reason
    assert {c.model for c in d.considered} >= {"gpt-4o", "claude-sonnet-4-5"}


def test_cost_cap_refuses_cleanly_when_nothing_fits() -> None:
    b = body(0.9, max_tokens=1000)
    d = policy(max_cost_usd=0.0001).decide(b, USER)
    assert d.model is None and not d.ok and d.tier is None and d.fallbacks == []
    cheapest = min(
        ["gpt-4o-mini", "gpt-4.1-nano", "gpt-4.1-mini", "gpt-4o", "claude-sonnet-4-5"],
        key=lambda m: worst(m, b, 1000),
    )
    assert cheapest == "gpt-4.1-nano"
    assert f"no model fits the cap $0.0001: cheapest worst case {cheapest}" in d.reason
    assert len(d.considered) == 5
    assert "model=none" in d.header_value()


def test_cost_cap_uses_the_model_max_output_without_max_tokens() -> None:
    b = body(0.1)
    # gpt-4o-mini may write 16,384 tokens ($0.0098), gpt-4.1-nano 32,768 ($0.0131).
    cap = (worst("gpt-4o-mini", b, None) + worst("gpt-4.1-nano", b, None)) / 2
    d = policy(tiers={"small": ["gpt-4.1-nano", "gpt-4o-mini"]}, max_cost_usd=cap).decide(b)
    assert d.model == "gpt-4o-mini"
    d = policy(tiers={"small": ["gpt-4.1-nano", "gpt-4o-mini"]}, max_cost_usd=cap).decide(
        body(0.1, max_tokens=500)
    )
    assert d.model == "gpt-4.1-nano"


def test_unpriced_models_are_allowed_but_not_under_a_cap() -> None:
    tiers = {"small": ["my-own-llm", "gpt-4o-mini"]}
    d = policy(tiers=tiers).decide(body(0.1))
    assert d.model == "my-own-llm"
    assert "capabilities unknown" in d.reason
    assert d.worst_case_usd is None
    d = policy(tiers=tiers, max_cost_usd=1.0).decide(body(0.1, max_tokens=100))
    assert d.model == "gpt-4o-mini"
    assert "unpriced" in d.considered[0].reason


# ------------------------------------------------------------------ capability filter


def test_context_window_must_hold_the_prompt_and_max_output() -> None:
    tiers = {"small": ["gpt-4", "gpt-4o-mini"]}  # gpt-4: 8,192 tokens
    d = policy(tiers=tiers).decide(body(0.1, max_tokens=8190), USER)
    assert d.model == "gpt-4o-mini"
    assert "exceed the 8.19k context" in d.considered[0].reason
    assert "fits 128k context" in d.reason
    assert policy(tiers=tiers).decide(body(0.1, max_tokens=100), USER).model == "gpt-4"


def test_a_long_prompt_is_counted_when_the_bound_does_not_fit() -> None:
    # ~40k tokens; the byte bound (~200k) exceeds 128k, the count (x1.5 safety) does not.
    text = "word " * 40_000
    b = body(0.1, content=text, max_tokens=1000)
    assert required_capabilities(b).prompt_tokens_upper > 128_000
    tiers = {"small": ["gpt-3.5-turbo", "gpt-4o-mini"]}
    d = policy(tiers=tiers).decide(b, USER)
    assert d.model == "gpt-4o-mini"
    assert d.considered[0].model == "gpt-3.5-turbo"
    assert "16k context" in d.considered[0].reason


def test_requested_output_above_the_model_maximum_is_rejected() -> None:
    d = policy().decide(body(0.1, max_tokens=20_000), USER)
    assert d.model == "gpt-4.1-nano"  # 32,768 max output; gpt-4o-mini has 16,384
    assert d.considered[0].reason == "max output 20000 > the model's 16384"


TOOL = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
IMAGE = [
    {"type": "text", "text": "what is this?"},
    {"type": "image_url", "image_url": {"url": "https://example.com/x.png"}},
]


@pytest.mark.parametrize(
    ("unfit", "extra", "content", "why"),
    [
        ("o1-mini", {"tools": [TOOL]}, "hi", "no tool calling support"),
        ("gpt-5-chat-latest", {"tools": [TOOL]}, "hi", "no tool calling support"),
        ("claude-3-5-haiku", {}, IMAGE, "no vision support"),
        ("gpt-3.5-turbo", {}, IMAGE, "no vision support"),
        ("o1-mini", {"response_format": {"type": "json_object"}}, "hi", "no JSON mode support"),
        ("gpt-4", {"response_format": {"type": "json_object"}}, "hi", "no JSON mode support"),
    ],
)
def test_capability_filter(unfit: str, extra: dict[str, Any], content: Any, why: str) -> None:
    p = policy(tiers={"small": [unfit, "gpt-4o-mini"]})
    d = p.decide(body(0.1, content=content, **extra), USER)
    assert d.model == "gpt-4o-mini"
    assert (d.considered[0].model, d.considered[0].reason) == (unfit, why)
    plain = p.decide(body(0.1), USER)
    assert plain.model == unfit and plain.considered == []


def test_no_capable_model_is_a_clear_refusal() -> None:
    d = policy(tiers={"small": ["o1-mini"]}).decide(body(0.1, tools=[TOOL]), USER)
    assert d.model is None
    assert "no model can serve this request (tools;" in d.reason
    assert "o1-mini: no tool calling support" in d.reason


# ------------------------------------------------------------------ fallbacks, availability


@pytest.mark.parametrize(
    ("score", "fallbacks"),
    [
        (0.1, ["gpt-4.1-nano", "gpt-4.1-mini", "gpt-4o", "claude-sonnet-4-5", "gpt-4.1"]),
        (0.5, ["gpt-4o", "claude-sonnet-4-5", "gpt-4o-mini", "gpt-4.1-nano", "gpt-4.1"]),
        (0.9, ["claude-sonnet-4-5", "gpt-4.1-mini", "gpt-4o-mini", "gpt-4.1-nano", "gpt-4.1"]),
    ],
)
def test_fallbacks_the_tier_then_the_nearest_tiers_then_the_configured(
    score: float, fallbacks: list[str]
) -> None:
    d = policy(fallbacks=["gpt-4.1"], max_fallbacks=10).decide(body(score), USER)
    assert d.fallbacks == fallbacks
    assert policy().decide(body(score), USER).fallbacks == fallbacks[:3]


def test_fallbacks_skip_models_that_cannot_serve_the_request() -> None:
    tiers = {"small": ["gpt-4o-mini", "o1-mini"], "large": ["gpt-4o", "gpt-5-chat-latest"]}
    d = policy(tiers=tiers, max_fallbacks=5).decide(body(0.1, tools=[TOOL]), USER)
    assert d.fallbacks == ["gpt-4o"]
    assert {c.model for c in d.considered} == {"o1-mini", "gpt-5-chat-latest"}


def test_unavailable_models_are_skipped() -> None:
    available = {"gpt-4o-mini", "gpt-4.1-mini", "claude-sonnet-4-5"}
    d = policy().decide(body(0.9), USER, available_models=available)
    assert (d.tier, d.model) == ("large", "claude-sonnet-4-5")
    assert d.considered[0] == ("gpt-4o", "unavailable")
    assert d.fallbacks == ["gpt-4.1-mini", "gpt-4o-mini"]
    d = policy().decide(body(0.9), USER, available_models={"gpt-4.1-mini"})
    assert (d.tier, d.model) == ("medium", "gpt-4.1-mini")
    d = policy().decide(body(0.9), USER, available_models=set())
    assert d.model is None and "unavailable" in d.reason


# ------------------------------------------------------------------ scorers, cascade, output


def test_rules_can_pin_a_model_and_see_tags_tenant_and_tier() -> None:
    rules = [
        {"name": "legal", "tags": ["legal"], "model": "claude-sonnet-4-5"},
        {"name": "acme-vip", "tenants": ["acme"], "user_tiers": ["enterprise"], "tier": "medium"},
    ]
    p = RoutePolicy(group(scorer="rules", rules=rules, thresholds={}), CATALOG)
    d = p.decide(body(), USER, tags={"use_case": "legal"})
    assert (d.model, d.rule, d.tier) == ("claude-sonnet-4-5", "legal", "large")
    assert "rule legal" in d.reason and "rule pins claude-sonnet-4-5" in d.reason
    vip = Principal(tenant="acme", tier="enterprise")
    d = p.decide(body(), vip)
    assert d.rule == "acme-vip" and d.score_tier == "medium" and d.tier == "large"
    assert p.decide(body(), USER).rule is None


async def test_adecide_and_apreview_use_the_async_scorer() -> None:
    p = policy(thresholds={"target_strong_share": 0.5, "min_samples": 1})
    scorer = p.scorer
    assert isinstance(scorer, FakeScorer)
    d = await p.apreview(body(0.9), USER, tags={"team": "x"})
    assert d.model == "gpt-4o" and math.isnan(p.realised_share)
    meta = scorer.metas[-1]
    assert meta is not None and meta.tenant == "acme" and meta.user_tier == "standard"
    assert set(meta.tags) == {"team", "x", "team=x"}
    d2 = await p.adecide(body(0.9), USER)
    assert d2.model == "gpt-4o" and p.realised_share == 1.0


def test_cascade_answers_cheap_first_and_names_the_strong_model() -> None:
    p = policy(cascade={"enabled": True})
    d = p.decide(body(0.9), USER)
    assert (d.model, d.escalate_to, d.tier) == ("gpt-4o-mini", "gpt-4o", "cascade")
    assert d.fallbacks == ["gpt-4o", "claude-sonnet-4-5", "gpt-4.1-mini"]
    assert "cascade: gpt-4o-mini first, gpt-4o if a check fails" in d.reason
    assert math.isnan(p.realised_share)  # the route stage records the outcome
    p.record(False)
    assert p.realised_share == 0.0
    urgent = p.decide(body(0.9), USER, priority="critical")
    assert (urgent.model, urgent.escalate_to) == ("gpt-4o", None)
    no_strong = p.decide(body(0.9), USER, available_models={"gpt-4o-mini", "gpt-4.1-mini"})
    assert no_strong.escalate_to is None and "no cascade (gpt-4o: unavailable)" in no_strong.reason


def test_decision_serialises_and_fits_a_header() -> None:
    p = policy(thresholds={"target_strong_share": 0.0, "min_samples": 1})
    p.decide(body(0.5), USER)
    d = p.decide(body(0.3), USER)  # nothing goes large: the threshold is +inf
    data = d.to_dict()
    json.dumps(data, allow_nan=False)
    assert data["threshold"] is None and data["score"] == 0.3
    assert data["model"] == "gpt-4o-mini" and data["group"] == "auto"
    header = d.header_value()
    assert header.isascii() and header.startswith("group=auto; model=gpt-4o-mini; tier=small")
    assert isinstance(d, RouteDecision) and d.ok


# ------------------------------------------------------------------ config validation


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"tiers": {}}, "tiers has no model"),
        ({"scorer": "magic"}, "unknown scorer"),
        ({"thresholds": {"medium": 0.8, "large": 0.5}}, "above the large cut"),
        (
            {"thresholds": {"target_strong_share": 0.2, "target_cost_per_1k": 1.0}},
            "not both",
        ),
        ({"thresholds": {"target_strong_share": 0.8, "target_medium_share": 0.3}}, "exceeds 1"),
        ({"rules": [{"name": "x"}]}, "needs a tier"),
        ({"cascade": {"regex": "("}}, "does not compile"),
        ({"cascade": {"checks": ["regex"]}}, "needs cascade.regex"),
        ({"cascade": {"enabled": True, "cheap": "gpt-4o"}}, "two models"),
        ({"user_tier_upgrades": [{"user_tiers": ["gold"]}]}, "user_tiers"),
        ({"time_sensitivity": {"tiers": ["huge"]}}, "tiers"),
        ({"max_cost_usd": 0}, "max_cost_usd"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_group_config_is_validated(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        group(**overrides)


def test_routing_config_groups_and_lookup() -> None:
    cfg = RoutingConfig.model_validate(
        {
            "default_group": "auto",
            "groups": {
                "auto": {"tiers": {"small": ["gpt-4o-mini"], "large": ["gpt-4o"]}},
                "support-bot": {"tiers": {"small": ["gpt-4.1-nano"]}, "scorer": "rules"},
            },
        }
    )
    assert [g.name for g in cfg.groups] == ["auto", "support-bot"]
    auto = cfg.group("auto")
    assert auto is not None and auto.tiers.filled == ("small", "large")
    assert auto.user_tier_upgrades[0].user_tiers == ("premium", "enterprise")
    assert auto.time_sensitivity.tags == {"latency": "low"}
    bot = cfg.group("support-bot")
    assert bot is not None and bot.scorer == "rules"
    assert cfg.group("gpt-4o") is None
    assert RoutingConfig().groups == () and RoutingConfig().group("auto") is None
    with pytest.raises(ValidationError, match="not a route group"):
        RoutingConfig.model_validate({"default_group": "x", "groups": [{"tiers": TIERS}]})
    with pytest.raises(ValidationError, match="used twice"):
        RoutingConfig.model_validate({"groups": [{"tiers": TIERS}, {"tiers": TIERS}]})
    cascade = group(cascade={"regex": r"\bdone\b"}).cascade
    assert cascade.checks[-1] == "regex"


def test_the_documented_yaml_example_loads() -> None:
    doc = policy_config.__doc__ or ""
    example = textwrap.dedent(doc[doc.index("    routing:") : doc.index("Every field")])
    cfg = RoutingConfig.model_validate(yaml.safe_load(example)["routing"])
    auto = cfg.group("auto")
    assert auto is not None
    assert auto.user_tier_upgrades == group().user_tier_upgrades
    assert auto.thresholds.cuts(auto.scorer) == (0.5, 0.8)
    p = RoutePolicy(auto, CATALOG)
    d = p.decide(body(content="What is S3?", max_tokens=200), USER)
    assert d.model == "gpt-4o-mini" and d.worst_case_usd is not None


def test_routing_tags_are_the_ones_the_group_reads() -> None:
    """Only tags a rule or time sensitivity can match split a group's cache entries; a scorer
    that does not say what it reads gets every tag."""
    rules = [
        {"name": "legal", "tags": ["legal"], "tier": "large"},
        {"name": "search", "tags": ["team=search"], "tier": "medium"},
    ]
    p = RoutePolicy(group(scorer="rules", rules=rules), CATALOG, CALC)
    tags = {"legal": "", "Team": "Search", "trace": "abc", "Latency": "low", "x": "legal"}
    assert p.routing_tags(tags) == [
        ("Latency", "low"),
        ("Team", "Search"),
        ("legal", ""),
        ("x", "legal"),  # a value is matched too
    ]
    length = RoutePolicy(group(scorer="length"), CATALOG, CALC)
    assert length.routing_tags({"trace": "abc", "latency": "low"}) == [("latency", "low")]
    assert policy().routing_tags({"trace": "abc"}) == [("trace", "abc")]  # FakeScorer
