"""One ledger row from a finished request's context."""

from __future__ import annotations

from typing import Any

from thrifty.pipeline.context import RequestContext
from thrifty.pipeline.costing import usage_from_any
from thrifty.pipeline.usage import completion_text
from thrifty.pricing import Usage


def _at(ctx: RequestContext, perf: float | None) -> float | None:
    """The wall-clock instant (epoch seconds) of a ``perf_counter`` reading taken during the
    request."""
    if perf is None:
        return None
    return ctx.started_at + (perf - ctx.started)


def _content(ctx: RequestContext) -> dict[str, Any]:
    response = ctx.response
    if response is None and ctx.cache_entry is not None:
        response = ctx.cache_entry.response
    if response is not None:
        answer: Any = completion_text(response) if ctx.endpoint != "embeddings" else None
    elif ctx.output_parts is not None:
        answer = "".join(ctx.output_parts)
    else:
        answer = None
    content: dict[str, Any] = {"request": ctx.body, "response": answer}
    if ctx.semantic_match is not None:
        content["semantic_match"] = ctx.semantic_match
    return content


def build_row(ctx: RequestContext, *, store_content: bool = False) -> dict[str, Any]:
    """The ledger row of a finished request. Its instants (``started_at``, ``first_byte_at``,
    ``ended_at``) are epoch seconds: the writer turns them into what its database takes."""
    try:
        usage = ctx.usage_parsed or usage_from_any(ctx.usage)
    except ValueError:
        u = ctx.usage or {}
        usage = Usage(int(u.get("prompt_tokens") or 0), int(u.get("completion_tokens") or 0))
    p = ctx.principal
    err = ctx.error
    dep = ctx.deployment
    savings = ctx.savings
    latency_ms = ctx.latency_s * 1000
    ttfb = ctx.ttfb_s
    return {
        "request_id": ctx.request_id,
        "started_at": ctx.started_at,
        "first_byte_at": _at(ctx, ctx.first_byte),
        "ended_at": _at(ctx, ctx.ended),
        "endpoint": ctx.endpoint,
        "tenant": p.tenant,
        "user": p.user,
        "key_id": p.key_id,
        "tags": ctx.tags,
        "priority": ctx.priority,
        "requested_model": ctx.requested_model,
        "served_model": ctx.served_model,
        "provider": dep.provider if dep else None,
        "deployment": dep.id if dep else None,
        "route_reason": ctx.route_reason,
        "cache_status": ctx.cache_status,
        "cache_similarity": ctx.cache_similarity,
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "cached_tokens": usage.cached_tokens,
        "cache_write_tokens": usage.cache_write_tokens,
        "reasoning_tokens": usage.reasoning_tokens,
        "usage_source": ctx.usage_source if ctx.usage else "none",
        "cost_usd": ctx.cost_usd,
        "baseline_cost_usd": ctx.baseline_cost_usd,
        "saved_usd": ctx.saved_usd,
        "saved_cache_usd": savings.get("cache", 0.0),
        "saved_semantic_cache_usd": savings.get("semantic_cache", 0.0),
        "saved_routing_usd": savings.get("routing", 0.0),
        "saved_compression_usd": savings.get("compression", 0.0),
        "saved_max_tokens_usd": savings.get("max_tokens", 0.0),
        "unpriced": ctx.unpriced,
        "latency_ms": round(latency_ms, 3),
        "ttfb_ms": None if ttfb is None else round(ttfb * 1000, 3),
        "attempts": sum(1 for a in ctx.attempts if not a.skipped),
        "fallback_path": [
            {"deployment": a.deployment, "error": a.error, "ms": round(a.latency_ms, 3)}
            for a in ctx.attempts
        ],
        "status": ctx.status,
        "error_type": err.__class__.__name__ if err else None,
        "error_code": err.code if err else None,
        "finish_reason": ctx.finish_reason,
        "flags": list(ctx.flags),
        "content": _content(ctx) if store_content else None,
    }
