"""``TieredCache``: memory → Redis → disk, with promotion on hit, invalidation propagated to
every replica (Redis pub/sub), and per-tier statistics.

A lookup reads the tiers in order and copies a lower-tier hit into the tiers above it. A write
goes to every tier. Redis failures are misses (the store logs and counts them), never errors.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections import Counter
from typing import Any

import orjson

from thrifty.cache.stores import DiskStore, MemoryStore, RedisStore, Store, matches
from thrifty.config import CacheConfig, RedisConfig

log = logging.getLogger("thrifty.cache")


class TieredCache:
    def __init__(self, config: CacheConfig, redis_config: RedisConfig, redis: Any = None) -> None:
        self._config = config
        self._redis_config = redis_config
        self.memory = MemoryStore(config.memory_max_bytes)
        self.tiers: list[Store] = [self.memory]
        self.redis = redis
        self._channel = f"{redis_config.prefix}:cache:invalidate"
        self._origin = os.urandom(8).hex()
        self.counts: Counter[str] = Counter()
        self._write_back: DiskStore | None = None
        self._listener: asyncio.Task[None] | None = None
        self._pending: set[asyncio.Task[Any]] = set()
        # Bumped as an invalidation starts and ends: a lower-tier read that overlapped one does
        # not promote what it read into the memory tier (it may be the entry just dropped).
        self._generation = 0
        self.listener_retry_s = 1.0

    async def start(self) -> None:
        """Open the lower tiers: Redis when configured, then S3 when configured, else (without
        Redis) the write-back disk tier."""
        if len(self.tiers) == 1:
            rc = self._redis_config
            if self.redis is not None:
                self.tiers.append(RedisStore(self.redis, rc.prefix, rc.timeout_s))
            if self._config.s3 is not None:
                from thrifty.cache.s3_store import S3Store

                self.tiers.append(await asyncio.to_thread(S3Store, self._config.s3))
            elif self.redis is None and self._config.disk_path:
                disk = await asyncio.to_thread(DiskStore, self._config.disk_path)
                self.tiers.append(disk)
                # The disk tier is written back, not through: an entry reaches it when the
                # memory tier evicts (or refuses) it or the gateway stops, so no request pays
                # a disk write. Queued at once, in order, so a later delete wins over it.
                self.memory.on_evict = disk.set_now
                self._write_back = disk
        if self.redis is not None and self._listener is None:
            self._listener = asyncio.create_task(self._listen(), name="thrifty-cache-invalidate")

    async def aclose(self) -> None:
        await self.persist()
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._listener
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)
        for tier in self.tiers:
            await tier.aclose()
        del self.tiers[1:]

    async def get(self, key: str, *, kind: str = "hit") -> tuple[bytes, str] | None:
        """(value, tier name) or None. A lower-tier hit is promoted to the memory tier for
        the rest of its lifetime, with its meta (so invalidation still finds it). A found entry
        counts as ``{kind}:{tier}``: ``hit`` for an exact lookup, ``semantic_hit`` when the
        semantic stage fetches the entry it matched (its miss was counted by the exact
        lookup)."""
        value = self.memory.get_now(key)
        if value is not None:
            self.counts[f"{kind}:memory"] += 1
            return value, "memory"
        for tier in self.tiers[1:]:
            generation = self._generation
            found = await tier.get(key)
            if found is not None:
                value, meta = found
                remaining = float(meta.get("expires_at", 0)) - time.time()
                if remaining > 0 and generation == self._generation:
                    self.memory.set_now(key, value, remaining, meta)
                self.counts[f"{kind}:{tier.name}"] += 1
                return value, tier.name
        if kind == "hit":
            self.counts["miss"] += 1
        return None

    def put(self, key: str, value: bytes, ttl_s: float, meta: dict[str, Any]) -> None:
        """Store everywhere: the memory tier now, the others behind the request."""
        meta = {**meta, "expires_at": time.time() + ttl_s}
        if not self.memory.set_now(key, value, ttl_s, meta) and self._write_back is not None:
            # Larger than the whole memory tier: it goes to the write-back tier directly.
            self._write_back.set_now(key, value, ttl_s, meta)
        self.counts["stores"] += 1
        for tier in self.tiers[1:]:
            if tier is not self._write_back:
                self._background(tier.set(key, value, ttl_s, meta))

    async def persist(self) -> None:
        """Write the memory tier's live entries to the write-back disk tier."""
        if self._write_back is not None:
            for key, value, left, meta in self.memory.live():
                self._write_back.set_now(key, value, left, meta)

    def _background(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def flush(self) -> None:
        """Persist the memory tier and wait for every background write (tests, warming)."""
        await self.persist()
        while self._pending:
            await asyncio.gather(*list(self._pending), return_exceptions=True)
        for tier in self.tiers:
            flush = getattr(tier, "flush", None)
            if flush is not None:
                await flush()

    # -- invalidation ----------------------------------------------------------------------
    async def invalidate(self, selector: dict[str, str]) -> int:
        """Delete matching entries in every tier here, and tell the other replicas."""
        removed = await self._invalidate_local(selector, shared=True)
        if self.redis is not None:
            message = orjson.dumps({"origin": self._origin, "selector": selector})
            try:
                await self.redis.publish(self._channel, message)
            except Exception as exc:
                log.error("could not publish a cache invalidation: %s", exc)
        return removed

    async def _invalidate_local(self, selector: dict[str, str], *, shared: bool) -> int:
        self._generation += 1
        try:
            return await self._drop_matching(selector, shared=shared)
        finally:
            self._generation += 1

    async def _drop_matching(self, selector: dict[str, str], *, shared: bool) -> int:
        removed = 0
        # Shared tiers (Redis, a disk shared by processes) are cleared by the replica that was
        # asked; the others only clear their memory.
        tiers = self.tiers if shared else [self.memory]
        if shared and self._pending:
            # Writes of earlier puts land first, so this invalidation wins over them.
            await asyncio.gather(*list(self._pending), return_exceptions=True)
        for tier in tiers:
            if "key" in selector and len(selector) == 1:
                removed += await tier.delete(selector["key"])
                continue
            victims = [k async for k, meta in tier.scan() if matches(k, meta, selector)]
            for key in victims:
                removed += await tier.delete(key)
        self.counts["invalidated"] += removed
        return removed

    async def _listen(self) -> None:
        lost = False
        while True:
            try:
                pubsub = self.redis.pubsub()
                await pubsub.subscribe(self._channel)
                if lost:
                    # Pub/sub delivers at most once: what other replicas invalidated while this
                    # one was away is unknown, so its memory tier starts over from Redis.
                    dropped = self.memory.clear()
                    self._generation += 1
                    log.warning("cache invalidation listener is back; dropped %d entries", dropped)
                    lost = False
                async for message in pubsub.listen():
                    if message.get("type") != "message":
                        continue
                    data = orjson.loads(message["data"])
                    if data.get("origin") != self._origin:
                        await self._invalidate_local(data["selector"], shared=False)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                lost = True
                log.warning("cache invalidation listener lost Redis (%s); retrying", exc)
                await asyncio.sleep(self.listener_retry_s)

    async def stats(self) -> dict[str, Any]:
        tiers = {tier.name: await tier.stats() for tier in self.tiers}
        return {"tiers": tiers, "counts": dict(self.counts)}
