"""Edges of the tiered cache: entries the memory tier refuses, deletes racing the write-back
disk tier's queued and in-flight writes, and the offline CLI opening the gateway's tiers."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
import typer
from typer.testing import CliRunner

from tests.redisx import redis_prefix, redis_url
from thrifty.cache.stores import DiskStore, MemoryStore
from thrifty.cache.tiered import TieredCache
from thrifty.cli import cache_ops
from thrifty.config import CacheConfig, RedisConfig

__all__ = ["redis_prefix"]

META = {"tenant": "acme", "model": "gpt-4o-mini"}
SMALL = b"s" * 1_000
BIG = b"b" * 5_000
ONE_SMALL = 2_000  # a memory tier that holds one small entry and no big one


@asynccontextmanager
async def tiered(path: Path, memory_max_bytes: int) -> AsyncIterator[TieredCache]:
    config = CacheConfig(memory_max_bytes=memory_max_bytes, disk_path=str(path))
    cache = TieredCache(config, RedisConfig())
    await cache.start()
    try:
        yield cache
    finally:
        await cache.aclose()


# -- 1. entries the memory tier refuses -----------------------------------------------------
@pytest.mark.parametrize("memory_max_bytes", [0, ONE_SMALL])
async def test_an_entry_the_memory_tier_refuses_is_written_to_disk(
    tmp_path: Path, memory_max_bytes: int
) -> None:
    async with tiered(tmp_path, memory_max_bytes) as cache:
        cache.put("big", BIG, 60, META)
        assert cache.memory.get_now("big") is None
        assert await cache.get("big") == (BIG, "disk")  # served while its write is queued
        await cache.flush()
        assert await cache.get("big") == (BIG, "disk")
    async with tiered(tmp_path, memory_max_bytes) as cache:  # and after a restart
        assert await cache.get("big") == (BIG, "disk")


async def test_a_refresh_the_memory_tier_refuses_drops_the_old_value(tmp_path: Path) -> None:
    store = MemoryStore(ONE_SMALL)
    assert store.set_now("k", SMALL, 60, META)
    assert not store.set_now("k", BIG, 60, META)
    assert store.get_now("k") is None and store.bytes == 0
    async with tiered(tmp_path, ONE_SMALL) as cache:
        cache.put("k", SMALL, 60, META)
        cache.put("k", BIG, 60, META)
        assert await cache.get("k") == (BIG, "disk")
    async with tiered(tmp_path, ONE_SMALL) as cache:
        assert await cache.get("k") == (BIG, "disk")


# -- 2. a delete wins over the write-back tier's earlier writes ------------------------------
@pytest.mark.parametrize("how", ["evicted", "refused"])
async def test_an_invalidation_wins_over_a_queued_write_across_a_restart(
    tmp_path: Path, how: str
) -> None:
    async with tiered(tmp_path, ONE_SMALL) as cache:
        cache.put("gone", SMALL if how == "evicted" else BIG, 60, META)
        cache.put("kept", SMALL, 60, META)  # evicts "gone" to the disk tier
        assert await cache.invalidate({"key": "gone"}) == 1
        assert await cache.get("gone") is None
    async with tiered(tmp_path, ONE_SMALL) as cache:
        assert await cache.get("gone") is None
        assert await cache.get("kept") == (SMALL, "disk")


async def test_a_delete_waits_for_the_write_in_flight(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = DiskStore(str(tmp_path))
    started, release = threading.Event(), threading.Event()
    commit = store._write_batch

    def slow_commit(batch: Any) -> None:
        started.set()
        release.wait(5)
        commit(batch)

    monkeypatch.setattr(store, "_write_batch", slow_commit)
    await store.set("k", SMALL, 60, META)
    assert await asyncio.to_thread(started.wait, 5)  # the batch holding "k" is in flight
    deleting = asyncio.create_task(store.delete("k"))
    await asyncio.sleep(0.05)
    assert await store.get("k") is None
    release.set()
    assert await deleting
    await store.aclose()
    reopened = DiskStore(str(tmp_path))
    try:
        assert await reopened.get("k") is None
    finally:
        await reopened.aclose()


async def test_a_write_after_a_delete_wins(tmp_path: Path) -> None:
    store = DiskStore(str(tmp_path))
    await store.set("k", SMALL, 60, META)
    deleting = asyncio.create_task(store.delete("k"))
    await asyncio.sleep(0)
    await store.set("k", BIG, 60, META)
    assert await deleting
    await store.aclose()
    reopened = DiskStore(str(tmp_path))
    try:
        assert await reopened.get("k") == (BIG, META)
    finally:
        await reopened.aclose()


async def test_an_invalidation_wins_over_a_pending_redis_write(redis_prefix: str) -> None:
    client = aioredis.from_url(redis_url())
    cache = TieredCache(CacheConfig(), RedisConfig(url=redis_url(), prefix=redis_prefix), client)
    await cache.start()
    try:
        for i in range(20):
            cache.put(f"k{i}", SMALL, 60, META)
            await cache.invalidate({"key": f"k{i}"})
        await cache.flush()
        assert [k async for k in client.scan_iter(match=f"{redis_prefix}:cache:*")] == []
    finally:
        await cache.aclose()
        await client.aclose()


# -- 3. the offline CLI opens the tiers the gateway would ------------------------------------
async def test_the_offline_cli_uses_redis_when_the_config_names_it(
    tmp_path: Path, redis_prefix: str
) -> None:
    cfg = tmp_path / "thrifty.yaml"
    cfg.write_text(
        f"database: {{url: 'sqlite:///{tmp_path / 't.db'}'}}\n"
        f"redis: {{url: '{redis_url()}', prefix: '{redis_prefix}'}}\n"
        f"cache: {{disk_path: '{tmp_path / 'cache'}'}}\n"
        "providers: {fake: {kind: fake}}\n"
        "models: [{name: gpt-4o-mini, provider: fake}]\n"
    )
    client = aioredis.from_url(redis_url())
    redis_config = RedisConfig(url=redis_url(), prefix=redis_prefix)
    writer = TieredCache(CacheConfig(disk_path=str(tmp_path / "cache")), redis_config, client)
    await writer.start()
    writer.put("a", SMALL, 60, META)
    writer.put("b", SMALL, 60, {**META, "tenant": "other"})
    await writer.aclose()
    await client.aclose()

    app = typer.Typer()
    cache_ops.register(app)
    runner = CliRunner()

    def cli(*args: str) -> str:
        result = runner.invoke(app, [*args, "-c", str(cfg)], env={"COLUMNS": "200"})
        assert result.exit_code == 0, result.output
        return result.output

    def entries() -> dict[str, str]:  # tier -> entries, from the stats table
        rows = [line.strip("│ ").split() for line in cli("stats").splitlines()]
        return {row[0]: row[2] for row in rows if len(row) > 2 and row[1] == "│"}

    assert await asyncio.to_thread(entries) == {"memory": "0", "redis": "2"}
    gone = await asyncio.to_thread(cli, "invalidate", "--tenant", "acme")
    assert "invalidated 1 entry" in gone
    assert await asyncio.to_thread(entries) == {"memory": "0", "redis": "1"}


async def test_a_read_overlapping_an_invalidation_is_not_promoted(tmp_path: Path) -> None:
    """A disk read in flight while the entry is invalidated may still answer the request it
    serves, but must not copy the dropped entry back into the memory tier."""
    async with tiered(tmp_path / "disk", ONE_SMALL) as cache:
        cache.put("k", SMALL, 60, META)
        await cache.persist()
        await cache.flush()
        await cache.memory.delete("k")  # now on disk only
        disk = cache.tiers[1]
        assert isinstance(disk, DiskStore)
        reading, release = asyncio.Event(), asyncio.Event()
        real_get = disk.get

        async def slow_get(key: str) -> tuple[bytes, dict[str, Any]] | None:
            found = await real_get(key)
            reading.set()
            await release.wait()
            return found

        disk.get = slow_get  # type: ignore[method-assign]
        read = asyncio.ensure_future(cache.get("k"))
        await reading.wait()
        assert await cache.invalidate({"key": "k"}) >= 1
        release.set()
        await read
        disk.get = real_get  # type: ignore[method-assign]
        assert cache.memory.get_now("k") is None
        assert await cache.get("k") is None


async def test_the_memory_tier_starts_over_when_the_invalidation_listener_reconnects(
    redis_prefix: str,
) -> None:
    """Pub/sub delivers at most once: invalidations sent while a replica's listener was away
    are lost to it, so on reconnecting it drops its memory tier (Redis still holds the rest)."""
    client = aioredis.from_url(redis_url())
    cache = TieredCache(CacheConfig(disk_path=None), RedisConfig(prefix=redis_prefix), client)
    cache.listener_retry_s = 0.01
    real_pubsub = client.pubsub
    drops = [1]

    class Dropping:
        """A pub/sub whose first connection breaks after subscribing."""

        def __init__(self) -> None:
            self.inner = real_pubsub()

        async def subscribe(self, channel: str) -> None:
            await self.inner.subscribe(channel)

        async def listen(self) -> AsyncIterator[dict[str, Any]]:
            if drops:
                drops.pop()
                cache.put("k", SMALL, 60, META)  # cached while the connection still looked fine
                raise ConnectionError("connection reset by peer")
            async for message in self.inner.listen():
                yield message

    client.pubsub = Dropping  # type: ignore[method-assign]
    await cache.start()
    try:
        for _ in range(200):
            if not drops and cache.memory.get_now("k") is None:
                break
            await asyncio.sleep(0.01)
        assert not drops and cache.memory.get_now("k") is None
        assert (await cache.get("k")) is not None  # still in Redis
    finally:
        await cache.aclose()
        await client.aclose()
