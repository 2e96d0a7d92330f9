"""Budgets through the real HTTP API: never overrun (200 concurrent requests), reject with the
reset time, max_tokens from what is left, degrade to a cheaper model, soft limits for critical
requests, and the Redis backend across two gateway processes."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.redisx import redis_prefix, redis_url
from tests.support import chat_body, gateway_config
from thrifty.budgets.model import period_window
from thrifty.server.app import ThriftyApp, create_app
from thrifty.testing import FakeOpenAIServer

__all__ = ["redis_prefix"]


@asynccontextmanager
async def budget_app(
    fake: FakeOpenAIServer, tmp_path: Path, *budgets: dict[str, Any], **extra: Any
) -> AsyncIterator[tuple[ThriftyApp, httpx.AsyncClient, dict[str, str]]]:
    config = gateway_config(fake.base_url, tmp_path, budgets={"budgets": list(budgets)}, **extra)
    app = create_app(config)
    async with app.gateway as gw:
        key, _ = await gw.keys.create("acme", user="al")
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            yield app, client, {"authorization": f"Bearer {key}"}


async def spent(app: ThriftyApp) -> float:
    _, total = await app.gateway.usage("1h")
    return total.cost_usd


async def test_200_concurrent_requests_never_overrun(
    fake: FakeOpenAIServer, tmp_path: Path
) -> None:
    limit = 0.0005
    budget = {
        "id": "acme-daily",
        "scope": "tenant",
        "subject": "acme",
        "period": "daily",
        "limit_usd": limit,
        "policy": "reject",
    }
    async with budget_app(fake, tmp_path, budget) as (app, client, auth):
        results = await asyncio.gather(
            *(
                client.post(
                    "/v1/chat/completions",
                    json=chat_body(f"question {i}", model="gpt-4o", max_tokens=40),
                    headers=auth,
                )
                for i in range(200)
            )
        )
        statuses = [r.status_code for r in results]
        assert statuses.count(200) > 0 and statuses.count(429) > 0
        assert set(statuses) <= {200, 429}
        await app.gateway.budget_settler.flush()
        total = await spent(app)
        assert 0 < total <= limit  # recorded spend never passes the limit
        spec = app.gateway.budgets.specs()[0]
        window = period_window(spec, datetime.now(UTC)).window_id
        usage = await app.gateway.budgets.backend.usage(spec, window)
        assert usage.spent_usd == pytest.approx(total, rel=1e-3, abs=2e-6)
        assert usage.reserved_micros == 0
        refused = next(r for r in results if r.status_code == 429)
        err = refused.json()["error"]
        assert err["code"] == "budget_exceeded" and "resets at" in err["message"]
        assert int(refused.headers["retry-after"]) > 0


async def test_max_tokens_from_what_is_left(fake: FakeOpenAIServer, tmp_path: Path) -> None:
    budget = {"id": "b", "scope": "user", "subject": "al", "limit_usd": 0.002, "policy": "reject"}
    async with budget_app(fake, tmp_path, budget) as (_, client, auth):
        fake.clear()
        resp = await client.post(
            "/v1/chat/completions", json=chat_body("hello", model="gpt-4o"), headers=auth
        )
        assert resp.status_code == 200
        cap = int(resp.headers["x-thrifty-max-tokens"])
        assert 1 <= cap <= 4096
        assert fake.requests[-1]["body"]["max_tokens"] == cap
        # a worst case of cap output tokens at gpt-4o's $10/M fits what was left
        assert cap * 10 / 1e6 <= 0.002


async def test_degrade_to_a_cheaper_model(fake: FakeOpenAIServer, tmp_path: Path) -> None:
    budget = {
        "id": "b",
        "scope": "tenant",
        "subject": "acme",
        "limit_usd": 0.0004,
        "policy": "degrade",
    }
    async with budget_app(fake, tmp_path, budget) as (app, client, auth):
        resp = await client.post(
            "/v1/chat/completions",
            json=chat_body("hello", model="gpt-4o", max_tokens=100),  # worst case $0.001+
            headers=auth,
        )
        assert resp.status_code == 200
        assert resp.headers["x-thrifty-degraded-from"] == "gpt-4o"
        assert resp.headers["x-thrifty-model"] == "gpt-4o-mini"
        row = await app.gateway.request_record(resp.headers["x-thrifty-request-id"])
        assert row["served_model"] == "gpt-4o-mini" and "degraded" in row["flags"]
        assert row["saved_routing_usd"] > 0
        assert row["baseline_cost_usd"] == pytest.approx(row["cost_usd"] + row["saved_routing_usd"])


async def test_soft_limit_lets_critical_requests_through(
    fake: FakeOpenAIServer, tmp_path: Path
) -> None:
    budget = {
        "id": "b",
        "scope": "tenant",
        "subject": "acme",
        "limit_usd": 0.0006,
        "policy": "soft",
        "soft_multiplier": 2.0,
    }
    async with budget_app(fake, tmp_path, budget) as (app, client, auth):
        body = chat_body("hello", model="gpt-4o", max_tokens=40)
        normal = [
            await client.post("/v1/chat/completions", json=body, headers=auth) for _ in range(6)
        ]
        assert any(r.headers.get("x-thrifty-degraded-from") for r in normal)
        critical = await client.post(
            "/v1/chat/completions",
            json=body,
            headers={**auth, "x-thrifty-priority": "critical"},
        )
        assert critical.status_code == 200
        assert "x-thrifty-degraded-from" not in critical.headers
        await app.gateway.budget_settler.flush()
        assert await spent(app) <= 0.0006 * 2


async def test_redis_backend_across_two_processes(tmp_path: Path, redis_prefix: str) -> None:
    from tests.processes import create_key, serve_processes

    limit = 0.002
    cfg = tmp_path / "thrifty.yaml"
    cfg.write_text(
        f"database: {{url: 'sqlite:///{tmp_path / 'thrifty.db'}'}}\n"
        f"ledger: {{spill_path: '{tmp_path / 'spill.jsonl'}', flush_interval_s: 0.05}}\n"
        f"redis: {{url: '{redis_url()}', prefix: '{redis_prefix}'}}\n"
        "cache: {enabled: false}\n"
        "keys: {cache_ttl_s: 60}\n"
        "budgets:\n  backend: redis\n  budgets:\n"
        f"    - {{id: acme, scope: tenant, subject: acme, limit_usd: {limit}, policy: reject}}\n"
        "providers: {fake: {kind: fake}}\n"
        "models: [{name: gpt-4o, provider: fake}]\n"
    )
    key = create_key(cfg)
    with serve_processes(cfg, 2) as ports:
        auth = {"authorization": f"Bearer {key}"}

        async def fire(port: int, i: int) -> int:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as c:
                r = await c.post(
                    "/v1/chat/completions",
                    json=chat_body(f"q{i}", model="gpt-4o", max_tokens=40),
                    headers=auth,
                )
                return r.status_code

        statuses = await asyncio.gather(*(fire(ports[i % 2], i) for i in range(200)))
        assert statuses.count(200) > 0 and statuses.count(429) > 0
    with sqlite3.connect(tmp_path / "thrifty.db") as conn:
        total, ok = conn.execute(
            "SELECT COALESCE(SUM(cost_usd), 0), SUM(status = 200) FROM ledger"
        ).fetchone()
    assert ok == statuses.count(200)
    assert 0 < total <= limit  # one Redis, two processes, never overrun


async def test_embeddings_partly_cached_then_refused_cost_nothing_and_are_priced(
    fake: FakeOpenAIServer, tmp_path: Path
) -> None:
    """A refused request spent nothing, even when some of its embedding items were found in
    the cache first: its row costs $0 and is not flagged unpriced."""
    budget = {
        "id": "acme-tokens",
        "scope": "tenant",
        "subject": "acme",
        "period": "daily",
        "limit_tokens": 12,
        "policy": "reject",
    }
    cache = {"enabled": True, "disk_path": str(tmp_path / "cache")}
    async with budget_app(fake, tmp_path, budget, cache=cache) as (app, client, auth):
        body = {"model": "text-embedding-3-small", "input": ["alpha beta"]}
        first = await client.post("/v1/embeddings", json=body, headers=auth)
        assert first.status_code == 200
        long_item = "gamma delta " * 20
        refused = await client.post(
            "/v1/embeddings", json={**body, "input": ["alpha beta", long_item]}, headers=auth
        )
        assert refused.status_code == 429, refused.text
        row = await app.gateway.request_record(refused.headers["x-thrifty-request-id"])
        assert row is not None and "cache_items:1/2" in row["flags"]
        assert row["unpriced"] is False and row["cost_usd"] == 0 and row["saved_usd"] == 0
