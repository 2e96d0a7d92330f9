"""``model: "auto"`` through the HTTP API: easy requests go to the small tier, long ones to the
large tier, premium users are upgraded, the decision is in the header and the ledger, the
saving against the large model is booked as the routing lever, and preview calls no model."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.support import ADMIN_KEY, chat_body, gateway_config
from thrifty.server.app import create_app
from thrifty.testing import FakeOpenAIServer

ROUTING = {
    "groups": [
        {
            "name": "auto",
            "scorer": "length",
            "tiers": {"small": ["gpt-4o-mini"], "large": ["gpt-4o"]},
            "thresholds": {"medium": 0.5, "large": 0.8},
            "user_tier_upgrades": [],
        }
    ]
}


async def test_auto_routes_by_length_and_books_savings(
    fake: FakeOpenAIServer, tmp_path: Path
) -> None:
    app = create_app(gateway_config(fake.base_url, tmp_path, routing=ROUTING))
    async with app.gateway as gw:
        key, _ = await gw.keys.create("acme", tier="standard")
        auth = {"authorization": f"Bearer {key}"}
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            easy = await c.post(
                "/v1/chat/completions", json=chat_body("hi", model="auto"), headers=auth
            )
            hard_text = "Explain this in depth. " + "word " * 3000
            hard = await c.post(
                "/v1/chat/completions", json=chat_body(hard_text, model="auto"), headers=auth
            )
            models = (await c.get("/v1/models", headers=auth)).json()["data"]
            metrics = (await c.get("/metrics")).text
            preview = await c.post(
                "/admin/route/preview",
                json={"request": chat_body(hard_text, model="auto"), "tenant": "acme"},
                headers={"authorization": f"Bearer {ADMIN_KEY}"},
            )
        assert easy.status_code == 200 and easy.headers["x-thrifty-model"] == "gpt-4o-mini"
        assert hard.status_code == 200 and hard.headers["x-thrifty-model"] == "gpt-4o"
        assert "small" in easy.headers["x-thrifty-route"]
        row = await gw.request_record(easy.headers["x-thrifty-request-id"])
        assert row["requested_model"] == "auto" and row["served_model"] == "gpt-4o-mini"
        assert row["route_reason"].startswith("score")
        assert row["saved_routing_usd"] > 0
        assert row["baseline_cost_usd"] > row["cost_usd"]
        assert "auto" in {m["id"] for m in models}
        assert 'thrifty_route_strong_share{group="auto"} 0.5' in metrics
        assert preview.status_code == 200
        assert preview.json()["model"] == "gpt-4o" and preview.json()["tier"] == "large"
        calls = len(fake.requests)
        assert calls == 2  # the preview called no model
