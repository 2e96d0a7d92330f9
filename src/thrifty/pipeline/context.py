"""The per-request state every pipeline stage reads and writes."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any

from thrifty.errors import ThriftyError
from thrifty.keys.principal import Principal
from thrifty.providers.base import Deployment
from thrifty.providers.registry import ModelEntry

_RANDOM_BYTES = 6
_POOL_IDS = 512
_pool: list[bytes] = []
os.register_at_fork(after_in_child=_pool.clear)  # a forked worker must not reuse the parent's


def new_request_id() -> str:
    """``req_`` + 24 hex digits: the epoch milliseconds (12 digits) then 48 bits of OS randomness.

    Time-ordered like a ULID or UUIDv7, so the ledger's primary-key index grows at its right
    edge instead of taking each insert on a random page: SQLite spent ~30 % less CPU per ledger
    row at 100k rows (docs/decisions.md). Two ids collide only when drawn in the same millisecond
    with the same 48 random bits. The randomness is drawn 512 ids at a time (one ``getrandom``
    call per 512 requests)."""
    if not _pool:
        raw = os.urandom(_RANDOM_BYTES * _POOL_IDS)
        _pool.extend(raw[i : i + _RANDOM_BYTES] for i in range(0, len(raw), _RANDOM_BYTES))
    return f"req_{time.time_ns() // 1_000_000:012x}{_pool.pop().hex()}"


@dataclass(slots=True)
class Attempt:
    """One upstream try: which deployment, how it ended, how long it took."""

    deployment: str
    error: str | None
    latency_ms: float
    skipped: bool = False
    """True when the deployment was not called (its circuit breaker was open)."""


@dataclass(slots=True)
class RequestContext:
    """Everything known about one request, from parse to record.

    ``usage`` is the OpenAI usage object (provider-reported, or counted when the provider gave
    none: ``usage_source`` says which). Times are ``time.perf_counter()`` values except
    ``started_at`` (epoch seconds).
    """

    request_id: str
    endpoint: str
    principal: Principal
    requested_model: str
    body: dict[str, Any]
    stream: bool = False
    include_usage: bool = False
    tags: dict[str, str] = field(default_factory=dict)
    priority: str = "normal"
    cache_directive: str | None = None
    started_at: float = field(default_factory=time.time)
    started: float = field(default_factory=time.perf_counter)
    first_byte: float | None = None
    ended: float | None = None
    entry: ModelEntry | None = None
    deployment: Deployment | None = None
    route_reason: str = "explicit"
    cache_status: str = "bypass"
    attempts: list[Attempt] = field(default_factory=list)
    usage: dict[str, Any] | None = None
    usage_source: str = "provider"
    status: int = 200
    error: ThriftyError | None = None
    finish_reason: str | None = None
    cache_similarity: float | None = None
    cache_key: str | None = None
    cache_ttl_s: float = 0.0
    cache_store: bool = False
    cache_leader: bool = False
    stream_meta: dict[str, Any] | None = None
    stream_unstorable: bool = False
    embed_plan: dict[str, Any] | None = None
    rate_charges: list[Any] = field(default_factory=list)
    route_header: str | None = None
    compression_saved_tokens: int = 0
    response_limit: tuple[str, int | None] | None = None
    """(complexity class, cap) when the response-limit lever acted; cap None: held out."""
    cascade: Any = None
    """(strong model, checks, regex, policy) when the answer may escalate (route cascade)."""
    cascade_first: Any = None
    """(deployment, usage) of a cheap answer that failed its checks: costed as well."""
    route_group: str | None = None
    budget_reserved: bool = False
    budget_max_tokens: int | None = None
    degraded_from: str | None = None
    requested_entry: ModelEntry | None = None
    """The model entry the request asked for (``entry`` may change: budget degrade)."""
    semantic: Any = None
    """(partition, vector, text) of a semantic-cache lookup, for indexing the answer."""
    semantic_match: str | None = None
    """The cached question a semantic hit matched (kept with ``ledger.store_content``)."""
    usage_parsed: Any = None
    """The canonical ``pricing.Usage`` of ``usage``, set by the costing step."""
    cache_hit_tokens: int = 0
    # The answer, kept by reference (no copy) for ``ledger.store_content``.
    response: dict[str, Any] | None = None
    cache_entry: Any = None
    """The ``CacheEntry`` a cache hit answered from (its ``response`` decodes on first use)."""
    output_parts: list[str] | None = None
    # Set by the costing step (``pipeline/costing.py``); None cost = unpriced, never $0.
    cost_usd: float | None = None
    baseline_cost_usd: float | None = None
    savings: dict[str, float] = field(default_factory=dict)
    unpriced: bool = False
    flags: list[str] = field(default_factory=list)

    @property
    def saved_usd(self) -> float:
        return sum(self.savings.values())

    @property
    def served_model(self) -> str | None:
        return self.deployment.public_model if self.deployment else None

    @property
    def latency_s(self) -> float:
        return (self.ended or time.perf_counter()) - self.started

    @property
    def ttfb_s(self) -> float | None:
        return None if self.first_byte is None else self.first_byte - self.started
