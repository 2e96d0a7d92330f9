"""Cache store tiers behind one small seam: ``get`` / ``set`` / ``delete`` / ``scan``.

- ``MemoryStore``: in-process LRU bounded in bytes (the hot tier), with TTLs.
- ``DiskStore``: ``diskcache`` on local disk (the warm tier of the embedded mode; safe to share
  between processes on one host); its calls run in a worker thread.
- ``RedisStore``: shared by every replica; commands have a timeout and a failure is a miss,
  never an error for the request.

Values are bytes (an encoded ``CacheEntry``); ``meta`` (tenant, model, tags) lets invalidation
select entries without decoding them.
"""

from __future__ import annotations

import asyncio
import fnmatch
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from typing import Any, Protocol

import orjson

log = logging.getLogger("thrifty.cache")


class Store(Protocol):
    name: str

    async def get(self, key: str) -> tuple[bytes, dict[str, Any]] | None:
        """The value and its meta, or None."""
        ...

    async def set(self, key: str, value: bytes, ttl_s: float, meta: dict[str, Any]) -> None: ...

    async def delete(self, key: str) -> bool: ...

    def scan(self) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """Every live key with its meta (for invalidation by tenant / model / tag / pattern)."""
        ...

    async def stats(self) -> dict[str, Any]: ...

    async def aclose(self) -> None: ...


_ENTRY_OVERHEAD = 280
"""Bytes an entry costs beyond its key, value and meta: the Python objects holding them (the
bytes and str headers, the tuple, the float, the LRU's slot), measured with ``tracemalloc``
(tests/cache/test_stores.py); counted so that ``max_bytes`` bounds the memory the tier uses."""


class MemoryStore:
    """In-process LRU with TTLs, bounded by ``max_bytes`` of memory: key, value, meta (kept as
    JSON bytes) and the per-entry Python overhead all count. An entry holds only bytes, a str and
    a float, so the garbage collector does not have to walk the cache."""

    name = "memory"

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self.evictions = 0
        # Called with (key, value, seconds left, meta) for each entry pushed out by the LRU.
        self.on_evict: Any = None
        self._data: OrderedDict[str, tuple[float, bytes, bytes]] = OrderedDict()

    def get_now(self, key: str) -> bytes | None:
        item = self._data.get(key)
        if item is None:
            return None
        if item[0] <= time.monotonic():
            self._drop(key)
            return None
        self._data.move_to_end(key)
        return item[1]

    async def get(self, key: str) -> tuple[bytes, dict[str, Any]] | None:
        value = self.get_now(key)
        return None if value is None else (value, orjson.loads(self._data[key][2]))

    def set_now(self, key: str, value: bytes, ttl_s: float, meta: dict[str, Any]) -> bool:
        """Store an entry; False when it is larger than the whole tier (``max_bytes``), and
        then no entry for the key is left here: a refreshed key never serves its old value."""
        # Right-sized copies: a bytes object from orjson (3.12+) keeps its whole output buffer
        # (>= 4 KB, grown in powers of two), 4-16x what len() says, for as long as it lives.
        packed = bytes(memoryview(orjson.dumps(meta)))
        size = _size(key, value, packed)
        if key in self._data:
            self._drop(key)
        if size > self.max_bytes:
            return False
        self._data[key] = (time.monotonic() + ttl_s, bytes(memoryview(value)), packed)
        self.bytes += size
        while self.bytes > self.max_bytes and self._data:
            oldest = next(iter(self._data))
            expires, old_value, old_meta = self._data[oldest]
            self._drop(oldest)
            self.evictions += 1
            if self.on_evict is not None:
                left = expires - time.monotonic()
                if left > 0:
                    self.on_evict(oldest, old_value, left, orjson.loads(old_meta))
        return True

    async def set(self, key: str, value: bytes, ttl_s: float, meta: dict[str, Any]) -> None:
        self.set_now(key, value, ttl_s, meta)

    def _drop(self, key: str) -> None:
        _, value, meta = self._data.pop(key)
        self.bytes -= _size(key, value, meta)

    async def delete(self, key: str) -> bool:
        if key in self._data:
            self._drop(key)
            return True
        return False

    def clear(self) -> int:
        """Drop every entry (not written back: the lower tiers hold what they hold); returns
        how many there were."""
        dropped = len(self._data)
        self._data.clear()
        self.bytes = 0
        return dropped

    async def scan(self) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        now = time.monotonic()
        for key, (expires, _, meta) in list(self._data.items()):
            if expires > now:
                yield key, orjson.loads(meta)

    def live(self) -> list[tuple[str, bytes, float, dict[str, Any]]]:
        """Every live entry as (key, value, seconds left, meta)."""
        now = time.monotonic()
        return [(k, v, e - now, orjson.loads(m)) for k, (e, v, m) in self._data.items() if e > now]

    async def stats(self) -> dict[str, Any]:
        return {"entries": len(self._data), "bytes": self.bytes, "evictions": self.evictions}

    async def aclose(self) -> None:
        self._data.clear()
        self.bytes = 0


def _size(key: str, value: bytes, meta: bytes) -> int:
    return len(key) + len(value) + len(meta) + _ENTRY_OVERHEAD


class DiskStore:
    """The disk tier. A set of the keys on disk (loaded at start, kept up to date here) answers
    most misses without a thread hop; writes are queued and committed in batches by one
    background task, and a queued write is served until it lands. Entries written by another
    process after start are not seen until a restart — a missed hit, never a wrong answer.

    A delete wins over every write of its key queued before it: a queued one is dropped, and
    one in the batch being committed lands first (the lock orders batches and deletes)."""

    name = "disk"

    def __init__(self, path: str) -> None:
        import diskcache  # installed by default; imported when the tier is opened

        self._cache = diskcache.Cache(
            path, size_limit=8 * 1024**3, eviction_policy="least-recently-used"
        )
        self._keys: set[str] = set(self._cache.iterkeys())
        # key -> (value, seconds to live, meta): the latest write of each key, not yet on disk.
        self._queue: dict[str, tuple[bytes, float, dict[str, Any]]] = {}
        self._writing: dict[str, tuple[bytes, float, dict[str, Any]]] = {}  # being committed
        self._sets = 0
        self._lock = asyncio.Lock()
        self._writer: asyncio.Task[None] | None = None

    async def get(self, key: str) -> tuple[bytes, dict[str, Any]] | None:
        if key not in self._keys:
            return None
        queued = self._queue.get(key) or self._writing.get(key)
        if queued is not None:
            return queued[0], queued[2]
        sets = self._sets
        item = await asyncio.to_thread(self._cache.get, key)
        if item is None:
            if sets == self._sets:  # no write queued meanwhile (it may have landed by now)
                self._keys.discard(key)  # expired or evicted
            return None
        return item[0], item[1]

    def set_now(self, key: str, value: bytes, ttl_s: float, meta: dict[str, Any]) -> None:
        """Queue a write, committed behind the caller (needs a running event loop)."""
        self._keys.add(key)
        self._queue[key] = (value, ttl_s, meta)
        self._sets += 1
        if self._writer is None or self._writer.done():
            self._writer = asyncio.get_running_loop().create_task(self._drain())

    async def set(self, key: str, value: bytes, ttl_s: float, meta: dict[str, Any]) -> None:
        self.set_now(key, value, ttl_s, meta)

    async def _drain(self) -> None:
        while self._queue:
            async with self._lock:
                self._writing, self._queue = self._queue, {}
                try:
                    if self._writing:  # a delete may have emptied it
                        await asyncio.to_thread(self._write_batch, self._writing)
                finally:
                    self._writing = {}

    def _write_batch(self, batch: dict[str, tuple[bytes, float, dict[str, Any]]]) -> None:
        with self._cache.transact():
            for key, (value, ttl_s, meta) in batch.items():
                self._cache.set(key, (value, meta), expire=ttl_s)

    async def flush(self) -> None:
        if self._writer is not None:
            await self._writer

    async def delete(self, key: str) -> bool:
        self._keys.discard(key)
        dropped = self._queue.pop(key, None) is not None
        async with self._lock:  # after the batch in flight, which may hold the key
            removed = await asyncio.to_thread(self._cache.delete, key)
        return bool(removed) or dropped

    async def scan(self) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        await self.flush()
        keys = await asyncio.to_thread(lambda: list(self._cache.iterkeys()))
        for key in keys:
            item = await asyncio.to_thread(self._cache.get, key)
            if item is not None:
                yield key, item[1]

    async def stats(self) -> dict[str, Any]:
        await self.flush()
        return {
            "entries": await asyncio.to_thread(len, self._cache),
            "bytes": await asyncio.to_thread(self._cache.volume),
        }

    async def aclose(self) -> None:
        await self.flush()
        await asyncio.to_thread(self._cache.close)


class RedisStore:
    name = "redis"

    def __init__(self, client: Any, prefix: str, timeout_s: float) -> None:
        self._r = client
        self._prefix = f"{prefix}:cache:"
        self._timeout = timeout_s
        self.errors = 0

    async def _call(self, coro: Any) -> Any:
        try:
            async with asyncio.timeout(self._timeout):
                return await coro
        except Exception as exc:  # an outage is a miss, never a failed request
            self.errors += 1
            log.warning("redis cache tier unavailable: %s", exc.__class__.__name__)
            return None

    # A Redis value is ``<meta JSON>\n<entry bytes>`` (orjson never emits a raw newline).

    async def get(self, key: str) -> tuple[bytes, dict[str, Any]] | None:
        raw = await self._call(self._r.get(self._prefix + key))
        if raw is None:
            return None
        meta, _, value = raw.partition(b"\n")
        return bytes(value), orjson.loads(meta)

    async def set(self, key: str, value: bytes, ttl_s: float, meta: dict[str, Any]) -> None:
        payload = orjson.dumps(meta) + b"\n" + value
        await self._call(self._r.set(self._prefix + key, payload, px=max(1, int(ttl_s * 1000))))

    async def delete(self, key: str) -> bool:
        return bool(await self._call(self._r.delete(self._prefix + key)))

    async def scan(self) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        n = len(self._prefix)
        async for raw_key in self._r.scan_iter(match=self._prefix + "*", count=500):
            key = raw_key.decode() if isinstance(raw_key, bytes) else raw_key
            raw = await self._call(self._r.get(key))
            if raw is not None:
                yield key[n:], orjson.loads(raw.partition(b"\n")[0])

    async def stats(self) -> dict[str, Any]:
        entries = 0
        async for _ in self._r.scan_iter(match=self._prefix + "*", count=1000):
            entries += 1
        return {"entries": entries, "errors": self.errors}

    async def aclose(self) -> None:
        return None


def matches(key: str, meta: dict[str, Any], selector: dict[str, str]) -> bool:
    """Does an entry match an invalidation selector (all given fields must match)?"""
    for field, value in selector.items():
        if field == "all":
            continue
        if field == "key" and key != value:
            return False
        if field == "pattern" and not fnmatch.fnmatchcase(key, value):
            return False
        if field == "tenant" and meta.get("tenant") != value:
            return False
        if field == "model" and meta.get("model") != value and meta.get("requested") != value:
            return False
        if field == "tag":
            k, _, v = value.partition("=")
            if (meta.get("tags") or {}).get(k) != v:
                return False
    return True
