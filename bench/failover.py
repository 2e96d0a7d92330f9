"""Failover: how long a client waits when the primary deployment fails, and what the resilience
layer costs on the healthy path. Prints a table; never passes or fails on time.

    .venv/bin/python bench/failover.py [--requests 200]

Set-up (one process, loopback): two fake OpenAI upstreams; a gateway whose model ``gpt-4o`` has
deployments [primary, secondary]. For each primary fault the client-observed latency of a
request that the secondary ends up answering is measured, side by side with a healthy request
(the baseline) in the same run. The breaker is reset before each request so every request pays
the failure (with the breaker open, the primary is skipped and the cost disappears).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import timeit
from collections.abc import Callable
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from thrifty.config import config_from_dict
from thrifty.pipeline.dispatch import DispatchStage
from thrifty.server.local import LocalServer
from thrifty.testing import FakeOpenAIServer

FAULTS = [
    ("healthy (baseline)", None),
    ("primary 503", "status=503"),
    ("primary 429, Retry-After 0", "status=429;retry_after=0"),
    ("primary resets the connection", "reset"),
    ("primary malformed body", "malformed"),
    ("primary first-byte timeout (0.25 s)", "timeout=5"),
]


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def measure(
    url: str, key: str, n: int, stream: bool = False, before: Callable[[], None] | None = None
) -> list[float]:
    """Sequential requests on one keep-alive connection; ``before`` runs before each."""
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hello"}], "stream": stream}
    out: list[float] = []
    async with aiohttp.ClientSession(headers={"authorization": f"Bearer {key}"}) as s:
        for _ in range(n + 5):  # 5 warm-up requests, not counted
            if before is not None:
                before()
            t0 = time.perf_counter()
            async with s.post(f"{url}/chat/completions", json=body) as r:
                await r.read()
                assert r.status == 200, r.status
            out.append((time.perf_counter() - t0) * 1000)
    return out[5:]


async def main(n: int) -> None:
    primary, secondary = FakeOpenAIServer(), FakeOpenAIServer()
    await primary.start()
    await secondary.start()
    tmp = Path(tempfile.mkdtemp(prefix="thrifty-failover-"))
    config = config_from_dict(
        {
            "database": {"url": f"sqlite+aiosqlite:///{tmp / 't.db'}"},
            "ledger": {"spill_path": str(tmp / "spill.jsonl")},
            "providers": {
                "primary": {
                    "kind": "openai",
                    "base_url": primary.base_url,
                    "timeouts": {"first_byte_s": 0.25},
                },
                "secondary": {"kind": "openai", "base_url": secondary.base_url},
            },
            "models": [
                {
                    "name": "gpt-4o",
                    "deployments": [
                        {"provider": "primary", "model": "gpt-4o"},
                        {"provider": "secondary", "model": "gpt-4o"},
                    ],
                }
            ],
            "resilience": {"retries": {"max_retries": 0}},
        },
        env={},
    )
    rows = []
    async with LocalServer(config) as server:
        key, _ = await server.gateway.keys.create("bench")
        breaker = server.gateway.registry.health["primary/gpt-4o"].breaker
        direct = await measure(secondary.base_url, "x", n)
        for label, fault in FAULTS:
            primary.set_fault(fault)
            count = max(10, n // 10) if fault and "timeout" in fault else n
            # every request meets the failing primary: the breaker is reset before each
            lat = await measure(server.base_url, key, count, before=lambda: breaker.force(None))
            rows.append((label, count, statistics.median(lat), pct(lat, 0.99)))
        primary.set_fault("status=503")
        stream_lat = await measure(
            server.base_url, key, n, stream=True, before=lambda: breaker.force(None)
        )
        rows.append(
            (
                "stream, primary 503 before first byte",
                n,
                statistics.median(stream_lat),
                pct(stream_lat, 0.99),
            )
        )
        registry = server.gateway.registry
        entry = registry.models["gpt-4o"]
        health = registry.health["primary/gpt-4o"]
        breaker.force(None)

        def bookkeeping() -> None:
            for dep in registry.candidates(entry):
                h = registry.health[dep.id]
                h.breaker.allow()
                h.started()
                h.finished(True, 1.0)
                break

        per_call_us = min(timeit.repeat(bookkeeping, number=20_000, repeat=3)) / 20_000 * 1e6
        assert health is not None and DispatchStage is not None
    await primary.stop()
    await secondary.stop()
    print(
        f"\nFailover latency, client-observed, {n} requests each (direct to the secondary: "
        f"p50 {statistics.median(direct):.2f} ms, p99 {pct(direct, 0.99):.2f} ms)\n"
    )
    print("| primary's failure | requests | p50 ms | p99 ms |")
    print("|---|---:|---:|---:|")
    for label, count, p50, p99 in rows:
        print(f"| {label} | {count} | {p50:.2f} | {p99:.2f} |")
    print(
        f"\nResilience bookkeeping on the healthy path (balance, breaker check, health update): "
        f"{per_call_us:.2f} µs per request"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=200)
    asyncio.run(main(parser.parse_args().requests))
