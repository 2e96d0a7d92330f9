"""The response cache's configuration (the ``cache:`` section of the YAML; ``thrifty.config``
re-exports these models): tiers and TTLs, scope, what is stored, per-route rules, the semantic
cache and the S3 warm tier."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class CacheRule(_Frozen):
    """Per-route (model) or per-use-case overrides of the cache settings."""

    model: str | None = None
    use_case: str | None = None
    ttl_s: float | None = Field(None, gt=0)
    scope: Literal["tenant", "user", "global"] | None = None
    enabled: bool | None = None
    semantic: bool | None = None
    semantic_threshold: float | None = Field(None, gt=0, le=1)
    """This route's cosine threshold for a semantic hit (default ``cache.semantic.threshold``)."""


class SemanticCacheConfig(_Frozen):
    """Semantic cache (opt-in; ``pip install 'thrifty[semantic]'``)."""

    enabled: bool = False
    threshold: float = Field(0.85, gt=0, le=1)
    guard: bool = True
    max_entries_per_scope: int = Field(100_000, ge=1)
    max_entries: int = Field(250_000, ge=1)
    """Most entries of the in-process index (embedded and ``pubsub`` modes), over all partitions;
    past it the entries that expire soonest (then the oldest) are evicted. An entry costs ~1.7 KB
    (its 384 float32 and bookkeeping) plus its question (~0.5 GB at the default). Entries also
    leave the index when their answers expire (``ttl_s`` or the route's)."""
    redis_index: Literal["auto", "search", "pubsub"] = "auto"
    """With ``redis.url``: ``search`` keeps the index in Redis and searches it there (the server
    needs vector search: Redis Stack or Redis 8), ``pubsub`` keeps a copy in every replica that
    follows the others through pub/sub, ``auto`` uses ``search`` where the server has it."""


class S3CacheConfig(_Frozen):
    """An S3-compatible object store as the cache's warm tier (instead of the local disk)."""

    bucket: str
    endpoint_url: str | None = None
    region: str = "us-east-1"
    prefix: str = "thrifty-cache/"
    access_key_id: str | None = None
    secret_access_key: str | None = None
    timeout_s: float = Field(2.0, gt=0)


class CacheConfig(_Frozen):
    """The response cache. Tiers: in-process LRU (``memory_max_bytes``) → Redis (when
    ``redis.url`` is set) → S3 (``s3``, when set) or, without Redis, the local disk
    (``disk_path``; the embedded default)."""

    enabled: bool = True
    ttl_s: float = Field(3600.0, gt=0)
    embeddings_ttl_s: float = Field(86400.0, gt=0)
    scope: Literal["tenant", "user", "global"] = "tenant"
    max_temperature: float = Field(1.0, ge=0, le=2)
    """Answers sampled above this temperature are not stored (no temperature = 1.0)."""
    store_multiple_choices: bool = False
    memory_max_bytes: int = Field(256 * 1024 * 1024, ge=0)
    disk_path: str | None = "./thrifty-data/cache"
    s3: S3CacheConfig | None = None
    coalesce: bool = True
    rules: tuple[CacheRule, ...] = ()
    semantic: SemanticCacheConfig = Field(default_factory=SemanticCacheConfig)
