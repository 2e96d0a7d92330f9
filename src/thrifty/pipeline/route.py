"""Route stage: which model and deployments answer (explicit model names and aliases)."""

from __future__ import annotations

from thrifty.pipeline.context import RequestContext
from thrifty.pipeline.outcome import Outcome
from thrifty.providers.registry import ProviderRegistry


class RouteStage:
    name = "route"

    def __init__(self, registry: ProviderRegistry, mode: str) -> None:
        self._registry = registry
        self._mode = mode

    async def run(self, ctx: RequestContext) -> Outcome | None:
        entry = self._registry.resolve(ctx.requested_model, self._mode)
        ctx.entry = ctx.requested_entry = entry
        ctx.route_reason = "explicit" if entry.name == ctx.requested_model else "alias"
        return None
