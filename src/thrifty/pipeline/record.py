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
        m.inc(m.requests, 1, ctx.endpoint, ctx.requested_model, served, status)
        m.observe(m.latency, ctx.latency_s, ctx.endpoint, ctx.requested_model)
        ttfb = ctx.ttfb_s
        if ttfb is not None:
            m.observe(m.ttfb, ttfb, ctx.endpoint, ctx.requested_model)
        usage = ctx.usage
        if usage and served:
            prompt = usage.get("prompt_tokens") or 0
            completion = usage.get("completion_tokens") or 0
            if prompt:
                m.inc(m.tokens, prompt, served, "prompt")
            if completion:
                m.inc(m.tokens, completion, served, "completion")
            details = usage.get("prompt_tokens_details") or {}
            cached = details.get("cached_tokens") or 0
            if cached:
                m.inc(m.tokens, cached, served, "cached")
        if ctx.unpriced:
            m.inc(m.unpriced, 1, served or ctx.requested_model)
        elif ctx.cost_usd:
            m.inc(m.cost, ctx.cost_usd, served, status)
        err = ctx.error
        if err is not None and ctx.deployment is not None and ctx.status != 499:
            m.inc(m.upstream_errors, 1, ctx.deployment.provider, str(err.code))


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
