"""Admin API: usage reports, one request's ledger row, unpriced models."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

import orjson

from thrifty.errors import NotFoundError, ThriftyError
from thrifty.gateway import Gateway
from thrifty.ledger.periods import parse_period
from thrifty.server.http import Receive, Scope, Send, send_error, send_json

_FILTER_KEYS = ("tenant", "user", "model", "key")


def query_params(scope: Scope) -> dict[str, str]:
    parsed = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    return {k: v[-1] for k, v in parsed.items()}


class AdminReportsEndpoint:
    """``GET /admin/usage``, ``GET /admin/requests/{id}``, ``GET /admin/prices/unpriced``."""

    def __init__(self, gateway: Gateway) -> None:
        self.gw = gateway

    async def __call__(self, scope: Scope, receive: Receive, send: Send, request_id: str) -> None:
        headers = [(b"x-thrifty-request-id", request_id.encode())]
        try:
            self.gw.auth.check_admin(scope["thrifty.token"])
            payload = await self._handle(scope)
        except ThriftyError as exc:
            await send_error(send, exc, headers)
            return
        await send_json(send, 200, orjson.dumps(payload), headers)

    async def _handle(self, scope: Scope) -> Any:
        path = scope["path"]
        q = query_params(scope)
        period = parse_period(q.get("period", "30d"), start=q.get("from"), end=q.get("to"))
        if path == "/admin/usage":
            group_by = [g for g in q.get("group_by", "").split(",") if g.strip()]
            filters = {k: v for k, v in q.items() if k in _FILTER_KEYS or k.startswith("tag:")}
            rows, total = await self.gw.usage(period, group_by, filters)
            return {
                "period": period.to_json(),
                "group_by": group_by,
                "data": [r.to_json() for r in rows],
                "total": total.to_json(),
            }
        if path == "/admin/analysis/tradeoffs":
            from thrifty.ledger.tradeoffs import report_json, tradeoffs

            if self.gw.ledger is not None:
                await self.gw.ledger.flush()
            min_outcomes = int(q.get("min_outcomes", "20"))
            report = await tradeoffs(self.gw.engine, period, min_outcomes=min_outcomes)
            return {"period": period.to_json(), **report_json(report)}
        if path == "/admin/prices/unpriced":
            return {
                "period": period.to_json(),
                "configured": [
                    {"model": m, "deployment": d} for m, d in self.gw.costing.unpriced_models()
                ],
                "seen": await self.gw.unpriced_seen(period),
            }
        request = scope.get("thrifty.path_param")
        row = await self.gw.request_record(request) if request else None
        if row is None:
            raise NotFoundError(f"no ledger row for request {request!r}", param="request_id")
        return row
