"""Admin API: provider health and circuit breakers.

``GET /admin/health`` — every provider and deployment: status, breaker state, latency, error
rate, calls in flight. ``POST /admin/deployments/{id}/breaker`` with ``{"state": "open"}``,
``{"state": "closed"}`` (seed 002's ``force_close``) or ``{"state": "reset"}``.
"""

from __future__ import annotations

from typing import Any

import orjson

from thrifty.errors import InvalidRequestError, NotFoundError, ThriftyError
from thrifty.gateway import Gateway
from thrifty.providers.health import CLOSED, OPEN
from thrifty.server.http import Receive, Scope, Send, read_body, send_error, send_json
from thrifty.wire.openai import load_json_object

_STATES = {"open": OPEN, "closed": CLOSED, "reset": None}


class AdminHealthEndpoint:
    def __init__(self, gateway: Gateway) -> None:
        self.gw = gateway

    async def __call__(self, scope: Scope, receive: Receive, send: Send, request_id: str) -> None:
        headers = [(b"x-thrifty-request-id", request_id.encode())]
        try:
            self.gw.auth.check_admin(scope["thrifty.token"])
            if scope["method"] == "GET":
                payload = self.gw.health_report()
            else:
                payload = await self._force(scope, receive)
        except ThriftyError as exc:
            await send_error(send, exc, headers)
            return
        await send_json(send, 200, orjson.dumps(payload), headers)

    async def _force(self, scope: Scope, receive: Receive) -> dict[str, Any]:
        rest = scope.get("thrifty.path_param") or ""
        deployment, sep, action = rest.rpartition("/")
        if not sep or action != "breaker":
            raise NotFoundError(f"POST {scope['path']} is not an admin route")
        health = self.gw.registry.health.get(deployment)
        if health is None:
            raise NotFoundError(f"no deployment {deployment!r}", param="deployment")
        body = load_json_object(await read_body(receive, scope["thrifty.headers"], 4096))
        state = body.get("state")
        if state not in _STATES:
            raise InvalidRequestError("state must be one of open, closed, reset", param="state")
        health.breaker.force(_STATES[state])
        return health.to_json()
