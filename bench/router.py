"""Routing quality and decision latency of each scorer on the development data.

    .venv/bin/python bench/router.py                    # full MMLU file: ~4 min cold, ~2 min warm
    .venv/bin/python bench/router.py --sample 2000      # a quick look
    .venv/bin/python bench/router.py --sweep 32,64:head,64,128,256:head   # learned, per cap

Quality: APGR, CPT(50%) and CPT(80%) (RouteLLM's definitions, decile thresholds; see
``thrifty.routing.metrics``) with 95% bootstrap intervals, for ``length``, ``rules`` (the seed's
keyword classes, the example rule set), ``learned`` (grouped k-fold cross-validated: every prompt
scored by heads that never saw it or its near-duplicates; prompts embedded at most
``--max-tokens`` word pieces long, cut as ``--truncation`` says: the defaults of ``thrifty router
train``), a seeded random router and the oracle. The data is RouteLLM's MMLU outcomes (GPT-4
vs Mixtral, ``/work/shared/data/routing``).

Latency: time of ``scorer.score(body)`` per call (``perf_counter_ns`` — wall — and
``thread_time_ns`` — the CPU the calling thread used, which contention from other processes
inflates less — around each call, after a warm-up), one request at a time, on ``--latency-n``
single-message chat bodies: prompts drawn from the data ("MMLU", median ~70 word pieces) and
short chat prompts ("short", ~10 word pieces). ``learned`` includes embedding the prompt (one
text per call, the shared int8 MiniLM on one thread, at the model's cap) and uses the model
fitted on all rows; ``learned @256`` is the same decision embedding the first 256 word pieces
(as before the cap was lowered; latency only). ``length (tokens given)`` is the length scorer
when the caller already counted the prompt (``RequestMeta``), ``length (exact count)`` the same
scorer tokenizing the text with o200k instead of estimating it (the baseline of the estimate, in
quality and latency); ``learned (embedding given)``
scores a vector already computed. "warm" is each body's best of two more calls made right after
its timed one: the work itself, without the first touch of a new prompt's data and the
interrupts that a single call on a shared VM catches (they set most of a cheap scorer's p99).
The load average is printed beside each latency: on a shared machine it is the caveat.

``--sweep CAP[:CUT],…`` also cross-validates ``learned`` at each cap (``CUT``: ``head`` or
``head_tail``, default ``--truncation``) and times its decision on the MMLU prompts: the
trade-off behind the default cap.

Embeddings of the data are cached next to ``--embeddings-cache`` (default: under the temp dir),
one file per cap, keyed by the prompts, the embedder id and the cap. Results print as markdown
and append to ``bench/results/router.jsonl``.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from _common import REPO, machine, markdown_table, pct, save_results, versions

sys.path.insert(0, str(REPO / "src"))

from thrifty.cache.embedder import MODEL_ID, get_embedder
from thrifty.routing import metrics
from thrifty.routing.learned import LearnedModel, LearnedScorer
from thrifty.routing.length import LengthScorer, LengthWeights
from thrifty.routing.rules import SEED_KEYWORD_RULES, RulesScorer
from thrifty.routing.scorers import (
    LEARNED_MAX_TOKENS,
    LEARNED_TRUNCATION,
    RequestMeta,
    Scorer,
    last_user_text,
    text_body,
)
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
SHORT_PROMPTS = (
    "What is the capital of Australia?",
    "Translate 'good morning' into Spanish.",
    "Write a haiku about autumn rain.",
    "How do I reverse a list in Python?",
    "Summarise the plot of Hamlet in two sentences.",
    "Is 97 a prime number?",
    "Suggest a name for a coffee shop.",
    "What does HTTP status 429 mean?",
    "Convert 72 Fahrenheit to Celsius.",
    "Explain recursion to a ten-year-old.",
    "Give me three synonyms for happy.",
    "Who wrote Pride and Prejudice?",
    "Design a rate limiter for a public API.",
    "What is the difference between TCP and UDP?",
    "Fix this SQL: SELECT * FORM users;",
    "Draft a polite reminder about an unpaid invoice.",
)
"""Short chat prompts (~8-12 word pieces) for the latency of a typical interactive request."""


@dataclass
class Timing:
    """Sorted per-call wall and CPU milliseconds, the warm wall milliseconds (each body's best
    of two more calls right after: the work itself, without the first call's cache misses and
    interrupts), and the load average around the loop."""

    wall: list[float]
    cpu: list[float]
    warm: list[float]
    load: tuple[float, float]

    def row(self, name: str, prompts: str) -> list[str]:
        return [
            name,
            prompts,
            f"{pct(self.wall, 50):.4f}",
            f"{pct(self.wall, 99):.4f}",
            f"{pct(self.cpu, 50):.4f}",
            f"{pct(self.cpu, 99):.4f}",
            f"{pct(self.warm, 50):.4f}",
            f"{pct(self.warm, 99):.4f}",
            f"{self.load[0]:.1f} → {self.load[1]:.1f}",
        ]

    def record(self) -> dict[str, Any]:
        return {
            "p50_ms": pct(self.wall, 50),
            "p99_ms": pct(self.wall, 99),
            "cpu_p50_ms": pct(self.cpu, 50),
            "cpu_p99_ms": pct(self.cpu, 99),
            "warm_p50_ms": pct(self.warm, 50),
            "warm_p99_ms": pct(self.warm, 99),
            "load1": list(self.load),
        }


def _latency(fn: Callable[[dict[str, Any]], object], bodies: list[dict[str, Any]]) -> Timing:
    for body in bodies[:50]:
        fn(body)
    gc.collect()
    gc.disable()
    load0 = os.getloadavg()[0]
    try:
        wall, cpu, warm = [], [], []
        for body in bodies:
            c0 = time.thread_time_ns()
            t0 = time.perf_counter_ns()
            fn(body)
            t1 = time.perf_counter_ns()
            cpu.append((time.thread_time_ns() - c0) / 1e6)
            wall.append((t1 - t0) / 1e6)
            again = []
            for _ in range(2):
                t0 = time.perf_counter_ns()
                fn(body)
                again.append((time.perf_counter_ns() - t0) / 1e6)
            warm.append(min(again))
    finally:
        gc.enable()
    return Timing(sorted(wall), sorted(cpu), sorted(warm), (load0, os.getloadavg()[0]))


def _cache_path(base: Path, cap: int, truncation: str) -> Path:
    # Vectors of another embedder (MODEL_ID) or cut are never reused.
    return base.with_name(f"{base.stem}-{MODEL_ID}-{cap}-{truncation}{base.suffix}")


def _sweep(
    caps: list[tuple[int, Any]],
    data: Any,
    bodies: list[dict[str, Any]],
    cache: Path,
    args: argparse.Namespace,
) -> None:
    embedder = get_embedder()
    rows, records = [], []
    for cap, cut in caps:
        t0 = time.perf_counter()
        path = _cache_path(cache, cap, cut)
        vectors = embed_cached(data.prompts, embedder, path, max_tokens=cap, truncation=cut)
        folds = group_folds(near_duplicate_groups(data.prompts, vectors), args.folds, args.seed)
        cv = cross_validate(vectors, data.cheap, data.strong, folds, seed=args.seed)
        ivs = metrics.bootstrap(
            data.cheap, data.strong, cv.scores, n_boot=args.bootstrap, seed=args.seed
        )
        head_s, head_c = fit_heads(vectors, data.cheap, data.strong, seed=args.seed)
        model = LearnedModel(head_s, head_c, embedder.model_id, {}, cap, cut)
        timing = _latency(LearnedScorer(model, embedder).score, bodies)
        print(f"  {cap} {cut}: {time.perf_counter() - t0:.0f} s", flush=True)
        rows.append(
            [
                f"{cap} ({cut})",
                _fmt_iv(ivs["apgr"], False),
                _fmt_iv(ivs["cpt50"], True),
                _fmt_iv(ivs["cpt80"], True),
                *timing.row("", "")[2:],
            ]
        )
        records.append(
            {
                "bench": "router-sweep",
                "max_tokens": cap,
                "truncation": cut,
                "rows": len(data),
                **{k: [iv.estimate, iv.low, iv.high] for k, iv in ivs.items()},
                **timing.record(),
            }
        )
    print()
    print(
        markdown_table(
            ["max word pieces", "APGR [95% CI]", "CPT(50%)", "CPT(80%)", "p50 ms", "p99 ms",
             "CPU p50 ms", "CPU p99 ms", "warm p50 ms", "warm p99 ms", "load"],
            rows,
        )
    )  # fmt: skip
    env = {"machine": machine(), "versions": versions("numpy", "onnxruntime")}
    save_results("router", [{**r, **env} for r in records])


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
        "--max-tokens",
        type=int,
        default=LEARNED_MAX_TOKENS,
        help="word pieces the learned router embeds per prompt",
    )
    ap.add_argument(
        "--truncation",
        choices=("head", "head_tail"),
        default=LEARNED_TRUNCATION,
        help="which word pieces of a longer prompt the learned router keeps",
    )
    ap.add_argument(
        "--sweep", default="", help="caps to cross-validate and time: CAP[:head|head_tail],…"
    )
    ap.add_argument(
        "--embeddings-cache",
        type=Path,
        default=Path(tempfile.gettempdir()) / "thrifty-bench-router-embeddings.npz",
    )
    args = ap.parse_args()
    cap, cut = args.max_tokens, args.truncation

    data = load_csv(args.data)
    if args.sample and args.sample < len(data):
        rng = np.random.default_rng(args.seed)
        data = data.subset(np.sort(rng.choice(len(data), args.sample, replace=False)))
    print(f"{len(data):,} prompts from {args.data.name}", flush=True)
    embedder = get_embedder()
    t0 = time.perf_counter()
    cache = _cache_path(args.embeddings_cache, cap, cut)
    vectors = embed_cached(data.prompts, embedder, cache, max_tokens=cap, truncation=cut)
    print(f"embeddings (≤ {cap}, {cut}) ready in {time.perf_counter() - t0:.1f} s", flush=True)

    length, rules = LengthScorer(), RulesScorer.from_config(SEED_KEYWORD_RULES)
    exact_length = LengthScorer(LengthWeights(exact=True))
    groups = near_duplicate_groups(data.prompts, vectors)
    folds = group_folds(groups, args.folds, args.seed)
    t0 = time.perf_counter()
    cv = cross_validate(vectors, data.cheap, data.strong, folds, seed=args.seed)
    print(f"cross-validated in {time.perf_counter() - t0:.1f} s", flush=True)
    scores: dict[str, np.ndarray | None] = {
        "length": np.array([length.score_text(p) for p in data.prompts]),
        "length (exact count)": np.array([exact_length.score_text(p) for p in data.prompts]),
        "rules (seed keywords)": np.array([rules.score_text(p) for p in data.prompts]),
        f"learned (CV, ≤ {cap} word pieces, {cut})": cv.scores,
        "random": metrics.random_scores(len(data), args.seed),
        "oracle": None,
    }
    quality: dict[str, dict[str, metrics.Interval]] = {
        name: metrics.bootstrap(data.cheap, data.strong, s, n_boot=args.bootstrap, seed=args.seed)
        for name, s in scores.items()
    }

    head_s, head_c = fit_heads(vectors, data.cheap, data.strong, l2=DEFAULT_L2, seed=args.seed)
    model = LearnedModel(head_s, head_c, embedder.model_id, {}, cap, cut)
    learned = LearnedScorer(model, embedder)
    at_256 = LearnedScorer(LearnedModel(head_s, head_c, embedder.model_id, max_tokens=256))
    rng = np.random.default_rng(args.seed + 1)
    picks = rng.choice(len(data), min(args.latency_n, len(data)), replace=False)
    bodies = {
        "MMLU": [{"model": "auto", **text_body(data.prompts[i])} for i in picks],
        "short": [
            {"model": "auto", **text_body(SHORT_PROMPTS[i % len(SHORT_PROMPTS)])}
            for i in range(len(picks))
        ],
    }
    counted = RequestMeta(prompt_tokens=100)
    deciders: dict[str, Scorer | Callable[[dict[str, Any]], object]] = {
        "length": length,
        "length (tokens given)": lambda b: length.score(b, counted),
        "length (exact count)": exact_length,
        "rules (seed keywords)": rules,
        "learned": learned,
        "learned @256": at_256,
    }
    latency: dict[tuple[str, str], Timing] = {}
    for name, scorer in deciders.items():
        fn = scorer.score if isinstance(scorer, Scorer) else scorer
        for prompts, batch in bodies.items():
            if name == "learned @256" and prompts == "short":
                continue  # short prompts are under any cap: the same as "learned"
            latency[name, prompts] = _latency(fn, batch)
    given = {id(b): vectors[i] for b, i in zip(bodies["MMLU"], picks, strict=True)}
    latency["learned (embedding given)", "MMLU"] = _latency(
        lambda b: learned.score_embeddings(given[id(b)]), bodies["MMLU"]
    )

    rows, records = [], []
    for name, ivs in quality.items():
        key = name.split(" (CV")[0]
        lat = latency.get((key, "MMLU"))
        rows.append(
            [
                name,
                _fmt_iv(ivs["apgr"], False),
                _fmt_iv(ivs["cpt50"], True),
                _fmt_iv(ivs["cpt80"], True),
                f"{pct(lat.wall, 50):.4f}" if lat else "—",
                f"{pct(lat.wall, 99):.4f}" if lat else "—",
            ]
        )
        records.append(
            {
                "bench": "router",
                "router": name,
                "rows": len(data),
                **{k: [iv.estimate, iv.low, iv.high] for k, iv in ivs.items()},
                **({} if lat is None else lat.record()),
                **({"max_tokens": cap, "truncation": cut} if key == "learned" else {}),
            }
        )
    lat_rows = []
    for (name, prompts), timing in latency.items():
        lat_rows.append(timing.row(name, prompts))
        records.append({"bench": "router-latency", "router": name, "prompts": prompts,
                        **timing.record()})  # fmt: skip
    print()
    print(
        markdown_table(
            ["router", "APGR [95% CI]", "CPT(50%)", "CPT(80%)", "p50 ms", "p99 ms"], rows
        )
    )
    print(
        f"\nall cheap {data.cheap.mean():.2%}, all strong {data.strong.mean():.2%}; "
        f"{args.folds}-fold CV grouped by near-duplicate clusters ({groups.max() + 1:,} groups); "
        f"learned embeds ≤ {cap} word pieces ({cut}); latency on MMLU prompts"
    )
    print()
    print(
        markdown_table(
            [
                "decision",
                "prompts",
                "p50 ms",
                "p99 ms",
                "CPU p50 ms",
                "CPU p99 ms",
                "warm p50 ms",
                "warm p99 ms",
                "load",
            ],
            lat_rows,
        )
    )
    lengths = {
        k: sorted(embedder.count_tokens(last_user_text(b)) for b in v) for k, v in bodies.items()
    }
    print(
        f"\n{len(picks):,} single calls per row; word pieces per prompt (median / p99): "
        + ", ".join(f"{k} {pct(v, 50):.0f} / {pct(v, 99):.0f}" for k, v in lengths.items())
        + f"; {os.cpu_count()} cores, load average now {os.getloadavg()[0]:.1f}"
    )
    env = {"machine": machine(), "versions": versions("numpy", "onnxruntime", "tiktoken")}
    path = save_results("router", [{**r, **env} for r in records])
    print(f"results appended to {path}")
    if args.sweep:
        caps = []
        for item in filter(None, (c.strip() for c in args.sweep.split(","))):
            size, _, how = item.partition(":")
            caps.append((int(size), how or cut))
        print(f"\nsweep over caps {caps}", flush=True)
        _sweep(caps, data, bodies["MMLU"], args.embeddings_cache, args)


if __name__ == "__main__":
    main()
