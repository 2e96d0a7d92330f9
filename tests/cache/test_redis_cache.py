"""The Redis tier against the real Redis: two gateways (two replicas) share entries, an
invalidation on one reaches the other's memory tier, and coalescing spans replicas."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.cache.conftest import cache_stack
from tests.redisx import redis_prefix, redis_url
from tests.support import ADMIN_KEY, chat_body
from thrifty.testing import FakeOpenAIServer, Latency

__all__ = ["redis_prefix"]
ADMIN = {"authorization": f"Bearer {ADMIN_KEY}"}


def _redis(prefix: str) -> dict[str, str]:
    return {"url": redis_url(), "prefix": prefix}


async def test_replicas_share_the_redis_tier_and_invalidations(
    fake: FakeOpenAIServer, tmp_path: Path, redis_prefix: str
) -> None:
    async with (
        cache_stack(fake, tmp_path / "a", redis=_redis(redis_prefix)) as a,
        cache_stack(fake, tmp_path / "b", redis=_redis(redis_prefix)) as b,
    ):
        # Same database for keys: give replica b the same tenant key as a.
        first = await a.chat()
        await a.app.gateway.cache.flush()
        hit = await b.chat()
        assert hit.headers["x-thrifty-cache"] == "hit"
        assert "cache_tier:redis" in (await b.row(hit))["flags"]
        assert hit.json()["choices"] == first.json()["choices"]
        assert (await b.chat()).headers["x-thrifty-cache"] == "hit"  # now in b's memory too
        await asyncio.sleep(0.2)  # both listeners subscribed
        r = await a.client.post("/admin/cache/invalidate", json={"tenant": "acme"}, headers=ADMIN)
        assert r.json()["invalidated"] >= 1
        for _ in range(50):  # pub/sub is asynchronous
            if not b.app.gateway.cache.memory._data:
                break
            await asyncio.sleep(0.02)
        assert (await b.chat()).headers["x-thrifty-cache"] == "miss"


async def test_coalescing_across_replicas(
    fake: FakeOpenAIServer, tmp_path: Path, redis_prefix: str
) -> None:
    fake.latency = Latency(first_token_ms=300)
    async with (
        cache_stack(fake, tmp_path / "a", redis=_redis(redis_prefix)) as a,
        cache_stack(fake, tmp_path / "b", redis=_redis(redis_prefix)) as b,
    ):
        body = chat_body("asked everywhere at once")
        results = await asyncio.gather(*(s.chat(body) for s in (a, b, a, b, b, a)))
        assert all(r.status_code == 200 for r in results)
        calls = a.upstream_calls()
        assert calls == 1, calls
        contents = {r.json()["choices"][0]["message"]["content"] for r in results}
        assert len(contents) == 1


async def test_redis_outage_is_a_miss_not_an_error(fake: FakeOpenAIServer, tmp_path: Path) -> None:
    dead = {"url": "redis://127.0.0.1:1/0", "prefix": "x", "timeout_s": 0.2}
    async with cache_stack(fake, tmp_path, redis=dead) as s:
        first = await s.chat()
        assert first.status_code == 200 and first.headers["x-thrifty-cache"] == "miss"
        assert (await s.chat()).headers["x-thrifty-cache"] == "hit"  # the memory tier still works
    pytest.importorskip("redis")
