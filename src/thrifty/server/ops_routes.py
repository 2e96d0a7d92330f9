"""Operational endpoints: liveness, readiness and Prometheus metrics (no auth)."""

from __future__ import annotations

import orjson
from sqlalchemy import text

from thrifty.gateway import Gateway
from thrifty.metrics import CONTENT_TYPE
from thrifty.server.http import Receive, Scope, Send, send_bytes, send_json


class HealthEndpoint:
    def __init__(self, gateway: Gateway) -> None:
        self.gw = gateway

    async def __call__(self, scope: Scope, receive: Receive, send: Send, request_id: str) -> None:
        headers = [(b"x-thrifty-request-id", request_id.encode())]
        await send_json(send, 200, b'{"status":"ok"}', headers)


class ReadyEndpoint:
    """Ready when started, the database answers and every provider pool is open."""

    def __init__(self, gateway: Gateway) -> None:
        self.gw = gateway

    async def __call__(self, scope: Scope, receive: Receive, send: Send, request_id: str) -> None:
        headers = [(b"x-thrifty-request-id", request_id.encode())]
        checks: dict[str, str] = {}
        ok = self.gw.started
        checks["gateway"] = "started" if ok else "starting"
        if ok:
            try:
                async with self.gw.engine.connect() as conn:
                    await conn.execute(text("SELECT 1"))
                checks["database"] = "ok"
            except Exception as exc:  # report, never raise from a probe
                checks["database"] = f"error: {exc.__class__.__name__}"
                ok = False
            missing = set(self.gw.config.providers) - set(self.gw.registry.providers)
            checks["providers"] = "ok" if not missing else f"not open: {sorted(missing)}"
            ok = ok and not missing
        body = orjson.dumps({"status": "ready" if ok else "not ready", "checks": checks})
        await send_json(send, 200 if ok else 503, body, headers)


class MetricsEndpoint:
    def __init__(self, gateway: Gateway) -> None:
        self.gw = gateway

    async def __call__(self, scope: Scope, receive: Receive, send: Send, request_id: str) -> None:
        headers = [(b"x-thrifty-request-id", request_id.encode())]
        ct = (b"content-type", CONTENT_TYPE.encode())
        await send_bytes(send, 200, self.gw.metrics.render(), headers, ct)
