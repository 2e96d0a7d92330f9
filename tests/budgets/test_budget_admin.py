"""The budgets admin API on a running gateway: a budget set through the API applies at once,
shows its spend, can be reset, keeps a change log; threshold alerts are listed."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from tests.support import ADMIN_KEY, chat_body, gateway_config
from thrifty.server.app import create_app
from thrifty.testing import FakeOpenAIServer

ADMIN = {"authorization": f"Bearer {ADMIN_KEY}"}


async def test_budget_lifecycle_through_the_admin_api(
    fake: FakeOpenAIServer, tmp_path: Path
) -> None:
    app = create_app(gateway_config(fake.base_url, tmp_path))
    async with app.gateway as gw:
        key, _ = await gw.keys.create("acme")
        auth = {"authorization": f"Bearer {key}"}
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            put = await c.put(
                "/admin/budgets/acme-daily",
                json={
                    "id": "acme-daily",
                    "scope": "tenant",
                    "subject": "acme",
                    "period": "daily",
                    "limit_usd": 0.0005,
                    "policy": "reject",
                },
                headers=ADMIN,
            )
            assert put.status_code == 201, put.text
            bad = await c.put("/admin/budgets/x", json={"id": "x", "limit_usd": -1}, headers=ADMIN)
            assert bad.status_code == 400 and bad.json()["error"]["param"]
            statuses = []
            for i in range(12):
                r = await c.post(
                    "/v1/chat/completions",
                    json=chat_body(f"q{i}", model="gpt-4o", max_tokens=30),
                    headers=auth,
                )
                statuses.append(r.status_code)
            assert 200 in statuses and 429 in statuses
            await gw.budget_settler.flush()
            listed = (await c.get("/admin/budgets", headers=ADMIN)).json()
            budget = next(b for b in listed["data"] if b["id"] == "acme-daily")
            assert 0 < budget["spent_usd"] <= 0.0005
            await asyncio.sleep(0.05)
            alerts = (await c.get("/admin/alerts", headers=ADMIN)).json()
            assert any("acme-daily" in str(a) for a in alerts["data"])
            reset = await c.post("/admin/budgets/acme-daily/reset", headers=ADMIN)
            assert reset.status_code == 200
            after = (await c.get("/admin/budgets", headers=ADMIN)).json()
            assert next(b for b in after["data"] if b["id"] == "acme-daily")["spent_usd"] == 0
            ok = await c.post(
                "/v1/chat/completions",
                json=chat_body("again", model="gpt-4o", max_tokens=30),
                headers=auth,
            )
            assert ok.status_code == 200
            changes = (await c.get("/admin/budgets/acme-daily/changes", headers=ADMIN)).json()
            assert [ch["action"] for ch in changes["data"]][:2] in (
                ["reset", "create"],
                ["create", "reset"],
            )
            gone = await c.delete("/admin/budgets/acme-daily", headers=ADMIN)
            assert gone.status_code == 200
            assert (await c.get("/admin/budgets")).status_code == 401
