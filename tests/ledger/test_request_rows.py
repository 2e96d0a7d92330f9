"""Every request leaves exactly one correctly costed ledger row, answered, failed or refused."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import httpx
import orjson
import pytest

from tests.support import ADMIN_KEY, chat_body, gateway_config
from thrifty.keys.principal import Principal
from thrifty.pipeline.context import RequestContext
from thrifty.pipeline.costing import usage_from_any
from thrifty.providers.base import Deployment
from thrifty.server.app import ThriftyApp, create_app
from thrifty.testing import FakeOpenAIServer

MINI_IN, MINI_OUT = Decimal("0.15"), Decimal("0.60")  # gpt-4o-mini, USD per 1M tokens


def mini_cost(usage: dict) -> Decimal:
    return (usage["prompt_tokens"] * MINI_IN + usage["completion_tokens"] * MINI_OUT) / 10**6


async def ledger_row(app: ThriftyApp, request_id: str) -> dict:
    row = await app.gateway.request_record(request_id)
    assert row is not None, f"no ledger row for {request_id}"
    return row


async def all_rows(app: ThriftyApp) -> list[dict]:
    from sqlalchemy import select

    from thrifty.db.schema import ledger

    await app.gateway.ledger.flush()
    async with app.gateway.engine.connect() as conn:
        return [dict(r) for r in (await conn.execute(select(ledger))).mappings().all()]


async def test_answered_request_is_costed_exactly(
    app: ThriftyApp, client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    resp = await client.post(
        "/v1/chat/completions",
        json=chat_body("What is the capital of France?"),
        headers={**auth, "x-thrifty-tags": "use_case=faq,agent=bot", "x-thrifty-priority": "low"},
    )
    usage = resp.json()["usage"]
    expected = mini_cost(usage)
    assert Decimal(resp.headers["x-thrifty-cost-usd"]) == expected.quantize(Decimal("1e-10"))
    assert Decimal(resp.headers["x-thrifty-saved-usd"]) == 0
    row = await ledger_row(app, resp.headers["x-thrifty-request-id"])
    assert row["cost_usd"] == pytest.approx(float(expected), rel=1e-12)
    assert row["baseline_cost_usd"] == row["cost_usd"]
    assert (row["prompt_tokens"], row["completion_tokens"]) == (
        usage["prompt_tokens"],
        usage["completion_tokens"],
    )
    assert row["usage_source"] == "provider"
    assert row["tenant"] == "acme" and row["user"] == "alice"
    assert row["tags"] == {"use_case": "faq", "agent": "bot"}
    assert row["priority"] == "low"
    assert row["served_model"] == "gpt-4o-mini" and row["provider"] == "up"
    assert row["status"] == 200 and row["attempts"] == 1 and not row["unpriced"]
    assert row["cache_status"] == "bypass" and row["finish_reason"] == "stop"
    assert row["latency_ms"] > 0 and row["ttfb_ms"] is not None
    assert row["content"] is None  # prompts are not stored unless ledger.store_content


async def test_streamed_costs_the_same_as_non_streamed(
    app: ThriftyApp, client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    body = chat_body("Tell me about lighthouses")
    plain = await client.post("/v1/chat/completions", json=body, headers=auth)
    # the client does not ask for usage: Thrifty still costs the stream
    streamed = await client.post(
        "/v1/chat/completions", json={**body, "stream": True}, headers=auth
    )
    assert streamed.headers["x-thrifty-cost-usd"] == "pending"
    comment = next(line for line in streamed.text.split("\n\n") if line.startswith(": thrifty "))
    assert orjson.loads(comment[len(": thrifty ") :])["cost_usd"] == pytest.approx(
        float(plain.headers["x-thrifty-cost-usd"]), abs=1e-10
    )
    # the client asks for usage: the final usage carries the cost too
    with_usage = await client.post(
        "/v1/chat/completions",
        json={**body, "stream": True, "stream_options": {"include_usage": True}},
        headers=auth,
    )
    final = orjson.loads(
        [f for f in with_usage.text.split("\n\n") if f.startswith("data: {")][-1][6:]
    )
    assert final["usage"]["thrifty_cost_usd"] == pytest.approx(
        float(plain.headers["x-thrifty-cost-usd"]), abs=1e-10
    )
    rows = [
        await ledger_row(app, r.headers["x-thrifty-request-id"])
        for r in (plain, streamed, with_usage)
    ]
    assert len({r["cost_usd"] for r in rows}) == 1
    assert rows[0]["cost_usd"] > 0
    assert len({(r["prompt_tokens"], r["completion_tokens"]) for r in rows}) == 1


async def test_failed_and_refused_requests_each_leave_one_row(
    app: ThriftyApp, client: httpx.AsyncClient, fake: FakeOpenAIServer, auth: dict[str, str]
) -> None:
    fake.set_fault("status=500")
    failed = await client.post("/v1/chat/completions", json=chat_body(), headers=auth)
    fake.set_fault(None)
    refused = await client.post("/v1/chat/completions", json=chat_body())  # no key
    bad = await client.post("/v1/chat/completions", content=b"{oops", headers=auth)
    unknown = await client.post("/v1/chat/completions", json=chat_body(model="gpt-9"), headers=auth)
    fake.set_fault("cut=2")
    cut = await client.post("/v1/chat/completions", json=chat_body(stream=True), headers=auth)
    rows = {r["request_id"]: r for r in await all_rows(app)}
    expectations = [
        (failed, 502, "upstream_error"),
        (refused, 401, "invalid_api_key"),
        (bad, 400, "invalid_json"),
        (unknown, 404, "model_not_found"),
        (cut, 200, "upstream_connection_error"),
    ]
    assert len(rows) == len(expectations)
    for resp, status, code in expectations:
        row = rows[resp.headers["x-thrifty-request-id"]]
        assert row["error_code"] == code
        assert row["status"] == (502 if resp is cut else status)
    assert rows[refused.headers["x-thrifty-request-id"]]["tenant"] == "(unauthenticated)"
    assert rows[unknown.headers["x-thrifty-request-id"]]["requested_model"] == "gpt-9"
    failed_row = rows[failed.headers["x-thrifty-request-id"]]
    assert failed_row["attempts"] == 2  # one retry on the same deployment, with backoff
    assert [a["error"] for a in failed_row["fallback_path"]] == ["upstream_error"] * 2
    # a stream cut after some output still costs what was generated
    cut_row = rows[cut.headers["x-thrifty-request-id"]]
    assert cut_row["completion_tokens"] > 0 and cut_row["usage_source"] == "counted"


async def test_unpriced_model_is_flagged_never_zero(fake: FakeOpenAIServer, tmp_path: Path) -> None:
    config = gateway_config(
        fake.base_url,
        tmp_path,
        models=[
            {"name": "house-llama", "provider": "up", "model": "house-llama-70b"},
            {"name": "local-free", "provider": "up", "model": "local-free"},
        ],
        pricing={
            "catalog_file": None,
            "overrides": {"local-free": {"provider": "self-hosted", "input": 0, "output": 0}},
        },
    )
    app = create_app(config)
    async with app.gateway as gw:
        key, _ = await gw.keys.create("acme")
        auth = {"authorization": f"Bearer {key}"}
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            r1 = await c.post(
                "/v1/chat/completions", json=chat_body(model="house-llama"), headers=auth
            )
            r2 = await c.post(
                "/v1/chat/completions", json=chat_body(model="local-free"), headers=auth
            )
            metrics = (await c.get("/metrics")).text
            listing = await c.get(
                "/admin/prices/unpriced", headers={"authorization": f"Bearer {ADMIN_KEY}"}
            )
        assert r1.headers["x-thrifty-cost-usd"] == "unpriced"
        assert Decimal(r2.headers["x-thrifty-cost-usd"]) == 0  # explicit $0 is priced
        row1 = await gw.request_record(r1.headers["x-thrifty-request-id"])
        row2 = await gw.request_record(r2.headers["x-thrifty-request-id"])
        assert row1["unpriced"] is True and row1["cost_usd"] is None
        assert row2["unpriced"] is False and row2["cost_usd"] == 0.0
        assert 'thrifty_unpriced_requests_total{model="house-llama"} 1.0' in metrics
        body = listing.json()
        assert {"model": "house-llama", "deployment": "up/house-llama-70b"} in body["configured"]
        assert body["seen"][0]["served_model"] == "house-llama"


def _ctx(usage: dict, upstream: str) -> RequestContext:
    ctx = RequestContext("req_x", "chat.completions", Principal("t"), upstream, {})
    ctx.deployment = Deployment("p", upstream, upstream)
    ctx.usage = usage
    return ctx


@pytest.mark.parametrize(
    ("model", "usage", "expected_usd"),
    [
        # OpenAI convention: cached ⊂ prompt. (1000-400)*0.15 + 400*0.075 + 200*0.6 per 1M
        (
            "gpt-4o-mini",
            {
                "prompt_tokens": 1000,
                "completion_tokens": 200,
                "prompt_tokens_details": {"cached_tokens": 400},
            },
            "0.00024",
        ),
        # Anthropic convention: input excludes cache read and cache write.
        # 100*3 + 2000*0.30 + 500*3.75 + 300*15 per 1M
        (
            "claude-sonnet-4-5",
            {
                "input_tokens": 100,
                "output_tokens": 300,
                "cache_read_input_tokens": 2000,
                "cache_creation_input_tokens": 500,
            },
            "0.007275",
        ),
        # Bedrock id through the catalog's aliases: 1000*3.3 + 100*16.5 per 1M
        (
            "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
            {"prompt_tokens": 1000, "completion_tokens": 100},
            "0.00495",
        ),
        # Gemini convention with thinking tokens billed as output (2.5 flash: 0.30 / 2.50)
        (
            "gemini-2.5-flash",
            {"promptTokenCount": 1000, "candidatesTokenCount": 100, "thoughtsTokenCount": 50},
            "0.000675",
        ),
    ],
)
def test_costing_reads_every_usage_convention(
    app: ThriftyApp, model: str, usage: dict, expected_usd: str
) -> None:
    ctx = _ctx(usage, model)
    app.gateway.costing.apply(ctx)
    assert Decimal(str(ctx.cost_usd)).quantize(Decimal("1e-12")) == Decimal(expected_usd)
    assert usage_from_any(usage).prompt_tokens >= usage_from_any(usage).cached_tokens


async def test_store_content_keeps_prompt_and_answer(
    fake: FakeOpenAIServer, tmp_path: Path
) -> None:
    cache = {"enabled": True, "disk_path": str(tmp_path / "cache")}  # answers from hits too
    config = gateway_config(fake.base_url, tmp_path, ledger={"store_content": True}, cache=cache)
    app = create_app(config)
    async with app.gateway as gw:
        key, _ = await gw.keys.create("acme")
        auth = {"authorization": f"Bearer {key}"}
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            plain = await c.post(
                "/v1/chat/completions", json=chat_body("remember me"), headers=auth
            )
            streamed = await c.post(
                "/v1/chat/completions", json=chat_body("remember me", stream=True), headers=auth
            )
            again = await c.post(
                "/v1/chat/completions", json=chat_body("remember me"), headers=auth
            )
        assert again.headers["x-thrifty-cache"] == "hit" and again.json() == plain.json()
        for resp in (plain, streamed, again):
            row = await gw.request_record(resp.headers["x-thrifty-request-id"])
            assert row["content"]["request"]["messages"][0]["content"] == "remember me"
            assert row["content"]["response"] == plain.json()["choices"][0]["message"]["content"]
