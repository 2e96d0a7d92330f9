"""Budget stage: reserve the worst case before spending, so recorded spend never passes a limit.

After routing and before dispatch, every budget that applies (org, tenant, user, key, tag)
gets an atomic all-or-nothing reservation of the request's worst-case cost: the prompt's hard
token bound at the highest input rate, plus the maximum output at the output rate, over every
deployment that might answer (fallbacks included). When the client sent no max tokens, the
stage sets ``max_tokens`` to what the tightest budget can still pay for (header
``x-thrifty-max-tokens``) instead of refusing. When a request does not fit:

- ``reject``: 429 ``budget_exceeded`` with the period's reset time;
- ``degrade``: the cheapest configured chat model whose worst case fits answers instead
  (``x-thrifty-degraded-from``);
- ``soft``: critical-priority requests may go up to the budget's multiplier of the limit;
  other requests are degraded.

The record stage settles the reservation to the actual cost (``BudgetSettler``).
"""

from __future__ import annotations

import asyncio
import logging
import math
from datetime import UTC, datetime
from typing import Any

from thrifty.budgets.backend import BudgetBackend, headroom
from thrifty.budgets.model import BudgetIndex, BudgetSpec, period_window, soft_allowance
from thrifty.errors import RateLimitError
from thrifty.pipeline.context import RequestContext
from thrifty.pipeline.outcome import Outcome
from thrifty.pricing import CostCalculator
from thrifty.providers.registry import ModelEntry, ProviderRegistry
from thrifty.tokens import request_upper_bound

log = logging.getLogger("thrifty.budgets")

DEFAULT_MAX_OUTPUT = 4096


def embeddings_upper_bound(body: dict[str, Any]) -> int:
    """A hard bound on an embeddings request's tokens: UTF-8 bytes (token ids count one)."""
    raw = body.get("input")
    items = raw if isinstance(raw, list) else [raw]
    if items and isinstance(items[0], int):
        return len(items)
    return sum(len(i) if isinstance(i, list) else len(str(i).encode()) + 1 for i in items)


class BudgetExceededError(RateLimitError):
    code = "budget_exceeded"


class BudgetStage:
    name = "budget"

    def __init__(
        self,
        backend: BudgetBackend,
        index: BudgetIndex,
        calculator: CostCalculator,
        registry: ProviderRegistry,
        reservation_ttl_s: float,
    ) -> None:
        self.backend = backend
        self.index = index
        self.calculator = calculator
        self.registry = registry
        self.ttl_s = reservation_ttl_s

    def _models(self, entry: ModelEntry) -> list[str]:
        return [d.upstream_model for d in self.registry.candidates(entry)]

    def _worst(self, entry: ModelEntry, prompt: int, max_out: int) -> float | None:
        """The highest worst case over every deployment that may answer; None if any is
        unpriced (its cost cannot be bounded)."""
        worst = 0.0
        for model in self._models(entry):
            w = self.calculator.worst_case(model, prompt, max_out)
            if w is None:
                return None
            worst = max(worst, w)
        return worst

    def _affordable_output(self, entry: ModelEntry, prompt: int, room_usd: float) -> int:
        """The largest max_tokens whose worst case fits ``room_usd`` (0 if none)."""
        rate = 0.0
        prompt_cost = 0.0
        for model in self._models(entry):
            price = self.calculator.price_of(model)
            if price is None:
                return 0
            rate = max(rate, float(price.rates_for(prompt).output_rate) / 1e6)
            prompt_cost = max(prompt_cost, self.calculator.worst_case(model, prompt, 0) or 0.0)
        if rate <= 0:
            return DEFAULT_MAX_OUTPUT
        return max(0, math.floor((room_usd - prompt_cost) / rate))

    async def run(self, ctx: RequestContext) -> Outcome | None:
        specs = self.index.applicable(ctx.principal, ctx.tags)
        if not specs or ctx.entry is None:
            return None
        now = datetime.now(UTC)
        windows = {s.id: period_window(s, now) for s in specs}
        refs = [(s, windows[s.id].window_id) for s in specs]
        allow = soft_allowance(specs, critical=ctx.priority == "critical")
        body = ctx.body
        max_out: int | None
        if ctx.endpoint == "embeddings":
            prompt, max_out = embeddings_upper_bound(body), 0
        else:
            prompt = request_upper_bound(body)
            max_out = body.get("max_completion_tokens", body.get("max_tokens"))
        if max_out is None:
            room = await headroom(self.backend, refs, allow)
            cap = DEFAULT_MAX_OUTPUT
            if room.usd is not None:
                cap = min(cap, self._affordable_output(ctx.entry, prompt, room.usd))
            if room.tokens is not None:
                cap = min(cap, room.tokens - prompt)
            if cap >= 1:
                max_out = cap
                ctx.body = body = {**body, "max_tokens": cap}
                ctx.budget_max_tokens = cap
            else:
                max_out = DEFAULT_MAX_OUTPUT  # nothing fits: let the policies decide
        assert max_out is not None
        refusal_spec, result = await self._reserve(ctx, ctx.entry, refs, prompt, max_out, allow)
        if result is not None:
            return None
        assert refusal_spec is not None
        policy = refusal_spec.policy
        if policy in ("degrade", "soft") and await self._degrade(ctx, refs, prompt, max_out, allow):
            return None
        window = windows[refusal_spec.id]
        reset = window.end.isoformat() if window.end else "never (a total budget)"
        retry = max(1.0, (window.end - now).total_seconds()) if window.end else None
        raise BudgetExceededError(
            f"Budget {refusal_spec.id!r} ({refusal_spec.scope} {refusal_spec.subject or ''}) "
            f"cannot cover this request; it resets at {reset}.",
            retry_after_s=retry,
            param="budget",
        )

    async def _reserve(
        self,
        ctx: RequestContext,
        entry: ModelEntry,
        refs: list[tuple[BudgetSpec, str]],
        prompt: int,
        max_out: int,
        allow: dict[str, float],
    ) -> tuple[BudgetSpec | None, Any]:
        worst = self._worst(entry, prompt, max_out)
        if worst is None:
            ctx.flags.append("budget_unpriced_model")
            worst = 0.0  # cannot bound an unpriced model's cost; token limits still apply
        res = await self.backend.reserve(
            ctx.request_id, refs, worst, prompt + max_out, self.ttl_s, allow
        )
        if res.ok:
            ctx.budget_reserved = True
            if res.flagged:
                ctx.flags.append("budget_fail_open")
            if res.over_limit:
                ctx.flags.append("budget_soft_over:" + ",".join(res.over_limit))
            return None, res
        return (res.refused.budget if res.refused else refs[0][0]), None

    async def _degrade(
        self,
        ctx: RequestContext,
        refs: list[tuple[BudgetSpec, str]],
        prompt: int,
        max_out: int,
        allow: dict[str, float],
    ) -> bool:
        requested = ctx.entry
        assert requested is not None
        options = []
        for entry in self.registry.models.values():
            if entry.mode != "chat" or entry.name == requested.name:
                continue
            worst = self._worst(entry, prompt, max_out)
            if worst is not None:
                options.append((worst, entry.name, entry))
        for _, _, entry in sorted(options, key=lambda o: (o[0], o[1])):
            _, res = await self._reserve(ctx, entry, refs, prompt, max_out, allow)
            if res is not None:
                ctx.entry = entry
                ctx.degraded_from = requested.name
                ctx.route_reason = f"budget: degraded from {requested.name}"
                ctx.flags.append("degraded")
                return True
        return False


class BudgetSettler:
    """Record-stage sink: turn the reservation into spend (the actual cost), or release it."""

    def __init__(self, backend: BudgetBackend, manager: Any = None) -> None:
        self.backend = backend
        self.manager = manager
        self._pending: set[asyncio.Task[Any]] = set()

    def record(self, ctx: RequestContext) -> None:
        if not ctx.budget_reserved:
            return
        usage = ctx.usage_parsed
        tokens = usage.total_tokens if usage is not None else 0
        cost = ctx.cost_usd if ctx.cost_usd is not None else 0.0
        if ctx.error is not None and not tokens:
            coro = self.backend.release(ctx.request_id)
        else:
            coro = self.backend.settle(ctx.request_id, cost, tokens)
        task = asyncio.get_running_loop().create_task(self._finish(ctx, coro))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _finish(self, ctx: RequestContext, coro: Any) -> None:
        try:
            result = await coro
            if result.overrun:
                log.error("request %s cost more than its reservation: %s", ctx.request_id, result)
            if self.manager is not None:
                await self.manager.check_alerts(ctx.principal, ctx.tags)
        except Exception as exc:  # the request already ran: log, never fail it
            log.error("could not settle the budget reservation of %s: %s", ctx.request_id, exc)

    async def flush(self) -> None:
        while self._pending:
            await asyncio.gather(*list(self._pending), return_exceptions=True)
