"""The semantic index kept in Redis and searched there, when the server has vector search.

In scale-out mode the semantic entries live in Redis. Where the server has the search module
(Redis Stack, or Redis 8 with its query engine: ``FT._LIST`` answers) every replica queries one
shared index instead of holding a copy of all vectors: nothing to load at start, nothing to
replicate, and entries expire with the cached answers they point to. Other servers fall back to
replication through pub/sub (``pipeline.semantic``).

Layout, per embedder (``MODEL_ID``: vectors of different embedders never meet):

- one hash per entry, ``{prefix}:semantic:{MODEL_ID}:e:{sha256(cache key)[:32]}``, with ``part``
  (a hex digest of the partition: scope, model, context and parameters), ``key`` (the exact
  cache key the answer is stored under), ``text`` (the question, for the guard) and ``v`` (the
  unit vector, little-endian float32); it expires with the answer (the cache entry's TTL);
- one index, ``{prefix}:semantic:{MODEL_ID}:idx``, over those hashes: ``part`` as a TAG and
  ``v`` as an HNSW vector field with cosine distance.

A lookup is one ``FT.SEARCH`` of the partition's tag with a KNN clause, so entries of another
tenant, model or context are never candidates. The server picks how to rank (its hybrid-query
policy): when the partition is a small part of the index it compares the query with each of the
partition's vectors (exact, like the in-process flat index), otherwise it walks the HNSW graph in
batches and keeps the partition's entries (approximate, like the in-process HNSW above 100k).
Similarity is ``1 - cosine distance``. Concurrent replicas may all try to create the index;
"Index already exists" is success.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from thrifty.cache.semantic.index import Hit

__all__ = ["RedisVectorIndex", "has_vector_search"]


async def has_vector_search(redis: Any) -> bool:
    """Whether the server answers the search module's ``FT._LIST`` (Redis Stack, Redis 8).
    Connection errors propagate: an unreachable server says nothing either way."""
    from redis.exceptions import ResponseError  # the redis extra: only with a Redis client

    try:
        await redis.execute_command("FT._LIST")
    except ResponseError:  # "unknown command": a plain Redis
        return False
    return True


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _rows(reply: Any) -> list[dict[str, str]]:
    """The returned fields of each document of an ``FT.SEARCH`` reply, in order, from a RESP2
    list (``[total, id, [field, value, ...], ...]``) or a RESP3 map (``results``)."""
    if isinstance(reply, Mapping):
        results = reply.get(b"results", reply.get("results")) or []
        rows = []
        for doc in results:
            fields = doc.get(b"extra_attributes", doc.get("extra_attributes")) or {}
            rows.append({_text(k): _text(v) for k, v in fields.items()})
        return rows
    rows = []
    items: Sequence[Any] = reply[1:] if isinstance(reply, list | tuple) else []
    for i in range(1, len(items), 2):  # id, fields, id, fields, ...
        flat = items[i]
        rows.append({_text(flat[j]): _text(flat[j + 1]) for j in range(0, len(flat) - 1, 2)})
    return rows


class RedisVectorIndex:
    """Semantic entries in Redis hashes, searched by the server (see the module docstring)."""

    def __init__(self, redis: Any, prefix: str, model_id: str, dim: int) -> None:
        self._redis = redis
        self.name = f"{prefix}:semantic:{model_id}:idx"
        self.doc_prefix = f"{prefix}:semantic:{model_id}:e:"
        self.dim = dim

    async def ensure(self) -> None:
        """Create the index unless it exists (any replica may; the first one wins)."""
        try:
            await self._redis.execute_command(
                "FT.CREATE", self.name, "ON", "HASH", "PREFIX", 1, self.doc_prefix,
                "SCHEMA", "part", "TAG",
                "v", "VECTOR", "HNSW", 6, "TYPE", "FLOAT32", "DIM", self.dim,
                "DISTANCE_METRIC", "COSINE",
            )  # fmt: skip
        except Exception as exc:
            if "already exists" not in str(exc).lower():
                raise

    @staticmethod
    def _tag(part: str) -> str:
        # Hex only: a TAG query needs no escaping, and a long partition string stays short.
        return hashlib.sha256(part.encode()).hexdigest()[:32]

    def _doc(self, key: str) -> str:
        return self.doc_prefix + hashlib.sha256(key.encode()).hexdigest()[:32]

    def _vector(self, vector: Any) -> bytes:
        v = np.asarray(vector, dtype=np.float32).reshape(-1)
        if v.shape[0] != self.dim:
            raise ValueError(f"vector of dimension {v.shape[0]}, the index holds {self.dim}")
        norm = float(np.linalg.norm(v))
        return (v / norm if norm > 0 else v).astype("<f4").tobytes()

    async def add(self, part: str, key: str, vector: Any, text: str, ttl_s: float) -> None:
        """Store one entry; it expires after ``ttl_s`` (the cached answer's TTL)."""
        doc = self._doc(key)
        fields = {"part": self._tag(part), "key": key, "text": text, "v": self._vector(vector)}
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(doc, mapping=fields)
            pipe.pexpire(doc, max(1, int(ttl_s * 1000)))
            await pipe.execute()

    async def search(self, part: str, vector: Any, k: int, *, min_score: float) -> list[Hit]:
        """The ``k`` entries of ``part`` most similar to ``vector`` with at least
        ``min_score`` cosine similarity, best first."""
        reply = await self._redis.execute_command(
            "FT.SEARCH", self.name, f"(@part:{{{self._tag(part)}}})=>[KNN {k} @v $q AS d]",
            "PARAMS", 2, "q", self._vector(vector),
            "SORTBY", "d", "ASC", "RETURN", 3, "key", "text", "d", "LIMIT", 0, k,
            "DIALECT", 2,
        )  # fmt: skip
        hits = []
        for row in _rows(reply):
            if "key" not in row or "d" not in row:
                continue  # expired between the match and the read
            score = 1.0 - float(row["d"])
            if score >= min_score:
                hits.append(Hit(row["key"], score, {"text": row.get("text", "")}))
        return hits

    async def remove(self, key: str) -> None:
        await self._redis.delete(self._doc(key))

    async def count(self) -> int:
        """Entries in the index (``FT.INFO``'s ``num_docs``)."""
        info = await self._redis.execute_command("FT.INFO", self.name)
        if isinstance(info, Mapping):
            value = info.get(b"num_docs", info.get("num_docs", 0))
        else:
            flat = list(info)
            names = [_text(x) for x in flat[0::2]]
            value = flat[2 * names.index("num_docs") + 1] if "num_docs" in names else 0
        return int(float(_text(value)))
