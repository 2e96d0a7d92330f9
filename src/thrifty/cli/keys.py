"""``thrifty keys create|list|revoke``: virtual keys in the configured database."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import typer
from rich.table import Table

from thrifty.cli.common import ConfigOption, console, err_console, load, print_table, run
from thrifty.config import Config
from thrifty.db.engine import make_engine
from thrifty.db.migrate import upgrade
from thrifty.keys.store import KeyStore

app = typer.Typer(help="Create, list and revoke virtual API keys (stored hashed).")


@asynccontextmanager
async def _store(config: Config) -> AsyncIterator[KeyStore]:
    engine = make_engine(config.database.url)
    try:
        await upgrade(engine)
        yield KeyStore(engine)
    finally:
        await engine.dispose()


def _parse_tags(values: list[str]) -> dict[str, str]:
    tags: dict[str, str] = {}
    for item in values:
        for pair in item.split(","):
            k, sep, v = pair.partition("=")
            if not sep or not k.strip():
                err_console.print(f"[red]error:[/red] tag {pair!r} is not key=value")
                raise typer.Exit(2)
            tags[k.strip()] = v.strip()
    return tags


@app.command()
def create(
    tenant: str = typer.Option(..., "--tenant", "-t", help="Tenant (team/org) the key bills to."),
    user: str | None = typer.Option(None, "--user", "-u"),
    tier: str = typer.Option("standard", "--tier", help="basic|standard|premium|enterprise"),
    tags: list[str] = typer.Option([], "--tags", help="k=v[,k=v] (repeatable)"),
    name: str | None = typer.Option(None, "--name"),
    config: Path | None = ConfigOption,
) -> None:
    """Create a key and print it once (only its hash is stored)."""
    cfg = load(config)

    async def go() -> tuple[str, str]:
        async with _store(cfg) as store:
            key, rec = await store.create(
                tenant, user=user, tier=tier, tags=_parse_tags(tags), name=name
            )
            return key, rec.id

    key, key_id = run(go())
    console.print(f"[green]created[/green] {key_id} for tenant [bold]{tenant}[/bold]")
    console.print("This key is shown once; store it now:")
    print(key)


@app.command("list")
def list_keys(
    tenant: str | None = typer.Option(None, "--tenant", "-t"),
    config: Path | None = ConfigOption,
) -> None:
    """List keys (prefix and metadata only; keys themselves are never stored)."""
    cfg = load(config)

    async def go():  # type: ignore[no-untyped-def]
        async with _store(cfg) as store:
            return await store.list(tenant=tenant)

    table = Table("id", "prefix", "tenant", "user", "tier", "tags", "created", "status")
    for r in run(go()):
        table.add_row(
            r.id,
            r.prefix + "…",
            r.tenant,
            r.user or "",
            r.tier,
            ",".join(f"{k}={v}" for k, v in r.tags.items()),
            r.created_at.strftime("%Y-%m-%d %H:%M"),
            "[red]revoked[/red]" if r.revoked_at else "[green]active[/green]",
        )
    print_table(table)


@app.command()
def revoke(
    key_id: str = typer.Argument(..., help="The key id (key_…) or its displayed prefix."),
    config: Path | None = ConfigOption,
) -> None:
    """Revoke a key; requests with it get 401 (running servers notice within keys.cache_ttl_s)."""
    cfg = load(config)

    async def go() -> str:
        async with _store(cfg) as store:
            return (await store.revoke(key_id)).id

    console.print(f"[yellow]revoked[/yellow] {run(go())}")
