"""``thrifty route explain "…"``: the route decision and score for a prompt, without calling a
model (the same policy the gateway runs for ``model: "auto"`` or a route group)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
import typer

from thrifty.cli.common import ConfigOption, console, err_console, load
from thrifty.keys.principal import TIERS, Principal

app = typer.Typer(help="Explain routing decisions.")


@app.command()
def explain(
    prompt: str = typer.Argument(..., help="The user message to route."),
    model: str = typer.Option("auto", "--model", "-m", help="A route group (default: auto)."),
    system: str | None = typer.Option(None, "--system"),
    tier: str = typer.Option("standard", "--tier", help="The user's tier."),
    tags: list[str] = typer.Option([], "--tag", help="k=v (repeatable)"),
    priority: str = typer.Option("normal", "--priority"),
    max_tokens: int | None = typer.Option(None, "--max-tokens"),
    as_json: bool = typer.Option(False, "--json"),
    config: Path | None = ConfigOption,
) -> None:
    """Show which model a request would get, its score, and why."""
    cfg = load(config)
    if tier not in TIERS:
        err_console.print(f"[red]error:[/red] --tier must be one of {', '.join(TIERS)}")
        raise typer.Exit(2)
    group = cfg.routing.group(model)
    if group is None:
        err_console.print(f"[red]error:[/red] no route group {model!r} in the config")
        raise typer.Exit(2)
    from thrifty.pricing import CostCalculator, PriceCatalog
    from thrifty.routing.policy import RoutePolicy

    catalog = PriceCatalog.load(cfg.pricing)
    policy = RoutePolicy(group, catalog, CostCalculator(catalog))
    messages = ([{"role": "system", "content": system}] if system else []) + [
        {"role": "user", "content": prompt}
    ]
    body: dict = {"model": model, "messages": messages}
    if max_tokens:
        body["max_tokens"] = max_tokens
    tag_map = dict(t.split("=", 1) for t in tags if "=" in t)
    available = {m.name for m in cfg.models if m.mode == "chat"}
    decision = asyncio.run(
        policy.apreview(
            body,
            Principal("cli", tier=tier),
            tags=tag_map,
            priority=priority,
            available_models=available,
        )
    )
    if as_json:
        print(orjson.dumps(decision.to_dict(), option=orjson.OPT_INDENT_2).decode())
        return
    console.print(f"model:     [bold]{decision.model}[/bold]  (tier {decision.tier})")
    console.print(f"score:     {decision.score:.3f}  ({decision.scorer})")
    console.print(f"fallbacks: {', '.join(decision.fallbacks) or '-'}")
    console.print(f"reason:    {decision.reason}")
    for c in decision.considered:
        console.print(f"  rejected {c.model}: {c.reason}")
