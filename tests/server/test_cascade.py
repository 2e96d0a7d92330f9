"""Cascade through the HTTP API: the cheap model answers first; a failed check escalates to the
strong model; both attempts are costed and the routing saving is net of the wasted call."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.support import chat_body, gateway_config
from thrifty.server.app import create_app
from thrifty.testing import FakeOpenAIServer

ROUTING = {
    "groups": [
        {
            "name": "auto",
            "scorer": "length",
            "tiers": {"small": ["gpt-4o-mini"], "large": ["gpt-4o"]},
            "cascade": {
                "enabled": True,
                "cheap": "gpt-4o-mini",
                "strong": "gpt-4o",
                "checks": ["json", "truncated", "empty"],
            },
        }
    ]
}


async def test_cascade_escalates_only_on_failed_checks(
    fake: FakeOpenAIServer, tmp_path: Path
) -> None:
    app = create_app(gateway_config(fake.base_url, tmp_path, routing=ROUTING))
    async with app.gateway as gw:
        key, _ = await gw.keys.create("acme")
        auth = {"authorization": f"Bearer {key}"}
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            ok = await c.post(
                "/v1/chat/completions",
                json=chat_body(
                    "List fruits", model="auto", response_format={"type": "json_object"}
                ),
                headers=auth,
            )
            fake.clear()
            truncated = await c.post(
                "/v1/chat/completions",
                json=chat_body("Tell me a story", model="auto", max_tokens=2),
                headers=auth,
            )
        assert ok.headers["x-thrifty-model"] == "gpt-4o-mini"
        assert "cascade=gpt-4o" in ok.headers["x-thrifty-route"]
        ok_row = await gw.request_record(ok.headers["x-thrifty-request-id"])
        assert ok_row["attempts"] == 1 and ok_row["saved_routing_usd"] > 0
        assert truncated.headers["x-thrifty-model"] == "gpt-4o"
        assert [r["body"]["model"] for r in fake.requests] == ["gpt-4o-mini", "gpt-4o-2024-08-06"]
        row = await gw.request_record(truncated.headers["x-thrifty-request-id"])
        assert "cascade_escalated:truncated" in row["flags"]
        assert row["attempts"] == 2
        # both calls are paid for: the saving against the strong model is negative here
        assert row["saved_routing_usd"] < 0
        assert row["cost_usd"] == pytest.approx(row["baseline_cost_usd"] - row["saved_routing_usd"])
