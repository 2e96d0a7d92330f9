"""The semantic index kept in Redis and searched there, against a real Redis Stack server
(``tests.redis_stack``): partitions never mix, entries expire with their answers, replicas share
one index without copies, the guard still rejects near-misses, and the mode is chosen by what
the server can do."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import redis.asyncio as aioredis

from tests.cache.conftest import CacheStack, cache_stack
from tests.redis_stack import redis_stack_url
from tests.redisx import redis_prefix, redis_url
from tests.support import chat_body
from thrifty.cache.embedder import MODEL_ID
from thrifty.cache.semantic.redis_search import RedisVectorIndex, has_vector_search
from thrifty.errors import ConfigError
from thrifty.testing import FakeOpenAIServer

__all__ = ["redis_prefix", "redis_stack_url"]
SEMANTIC = {"enabled": True, "threshold": 0.92}


def unit(seed: int, dim: int = 384) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal(dim).astype(np.float32)
    return v / np.linalg.norm(v)


def near(v: np.ndarray, seed: int, noise: float) -> np.ndarray:
    w = v + noise * unit(seed, v.shape[0])
    return w / np.linalg.norm(w)


@pytest.fixture(params=[2, 3], ids=["resp2", "resp3"])
async def index(request: pytest.FixtureRequest, redis_stack_url: str) -> AsyncIterator[Any]:
    client = aioredis.from_url(redis_stack_url, protocol=request.param)
    prefix = f"thrifty-test-{uuid.uuid4().hex[:12]}"
    idx = RedisVectorIndex(client, prefix, "test-model", 384)
    await idx.ensure()
    await idx.ensure()  # another replica creating it too: not an error
    try:
        yield idx
    finally:
        await client.execute_command("FT.DROPINDEX", idx.name, "DD")
        await client.aclose()


async def test_search_ranks_within_the_partition_only(index: RedisVectorIndex) -> None:
    q = unit(1)
    await index.add("t:acme|gpt-4o|ctx|p", "k-close", near(q, 2, 0.1), "close", 60)
    await index.add("t:acme|gpt-4o|ctx|p", "k-far", unit(3), "far", 60)
    await index.add("t:other|gpt-4o|ctx|p", "k-other", q, "the same vector, another tenant", 60)
    hits = await index.search("t:acme|gpt-4o|ctx|p", q, 3, min_score=-1.0)
    assert [h.key for h in hits] == ["k-close", "k-far"]
    assert hits[0].score == pytest.approx(float(q @ near(q, 2, 0.1)), abs=1e-5)
    assert hits[0].meta == {"text": "close"}
    assert [h.key for h in await index.search("t:acme|gpt-4o|ctx|p", q, 3, min_score=0.9)] == [
        "k-close"
    ]
    assert await index.search("t:nobody|gpt-4o|ctx|p", q, 3, min_score=-1.0) == []
    assert await index.count() == 3
    await index.remove("k-close")
    assert [h.key for h in await index.search("t:acme|gpt-4o|ctx|p", q, 3, min_score=-1)] == [
        "k-far"
    ]


async def test_entries_expire_with_their_answers(index: RedisVectorIndex) -> None:
    await index.add("part", "k", unit(1), "text", 0.2)
    assert [h.key for h in await index.search("part", unit(1), 1, min_score=0.5)] == ["k"]
    await asyncio.sleep(0.4)
    assert await index.search("part", unit(1), 1, min_score=0.5) == []


async def test_a_vector_of_another_dimension_is_refused(index: RedisVectorIndex) -> None:
    with pytest.raises(ValueError, match="dimension"):
        await index.add("part", "k", np.ones(10), "text", 60)


async def test_only_servers_with_search_are_detected(redis_stack_url: str) -> None:
    stack, plain = aioredis.from_url(redis_stack_url), aioredis.from_url(redis_url())
    try:
        assert await has_vector_search(stack)
        assert not await has_vector_search(plain)
    finally:
        await stack.aclose()
        await plain.aclose()


async def ask(s: CacheStack, text: str, tenant: str = "acme") -> str:
    resp = await s.chat(chat_body(text), tenant=tenant)
    assert resp.status_code == 200, resp.text
    return resp.headers["x-thrifty-cache"]


async def stored(s: CacheStack, n: int) -> None:
    """Wait for the stage's background write of ``n`` entries to reach Redis."""
    shared = s.app.gateway.semantic.shared
    for _ in range(100):
        if await shared.count() >= n:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"{n} semantic entries never reached Redis")


@asynccontextmanager
async def searched(
    fake: FakeOpenAIServer, tmp_path: Path, url: str, prefix: str | None = None
) -> AsyncIterator[CacheStack]:
    """A gateway whose semantic index lives in the Redis Stack at ``url``; dropped after."""
    redis = {"url": url, "prefix": prefix or f"thrifty-test-{uuid.uuid4().hex[:12]}"}
    async with cache_stack(fake, tmp_path, redis=redis, semantic=SEMANTIC) as s:
        try:
            yield s
        finally:
            with contextlib.suppress(Exception):  # a replica sharing it may have dropped it
                name = s.app.gateway.semantic.shared.name
                await s.app.gateway.redis.execute_command("FT.DROPINDEX", name, "DD")


async def test_replicas_search_one_index_in_redis(
    fake: FakeOpenAIServer, tmp_path: Path, redis_stack_url: str
) -> None:
    prefix = f"thrifty-test-{uuid.uuid4().hex[:12]}"
    async with (
        searched(fake, tmp_path / "a", redis_stack_url, prefix) as a,
        searched(fake, tmp_path / "b", redis_stack_url, prefix) as b,
    ):
        stage_a, stage_b = a.app.gateway.semantic, b.app.gateway.semantic
        assert stage_a.shared is not None and stage_b.shared is not None
        assert stage_a.shared.name == f"{prefix}:semantic:{MODEL_ID}:idx"
        assert await ask(a, "How do I reset my password?") == "miss"
        await stored(a, 1)
        assert await ask(b, "What's the way to reset my password?") == "semantic"
        # another tenant never gets the entry, and the guard still rejects a near-miss
        assert await ask(b, "What's the way to reset my password?", tenant="other") == "miss"
        await ask(a, "How do I turn on dark mode?")
        await stored(a, 2)
        opposite = await b.chat(chat_body("How do I turn off dark mode?"))
        assert opposite.headers["x-thrifty-cache"] == "miss"
        assert "semantic_rejected:polarity" in (await b.row(opposite))["flags"]
        assert len(stage_a.index) == len(stage_b.index) == 0  # no copies in the replicas
        row = await b.row(await b.chat(chat_body("How can I reset my password?")))
        assert row["cache_status"] == "semantic" and row["cache_similarity"] >= 0.92
        client = a.app.gateway.redis
        docs = [k async for k in client.scan_iter(match=f"{stage_a.shared.doc_prefix}*")]
        ttls = [await client.pttl(d) for d in docs]
        assert ttls and all(0 < t <= 3_600_000 for t in ttls)  # the answers' 1 h TTL


@pytest.fixture
async def answered(
    fake: FakeOpenAIServer, tmp_path: Path, redis_stack_url: str
) -> AsyncIterator[CacheStack]:
    """A gateway searching its index in Redis, with one answer stored and indexed."""
    async with searched(fake, tmp_path, redis_stack_url) as s:
        await ask(s, "How do I reset my password?")
        await stored(s, 1)
        yield s


async def test_an_invalidated_answer_is_no_semantic_hit(answered: CacheStack) -> None:
    s = answered
    await s.app.gateway.cache.invalidate({"all": "1"})
    assert await ask(s, "What's the way to reset my password?") == "miss"
    await stored(s, 1)
    await asyncio.sleep(0.05)
    assert await s.app.gateway.semantic.shared.count() == 1  # the stale entry was removed


async def test_the_mode_follows_config_and_server(
    fake: FakeOpenAIServer, tmp_path: Path, redis_stack_url: str, redis_prefix: str
) -> None:
    stack = {"url": redis_stack_url, "prefix": redis_prefix}
    pubsub = {**SEMANTIC, "redis_index": "pubsub"}
    async with cache_stack(fake, tmp_path / "a", redis=stack, semantic=pubsub) as s:
        assert s.app.gateway.semantic.shared is None  # replicated, though the server could search
    plain = {"url": redis_url(), "prefix": redis_prefix}
    async with cache_stack(fake, tmp_path / "b", redis=plain, semantic=SEMANTIC) as s:
        assert s.app.gateway.semantic.shared is None  # auto: the plain server cannot search
    search = {**SEMANTIC, "redis_index": "search"}
    with pytest.raises(ConfigError, match="no vector search"):
        async with cache_stack(fake, tmp_path / "c", redis=plain, semantic=search):
            pass


async def test_an_unreachable_index_is_a_miss_not_an_error(answered: CacheStack) -> None:
    s = answered
    shared = s.app.gateway.semantic.shared
    await s.app.gateway.redis.execute_command("FT.DROPINDEX", shared.name, "DD")
    resp = await s.chat(chat_body("What's the way to reset my password?"))
    assert resp.status_code == 200 and resp.headers["x-thrifty-cache"] == "miss"
    assert "semantic_unavailable" in (await s.row(resp))["flags"]
    assert s.upstream_calls() == 2
    # the index was recreated: the answer just stored is found again
    await stored(s, 1)
    assert await ask(s, "How can I reset my password?") == "semantic"
