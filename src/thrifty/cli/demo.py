"""``thrifty demo``: the gateway on embedded defaults and fake providers, driven by a realistic
mixed workload over real HTTP, then a summary of what it cost and what each lever saved."""

from __future__ import annotations

import asyncio
import contextlib
import random
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import typer

from thrifty.cli.common import console
from thrifty.cli.demo_report import print_summary
from thrifty.cli.demo_workload import DemoRequest, build_workload, drive
from thrifty.config import config_from_env
from thrifty.ledger.periods import Period
from thrifty.server.local import LocalServer


def demo(
    requests: int = typer.Option(300, "--requests", "-n", min=1, help="How many requests."),
    concurrency: int = typer.Option(8, "--concurrency", min=1),
    keep: bool = typer.Option(False, "--keep", help="Keep serving afterwards; print the URLs."),
    port: int = typer.Option(0, "--port", help="Gateway port (default: any free port)."),
    seed: int = typer.Option(7, "--seed"),
    data_dir: Path | None = typer.Option(None, "--data-dir", help="Default: a temporary dir."),
    semantic: bool = typer.Option(
        True, "--semantic/--no-semantic", help="Enable the semantic cache (needs the extra)."
    ),
) -> None:
    """Run Thrifty on the built-in fake providers and drive a mixed workload through it."""
    if semantic:
        try:
            import onnxruntime  # noqa: F401
        except ImportError:
            semantic = False
    asyncio.run(_demo(requests, concurrency, keep, port, seed, data_dir, semantic))


async def _demo(
    n: int,
    concurrency: int,
    keep: bool,
    port: int,
    seed: int,
    data_dir: Path | None,
    semantic: bool = True,
) -> None:
    tmp = None
    if data_dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="thrifty-demo-")
        data_dir = Path(tmp.name)
    admin_key = "admin-demo-" + random.Random(seed).randbytes(8).hex()
    config = config_from_env(
        {},  # ignore real provider keys: the demo always runs on the fake providers
        server={"admin_key": admin_key, "port": port},
        database={"url": f"sqlite+aiosqlite:///{data_dir / 'thrifty.db'}"},
        pricing={"catalog_file": str(data_dir / "prices.yaml")},
        ledger={"spill_path": str(data_dir / "ledger-spill.jsonl")},
        cache={"disk_path": str(data_dir / "cache"), "semantic": {"enabled": semantic}},
        routing={
            "groups": [
                {
                    "name": "auto",
                    "scorer": "length",
                    "tiers": {"small": ["gpt-4o-mini"], "large": ["gpt-4o"]},
                    "thresholds": {"medium": 0.45, "large": 0.6},
                }
            ]
        },
        budgets={
            "budgets": [
                {
                    "id": "initech-daily",
                    "scope": "tenant",
                    "subject": "initech",
                    "period": "daily",
                    "limit_usd": 0.004,
                    "policy": "degrade",
                }
            ]
        },
    )
    console.rule("[bold]Thrifty demo")
    console.print(
        "[bold yellow]Using the BUILT-IN FAKE PROVIDERS[/bold yellow]: no API keys, no network; "
        "answers are synthetic, token counts and prices are real."
    )
    console.print(
        "Levers on: lossless prompt compression, exact cache, "
        + ("semantic cache, " if semantic else "")
        + "routing for model 'auto' (length scorer), a daily budget for tenant initech "
        "(degrade), resilience; the ledger records every request. (The max-tokens cap is "
        "opt-in and off here.)"
    )
    async with LocalServer(config, port=port) as server:
        gw = server.gateway
        tenants = {}
        for tenant, tier in (("acme", "enterprise"), ("globex", "standard"), ("initech", "basic")):
            key, _ = await gw.keys.create(tenant, tier=tier, tags={"feature": "demo"})
            tenants[tenant] = key
        console.print(f"Gateway: {server.base_url}  (SQLite ledger in {data_dir})")
        workload: list[DemoRequest] = build_workload(n, list(tenants), seed)
        started = datetime.now(UTC)
        results = await drive(server.base_url, tenants, workload, concurrency)
        await print_summary(results, gw, Period(started, datetime.now(UTC), "demo"))
        if keep:
            console.rule("[bold]Serving (Ctrl-C to stop)")
            console.print(f"OpenAI base URL : {server.base_url}")
            console.print(f"Metrics         : {server.root_url}/metrics")
            console.print(f"Admin key       : {admin_key}")
            for tenant, key in tenants.items():
                console.print(f"Key for {tenant:<8}: {key}")
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.Event().wait()
    if tmp is not None:
        tmp.cleanup()
