"""Shadow sampling (opt-in per route group): a fraction of the requests a group sends to a
cheaper tier are also sent, in the background, to the group's strong model, to collect
counterfactual labels for router training (``thrifty router train --from-ledger``). Each shadow
call is an ordinary, costed ledger row tagged ``shadow_of=<request id>`` (priority low, cache
off); the group's ``shadow.max_usd_per_day`` caps what shadowing may spend in a UTC day."""

from __future__ import annotations

import asyncio
import logging
import random
from datetime import UTC, datetime
from typing import Any

from thrifty.pipeline.context import RequestContext

log = logging.getLogger("thrifty.routing")


class ShadowSampler:
    def __init__(self, gateway: Any, policies: dict[str, Any], rng: random.Random | None = None):
        self.gw = gateway
        self.policies = policies
        self.rng = rng or random.Random()
        self.spent: dict[tuple[str, str], float] = {}
        self._pending: set[asyncio.Task[Any]] = set()

    def record(self, ctx: RequestContext) -> None:
        policy = self.policies.get(ctx.route_group) if ctx.route_group else None
        shadow = getattr(getattr(policy, "config", None), "shadow", None)
        if policy is None or shadow is None or not shadow.rate:
            return
        if ctx.status != 200 or ctx.error is not None:
            return
        if ctx.cache_status in ("hit", "semantic") or ctx.tags.get("shadow_of"):
            return
        large = [m for m in policy.config.tiers.large if m in self.gw.registry.models]
        strong = shadow.model or (large[0] if large else None)
        if strong is None or ctx.served_model == strong:
            return
        day = (str(ctx.route_group), datetime.now(UTC).strftime("%Y-%m-%d"))
        if self.spent.get(day, 0.0) >= shadow.max_usd_per_day:
            return
        if self.rng.random() >= shadow.rate:
            return
        body = {k: v for k, v in ctx.body.items() if k not in ("stream", "stream_options")}
        body["model"] = strong
        task = asyncio.get_running_loop().create_task(self._shadow(ctx, body, day))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _shadow(
        self, ctx: RequestContext, body: dict[str, Any], day: tuple[str, str]
    ) -> None:
        try:
            outcome = await self.gw.chat(
                body,
                ctx.principal,
                tags={**ctx.tags, "shadow_of": ctx.request_id},
                priority="low",
                cache="off",
            )
            self.spent[day] = self.spent.get(day, 0.0) + (outcome.ctx.cost_usd or 0.0)
        except Exception as exc:  # a shadow never affects anyone
            log.info("shadow call for %s failed: %s", ctx.request_id, exc)

    async def flush(self) -> None:
        while self._pending:
            await asyncio.gather(*list(self._pending), return_exceptions=True)
