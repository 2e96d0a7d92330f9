"""GCRA rate limits (in-process with a controllable clock, and shared through the real Redis)
and provider quotas learned from OpenAI- and Anthropic-style rate-limit headers."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
import redis.asyncio as aioredis

from tests.budgets.budget_support import CuttableProxy
from tests.redisx import redis_prefix, redis_url
from thrifty.budgets import (
    BudgetStateUnavailable,
    InProcessRateLimiter,
    QuotaTracker,
    Rate,
    RedisRateLimiter,
    parse_go_duration,
)
from thrifty.budgets.quota import parse_rate_limit_headers

__all__ = ["redis_prefix"]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_gcra_requests_per_minute() -> None:
    clock = Clock()
    rl = InProcessRateLimiter(Rate(3, 60), clock=clock)
    decisions = [await rl.check("key:a") for _ in range(3)]
    assert all(d.allowed for d in decisions) and [d.remaining for d in decisions] == [2, 1, 0]
    denied = await rl.check("key:a")
    assert not denied.allowed and denied.retry_after_s == pytest.approx(20)
    assert (await rl.check("key:b")).allowed  # subjects are independent
    clock.now += 19.9
    assert not (await rl.check("key:a")).allowed
    clock.now += 0.1
    assert (await rl.check("key:a")).allowed
    clock.now += 60
    assert (await rl.check("key:a")).remaining == 2  # full again


async def test_gcra_tokens_per_minute_with_charge_and_refund() -> None:
    clock = Clock()
    rl = InProcessRateLimiter(clock=clock)
    tpm = Rate(1000, 60)
    assert (await rl.check("tenant:t", 600, tpm)).allowed
    d = await rl.check("tenant:t", 600, tpm)
    assert not d.allowed and d.retry_after_s == pytest.approx(12) and d.remaining == 400
    await rl.charge("tenant:t", -500, tpm)  # the request used 100 tokens, not 600
    assert (await rl.check("tenant:t", 600, tpm)).allowed
    d = await rl.check("tenant:t", 1001, tpm)
    assert not d.allowed and d.impossible and d.retry_after_s == 60
    with pytest.raises(ValueError):
        Rate(0)


async def test_redis_gcra_is_shared_between_replicas(redis_prefix: str) -> None:
    c1, c2 = aioredis.from_url(redis_url()), aioredis.from_url(redis_url())
    try:
        a = RedisRateLimiter(c1, redis_prefix, Rate(5, 60), timeout_s=2)
        b = RedisRateLimiter(c2, redis_prefix, Rate(5, 60), timeout_s=2)
        results = await asyncio.gather(*(x.check("key:k") for x in (a, b) * 5))
        assert sum(d.allowed for d in results) == 5
        denied = [d for d in results if not d.allowed]
        assert all(11 < d.retry_after_s <= 12.01 for d in denied)
        assert not any(d.flagged for d in results)
        tpm = Rate(1000, 60)
        assert (await a.check("tok", 900, tpm)).allowed
        assert not (await b.check("tok", 200, tpm)).allowed
        await b.charge("tok", -500, tpm)
        assert (await a.check("tok", 200, tpm)).allowed
        assert (await a.check("tok", 5000, tpm)).impossible
    finally:
        await c1.aclose()
        await c2.aclose()


async def test_redis_rate_limiter_outage() -> None:
    proxy = CuttableProxy()
    await proxy.start()
    proxy.cut()
    client = aioredis.from_url(proxy.url)
    try:
        open_rl = RedisRateLimiter(client, "x", Rate(2, 60), timeout_s=0.2)
        d = await open_rl.check("key:k")
        assert d.allowed and d.flagged  # fail_open: the local limiter decides
        await open_rl.check("key:k")
        assert not (await open_rl.check("key:k")).allowed  # ... and still limits
        closed = RedisRateLimiter(client, "x", Rate(2, 60), timeout_s=0.2, failure="fail_closed")
        with pytest.raises(BudgetStateUnavailable):
            await closed.check("key:k")
    finally:
        await client.aclose()
        await proxy.stop()


def test_go_durations() -> None:
    cases = {"1s": 1, "6m0s": 360, "12ms": 0.012, "1h2m3.5s": 3723.5, "0s": 0, "2.5": 2.5,
             "150us": 0.00015, "20µs": 0.00002, "7m12.5s": 432.5, "0": 0}  # fmt: skip
    for text, seconds in cases.items():
        assert parse_go_duration(text) == pytest.approx(seconds), text
    for text in ("", "abc", "1x", "s", "1s garbage", "ms1"):
        assert parse_go_duration(text) is None, text


def test_parse_openai_and_anthropic_headers() -> None:
    openai = {
        "X-RateLimit-Limit-Requests": "10000",
        "X-RateLimit-Remaining-Requests": "9990",
        "X-RateLimit-Reset-Requests": "6m0s",
        "x-ratelimit-limit-tokens": "2000000",
        "x-ratelimit-remaining-tokens": "1999000",
        "x-ratelimit-reset-tokens": "12ms",
    }
    parsed = parse_rate_limit_headers(openai, now=100.0)
    assert parsed["requests"] == (10000, 9990, 460.0)
    assert parsed["tokens"] == (2_000_000, 1_999_000, pytest.approx(100.012))
    reset = "2024-06-01T12:00:30Z"
    anthropic = [
        ("anthropic-ratelimit-requests-limit", "50"),
        ("anthropic-ratelimit-requests-remaining", "4"),
        ("anthropic-ratelimit-requests-reset", reset),
        ("anthropic-ratelimit-input-tokens-limit", "40000"),
        ("anthropic-ratelimit-input-tokens-remaining", "39000"),
        ("anthropic-ratelimit-output-tokens-limit", "8000"),
        ("anthropic-ratelimit-output-tokens-remaining", "8000"),
    ]
    parsed = parse_rate_limit_headers(anthropic, now=0)
    ts = datetime(2024, 6, 1, 12, 0, 30, tzinfo=UTC).timestamp()
    assert parsed == {
        "requests": (50, 4, ts),
        "input_tokens": (40000, 39000, None),
        "output_tokens": (8000, 8000, None),
    }
    assert parse_rate_limit_headers({"content-type": "application/json"}) == {}


def test_quota_tracker_crossings_fire_once_per_window() -> None:
    clock = Clock()
    q = QuotaTracker(clock=clock)

    def hdrs(remaining: int, reset: str = "30s") -> dict[str, str]:
        return {"x-ratelimit-limit-requests": "100", "x-ratelimit-remaining-requests": str(remaining),
                "x-ratelimit-reset-requests": reset}  # fmt: skip

    assert q.observe("openai/gpt-4o", hdrs(50)) == []
    assert q.utilisation("openai/gpt-4o") == {"requests": 0.5}
    events = q.observe("openai/gpt-4o", hdrs(10))
    assert [(e.level, e.utilisation) for e in events] == [("warning", 0.9)]
    assert q.observe("openai/gpt-4o", hdrs(8)) == []  # still warning: once
    events = q.observe("openai/gpt-4o", hdrs(5))
    assert [e.level for e in events] == ["critical"]
    assert q.observe("openai/gpt-4o", hdrs(1)) == []
    assert q.observe("openai/gpt-4o", hdrs(10)) == []  # no downgrade event
    # The provider's window resets: utilisation drops and the levels re-arm.
    assert q.observe("openai/gpt-4o", hdrs(99)) == []
    assert [e.level for e in q.observe("openai/gpt-4o", hdrs(3))] == ["critical"]
    # Straight to critical fires critical only; other deployments are separate.
    assert [e.deployment for e in q.observe("azure/eu", hdrs(2))] == ["azure/eu"]
    assert q.deployments() == ["azure/eu", "openai/gpt-4o"]


def test_quota_reuses_the_last_limit_and_forgets_past_resets() -> None:
    clock = Clock()
    q = QuotaTracker(clock=clock)
    q.observe("azure/x", {"x-ratelimit-limit-tokens": "1000", "x-ratelimit-remaining-tokens": "900",
                          "x-ratelimit-reset-tokens": "10s"})  # fmt: skip
    events = q.observe("azure/x", {"x-ratelimit-remaining-tokens": "40"})  # no limit header
    assert [(e.kind, e.level, e.limit) for e in events] == [("tokens", "critical", 1000)]
    assert q.observe("nolimit", {"x-ratelimit-remaining-tokens": "40"}) == []
    q.observe("azure/x", {"x-ratelimit-remaining-tokens": "40", "x-ratelimit-reset-tokens": "5s"})
    assert q.max_utilisation("azure/x") == pytest.approx(0.96)
    clock.now += 5
    w = q.window("azure/x", "tokens")
    assert w is not None and w.remaining == 1000 and w.utilisation == 0
    assert q.max_utilisation("unknown") == 0.0
