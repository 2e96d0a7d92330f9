"""Cache stage: when to answer from the cache, when to store, when to coalesce.

Chat completions: the key is the whole request minus a short deny-list, under the route's scope
(tenant by default). ``x-thrifty-cache: off`` bypasses the cache, ``no-cache`` skips the lookup
(and refreshes the entry), ``no-store`` looks up but never stores. A miss that may be stored
leads a single flight: identical requests arriving meanwhile wait for its answer instead of
calling upstream. A hit streams by replaying the stored answer as SSE. Storing happens in the
record stage (``CacheWriter``), only for complete, storable answers.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from thrifty.cache.coalesce import SingleFlight
from thrifty.cache.entry import CacheEntry, ReplayStream, assemble_completion, storable_reason
from thrifty.cache.keys import digest, request_key, scope_of
from thrifty.cache.tiered import TieredCache
from thrifty.config import CacheConfig
from thrifty.pipeline.context import RequestContext
from thrifty.pipeline.outcome import Completed, Outcome
from thrifty.pipeline.streaming import ChatStream
from thrifty.providers.base import Deployment

FOLLOW_TIMEOUT_S = 120.0
"""How long a follower waits for its in-process leader before calling upstream itself."""


class CachePolicy:
    """The effective settings for one request: config defaults, then matching rules."""

    def __init__(self, config: CacheConfig) -> None:
        self.config = config

    def resolve(self, ctx: RequestContext) -> tuple[bool, float, str]:
        c = self.config
        enabled = c.enabled
        ttl = c.embeddings_ttl_s if ctx.endpoint == "embeddings" else c.ttl_s
        scope = c.scope
        use_case = ctx.tags.get("use_case")
        for rule in c.rules:
            if rule.model and rule.model != ctx.requested_model:
                continue
            if rule.use_case and rule.use_case != use_case:
                continue
            enabled = enabled if rule.enabled is None else rule.enabled
            ttl = rule.ttl_s or ttl
            scope = rule.scope or scope
        return enabled, ttl, scope


class CacheStage:
    name = "cache"

    def __init__(self, cache: TieredCache, flights: SingleFlight, config: CacheConfig) -> None:
        self.cache = cache
        self.flights = flights
        self.config = config
        self.policy = CachePolicy(config)
        # Route groups (``auto`` and named groups) by name: their answer depends on the user
        # tier, priority and some tags too, which then join the scope (set by the gateway).
        self.route_groups: dict[str, Any] = {}
        self.follow_timeout_s = FOLLOW_TIMEOUT_S

    def scope(self, ctx: RequestContext, scope: str) -> str:
        """The entry's scope: the route's (tenant by default), and for a route group also what
        the group's routing reads besides the body — the user tier, priority and the tags its
        rules and time sensitivity read (and the tenant when the scope is global) — so a hit
        never hands one user tier's routed answer to another (a premium user's request routed
        to a large model, say)."""
        base = scope_of(ctx.principal, scope)
        policy = self.route_groups.get(ctx.requested_model)
        if policy is None:
            return base
        p = ctx.principal
        tags = policy.routing_tags(ctx.tags)
        routing = [p.tenant if scope == "global" else "", p.tier, ctx.priority, tags]
        return f"{base}|r:{digest(routing)[:16]}"

    def _may_store(self, ctx: RequestContext) -> bool:
        body = ctx.body
        temperature = body.get("temperature")
        if (1.0 if temperature is None else temperature) > self.config.max_temperature:
            return False
        return (body.get("n") or 1) <= 1 or self.config.store_multiple_choices

    async def run(self, ctx: RequestContext) -> Outcome | None:
        enabled, ttl, scope = self.policy.resolve(ctx)
        if not enabled or ctx.cache_directive == "off":
            ctx.cache_status = "bypass"
            return None
        key = request_key(ctx.endpoint, ctx.body, self.scope(ctx, scope))
        ctx.cache_key, ctx.cache_ttl_s = key, ttl
        ctx.cache_store = ctx.cache_directive != "no-store" and self._may_store(ctx)
        ctx.cache_status = "miss"
        if ctx.cache_directive == "no-cache":
            return None
        found = await self.cache.get(key)
        if found is not None:
            value, tier = found
            return self.answer(ctx, CacheEntry.decode(value), f"cache_tier:{tier}")
        if not (self.config.coalesce and ctx.cache_store):
            return None
        flight = self.flights.follow(key)
        if flight is not None:
            try:
                landed = await asyncio.wait_for(asyncio.shield(flight), self.follow_timeout_s)
            except TimeoutError:  # a leader this slow: stop waiting and call upstream
                ctx.flags.append("coalesce_timeout")
                return None
            if landed is not None:
                return self.answer(ctx, CacheEntry.decode(landed), "coalesced")
            return None  # the leader's answer was not storable: call upstream ourselves
        if not await self.flights.lock(key):
            await self.flights.wait_remote(key)
            found = await self.cache.get(key)
            if found is not None:
                return self.answer(ctx, CacheEntry.decode(found[0]), "coalesced")
            return None
        self.flights.lead(key)
        ctx.cache_leader = True
        return None

    def answer(self, ctx: RequestContext, entry: CacheEntry, how: str) -> Outcome:
        ctx.cache_status = "hit"
        ctx.flags.append(how)
        ctx.route_reason = "cache"
        ctx.deployment = Deployment(entry.provider, entry.upstream_model, entry.served_model)
        ctx.usage = entry.usage
        ctx.first_byte = time.perf_counter()
        ctx.cache_entry = entry  # its response is decoded only if something reads it
        if ctx.stream:
            return ChatStream(ctx, ReplayStream(entry.response), strip_usage=not ctx.include_usage)
        return Completed(ctx=ctx, raw=entry.body)


class CacheWriter:
    """Record-stage sink: store a storable miss (and index it for the semantic cache), and
    land the request's single flight."""

    def __init__(self, stage: CacheStage, semantic: Any = None) -> None:
        self.stage = stage
        self.semantic = semantic

    def record(self, ctx: RequestContext) -> None:
        key = ctx.cache_key
        if key is None:
            return
        value = None
        try:
            if ctx.cache_status == "miss" and ctx.cache_store and ctx.error is None:
                value = self._entry(ctx)
                if value is not None:
                    meta = {
                        "tenant": ctx.principal.tenant,
                        "model": ctx.served_model,
                        "requested": ctx.requested_model,
                        "tags": ctx.tags,
                    }
                    self.stage.cache.put(key, value, ctx.cache_ttl_s, meta)
                    if self.semantic is not None:
                        self.semantic.remember(ctx, key)
        finally:  # the followers wake whatever happened here
            if ctx.cache_leader:
                self.stage.flights.land(key, value)

    def _entry(self, ctx: RequestContext) -> bytes | None:
        dep = ctx.deployment
        if dep is None:
            return None
        if ctx.degraded_from is not None or (ctx.entry and dep.public_model != ctx.entry.name):
            return None  # a stand-in answered (budget degradation, a fallback model): not stored
        response: dict[str, Any] | None = ctx.response
        if response is None and ctx.output_parts is not None:
            if ctx.stream_unstorable or ctx.stream_meta is None:
                return None
            response = assemble_completion(
                ctx.stream_meta, "".join(ctx.output_parts), ctx.finish_reason, ctx.usage
            )
        if response is None or storable_reason(ctx.body, response, self.stage.config):
            return None
        entry = CacheEntry(
            response, dep.public_model, dep.provider, dep.upstream_model, time.time()
        )
        return entry.encode()
