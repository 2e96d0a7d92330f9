"""Route stage: which model and deployments answer.

An explicit model name or alias is honoured. A route group (``model: "auto"``, or a model name
equal to a group's name) asks the group's policy: score → tier → user tier and time
sensitivity → capability filter → cost cap → ordered fallbacks. The decision and its reason go
to the ledger (``route_reason``) and the ``x-thrifty-route`` header; the baseline is the group's
first large-tier model, so what routing saves is booked as the routing lever.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from thrifty.errors import InvalidRequestError
from thrifty.pipeline.context import RequestContext
from thrifty.pipeline.outcome import Outcome
from thrifty.providers.registry import ProviderRegistry


class RouteStage:
    name = "route"

    def __init__(
        self, registry: ProviderRegistry, mode: str, policies: dict[str, Any] | None = None
    ) -> None:
        self._registry = registry
        self._mode = mode
        self._policies = policies or {}
        self._chat_models = {n for n, e in registry.models.items() if e.mode == "chat"}

    async def run(self, ctx: RequestContext) -> Outcome | None:
        policy = self._policies.get(ctx.requested_model) if self._policies else None
        if policy is not None:
            await self._route_group(ctx, policy)
            return None
        entry = self._registry.resolve(ctx.requested_model, self._mode)
        ctx.entry = ctx.requested_entry = entry
        ctx.route_reason = "explicit" if entry.name == ctx.requested_model else "alias"
        return None

    async def _route_group(self, ctx: RequestContext, policy: Any) -> None:
        registry = self._registry
        decision = await policy.adecide(
            ctx.body,
            ctx.principal,
            tags=ctx.tags,
            priority=ctx.priority,
            available_models=self._chat_models,
        )
        if not decision.ok:
            raise InvalidRequestError(
                f"No model can serve this request: {decision.reason}",
                param="model",
                code="no_route",
            )
        entry = registry.resolve(decision.model, self._mode)
        fallbacks = tuple(f for f in decision.fallbacks if f in registry.models)
        ctx.entry = replace(entry, fallbacks=fallbacks)
        ctx.route_reason = decision.reason[:200]
        ctx.route_header = decision.header_value()
        ctx.route_group = policy.config.name
        large = [m for m in policy.config.tiers.large if m in registry.models]
        baseline = registry.models[large[0]] if large else entry
        ctx.requested_entry = baseline
        ctx.body = {**ctx.body, "model": entry.name}
        cascade = policy.config.cascade
        if decision.escalate_to and not ctx.stream and decision.escalate_to in registry.models:
            ctx.cascade = (decision.escalate_to, tuple(cascade.checks), cascade.regex, policy)
