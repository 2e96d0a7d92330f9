"""The demo's closing summary: requests, tokens, cost, and savings by lever (honestly)."""

from __future__ import annotations

from collections import defaultdict

from rich.table import Table

from thrifty.cli.common import console
from thrifty.cli.demo_workload import DemoResult
from thrifty.gateway import Gateway

LEVERS = ("exact cache", "semantic cache", "routing", "compression", "max-tokens cap")


def _pct(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def print_summary(results: list[DemoResult], gateway: Gateway) -> None:
    by_tenant: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    latencies = [r.latency_s for r in results if r.status == 200]
    for r in results:
        t = by_tenant[r.request.tenant]
        t["requests"] += 1
        t["ok"] += r.status == 200
        t["errors"] += r.status != 200
        t["streamed"] += r.request.stream
        if r.usage:
            t["prompt"] += r.usage.get("prompt_tokens", 0)
            t["completion"] += r.usage.get("completion_tokens", 0) or 0
        cost = r.headers.get("x-thrifty-cost-usd")
        if cost not in (None, "pending", "unpriced"):
            t["cost"] += float(cost)
            t["has_cost"] = 1
    table = Table(title="Requests by tenant", show_footer=True)
    cols = ("requests", "ok", "errors", "streamed", "prompt", "completion")
    table.add_column("tenant", "total")
    for c in cols:
        table.add_column(c, str(int(sum(t[c] for t in by_tenant.values()))), justify="right")
    table.add_column("cost USD", justify="right")
    for tenant, t in sorted(by_tenant.items()):
        cost = f"{t['cost']:.6f}" if t.get("has_cost") else "n/a (cost ledger not enabled)"
        table.add_row(tenant, *(str(int(t[c])) for c in cols), cost)
    console.print(table)
    p50, p99 = _pct(latencies, 0.5) * 1000, _pct(latencies, 0.99) * 1000
    console.print(f"latency p50 {p50:.1f} ms, p99 {p99:.1f} ms (fake upstream, loopback)")
    levers = Table(title="Savings by lever")
    levers.add_column("lever")
    levers.add_column("saved USD", justify="right")
    for lever in LEVERS:
        levers.add_row(lever, "[dim]not enabled[/dim]")
    console.print(levers)
