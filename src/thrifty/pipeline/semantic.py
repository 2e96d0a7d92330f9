"""Semantic cache stage (opt-in): answer a paraphrase of a question already answered.

Only after an exact miss, and only among entries with the same scope (tenant by default), the
same model, the same context (a hash of the system prompt and every earlier turn) and the same
output-affecting parameters — together they name the index partition. The last user turn is
embedded (MiniLM, one worker thread); a hit needs cosine ≥ the threshold **and** the guard's
second check (numbers, negation, polarity, entities, quoted strings, identifiers), because
embeddings cannot separate "turn on" from "turn off". A client refuses semantic hits with
``x-thrifty-cache: no-semantic``; a route with ``semantic: false``.

In scale-out mode, where the Redis server has vector search (Redis Stack, Redis 8), the index
lives in Redis and every replica searches it there (``cache.semantic.redis_index``; entries
expire with their answers). Otherwise each replica's index follows the others through Redis:
every addition is published and kept in a Redis hash (named by the embedder's ``MODEL_ID``) that a
starting replica loads (``cache.semantic.redis_index: pubsub`` chooses this). Each record carries
its answer's expiry: expired ones are not loaded, and every replica deletes them from the hash at
start and every ``PRUNE_INTERVAL_S``.

In the embedded mode the index is saved at stop; one saved by another embedder (an
upgrade that changed the vectors) is re-embedded from its stored questions in the background at
start, and is saved with the new vectors at the next stop (a stop before it finishes keeps what
was re-embedded). The in-process index (embedded and pub/sub modes) gives each entry its answer's
expiry: an expired entry is never a hit, is removed by the next additions or by the sweep every
``SWEEP_INTERVAL_S`` (in slices on the loop), and is neither saved nor loaded (an entry of an
index saved before expiries were recorded is given up to ``cache.ttl_s`` from its load, spread
so they do not all expire at once). ``cache.semantic.max_entries`` bounds it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from thrifty.cache.embedder import MODEL_ID
from thrifty.cache.entry import CacheEntry
from thrifty.cache.keys import DENY, digest
from thrifty.cache.semantic.guard import Guard
from thrifty.cache.semantic.index import SemanticIndex
from thrifty.cache.semantic.persist import saved_model_id
from thrifty.cache.semantic.redis_search import RedisVectorIndex, has_vector_search
from thrifty.cache.tiered import TieredCache
from thrifty.config import CacheConfig, RedisConfig
from thrifty.errors import ConfigError
from thrifty.pipeline.cache import CachePolicy, CacheStage
from thrifty.pipeline.context import RequestContext
from thrifty.pipeline.outcome import Outcome

log = logging.getLogger("thrifty.cache")
SHARED_TIMEOUT_S = 1.0
"""Longest wait for the index in Redis before a lookup counts as a miss."""
PRUNE_INTERVAL_S = 600.0
"""How often a replica deletes the expired records from the shared hash (pub/sub mode)."""
SWEEP_INTERVAL_S = 60.0
"""How often the expired entries leave the in-process index (embedded and pub/sub modes)."""
SWEEP_SLICE = 256
"""Expired entries removed per slice of a sweep on the event loop (~1 ms)."""


def last_user_text(body: dict[str, Any]) -> str | None:
    messages = body.get("messages") or []
    if not messages or messages[-1].get("role") != "user":
        return None
    content = messages[-1].get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list) and all(p.get("type") == "text" for p in content):
        return "".join(p.get("text", "") for p in content)
    return None  # images and other parts: never matched semantically


def partition(ctx: RequestContext, scope: str) -> str:
    body = ctx.body
    params = {k: v for k, v in body.items() if k not in DENY and k not in ("messages", "model")}
    context = digest((body.get("messages") or [])[:-1])
    return f"{scope}|{ctx.requested_model}|{context}|{digest(params)}"


def _behind(work: Coroutine[Any, Any, Any]) -> None:
    """Run ``work`` behind the request; a failure is the next lookup's miss, not an error."""
    task = asyncio.get_running_loop().create_task(work)
    task.add_done_callback(lambda t: t.cancelled() or t.exception())


def _index_missing(exc: BaseException) -> bool:
    text = str(exc).lower()
    return "index" in text and ("no such" in text or "unknown" in text)


class SemanticStage:
    name = "semantic_cache"

    def __init__(
        self,
        exact: CacheStage,
        cache: TieredCache,
        config: CacheConfig,
        redis_config: RedisConfig,
        redis: Any = None,
    ) -> None:
        self.exact = exact
        self.cache = cache
        self.config = config
        self.policy = CachePolicy(config)
        self.guard = Guard()
        self.index = SemanticIndex(
            max_entries_per_scope=config.semantic.max_entries_per_scope,
            max_entries=config.semantic.max_entries,
            default_ttl_s=config.ttl_s,  # for the entries of an index saved without expiries
        )
        self._redis = redis
        # Keyed by the vector space: replicas embedding with another model never mix their vectors.
        self._hash = f"{redis_config.prefix}:semantic:{MODEL_ID}:entries"
        self._prefix = redis_config.prefix
        self.shared: RedisVectorIndex | None = None  # the index in Redis, when searched there
        self._channel = f"{redis_config.prefix}:semantic:{MODEL_ID}:add"
        self._path = Path(config.disk_path) / "semantic" if config.disk_path else None
        self._listener: asyncio.Task[None] | None = None
        self._pruner: asyncio.Task[None] | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._embedder: Any = None
        self._reembedding: asyncio.Task[None] | None = None
        self._stop_reembed = threading.Event()

    def threshold_for(self, ctx: RequestContext) -> float | None:
        """The cosine threshold of the request's route; ``None`` where the semantic cache is off
        for it (by config, or refused by the client's ``x-thrifty-cache``)."""
        on = self.config.semantic.enabled
        threshold = self.config.semantic.threshold
        use_case = ctx.tags.get("use_case")
        for rule in self.config.rules:
            if (rule.model and rule.model != ctx.requested_model) or (
                rule.use_case and rule.use_case != use_case
            ):
                continue
            if rule.semantic is not None:
                on = rule.semantic
            if rule.semantic_threshold is not None:
                threshold = rule.semantic_threshold
        if not on or ctx.cache_directive in ("no-semantic", "no-cache", "off"):
            return None
        return threshold

    async def start(self) -> None:
        from thrifty.cache.embedder import get_embedder
        from thrifty.cache.semantic.wordnet import wordnet

        self._embedder = get_embedder()
        await asyncio.to_thread(self._embedder.load)
        # The guard's WordNet relations (~1 s to read): at start-up, not in the first request.
        await asyncio.to_thread(wordnet)
        if self._redis is not None and await self._use_redis_search():
            self.shared = RedisVectorIndex(self._redis, self._prefix, MODEL_ID, self.index.dim)
            await self.shared.ensure()
            log.info("semantic index: searched in Redis (%s)", self.shared.name)
        elif self._redis is not None:
            await self._bootstrap()
            self._listener = asyncio.create_task(self._listen(), name="thrifty-semantic-sync")
            self._pruner = asyncio.create_task(
                self._every(PRUNE_INTERVAL_S, self.prune, "pruned from the Redis hash"),
                name="thrifty-semantic-prune",
            )
        elif self._path is not None and self._path.exists():
            saved_by = await asyncio.to_thread(saved_model_id, self._path)
            if saved_by == self.index.model_id:
                n = await asyncio.to_thread(self.index.load, self._path)
                log.info("semantic index: %d entries loaded from %s", n, self._path)
            else:  # another embedder's vectors (an upgrade): re-embed the stored questions
                log.warning(
                    "semantic index: %s holds %s vectors, not %s; re-embedding its questions "
                    "in the background (semantic hits return as they are done)",
                    self._path,
                    saved_by,
                    self.index.model_id,
                )
                self._reembedding = asyncio.create_task(self._reembed(self._path))
        if self.shared is None:
            self._sweeper = asyncio.create_task(
                self._every(SWEEP_INTERVAL_S, self.sweep, "swept from the index"),
                name="thrifty-semantic-sweep",
            )

    async def _use_redis_search(self) -> bool:
        mode = self.config.semantic.redis_index
        if mode == "pubsub":
            return False
        try:
            async with asyncio.timeout(5.0):
                found = await has_vector_search(self._redis)
        except Exception as exc:
            if mode == "search":
                raise
            log.warning(
                "semantic index: could not ask Redis whether it has vector search (%r); "
                "replicating through pub/sub",
                exc,
            )
            found = False
        if mode == "search" and not found:
            raise ConfigError(
                "cache.semantic.redis_index is 'search' but the Redis server has no vector "
                "search (FT._LIST failed): use Redis Stack or Redis 8, or 'pubsub'"
            )
        return found

    async def _reembed(self, path: Path) -> None:
        try:
            n = await asyncio.to_thread(
                self.index.reembed, path, self._embedder.embed, stop=self._stop_reembed
            )
        except Exception:
            log.exception("semantic index: re-embedding %s failed; it starts empty", path)
        else:
            log.info("semantic index: %d entries re-embedded from %s", n, path)

    async def aclose(self) -> None:
        if self._reembedding is not None:
            self._stop_reembed.set()
            await self._reembedding
        pending = {t for t in (self._listener, self._pruner, self._sweeper) if t is not None}
        for _ in range(4):  # redis-py can swallow a cancellation that lands while it subscribes
            if not pending:
                break
            for task in pending:
                task.cancel()
            _, pending = await asyncio.wait(pending, timeout=0.5)
        if pending:
            log.warning("semantic index: the Redis sync task did not stop; leaving it")
        if self._redis is None and self._path is not None:
            # saved even when empty, so that an older file is not loaded again at the next start
            await asyncio.to_thread(self.index.save, self._path)

    async def run(self, ctx: RequestContext) -> Outcome | None:
        threshold = self.threshold_for(ctx) if ctx.cache_status == "miss" else None
        if threshold is None:
            return None
        text = last_user_text(ctx.body)
        if not text or not text.strip():
            return None
        _, _, scope = self.policy.resolve(ctx)
        part = partition(ctx, self.exact.scope(ctx, scope))
        vector = (await self._embedder.aembed([text]))[0]
        ctx.semantic = (part, vector, text)
        if self.shared is not None:
            try:
                async with asyncio.timeout(SHARED_TIMEOUT_S):
                    hits = await self.shared.search(part, vector, 3, min_score=threshold)
            except Exception as exc:  # Redis down or slow: a miss, never a failed request
                log.warning("semantic index in Redis unavailable (%r): treated as a miss", exc)
                ctx.flags.append("semantic_unavailable")
                if _index_missing(exc):  # e.g. FLUSHALL: recreate it, entries come back as stored
                    with contextlib.suppress(Exception):
                        await self.shared.ensure()
                return None
        elif self.index.size(part):
            hits = self.index.search(part, vector, k=3, min_score=threshold)
        else:
            return None
        for hit in hits:
            if self.config.semantic.guard:
                verdict = self.guard.check(text, hit.meta.get("text", ""))
                if not verdict.ok:
                    ctx.flags.append(f"semantic_rejected:{verdict.reason}")
                    continue
            found = await self.cache.get(hit.key, kind="semantic_hit")
            if found is None:  # the entry expired or was invalidated
                if self.shared is not None:
                    with contextlib.suppress(Exception):  # it expires anyway
                        async with asyncio.timeout(SHARED_TIMEOUT_S):
                            await self.shared.remove(hit.key)
                else:
                    self.index.remove(part, hit.key)
                continue
            outcome = self.exact.answer(ctx, CacheEntry.decode(found[0]), "semantic")
            ctx.cache_status = "semantic"
            ctx.cache_similarity = round(float(hit.score), 6)
            ctx.semantic_match = hit.meta.get("text")
            return outcome
        return None

    def remember(self, ctx: RequestContext, key: str) -> None:
        """Index a freshly stored answer (called by the cache writer)."""
        if ctx.semantic is None:
            return
        part, vector, text = ctx.semantic
        if self.shared is not None:
            added = self.shared.add(part, key, vector, text, ctx.cache_ttl_s)
            _behind(asyncio.wait_for(added, SHARED_TIMEOUT_S))
            return
        exp = round(self.index.clock() + ctx.cache_ttl_s, 3)
        self.index.add(part, key, vector, {"text": text}, expires_at=exp)
        if self._redis is not None:
            record = orjson.dumps(
                {
                    "part": part,
                    "key": key,
                    "text": text,
                    "v": base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode(),
                    "exp": exp,
                }
            )
            _behind(self._share(key, record))

    async def _share(self, key: str, record: bytes) -> None:
        async with asyncio.timeout(SHARED_TIMEOUT_S):
            await self._redis.hset(self._hash, key, record)
            await self._redis.publish(self._channel, record)

    def _add_record(self, raw: bytes) -> bool:
        """Index a shared record; ``False`` when its answer has expired (not indexed)."""
        d = orjson.loads(raw)
        if d.get("exp", float("inf")) <= time.time():  # records before "exp" never expire here
            return False
        vector = np.frombuffer(base64.b64decode(d["v"]), dtype="<f4")
        self.index.add(d["part"], d["key"], vector, {"text": d["text"]}, expires_at=d.get("exp"))
        return True

    async def _bootstrap(self) -> None:
        """Load the shared records; drop the expired ones from Redis."""
        try:
            async with asyncio.timeout(5.0):
                records = await self._redis.hgetall(self._hash)
        except Exception as exc:
            log.warning("semantic index: could not load from Redis (%s)", exc)
            return
        expired = [key for key, raw in records.items() if not self._add_record(raw)]
        await self._forget(expired)

    async def prune(self) -> int:
        """Delete the shared records whose answers have expired; their number."""
        now = time.time()
        expired = [
            key
            async for key, raw in self._redis.hscan_iter(self._hash, count=500)
            if orjson.loads(raw).get("exp", float("inf")) <= now
        ]
        await self._forget(expired)
        return len(expired)

    async def _forget(self, fields: list[Any]) -> None:
        for i in range(0, len(fields), 500):
            with contextlib.suppress(Exception):  # the next prune tries again
                await self._redis.hdel(self._hash, *fields[i : i + 500])

    async def sweep(self) -> int:
        """Remove the expired entries from the in-process index; their number. On the event
        loop, ``SWEEP_SLICE`` at a time with a yield between slices (in a thread it would hold
        the index's lock against every search); then compact the expiry heap in a thread."""
        removed = 0
        while True:
            n, more = self.index.sweep_some(SWEEP_SLICE)
            removed += n
            if not more:
                break
            await asyncio.sleep(0)
        await asyncio.to_thread(self.index.compact)
        return removed

    async def _every(self, interval_s: float, job: Callable[[], Awaitable[int]], done: str) -> None:
        """Run ``job`` every ``interval_s`` (it returns how many expired entries it removed)."""
        while True:
            await asyncio.sleep(interval_s)
            try:
                n = await job()
            except Exception as exc:
                log.warning("semantic index: expired entries not %s (%s)", done, exc)
            else:
                if n:
                    log.info("semantic index: %d expired entries %s", n, done)

    async def _listen(self) -> None:
        while True:
            try:
                pubsub = self._redis.pubsub()
                await pubsub.subscribe(self._channel)
                async for message in pubsub.listen():
                    if message.get("type") == "message":
                        self._add_record(message["data"])
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("semantic index sync lost Redis (%s); retrying", exc)
                await asyncio.sleep(1.0)
