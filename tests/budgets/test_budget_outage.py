"""Redis outages in both failure modes: refused connections and a black hole (accepted, never
answered) must both end within the timeout; ``fail_closed`` refuses clearly, ``fail_open``
decides on local counters seeded from Redis, flags what it let through and replays the spend
once Redis answers again."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from tests.budgets.budget_support import CuttableProxy, spec
from tests.redisx import redis_prefix
from thrifty.budgets import BudgetStateUnavailable, FailurePolicy, RedisBudgetBackend
from thrifty.errors import ServiceUnavailableError

__all__ = ["redis_prefix"]


@pytest.fixture
async def proxy(redis_prefix: str) -> AsyncIterator[CuttableProxy]:
    p = CuttableProxy()
    await p.start()
    try:
        yield p
    finally:
        await p.stop()


async def test_refused_connection_fail_closed_is_a_clear_503() -> None:
    client = aioredis.from_url("redis://127.0.0.1:1/0")
    b = RedisBudgetBackend(client, "x", timeout_s=0.2, failure="fail_closed")
    started = time.perf_counter()
    with pytest.raises(BudgetStateUnavailable) as err:
        await b.reserve("r", [(spec("a"), "w")], 0.1, 0, 30)
    assert time.perf_counter() - started < 1
    assert isinstance(err.value, ServiceUnavailableError) and err.value.status == 503
    assert err.value.code == "budget_state_unavailable" and "fail_closed" in err.value.message
    with pytest.raises(BudgetStateUnavailable):
        await b.usage(spec("a"), "w")
    await client.aclose()


async def test_black_hole_never_hangs_and_cooldown_skips_redis(proxy: CuttableProxy) -> None:
    proxy.cut()
    client = aioredis.from_url(proxy.url)
    b = RedisBudgetBackend(client, "x", timeout_s=0.2, failure="fail_closed", cooldown_s=5)
    started = time.perf_counter()
    with pytest.raises(BudgetStateUnavailable):
        await b.reserve("r", [(spec("a"), "w")], 0.1, 0, 30)
    assert 0.15 < time.perf_counter() - started < 1.0
    started = time.perf_counter()
    results = await asyncio.gather(
        *(b.reserve(f"q{i}", [(spec("a"), "w")], 0.1, 0, 30) for i in range(50)),
        return_exceptions=True,
    )
    assert all(isinstance(r, BudgetStateUnavailable) for r in results)
    assert time.perf_counter() - started < 0.1  # in cooldown: no request waits on Redis
    await client.aclose()


async def test_fail_open_uses_seeded_local_counters_and_replays(
    proxy: CuttableProxy, redis_prefix: str
) -> None:
    client = aioredis.from_url(proxy.url)
    b = RedisBudgetBackend(
        client, redis_prefix, timeout_s=0.2, failure=FailurePolicy.FAIL_OPEN, cooldown_s=0.05
    )
    a = spec("a", limit_usd=1.0)
    refs = [(a, "w")]
    r = await b.reserve("before", refs, 0.6, 0, 30)
    assert r.ok and not r.flagged
    await b.settle("before", 0.6, 0)
    assert (await b.reserve("seen", refs, 0.1, 0, 30)).ok  # last seen in Redis: 0.7 used

    proxy.cut()
    r = await b.reserve("during", refs, 0.25, 0, 30)
    assert r.ok and r.flagged  # local counters: 0.7 seeded + 0.25 fits under 1.0
    refused = await b.reserve("too-much", refs, 0.1, 0, 30)
    assert not refused.ok and refused.flagged  # the local counters still enforce the limit
    s = await b.settle("during", 0.2, 0)
    assert s.status == "settled" and s.flagged and s.actual_micros == 200_000
    u = await b.usage(a, "w")  # fail_open reads the local view
    assert u.spent_micros == 900_000

    proxy.restore()
    await asyncio.sleep(0.1)  # past the cooldown
    u = await b.usage(a, "w")  # the first call back replays the local spend
    assert (u.spent_micros, u.reserved_micros) == (800_000, 100_000)
    s = await b.settle("seen", 0.1, 0)
    assert s.status == "settled" and not s.flagged
    assert (await b.usage(a, "w")).spent_micros == 900_000
    await client.aclose()


async def test_fail_open_settle_of_a_redis_reservation_is_recorded_locally(
    proxy: CuttableProxy, redis_prefix: str
) -> None:
    client = aioredis.from_url(proxy.url)
    b = RedisBudgetBackend(
        client, redis_prefix, timeout_s=0.2, failure="fail_open", cooldown_s=0.05
    )
    a = spec("a", limit_usd=1.0)
    assert (await b.reserve("r", [(a, "w")], 0.5, 0, 0.3)).ok
    proxy.cut()
    s = await b.settle("r", 0.4, 0)
    assert s.flagged and s.status == "settled"
    proxy.restore()
    await asyncio.sleep(0.4)  # the Redis reservation expires; the replay records the spend
    u = await b.usage(a, "w")
    assert (u.spent_micros, u.reserved_micros) == (400_000, 0)
    await client.aclose()


async def test_fail_closed_settle_raises_while_down(
    proxy: CuttableProxy, redis_prefix: str
) -> None:
    client = aioredis.from_url(proxy.url)
    b = RedisBudgetBackend(client, redis_prefix, timeout_s=0.2, cooldown_s=0.05)
    assert (await b.reserve("r", [(spec("a"), "w")], 0.5, 0, 30)).ok
    proxy.cut()
    with pytest.raises(BudgetStateUnavailable):
        await b.settle("r", 0.4, 0)
    await client.aclose()
