"""Routing quality and decision latency of each scorer on the development data.

    .venv/bin/python bench/router.py                    # full MMLU file: ~6 min cold, ~1 min warm
    .venv/bin/python bench/router.py --sample 2000      # a quick look

Quality: APGR, CPT(50%) and CPT(80%) (RouteLLM's definitions, decile thresholds; see
``thrifty.routing.metrics``) with 95% bootstrap intervals, for ``length``, ``rules`` (the seed's
keyword classes, the example rule set), ``learned`` (grouped k-fold cross-validated: every prompt
scored by heads that never saw it or its near-duplicates), a seeded random router and the oracle.
The data is RouteLLM's MMLU outcomes (GPT-4 vs Mixtral, ``/work/shared/data/routing``).

Latency: wall time of ``scorer.score(body)`` per call (``perf_counter_ns`` around each call,
after a warm-up), one request at a time, on ``--latency-n`` prompts from the data as
single-message chat bodies; ``learned`` includes embedding the prompt (one text per call, the
shared int8 MiniLM on one thread) and uses the model fitted on all rows. ``length (tokens
given)`` is the length scorer when the caller already counted the prompt (``RequestMeta``);
``learned (embedding given)`` scores a vector already computed (e.g. by the semantic cache).

Embeddings of the data are cached in ``--embeddings-cache`` (default: under the temp dir), keyed
by the prompts and the embedder id. Results print as markdown and append to
``bench/results/router.jsonl``.
"""

from __future__ import annotations

import argparse
import gc
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from _common import REPO, machine, markdown_table, pct, save_results, versions

sys.path.insert(0, str(REPO / "src"))

from thrifty.cache.embedder import get_embedder
from thrifty.routing import metrics
from thrifty.routing.learned import LearnedModel, LearnedScorer
from thrifty.routing.length import LengthScorer
from thrifty.routing.rules import SEED_KEYWORD_RULES, RulesScorer
from thrifty.routing.scorers import RequestMeta, Scorer, text_body
from thrifty.routing.train import (
    DEFAULT_L2,
    cross_validate,
    embed_cached,
    fit_heads,
    group_folds,
    load_csv,
    near_duplicate_groups,
)

DEFAULT_DATA = Path("/work/shared/data/routing/mmlu_gpt4_vs_mixtral.csv")


def _latency(fn: Callable[[dict[str, Any]], object], bodies: list[dict[str, Any]]) -> list[float]:
    for body in bodies[:50]:
        fn(body)
    gc.collect()
    gc.disable()
    try:
        out = []
        for body in bodies:
            t0 = time.perf_counter_ns()
            fn(body)
            out.append((time.perf_counter_ns() - t0) / 1e6)
    finally:
        gc.enable()
    return sorted(out)


def _fmt_iv(iv: metrics.Interval, percent: bool) -> str:
    if percent:
        return f"{iv.estimate:.1%} [{iv.low:.1%}, {iv.high:.1%}]"
    return f"{iv.estimate:.3f} [{iv.low:.3f}, {iv.high:.3f}]"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--sample", type=int, default=None, help="use N random rows")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--bootstrap", type=int, default=1000)
    ap.add_argument("--latency-n", type=int, default=2000)
    ap.add_argument(
        "--embeddings-cache",
        type=Path,
        default=Path(tempfile.gettempdir()) / "thrifty-bench-router-embeddings.npz",
    )
    args = ap.parse_args()

    data = load_csv(args.data)
    if args.sample and args.sample < len(data):
        rng = np.random.default_rng(args.seed)
        data = data.subset(np.sort(rng.choice(len(data), args.sample, replace=False)))
    print(f"{len(data):,} prompts from {args.data.name}", flush=True)
    embedder = get_embedder()
    t0 = time.perf_counter()
    vectors = embed_cached(data.prompts, embedder, args.embeddings_cache)
    print(f"embeddings ready in {time.perf_counter() - t0:.1f} s", flush=True)

    length, rules = LengthScorer(), RulesScorer.from_config(SEED_KEYWORD_RULES)
    groups = near_duplicate_groups(data.prompts, vectors)
    folds = group_folds(groups, args.folds, args.seed)
    t0 = time.perf_counter()
    cv = cross_validate(vectors, data.cheap, data.strong, folds, seed=args.seed)
    print(f"cross-validated in {time.perf_counter() - t0:.1f} s", flush=True)
    scores: dict[str, np.ndarray | None] = {
        "length": np.array([length.score_text(p) for p in data.prompts]),
        "rules (seed keywords)": np.array([rules.score_text(p) for p in data.prompts]),
        "learned (CV)": cv.scores,
        "random": metrics.random_scores(len(data), args.seed),
        "oracle": None,
    }
    quality: dict[str, dict[str, metrics.Interval]] = {
        name: metrics.bootstrap(data.cheap, data.strong, s, n_boot=args.bootstrap, seed=args.seed)
        for name, s in scores.items()
    }

    head_s, head_c = fit_heads(vectors, data.cheap, data.strong, l2=DEFAULT_L2, seed=args.seed)
    learned = LearnedScorer(LearnedModel(head_s, head_c, embedder.model_id), embedder)
    rng = np.random.default_rng(args.seed + 1)
    picks = rng.choice(len(data), min(args.latency_n, len(data)), replace=False)
    bodies = [{"model": "auto", **text_body(data.prompts[i])} for i in picks]
    counted = RequestMeta(prompt_tokens=100)
    deciders: dict[str, Scorer | Callable[[dict[str, Any]], object]] = {
        "length": length,
        "length (tokens given)": lambda b: length.score(b, counted),
        "rules (seed keywords)": rules,
        "learned": learned,
    }
    latency: dict[str, list[float]] = {}
    for name, scorer in deciders.items():
        fn = scorer.score if isinstance(scorer, Scorer) else scorer
        latency[name] = _latency(fn, bodies)
    given = {id(b): vectors[i] for b, i in zip(bodies, picks, strict=True)}
    latency["learned (embedding given)"] = _latency(
        lambda b: learned.score_embeddings(given[id(b)]), bodies
    )

    rows, records = [], []
    for name, ivs in quality.items():
        key = name.replace(" (CV)", "")
        lat = latency.get(key)
        rows.append(
            [
                name,
                _fmt_iv(ivs["apgr"], False),
                _fmt_iv(ivs["cpt50"], True),
                _fmt_iv(ivs["cpt80"], True),
                f"{pct(lat, 50):.4f}" if lat else "—",
                f"{pct(lat, 99):.4f}" if lat else "—",
            ]
        )
        records.append(
            {
                "bench": "router",
                "router": name,
                "rows": len(data),
                **{k: [iv.estimate, iv.low, iv.high] for k, iv in ivs.items()},
                "p50_ms": pct(lat, 50) if lat else None,
                "p99_ms": pct(lat, 99) if lat else None,
            }
        )
    for name in ("length (tokens given)", "learned (embedding given)"):
        lat = latency[name]
        rows.append([name, "", "", "", f"{pct(lat, 50):.4f}", f"{pct(lat, 99):.4f}"])
        records.append(
            {"bench": "router", "router": name, "p50_ms": pct(lat, 50), "p99_ms": pct(lat, 99)}
        )
    print()
    print(
        markdown_table(
            ["router", "APGR [95% CI]", "CPT(50%)", "CPT(80%)", "p50 ms", "p99 ms"], rows
        )
    )
    print(
        f"\nall cheap {data.cheap.mean():.2%}, all strong {data.strong.mean():.2%}; "
        f"{args.folds}-fold CV grouped by near-duplicate clusters ({groups.max() + 1:,} groups); "
        f"latency over {len(bodies):,} single calls"
    )
    env = {"machine": machine(), "versions": versions("numpy", "onnxruntime", "tiktoken")}
    path = save_results("router", [{**r, **env} for r in records])
    print(f"results appended to {path}")


if __name__ == "__main__":
    main()
