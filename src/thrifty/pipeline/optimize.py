"""Optimize stage: trim the tokens a request sends, each lever switchable per route.

Order: lossless compression (on by default: whitespace, JSON minification, duplicate system
text — never code blocks, JSON values or meaning), lossy compression (opt-in: filler phrases,
may change meaning), context pruning to a token budget (opt-in: oldest turns first, never
separating a tool call from its result), then response limits (opt-in: ``max_tokens`` by
complexity and user tier, only when the client set none). The prompt tokens saved are costed
at the served model's input price and booked as the ``compression`` lever. A response limit is
flagged on the row (``max_tokens_cap:N``) and its saving is measured against a small uncapped
holdout (``pipeline/response_limits.py``) and booked as the ``max_tokens`` lever.
"""

from __future__ import annotations

from typing import Any

from thrifty.config import OptimizeConfig, OptimizeRule
from thrifty.pipeline.context import RequestContext
from thrifty.pipeline.outcome import Outcome
from thrifty.pipeline.response_limits import CapSavings
from thrifty.tokens import count_request
from thrifty.tokens.optimize import (
    apply_response_limit,
    classify_complexity,
    compress_lossless,
    compress_lossy,
    prune_context,
)


class OptimizeStage:
    name = "optimize"

    def __init__(self, config: OptimizeConfig, cap_savings: CapSavings | None = None) -> None:
        self.config = config
        self.cap_savings = cap_savings or CapSavings(config.response_limits_holdout)
        self._default = self._merge(None)

    def settings(self, ctx: RequestContext) -> OptimizeRule:
        return self._default if not self.config.rules else self._merge(ctx)

    def _merge(self, ctx: RequestContext | None) -> OptimizeRule:
        c = self.config
        merged: dict[str, Any] = {
            "lossless": c.lossless,
            "lossy": c.lossy,
            "prune_budget_tokens": c.prune_budget_tokens,
            "keep_last_turns": c.keep_last_turns,
            "response_limits": c.response_limits,
        }
        if ctx is None:
            return OptimizeRule(**merged)
        use_case = ctx.tags.get("use_case")
        for rule in c.rules:
            if (rule.model and rule.model != ctx.requested_model) or (
                rule.use_case and rule.use_case != use_case
            ):
                continue
            merged.update({k: v for k, v in rule.model_dump().items() if v is not None})
        return OptimizeRule(**merged)

    async def run(self, ctx: RequestContext) -> Outcome | None:
        s = self.settings(ctx)
        body = ctx.body
        saved = 0
        if s.lossless:
            body, result = compress_lossless(body)
            saved += result.tokens_saved
        if s.lossy:
            body, result = compress_lossy(body)
            saved += result.tokens_saved
            if result.tokens_saved:
                ctx.flags.append("lossy_compression")
        if s.prune_budget_tokens:
            body, pruned = prune_context(
                body, s.prune_budget_tokens, keep_last_turns=s.keep_last_turns or 2
            )
            saved += pruned.tokens_saved
            if pruned.messages_dropped or pruned.messages_truncated:
                ctx.flags.append(f"pruned:{pruned.messages_dropped}")
        if s.response_limits:
            complexity = classify_complexity(tokens=count_request(body).tokens)
            capped, limit = apply_response_limit(
                body, complexity, enabled=True, tier=ctx.principal.tier
            )
            if limit.applied:
                if self.cap_savings.hold_out():
                    ctx.response_limit = (complexity, None)
                    ctx.flags.append("max_tokens_holdout")
                else:
                    body = capped
                    ctx.response_limit = (complexity, limit.max_tokens)
                    ctx.flags.append(f"max_tokens_cap:{limit.max_tokens}")
        if body is not ctx.body:
            ctx.body = body
        ctx.compression_saved_tokens = saved
        return None
