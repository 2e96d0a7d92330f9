"""POST /v1/feedback: a tenant rates its own answers; ratings drive the trade-off analysis."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.support import ADMIN_KEY, chat_body, gateway_config
from thrifty.server.app import create_app
from thrifty.testing import FakeOpenAIServer


async def test_feedback(fake: FakeOpenAIServer, tmp_path: Path) -> None:
    app = create_app(gateway_config(fake.base_url, tmp_path))
    async with app.gateway as gw:
        acme, _ = await gw.keys.create("acme")
        globex, _ = await gw.keys.create("globex")
        a = {"authorization": f"Bearer {acme}"}
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            rids = []
            for i in range(22):
                r = await c.post("/v1/chat/completions", json=chat_body(f"q{i}"), headers=a)
                rids.append(r.headers["x-thrifty-request-id"])
            ok = await c.post("/v1/feedback", json={"request_id": rids[0], "score": 0.9}, headers=a)
            assert ok.status_code == 200
            other = await c.post(
                "/v1/feedback",
                json={"request_id": rids[0], "score": 0.1},
                headers={"authorization": f"Bearer {globex}"},
            )
            assert other.status_code == 404  # another tenant cannot rate (or see) it
            for body, param in (
                ({"request_id": rids[1]}, "score"),
                ({"request_id": rids[1], "score": 3}, "score"),
                ({"score": 1}, "request_id"),
            ):
                bad = await c.post("/v1/feedback", json=body, headers=a)
                assert bad.status_code == 400 and bad.json()["error"]["param"] == param
            for rid in rids[1:]:  # every other answer needed clarification
                await c.post(
                    "/v1/feedback",
                    json={"request_id": rid, "needed_clarification": True},
                    headers=a,
                )
            report = (
                await c.get(
                    "/admin/analysis/tradeoffs?period=1h&min_outcomes=5",
                    headers={"authorization": f"Bearer {ADMIN_KEY}"},
                )
            ).json()
        cell = next(x for x in report["cells"] if x["model"] == "gpt-4o-mini")
        assert cell["success_rate"] == 1 / 22
