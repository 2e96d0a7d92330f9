"""Cost/capability trade-off analysis (seed 001): which model is worth its price per request class.

Input: one :class:`UsageRow` per request (model, complexity class, cost, success: ``True`` /
``False`` / ``None`` = no outcome known). Output (:func:`analyze_tradeoffs`): per model x class
the requests, cost, success rate and cost per successful query; the best model per class; and
recommendations in plain words.

Definitions:
- success rate = successes / requests with a known outcome (``None`` when none is known);
- cost per successful query = cost of the requests with a known outcome / their successes;
- **best model of a class**: among models with at least ``min_outcomes`` known outcomes there,
  those whose success rate is within ``tolerance`` of the class's best rate; of these, the lowest
  cost per successful query. A model that fails more often is never "best" only for being cheap.
- a **downgrade** is recommended when a class's best model costs less per request than a model in
  use for it and succeeds as often (within ``tolerance``); an **upgrade** when a model in use
  succeeds clearly less often (by more than ``tolerance``) and a better one also costs less per
  successful query.

Pure functions: the caller queries the ledger and passes ``days`` (the period's length) to get
costs per day.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "CellStats",
    "Recommendation",
    "TradeoffReport",
    "UsageRow",
    "analyze_tradeoffs",
]


@dataclass(frozen=True, slots=True)
class UsageRow:
    """One request: the model that answered, its complexity class, its cost and its outcome."""

    model: str
    complexity: str
    cost_usd: float
    success: bool | None = None


@dataclass(frozen=True, slots=True)
class CellStats:
    """One model on one complexity class."""

    model: str
    complexity: str
    requests: int
    cost_usd: float
    outcomes: int
    """Requests with a known outcome (``success`` not ``None``)."""
    successes: int
    judged_cost_usd: float
    """Cost of the requests with a known outcome."""

    @property
    def avg_cost_usd(self) -> float:
        return self.cost_usd / self.requests if self.requests else 0.0

    @property
    def success_rate(self) -> float | None:
        return self.successes / self.outcomes if self.outcomes else None

    @property
    def cost_per_success_usd(self) -> float | None:
        """Cost per successful query (``None``: no known outcome; ``inf``: none succeeded)."""
        if not self.outcomes:
            return None
        return self.judged_cost_usd / self.successes if self.successes else float("inf")


@dataclass(frozen=True, slots=True)
class Recommendation:
    """A suggested move of one class's requests from one model to another, with its saving."""

    kind: str  # "downgrade" | "upgrade"
    complexity: str
    from_model: str
    to_model: str
    saving_usd: float
    """Estimated saving over the period (per day when ``days`` was given); < 0 = extra spend."""
    text: str


@dataclass(frozen=True, slots=True)
class TradeoffReport:
    cells: tuple[CellStats, ...]
    best_by_class: dict[str, str | None]
    recommendations: tuple[Recommendation, ...]
    days: float | None = None


def _row(item: UsageRow | Mapping[str, Any]) -> UsageRow:
    if isinstance(item, UsageRow):
        return item
    success = item.get("success")
    return UsageRow(
        model=str(item["model"]),
        complexity=str(item.get("complexity") or "unknown"),
        cost_usd=float(item.get("cost_usd") or 0.0),
        success=None if success is None else bool(success),
    )


def _cells(rows: Iterable[UsageRow | Mapping[str, Any]]) -> list[CellStats]:
    acc: dict[tuple[str, str], list[float]] = {}
    for item in rows:
        r = _row(item)
        a = acc.setdefault((r.model, r.complexity), [0, 0.0, 0, 0, 0.0])
        a[0] += 1
        a[1] += r.cost_usd
        if r.success is not None:
            a[2] += 1
            a[3] += r.success
            a[4] += r.cost_usd
    return [
        CellStats(m, c, int(a[0]), a[1], int(a[2]), int(a[3]), a[4])
        for (m, c), a in sorted(acc.items(), key=lambda kv: (kv[0][1], kv[0][0]))
    ]


def _best(cells: list[CellStats], min_outcomes: int, tolerance: float) -> CellStats | None:
    judged = [c for c in cells if c.outcomes >= min_outcomes and c.success_rate is not None]
    if not judged:
        return None
    top = max(c.success_rate or 0.0 for c in judged)
    good = [c for c in judged if (c.success_rate or 0.0) >= top - tolerance]
    return min(good, key=lambda c: (c.cost_per_success_usd or 0.0, c.avg_cost_usd, c.model))


def _money(usd: float) -> str:
    return f"${usd:,.2f}" if abs(usd) >= 0.01 or usd == 0 else f"${usd:.4f}"


def _pct(rate: float | None) -> str:
    return "n/a" if rate is None else f"{rate:.0%}"


def _recommend(
    cls: str, cells: list[CellStats], best: CellStats, tolerance: float, days: float | None
) -> list[Recommendation]:
    per = "/day" if days else ""
    scale = 1.0 / days if days else 1.0
    out: list[Recommendation] = []
    for cell in cells:
        if cell.model == best.model or cell.success_rate is None:
            continue
        rate, best_rate = cell.success_rate, best.success_rate or 0.0
        saving = cell.requests * (cell.avg_cost_usd - best.avg_cost_usd) * scale
        spend = cell.cost_usd * scale
        if best.avg_cost_usd < cell.avg_cost_usd and best_rate >= rate - tolerance:
            text = (
                f"{cls} requests on {cell.model} cost {_money(spend)}{per} "
                f"({cell.requests} requests, {_pct(rate)} succeed); {best.model} succeeds as often "
                f"on them ({_pct(best_rate)} of {best.outcomes}) at {_money(best.avg_cost_usd)} "
                f"a request instead of {_money(cell.avg_cost_usd)}: moving them saves about "
                f"{_money(saving)}{per}."
            )
            out.append(Recommendation("downgrade", cls, cell.model, best.model, saving, text))
        elif best_rate > rate + tolerance and (best.cost_per_success_usd or 0.0) < (
            cell.cost_per_success_usd or 0.0
        ):
            text = (
                f"{cls} requests on {cell.model} succeed only {_pct(rate)} of the time "
                f"({cell.outcomes} with an outcome); {best.model} succeeds {_pct(best_rate)} and "
                f"costs {_money(best.cost_per_success_usd or 0.0)} per successful query against "
                f"{_money(cell.cost_per_success_usd or 0.0)}: moving them changes spend by "
                f"{_money(-saving)}{per}."
            )
            out.append(Recommendation("upgrade", cls, cell.model, best.model, saving, text))
    return out


def analyze_tradeoffs(
    rows: Iterable[UsageRow | Mapping[str, Any]],
    *,
    days: float | None = None,
    min_outcomes: int = 20,
    tolerance: float = 0.02,
) -> TradeoffReport:
    """Per model x class statistics, the best model per class and recommendations.

    ``rows`` are :class:`UsageRow` or mappings with ``model``, ``complexity``, ``cost_usd``,
    ``success``. ``days``: the period's length, to state costs and savings per day. A model
    needs ``min_outcomes`` known outcomes in a class to be judged there; success rates within
    ``tolerance`` count as "as often". Recommendations are sorted by saving, largest first.
    """
    if days is not None and days <= 0:
        raise ValueError("days must be positive")
    cells = _cells(rows)
    by_class: dict[str, list[CellStats]] = {}
    for cell in cells:
        by_class.setdefault(cell.complexity, []).append(cell)
    best_by_class: dict[str, str | None] = {}
    recommendations: list[Recommendation] = []
    for cls, group in by_class.items():
        best = _best(group, min_outcomes, tolerance)
        best_by_class[cls] = best.model if best else None
        if best is not None:
            judged = [c for c in group if c.outcomes >= min_outcomes]
            recommendations += _recommend(cls, judged, best, tolerance, days)
    recommendations.sort(key=lambda r: -r.saving_usd)
    return TradeoffReport(tuple(cells), best_by_class, tuple(recommendations), days)
