"""Semantic cache: lookup latency (embedding + search + guard) at 10k and 100k entries, and
precision / recall on the GPTCache paraphrase set with constructed hard negatives (per kind,
nearest-neighbour negatives included), at the shipped threshold and side by side with cosine
alone. Prints tables; never passes or fails.

    .venv/bin/python bench/semantic.py [--sizes 10000 100000] [--queries 300]
        [--redis-search redis://127.0.0.1:6380/0] [--no-quality]

``--redis-search`` also times the index kept in Redis (``RedisVectorIndex``) on a server with
vector search, e.g. the Redis Stack the tests use (``tests/redis_stack.py``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from thrifty.cache.embedder import get_embedder
from thrifty.cache.semantic.calibrate import PairScores, curve, score_pairs
from thrifty.cache.semantic.devset import build_devset
from thrifty.cache.semantic.facts import facts
from thrifty.cache.semantic.guard import Guard
from thrifty.cache.semantic.index import SemanticIndex
from thrifty.cache.semantic.wordnet import wordnet
from thrifty.config import SemanticCacheConfig

DATA = Path(__file__).resolve().parents[2] / "shared/data/semantic/gptcache_paraphrases.json"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def load_pairs() -> list[tuple[str, str]]:
    raw = json.loads(DATA.read_text())
    items = raw if isinstance(raw, list) else raw.get("pairs", [])
    return [(d["origin"], d["similar"]) for d in items if d.get("origin") and d.get("similar")]


def latency(sizes: list[int], queries: int) -> list[tuple[int, float, float, float, float, float]]:
    embedder = get_embedder()
    embedder.load()
    rng = np.random.default_rng(0)
    texts = [f"How do I configure feature number {i} in the admin console?" for i in range(queries)]
    rows = []
    for size in sizes:
        index = SemanticIndex(background=False)
        vectors = rng.standard_normal((size, 384)).astype("float32")
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        for i in range(size):
            index.add("scope", f"k{i}", vectors[i], {"text": ""})
        guard = Guard()
        guard.check(texts[0], texts[0])  # loads WordNet once, as the first semantic lookup does
        embed_ms, search_ms, guard_ms, total_ms = [], [], [], []
        for i, text in enumerate(texts):
            cached = f"What is the way to set up feature number {i} in the admin console?"
            t0 = time.perf_counter()
            v = embedder.embed([text])[0]
            t1 = time.perf_counter()
            index.search("scope", v, k=3)
            t2 = time.perf_counter()
            guard.check(text, cached)  # both texts new to the guard: read, then compared
            t3 = time.perf_counter()
            embed_ms.append((t1 - t0) * 1000)
            search_ms.append((t2 - t1) * 1000)
            guard_ms.append((t3 - t2) * 1000)
            total_ms.append((t3 - t0) * 1000)
        rows.append(
            (
                size,
                statistics.median(embed_ms),
                statistics.median(search_ms),
                statistics.median(guard_ms),
                statistics.median(total_ms),
                pct(total_ms, 0.99),
            )
        )
    return rows


def redis_search_latency(
    url: str, sizes: list[int], queries: int
) -> list[tuple[int, int, float, float]]:
    """``RedisVectorIndex.search`` round trips against a server with vector search: for each
    size, the index holding that many entries in one partition, then in 1,000 partitions (the
    query's own partition then holds size / 1,000)."""
    import asyncio
    import uuid

    import redis.asyncio as aioredis

    from thrifty.cache.semantic.redis_search import RedisVectorIndex

    async def run() -> list[tuple[int, int, float, float]]:
        client = aioredis.from_url(url)
        rng = np.random.default_rng(0)
        rows = []
        try:
            for size in sizes:
                for parts in (1, 1000):
                    idx = RedisVectorIndex(client, f"bench-{uuid.uuid4().hex[:8]}", "bench", 384)
                    await idx.ensure()
                    vectors = rng.standard_normal((size, 384)).astype("<f4")
                    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
                    for start in range(0, size, 1000):
                        async with client.pipeline(transaction=False) as pipe:
                            for i in range(start, min(size, start + 1000)):
                                fields: dict[Any, Any] = {
                                    "part": idx._tag(f"p{i % parts}"),
                                    "key": f"k{i}",
                                    "text": "",
                                    "v": vectors[i].tobytes(),
                                }
                                pipe.hset(f"{idx.doc_prefix}{i}", mapping=fields)
                            await pipe.execute()
                    for _ in range(600):  # indexing is asynchronous: wait until all are in
                        if await idx.count() >= size:
                            break
                        await asyncio.sleep(0.1)
                    timings = []
                    for q in range(queries + 20):
                        t0 = time.perf_counter()
                        await idx.search("p0", vectors[q % size], 3, min_score=0.0)
                        if q >= 20:
                            timings.append((time.perf_counter() - t0) * 1000)
                    rows.append((size, parts, statistics.median(timings), pct(timings, 0.99)))
                    await client.execute_command("FT.DROPINDEX", idx.name, "DD")
        finally:
            await client.aclose()
        return rows

    return asyncio.run(run())


def quality(threshold: float) -> None:
    embedder = get_embedder()
    pairs = load_pairs()
    full = build_devset(pairs, embed=embedder.embed, seed=0)
    full_scores = score_pairs(full, embedder.embed, Guard())
    # the headline curve leaves out the nearest-neighbour negatives (many are true duplicates)
    keep = [i for i, p in enumerate(full) if p.kind != "nearest"]
    devset = [full[i] for i in keep]
    scores = PairScores(
        full_scores.cosine[keep],
        full_scores.guard_ok[keep],
        full_scores.labels[keep],
        [full_scores.reasons[i] for i in keep],
    )
    print(
        f"\nPrecision / recall on {DATA.name}: {sum(p.label for p in devset)} paraphrase pairs, "
        f"{sum(not p.label for p in devset)} negatives (random + constructed near-misses)\n"
    )
    print("| threshold | cosine only P | cosine only R | cosine + guard P | cosine + guard R |")
    print("|---:|---:|---:|---:|---:|")

    def fmt(x: float | None) -> str:
        return "—" if x is None else f"{x:.3f}"

    for t in sorted({0.80, 0.85, 0.90, 0.92, 0.95, threshold}):
        plain = curve(scores, [t], guard=False)[0]
        guarded = curve(scores, [t], guard=True)[0]
        mark = " (shipped)" if t == threshold else ""
        print(
            f"| {t:.2f}{mark} | {fmt(plain.precision)} | {plain.recall:.3f} | "
            f"{fmt(guarded.precision)} | {guarded.recall:.3f} |"
        )
    pos = sum(p.label for p in devset)
    subsets = {
        "Development set with random negatives only": {"random"},
        "Only the near-misses the data's README names (random items, numbers, negations, "
        "entities; code identifiers too)": {"random", "number", "negation", "entity", "identifier"},
    }
    for title, wanted in subsets.items():
        for t in sorted({0.85, 0.92, threshold}):
            hits = [
                i
                for i, p in enumerate(devset)
                if (p.label or p.kind in wanted) and scores.cosine[i] >= t and scores.guard_ok[i]
            ]
            true = sum(devset[i].label for i in hits)
            print(
                f"\n{title}, threshold {t:.2f} + guard: "
                f"precision {true / max(1, len(hits)):.3f}, recall {true / pos:.3f}"
            )
    for t in sorted({0.85, 0.92, threshold}):
        point = curve(full_scores, [t], guard=True)[0]
        print(
            f"\nWith the {len(full) - len(devset)} nearest-neighbour negatives too, threshold "
            f"{t:.2f} + guard: precision {fmt(point.precision)}, recall {point.recall:.3f}"
        )
    kinds = sorted({p.kind for p in full if not p.label})
    print("\nNear-misses let through at the shipped threshold (share of each kind):\n")
    print("| kind | pairs | cosine only | cosine + guard |")
    print("|---|---:|---:|---:|")
    for kind in kinds:
        idx = [i for i, p in enumerate(full) if p.kind == kind]
        over = [i for i in idx if full_scores.cosine[i] >= threshold]
        passed = [i for i in over if full_scores.guard_ok[i]]
        print(
            f"| {kind} | {len(idx)} | {len(over) / len(idx):.3f} | {len(passed) / len(idx):.3f} |"
        )
    over_pos = [i for i, p in enumerate(full) if p.label and full_scores.cosine[i] >= threshold]
    reasons = Counter(full_scores.reasons[i] for i in over_pos if full_scores.reasons[i])
    print(
        f"\nParaphrases over the shipped threshold that the guard rejects: "
        f"{sum(reasons.values())} of {len(over_pos)} "
        f"({', '.join(f'{k} {v}' for k, v in reasons.most_common())})"
    )
    start = time.perf_counter()
    wn = wordnet()
    print(
        "\nWordNet (contrast check): "
        + (
            f"loaded in {wn.load_seconds:.2f} s, {len(wn.poles):,} lemmas with an opposite"
            if wn
            else "not installed"
        )
        + f" (first call {time.perf_counter() - start:.2f} s)"
    )
    texts = [p.a for p in full[:300]] + [p.b for p in full[:300]]
    for text in texts:
        facts(text)
    Guard().check(full[0].a, full[0].b)
    guard = Guard()
    timings = []
    for p in full[:2000]:
        t0 = time.perf_counter()
        guard.check(p.a, p.b)
        timings.append((time.perf_counter() - t0) * 1e6)
    print(f"Guard check between two texts already read: p50 {statistics.median(timings):.0f} µs")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument(
        "--redis-search",
        metavar="URL",
        help="also time the index searched in Redis (a server with vector search: Redis Stack)",
    )
    parser.add_argument("--no-quality", action="store_true", help="latency only")
    args = parser.parse_args()
    threshold = SemanticCacheConfig().threshold
    rows = latency(args.sizes, args.queries)
    print(
        f"\nSemantic lookup latency, one CPU thread, {args.queries} queries "
        "(embedding + top-3 search + guard)\n"
    )
    print(
        "| entries in the scope | embed p50 ms | search p50 ms | guard p50 ms | lookup p50 ms "
        "| lookup p99 ms |"
    )
    print("|---:|---:|---:|---:|---:|---:|")
    for size, e, s, g, t, t99 in rows:
        print(f"| {size:,} | {e:.2f} | {s:.2f} | {g:.2f} | {t:.2f} | {t99:.2f} |")
    if args.redis_search:
        print(
            "\nThe index searched in Redis (`RedisVectorIndex.search`, top 3 of the query's "
            "partition, one round trip on loopback; compare the search column above)\n"
        )
        print("| entries in the index | partitions | search p50 ms | search p99 ms |")
        print("|---:|---:|---:|---:|")
        for size, parts, p50, p99 in redis_search_latency(
            args.redis_search, args.sizes, args.queries
        ):
            print(f"| {size:,} | {parts:,} | {p50:.2f} | {p99:.2f} |")
    if not args.no_quality:
        quality(threshold)


if __name__ == "__main__":
    main()
