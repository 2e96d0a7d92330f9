"""The S3-compatible warm tier against a real S3 API server (moto's, on loopback): entries
survive a restart of the gateway, replicas share them, invalidation removes them, expiry holds."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
import redis.asyncio as aioredis

from tests.cache.conftest import cache_stack
from tests.redisx import redis_prefix, redis_url
from tests.support import ADMIN_KEY
from thrifty.testing import FakeOpenAIServer

__all__ = ["redis_prefix"]


@pytest.fixture
def s3() -> Iterator[dict[str, str]]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    creds = {"aws_access_key_id": "test", "aws_secret_access_key": "test"}
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", **creds).create_bucket(
        Bucket="cache"
    )
    yield {
        "bucket": "cache",
        "endpoint_url": endpoint,
        "access_key_id": "test",
        "secret_access_key": "test",
    }
    server.stop()


async def test_s3_tier(fake: FakeOpenAIServer, tmp_path: Path, s3: dict[str, str]) -> None:
    async with cache_stack(fake, tmp_path / "a", s3=s3) as a:
        first = await a.chat()
        await a.app.gateway.cache.flush()
    async with cache_stack(fake, tmp_path / "b", s3=s3) as b:  # another replica, or a restart
        hit = await b.chat()
        assert hit.headers["x-thrifty-cache"] == "hit"
        assert "cache_tier:s3" in (await b.row(hit))["flags"]
        assert hit.json()["choices"] == first.json()["choices"]
        stats = (
            await b.client.get(
                "/admin/cache/stats", headers={"authorization": f"Bearer {ADMIN_KEY}"}
            )
        ).json()
        assert stats["tiers"]["s3"]["entries"] == 1
        gone = await b.client.post(
            "/admin/cache/invalidate",
            json={"tenant": "acme"},
            headers={"authorization": f"Bearer {ADMIN_KEY}"},
        )
        assert gone.json()["invalidated"] >= 1
    async with cache_stack(fake, tmp_path / "c", s3=s3, ttl_s=0.5) as c:
        assert (await c.chat()).headers["x-thrifty-cache"] == "miss"
        await c.app.gateway.cache.flush()
    await asyncio.sleep(0.7)
    async with cache_stack(fake, tmp_path / "d", s3=s3) as d:
        assert (await d.chat()).headers["x-thrifty-cache"] == "miss"  # expired in S3


async def test_memory_redis_and_s3_chain(
    fake: FakeOpenAIServer, tmp_path: Path, s3: dict[str, str], redis_prefix: str
) -> None:
    """With Redis and S3 both configured the tiers chain: an entry Redis no longer holds
    (evicted there, say) is still found in S3, and promoted."""
    redis = {"url": redis_url(), "prefix": redis_prefix}
    async with cache_stack(fake, tmp_path / "a", s3=s3, redis=redis) as a:
        assert [t.name for t in a.app.gateway.cache.tiers] == ["memory", "redis", "s3"]
        first = await a.chat()
        await a.app.gateway.cache.flush()
    client = aioredis.from_url(redis_url())
    try:
        async for key in client.scan_iter(match=f"{redis_prefix}:*"):
            await client.delete(key)  # Redis lost it
    finally:
        await client.aclose()
    async with cache_stack(fake, tmp_path / "b", s3=s3, redis=redis) as b:
        hit = await b.chat()
        assert hit.headers["x-thrifty-cache"] == "hit"
        assert "cache_tier:s3" in (await b.row(hit))["flags"]
        assert hit.json()["choices"] == first.json()["choices"]
