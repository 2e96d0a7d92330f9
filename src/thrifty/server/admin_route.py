"""Admin API: ``POST /admin/route/preview`` — the route decision and score for a request,
without calling a model. Body: ``{"request": <chat body>, "tenant", "user", "tier", "tags",
"priority"}``."""

from __future__ import annotations

import orjson

from thrifty.errors import InvalidRequestError, ThriftyError
from thrifty.gateway import Gateway
from thrifty.keys.principal import TIERS, Principal
from thrifty.server.http import Receive, Scope, Send, read_body, send_error, send_json
from thrifty.wire.openai import chat_request_from_body, load_json_object


class AdminRoutePreviewEndpoint:
    def __init__(self, gateway: Gateway) -> None:
        self.gw = gateway

    async def __call__(self, scope: Scope, receive: Receive, send: Send, request_id: str) -> None:
        headers = [(b"x-thrifty-request-id", request_id.encode())]
        try:
            self.gw.auth.check_admin(scope["thrifty.token"])
            body = load_json_object(await read_body(receive, scope["thrifty.headers"], 1 << 20))
            request = body.get("request")
            if not isinstance(request, dict):
                raise InvalidRequestError(
                    "'request' must be a chat completion body", param="request"
                )
            chat = chat_request_from_body(request)
            tier = body.get("tier") or "standard"
            if tier not in TIERS:
                raise InvalidRequestError(f"tier must be one of {', '.join(TIERS)}", param="tier")
            principal = Principal(
                tenant=str(body.get("tenant") or "preview"), user=body.get("user"), tier=tier
            )
            decision = await self.gw.route_preview(
                chat.body,
                principal,
                tags=body.get("tags") or {},
                priority=body.get("priority") or "normal",
            )
        except ThriftyError as exc:
            await send_error(send, exc, headers)
            return
        await send_json(send, 200, orjson.dumps(decision), headers)
