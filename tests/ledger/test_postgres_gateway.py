"""The whole gateway on the real PostgreSQL: migrations on start, hashed keys, one costed ledger
row per request (answered, failed, refused), reports whose totals equal their rows."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import text

from tests.support import ADMIN_KEY, chat_body, gateway_config
from thrifty.server.app import create_app
from thrifty.testing import FakeOpenAIServer


async def test_gateway_on_postgres(fake: FakeOpenAIServer, tmp_path, pg_url: str) -> None:
    config = gateway_config(fake.base_url, tmp_path, database={"url": pg_url})
    app = create_app(config)
    async with app.gateway as gw:
        key, _ = await gw.keys.create("acme", user="al", tags={"team": "x"})
        auth = {"authorization": f"Bearer {key}"}
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            ok = [
                await c.post(
                    "/v1/chat/completions", json=chat_body(f"q{i}", stream=i % 2 == 0), headers=auth
                )
                for i in range(6)
            ]
            fake.set_fault("status=500")
            failed = await c.post("/v1/chat/completions", json=chat_body(), headers=auth)
            fake.set_fault(None)
            refused = await c.post("/v1/chat/completions", json=chat_body())
            usage = await c.get(
                "/admin/usage?period=1h&group_by=tag:team",
                headers={"authorization": f"Bearer {ADMIN_KEY}"},
            )
            by_day = await c.get(
                "/admin/usage?period=24h&group_by=day,model,tenant",
                headers={"authorization": f"Bearer {ADMIN_KEY}"},
            )
        assert by_day.status_code == 200, by_day.text
        assert sum(r["requests"] for r in by_day.json()["data"]) == 8
        async with gw.engine.connect() as conn:
            n, distinct = (
                await conn.execute(text("SELECT COUNT(*), COUNT(DISTINCT request_id) FROM ledger"))
            ).one()
            stored = (await conn.execute(text("SELECT key_hash FROM api_keys"))).scalar_one()
        assert (n, distinct) == (8, 8)
        assert key not in stored and len(stored) == 64
        for resp in ok:
            row = await gw.request_record(resp.headers["x-thrifty-request-id"])
            assert row["status"] == 200 and row["cost_usd"] > 0
        assert (await gw.request_record(failed.headers["x-thrifty-request-id"]))["status"] == 502
        assert (await gw.request_record(refused.headers["x-thrifty-request-id"]))["status"] == 401
        body = usage.json()
        assert body["total"]["requests"] == 8
        assert sum(r["requests"] for r in body["data"]) == 8
        assert sum(r["cost_usd"] for r in body["data"]) == pytest.approx(body["total"]["cost_usd"])
