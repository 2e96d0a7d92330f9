"""Real Redis for tests (importable as ``tests.redisx``): a unique key prefix per test, cleaned
afterwards. Unreachable Redis skips the test with the reason, except under CI (``CI`` set to
1/true/yes), where it fails loudly."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from tests.support import in_ci

DEFAULT_URL = "redis://127.0.0.1:6379/0"


def redis_url() -> str:
    return os.environ.get("THRIFTY_TEST_REDIS_URL") or DEFAULT_URL


@pytest.fixture
async def redis_prefix() -> AsyncIterator[str]:
    """A fresh key prefix on the real Redis; every key under it is deleted afterwards."""
    client = aioredis.from_url(redis_url())
    try:
        await client.ping()
    except Exception as exc:
        await client.aclose()
        reason = f"Redis at {redis_url()} is unreachable: {exc!r}"
        if in_ci():
            pytest.fail(f"CI requires the real Redis: {reason}")
        pytest.skip(reason)
    prefix = f"thrifty-test-{uuid.uuid4().hex[:12]}"
    try:
        yield prefix
    finally:
        async for key in client.scan_iter(match=f"{prefix}:*", count=500):
            await client.delete(key)
        await client.aclose()
