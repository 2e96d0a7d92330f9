"""Admin API: budgets and alerts.

``GET /admin/budgets`` (``?scope=&subject=``) — every effective budget (config + stored, see
``thrifty.budgets.store``) with its current window and counters: spent, reserved, remaining,
percent used (recorded spend over the limit) and percent committed (spend + live
reservations). ``GET /admin/budgets/{id}`` — one of them.
``PUT /admin/budgets/{id}`` — create or replace a stored budget (the body is a ``BudgetSpec``;
400 names the invalid field). ``DELETE /admin/budgets/{id}`` — delete a stored budget (a
config budget it overrode applies again; a config-only budget cannot be deleted here).
``POST /admin/budgets/{id}/reset`` — zero the spend of the current window.
``GET /admin/budgets/{id}/changes`` (``?limit=``) — the change log, newest first.
``GET /admin/alerts`` (``?state=firing|resolved&kind=&subject=&limit=``) — fired alerts.

Every change is logged with its actor: ``admin:<first 8 hex of sha256(admin key)>`` (the key
itself is never stored), plus ``/<x-thrifty-actor header>`` when the caller names itself.
Budget ids may contain ``/``: the path is matched by its suffix (``/reset``, ``/changes``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol, cast

import orjson
from pydantic import ValidationError

from thrifty.budgets.alert_log import AlertLog
from thrifty.budgets.alerts import utilisation
from thrifty.budgets.backend import BudgetBackend
from thrifty.budgets.model import BudgetSpec, Window, period_window
from thrifty.budgets.results import BudgetUsage, remaining_of
from thrifty.budgets.store import BudgetStore, spec_json, usage_json
from thrifty.errors import InvalidRequestError, NotFoundError, ThriftyError
from thrifty.gateway import Gateway
from thrifty.server.admin_reports import query_params
from thrifty.server.http import Receive, Scope, Send, read_body, send_error, send_json
from thrifty.wire.openai import load_json_object


class BudgetsRuntime(Protocol):
    """What the endpoints need from ``gateway.budgets`` (``BudgetDefinitions`` in
    ``thrifty.budgets.store`` provides all but ``backend``)."""

    backend: BudgetBackend
    store: BudgetStore
    config_specs: Sequence[BudgetSpec]
    sources: Mapping[str, str]

    def specs(self) -> Sequence[BudgetSpec]: ...

    async def refresh(self, *, force: bool = False) -> bool: ...


def admin_actor(scope: Scope) -> str:
    """Who made an admin change: a fingerprint of the admin key, and the name the caller gave
    in ``x-thrifty-actor`` if any."""
    token = scope.get("thrifty.token") or ""
    actor = "admin:" + hashlib.sha256(token.encode()).hexdigest()[:8]
    named = " ".join(str(scope.get("thrifty.headers", {}).get("x-thrifty-actor", "")).split())
    return f"{actor}/{named}"[:200] if named else actor


def validate_spec(budget_id: str, body: dict[str, Any]) -> BudgetSpec:
    """``body`` as the spec of budget ``budget_id``; 400 naming the first invalid field."""
    if body.get("id", budget_id) != budget_id:
        raise InvalidRequestError(
            f"the body's id {body.get('id')!r} differs from the path's {budget_id!r}", param="id"
        )
    try:
        return BudgetSpec.model_validate({**body, "id": budget_id})
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or None
        msg = str(err["msg"]).removeprefix("Value error, ")
        where = f"budget field {field!r}: " if field else "budget: "
        raise InvalidRequestError(where + msg, param=field) from None


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def window_json(window: Window) -> dict[str, Any]:
    return {"id": window.window_id, "start": _iso(window.start), "end": _iso(window.end)}


def _pct(used: int, limit: int | None) -> float | None:
    return None if not limit else round(100.0 * used / limit, 4)


def budget_view(
    spec: BudgetSpec, source: str, window: Window, usage: BudgetUsage | None
) -> dict[str, Any]:
    """One budget with its current window and counters (``usage`` ``None``: unreadable)."""
    out: dict[str, Any] = {
        **spec_json(spec),
        "source": source,
        "window": window_json(window),
        "resets_at": _iso(window.end),
    }
    if usage is None:
        return out
    left = remaining_of(spec, usage)
    ratio, dim = utilisation(spec, usage)
    committed = [
        p
        for p in (
            _pct(usage.spent_micros + usage.reserved_micros, spec.limit_micros),
            _pct(usage.spent_tokens + usage.reserved_tokens, spec.limit_tokens),
        )
        if p is not None
    ]
    out.update(
        spent_usd=usage.spent_usd,
        reserved_usd=usage.reserved_usd,
        spent_tokens=usage.spent_tokens,
        reserved_tokens=usage.reserved_tokens,
        remaining_usd=left.usd,
        remaining_tokens=left.tokens,
        percent_used=round(100.0 * ratio, 4),
        percent_used_dimension=dim,
        percent_committed=max(committed, default=0.0),
    )
    return out


class AdminBudgetsEndpoint:
    """``/admin/budgets`` and ``/admin/budgets/…`` (see the module docstring)."""

    def __init__(self, gateway: Gateway, clock: Any = None) -> None:
        self.gw = gateway
        self._clock = clock or (lambda: datetime.now(UTC))

    @property
    def budgets(self) -> BudgetsRuntime:
        runtime = getattr(self.gw, "budgets", None)
        if runtime is None:
            raise NotFoundError("budgets are not enabled (budgets.enabled: false)")
        return cast(BudgetsRuntime, runtime)

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
        method, param = scope["method"], scope.get("thrifty.path_param")
        runtime = self.budgets
        await runtime.refresh()  # pick up changes made through another replica or the CLI
        if not param:
            if method == "GET":
                return 200, await self._list(runtime, query_params(scope))
        elif method == "GET" and param.endswith("/changes"):
            limit = _limit(query_params(scope), 100)
            changes = await runtime.store.changes(param.removesuffix("/changes"), limit)
            return 200, {"object": "list", "data": [c.to_json() for c in changes]}
        elif method == "GET":
            spec = _find(runtime, param)
            return 200, (await self._views(runtime, [spec]))[0]
        elif method == "PUT":
            body = load_json_object(await read_body(receive, scope["thrifty.headers"], 64 * 1024))
            return await self._put(runtime, validate_spec(param, body), admin_actor(scope))
        elif method == "DELETE":
            return 200, await self._delete(runtime, param, admin_actor(scope))
        elif method == "POST" and param.endswith("/reset"):
            return 200, await self._reset(runtime, param.removesuffix("/reset"), scope)
        raise NotFoundError(f"{method} {scope['path']} is not an admin route")

    async def _views(
        self, runtime: BudgetsRuntime, specs: Sequence[BudgetSpec]
    ) -> list[dict[str, Any]]:
        now = self._clock()
        windows = [period_window(s, now) for s in specs]
        usages: Sequence[BudgetUsage | None]
        error = None
        try:
            usages = await runtime.backend.usages(
                [(s, w.window_id) for s, w in zip(specs, windows, strict=True)]
            )
        except ThriftyError as exc:  # e.g. Redis unreachable under fail_closed
            usages, error = [None] * len(specs), exc.message
        out = []
        for spec, window, usage in zip(specs, windows, usages, strict=True):
            view = budget_view(spec, runtime.sources.get(spec.id, "config"), window, usage)
            if error is not None:
                view["usage_error"] = error
            out.append(view)
        return out

    async def _list(self, runtime: BudgetsRuntime, q: dict[str, str]) -> dict[str, Any]:
        specs = [
            s
            for s in runtime.specs()
            if ("scope" not in q or s.scope == q["scope"])
            and ("subject" not in q or s.subject == q["subject"])
        ]
        return {"object": "list", "data": await self._views(runtime, specs)}

    async def _put(self, runtime: BudgetsRuntime, spec: BudgetSpec, actor: str) -> tuple[int, Any]:
        base = _config_spec(runtime, spec.id)
        existed = any(s.id == spec.id for s in runtime.specs())
        old, new = await runtime.store.put(spec, actor, base=base)
        await runtime.refresh(force=True)
        view = (await self._views(runtime, [new]))[0]
        payload = {"budget": view, "old": spec_json(old) if old else None, "new": spec_json(new)}
        return (200 if existed or old is not None else 201), payload

    async def _delete(self, runtime: BudgetsRuntime, budget_id: str, actor: str) -> Any:
        fallback = _config_spec(runtime, budget_id)
        old = await runtime.store.delete(budget_id, actor, fallback=fallback)
        if old is None:
            if fallback is not None:
                raise InvalidRequestError(
                    f"budget {budget_id!r} is defined in the config file; remove it there, or "
                    "PUT an override with enabled: false",
                    param="id",
                    code="budget_defined_in_config",
                )
            raise NotFoundError(f"no budget {budget_id!r}", param="id")
        await runtime.refresh(force=True)
        return {
            "deleted": budget_id,
            "old": old,
            "reverted_to": spec_json(fallback) if fallback else None,
        }

    async def _reset(self, runtime: BudgetsRuntime, budget_id: str, scope: Scope) -> Any:
        spec = _find(runtime, budget_id)
        window = period_window(spec, self._clock())
        before = await runtime.backend.reset(spec, window.window_id)
        change = await runtime.store.record_reset(budget_id, admin_actor(scope), before)
        alerts = getattr(self.gw, "alerts", None)
        if isinstance(alerts, AlertLog):
            for kind in ("budget_threshold", "budget_forecast"):
                alerts.resolve(
                    kind=kind, subject=budget_id, period=window.window_id, reason="budget reset"
                )
        return {
            "budget_id": budget_id,
            "window": window_json(window),
            "before": usage_json(before),
            "change": change.to_json(),
        }


def _find(runtime: BudgetsRuntime, budget_id: str) -> BudgetSpec:
    spec = next((s for s in runtime.specs() if s.id == budget_id), None)
    if spec is None:
        raise NotFoundError(f"no budget {budget_id!r}", param="id")
    return spec


def _config_spec(runtime: BudgetsRuntime, budget_id: str) -> BudgetSpec | None:
    return next((s for s in runtime.config_specs if s.id == budget_id), None)


def _limit(q: dict[str, str], default: int) -> int:
    raw = q.get("limit")
    if raw is None:
        return default
    if not raw.isdigit() or not 1 <= int(raw) <= 10_000:
        raise InvalidRequestError("limit must be an integer in [1, 10000]", param="limit")
    return int(raw)


class AdminAlertsEndpoint:
    """``GET /admin/alerts``: fired alerts (newest first) with their state, from
    ``gateway.alerts`` (an ``AlertLog``)."""

    def __init__(self, gateway: Gateway) -> None:
        self.gw = gateway

    async def __call__(self, scope: Scope, receive: Receive, send: Send, request_id: str) -> None:
        headers = [(b"x-thrifty-request-id", request_id.encode())]
        try:
            self.gw.auth.check_admin(scope["thrifty.token"])
            log = getattr(self.gw, "alerts", None)
            if not isinstance(log, AlertLog):
                raise NotFoundError("alerts are not enabled (budgets.enabled: false)")
            q = query_params(scope)
            state = q.get("state")
            if state not in (None, "firing", "resolved"):
                raise InvalidRequestError("state must be firing or resolved", param="state")
            records = log.entries(
                state=state, kind=q.get("kind"), subject=q.get("subject"), limit=_limit(q, 100)
            )
            payload = {
                "object": "list",
                "data": [r.to_json() for r in records],
                "firing": len(log.entries(state="firing")),
            }
        except ThriftyError as exc:
            await send_error(send, exc, headers)
            return
        await send_json(send, 200, orjson.dumps(payload), headers)
