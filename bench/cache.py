"""Cache performance: exact-hit latency through HTTP (memory and Redis tiers) against a miss, side
by side in one run, with the gateway's CPU per request. Prints a table; never passes or fails.

    .venv/bin/python bench/cache.py [--requests 2000] [--redis redis://127.0.0.1:6379/0]

Set-up: a fake OpenAI upstream and the gateway in one process on loopback (``LocalServer``);
a client sends sequential keep-alive requests. "miss" requests differ by one token so none hits;
"hit" requests repeat one prompt ("streamed" ones ask for SSE: the entry replayed as chunks).
Gateway CPU per request is the process CPU time (gateway + fake + client share the process), so
for hits — where the fake does nothing — it bounds the gateway's cost from above. The
semantic-cache figures (embedding + search latency, precision and recall) come from
``bench/semantic.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from thrifty.config import config_from_dict
from thrifty.server.local import LocalServer
from thrifty.testing import FakeOpenAIServer


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def run_case(
    url: str, key: str, n: int, same: bool, extra: dict[str, Any] | None = None
) -> dict[str, float]:
    headers = {"authorization": f"Bearer {key}"}
    lat: list[float] = []
    statuses: dict[str, int] = {}
    async with aiohttp.ClientSession(headers=headers) as s:
        cpu0 = time.process_time()
        for i in range(n + 50):
            text = "the same question" if same else f"question number {i} {uuid.uuid4().hex[:6]}"
            body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}]}
            if extra:
                body.update(extra)
            t0 = time.perf_counter()
            async with s.post(f"{url}/chat/completions", json=body) as r:
                await r.read()
                status = r.headers.get("x-thrifty-cache", "?")
            if i >= 50:  # warm-up excluded
                lat.append((time.perf_counter() - t0) * 1000)
                statuses[status] = statuses.get(status, 0) + 1
            elif i == 49:
                cpu0 = time.process_time()
        cpu = (time.process_time() - cpu0) * 1000 / n
    return {
        "p50": statistics.median(lat),
        "p99": pct(lat, 0.99),
        "cpu_ms": cpu,
        "hit_share": statuses.get("hit", 0) / n,
    }


async def main(n: int, redis_url: str | None) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="thrifty-bench-cache-"))
    rows = []
    async with FakeOpenAIServer() as fake:
        setups: list[tuple[str, dict[str, Any]]] = [("memory tier", {})]
        if redis_url:
            setups.append(
                (
                    "redis tier",
                    {"redis": {"url": redis_url, "prefix": f"bench-{uuid.uuid4().hex[:8]}"}},
                )
            )
        for label, extra in setups:
            config = config_from_dict(
                {
                    "database": {"url": f"sqlite+aiosqlite:///{tmp / (label[:5] + '.db')}"},
                    "ledger": {"spill_path": str(tmp / "spill.jsonl")},
                    "cache": {"disk_path": str(tmp / f"cache-{label[:5]}")},
                    "providers": {"up": {"kind": "openai", "base_url": fake.base_url}},
                    "models": [{"name": "gpt-4o-mini", "provider": "up"}],
                    **extra,
                },
                env={},
            )
            async with LocalServer(config) as server:
                key, _ = await server.gateway.keys.create("bench")
                miss = await run_case(server.base_url, key, n, same=False)
                if label == "redis tier":
                    # answer from Redis each time: drop the in-process copy before each read
                    server.gateway.cache.memory.max_bytes = 0
                hit = await run_case(server.base_url, key, n, same=True)
                rows.append((label, "miss (upstream call)", miss))
                rows.append((label, "exact hit", hit))
                if label == "memory tier":
                    streamed = await run_case(
                        server.base_url, key, n, same=True, extra={"stream": True}
                    )
                    rows.append((label, "exact hit, streamed (SSE replay)", streamed))
    print(f"\nExact cache through HTTP, {n} sequential keep-alive requests per case\n")
    print("| tier | case | p50 ms | p99 ms | process CPU ms/req | hit share |")
    print("|---|---|---:|---:|---:|---:|")
    for label, case, r in rows:
        print(
            f"| {label} | {case} | {r['p50']:.3f} | {r['p99']:.3f} | {r['cpu_ms']:.3f} | "
            f"{r['hit_share']:.2f} |"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0", help="'' to skip")
    args = parser.parse_args()
    asyncio.run(main(args.requests, args.redis or None))
