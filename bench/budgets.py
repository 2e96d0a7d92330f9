"""What the budget stage adds per request: CPU time of reserve + settle over three applicable
budgets (org, tenant, user), in-process and on the real Redis, side by side with a request that
no budget applies to. Prints a table; never passes or fails.

    .venv/bin/python bench/budgets.py [--requests 3000] [--redis redis://127.0.0.1:6379/0]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from thrifty.budgets.backend import InProcessBudgetBackend
from thrifty.budgets.model import BudgetIndex, BudgetSpec
from thrifty.config import config_from_dict
from thrifty.keys.principal import Principal
from thrifty.pipeline.budget import BudgetStage
from thrifty.pipeline.context import RequestContext
from thrifty.pricing import CostCalculator, PriceCatalog
from thrifty.providers.registry import ProviderRegistry

SPECS = [
    BudgetSpec(id="org", scope="org", limit_usd=1e6),
    BudgetSpec(id="acme", scope="tenant", subject="acme", limit_usd=1e5),
    BudgetSpec(id="al", scope="user", subject="al", limit_usd=1e4),
]


async def measure(stage: BudgetStage, principal: Principal, n: int) -> tuple[float, float]:
    registry = stage.registry
    entry = registry.models["gpt-4o-mini"]
    body = {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "hello " * 20}],
        "max_tokens": 100,
    }
    cpu: list[float] = []
    wall: list[float] = []
    for i in range(n + 100):
        ctx = RequestContext(
            f"req_{uuid.uuid4().hex}", "chat.completions", principal, "gpt-4o-mini", body
        )
        ctx.entry = ctx.requested_entry = entry
        c0, w0 = time.process_time(), time.perf_counter()
        await stage.run(ctx)
        if ctx.budget_reserved:
            await stage.backend.settle(ctx.request_id, 0.0001, 120)
        c1, w1 = time.process_time(), time.perf_counter()
        if i >= 100:
            cpu.append((c1 - c0) * 1000)
            wall.append((w1 - w0) * 1000)
    return statistics.mean(cpu), statistics.median(wall)


async def main(n: int, redis_url: str | None) -> None:
    config = config_from_dict(
        {
            "providers": {"up": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1"}},
            "models": [{"name": "gpt-4o-mini", "provider": "up"}],
        },
        env={},
    )
    registry = ProviderRegistry(config)
    calc = CostCalculator(PriceCatalog.bundled())
    rows = []
    memory = BudgetStage(InProcessBudgetBackend(), BudgetIndex(SPECS), calc, registry, 900)
    none = BudgetStage(InProcessBudgetBackend(), BudgetIndex([]), calc, registry, 900)
    rows.append(("no budget configured", *await measure(none, Principal("acme"), n)))
    rows.append(("3 budgets, in-process", *await measure(memory, Principal("acme", user="al"), n)))
    if redis_url:
        from thrifty.budgets.redis_backend import RedisBudgetBackend

        backend = RedisBudgetBackend.from_url(redis_url, f"bench-{uuid.uuid4().hex[:8]}")
        shared = BudgetStage(backend, BudgetIndex(SPECS), calc, registry, 900)
        rows.append(("3 budgets, Redis", *await measure(shared, Principal("acme", user="al"), n)))
        await backend.aclose()
    print(f"\nBudget stage per request (reserve + settle), {n} requests\n")
    print("Redis: one round trip to reserve (on the request path), one to settle (behind it).\n")
    print("| case | CPU ms/req (process) | wall p50 ms |")
    print("|---|---:|---:|")
    for label, cpu, wall in rows:
        print(f"| {label} | {cpu:.4f} | {wall:.4f} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0", help="'' to skip")
    args = parser.parse_args()
    asyncio.run(main(args.requests, args.redis or None))
