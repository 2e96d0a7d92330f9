"""Admission stage: requests-per-minute and tokens-per-minute limits per key, user, tenant and
deployment (GCRA; atomic Lua on Redis when budgets use the Redis backend). A request over a
limit gets 429 ``rate_limit_exceeded`` with ``Retry-After``. Tokens are charged up front with
the prompt's bound plus the requested output and corrected to the actual count afterwards
(``AdmissionSettler``)."""

from __future__ import annotations

import asyncio
from typing import Any

from thrifty.budgets.config import RateLimitSpec
from thrifty.errors import RateLimitError
from thrifty.pipeline.context import RequestContext
from thrifty.pipeline.outcome import Outcome
from thrifty.tokens import request_upper_bound


def subject_of(spec: RateLimitSpec, ctx: RequestContext) -> str | None:
    p = ctx.principal
    value = {
        "key": p.key_id,
        "user": f"{p.tenant}:{p.user}" if p.user else None,
        "tenant": p.tenant,
        "deployment": ctx.deployment.id if ctx.deployment else None,
    }[spec.scope]
    if value is None or (spec.subject is not None and spec.subject != value.split(":")[-1]):
        return None
    return f"{spec.scope}:{value}"


class AdmissionStage:
    name = "admission"

    def __init__(self, limiter: Any, specs: tuple[RateLimitSpec, ...]) -> None:
        from thrifty.budgets.ratelimit import Rate

        self.limiter = limiter
        self.specs = [s for s in specs if s.scope != "deployment"]
        self.deployment_specs = [s for s in specs if s.scope == "deployment"]
        self._rates = {id(s): (s.rpm and Rate(s.rpm), s.tpm and Rate(s.tpm)) for s in specs}

    async def run(self, ctx: RequestContext) -> Outcome | None:
        tokens: int | None = None
        for spec in self.specs:
            subject = subject_of(spec, ctx)
            if subject is None:
                continue
            rpm, tpm = self._rates[id(spec)]
            checks = []
            if rpm:
                checks.append((f"{subject}:rpm", 1, rpm, "requests"))
            if tpm:
                if tokens is None:
                    body = ctx.body
                    out = body.get("max_completion_tokens", body.get("max_tokens")) or 0
                    tokens = (request_upper_bound(body) if "messages" in body else 0) + out
                checks.append((f"{subject}:tpm", tokens, tpm, "tokens"))
            for name, cost, rate, unit in checks:
                decision = await self.limiter.check(name, cost, rate)
                if not decision.allowed:
                    raise RateLimitError(
                        f"Rate limit reached for {spec.scope} ({unit} per minute: "
                        f"{rate.limit}). Try again in {decision.retry_after_s:.1f}s.",
                        retry_after_s=decision.retry_after_s,
                        code="rate_limit_exceeded",
                    )
                if unit == "tokens":
                    ctx.rate_charges.append((name, cost, rate))
        return None

    async def deployment_gate(self, deployment_id: str) -> float | None:
        """Requests per minute of one deployment (checked in dispatch, before the call)."""
        for spec in self.deployment_specs:
            if spec.subject is not None and spec.subject != deployment_id:
                continue
            rpm, _ = self._rates[id(spec)]
            if rpm:
                decision = await self.limiter.check(f"deployment:{deployment_id}:rpm", 1, rpm)
                if not decision.allowed:
                    return float(decision.retry_after_s)
        return None


class AdmissionSettler:
    """Record-stage sink: refund the tokens charged up front beyond what the request used."""

    def __init__(self, stage: AdmissionStage) -> None:
        self.stage = stage

    def record(self, ctx: RequestContext) -> None:
        if not ctx.rate_charges:
            return
        usage = ctx.usage_parsed
        used = usage.total_tokens if usage is not None else 0
        for name, charged, rate in ctx.rate_charges:
            if charged > used:
                task = asyncio.get_running_loop().create_task(
                    self.stage.limiter.charge(name, used - charged, rate)
                )
                task.add_done_callback(lambda t: t.exception())
