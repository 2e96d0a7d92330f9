"""200 simultaneous requests against a small budget: exactly as many fit as the budget holds,
in one process (in-process and Redis backends) and across two OS processes sharing one Redis
(``budget_worker.py`` runs 100 reservations while this process runs the other 100)."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

import redis.asyncio as aioredis

from tests.budgets.budget_support import open_backend
from tests.redisx import redis_prefix, redis_url
from thrifty.budgets import BudgetSpec, RedisBudgetBackend
from thrifty.budgets.redis_backend import blocking_client

__all__ = ["redis_prefix"]
WORKER = Path(__file__).with_name("budget_worker.py")
COST, LIMIT = 0.03, 1.0  # 33 requests fit ($0.99), the 34th would not
FITS = 33


async def _two_hundred(kind: str, prefix: str) -> None:
    spec = BudgetSpec(id="small", scope="org", limit_usd=LIMIT)
    async with open_backend(kind, prefix) as b:
        go = asyncio.Event()

        async def one(i: int) -> bool:
            await go.wait()
            res = await b.reserve(f"r{i}", [(spec, "total")], COST, 0, 60)
            return res.ok

        tasks = [asyncio.create_task(one(i)) for i in range(200)]
        await asyncio.sleep(0)
        go.set()
        admitted = [i for i, ok in enumerate(await asyncio.gather(*tasks)) if ok]
        assert len(admitted) == FITS
        u = await b.usage(spec, "total")
        assert (u.spent_micros, u.reserved_micros) == (0, FITS * 30_000)
        await asyncio.gather(*(b.settle(f"r{i}", COST * (0.5 + i % 2 / 2), 0) for i in admitted))
        u = await b.usage(spec, "total")
        assert u.reserved_micros == 0 and u.spent_micros <= spec.limit_micros  # type: ignore[operator]


async def test_200_simultaneous_in_process() -> None:
    await _two_hundred("memory", "")


async def test_200_simultaneous_redis_one_process(redis_prefix: str) -> None:
    await _two_hundred("redis", redis_prefix)


async def test_200_simultaneous_redis_two_processes(redis_prefix: str) -> None:
    signal = aioredis.from_url(redis_url())
    client = blocking_client(redis_url(), 64, 5.0)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(WORKER), redis_url(), redis_prefix, "100", str(COST), str(LIMIT),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert await signal.blpop([f"{redis_prefix}:sig:ready"], timeout=30), "worker not ready"
        backend = RedisBudgetBackend(client, f"{redis_prefix}:budgets", timeout_s=5)
        spec = BudgetSpec(id="small", scope="org", limit_usd=LIMIT)
        await signal.rpush(f"{redis_prefix}:sig:go", "go")
        started = time.time()
        results = await asyncio.gather(
            *(backend.reserve(f"main-{i}", [(spec, "total")], COST, 0, 60) for i in range(100))
        )
        ended = time.time()
        mine = [r.request_id for r in results if r.ok]
        reply = await signal.blpop([f"{redis_prefix}:sig:reserved"], timeout=30)
        assert reply is not None
        theirs = int(reply[1])
        assert len(mine) + theirs == FITS, (len(mine), theirs)
        u = await backend.usage(spec, "total")
        assert (u.spent_micros, u.reserved_micros) == (0, FITS * 30_000)

        await signal.rpush(f"{redis_prefix}:sig:settle", "go")
        await asyncio.gather(*(backend.settle(rid, COST, 0) for rid in mine))
        out, err = await asyncio.wait_for(proc.communicate(), 30)
        assert proc.returncode == 0, err.decode()
        summary = json.loads(out.decode().strip().splitlines()[-1])
        assert (summary["admitted"], summary["settled"]) == (theirs, theirs)
        # The two processes' reservations overlapped in time (a real race, not two turns).
        assert summary["started"] < ended and started < summary["ended"], (summary, started, ended)
        u = await backend.usage(spec, "total")
        assert (u.spent_micros, u.reserved_micros) == (FITS * 30_000, 0)
        assert u.spent_micros <= spec.limit_micros  # type: ignore[operator]
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await signal.aclose()
        await client.aclose()
