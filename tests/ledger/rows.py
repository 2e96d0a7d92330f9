"""Complete, valid ``ledger`` rows for tests (importable as ``tests.ledger.rows``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from thrifty.db.schema import ledger

T0 = datetime(2026, 11, 22, 12, 0, 0, 123456, tzinfo=UTC)


def ledger_row(request_id: str | int, **overrides: Any) -> dict[str, Any]:
    """A row with every column of ``ledger`` set (as ``build_row`` produces them); an int
    ``request_id`` becomes ``req_00000042``. Keyword arguments override columns."""
    n = request_id if isinstance(request_id, int) else sum(map(ord, request_id))
    rid = f"req_{request_id:08d}" if isinstance(request_id, int) else request_id
    started = T0 + timedelta(milliseconds=n)
    row: dict[str, Any] = {
        "request_id": rid,
        "started_at": started,
        "first_byte_at": started + timedelta(milliseconds=120),
        "ended_at": started + timedelta(milliseconds=480),
        "endpoint": "chat.completions",
        "tenant": f"tenant-{n % 3}",
        "user": "alice",
        "key_id": "key_0123456789abcdef",
        "tags": {"team": "search", "env": "test"},
        "priority": "normal",
        "requested_model": "mini",
        "served_model": "gpt-4o-mini",
        "provider": "openai",
        "deployment": "up/gpt-4o-mini",
        "route_reason": "alias",
        "cache_status": "miss",
        "cache_similarity": None,
        "prompt_tokens": 100 + n % 50,
        "completion_tokens": 20 + n % 7,
        "cached_tokens": 0,
        "cache_write_tokens": 0,
        "reasoning_tokens": 0,
        "usage_source": "provider",
        "cost_usd": 0.000123,
        "baseline_cost_usd": 0.000456,
        "saved_usd": 0.000333,
        "saved_cache_usd": 0.0,
        "saved_semantic_cache_usd": 0.0,
        "saved_routing_usd": 0.000333,
        "saved_compression_usd": 0.0,
        "saved_max_tokens_usd": 0.0,
        "unpriced": False,
        "latency_ms": 480.25,
        "ttfb_ms": 120.5,
        "attempts": 1,
        "fallback_path": [{"deployment": "up/gpt-4o-mini", "error": None, "ms": 479.9}],
        "status": 200,
        "error_type": None,
        "error_code": None,
        "finish_reason": "stop",
        "flags": ["compressed"],
        "content": None,
    }
    unknown = set(overrides) - set(row)
    if unknown:
        raise KeyError(f"not ledger columns: {sorted(unknown)}")
    row.update(overrides)
    assert set(row) == set(ledger.c.keys()), "ledger_row is out of step with the schema"
    return row
