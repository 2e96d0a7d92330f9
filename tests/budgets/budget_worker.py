"""A second gateway process for the two-process Redis budget test (run as a script).

``budget_worker.py URL PREFIX N COST LIMIT``: connects to Redis, signals ``ready``, waits for
``go``, fires N simultaneous reservations of COST USD on one budget of LIMIT USD, reports how
many were admitted, waits for ``settle`` and settles each admitted request at its full cost,
then prints a JSON summary.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

import redis.asyncio as aioredis

from thrifty.budgets import BudgetSpec, RedisBudgetBackend
from thrifty.budgets.redis_backend import blocking_client


async def main(url: str, prefix: str, n: int, cost: float, limit: float) -> dict[str, float]:
    client = blocking_client(url, 64, 5.0)
    signal = aioredis.from_url(url)
    try:
        backend = RedisBudgetBackend(client, f"{prefix}:budgets", timeout_s=5)
        spec = BudgetSpec(id="small", scope="org", limit_usd=limit)
        await client.ping()
        await signal.rpush(f"{prefix}:sig:ready", "worker")
        await signal.blpop([f"{prefix}:sig:go"], timeout=30)
        started = time.time()
        results = await asyncio.gather(
            *(backend.reserve(f"worker-{i}", [(spec, "total")], cost, 0, 60) for i in range(n))
        )
        ended = time.time()
        admitted = [r.request_id for r in results if r.ok]
        await signal.rpush(f"{prefix}:sig:reserved", str(len(admitted)))
        await signal.blpop([f"{prefix}:sig:settle"], timeout=30)
        settled = await asyncio.gather(*(backend.settle(rid, cost, 0) for rid in admitted))
        return {
            "admitted": len(admitted),
            "settled": sum(s.status == "settled" for s in settled),
            "started": started,
            "ended": ended,
        }
    finally:
        await client.aclose()
        await signal.aclose()


if __name__ == "__main__":
    url, prefix, n, cost, limit = sys.argv[1:6]
    print(json.dumps(asyncio.run(main(url, prefix, int(n), float(cost), float(limit)))))
