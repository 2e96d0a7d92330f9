"""Admin API under ``/admin/`` (admin key required): virtual keys."""

from __future__ import annotations

from typing import Any

import orjson

from thrifty.errors import InvalidRequestError, NotFoundError, ThriftyError
from thrifty.gateway import Gateway
from thrifty.server.http import Receive, Scope, Send, read_body, send_error, send_json
from thrifty.wire.openai import load_json_object


class AdminKeysEndpoint:
    """``GET /admin/keys``, ``POST /admin/keys``, ``DELETE /admin/keys/{id}``."""

    def __init__(self, gateway: Gateway) -> None:
        self.gw = gateway

    async def __call__(self, scope: Scope, receive: Receive, send: Send, request_id: str) -> None:
        headers = [(b"x-thrifty-request-id", request_id.encode())]
        try:
            self.gw.auth.check_admin(scope["thrifty.token"])
            status, payload = await self._handle(scope, receive)
        except ThriftyError as exc:
            await send_error(send, exc, headers)
            return
        await send_json(send, status, orjson.dumps(payload), headers)

    async def _handle(self, scope: Scope, receive: Receive) -> tuple[int, Any]:
        method, key_id = scope["method"], scope.get("thrifty.path_param")
        keys = self.gw.keys
        if method == "GET" and not key_id:
            records = await keys.list()
            return 200, {"object": "list", "data": [r.to_json() for r in records]}
        if method == "POST" and not key_id:
            raw = await read_body(receive, scope["thrifty.headers"], 64 * 1024)
            body = load_json_object(raw)
            tags = body.get("tags") or {}
            if not isinstance(tags, dict) or not all(isinstance(v, str) for v in tags.values()):
                raise InvalidRequestError("tags must be an object of strings", param="tags")
            tenant = body.get("tenant")
            if not isinstance(tenant, str) or not tenant:
                raise InvalidRequestError("tenant is required", param="tenant")
            key, rec = await keys.create(
                tenant,
                user=body.get("user"),
                tier=body.get("tier") or "standard",
                tags=tags,
                name=body.get("name"),
            )
            return 201, {**rec.to_json(), "key": key}
        if method == "DELETE" and key_id:
            rec = await keys.revoke(key_id)
            self.gw.auth.invalidate()
            return 200, rec.to_json()
        raise NotFoundError(f"{method} {scope['path']} is not an admin route")
