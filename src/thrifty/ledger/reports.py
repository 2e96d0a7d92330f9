"""Usage and spend reports over the ledger, for any period and grouping.

Sums, counts and averages are computed by the database; the p95 latency is computed from the
group's latencies in Python (the same code on SQLite and PostgreSQL). Unpriced requests are
counted apart: their cost is unknown, so it is left out of the sums rather than taken as $0.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Integer, case, cast, func, literal, select
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql.elements import ColumnElement

from thrifty.db.schema import ledger
from thrifty.errors import InvalidRequestError
from thrifty.ledger.periods import Period

LEVER_COLUMNS = {
    "cache": ledger.c.saved_cache_usd,
    "semantic_cache": ledger.c.saved_semantic_cache_usd,
    "routing": ledger.c.saved_routing_usd,
    "compression": ledger.c.saved_compression_usd,
    "max_tokens": ledger.c.saved_max_tokens_usd,
}
GROUPS = (
    "tenant",
    "user",
    "key",
    "model",
    "requested_model",
    "provider",
    "status",
    "hour",
    "day",
    "month",
)


@dataclass(slots=True)
class ReportRow:
    group: dict[str, Any]
    requests: int = 0
    errors: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cost_usd: float = 0.0
    baseline_cost_usd: float = 0.0
    saved_usd: float = 0.0
    saved_by_lever: dict[str, float] = field(default_factory=dict)
    cache_hits: int = 0
    unpriced_requests: int = 0
    avg_latency_ms: float = 0.0
    p95_latency_ms: float = 0.0

    @property
    def cache_hit_rate(self) -> float:
        return self.cache_hits / self.requests if self.requests else 0.0

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    @property
    def avg_cost_per_request(self) -> float:
        return self.cost_usd / self.requests if self.requests else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            **self.group,
            "requests": self.requests,
            "errors": self.errors,
            "error_rate": round(self.error_rate, 6),
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "cached_tokens": self.cached_tokens,
            "cost_usd": round(self.cost_usd, 10),
            "baseline_cost_usd": round(self.baseline_cost_usd, 10),
            "saved_usd": round(self.saved_usd, 10),
            **{f"saved_{k}_usd": round(v, 10) for k, v in self.saved_by_lever.items()},
            "cache_hit_rate": round(self.cache_hit_rate, 6),
            "avg_latency_ms": round(self.avg_latency_ms, 3),
            "p95_latency_ms": round(self.p95_latency_ms, 3),
            "avg_cost_per_request_usd": round(self.avg_cost_per_request, 10),
            "unpriced_requests": self.unpriced_requests,
        }


def _group_column(name: str, dialect: str) -> ColumnElement[Any]:
    c = ledger.c
    simple = {
        "tenant": c.tenant,
        "user": c.user,
        "key": c.key_id,
        "model": c.served_model,
        "requested_model": c.requested_model,
        "provider": c.provider,
        "status": c.status,
    }
    if name in simple:
        return simple[name]
    if name in ("hour", "day", "month"):
        if dialect == "postgresql":
            pg = {"hour": 'YYYY-MM-DD"T"HH24', "day": "YYYY-MM-DD", "month": "YYYY-MM"}[name]
            return func.to_char(func.timezone("UTC", c.started_at), pg)
        lite = {"hour": "%Y-%m-%dT%H", "day": "%Y-%m-%d", "month": "%Y-%m"}[name]
        return func.strftime(lite, c.started_at)
    if name.startswith("tag:") and len(name) > 4:
        return c.tags[name[4:]].as_string()
    raise InvalidRequestError(
        f"cannot group by {name!r}; expected one of {', '.join(GROUPS)} or tag:<name>",
        param="group_by",
    )


def _filters(period: Period, filters: dict[str, str] | None) -> list[ColumnElement[bool]]:
    c = ledger.c
    where = [c.started_at >= period.start, c.started_at < period.end]
    for key, value in (filters or {}).items():
        if key == "tenant":
            where.append(c.tenant == value)
        elif key == "user":
            where.append(c.user == value)
        elif key == "model":
            where.append(c.served_model == value)
        elif key == "key":
            where.append(c.key_id == value)
        elif key.startswith("tag:"):
            where.append(c.tags[key[4:]].as_string() == value)
        else:
            raise InvalidRequestError(f"cannot filter by {key!r}", param=key)
    return where


async def usage_report(
    engine: AsyncEngine,
    period: Period,
    group_by: list[str] | None = None,
    filters: dict[str, str] | None = None,
) -> list[ReportRow]:
    """One row per group (or a single total row when ``group_by`` is empty), costliest first."""
    dialect = engine.dialect.name
    names = list(group_by or [])
    cols = [_group_column(n, dialect).label(f"g{i}") for i, n in enumerate(names)]
    c = ledger.c
    aggregates = [
        func.count().label("requests"),
        func.sum(case((c.status >= 400, 1), else_=0)).label("errors"),
        func.coalesce(func.sum(c.prompt_tokens), 0).label("prompt_tokens"),
        func.coalesce(func.sum(c.completion_tokens), 0).label("completion_tokens"),
        func.coalesce(func.sum(c.cached_tokens), 0).label("cached_tokens"),
        func.coalesce(func.sum(c.cost_usd), 0.0).label("cost_usd"),
        func.coalesce(func.sum(c.baseline_cost_usd), 0.0).label("baseline_cost_usd"),
        func.coalesce(func.sum(c.saved_usd), 0.0).label("saved_usd"),
        *(
            func.coalesce(func.sum(col), 0.0).label(f"lever_{k}")
            for k, col in LEVER_COLUMNS.items()
        ),
        func.sum(case((c.cache_status.in_(("hit", "semantic")), 1), else_=0)).label("hits"),
        func.sum(cast(c.unpriced, Integer)).label("unpriced"),
        func.avg(c.latency_ms).label("avg_latency"),
    ]
    where = _filters(period, filters)
    query = select(*(cols or [literal("all").label("g")]), *aggregates).where(*where)
    if cols:
        query = query.group_by(*cols)
    lat_query = select(*cols, c.latency_ms).where(*where)
    async with engine.connect() as conn:
        result = (await conn.execute(query)).mappings().all()
        latencies: dict[tuple[Any, ...], list[float]] = defaultdict(list)
        for row in (await conn.execute(lat_query)).all():
            latencies[tuple(row[:-1])].append(row[-1])
    rows: list[ReportRow] = []
    for r in result:
        if not r["requests"]:
            continue
        key = tuple(r[f"g{i}"] for i in range(len(names)))
        rows.append(
            ReportRow(
                group={n: k for n, k in zip(names, key, strict=True)},
                requests=int(r["requests"]),
                errors=int(r["errors"] or 0),
                prompt_tokens=int(r["prompt_tokens"]),
                completion_tokens=int(r["completion_tokens"]),
                cached_tokens=int(r["cached_tokens"]),
                cost_usd=float(r["cost_usd"]),
                baseline_cost_usd=float(r["baseline_cost_usd"]),
                saved_usd=float(r["saved_usd"]),
                saved_by_lever={k: float(r[f"lever_{k}"]) for k in LEVER_COLUMNS},
                cache_hits=int(r["hits"] or 0),
                unpriced_requests=int(r["unpriced"] or 0),
                avg_latency_ms=float(r["avg_latency"] or 0.0),
                p95_latency_ms=percentile(latencies.get(key, []), 0.95),
            )
        )
    rows.sort(key=lambda row: (-row.cost_usd, -row.requests, str(row.group)))
    return rows


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (0 for no values)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


async def request_detail(engine: AsyncEngine, request_id: str) -> dict[str, Any] | None:
    """The ledger row of one request, JSON-ready, or None."""
    async with engine.connect() as conn:
        row = (
            (await conn.execute(select(ledger).where(ledger.c.request_id == request_id)))
            .mappings()
            .first()
        )
    if row is None:
        return None
    return {str(k): (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in row.items()}


async def unpriced_models(engine: AsyncEngine, period: Period) -> list[dict[str, Any]]:
    """Models that answered without a known price in the period, with their request counts."""
    c = ledger.c
    query = (
        select(c.served_model, c.deployment, func.count().label("requests"))
        .where(c.unpriced.is_(True), c.started_at >= period.start, c.started_at < period.end)
        .group_by(c.served_model, c.deployment)
        .order_by(func.count().desc())
    )
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).mappings().all()
    return [{str(k): v for k, v in r.items()} for r in rows]
