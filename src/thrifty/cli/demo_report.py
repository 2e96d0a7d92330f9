"""The demo's closing summary, read back from the ledger: requests, tokens, cost, baseline,
and savings by lever (a lever that is not built or not enabled says so, never a made-up 0)."""

from __future__ import annotations

from rich.table import Table

from thrifty.cli.common import console, print_table
from thrifty.cli.demo_workload import DemoResult
from thrifty.gateway import Gateway
from thrifty.ledger.periods import Period
from thrifty.ledger.reports import percentile

LEVERS = (
    ("cache", "exact cache"),
    ("semantic_cache", "semantic cache"),
    ("routing", "model routing"),
    ("compression", "prompt compression"),
    ("max_tokens", "max-tokens cap"),
)


async def print_summary(results: list[DemoResult], gateway: Gateway, period: Period) -> None:
    rows, total = await gateway.usage(period, ["tenant"])
    table = Table(title="Requests by tenant (from the ledger)", show_footer=True)
    t = total.to_json()
    cols = [
        ("requests", "requests"),
        ("errors", "errors"),
        ("prompt tok", "prompt_tokens"),
        ("completion tok", "completion_tokens"),
        ("cost USD", "cost_usd"),
        ("baseline USD", "baseline_cost_usd"),
        ("saved USD", "saved_usd"),
    ]
    table.add_column("tenant", "total")
    for title, key in cols:
        table.add_column(title, _cell(key, t[key]), justify="right")
    for row in rows:
        r = row.to_json()
        table.add_row(str(r["tenant"]), *(_cell(key, r[key]) for _, key in cols))
    print_table(table)
    refused = sum(r.status == 429 for r in results)
    if refused:
        console.print(
            f"{refused} requests were refused with 429 (initech's daily budget is spent; "
            "requests it could still afford were degraded to a cheaper model)"
        )
    latencies = [r.latency_s * 1000 for r in results if r.status == 200]
    streamed = sum(r.request.stream for r in results)
    console.print(
        f"{len(results)} requests ({streamed} streamed), client-side latency "
        f"p50 {percentile(latencies, 0.5):.1f} ms, p99 {percentile(latencies, 0.99):.1f} ms "
        "(fake upstream on loopback)"
    )
    levers = Table(title="Savings by lever")
    levers.add_column("lever")
    levers.add_column("saved USD", justify="right")
    for key, label in LEVERS:
        if key in gateway.enabled_levers:
            levers.add_row(label, f"{total.saved_by_lever.get(key, 0.0):.6f}")
        else:
            levers.add_row(label, "[dim]not enabled[/dim]")
    print_table(levers)
    if total.unpriced_requests:
        console.print(f"[yellow]{total.unpriced_requests} requests were unpriced[/yellow]")


def _cell(key: str, value: object) -> str:
    if key.endswith("_usd"):
        return f"{float(value):.6f}"  # type: ignore[arg-type]
    return str(value)
