"""Dispatch stage: call the upstream, resiliently.

For one request it walks the candidates (the model's deployments, balanced by the model's
strategy, then its fallback models' deployments):

- a deployment whose circuit breaker is open is skipped (recorded in the path);
- a retryable failure (connection, timeout, 5xx, 429) is retried on the same deployment with
  exponential backoff and full jitter, honouring the upstream's Retry-After, then the next
  candidate is tried; a caller's error (400, 404, 413, 422) is returned at once;
- a stream is handed back only once its first event arrived, so a stream that fails before its
  first byte fails over like any other call; after the first byte it can only end with an error
  event (``ChatStream``), never restart and duplicate output;
- every try is recorded in ``ctx.attempts`` (the ledger's fallback path).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator
from typing import Any

from thrifty.config import ResilienceConfig
from thrifty.errors import (
    RateLimitError,
    ServiceUnavailableError,
    UpstreamError,
    UpstreamProtocolError,
)
from thrifty.pipeline.context import Attempt, RequestContext
from thrifty.pipeline.outcome import Completed, Outcome
from thrifty.pipeline.streaming import ChatStream
from thrifty.pipeline.usage import completion_text, fill_missing_usage
from thrifty.providers.base import Deployment, StreamEvent, UpstreamStream
from thrifty.providers.health import DeploymentHealth
from thrifty.providers.registry import ProviderRegistry

CALLER_FAULT = frozenset({400, 404, 413, 422})
backoff_sleep = asyncio.sleep  # the one seam tests replace to observe backoff waits


def with_stream_usage(body: dict[str, Any]) -> dict[str, Any]:
    options = dict(body.get("stream_options") or {})
    options["include_usage"] = True
    return {**body, "stream_options": options}


class _PrimedStream:
    """An upstream stream whose first event was already read (to fail over before the first
    byte); iterating yields that event, then the rest."""

    def __init__(
        self, upstream: UpstreamStream, events: AsyncIterator[StreamEvent], first: StreamEvent
    ) -> None:
        self.headers = upstream.headers
        self._upstream = upstream
        self._events = events
        self._first: StreamEvent | None = first

    def __aiter__(self) -> AsyncIterator[StreamEvent]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[StreamEvent]:
        if self._first is not None:
            first, self._first = self._first, None
            yield first
        async for event in self._events:
            yield event

    async def aclose(self) -> None:
        await self._upstream.aclose()


class DispatchStage:
    name = "dispatch"

    def __init__(
        self,
        registry: ProviderRegistry,
        kind: str,
        resilience: ResilienceConfig,
        rng: random.Random | None = None,
    ) -> None:
        self._registry = registry
        self._kind = kind
        self._retry = resilience.retries
        self._max_attempts = resilience.max_attempts
        self._rng = rng or random.Random()

    def _backoff(self, retry: int, exc: UpstreamError) -> float | None:
        """Seconds before retry number ``retry`` (0-based); None = don't wait, move on."""
        after = getattr(exc, "retry_after_s", None)
        if after is not None:
            return after if after <= self._retry.retry_after_max_s else None
        cap = min(self._retry.backoff_max_s, self._retry.backoff_base_s * 2**retry)
        return self._rng.uniform(0, cap)

    async def run(self, ctx: RequestContext) -> Outcome | None:
        outcome = await self._run(ctx)
        if ctx.cascade is None or not isinstance(outcome, Completed):
            return outcome
        # Cascade: the cheap answer must pass its checks, else the strong model answers.
        from thrifty.routing.cascade import check_answer

        strong, checks, regex, policy = ctx.cascade
        ctx.cascade = None
        verdict = check_answer(ctx.body, outcome.data, checks, regex=regex)
        policy.record(not verdict.ok)
        if verdict.ok:
            return outcome
        ctx.flags.append(f"cascade_escalated:{verdict.failed}")
        ctx.cascade_first = (ctx.deployment, ctx.usage)
        ctx.entry = self._registry.models[strong]
        ctx.body = {**ctx.body, "model": strong}
        ctx.usage = None
        return await self._run(ctx)

    async def _run(self, ctx: RequestContext) -> Outcome | None:
        assert ctx.entry is not None, "route stage must run first"
        registry = self._registry
        budget = self._max_attempts
        last: UpstreamError | RateLimitError | None = None
        for deployment in registry.candidates(ctx.entry):
            health = registry.health[deployment.id]
            gate = registry.deployment_gate
            if gate is not None:
                wait = await gate(deployment.id)
                if wait is not None:
                    ctx.attempts.append(Attempt(deployment.id, "rate_limited", 0.0, skipped=True))
                    last = RateLimitError(
                        f"Rate limit reached for deployment {deployment.id}.",
                        retry_after_s=wait,
                    )
                    continue
            if not health.breaker.allow():
                ctx.attempts.append(Attempt(deployment.id, "circuit_open", 0.0, skipped=True))
                continue
            for retry in range(self._retry.max_retries + 1):
                if budget <= 0:
                    break
                budget -= 1
                try:
                    return await self._call(ctx, deployment, health)
                except UpstreamError as exc:
                    last = exc
                    if exc.status in CALLER_FAULT:
                        raise
                    if not exc.retryable or retry == self._retry.max_retries:
                        break
                    delay = self._backoff(retry, exc)
                    if delay is None:
                        break
                    await backoff_sleep(delay)
                    if not health.breaker.allow():
                        break
            if budget <= 0:
                break
        if last is not None:
            raise last
        raise ServiceUnavailableError(
            f"no healthy deployment for model {ctx.entry.name!r}: every circuit is open",
            code="no_healthy_deployment",
            headers={"retry-after": "5"},
        )

    async def _call(
        self, ctx: RequestContext, deployment: Deployment, health: DeploymentHealth
    ) -> Outcome:
        provider = self._registry.provider(deployment)
        ctx.deployment = deployment
        health.started()
        t0 = time.perf_counter()
        try:
            if self._kind == "embeddings":
                resp = await provider.embed(deployment, ctx.body)
            elif ctx.stream:
                body = ctx.body if ctx.include_usage else with_stream_usage(ctx.body)
                upstream = await provider.stream(deployment, body)
                try:
                    events = aiter(upstream)
                    first = await anext(events)
                except StopAsyncIteration:
                    await upstream.aclose()
                    raise UpstreamProtocolError(
                        f"upstream {deployment.provider} sent an empty stream",
                        provider=deployment.provider,
                        deployment=deployment.id,
                    ) from None
                except BaseException:
                    await upstream.aclose()
                    raise
            else:
                resp = await provider.complete(deployment, ctx.body)
        except UpstreamError as exc:
            ms = (time.perf_counter() - t0) * 1000
            ctx.attempts.append(Attempt(deployment.id, exc.code, ms))
            health.finished(None if exc.status in CALLER_FAULT else False, ms, exc.code)
            raise
        except BaseException:
            health.finished(None, 0.0)
            raise
        ms = (time.perf_counter() - t0) * 1000
        health.finished(True, ms)
        ctx.attempts.append(Attempt(deployment.id, None, ms))
        hook = self._registry.on_upstream_headers
        if hook is not None:
            hook(
                deployment.id,
                upstream.headers if ctx.stream and self._kind != "embeddings" else resp.headers,
            )
        ctx.first_byte = time.perf_counter()
        if ctx.stream and self._kind != "embeddings":
            primed = _PrimedStream(upstream, events, first)
            return ChatStream(ctx, primed, strip_usage=not ctx.include_usage, health=health)
        data = resp.data
        ctx.response = data
        usage = data.get("usage")
        ctx.usage = usage if isinstance(usage, dict) else None
        choices = data.get("choices")
        if choices and isinstance(choices, list) and isinstance(choices[0], dict):
            ctx.finish_reason = choices[0].get("finish_reason")
        if ctx.usage is None:
            fill_missing_usage(ctx, completion_text(data))
        return Completed(ctx=ctx, data=data, raw=resp.raw)
