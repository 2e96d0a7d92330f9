"""Response limits: cap ``max_tokens`` by request complexity and user tier (seed 001).

The cap is ``floor(BASE_MAX_TOKENS[complexity] * TIER_MULTIPLIERS[tier])`` (the seed's
``int()``): simple 150, complex 300, very complex 500; basic x0.8, standard x1, premium x1.5,
enterprise x2 (an unknown tier gets x1, as in the seed). These numbers are the seed's, not
measured: a cap that is too low truncates answers (``finish_reason: "length"``), so the lever
is off unless a route enables it.

Invariants of ``apply_response_limit``:

- It changes nothing unless ``enabled`` is true.
- It never overrides the client: when the body has a non-null ``max_tokens`` or
  ``max_completion_tokens``, the body is returned unchanged.
- It skips reasoning models (o1/o3/o4, gpt-5, DeepSeek R1/reasoner) by default: their hidden
  reasoning tokens count against the cap, so a few hundred tokens would leave no visible answer.
- Otherwise it sets exactly one field (``LimitPolicy.output_field``, ``max_tokens`` by default:
  every provider adapter maps it) and nothing else. It saves no prompt tokens; the output it saves
  shows in the usage the ledger records.

``classify_complexity`` maps the router's score (or, without one, a token length) to a class with
documented thresholds.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from thrifty.tokens.optimize._content import body_model

__all__ = [
    "BASE_MAX_TOKENS",
    "DEFAULT_THRESHOLDS",
    "TIER_MULTIPLIERS",
    "Complexity",
    "ComplexityThresholds",
    "LimitPolicy",
    "LimitResult",
    "apply_response_limit",
    "classify_complexity",
    "response_limit",
]

Complexity = Literal["simple", "complex", "very_complex"]

#: Seed 001's base output caps per complexity class.
BASE_MAX_TOKENS: Mapping[Complexity, int] = {"simple": 150, "complex": 300, "very_complex": 500}

#: Seed 001's multipliers per user tier.
TIER_MULTIPLIERS: Mapping[str, float] = {
    "basic": 0.8,
    "standard": 1.0,
    "premium": 1.5,
    "enterprise": 2.0,
}

_REASONING_MODEL = re.compile(
    r"(?:^|/)(?:o[1-9](?:-|$)|gpt-5|deepseek-r1|deepseek-reasoner)", re.IGNORECASE
)


@dataclass(frozen=True, slots=True)
class ComplexityThresholds:
    """Class boundaries. A score in [0, 1] (the router's "needs the strong model") is ``simple``
    below ``score_complex``, ``very_complex`` at or above ``score_very_complex``, else
    ``complex``. A token length (of the last user message, say) is ``simple`` below
    ``tokens_complex``, ``very_complex`` at or above ``tokens_very_complex``, else ``complex``.

    The defaults split the score range into rough thirds weighted towards ``simple`` and put a
    short question (< 200 tokens) in ``simple`` and a pasted document (>= 1000) in
    ``very_complex``; they are starting points, not measurements.
    """

    score_complex: float = 0.4
    score_very_complex: float = 0.7
    tokens_complex: int = 200
    tokens_very_complex: int = 1000

    def __post_init__(self) -> None:
        if not self.score_complex <= self.score_very_complex:
            raise ValueError("score_complex must be <= score_very_complex")
        if not self.tokens_complex <= self.tokens_very_complex:
            raise ValueError("tokens_complex must be <= tokens_very_complex")


DEFAULT_THRESHOLDS = ComplexityThresholds()


def classify_complexity(
    score: float | None = None,
    *,
    tokens: int | None = None,
    thresholds: ComplexityThresholds = DEFAULT_THRESHOLDS,
) -> Complexity:
    """The complexity class of a request from the router's ``score`` (preferred) or, when no
    score is given, from a token length. Raises ``ValueError`` when neither is given."""
    if score is not None:
        if score >= thresholds.score_very_complex:
            return "very_complex"
        return "complex" if score >= thresholds.score_complex else "simple"
    if tokens is not None:
        if tokens >= thresholds.tokens_very_complex:
            return "very_complex"
        return "complex" if tokens >= thresholds.tokens_complex else "simple"
    raise ValueError("classify_complexity needs a score or a token length")


@dataclass(frozen=True, slots=True)
class LimitPolicy:
    """How a route caps responses. ``base`` and ``multipliers`` default to the seed's numbers;
    ``default_tier`` applies when the request has no tier; ``output_field`` is the field set."""

    base: Mapping[Complexity, int] = field(default_factory=lambda: dict(BASE_MAX_TOKENS))
    multipliers: Mapping[str, float] = field(default_factory=lambda: dict(TIER_MULTIPLIERS))
    default_tier: str = "standard"
    output_field: Literal["max_tokens", "max_completion_tokens"] = "max_tokens"
    skip_reasoning_models: bool = True


DEFAULT_POLICY = LimitPolicy()


@dataclass(frozen=True, slots=True)
class LimitResult:
    """What ``apply_response_limit`` decided: the cap set (``None`` when none was) and why."""

    applied: bool
    max_tokens: int | None
    complexity: Complexity
    tier: str
    multiplier: float
    reason: str

    @property
    def tokens_saved(self) -> int:
        """Prompt tokens saved: always 0 (the lever caps output, not the prompt)."""
        return 0


def response_limit(
    complexity: Complexity, tier: str | None = None, policy: LimitPolicy = DEFAULT_POLICY
) -> tuple[int, float, str]:
    """``(cap, multiplier, tier)`` for a class and a tier (case-insensitive; unknown tiers get
    x1.0). The cap is at least 1."""
    name = (tier or policy.default_tier).strip().lower()
    multiplier = policy.multipliers.get(name, 1.0)
    cap = math.floor(policy.base[complexity] * multiplier + 1e-9)  # the seed's int(), float-safe
    return max(1, cap), multiplier, name


def _client_limit(body: Mapping[str, Any]) -> str | None:
    for key in ("max_tokens", "max_completion_tokens"):
        if body.get(key) is not None:
            return key
    return None


def apply_response_limit(
    body: Mapping[str, Any],
    complexity: Complexity,
    *,
    enabled: bool,
    tier: str | None = None,
    policy: LimitPolicy = DEFAULT_POLICY,
) -> tuple[dict[str, Any], LimitResult]:
    """Set the output cap for ``complexity`` and ``tier`` on a new copy of ``body`` when
    ``enabled`` and the client set none (see the module docstring for the invariants)."""
    cap, multiplier, name = response_limit(complexity, tier, policy)
    new = dict(body)

    def skipped(reason: str) -> tuple[dict[str, Any], LimitResult]:
        return new, LimitResult(False, None, complexity, name, multiplier, reason)

    if not enabled:
        return skipped("response limits are off for this route")
    client = _client_limit(body)
    if client is not None:
        return skipped(f"client set {client}={body[client]}")
    model = body_model(body)
    if policy.skip_reasoning_models and _REASONING_MODEL.search(model):
        return skipped(f"{model} is a reasoning model: its reasoning tokens count against a cap")
    new[policy.output_field] = cap
    base = policy.base[complexity]
    reason = f"{complexity} request ({base}) x {name} tier ({multiplier:g}) = {cap}"
    if name not in policy.multipliers:
        reason += f" (unknown tier {name!r}: x1)"
    return new, LimitResult(True, cap, complexity, name, multiplier, reason)
