"""Trade-off analysis over the ledger (seed 001): per model x complexity class — requests,
cost, success rate, cost per successful query — the best model per class, and
recommendations in plain words.

The complexity class comes from the prompt's size (``classify_complexity`` thresholds). A
request's success is the client's rating (``POST /v1/feedback``: score ≥ 0.5 and no
clarification needed) when there is one; otherwise the answer counts as a success when it
completed (HTTP 200 and a ``stop`` or ``tool_calls`` finish) — a proxy that catches failures
and truncation, not quality.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from thrifty.db.schema import feedback, ledger
from thrifty.ledger.periods import Period
from thrifty.routing.analysis import TradeoffReport, UsageRow, analyze_tradeoffs
from thrifty.tokens.optimize import classify_complexity


async def tradeoffs(engine: AsyncEngine, period: Period, **kw: Any) -> TradeoffReport:
    c = ledger.c
    f = feedback.c
    query = (
        select(
            c.served_model,
            c.prompt_tokens,
            c.cost_usd,
            c.status,
            c.finish_reason,
            f.score,
            f.needed_clarification,
        )
        .select_from(ledger.outerjoin(feedback, f.request_id == c.request_id))
        .where(
            c.started_at >= period.start,
            c.started_at < period.end,
            c.served_model.is_not(None),
            c.endpoint != "embeddings",
            c.cache_status.in_(("miss", "bypass")),
        )
    )
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    usage = [
        UsageRow(
            model=r.served_model,
            complexity=classify_complexity(tokens=r.prompt_tokens),
            cost_usd=r.cost_usd or 0.0,
            success=_success(r),
        )
        for r in rows
    ]
    days = max((period.end - period.start).total_seconds() / 86400, 1 / 24)
    return analyze_tradeoffs(usage, days=days, **kw)


def _success(r: Any) -> bool:
    """The client's rating when there is one, else the completion proxy."""
    if r.score is not None:
        return bool(r.score >= 0.5) and not r.needed_clarification
    if r.needed_clarification:
        return False
    return r.status == 200 and r.finish_reason in ("stop", "tool_calls")


def report_json(report: TradeoffReport) -> dict[str, Any]:
    return {
        "cells": [
            {
                "model": cell.model,
                "complexity": cell.complexity,
                "requests": cell.requests,
                "cost_usd": round(cell.cost_usd, 10),
                "success_rate": cell.success_rate,
                "cost_per_success_usd": cell.cost_per_success_usd,
            }
            for cell in report.cells
        ],
        "best_by_class": report.best_by_class,
        "recommendations": [
            {
                "kind": r.kind,
                "complexity": r.complexity,
                "from_model": r.from_model,
                "to_model": r.to_model,
                "saving_usd": round(r.saving_usd, 10),
                "text": r.text,
            }
            for r in report.recommendations
        ],
        "days": report.days,
    }
