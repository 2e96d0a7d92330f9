"""Typed, frozen configuration of routing policies (mounted as ``routing:`` in ``Config``).

One :class:`RouteGroupConfig` per route group: ``model: "auto"`` uses ``routing.default_group``,
``model: "support-bot"`` the group of that name. Example (YAML)::

    routing:
      default_group: auto
      groups:
        - name: auto
          scorer: length                 # length | rules | learned[:PATH]
          tiers:                         # each ordered by preference
            small: [gpt-4o-mini, gpt-4.1-nano]
            medium: [gpt-4.1-mini]
            large: [gpt-4o, claude-sonnet-5-5]
          thresholds:                    # fixed cut points ...
            medium: 0.5                  #   score >= 0.5 -> medium
            large: 0.8                   #   score >= 0.8 -> large
            # ... or a target: target_strong_share: 0.2  (or target_cost_per_1k: 1.50)
          user_tier_upgrades:            # the default (seed 001)
            - {user_tiers: [premium, enterprise], when: [medium, large], to: large}
          time_sensitive_model: gpt-4o   # the fast large model
          time_sensitivity: {tags: {latency: low}, priorities: [critical], tiers: [large]}
          max_cost_usd: 0.05             # per request, worst case
          fallbacks: [gpt-4.1]
          cascade:
            enabled: false
            cheap: gpt-4o-mini
            strong: gpt-4o
            checks: [json, schema, tool_args, empty, truncated]
            regex: null

Every field is validated here (tier names, cut points, exclusive threshold modes, rule syntax,
regexes); model names are checked against the catalog and the registry by the route stage.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from thrifty.routing.rules import TIER_ALIASES

__all__ = [
    "CHECK_NAMES",
    "TIER_NAMES",
    "CascadeConfig",
    "RouteGroupConfig",
    "RoutingConfig",
    "ThresholdConfig",
    "TierName",
    "TiersConfig",
    "TimeSensitivityConfig",
    "UserTierUpgrade",
]

TierName = Literal["small", "medium", "large"]
TIER_NAMES: tuple[TierName, ...] = ("small", "medium", "large")
UserTier = Literal["basic", "standard", "premium", "enterprise"]
CheckName = Literal["json", "schema", "tool_args", "empty", "truncated", "regex"]
CHECK_NAMES: tuple[CheckName, ...] = ("json", "schema", "tool_args", "empty", "truncated", "regex")

#: Fixed cut points ``(medium, large)`` per scorer when the config gives none (starting points:
#: ``length`` 0.5 = 256 effective tokens, 0.8 = 1024; ``rules`` = the rule tiers' own scores;
#: ``learned`` gains are better routed with ``target_strong_share``).
DEFAULT_CUTS: dict[str, tuple[float, float]] = {
    "length": (0.5, 0.8),
    "rules": (0.5, 1.0),
    "learned": (0.1, 0.25),
}


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _tier_name(value: Any) -> Any:
    if isinstance(value, str):
        return TIER_ALIASES.get(value.strip().lower(), value.strip().lower())
    return value


def _tier_names(value: Any) -> Any:
    if isinstance(value, str):
        value = [value]
    if isinstance(value, list | tuple):
        return tuple(_tier_name(v) for v in value)
    return value


class TiersConfig(_Frozen):
    """Models per tier, each list ordered by preference (the first that fits is chosen)."""

    small: tuple[str, ...] = ()
    medium: tuple[str, ...] = ()
    large: tuple[str, ...] = ()

    def models(self, tier: str) -> tuple[str, ...]:
        """The models of ``tier`` (``()`` for an empty or unknown tier)."""
        return tuple(getattr(self, tier, ()))

    @property
    def filled(self) -> tuple[TierName, ...]:
        """The tiers that have at least one model, smallest first."""
        return tuple(t for t in TIER_NAMES if self.models(t))


class ThresholdConfig(_Frozen):
    """How a score becomes a tier. Three modes:

    - **fixed** (default): ``score >= large`` → large, else ``score >= medium`` → medium, else
      small. A cut point left out takes the scorer's default (``DEFAULT_CUTS``).
    - **share**: ``target_strong_share`` of live traffic goes large (the running ``1 - share``
      quantile of the last ``window`` scores, ``TargetShareThreshold``); ``target_medium_share``
      more goes medium (0 = no medium band). Until ``min_samples`` scores were seen the fixed cut
      points apply.
    - **cost**: ``target_cost_per_1k`` USD per 1,000 requests is turned into a strong share with
      ``share_for_cost`` from the first priced small and large models' cost of a typical request
      (``typical_prompt_tokens`` + ``typical_completion_tokens``), then as **share**.
    """

    medium: float | None = None
    large: float | None = None
    target_strong_share: float | None = Field(None, ge=0, le=1)
    target_medium_share: float = Field(0.0, ge=0, le=1)
    target_cost_per_1k: float | None = Field(None, ge=0)
    typical_prompt_tokens: int = Field(500, ge=0)
    typical_completion_tokens: int = Field(300, ge=0)
    window: int = Field(10_000, ge=1)
    min_samples: int = Field(100, ge=1)

    @property
    def mode(self) -> Literal["fixed", "share", "cost"]:
        if self.target_strong_share is not None:
            return "share"
        if self.target_cost_per_1k is not None:
            return "cost"
        return "fixed"

    def cuts(self, scorer: str) -> tuple[float, float]:
        """The fixed ``(medium, large)`` cut points, defaults filled in from ``scorer``'s."""
        kind = scorer.partition(":")[0].strip().lower()
        medium, large = DEFAULT_CUTS.get(kind, DEFAULT_CUTS["length"])
        medium = self.medium if self.medium is not None else medium
        large = self.large if self.large is not None else large
        return min(medium, large), large

    @model_validator(mode="after")
    def _check(self) -> ThresholdConfig:
        if self.target_strong_share is not None and self.target_cost_per_1k is not None:
            raise ValueError("give target_strong_share or target_cost_per_1k, not both")
        if self.medium is not None and self.large is not None and self.medium > self.large:
            raise ValueError(f"medium cut {self.medium} is above the large cut {self.large}")
        share = self.target_strong_share or 0.0
        if share + self.target_medium_share > 1.0 + 1e-9:
            raise ValueError("target_strong_share + target_medium_share exceeds 1")
        return self


class UserTierUpgrade(_Frozen):
    """Users of ``user_tiers`` whose request scored a tier in ``when`` get tier ``to`` instead.

    ``to`` may also be lower (``{user_tiers: [basic], when: [large], to: medium}`` caps basic
    users). The first matching entry applies.
    """

    user_tiers: tuple[UserTier, ...] = Field(min_length=1)
    when: tuple[TierName, ...] = ("medium", "large")
    to: TierName = "large"

    @field_validator("when", mode="before")
    @classmethod
    def _when_names(cls, value: Any) -> Any:
        return _tier_names(value)

    @field_validator("to", mode="before")
    @classmethod
    def _to_name(cls, value: Any) -> Any:
        return _tier_name(value)

    @field_validator("user_tiers", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [value]
        return tuple(v.strip().lower() if isinstance(v, str) else v for v in value)


SEED_UPGRADES: tuple[UserTierUpgrade, ...] = (
    UserTierUpgrade(user_tiers=("premium", "enterprise"), when=("medium", "large"), to="large"),
)
"""Seed 001: premium and enterprise users get the large model on medium and complex requests."""


class TimeSensitivityConfig(_Frozen):
    """When a request is time-sensitive and which tiers then use ``time_sensitive_model`` first.

    A request is time-sensitive when one of ``tags`` is set to its value (request tags from
    ``x-thrifty-tags``, else the key's tags; values compare case-insensitively), or its priority
    (``x-thrifty-priority``) is in ``priorities``. By default only requests already routed large
    switch to the fast large model (seed 001: time-sensitive *complex* requests); list more tiers
    to send every time-sensitive request there.
    """

    tags: dict[str, str] = Field(default_factory=lambda: {"latency": "low"})
    priorities: tuple[str, ...] = ("critical",)
    tiers: tuple[TierName, ...] = ("large",)

    @field_validator("tiers", mode="before")
    @classmethod
    def _tiers_by_name(cls, value: Any) -> Any:
        return _tier_names(value)

    def matches(self, tags: Mapping[str, str], priority: str | None) -> str | None:
        """Why the request is time-sensitive (``"latency=low"``, ``"priority critical"``), or
        ``None`` when it is not."""
        lowered = {str(k).lower(): str(v).strip().lower() for k, v in tags.items()}
        for key, value in self.tags.items():
            if lowered.get(key.lower()) == value.strip().lower():
                return f"{key}={value}"
        if priority is not None and priority.strip().lower() in {
            p.lower() for p in self.priorities
        }:
            return f"priority {priority.strip().lower()}"
        return None


class CascadeConfig(_Frozen):
    """Answer with ``cheap`` first; escalate to ``strong`` when the answer fails a check.

    ``cheap`` defaults to the first small (else lowest filled tier) model, ``strong`` to the
    first large (else highest) one. ``regex``, when set, must match the answer's text (it adds the
    ``regex`` check). Time-sensitive requests skip the cascade (two calls in a row are slow).
    """

    enabled: bool = False
    cheap: str | None = None
    strong: str | None = None
    checks: tuple[CheckName, ...] = ("json", "schema", "tool_args", "empty", "truncated")
    regex: str | None = None

    @field_validator("regex")
    @classmethod
    def _compiles(cls, regex: str | None) -> str | None:
        if regex is not None:
            try:
                re.compile(regex)
            except re.error as exc:
                raise ValueError(f"regex {regex!r} does not compile: {exc}") from None
        return regex

    @model_validator(mode="before")
    @classmethod
    def _regex_adds_its_check(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and data.get("regex") is not None:
            checks = data.get("checks", cls.model_fields["checks"].default)
            if isinstance(checks, list | tuple) and "regex" not in checks:
                data = {**data, "checks": (*checks, "regex")}
        return data

    @model_validator(mode="after")
    def _regex_check(self) -> CascadeConfig:
        if "regex" in self.checks and self.regex is None:
            raise ValueError("the regex check needs cascade.regex")
        return self


class ShadowConfig(_Frozen):
    """Shadow sampling: ``rate`` of the requests routed below the large tier are also sent to
    ``model`` (default: the group's first large model) in the background, up to
    ``max_usd_per_day`` of shadow spend per UTC day."""

    rate: float = Field(0.0, ge=0, le=1)
    max_usd_per_day: float = Field(1.0, ge=0)
    model: str | None = None


class RouteGroupConfig(_Frozen):
    """One route group's policy (see the module docstring for an example)."""

    name: str = Field("auto", min_length=1)
    scorer: str = "length"
    """``length``, ``rules`` or ``learned[:PATH]``."""
    rules: tuple[dict[str, Any], ...] | None = None
    """Rules for the ``rules`` scorer (``None``: the seed's keyword classes, an example)."""
    tiers: TiersConfig = Field(default_factory=TiersConfig)
    thresholds: ThresholdConfig = Field(default_factory=ThresholdConfig)
    user_tier_upgrades: tuple[UserTierUpgrade, ...] = SEED_UPGRADES
    time_sensitive_model: str | None = None
    time_sensitivity: TimeSensitivityConfig = Field(default_factory=TimeSensitivityConfig)
    max_cost_usd: float | None = Field(None, gt=0)
    """Per-request cap on the worst-case cost (prompt estimate + max output)."""
    fallbacks: tuple[str, ...] = ()
    """Extra models tried after the tiers' own (see ``RoutePolicy``)."""
    max_fallbacks: int = Field(3, ge=0)
    cascade: CascadeConfig = Field(default_factory=CascadeConfig)
    shadow: ShadowConfig = Field(default_factory=ShadowConfig)

    @field_validator("scorer")
    @classmethod
    def _known_scorer(cls, spec: str) -> str:
        kind = spec.partition(":")[0].strip().lower()
        if kind not in ("length", "rules", "learned"):
            raise ValueError(f"unknown scorer {spec!r}: use length, rules or learned[:PATH]")
        return spec.strip()

    @field_validator("rules")
    @classmethod
    def _valid_rules(cls, rules: tuple[dict[str, Any], ...] | None) -> Any:
        if rules is not None:
            from thrifty.errors import ConfigError
            from thrifty.routing.rules import RulesScorer

            try:
                RulesScorer.from_config(rules)
            except ConfigError as exc:
                raise ValueError(str(exc)) from None
        return rules

    @model_validator(mode="after")
    def _check(self) -> RouteGroupConfig:
        if not self.tiers.filled:
            raise ValueError(f"route group {self.name!r}: tiers has no model")
        if self.cascade.enabled:
            cheap = self.cascade.cheap or self.tiers.models(self.tiers.filled[0])[0]
            strong = self.cascade.strong or self.tiers.models(self.tiers.filled[-1])[0]
            if cheap == strong:
                raise ValueError(
                    f"route group {self.name!r}: cascade needs two models "
                    f"(cheap and strong are both {cheap!r})"
                )
        return self


class RoutingConfig(_Frozen):
    """All route groups. ``model: "auto"`` uses ``default_group``; a model name equal to a
    group's name uses that group. No groups = routing off (explicit model names only)."""

    groups: tuple[RouteGroupConfig, ...] = ()
    default_group: str = "auto"

    @field_validator("groups", mode="before")
    @classmethod
    def _groups_from_mapping(cls, value: Any) -> Any:
        # Allow `groups: {name: {...}}` as well as a list.
        if isinstance(value, Mapping):
            return [{"name": k, **(v or {})} for k, v in value.items()]
        return value

    @model_validator(mode="after")
    def _check(self) -> RoutingConfig:
        names = [g.name for g in self.groups]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"route group name(s) used twice: {dupes}")
        if self.groups and self.default_group not in names:
            raise ValueError(
                f"default_group {self.default_group!r} is not a route group (have {names})"
            )
        return self

    def group(self, name: str) -> RouteGroupConfig | None:
        """The group for a requested model name (``"auto"`` → ``default_group``), else ``None``."""
        wanted = self.default_group if name == "auto" else name
        for group in self.groups:
            if group.name == wanted:
                return group
        return None
