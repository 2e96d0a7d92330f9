"""Alerts from the request path (circuit opening, provider quota utilisation) listed by
/admin/alerts once per subject and period, and the budget backend's Redis outage in both
failure modes through the HTTP API."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from tests.support import ADMIN_KEY, chat_body, gateway_config
from thrifty.server.app import create_app
from thrifty.testing import FakeOpenAIServer

ADMIN = {"authorization": f"Bearer {ADMIN_KEY}"}


async def test_circuit_and_quota_alerts(fake: FakeOpenAIServer, tmp_path: Path) -> None:
    config = gateway_config(
        fake.base_url, tmp_path, resilience={"breaker": {"consecutive_failures": 2}}
    )
    app = create_app(config)
    async with app.gateway as gw:
        key, _ = await gw.keys.create("acme")
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            fake.set_fault("status=500")
            await c.post(
                "/v1/chat/completions", json=chat_body(), headers={"authorization": f"Bearer {key}"}
            )
            headers = {
                "x-ratelimit-limit-requests": "100",
                "x-ratelimit-remaining-requests": "3",
                "x-ratelimit-reset-requests": "20s",
            }
            gw.observe_upstream_headers("up/gpt-4o-mini", headers)
            gw.observe_upstream_headers("up/gpt-4o-mini", headers)  # same window: no repeat
            await asyncio.sleep(0.05)
            alerts = (await c.get("/admin/alerts", headers=ADMIN)).json()["data"]
        kinds = [a["alert"]["kind"] if "alert" in a else a.get("kind") for a in alerts]
        assert "circuit_open" in kinds
        assert kinds.count("quota") == 1


async def test_redis_outage_fail_closed_and_fail_open(
    fake: FakeOpenAIServer, tmp_path: Path
) -> None:
    budget = {"id": "b", "scope": "tenant", "subject": "acme", "limit_usd": 1.0}
    for failure, status in (("fail_closed", 503), ("fail_open", 200)):
        config = gateway_config(
            fake.base_url,
            tmp_path / failure,
            redis={"url": "redis://127.0.0.1:1/0", "timeout_s": 0.2},
            budgets={"backend": "redis", "failure": failure, "timeout_s": 0.2, "budgets": [budget]},
        )
        app = create_app(config)
        async with app.gateway as gw:
            key, _ = await gw.keys.create("acme")
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
                resp = await c.post(
                    "/v1/chat/completions",
                    json=chat_body(max_tokens=10),
                    headers={"authorization": f"Bearer {key}"},
                )
            assert resp.status_code == status, (failure, resp.text)
            if status == 503:
                assert resp.json()["error"]["code"] == "budget_state_unavailable"
            else:
                row = await gw.request_record(resp.headers["x-thrifty-request-id"])
                assert "budget_fail_open" in row["flags"]


async def test_spend_anomaly_alert(fake: FakeOpenAIServer, tmp_path: Path) -> None:
    from datetime import UTC, datetime, timedelta

    from tests.ledger.rows import ledger_row

    app = create_app(gateway_config(fake.base_url, tmp_path))
    async with app.gateway as gw:
        now = datetime.now(UTC).replace(minute=30, second=0, microsecond=0)
        rows = []
        for h in range(2, 40):  # a steady tenant: ~$0.10 an hour
            rows.append(
                ledger_row(
                    f"req_steady{h}",
                    tenant="acme",
                    cost_usd=0.10 + (h % 3) * 0.01,
                    started_at=now - timedelta(hours=h),
                )
            )
        rows.append(
            ledger_row(
                "req_spike", tenant="acme", cost_usd=5.0, started_at=now - timedelta(hours=1)
            )
        )
        for row in rows:
            gw.ledger.append(row)
        await gw.ledger.flush()
        fired = await gw.budgets.check_anomalies(gw, now=now)
        assert fired == 1
        assert await gw.budgets.check_anomalies(gw, now=now) == 0  # once per subject and period
        await asyncio.sleep(0.05)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            alerts = (await c.get("/admin/alerts", headers=ADMIN)).json()["data"]
        assert any("anomaly" in str(a) for a in alerts)
