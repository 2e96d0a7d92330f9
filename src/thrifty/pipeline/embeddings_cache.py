"""Embeddings cache stage: each input item is cached on its own.

A request whose items are all cached is answered without an upstream call; otherwise only the
missing items go upstream (always as floats, so they can be stored), and the answer is put back
together in the original order and in the encoding the client asked for. The client sees the
usage the upstream would have reported for the whole request; the ledger costs only the items
that went upstream and records the rest as the cache lever's saving.

``x-thrifty-cache`` acts as for chat: ``off`` bypasses the cache, ``no-cache`` skips the lookup
(and stores the fresh items), ``no-store`` looks up but never stores.
"""

from __future__ import annotations

import base64
import struct
import time
from typing import Any

import orjson

from thrifty.cache.keys import embedding_item_key, scope_of
from thrifty.cache.tiered import TieredCache
from thrifty.pipeline.cache import CachePolicy
from thrifty.pipeline.context import RequestContext
from thrifty.pipeline.outcome import Completed, Outcome
from thrifty.providers.base import Deployment
from thrifty.tokens import count_text


def encode_vector(vector: list[float], fmt: str | None) -> Any:
    """OpenAI's encodings: a float list, or base64 of little-endian float32."""
    if fmt == "base64":
        return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
    return vector


def decode_vector(value: Any) -> list[float]:
    if isinstance(value, str):
        raw = base64.b64decode(value)
        return list(struct.unpack(f"<{len(raw) // 4}f", raw))
    return list(value)


class EmbeddingsCacheStage:
    name = "embeddings_cache"

    def __init__(self, cache: TieredCache, policy: CachePolicy) -> None:
        self.cache = cache
        self.policy = policy

    async def run(self, ctx: RequestContext) -> Outcome | None:
        enabled, ttl, scope = self.policy.resolve(ctx)
        if not enabled or ctx.cache_directive == "off":
            ctx.cache_status = "bypass"
            return None
        body = ctx.body
        raw_input = body["input"]
        items: list[Any] = (
            [raw_input]
            if isinstance(raw_input, str)
            or (raw_input and isinstance(raw_input, list) and isinstance(raw_input[0], int))
            else list(raw_input)
        )
        scope_key = scope_of(ctx.principal, scope)
        keys = [embedding_item_key(body, item, scope_key) for item in items]
        hits: dict[int, dict[str, Any]] = {}
        if ctx.cache_directive != "no-cache":
            for i, key in enumerate(keys):
                found = await self.cache.get(key)
                if found is not None:
                    hits[i] = orjson.loads(found[0])
        ctx.cache_status = "hit" if len(hits) == len(items) else "miss"
        plan: dict[str, Any] = {
            "items": items,
            "keys": keys,
            "hits": hits,
            "missing": [i for i in range(len(items)) if i not in hits],
            "format": body.get("encoding_format"),
            "ttl": ttl,
            "store": ctx.cache_directive != "no-store",
        }
        ctx.embed_plan = plan
        ctx.cache_hit_tokens = sum(h["tokens"] for h in hits.values())
        if ctx.cache_status == "hit":
            first = hits[0]
            ctx.deployment = Deployment(first["provider"], first["upstream_model"], first["model"])
            ctx.first_byte = time.perf_counter()
            ctx.usage = {"prompt_tokens": 0, "total_tokens": 0}
            ctx.flags.append("cache_items:all")
            return Completed(ctx=ctx, data=self._assemble(ctx, plan, {}, first["model"]))
        if hits:
            ctx.flags.append(f"cache_items:{len(hits)}/{len(items)}")
        ctx.body = {
            **body,
            "input": [items[i] for i in plan["missing"]],
            "encoding_format": "float",
        }
        return None

    async def after(self, ctx: RequestContext, outcome: Outcome) -> Outcome:
        plan = ctx.embed_plan
        if plan is None or not isinstance(outcome, Completed) or ctx.cache_status == "hit":
            return outcome
        data = outcome.data
        dep = ctx.deployment
        fresh: dict[int, list[float]] = {}
        for position, item in enumerate(data.get("data") or ()):
            i = plan["missing"][item.get("index", position)]
            fresh[i] = decode_vector(item["embedding"])
        if plan["store"] and dep is not None:
            for i, vector in fresh.items():
                entry = {
                    "embedding": vector,
                    "tokens": _tokens(plan["items"][i], dep.upstream_model),
                    "model": dep.public_model,
                    "provider": dep.provider,
                    "upstream_model": dep.upstream_model,
                }
                meta = {"tenant": ctx.principal.tenant, "model": dep.public_model, "tags": ctx.tags}
                self.cache.put(plan["keys"][i], orjson.dumps(entry), plan["ttl"], meta)
        model = data.get("model") or (dep.public_model if dep else ctx.requested_model)
        merged = self._assemble(ctx, plan, fresh, model)
        upstream_tokens = int((data.get("usage") or {}).get("prompt_tokens") or 0)
        total = upstream_tokens + ctx.cache_hit_tokens
        merged["usage"] = {"prompt_tokens": total, "total_tokens": total}
        return Completed(ctx=ctx, data=merged)

    @staticmethod
    def _assemble(
        ctx: RequestContext, plan: dict[str, Any], fresh: dict[int, list[float]], model: str
    ) -> dict[str, Any]:
        fmt = plan["format"]
        rows = []
        for i in range(len(plan["items"])):
            vector = plan["hits"][i]["embedding"] if i in plan["hits"] else fresh[i]
            rows.append(
                {"object": "embedding", "index": i, "embedding": encode_vector(vector, fmt)}
            )
        tokens = ctx.cache_hit_tokens
        return {
            "object": "list",
            "data": rows,
            "model": model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }


def _tokens(item: Any, model: str) -> int:
    return len(item) if isinstance(item, list) else count_text(item, model)
