"""Record stage: what every finished request leaves behind (metrics; the ledger joins here)."""

from __future__ import annotations

from thrifty.metrics import Metrics
from thrifty.pipeline.context import RequestContext


class MetricsRecorder:
    def __init__(self, metrics: Metrics) -> None:
        self._m = metrics

    def record(self, ctx: RequestContext) -> None:
        m = self._m
        served = ctx.served_model or ""
        status = str(ctx.status)
        m.requests.inc((ctx.endpoint, ctx.requested_model, served, status), 1)
        m.latency.observe((ctx.endpoint, ctx.requested_model), ctx.latency_s)
        ttfb = ctx.ttfb_s
        if ttfb is not None:
            m.ttfb.observe((ctx.endpoint, ctx.requested_model), ttfb)
        usage = ctx.usage
        if usage and served:
            prompt = usage.get("prompt_tokens") or 0
            completion = usage.get("completion_tokens") or 0
            if prompt:
                m.tokens.inc((served, "prompt"), prompt)
            if completion:
                m.tokens.inc((served, "completion"), completion)
            details = usage.get("prompt_tokens_details") or {}
            cached = details.get("cached_tokens") or 0
            if cached:
                m.tokens.inc((served, "cached"), cached)
        if ctx.unpriced:
            m.unpriced.inc((served or ctx.requested_model,), 1)
        elif ctx.cost_usd:
            m.cost.inc((served, status), ctx.cost_usd)
        err = ctx.error
        if err is not None and ctx.deployment is not None and ctx.status != 499:
            m.upstream_errors.inc(
                (ctx.deployment.provider, str(err.code)),
                1,
            )


class RouteMetricsRecorder:
    """Exports each route group's realised large-tier share (and its target) after requests."""

    def __init__(self, metrics: Metrics, policies: dict[str, object]) -> None:
        self._m = metrics
        self._policies = policies

    def record(self, ctx: RequestContext) -> None:
        group = ctx.route_group
        policy = self._policies.get(group) if group else None
        if policy is None:
            return
        share = getattr(policy, "realised_share", None)
        if share is not None:
            self._m.route_strong_share.labels(group).set(share)
        target = getattr(policy, "target_share", None)
        if target is not None:
            self._m.route_target_share.labels(group).set(target)
