"""A router training set from the ledger: each cheap-routed request that was shadowed by the
strong model (``shadow_of`` tag) becomes one row ``(prompt, cheap_correct, strong_correct)``.

Labels, in order of preference:
- a client's rating (``POST /v1/feedback``: score ≥ 0.5 and no clarification needed) of the
  answer that model gave;
- otherwise the strong answer is taken as the reference (``strong_correct = 1``) and the cheap
  answer is right when it agrees with it (same text after normalising case, whitespace and
  punctuation) — a proxy that suits short, closed answers and undercounts the cheap model on
  open-ended ones.

Prompts and answers come from the rows' stored content, so ``ledger.store_content: true`` must
have been on while the data was collected.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from thrifty.db.schema import feedback, ledger
from thrifty.ledger.periods import Period

_NORM = re.compile(r"[\W_]+")


def _norm(text: str | None) -> str:
    return _NORM.sub(" ", (text or "").lower()).strip()


def _rated(score: float | None, clarification: bool | None) -> bool | None:
    if score is not None:
        return score >= 0.5 and not clarification
    if clarification:
        return False
    return None


def _prompt(content: dict[str, Any] | None) -> str | None:
    if not content:
        return None
    messages = (content.get("request") or {}).get("messages") or []
    for message in reversed(messages):
        if message.get("role") == "user" and isinstance(message.get("content"), str):
            return str(message["content"])
    return None


async def ledger_rows(engine: AsyncEngine, period: Period) -> list[dict[str, Any]]:
    c, f = ledger.c, feedback.c
    query = (
        select(c.request_id, c.tags, c.content, c.status, f.score, f.needed_clarification)
        .select_from(ledger.outerjoin(feedback, f.request_id == c.request_id))
        .where(c.started_at >= period.start, c.started_at < period.end, c.status == 200)
    )
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).mappings().all()
    by_id = {r["request_id"]: r for r in rows}
    out: list[dict[str, Any]] = []
    for shadow in rows:
        original = by_id.get((shadow["tags"] or {}).get("shadow_of"))
        if original is None:
            continue
        prompt = _prompt(original["content"])
        if prompt is None:
            continue
        strong_answer = (shadow["content"] or {}).get("response")
        cheap_answer = (original["content"] or {}).get("response")
        strong = _rated(shadow["score"], shadow["needed_clarification"])
        cheap = _rated(original["score"], original["needed_clarification"])
        if strong is None:
            strong = True
        if cheap is None:
            cheap = bool(strong_answer) and _norm(cheap_answer) == _norm(strong_answer)
        out.append({"prompt": prompt, "cheap_correct": int(cheap), "strong_correct": int(strong)})
    return out


def write_csv(rows: list[dict[str, Any]], path: Path) -> None:
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["prompt", "cheap_correct", "strong_correct"])
        writer.writeheader()
        writer.writerows(rows)
