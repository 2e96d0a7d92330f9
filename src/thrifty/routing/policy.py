"""The routing policy of one route group: a pure decision, no I/O, no HTTP.

:meth:`RoutePolicy.decide` turns a chat body plus who sent it into a
:class:`~thrifty.routing.decision.RouteDecision`:

1. **score** the request (the group's scorer; a ``rules`` match may also pin a model);
2. **tier**: ``score >= large`` → large, ``>= medium`` → medium, else small (fixed cut points,
   or running quantiles for a target share / cost: ``ThresholdConfig``);
3. **adjust**: the first matching ``user_tier_upgrades`` entry (seed 001: premium and enterprise
   get large on medium and complex requests); a **time-sensitive** request (tag ``latency=low``
   or priority ``critical`` by default) in the listed tiers (default: large) tries the
   ``time_sensitive_model`` first;
4. **candidates**, in order: the pinned model, the fast model, the tier's models, the other
   tiers' (nearest first, the larger on a tie: small → medium → large, medium → large → small,
   large → medium → small), the group's ``fallbacks``; each checked by
   ``capabilities.check_candidate`` (availability, context window, max output, tools, vision,
   JSON, and the worst case ``<= max_cost_usd``; unpriced models fail a cap);
5. the **first** that passes answers (under a cap: the best model whose worst case fits, from
   another tier if none of the decided one does) and the next ``max_fallbacks`` are the
   **fallbacks**. If none passes, ``model`` is ``None`` and ``reason`` says why ("no model fits
   the cap $0.0010: cheapest worst case gpt-4o-mini $0.0049").

The prompt is bounded without tokenizing (``request_upper_bound``); only when a candidate is
rejected on size (context or cap) is it counted (``Needs.counted``) and the chain checked again,
so the outcome never depends on whether the cheap bound sufficed.

A cascade group answers with the cascade's cheap model and names the strong one in
``escalate_to`` (not for time-sensitive requests, nor when either fails the checks); the route
stage then reports whether it escalated with :meth:`RoutePolicy.record`.

State: the threshold calibrators and the running share of large decisions (``realised_share``);
``decide`` / ``adecide`` update them, ``preview`` / ``apreview`` do not. Not thread-safe: one
instance per event loop.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Collection, Mapping
from dataclasses import replace
from typing import Any

from thrifty.errors import ConfigError
from thrifty.keys.principal import Principal
from thrifty.pricing import CostCalculator, PriceCatalog, Usage
from thrifty.routing.capabilities import (
    Candidate,
    Needs,
    Rejection,
    check_candidate,
    required_capabilities,
)
from thrifty.routing.cascade import cascade_plan
from thrifty.routing.decision import Considered, RouteDecision
from thrifty.routing.policy_config import DEFAULT_CUTS, TIER_NAMES, RouteGroupConfig
from thrifty.routing.rules import RuleDecision, RulesScorer
from thrifty.routing.scorers import RequestMeta, Scorer, make_scorer
from thrifty.routing.threshold import TargetShareThreshold, share_for_cost

__all__ = ["RoutePolicy"]


class _RunningShare:
    """Share of ``True`` among the last ``window`` recorded outcomes."""

    def __init__(self, window: int) -> None:
        self._outcomes: deque[bool] = deque(maxlen=window)

    def add(self, strong: bool) -> None:
        self._outcomes.append(strong)

    @property
    def value(self) -> float:
        return sum(self._outcomes) / len(self._outcomes) if self._outcomes else math.nan


def _tier_order(tier: str) -> list[str]:
    """The decided tier, then the others nearest first (the larger one on a tie)."""
    names: list[str] = list(TIER_NAMES)
    i = names.index(tier)
    others = [t for t in names if t != tier]
    others.sort(key=lambda t: (abs(names.index(t) - i), -names.index(t)))
    return [tier, *others]


def _merged_tags(principal: Principal | None, tags: Mapping[str, str] | None) -> dict[str, str]:
    """The request's tags, then the key's: a tag set on the key wins (as in the gateway)."""
    merged = dict(tags or {})
    if principal is not None:
        merged.update(principal.tags)
    return merged


class RoutePolicy:
    """The policy of one route group (see the module docstring for the steps)."""

    def __init__(
        self,
        config: RouteGroupConfig,
        catalog: PriceCatalog,
        calculator: CostCalculator | None = None,
        scorer: Scorer | None = None,
    ) -> None:
        """``scorer`` defaults to ``make_scorer(config.scorer, rules=config.rules)``. Raises
        ``ConfigError`` when ``target_cost_per_1k`` cannot be priced."""
        self.config = config
        self.catalog = catalog
        self.calculator = calculator or CostCalculator(catalog)
        self.scorer: Scorer = scorer or make_scorer(config.scorer, rules=config.rules)
        th = config.thresholds
        kind = self.scorer.name if self.scorer.name in DEFAULT_CUTS else config.scorer
        self._medium_cut, self._large_cut = th.cuts(kind)
        self.target_share: float | None = None
        self._large: TargetShareThreshold | None = None
        self._medium: TargetShareThreshold | None = None
        if th.mode != "fixed":
            share = th.target_strong_share if th.mode == "share" else self._share_for_cost()
            assert share is not None
            self.target_share = share
            opts: dict[str, Any] = {"window": th.window, "min_samples": th.min_samples}
            self._large = TargetShareThreshold(share, initial_threshold=self._large_cut, **opts)
            if th.target_medium_share > 0:
                upper = min(1.0, share + th.target_medium_share)
                self._medium = TargetShareThreshold(
                    upper, initial_threshold=self._medium_cut, **opts
                )
        self._share = _RunningShare(th.window)

    def _share_for_cost(self) -> float:
        th, tiers = self.config.thresholds, self.config.tiers
        usage = Usage(
            prompt_tokens=th.typical_prompt_tokens, completion_tokens=th.typical_completion_tokens
        )

        def first_priced(tier: str) -> float:
            for model in tiers.models(tier):
                cost = self.calculator.cost_of(model, usage)
                if cost is not None:
                    return cost.total_usd
            raise ConfigError(
                f"routing group {self.config.name!r}: target_cost_per_1k needs a priced "
                f"{tier} model (have {list(tiers.models(tier))})"
            )

        cheap, strong = first_priced(tiers.filled[0]), first_priced(tiers.filled[-1])
        assert th.target_cost_per_1k is not None
        return share_for_cost(th.target_cost_per_1k, cheap, strong)

    # ------------------------------------------------------------------ state

    @property
    def thresholds(self) -> tuple[float, float]:
        """The current ``(medium, large)`` cut points (``inf`` = nothing reaches the tier)."""
        if self._large is None:
            return self._medium_cut, self._large_cut
        large = self._large.threshold
        if self._medium is not None:
            return min(self._medium.threshold, large), large
        warming = self._large.samples < self._large.min_samples
        return (min(self._medium_cut, large) if warming else large), large

    @property
    def realised_share(self) -> float:
        """Share of the last ``window`` recorded decisions that went large (NaN before any)."""
        return self._share.value

    def record(self, strong: bool) -> None:
        """Count an outcome the route stage decided (a cascade: ``True`` when it escalated)."""
        self._share.add(strong)

    # ------------------------------------------------------------------ deciding

    def routing_tags(self, tags: Mapping[str, str]) -> list[tuple[str, str]]:
        """The tags that can change this group's decision, sorted: those a rule's tag condition
        names (by key, value or ``key=value``) and those time sensitivity reads; all of them
        for a scorer that does not say which it reads. Others (a trace id, say) do not."""
        conditions: frozenset[str] | None = getattr(self.scorer, "tag_conditions", None)
        if conditions is None:
            return sorted(tags.items())
        timed = {k.lower() for k in self.config.time_sensitivity.tags}
        return sorted(
            (k, v)
            for k, v in tags.items()
            if (kl := k.lower()) in timed
            or kl in conditions
            or (vl := str(v).lower()) in conditions
            or f"{kl}={vl}" in conditions
        )

    def _meta(self, principal: Principal | None, tags: Mapping[str, str]) -> RequestMeta:
        flat: list[str] = []
        for key, value in tags.items():
            flat += [key, value, f"{key}={value}"] if value else [key]
        return RequestMeta(
            tags=tuple(flat),
            tenant=principal.tenant if principal is not None else None,
            user_tier=principal.tier if principal is not None else None,
        )

    def _score(
        self, body: Mapping[str, Any], meta: RequestMeta
    ) -> tuple[float, RuleDecision | None]:
        if isinstance(self.scorer, RulesScorer):
            rule = self.scorer.decide(body, meta)
            return rule.score, rule
        return self.scorer.score(body, meta), None

    async def _ascore(
        self, body: Mapping[str, Any], meta: RequestMeta
    ) -> tuple[float, RuleDecision | None]:
        if isinstance(self.scorer, RulesScorer):
            return self._score(body, meta)
        return await self.scorer.ascore(body, meta), None

    def decide(
        self,
        body: Mapping[str, Any],
        principal: Principal | None = None,
        tags: Mapping[str, str] | None = None,
        priority: str = "normal",
        available_models: Collection[str] | None = None,
    ) -> RouteDecision:
        """Route one request and update the running state (thresholds, realised share).

        ``tags`` are the request's (``x-thrifty-tags``), merged over the principal's;
        ``available_models`` the model names that can be called now (``None``: all)."""
        return self._decide(body, principal, tags, priority, available_models, record=True)

    def preview(
        self,
        body: Mapping[str, Any],
        principal: Principal | None = None,
        tags: Mapping[str, str] | None = None,
        priority: str = "normal",
        available_models: Collection[str] | None = None,
    ) -> RouteDecision:
        """``decide`` without side effects (thresholds and realised share unchanged)."""
        return self._decide(body, principal, tags, priority, available_models, record=False)

    async def adecide(
        self,
        body: Mapping[str, Any],
        principal: Principal | None = None,
        tags: Mapping[str, str] | None = None,
        priority: str = "normal",
        available_models: Collection[str] | None = None,
    ) -> RouteDecision:
        """``decide`` with the scorer's ``ascore`` (the learned scorer embeds off the loop)."""
        return await self._adecide(body, principal, tags, priority, available_models, True)

    async def apreview(
        self,
        body: Mapping[str, Any],
        principal: Principal | None = None,
        tags: Mapping[str, str] | None = None,
        priority: str = "normal",
        available_models: Collection[str] | None = None,
    ) -> RouteDecision:
        """``preview`` with the scorer's ``ascore``."""
        return await self._adecide(body, principal, tags, priority, available_models, False)

    def _decide(
        self,
        body: Mapping[str, Any],
        principal: Principal | None,
        tags: Mapping[str, str] | None,
        priority: str,
        available: Collection[str] | None,
        *,
        record: bool,
    ) -> RouteDecision:
        merged = _merged_tags(principal, tags)
        score, rule = self._score(body, self._meta(principal, merged))
        return self._route(body, principal, merged, priority, available, score, rule, record)

    async def _adecide(
        self,
        body: Mapping[str, Any],
        principal: Principal | None,
        tags: Mapping[str, str] | None,
        priority: str,
        available: Collection[str] | None,
        record: bool,
    ) -> RouteDecision:
        merged = _merged_tags(principal, tags)
        score, rule = await self._ascore(body, self._meta(principal, merged))
        return self._route(body, principal, merged, priority, available, score, rule, record)

    # ------------------------------------------------------------------ internals

    def _walk(
        self, chain: list[tuple[str, str]], needs: Needs, available: Collection[str] | None
    ) -> tuple[list[Candidate], list[Rejection]]:
        """Check the chain in order until a primary and ``max_fallbacks`` more passed."""
        picks: list[Candidate] = []
        rejected: list[Rejection] = []
        for model, tier in chain:
            if len(picks) > self.config.max_fallbacks:
                break
            result = self._check(model, tier, needs, available)
            if isinstance(result, Candidate):
                picks.append(result)
            else:
                rejected.append(result)
        return picks, rejected

    def _check(
        self, model: str, tier: str, needs: Needs, available: Collection[str] | None
    ) -> Candidate | Rejection:
        return check_candidate(
            model,
            tier,
            needs,
            self.calculator,
            available=available,
            cap_usd=self.config.max_cost_usd,
        )

    def _tier_and_chain(
        self,
        score: float,
        rule: RuleDecision | None,
        principal: Principal | None,
        urgent: str | None,
    ) -> tuple[str, str, float, list[str], list[tuple[str, str]]]:
        """Steps 2-4: ``(score_tier, tier, threshold, reasons, candidate chain)``."""
        cfg = self.config
        medium_t, large_t = self.thresholds
        if score >= large_t:
            score_tier, threshold, cmp = "large", large_t, "≥"
        elif score >= medium_t:
            score_tier, threshold, cmp = "medium", medium_t, "≥"
        else:
            score_tier, threshold, cmp = "small", medium_t, "<"
        reasons = [f"score {score:.2f} {cmp} {threshold:.2f} → {score_tier}"]
        if rule is not None:
            reasons[0] = f"rule {rule.rule or '(none matched)'}: {reasons[0]}"
        tier = score_tier
        user_tier = principal.tier if principal is not None else None
        for upgrade in cfg.user_tier_upgrades:
            if user_tier in upgrade.user_tiers and tier in upgrade.when:
                if upgrade.to != tier:
                    reasons.append(f"{user_tier} user: {tier} → {upgrade.to}")
                    tier = upgrade.to
                break
        chain: list[tuple[str, str]] = []
        if rule is not None and rule.model:
            chain.append((rule.model, tier))
            reasons.append(f"rule pins {rule.model}")
        if urgent and tier in cfg.time_sensitivity.tiers and cfg.time_sensitive_model:
            chain.append((cfg.time_sensitive_model, tier))
            reasons.append(f"time-sensitive ({urgent}) → {cfg.time_sensitive_model}")
        for t in _tier_order(tier):
            chain += [(m, t) for m in cfg.tiers.models(t)]
        chain += [(m, "fallback") for m in cfg.fallbacks]
        unique: dict[str, str] = {}
        for model, t in chain:
            unique.setdefault(model, t)
        return score_tier, tier, threshold, reasons, list(unique.items())

    def _route(
        self,
        body: Mapping[str, Any],
        principal: Principal | None,
        tags: Mapping[str, str],
        priority: str,
        available: Collection[str] | None,
        score: float,
        rule: RuleDecision | None,
        record: bool,
    ) -> RouteDecision:
        cfg = self.config
        urgent = cfg.time_sensitivity.matches(tags, priority)
        score_tier, tier, threshold, reasons, chain = self._tier_and_chain(
            score, rule, principal, urgent
        )
        needs = required_capabilities(body)
        picks, rejected = self._walk(chain, needs, available)
        if needs.prompt_tokens is None and any(r.on_size for r in rejected):
            needs = needs.counted(body)  # the bound was too coarse: count once, check again
            picks, rejected = self._walk(chain, needs, available)
        if record:
            self._observe(score)
        decision = RouteDecision(
            group=cfg.name,
            model=None,
            fallbacks=[],
            tier=None,
            score_tier=score_tier,
            score=score,
            threshold=threshold,
            reason="",
            considered=[Considered(r.model, r.reason) for r in rejected],
            scorer=self.scorer.name,
            rule=rule.rule if rule is not None else None,
            time_sensitive=urgent is not None,
        )
        if not picks:
            reasons.append(self._nothing_fits(rejected, needs))
            return replace(decision, reason="; ".join(reasons))
        primary, rest = picks[0], picks[1:]
        if primary.tier != tier:
            reasons.append(f"no {tier} model fits → {primary.tier}")
        order = {model: i for i, (model, _) in enumerate(chain)}
        skipped = [r for r in rejected if order[r.model] < order[primary.model]]
        if skipped:
            reasons.append("skipped " + ", ".join(f"{r.model} ({r.reason})" for r in skipped))
        reasons.append(f"{primary.model}: {primary.fit}" if primary.fit else primary.model)
        if cfg.max_cost_usd is not None and primary.worst_case_usd is not None:
            reasons.append(
                f"worst case ${primary.worst_case_usd:.4f} ≤ cap ${cfg.max_cost_usd:.4f}"
            )
        decision = replace(
            decision,
            model=primary.model,
            fallbacks=[p.model for p in rest],
            tier=primary.tier,
            worst_case_usd=primary.worst_case_usd,
        )
        if cfg.cascade.enabled and urgent is None:
            decision = self._cascade(decision, needs, available, reasons)
        if record and decision.escalate_to is None:
            self._share.add(decision.tier == "large")
        return replace(decision, reason="; ".join(reasons))

    def _cascade(
        self,
        decision: RouteDecision,
        needs: Needs,
        available: Collection[str] | None,
        reasons: list[str],
    ) -> RouteDecision:
        cheap_name, strong_name = cascade_plan(self.config)
        cheap = self._check(cheap_name, "cascade", needs, available)
        strong = self._check(strong_name, "cascade", needs, available)
        for bad in (cheap, strong):
            if isinstance(bad, Rejection):
                reasons.append(f"no cascade ({bad.model}: {bad.reason})")
                return decision
        assert isinstance(cheap, Candidate)
        chain = [m for m in [decision.model, *decision.fallbacks] if m and m != cheap_name]
        reasons.append(f"cascade: {cheap_name} first, {strong_name} if a check fails")
        return replace(
            decision,
            model=cheap_name,
            fallbacks=chain[: self.config.max_fallbacks],
            tier="cascade",
            worst_case_usd=cheap.worst_case_usd,
            escalate_to=strong_name,
        )

    def _observe(self, score: float) -> None:
        for calibrator in (self._large, self._medium):
            if calibrator is not None:
                calibrator.observe(score)

    def _nothing_fits(self, rejected: list[Rejection], needs: Needs) -> str:
        cap = self.config.max_cost_usd
        costs = sorted(
            (r.worst_case_usd, r.model) for r in rejected if r.worst_case_usd is not None
        )
        if cap is not None and costs:
            worst, cheapest = costs[0]
            return f"no model fits the cap ${cap:.4f}: cheapest worst case {cheapest} ${worst:.4f}"
        listed = ", ".join(f"{r.model}: {r.reason}" for r in rejected[:4]) or "no candidates"
        return f"no model can serve this request ({needs.describe()}): {listed}"
