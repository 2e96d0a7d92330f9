"""Dispatch stage: call the upstream, trying a model's deployments in order.

A retryable failure (connection, timeout, 5xx, 429) moves on to the model's next deployment;
a caller's error (400, 404, 422) is returned at once. A stream is handed back once the upstream
accepted it, so a failure before the first byte is still a proper HTTP error.
"""

from __future__ import annotations

import time
from typing import Any

from thrifty.errors import ThriftyError, UpstreamError
from thrifty.pipeline.context import Attempt, RequestContext
from thrifty.pipeline.outcome import Completed, Outcome
from thrifty.pipeline.streaming import ChatStream
from thrifty.pipeline.usage import completion_text, fill_missing_usage
from thrifty.providers.registry import ProviderRegistry


def with_stream_usage(body: dict[str, Any]) -> dict[str, Any]:
    options = dict(body.get("stream_options") or {})
    options["include_usage"] = True
    return {**body, "stream_options": options}


class DispatchStage:
    name = "dispatch"

    def __init__(self, registry: ProviderRegistry, kind: str) -> None:
        self._registry = registry
        self._kind = kind

    async def run(self, ctx: RequestContext) -> Outcome | None:
        assert ctx.entry is not None, "route stage must run first"
        last: ThriftyError | None = None
        for deployment in ctx.entry.deployments:
            provider = self._registry.provider(deployment)
            ctx.deployment = deployment
            t0 = time.perf_counter()
            try:
                if self._kind == "embeddings":
                    resp = await provider.embed(deployment, ctx.body)
                elif ctx.stream:
                    body = ctx.body if ctx.include_usage else with_stream_usage(ctx.body)
                    upstream = await provider.stream(deployment, body)
                    ctx.attempts.append(Attempt(deployment.id, None, _ms(t0)))
                    return ChatStream(ctx, upstream, strip_usage=not ctx.include_usage)
                else:
                    resp = await provider.complete(deployment, ctx.body)
            except UpstreamError as exc:
                ctx.attempts.append(Attempt(deployment.id, exc.code, _ms(t0)))
                last = exc
                if not exc.retryable:
                    raise
                continue
            ctx.first_byte = time.perf_counter()
            ctx.attempts.append(Attempt(deployment.id, None, _ms(t0)))
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
        assert last is not None
        raise last


def _ms(t0: float) -> float:
    return (time.perf_counter() - t0) * 1000
