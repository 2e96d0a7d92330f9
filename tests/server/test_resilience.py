"""Resilience through the real app: retries, failover across providers and models, circuit
breakers, load balancing, streams that fail before their first byte, admin health."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.support import ADMIN_KEY, chat_body, gateway_config
from thrifty.server.app import ThriftyApp, create_app
from thrifty.testing import FakeOpenAIServer, Latency

ADMIN = {"authorization": f"Bearer {ADMIN_KEY}"}


class Stack:
    def __init__(self, app: ThriftyApp, client: httpx.AsyncClient, key: str) -> None:
        self.app, self.client = app, client
        self.auth = {"authorization": f"Bearer {key}"}

    async def chat(self, model: str = "gpt-4o", **extra: Any) -> httpx.Response:
        return await self.client.post(
            "/v1/chat/completions", json=chat_body(model=model, **extra), headers=self.auth
        )

    async def row(self, resp: httpx.Response) -> dict[str, Any]:
        row = await self.app.gateway.request_record(resp.headers["x-thrifty-request-id"])
        assert row is not None
        return row


@pytest.fixture
async def fakes() -> AsyncIterator[tuple[FakeOpenAIServer, FakeOpenAIServer]]:
    primary, secondary = FakeOpenAIServer(), FakeOpenAIServer(latency=Latency(first_token_ms=5))
    await primary.start()
    await secondary.start()
    yield primary, secondary
    await primary.stop()
    await secondary.stop()


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Backoff waits, recorded instead of slept (behaviour, not wall-clock)."""
    waited: list[float] = []

    async def fake_sleep(delay: float) -> None:
        waited.append(delay)

    monkeypatch.setattr("thrifty.pipeline.dispatch.backoff_sleep", fake_sleep)
    return waited


async def make_stack(
    fakes: tuple[FakeOpenAIServer, FakeOpenAIServer], tmp_path: Path, **model_opts: Any
) -> AsyncIterator[Stack]:
    primary, secondary = fakes
    breaker = model_opts.pop("breaker", {})
    config = gateway_config(
        primary.base_url,
        tmp_path,
        providers={
            "primary": {"kind": "openai", "base_url": primary.base_url},
            "secondary": {"kind": "openai", "base_url": secondary.base_url},
        },
        models=[
            {
                "name": "gpt-4o",
                "deployments": [
                    {"provider": "primary", "model": "gpt-4o", **model_opts.pop("w1", {})},
                    {"provider": "secondary", "model": "gpt-4o", **model_opts.pop("w2", {})},
                ],
                **model_opts,
            },
            {"name": "solo", "provider": "primary", "model": "solo", "fallbacks": ["backup"]},
            {"name": "backup", "provider": "secondary", "model": "backup-model"},
        ],
        resilience={"breaker": {"consecutive_failures": 2, "recovery_timeout_s": 60, **breaker}},
    )
    app = create_app(config)
    async with app.gateway as gw:
        key, _ = await gw.keys.create("acme")
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            yield Stack(app, client, key)


@pytest.fixture
async def stack(fakes, tmp_path: Path) -> AsyncIterator[Stack]:
    async for s in make_stack(fakes, tmp_path):
        yield s


async def test_retry_then_fail_over_to_another_provider(stack: Stack, fakes, sleeps) -> None:
    primary, _secondary = fakes
    primary.set_fault("status=503")
    resp = await stack.chat()
    assert resp.status_code == 200
    row = await stack.row(resp)
    assert row["deployment"] == "secondary/gpt-4o" and row["provider"] == "secondary"
    assert row["attempts"] == 3
    assert [(a["deployment"], a["error"]) for a in row["fallback_path"]] == [
        ("primary/gpt-4o", "upstream_error"),
        ("primary/gpt-4o", "upstream_error"),
        ("secondary/gpt-4o", None),
    ]
    assert len(sleeps) == 1 and 0 <= sleeps[0] <= 0.1  # full jitter under backoff_base_s
    assert resp.headers["x-thrifty-attempts"] == "3"


async def test_retry_after_is_honoured(stack: Stack, fakes, sleeps) -> None:
    primary, _ = fakes
    primary.set_fault("status=429;retry_after=2", times=1)
    resp = await stack.chat()
    assert resp.status_code == 200
    assert sleeps == [2.0]
    row = await stack.row(resp)
    assert row["deployment"] == "primary/gpt-4o" and row["attempts"] == 2


async def test_long_retry_after_moves_on_instead_of_waiting(stack: Stack, fakes, sleeps) -> None:
    primary, _ = fakes
    primary.set_fault("status=429;retry_after=120")
    resp = await stack.chat()
    assert resp.status_code == 200 and sleeps == []
    assert (await stack.row(resp))["deployment"] == "secondary/gpt-4o"


async def test_caller_errors_are_not_retried(stack: Stack, fakes, sleeps) -> None:
    primary, secondary = fakes
    primary.set_fault("status=400;message=bad schema")
    secondary.clear()
    resp = await stack.chat()
    assert resp.status_code == 400
    assert (await stack.row(resp))["attempts"] == 1
    assert secondary.requests == [] and sleeps == []


async def test_fallback_to_another_model(stack: Stack, fakes, sleeps) -> None:
    primary, _ = fakes
    primary.set_fault("reset")
    resp = await stack.chat(model="solo")
    assert resp.status_code == 200
    assert resp.headers["x-thrifty-model"] == "backup"
    row = await stack.row(resp)
    assert row["requested_model"] == "solo" and row["served_model"] == "backup"
    assert (
        "solo" in resp.headers["x-thrifty-fallback"]
        and "backup" in resp.headers["x-thrifty-fallback"]
    )


async def test_breaker_opens_skips_and_recovers(fakes, tmp_path: Path, sleeps) -> None:
    primary, _secondary = fakes
    async for s in make_stack(fakes, tmp_path, breaker={"recovery_timeout_s": 0.2}):
        health = s.app.gateway.registry.health["primary/gpt-4o"]
        primary.set_fault("status=500")
        first = await s.chat()  # 2 failures in a row on primary: the breaker opens
        assert first.status_code == 200
        assert health.breaker.state == "open"
        primary.clear()
        skipped = await s.chat()
        assert primary.requests == []  # not even tried
        path = (await s.row(skipped))["fallback_path"]
        assert path[0] == {"deployment": "primary/gpt-4o", "error": "circuit_open", "ms": 0.0}
        metrics = (await s.client.get("/metrics")).text
        assert 'thrifty_circuit_state{deployment="primary/gpt-4o"} 2.0' in metrics
        # after the recovery timeout one probe goes through; it succeeds: closed again
        primary.set_fault(None)
        health.breaker.opened_at -= 1.0
        probe = await s.chat()
        assert (await s.row(probe))["deployment"] == "primary/gpt-4o"
        assert health.breaker.state == "closed"
        states = [state for _, state in health.breaker.transitions]
        assert states == ["open", "half_open", "closed"]


async def test_half_open_probe_failure_reopens(fakes, tmp_path: Path, sleeps) -> None:
    primary, _ = fakes
    async for s in make_stack(fakes, tmp_path):
        breaker = s.app.gateway.registry.health["primary/gpt-4o"].breaker
        primary.set_fault("status=500")
        await s.chat()
        breaker.opened_at -= 120
        await s.chat()
        assert [st for _, st in breaker.transitions] == ["open", "half_open", "open"]


async def test_failure_rate_threshold(fakes, tmp_path: Path, sleeps) -> None:
    primary, _ = fakes
    opts = {
        "breaker": {"consecutive_failures": 50, "failure_rate": 0.5, "min_calls": 6, "window": 6}
    }
    async for s in make_stack(fakes, tmp_path, **opts):
        breaker = s.app.gateway.registry.health["primary/gpt-4o"].breaker
        for i in range(4):  # alternate: every second request fails on primary (twice)
            primary.set_fault("status=500" if i % 2 else None)
            await s.chat()
        assert breaker.state == "open"


async def test_all_circuits_open_is_503(stack: Stack) -> None:
    for dep in ("primary/gpt-4o", "secondary/gpt-4o"):
        resp = await stack.client.post(
            f"/admin/deployments/{dep}/breaker", json={"state": "open"}, headers=ADMIN
        )
        assert resp.json()["breaker"] == "open"
    resp = await stack.chat()
    assert resp.status_code == 503
    assert resp.json()["error"]["code"] == "no_healthy_deployment"
    assert resp.headers["retry-after"]


async def test_admin_force_close_and_health(stack: Stack, fakes, sleeps) -> None:
    primary, _ = fakes
    await stack.client.post(
        "/admin/deployments/primary/gpt-4o/breaker", json={"state": "open"}, headers=ADMIN
    )
    primary.clear()
    await stack.chat()
    assert primary.requests == []
    await stack.client.post(
        "/admin/deployments/primary/gpt-4o/breaker", json={"state": "closed"}, headers=ADMIN
    )
    primary.set_fault("status=500")
    for _ in range(3):  # forced closed: failures do not open it
        await stack.chat()
    health = (await stack.client.get("/admin/health", headers=ADMIN)).json()
    by_id = {d["deployment"]: d for p in health["providers"] for d in p["deployments"]}
    assert by_id["primary/gpt-4o"]["breaker"] == "closed"
    assert by_id["primary/gpt-4o"]["forced"] == "closed"
    assert by_id["primary/gpt-4o"]["failures"] >= 3
    assert by_id["secondary/gpt-4o"]["latency_ewma_ms"] > 0
    reset = await stack.client.post(
        "/admin/deployments/primary/gpt-4o/breaker", json={"state": "reset"}, headers=ADMIN
    )
    assert reset.json()["forced"] is None
    bad = await stack.client.post(
        "/admin/deployments/primary/gpt-4o/breaker", json={"state": "ajar"}, headers=ADMIN
    )
    assert bad.status_code == 400
    missing = await stack.client.post(
        "/admin/deployments/nope/x/breaker", json={"state": "open"}, headers=ADMIN
    )
    assert missing.status_code == 404
    assert (await stack.client.get("/admin/health")).status_code == 401


async def test_stream_failing_before_first_byte_fails_over(stack: Stack, fakes, sleeps) -> None:
    primary, _ = fakes
    for fault in ("status=502", "malformed", "reset"):
        primary.set_fault(fault)
        resp = await stack.chat(stream=True)
        assert resp.status_code == 200, fault
        frames = [f[6:] for f in resp.text.strip().split("\n\n") if f.startswith("data: ")]
        assert frames[-1] == "[DONE]", fault
        text = "".join(
            (orjson.loads(f)["choices"] or [{}])[0].get("delta", {}).get("content") or ""
            for f in frames[:-1]
        )
        assert text, fault
        assert (await stack.row(resp))["deployment"] == "secondary/gpt-4o"
        primary.set_fault(None)
        s = stack.app.gateway.registry.health["primary/gpt-4o"].breaker
        s.force(None)


async def test_weighted_balancing(fakes, tmp_path: Path) -> None:
    async for s in make_stack(
        fakes, tmp_path, strategy="weighted", w1={"weight": 3}, w2={"weight": 1}
    ):
        served = Counter()
        for i in range(200):
            resp = await s.chat(messages=[{"role": "user", "content": f"q{i}"}])
            served[(await s.row(resp))["deployment"]] += 1
        share = served["primary/gpt-4o"] / 200
        assert 0.62 < share < 0.88  # 0.75 expected; binomial sd ≈ 0.03


async def test_lowest_latency_prefers_the_faster_deployment(fakes, tmp_path: Path) -> None:
    async for s in make_stack(fakes, tmp_path, strategy="lowest_latency"):
        # the secondary fake adds 5 ms before answering; after one call each, the primary wins
        served = Counter()
        for i in range(20):
            resp = await s.chat(messages=[{"role": "user", "content": f"q{i}"}])
            served[(await s.row(resp))["deployment"]] += 1
        assert served["primary/gpt-4o"] >= 17


async def test_least_busy_orders_by_in_flight(fakes, tmp_path: Path) -> None:
    async for s in make_stack(fakes, tmp_path, strategy="least_busy"):
        registry = s.app.gateway.registry
        registry.health["primary/gpt-4o"].in_flight = 5
        order = registry.candidates(registry.models["gpt-4o"])
        assert [d.id for d in order] == ["secondary/gpt-4o", "primary/gpt-4o"]


async def test_failover_to_another_model_keeps_the_requested_baseline(
    fakes, tmp_path: Path
) -> None:
    primary, secondary = fakes
    config = gateway_config(
        primary.base_url,
        tmp_path,
        providers={
            "primary": {"kind": "openai", "base_url": primary.base_url},
            "secondary": {"kind": "openai", "base_url": secondary.base_url},
        },
        models=[
            {
                "name": "gpt-4o",
                "provider": "primary",
                "model": "gpt-4o",
                "fallbacks": ["gpt-4o-mini"],
            },
            {"name": "gpt-4o-mini", "provider": "secondary", "model": "gpt-4o-mini"},
        ],
    )
    app = create_app(config)
    async with app.gateway as gw:
        key, _ = await gw.keys.create("acme")
        primary.set_fault("status=500")
        gw.chat_pipeline.stages[1]._retry = gw.config.resilience.retries.model_copy(
            update={"max_retries": 0}
        )
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            resp = await c.post(
                "/v1/chat/completions",
                json=chat_body(model="gpt-4o"),
                headers={"authorization": f"Bearer {key}"},
            )
        row = await gw.request_record(resp.headers["x-thrifty-request-id"])
        usage = resp.json()["usage"]
        mini = (usage["prompt_tokens"] * 0.15 + usage["completion_tokens"] * 0.60) / 1e6
        big = (usage["prompt_tokens"] * 2.50 + usage["completion_tokens"] * 10.0) / 1e6
        assert row["served_model"] == "gpt-4o-mini"
        assert row["cost_usd"] == pytest.approx(mini)
        assert row["baseline_cost_usd"] == pytest.approx(big)
        assert row["saved_usd"] == 0.0  # a failover is not a lever
