"""Admin API: cache statistics and invalidation.

``GET /admin/cache/stats`` — entries and bytes per tier, hits by tier, misses, stores,
evictions, invalidations, and the savings the ledger attributes to each cache lever (30 days).
``POST /admin/cache/invalidate`` with one or more of ``key``, ``tenant``, ``model``,
``tag`` (``k=v``), ``pattern`` (glob over keys) or ``{"all": true}``; every replica drops the
matching entries (Redis pub/sub).
"""

from __future__ import annotations

from typing import Any

import orjson

from thrifty.errors import InvalidRequestError, NotFoundError, ThriftyError
from thrifty.gateway import Gateway
from thrifty.server.http import Receive, Scope, Send, read_body, send_error, send_json
from thrifty.wire.openai import load_json_object

SELECTORS = ("key", "tenant", "model", "tag", "pattern", "all")


def parse_selector(body: dict[str, Any]) -> dict[str, str]:
    selector = {k: str(v) for k, v in body.items() if k in SELECTORS and v not in (None, False)}
    unknown = sorted(set(body) - set(SELECTORS))
    if unknown:
        raise InvalidRequestError(
            f"unknown selector field(s): {', '.join(unknown)}", param=unknown[0]
        )
    if not selector:
        raise InvalidRequestError(
            "give at least one of key, tenant, model, tag, pattern, or all: true", param="selector"
        )
    if "tag" in selector and "=" not in selector["tag"]:
        raise InvalidRequestError("tag must be key=value", param="tag")
    return selector


class AdminCacheEndpoint:
    def __init__(self, gateway: Gateway) -> None:
        self.gw = gateway

    async def __call__(self, scope: Scope, receive: Receive, send: Send, request_id: str) -> None:
        headers = [(b"x-thrifty-request-id", request_id.encode())]
        try:
            self.gw.auth.check_admin(scope["thrifty.token"])
            cache = self.gw.cache
            if cache is None:
                raise NotFoundError("the cache is not enabled (cache.enabled: false)")
            if scope["method"] == "GET":
                stats = await cache.stats()
                _, total = await self.gw.usage("30d")
                stats["savings_30d_usd"] = {
                    "cache": total.saved_by_lever.get("cache", 0.0),
                    "semantic_cache": total.saved_by_lever.get("semantic_cache", 0.0),
                }
                payload: Any = stats
            else:
                raw = await read_body(receive, scope["thrifty.headers"], 16 * 1024)
                selector = parse_selector(load_json_object(raw))
                payload = {"invalidated": await cache.invalidate(selector), "selector": selector}
        except ThriftyError as exc:
            await send_error(send, exc, headers)
            return
        await send_json(send, 200, orjson.dumps(payload), headers)
