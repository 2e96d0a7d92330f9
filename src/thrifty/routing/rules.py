"""The ``rules`` scorer: operator-written rules (keywords, patterns, tags, tenant, user tier → a
tier or a model).

Rules are **business rules, not a quality signal**: they say "requests tagged ``legal`` go to the
large model" or "tenant ``acme`` pays for ``gpt-4o``". They are checked in order; the first rule
whose conditions all hold decides (within one condition, any listed value matches). A rule ends in
a ``tier`` (``small`` / ``medium`` / ``large``; ``simple`` and ``complex`` are accepted aliases), a
fixed ``score``, or a concrete ``model`` (the route stage then uses that model; its score is the
``large`` tier's unless ``score`` is set). No match gives ``default_tier``. Keywords, patterns, tags
and user tiers match case-insensitively; tenants are ids and match exactly.

``keywords`` are words or phrases found where a word starts ("design" also finds "designs" and
"Designer", not "redesign"), with plain substring search on the lowercased text: ~10x cheaper than
the same list as a case-insensitive regular expression on a long prompt (Python's ``re`` tries
every alternative at every position). Use ``patterns`` (regular expressions, searched
case-insensitively) for anything keywords cannot say; a rule with both matches when either does.

Config shape (YAML)::

    rules:
      - name: legal-review
        tags: [legal]
        tier: large
      - name: acme-premium
        tenants: [acme]
        user_tiers: [premium, enterprise]
        model: gpt-4o
      - name: code
        keywords: ['```', stack trace, traceback]
        patterns: ['\\bline \\d+, in\\b']
        tier: medium

:data:`SEED_KEYWORD_RULES` is the seed designs' keyword classifier ("design", "optimize" … →
large; "explain", "how to" … → medium; else small), shipped as an *example* rule set only. Measured
on RouteLLM's MMLU outcomes it is no better than a coin (APGR ≈ 0.50; random routing 0.50, prompt
length 0.58): use it to express a policy, not to predict which prompts the cheap model fails.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from thrifty.errors import ConfigError
from thrifty.routing.scorers import RequestMeta, conversation_text, last_user_text, text_body

__all__ = [
    "SEED_KEYWORD_RULES",
    "TIER_ALIASES",
    "TIER_SCORES",
    "Rule",
    "RuleDecision",
    "RulesScorer",
]

TIER_SCORES: dict[str, float] = {"small": 0.0, "medium": 0.5, "large": 1.0}
TIER_ALIASES: dict[str, str] = {"simple": "small", "complex": "large", "very_complex": "large"}


def _tier(value: str) -> str:
    tier = TIER_ALIASES.get(value.strip().lower(), value.strip().lower())
    if tier not in TIER_SCORES:
        raise ValueError(f"unknown tier {value!r}: use small, medium or large")
    return tier


class Rule(BaseModel):
    """One rule: conditions (all must hold; empty = any) and one outcome."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    keywords: tuple[str, ...] = ()
    """Words or phrases, found case-insensitively where a word starts in ``scope``'s text."""
    patterns: tuple[str, ...] = ()
    """Regular expressions, searched case-insensitively in ``scope``'s text."""
    scope: Literal["last_user", "conversation"] = "last_user"
    tags: tuple[str, ...] = ()
    tenants: tuple[str, ...] = ()
    user_tiers: tuple[str, ...] = ()
    tier: str | None = None
    model: str | None = None
    score: float | None = None

    @field_validator("patterns")
    @classmethod
    def _compiles(cls, patterns: tuple[str, ...]) -> tuple[str, ...]:
        for pattern in patterns:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"pattern {pattern!r} does not compile: {exc}") from None
        return patterns

    @field_validator("keywords")
    @classmethod
    def _not_blank(cls, keywords: tuple[str, ...]) -> tuple[str, ...]:
        if any(not k.strip() for k in keywords):
            raise ValueError("a keyword must not be empty or blank")
        return keywords

    @field_validator("tier")
    @classmethod
    def _known_tier(cls, tier: str | None) -> str | None:
        return None if tier is None else _tier(tier)

    @model_validator(mode="after")
    def _one_outcome(self) -> Rule:
        if self.tier is None and self.model is None and self.score is None:
            raise ValueError(f"rule {self.name!r} needs a tier, a model or a score")
        if self.tier is not None and self.model is not None:
            raise ValueError(f"rule {self.name!r}: give a tier or a model, not both")
        return self


@dataclass(frozen=True, slots=True)
class RuleDecision:
    """What the rules decided: the rule (``None`` = default), the tier, the score and, when the
    rule names one, the model."""

    rule: str | None
    tier: str
    score: float
    model: str | None = None


@dataclass(frozen=True, slots=True)
class _Compiled:
    rule: Rule
    keywords: tuple[str, ...]
    regex: re.Pattern[str] | None
    tags: frozenset[str]
    tenants: frozenset[str]
    user_tiers: frozenset[str]
    decision: RuleDecision


def _starts_word(low: str, keyword: str) -> bool:
    """Whether ``keyword`` (lowercase) occurs in ``low`` where a word starts: not right after a
    letter, digit or underscore (regex ``\\b`` before it; a keyword starting with punctuation
    matches anywhere)."""
    at = low.find(keyword)
    if at == -1:
        return False
    if not (keyword[0].isalnum() or keyword[0] == "_"):
        return True
    while at != -1:
        if at == 0 or not (low[at - 1].isalnum() or low[at - 1] == "_"):
            return True
        at = low.find(keyword, at + 1)
    return False


def _compile(rule: Rule) -> _Compiled:
    regex = re.compile("|".join(f"(?:{p})" for p in rule.patterns), re.I) if rule.patterns else None
    tier = rule.tier or ("large" if rule.model is not None else "medium")
    score = rule.score if rule.score is not None else TIER_SCORES[tier]
    return _Compiled(
        rule=rule,
        keywords=tuple(dict.fromkeys(k.lower() for k in rule.keywords)),
        regex=regex,
        tags=frozenset(t.lower() for t in rule.tags),
        tenants=frozenset(rule.tenants),
        user_tiers=frozenset(t.lower() for t in rule.user_tiers),
        decision=RuleDecision(rule=rule.name, tier=tier, score=score, model=rule.model),
    )


class RulesScorer:
    """Ordered rules → the first match's tier/score/model (see the module docstring).

    Immutable after construction, thread-safe; ``decide`` never raises on a chat body.
    """

    name = "rules"

    def __init__(self, rules: Sequence[Rule], *, default_tier: str = "small") -> None:
        self.rules = tuple(rules)
        tier = _tier(default_tier)
        self._default = RuleDecision(rule=None, tier=tier, score=TIER_SCORES[tier])
        self._compiled = tuple(_compile(r) for r in self.rules)
        # what a request's tags are matched against: a key, a value or "key=value", lower case
        self.tag_conditions = frozenset(t for c in self._compiled for t in c.tags)

    @classmethod
    def from_config(
        cls, rules: Sequence[Mapping[str, Any]], *, default_tier: str = "small"
    ) -> RulesScorer:
        """Validate rule dicts (as read from YAML); ``ConfigError`` names the bad rule."""
        parsed: list[Rule] = []
        for i, raw in enumerate(rules):
            try:
                parsed.append(Rule.model_validate(raw))
            except ValidationError as exc:
                first = exc.errors()[0]
                where = ".".join(str(p) for p in first["loc"]) or "rule"
                raise ConfigError(f"routing rule {i} ({where}): {first['msg']}") from None
        try:
            return cls(parsed, default_tier=default_tier)
        except ValueError as exc:
            raise ConfigError(f"routing rules: {exc}") from None

    def decide(self, body: Mapping[str, Any], meta: RequestMeta | None = None) -> RuleDecision:
        """The first matching rule's decision, else the default tier's."""
        meta = meta or RequestMeta()
        tags = {t.lower() for t in meta.tags}
        user_tier = (meta.user_tier or "").lower()
        texts: dict[str, str] = {}
        lowered: dict[str, str] = {}
        for c in self._compiled:
            if c.tags and not (c.tags & tags):
                continue
            if c.tenants and meta.tenant not in c.tenants:
                continue
            if c.user_tiers and user_tier not in c.user_tiers:
                continue
            if c.keywords or c.regex is not None:
                scope = c.rule.scope
                if scope not in texts:
                    texts[scope] = (
                        last_user_text(body) if scope == "last_user" else conversation_text(body)
                    )
                found = False
                if c.keywords:
                    if scope not in lowered:
                        lowered[scope] = texts[scope].lower()
                    found = any(_starts_word(lowered[scope], k) for k in c.keywords)
                if not found and c.regex is not None:
                    found = c.regex.search(texts[scope]) is not None
                if not found:
                    continue
            return c.decision
        return self._default

    def score(self, body: Mapping[str, Any], meta: RequestMeta | None = None) -> float:
        return self.decide(body, meta).score

    def score_text(self, text: str) -> float:
        return self.score(text_body(text))

    async def ascore(self, body: Mapping[str, Any], meta: RequestMeta | None = None) -> float:
        return self.score(body, meta)


SEED_KEYWORD_RULES: tuple[dict[str, Any], ...] = (
    {
        "name": "seed-complex-keywords",
        "keywords": [
            "architecture", "design", "optimize", "compare", "analyze", "troubleshoot",
            "debug", "implement", "develop a", "create a system", "best practices",
            "trade-offs", "performance tuning",
        ],
        "tier": "large",
    },
    {
        "name": "seed-medium-keywords",
        "keywords": [
            "explain", "how to", "difference between", "advantages", "disadvantages",
            "benefits", "limitations", "use cases",
        ],
        "tier": "medium",
    },
)  # fmt: skip
"""The seed designs' keyword classes as an example rule set (a business rule: APGR ≈ 0.50)."""
