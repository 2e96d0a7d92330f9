"""Train and cross-validate the learned router on labelled outcomes.

Data: a CSV with ``prompt``, ``cheap_correct``, ``strong_correct`` (0/1) and optionally a
grouping column. Cross-validation is **grouped** k-fold, so near-duplicate prompts never sit on
both sides of a split: the groups are a ``group`` column when the file has one (or the column
named by ``group_col``), otherwise clusters of near-duplicate prompts (embedding cosine ≥ 0.95,
joined transitively, plus identical normalised text). Grouping by a topic column (MMLU's
``subject``) measures something else: how the router transfers to unseen topics.

Prompts are embedded at most ``max_tokens`` word pieces long, cut as ``truncation`` says (the CLI's
defaults: ``learned.DEFAULT_MAX_TOKENS``, ``DEFAULT_TRUNCATION``); the saved model records both,
and scoring embeds with them.

The reported metrics are those of the out-of-fold scores (every prompt scored by a model that
never saw its group), with percentile-bootstrap intervals; the saved model is then fitted on all
rows. A router is **accepted** only when the lower end of its APGR interval is above 0.5: an
interval that includes 0.5 cannot be told from random routing.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from thrifty.errors import ConfigError
from thrifty.routing import metrics
from thrifty.routing.learned import (
    LEGACY_MAX_TOKENS,
    LEGACY_TRUNCATION,
    LearnedModel,
    TextEmbedder,
)
from thrifty.routing.logistic import LogisticHead, calibration_error, fit_logistic, fit_platt

__all__ = [
    "DEFAULT_L2",
    "Dataset",
    "TrainReport",
    "cross_validate",
    "embed_cached",
    "fit_heads",
    "group_folds",
    "load_csv",
    "near_duplicate_groups",
    "train_router",
]

DEFAULT_L2 = 10.0
"""L2 penalty on the summed log-loss (scikit-learn ``C = 0.1``): the best of 3-30 on the MMLU
data (APGR within ±0.003 over 5-15); weaker penalties over-fit."""
NEAR_DUPLICATE_COSINE = 0.95
NEAR_DUPLICATE_MAX_ROWS = 30_000
"""Above this many rows only identical normalised prompts are grouped (the pairwise pass is n²)."""
if TYPE_CHECKING:
    from thrifty.cache.embedder import Truncation

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Dataset:
    """Labelled prompts: 0/1 outcomes per model, optional groups, and the file's sha256."""

    prompts: list[str]
    cheap: FloatArray
    strong: FloatArray
    groups: list[str] | None = None
    group_col: str | None = None
    sha256: str = ""

    def __len__(self) -> int:
        return len(self.prompts)

    def subset(self, idx: Sequence[int] | npt.NDArray[np.intp]) -> Dataset:
        ids = [int(i) for i in idx]
        return Dataset(
            prompts=[self.prompts[i] for i in ids],
            cheap=self.cheap[ids],
            strong=self.strong[ids],
            groups=None if self.groups is None else [self.groups[i] for i in ids],
            group_col=self.group_col,
            sha256=hashlib.sha256(f"{self.sha256}:{ids}".encode()).hexdigest(),
        )


def _flag(value: str, row: int, column: str) -> float:
    text = value.strip().lower()
    if text in ("1", "1.0", "true", "yes"):
        return 1.0
    if text in ("0", "0.0", "false", "no"):
        return 0.0
    raise ConfigError(f"row {row}: {column} must be 0 or 1, got {value!r}")


def load_csv(path: Path | str, *, group_col: str | None = None) -> Dataset:
    """Read a training CSV. ``group_col``: the grouping column (default: ``group`` if present).

    Raises ``ConfigError`` on a missing file or column or a non-0/1 label.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    reader = csv.DictReader(io.StringIO(raw.decode("utf-8-sig"), newline=""))
    columns = set(reader.fieldnames or ())
    missing = {"prompt", "cheap_correct", "strong_correct"} - columns
    if missing:
        raise ConfigError(f"{path}: missing column(s) {', '.join(sorted(missing))}")
    if group_col is None and "group" in columns:
        group_col = "group"
    if group_col is not None and group_col not in columns:
        raise ConfigError(f"{path}: no column {group_col!r} to group by")
    prompts: list[str] = []
    cheap: list[float] = []
    strong: list[float] = []
    groups: list[str] = []
    for i, row in enumerate(reader, start=2):
        prompts.append(row["prompt"] or "")
        cheap.append(_flag(row["cheap_correct"] or "", i, "cheap_correct"))
        strong.append(_flag(row["strong_correct"] or "", i, "strong_correct"))
        if group_col is not None:
            groups.append(row[group_col] or "")
    if not prompts:
        raise ConfigError(f"{path}: no rows")
    return Dataset(
        prompts=prompts,
        cheap=np.array(cheap),
        strong=np.array(strong),
        groups=groups if group_col is not None else None,
        group_col=group_col,
        sha256=hashlib.sha256(raw).hexdigest(),
    )


def embed_cached(
    texts: list[str],
    embedder: TextEmbedder,
    cache: Path | str | None = None,
    *,
    max_tokens: int = LEGACY_MAX_TOKENS,
    truncation: Truncation = LEGACY_TRUNCATION,
) -> npt.NDArray[np.float32]:
    """Embed ``texts`` (at most ``max_tokens`` word pieces each, cut as ``truncation`` says),
    reusing ``cache`` (an ``.npz``) when it holds these texts' vectors from this embedder at this
    cap and cut; (re)writes it otherwise. Embedding 14k prompts takes minutes on 2 cores."""
    digest = hashlib.sha256(embedder.model_id.encode())
    if (max_tokens, truncation) != (LEGACY_MAX_TOKENS, LEGACY_TRUNCATION):
        digest.update(f"max_tokens={max_tokens},{truncation}".encode())  # old caches stay valid
    for text in texts:
        digest.update(hashlib.sha256(text.encode()).digest())
    key = digest.hexdigest()
    if cache is not None and Path(cache).is_file():
        with np.load(cache, allow_pickle=False) as data:
            if str(data["key"]) == key:
                return np.array(data["vectors"], dtype=np.float32)
    vectors = embedder.embed(texts, max_tokens, truncation)
    if cache is not None:
        with Path(cache).open("wb") as fh:
            np.savez(fh, key=np.array(key), vectors=vectors)
    return vectors


def _normalise(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().lower()


def near_duplicate_groups(
    prompts: Sequence[str],
    vectors: npt.ArrayLike | None = None,
    *,
    cosine: float = NEAR_DUPLICATE_COSINE,
) -> IntArray:
    """A group id per prompt: identical normalised texts, and (with unit ``vectors`` and at most
    ``NEAR_DUPLICATE_MAX_ROWS`` rows) pairs at cosine ≥ ``cosine``, joined transitively."""
    n = len(prompts)
    parent = np.arange(n)

    def find(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = int(parent[a])
        return a

    def union(a: int, b: int) -> None:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)

    first: dict[str, int] = {}
    for i, text in enumerate(prompts):
        union(i, first.setdefault(_normalise(text), i))
    if vectors is not None and n <= NEAR_DUPLICATE_MAX_ROWS:
        x = np.asarray(vectors, dtype=np.float32)
        for start in range(0, n, 2048):
            sims = x[start : start + 2048] @ x.T
            rows, cols = np.nonzero(sims >= cosine)
            for a, b in zip(rows + start, cols, strict=True):
                if a < b:
                    union(int(a), int(b))
    roots = np.array([find(i) for i in range(n)])
    return np.unique(roots, return_inverse=True)[1].astype(np.int64)


def group_folds(groups: Sequence[Any] | npt.ArrayLike, k: int, seed: int = 0) -> IntArray:
    """A fold index (0..k-1) per row; all rows of a group share a fold. Groups are shuffled
    (``seed``) then placed largest first into the currently smallest fold."""
    labels = np.unique(np.asarray(groups).astype(str), return_inverse=True)[1]
    n_groups = int(labels.max()) + 1
    if n_groups < k:
        raise ConfigError(f"{n_groups} groups cannot fill {k} folds: use fewer folds")
    sizes = np.bincount(labels, minlength=n_groups)
    order = np.random.default_rng(seed).permutation(n_groups)
    order = order[np.argsort(-sizes[order], kind="stable")]
    fill = np.zeros(k, dtype=np.int64)
    fold_of = np.empty(n_groups, dtype=np.int64)
    for g in order:
        f = int(np.argmin(fill))
        fold_of[g] = f
        fill[f] += sizes[g]
    return fold_of[labels]


def fit_heads(
    x: npt.ArrayLike,
    cheap: npt.ArrayLike,
    strong: npt.ArrayLike,
    *,
    l2: float = DEFAULT_L2,
    calibrate: bool = True,
    calibration_folds: int = 3,
    seed: int = 0,
) -> tuple[LogisticHead, LogisticHead]:
    """Fit ``(strong_head, cheap_head)``; with ``calibrate``, Platt-scale each on logits of an
    inner ``calibration_folds``-fold split (held out from the head that produced them)."""
    xs = np.asarray(x, dtype=np.float64)
    labels = {"strong": np.asarray(strong, dtype=np.float64), "cheap": np.asarray(cheap, float)}
    inner = np.random.default_rng(seed).permutation(len(xs)) % calibration_folds
    heads: dict[str, LogisticHead] = {}
    for name, y in labels.items():
        w, b = fit_logistic(xs, y, l2=l2)
        a, c = 1.0, 0.0
        if calibrate and len(xs) >= 2 * calibration_folds:
            held_out = np.empty(len(xs))
            for f in range(calibration_folds):
                fit_rows = inner != f
                wf, bf = fit_logistic(xs[fit_rows], y[fit_rows], l2=l2)
                held_out[~fit_rows] = xs[~fit_rows] @ wf + bf
            a, c = fit_platt(held_out, y)
        heads[name] = LogisticHead(w, b, a, c)
    return heads["strong"], heads["cheap"]


@dataclass(frozen=True)
class CrossValidation:
    """Out-of-fold probabilities (each row predicted by heads that never saw its group)."""

    p_strong: FloatArray
    p_cheap: FloatArray

    @property
    def scores(self) -> FloatArray:
        return self.p_strong - self.p_cheap


def cross_validate(
    x: npt.ArrayLike,
    cheap: npt.ArrayLike,
    strong: npt.ArrayLike,
    folds: IntArray,
    *,
    l2: float = DEFAULT_L2,
    calibrate: bool = True,
    seed: int = 0,
) -> CrossValidation:
    """Fit the heads on all folds but one and predict that one, for each fold."""
    xs = np.asarray(x, dtype=np.float64)
    c, s = np.asarray(cheap, dtype=np.float64), np.asarray(strong, dtype=np.float64)
    p_strong, p_cheap = np.empty(len(xs)), np.empty(len(xs))
    for f in np.unique(folds):
        test = folds == f
        head_s, head_c = fit_heads(
            xs[~test], c[~test], s[~test], l2=l2, calibrate=calibrate, seed=seed
        )
        p_strong[test] = head_s.predict(xs[test])
        p_cheap[test] = head_c.predict(xs[test])
    return CrossValidation(p_strong, p_cheap)


@dataclass(frozen=True)
class TrainReport:
    """Cross-validated metrics of the learned router and of the baselines on the same rows."""

    rows: int
    folds: int
    grouping: str
    n_groups: int
    intervals: dict[str, dict[str, metrics.Interval]]
    """``{"learned" | "length" | "random" | "oracle": {"apgr" | "cpt50" | "cpt80": Interval}}``"""
    calibration: dict[str, float] = field(default_factory=dict)
    """Out-of-fold expected calibration error of each head (``strong``, ``cheap``)."""
    curves: dict[str, tuple[metrics.CurvePoint, ...]] = field(default_factory=dict)

    @property
    def accepted(self) -> bool:
        """The learned router's APGR interval lies above 0.5 (better than random routing)."""
        apgr = self.intervals["learned"]["apgr"]
        return bool(np.isfinite(apgr.low) and apgr.low > 0.5)

    def as_metadata(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "folds": self.folds,
            "grouping": self.grouping,
            "n_groups": self.n_groups,
            "cv": {
                name: {k: [iv.estimate, iv.low, iv.high] for k, iv in ivs.items()}
                for name, ivs in self.intervals.items()
            },
            "calibration_ece": self.calibration,
        }


def _grouping(data: Dataset, vectors: npt.ArrayLike) -> tuple[IntArray, str]:
    if data.groups is not None:
        labels = np.unique(np.asarray(data.groups), return_inverse=True)[1]
        return labels.astype(np.int64), f"column {data.group_col!r}"
    near = len(data) <= NEAR_DUPLICATE_MAX_ROWS
    how = f"near-duplicate clusters (cosine >= {NEAR_DUPLICATE_COSINE})" if near else "exact text"
    return near_duplicate_groups(data.prompts, vectors if near else None), how


def train_router(
    data: Dataset,
    vectors: npt.ArrayLike,
    *,
    embedder_id: str,
    max_tokens: int,
    truncation: Truncation,
    folds: int = 5,
    seed: int = 0,
    l2: float = DEFAULT_L2,
    calibrate: bool = True,
    n_boot: int = 1000,
    baselines: dict[str, FloatArray] | None = None,
) -> tuple[LearnedModel, TrainReport]:
    """Cross-validate, then fit the model on all rows.

    ``vectors``: the prompts' embeddings (rows aligned with ``data``), embedded at most
    ``max_tokens`` word pieces long, cut as ``truncation`` says (the model records both; scoring
    embeds with them).
    ``baselines``: extra scores to report on the same rows (e.g. ``{"length": ...}``); random
    and the oracle are always added. The returned model carries the report in its metadata;
    whether to save it is the caller's call (see :attr:`TrainReport.accepted`).
    """
    x = np.asarray(vectors, dtype=np.float64)
    if len(x) != len(data):
        raise ValueError("vectors and data must have the same number of rows")
    groups, grouping = _grouping(data, x)
    fold_of = group_folds(groups, folds, seed)
    cv = cross_validate(x, data.cheap, data.strong, fold_of, l2=l2, calibrate=calibrate, seed=seed)
    scored: dict[str, FloatArray | None] = {"learned": cv.scores}
    scored.update(baselines or {})
    scored["random"] = metrics.random_scores(len(data), seed)
    scored["oracle"] = None
    intervals: dict[str, dict[str, metrics.Interval]] = {}
    curves: dict[str, tuple[metrics.CurvePoint, ...]] = {}
    for name, scores in scored.items():
        intervals[name] = metrics.bootstrap(
            data.cheap, data.strong, scores, n_boot=n_boot, seed=seed
        )
        if scores is None:
            curves[name] = metrics.oracle_curve(data.cheap, data.strong)
        else:
            curves[name] = metrics.curve(scores, data.cheap, data.strong)
    report = TrainReport(
        rows=len(data),
        folds=folds,
        grouping=grouping,
        n_groups=int(groups.max()) + 1,
        intervals=intervals,
        calibration={
            "strong": calibration_error(cv.p_strong, data.strong),
            "cheap": calibration_error(cv.p_cheap, data.cheap),
        },
        curves=curves,
    )
    head_s, head_c = fit_heads(x, data.cheap, data.strong, l2=l2, calibrate=calibrate, seed=seed)
    meta = {
        "data_sha256": data.sha256,
        "l2": l2,
        "calibrated": calibrate,
        "seed": seed,
        **report.as_metadata(),
    }
    return LearnedModel(head_s, head_c, embedder_id, meta, max_tokens, truncation), report
