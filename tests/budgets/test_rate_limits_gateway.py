"""Rate limits through the HTTP API: requests and tokens per minute, 429 with Retry-After."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.support import chat_body, gateway_config
from thrifty.server.app import create_app
from thrifty.testing import FakeOpenAIServer


async def test_rpm_and_tpm_limits(fake: FakeOpenAIServer, tmp_path: Path) -> None:
    limits = [{"scope": "key", "rpm": 3}, {"scope": "tenant", "subject": "globex", "tpm": 50}]
    config = gateway_config(fake.base_url, tmp_path, budgets={"rate_limits": limits})
    app = create_app(config)
    async with app.gateway as gw:
        acme, _ = await gw.keys.create("acme")
        globex, _ = await gw.keys.create("globex")
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            statuses = [
                (
                    await c.post(
                        "/v1/chat/completions",
                        json=chat_body(f"q{i}"),
                        headers={"authorization": f"Bearer {acme}"},
                    )
                ).status_code
                for i in range(5)
            ]
            assert statuses[:3] == [200, 200, 200] and statuses[3:] == [429, 429]
            limited = await c.post(
                "/v1/chat/completions",
                json=chat_body("again"),
                headers={"authorization": f"Bearer {acme}"},
            )
            assert limited.json()["error"]["code"] == "rate_limit_exceeded"
            assert int(limited.headers["retry-after"]) >= 1
            big = await c.post(
                "/v1/chat/completions",
                json=chat_body("x " * 100, max_tokens=20),
                headers={"authorization": f"Bearer {globex}"},
            )
            assert big.status_code == 429  # more tokens than a minute allows
            small = await c.post(
                "/v1/chat/completions",
                json=chat_body("hi", max_tokens=5),
                headers={"authorization": f"Bearer {globex}"},
            )
            assert small.status_code == 200


async def test_deployment_rpm_moves_traffic_to_the_next_deployment(
    fake: FakeOpenAIServer, tmp_path: Path
) -> None:
    limits = [{"scope": "deployment", "subject": "a/gpt-4o", "rpm": 2}]
    config = gateway_config(
        fake.base_url,
        tmp_path,
        budgets={"rate_limits": limits},
        providers={
            "a": {"kind": "openai", "base_url": fake.base_url},
            "b": {"kind": "openai", "base_url": fake.base_url},
        },
        models=[
            {
                "name": "gpt-4o",
                "deployments": [
                    {"provider": "a", "model": "gpt-4o"},
                    {"provider": "b", "model": "gpt-4o"},
                ],
            }
        ],
    )
    app = create_app(config)
    async with app.gateway as gw:
        key, _ = await gw.keys.create("acme")
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            deps = []
            for i in range(4):
                r = await c.post(
                    "/v1/chat/completions",
                    json=chat_body(f"q{i}", model="gpt-4o"),
                    headers={"authorization": f"Bearer {key}"},
                )
                assert r.status_code == 200
                deps.append(
                    (await gw.request_record(r.headers["x-thrifty-request-id"]))["deployment"]
                )
        assert deps == ["a/gpt-4o", "a/gpt-4o", "b/gpt-4o", "b/gpt-4o"]
