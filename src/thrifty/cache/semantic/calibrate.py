"""Choose the semantic-cache threshold from labelled pairs, with an honest error bar.

A *hit* is a pair the cache would serve: cosine ≥ threshold (and, with the guard, no near-miss
reason). Precision is the share of hits that are right; recall the share of right pairs that
hit. :func:`calibrate` picks the lowest threshold whose precision meets the target **at that
threshold and at every higher one that still hits** (precision is not monotonic in the threshold;
this keeps a lucky dip from being chosen), never below 0.5, and reports a two-sided 95% Wilson
score interval on the false-hit rate (1 - precision) there. The Wilson interval stays inside
[0, 1] and is sensible at zero false hits, where the normal approximation claims certainty.

Pair files: ``.json`` (a list of ``{"origin", "similar"}`` paraphrases — positives only — or of
``{"a", "b", "label"}``), ``.jsonl`` of either, or ``.csv`` / ``.tsv`` with columns
``a,b,label`` (a header row is optional; label 1/0, true/false, yes/no).
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from thrifty.cache.semantic.devset import LabelledPair
from thrifty.cache.semantic.guard import Guard

__all__ = [
    "Calibration",
    "CurvePoint",
    "PairScores",
    "calibrate",
    "curve",
    "read_pairs",
    "score_pairs",
    "wilson_interval",
]

_TRUE = {"1", "true", "yes", "y", "t", "same", "duplicate"}
_FALSE = {"0", "false", "no", "n", "f", "different"}


def _label(value: Any, where: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"{where}: label {value!r} is not 1/0, true/false or yes/no")


def _from_record(item: Any, where: str) -> LabelledPair:
    if not isinstance(item, dict):
        raise ValueError(f"{where}: expected an object, got {type(item).__name__}")
    if "origin" in item and "similar" in item:
        label = _label(item.get("label", True), where)
        return LabelledPair(str(item["origin"]), str(item["similar"]), label)
    if "a" in item and "b" in item and "label" in item:
        return LabelledPair(str(item["a"]), str(item["b"]), _label(item["label"], where))
    raise ValueError(f"{where}: expected keys origin/similar or a/b/label")


def read_pairs(path: str | Path) -> list[LabelledPair]:
    """Read labelled pairs from a ``.json``, ``.jsonl``, ``.csv`` or ``.tsv`` file."""
    path = Path(path)
    suffix = path.suffix.lower()
    text = path.read_text(encoding="utf-8")
    if suffix == ".jsonl":
        rows = [json.loads(line) for line in text.splitlines() if line.strip()]
        return [_from_record(r, f"{path}:{i + 1}") for i, r in enumerate(rows)]
    if suffix == ".json":
        data = json.loads(text)
        if isinstance(data, dict) and isinstance(data.get("pairs"), list):
            data = data["pairs"]
        if not isinstance(data, list):
            raise ValueError(f"{path}: expected a JSON list of pairs")
        return [_from_record(r, f"{path}[{i}]") for i, r in enumerate(data)]
    if suffix in (".csv", ".tsv"):
        rows_csv = list(csv.reader(text.splitlines(), delimiter="\t" if suffix == ".tsv" else ","))
        if rows_csv and [c.strip().lower() for c in rows_csv[0][:3]] == ["a", "b", "label"]:
            rows_csv = rows_csv[1:]
        out = []
        for i, row in enumerate(rows_csv):
            if not row:
                continue
            if len(row) < 3:
                raise ValueError(f"{path}:{i + 1}: expected a,b,label")
            out.append(LabelledPair(row[0], row[1], _label(row[2], f"{path}:{i + 1}")))
        return out
    raise ValueError(f"{path}: unsupported pair file (use .json, .jsonl, .csv or .tsv)")


@dataclass(frozen=True, slots=True)
class PairScores:
    """Per pair: cosine, whether the guard lets it through (with its reason), and the label."""

    cosine: npt.NDArray[np.float32]
    guard_ok: npt.NDArray[np.bool_]
    labels: npt.NDArray[np.bool_]
    reasons: list[str | None]


def score_pairs(
    pairs: Sequence[LabelledPair],
    embed: Callable[[list[str]], npt.NDArray[np.float32]],
    guard: Guard | None = None,
) -> PairScores:
    """Embed every distinct text once and score each pair (the guard is optional)."""
    texts = sorted({p.a for p in pairs} | {p.b for p in pairs})
    index = {t: i for i, t in enumerate(texts)}
    vectors = embed(texts) if texts else np.empty((0, 0), dtype=np.float32)
    a = vectors[[index[p.a] for p in pairs]] if pairs else vectors
    b = vectors[[index[p.b] for p in pairs]] if pairs else vectors
    cosine = np.einsum("ij,ij->i", a, b).astype(np.float32) if pairs else np.empty(0, np.float32)
    verdicts = [guard.check(p.a, p.b) for p in pairs] if guard is not None else []
    return PairScores(
        cosine=cosine,
        guard_ok=np.array([v.ok for v in verdicts] if guard else [True] * len(pairs), dtype=bool),
        labels=np.array([p.label for p in pairs], dtype=bool),
        reasons=[v.reason for v in verdicts] if guard else [None] * len(pairs),
    )


@dataclass(frozen=True, slots=True)
class CurvePoint:
    """Outcome of serving every pair with cosine ≥ ``threshold`` (that the guard lets through)."""

    threshold: float
    hits: int
    true_hits: int
    false_hits: int
    precision: float | None
    recall: float


def curve(scores: PairScores, thresholds: Sequence[float], *, guard: bool) -> list[CurvePoint]:
    """Precision and recall at each threshold (``precision`` is ``None`` where nothing hits)."""
    positives = int(scores.labels.sum())
    allowed = scores.guard_ok if guard else np.ones_like(scores.labels)
    out = []
    for t in thresholds:
        hit = (scores.cosine >= t) & allowed
        hits, true_hits = int(hit.sum()), int((hit & scores.labels).sum())
        out.append(
            CurvePoint(
                threshold=round(float(t), 4),
                hits=hits,
                true_hits=true_hits,
                false_hits=hits - true_hits,
                precision=true_hits / hits if hits else None,
                recall=true_hits / positives if positives else 0.0,
            )
        )
    return out


Z_95 = 1.959964  # the two-sided 95% normal quantile


def wilson_interval(successes: int, trials: int, z: float = Z_95) -> tuple[float, float]:
    """Two-sided Wilson score interval for a binomial proportion (95% by default)."""
    if trials == 0:
        return 0.0, 1.0
    p = successes / trials
    denom = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denom
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True, slots=True)
class Calibration:
    """The chosen threshold (``None`` if the target is out of reach) and the evidence for it."""

    target_precision: float
    guard: bool
    threshold: float | None
    point: CurvePoint | None
    false_hit_rate: float | None
    false_hit_ci: tuple[float, float] | None
    positives: int
    negatives: int
    curve: list[CurvePoint]
    cosine_only: list[CurvePoint]
    guard_rejections: dict[str, int] = field(default_factory=dict)
    ci_method: str = "Wilson score interval, two-sided 95%"

    @property
    def conclusive(self) -> bool:
        """Whether the pairs prove the target: the interval's upper bound on the false-hit rate
        is within ``1 - target_precision``. A threshold picked on a handful of hits is not (2
        right hits of 2 "meet" 0.99, while the false-hit rate could still be 66%)."""
        ci = self.false_hit_ci
        return ci is not None and ci[1] <= 1.0 - self.target_precision + 1e-12

    def hits_needed(self, z: float = Z_95) -> int | None:
        """How many hits, none of them false, would make the target conclusive: the Wilson
        upper bound with no failures is z² / (n + z²). ``None`` for a target of 1.0."""
        allowed = 1.0 - self.target_precision
        return math.ceil(z * z * (1 - allowed) / allowed) if allowed > 0 else None

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "conclusive": self.conclusive}


def _grid(step: float, low: float = 0.0, high: float = 1.0) -> list[float]:
    n = round((high - low) / step)
    return [round(low + i * step, 4) for i in range(n + 1)]


def calibrate(
    scores: PairScores,
    *,
    target_precision: float = 0.99,
    guard: bool = True,
    step: float = 0.005,
    floor: float = 0.5,
) -> Calibration:
    """Pick the lowest threshold meeting ``target_precision`` at and above it (see module doc).

    Never below ``floor``: with the guard on, unrelated pairs are mostly rejected anyway, so a
    labelled set may "allow" a threshold near 0 that real traffic, full of unrelated neighbours
    the set never sampled, would punish.
    """
    if not 0.0 < target_precision <= 1.0:
        raise ValueError("target precision must be in (0, 1]")
    grid = _grid(step)
    points = curve(scores, grid, guard=guard)
    chosen: CurvePoint | None = None
    for point in reversed(points):  # from strict to loose; stop at the first violation
        if point.precision is None:
            continue
        if point.threshold < floor:
            break
        if point.precision < target_precision:
            break
        chosen = point
    ci = rate = None
    if chosen is not None:
        rate = chosen.false_hits / chosen.hits
        ci = wilson_interval(chosen.false_hits, chosen.hits)
    rejections: dict[str, int] = {}
    for reason in scores.reasons:
        if reason is not None:
            rejections[reason] = rejections.get(reason, 0) + 1
    positives = int(scores.labels.sum())
    return Calibration(
        target_precision=target_precision,
        guard=guard,
        threshold=chosen.threshold if chosen else None,
        point=chosen,
        false_hit_rate=rate,
        false_hit_ci=ci,
        positives=positives,
        negatives=len(scores.labels) - positives,
        curve=points,
        cosine_only=curve(scores, grid, guard=False) if guard else points,
        guard_rejections=dict(sorted(rejections.items())),
    )
