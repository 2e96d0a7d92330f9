"""Router quality metrics as RouteLLM defines them: the quality/cost curve, APGR and CPT(x%).

A router gives each prompt a score (higher = needs the strong model more). For the thresholds at
the score deciles (``np.quantile`` of the scores at 0, 0.1, ..., 1, linear interpolation, as
``pd.qcut(scores, 10, retbins=True)`` in RouteLLM's ``evals/benchmarks.py``), prompts scoring
``>= threshold`` go to the strong model (``> threshold`` for the last, the maximum, so the curve
ends at 0% strong); ties move together. Each threshold gives one point of the curve: (share of
strong calls, accuracy).

- **APGR** (average performance gap recovered): the area between the curve and the all-cheap line
  divided by the area between the all-strong and the all-cheap lines (trapezoids over the points
  sorted by strong share; random routing scores 0.5, a perfect ranker more than 1).
- **CPT(x%)** (call-performance threshold): the share of strong calls needed to recover ``x`` of
  the accuracy gap, read off the curve by linear interpolation at the first crossing. RouteLLM
  uses ``np.interp(target, accuracy, share)``, which is the same number whenever accuracy rises
  with the share and is undefined (``np.interp`` needs increasing points) where noise makes it dip.

Baselines: the **oracle** (cheap where the cheap model is right, else strong; RouteLLM's
``get_optimal_accuracy`` on the same share grid) and **random** routing (expected curve: a straight
line, APGR 0.5, CPT(x) = x). Confidence intervals come from a percentile bootstrap over prompts.

All shares and accuracies are fractions in [0, 1]; labels are 0/1 arrays.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = [
    "BINS",
    "CurvePoint",
    "Interval",
    "RouterMetrics",
    "apgr",
    "bootstrap",
    "cpt",
    "curve",
    "evaluate",
    "operating_points",
    "oracle_curve",
    "oracle_metrics",
    "random_curve",
    "random_scores",
    "summarize",
]

BINS = 10
"""RouteLLM's threshold grid: the score deciles (11 thresholds, 11 curve points)."""

Array = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class CurvePoint:
    """One operating point: the threshold, the share of strong calls and the accuracy there."""

    threshold: float
    strong_share: float
    accuracy: float


@dataclass(frozen=True, slots=True)
class RouterMetrics:
    """A router's curve (sorted by strong share) and its summary numbers."""

    curve: tuple[CurvePoint, ...]
    cheap_accuracy: float
    strong_accuracy: float
    apgr: float
    cpt50: float
    cpt80: float


@dataclass(frozen=True, slots=True)
class Interval:
    """A point estimate with a percentile-bootstrap confidence interval."""

    estimate: float
    low: float
    high: float

    def contains(self, value: float) -> bool:
        return self.low <= value <= self.high

    def __str__(self) -> str:
        return f"{self.estimate:.3f} [{self.low:.3f}, {self.high:.3f}]"


def _labels(values: npt.ArrayLike) -> Array:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError("labels must be one-dimensional")
    return arr


def _check(scores: Array, cheap: Array, strong: Array) -> None:
    if not (len(scores) == len(cheap) == len(strong)):
        raise ValueError("scores, cheap and strong must have the same length")
    if len(scores) == 0:
        raise ValueError("no rows to evaluate")
    if not np.all(np.isfinite(scores)):
        raise ValueError("scores must be finite")


def _curve_arrays(
    scores: Array, cheap: Array, strong: Array, bins: int
) -> tuple[Array, Array, Array]:
    """``(thresholds, strong_share, accuracy)`` in threshold order (shares falling)."""
    n = len(scores)
    order = np.argsort(scores, kind="stable")
    ranked = scores[order]
    delta = (strong - cheap)[order]
    # gain_from[i] = accuracy gained (in rows) by sending ranked[i:] to the strong model
    gain_from = np.zeros(n + 1)
    gain_from[:n] = np.cumsum(delta[::-1])[::-1]
    grid = np.linspace(0.0, 1.0, bins + 1)
    thresholds = np.asarray(np.quantile(scores, grid), dtype=np.float64)
    start = np.searchsorted(ranked, thresholds, side="left")
    start[-1] = np.searchsorted(ranked, thresholds[-1], side="right")
    share = (n - start) / n
    accuracy = (cheap.sum() + gain_from[start]) / n
    return thresholds, share, accuracy


def curve(
    scores: npt.ArrayLike, cheap: npt.ArrayLike, strong: npt.ArrayLike, *, bins: int = BINS
) -> tuple[CurvePoint, ...]:
    """The router's curve on the decile grid, sorted by strong share (0 → 1)."""
    s, c, g = np.asarray(scores, dtype=np.float64), _labels(cheap), _labels(strong)
    _check(s, c, g)
    thresholds, share, accuracy = _curve_arrays(s, c, g, bins)
    points = [
        CurvePoint(float(t), float(x), float(a))
        for t, x, a in zip(thresholds, share, accuracy, strict=True)
    ]
    return tuple(sorted(points, key=lambda p: p.strong_share))


def operating_points(
    scores: npt.ArrayLike, cheap: npt.ArrayLike, strong: npt.ArrayLike
) -> tuple[CurvePoint, ...]:
    """One point per distinct score (strong when ``score >= value``), sorted by strong share.

    For scorers with a few distinct values (``rules``), the decile grid collapses: most deciles
    fall on the same value, the curve is a straight line and APGR is 0.5 by construction. These
    points show what each of the scorer's own thresholds does instead.
    """
    s, c, g = np.asarray(scores, dtype=np.float64), _labels(cheap), _labels(strong)
    _check(s, c, g)
    values = np.unique(s)
    n = len(s)
    points = [CurvePoint(float("inf"), 0.0, float(c.mean()))]
    for v in values[::-1]:
        sel = s >= v
        points.append(CurvePoint(float(v), float(sel.mean()), float(np.where(sel, g, c).sum() / n)))
    return tuple(points)


def _apgr(share: Array, accuracy: Array, cheap_acc: float, strong_acc: float) -> float:
    order = np.argsort(share, kind="stable")
    x, y = share[order], accuracy[order]
    width = float(x[-1] - x[0])
    gap = strong_acc - cheap_acc
    if width <= 0 or gap == 0:
        return float("nan")
    area = float(np.trapezoid(y, x))
    return (area - cheap_acc * width) / (gap * width)


def _cpt(share: Array, accuracy: Array, cheap_acc: float, strong_acc: float, x: float) -> float:
    order = np.argsort(share, kind="stable")
    xs, ys = share[order], accuracy[order]
    target = cheap_acc + x * (strong_acc - cheap_acc)
    if ys[0] >= target:
        return float(xs[0])
    for i in range(1, len(xs)):
        if ys[i] >= target:
            y0, y1 = ys[i - 1], ys[i]
            frac = (target - y0) / (y1 - y0) if y1 != y0 else 1.0
            return float(xs[i - 1] + frac * (xs[i] - xs[i - 1]))
    return float("nan")


def apgr(points: Sequence[CurvePoint], cheap_accuracy: float, strong_accuracy: float) -> float:
    """Average performance gap recovered by a curve (NaN when the two models tie)."""
    share = np.array([p.strong_share for p in points])
    accuracy = np.array([p.accuracy for p in points])
    return _apgr(share, accuracy, cheap_accuracy, strong_accuracy)


def cpt(
    points: Sequence[CurvePoint], cheap_accuracy: float, strong_accuracy: float, x: float
) -> float:
    """Share of strong calls needed to recover ``x`` (0-1) of the gap; NaN if never reached."""
    share = np.array([p.strong_share for p in points])
    accuracy = np.array([p.accuracy for p in points])
    return _cpt(share, accuracy, cheap_accuracy, strong_accuracy, x)


def _metrics(
    thresholds: Array, share: Array, accuracy: Array, cheap: Array, strong: Array
) -> RouterMetrics:
    cheap_acc, strong_acc = float(cheap.mean()), float(strong.mean())
    points = tuple(
        sorted(
            (
                CurvePoint(float(t), float(x), float(a))
                for t, x, a in zip(thresholds, share, accuracy, strict=True)
            ),
            key=lambda p: p.strong_share,
        )
    )
    return RouterMetrics(
        curve=points,
        cheap_accuracy=cheap_acc,
        strong_accuracy=strong_acc,
        apgr=_apgr(share, accuracy, cheap_acc, strong_acc),
        cpt50=_cpt(share, accuracy, cheap_acc, strong_acc, 0.5),
        cpt80=_cpt(share, accuracy, cheap_acc, strong_acc, 0.8),
    )


def evaluate(
    scores: npt.ArrayLike, cheap: npt.ArrayLike, strong: npt.ArrayLike, *, bins: int = BINS
) -> RouterMetrics:
    """Curve, APGR, CPT(50%) and CPT(80%) of a router's ``scores`` on labelled prompts."""
    s, c, g = np.asarray(scores, dtype=np.float64), _labels(cheap), _labels(strong)
    _check(s, c, g)
    thresholds, share, accuracy = _curve_arrays(s, c, g, bins)
    return _metrics(thresholds, share, accuracy, c, g)


def _oracle_arrays(cheap: Array, strong: Array, bins: int) -> tuple[Array, Array, Array]:
    n = len(cheap)
    share = np.linspace(0.0, 1.0, bins + 1)
    rescuable = float(np.sum((cheap < 0.5) & (strong >= 0.5)))
    accuracy = (cheap.sum() + np.minimum(share * n, rescuable)) / n
    return np.full(bins + 1, np.nan), share, accuracy


def oracle_curve(
    cheap: npt.ArrayLike, strong: npt.ArrayLike, *, bins: int = BINS
) -> tuple[CurvePoint, ...]:
    """The best possible curve: strong calls go first to prompts only the strong model gets right
    (RouteLLM's ``get_optimal_accuracy`` at shares 0, 1/bins, ..., 1). Thresholds are NaN."""
    c, g = _labels(cheap), _labels(strong)
    return _metrics(*_oracle_arrays(c, g, bins), c, g).curve


def oracle_metrics(
    cheap: npt.ArrayLike, strong: npt.ArrayLike, *, bins: int = BINS
) -> RouterMetrics:
    """APGR / CPT of the oracle router (the physical limit of any router on these labels)."""
    c, g = _labels(cheap), _labels(strong)
    if len(c) != len(g) or len(c) == 0:
        raise ValueError("cheap and strong must be non-empty and of the same length")
    return _metrics(*_oracle_arrays(c, g, bins), c, g)


def random_curve(
    cheap_accuracy: float, strong_accuracy: float, *, bins: int = BINS
) -> tuple[CurvePoint, ...]:
    """The expected curve of random routing: a straight line (APGR 0.5, CPT(x) = x)."""
    return tuple(
        CurvePoint(
            float("nan"), float(s), cheap_accuracy + float(s) * (strong_accuracy - cheap_accuracy)
        )
        for s in np.linspace(0.0, 1.0, bins + 1)
    )


def random_scores(n: int, seed: int = 0) -> Array:
    """Scores of a random router (uniform, seeded): an empirical baseline with its own noise."""
    return np.random.default_rng(seed).random(n)


def bootstrap(
    cheap: npt.ArrayLike,
    strong: npt.ArrayLike,
    scores: npt.ArrayLike | None = None,
    *,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    bins: int = BINS,
) -> dict[str, Interval]:
    """Percentile-bootstrap intervals of ``apgr``, ``cpt50`` and ``cpt80``.

    Each replicate resamples the prompts with replacement (scores and labels together) and
    recomputes the deciles and the metrics; ``scores=None`` bootstraps the oracle. The same
    ``seed`` gives the same intervals.
    """
    c, g = _labels(cheap), _labels(strong)
    s = None if scores is None else np.asarray(scores, dtype=np.float64)
    if s is not None:
        _check(s, c, g)
    base = oracle_metrics(c, g, bins=bins) if s is None else evaluate(s, c, g, bins=bins)

    def one(idx: npt.NDArray[np.intp]) -> RouterMetrics:
        if s is None:
            return oracle_metrics(c[idx], g[idx], bins=bins)
        return evaluate(s[idx], c[idx], g[idx], bins=bins)

    return summarize(base, _replicates(one, len(c), n_boot, seed), level)


def _replicates(
    one: Callable[[npt.NDArray[np.intp]], RouterMetrics], n: int, n_boot: int, seed: int
) -> list[RouterMetrics]:
    rng = np.random.default_rng(seed)
    return [one(rng.integers(0, n, size=n)) for _ in range(n_boot)]


def summarize(
    base: RouterMetrics, replicates: Sequence[RouterMetrics], level: float = 0.95
) -> dict[str, Interval]:
    """Turn bootstrap replicates into ``{"apgr", "cpt50", "cpt80"}`` percentile intervals."""
    lo_q, hi_q = (1 - level) / 2, 1 - (1 - level) / 2
    out: dict[str, Interval] = {}
    for name in ("apgr", "cpt50", "cpt80"):
        values = np.array([getattr(r, name) for r in replicates], dtype=np.float64)
        values = values[np.isfinite(values)]
        estimate = float(getattr(base, name))
        if len(values) == 0:
            out[name] = Interval(estimate, float("nan"), float("nan"))
            continue
        low, high = np.quantile(values, [lo_q, hi_q])
        out[name] = Interval(estimate, float(low), float(high))
    return out
