"""``thrifty cache warm|invalidate|stats``: operate the response cache.

``invalidate`` and ``stats`` talk to a running gateway's admin API when ``--url`` is given (its
in-process tier and every replica are reached); without it they act on the shared tiers a
gateway on the config opens (Redis when configured — whose replicas hear the invalidation over
pub/sub — else the disk or S3 tier).
``warm`` replays a JSON-lines file of requests through an in-process gateway on the same
config, so the answers land in the shared tiers the servers read.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import orjson
import typer
from rich.table import Table

from thrifty.cli.common import ConfigOption, console, err_console, load, print_table, run
from thrifty.errors import ThriftyError
from thrifty.server.admin_cache import parse_selector

if TYPE_CHECKING:
    from thrifty.cache.tiered import TieredCache
    from thrifty.config import Config

UrlOption = typer.Option(None, "--url", help="A running gateway, e.g. http://127.0.0.1:4000")
AdminKeyOption = typer.Option(
    None, "--admin-key", envvar="THRIFTY_ADMIN_KEY", help="The admin key (or $THRIFTY_ADMIN_KEY)"
)


def _admin(url: str, admin_key: str | None, method: str, path: str, body: Any = None) -> Any:
    if not admin_key:
        err_console.print("[red]error:[/red] --admin-key (or THRIFTY_ADMIN_KEY) is required")
        raise typer.Exit(2)
    resp = httpx.request(
        method,
        url.rstrip("/") + path,
        json=body,
        headers={"authorization": f"Bearer {admin_key}"},
        timeout=60,
    )
    data = resp.json()
    if resp.status_code >= 400:
        err_console.print(f"[red]error:[/red] {data.get('error', {}).get('message', resp.text)}")
        raise typer.Exit(1)
    return data


def _require_cache(cfg: Config) -> None:
    if not cfg.cache.enabled:
        err_console.print("[red]error:[/red] the cache is disabled in this config")
        raise typer.Exit(2)


@asynccontextmanager
async def _shared_tiers(cfg: Config) -> AsyncIterator[TieredCache]:
    """The cache tiers a gateway on this config uses (Redis when configured, else the disk or
    S3 tier), built by the gateway's own constructor; nothing else of it is started (no
    database, no providers), and closing it closes its Redis client."""
    from thrifty.gateway import Gateway

    gateway = Gateway(cfg)
    try:
        assert gateway.cache is not None  # _require_cache
        await gateway.cache.start()
        yield gateway.cache
    finally:
        await gateway.aclose()


def invalidate(
    key: str | None = typer.Option(None, "--key"),
    tenant: str | None = typer.Option(None, "--tenant"),
    model: str | None = typer.Option(None, "--model"),
    tag: str | None = typer.Option(None, "--tag", help="k=v"),
    pattern: str | None = typer.Option(None, "--pattern", help="glob over cache keys"),
    all_: bool = typer.Option(False, "--all", help="everything"),
    url: str | None = UrlOption,
    admin_key: str | None = AdminKeyOption,
    config: Path | None = ConfigOption,
) -> None:
    """Drop cache entries by key, tenant, model, tag, pattern, or all."""
    body = {"key": key, "tenant": tenant, "model": model, "tag": tag, "pattern": pattern}
    body = {k: v for k, v in body.items() if v}
    if all_:
        body["all"] = "true"
    try:
        selector = parse_selector(body)
    except ThriftyError as exc:
        err_console.print(f"[red]error:[/red] {exc.message}")
        raise typer.Exit(2) from None
    if url:
        removed = _admin(url, admin_key, "POST", "/admin/cache/invalidate", selector)["invalidated"]
    else:
        cfg = load(config)
        _require_cache(cfg)

        async def go() -> int:
            async with _shared_tiers(cfg) as cache:
                return await cache.invalidate(selector)

        removed = run(go())
    console.print(f"invalidated [bold]{removed}[/bold] entr{'y' if removed == 1 else 'ies'}")


def stats(
    url: str | None = UrlOption,
    admin_key: str | None = AdminKeyOption,
    config: Path | None = ConfigOption,
) -> None:
    """Entries and bytes per tier, hits by tier, misses, evictions, savings."""
    if url:
        data = _admin(url, admin_key, "GET", "/admin/cache/stats")
    else:
        cfg = load(config)
        _require_cache(cfg)

        async def go() -> dict[str, Any]:
            async with _shared_tiers(cfg) as cache:
                return await cache.stats()

        data = run(go())
    table = Table("tier", "entries", "bytes", "evictions")
    for name, tier in data["tiers"].items():
        table.add_row(
            name,
            str(tier.get("entries", "")),
            str(tier.get("bytes", "")),
            str(tier.get("evictions", "")),
        )
    print_table(table)
    if data.get("counts"):
        console.print("counts: " + ", ".join(f"{k}={v}" for k, v in sorted(data["counts"].items())))
    if data.get("savings_30d_usd"):
        s = data["savings_30d_usd"]
        console.print(
            f"saved (30 days): exact ${s['cache']:.6f}, semantic ${s['semantic_cache']:.6f}"
        )


def warm(
    file: Path = typer.Argument(..., exists=True, readable=True, help="JSON lines of requests"),
    tenant: str = typer.Option(..., "--tenant", "-t", help="The tenant whose scope to warm"),
    user: str | None = typer.Option(None, "--user"),
    config: Path | None = ConfigOption,
) -> None:
    """Replay requests (one OpenAI chat or embeddings body per line) to fill the cache."""
    cfg = load(config)
    lines = [line for line in file.read_bytes().splitlines() if line.strip()]

    async def go() -> dict[str, int]:
        from thrifty.gateway import Gateway
        from thrifty.keys.principal import Principal

        counts = {"requests": 0, "already cached": 0, "stored": 0, "not storable": 0, "errors": 0}
        principal = Principal(tenant=tenant, user=user)
        async with Gateway(cfg) as gw:
            for n, line in enumerate(lines, 1):
                counts["requests"] += 1
                try:
                    body = orjson.loads(line)
                    body.pop("stream", None)
                    body.pop("stream_options", None)
                    is_embedding = "input" in body and "messages" not in body
                    call = gw.embeddings if is_embedding else gw.chat
                    outcome = await call(body, principal)  # type: ignore[operator]
                except (ThriftyError, orjson.JSONDecodeError) as exc:
                    counts["errors"] += 1
                    err_console.print(f"line {n}: {getattr(exc, 'message', exc)}")
                    continue
                ctx = outcome.ctx
                if ctx.cache_status == "hit":
                    counts["already cached"] += 1
                elif ctx.embed_plan is not None or (
                    ctx.cache_key and gw.cache and gw.cache.memory.get_now(ctx.cache_key)
                ):
                    counts["stored"] += 1
                else:
                    counts["not storable"] += 1  # e.g. a tool call, a truncated answer
            if gw.cache is not None:
                await gw.cache.flush()
        return counts

    _require_cache(cfg)
    counts = run(go())
    console.print(", ".join(f"{k}: {v}" for k, v in counts.items()))


def pairs_from_ledger(
    out: Path = typer.Option(..., "--out", "-o", help="Where to write the labelled pairs (JSONL)."),
    period: str = typer.Option("90d", "--period", "-p"),
    config: Path | None = ConfigOption,
) -> None:
    """Labelled pairs from the ledger: each rated semantic hit is (question, cached question,
    rating ≥ 0.5). Needs ledger.store_content; feed the file to `thrifty cache calibrate`."""
    from sqlalchemy import select

    from thrifty.db.engine import make_engine
    from thrifty.db.migrate import upgrade
    from thrifty.db.schema import feedback, ledger
    from thrifty.ledger.periods import parse_period
    from thrifty.pipeline.semantic import last_user_text

    cfg = load(config)
    window = parse_period(period)

    async def go() -> list[dict[str, Any]]:
        engine = make_engine(cfg.database.url)
        try:
            await upgrade(engine)
            c, f = ledger.c, feedback.c
            query = (
                select(c.content, f.score, f.needed_clarification)
                .select_from(ledger.join(feedback, f.request_id == c.request_id))
                .where(
                    c.cache_status == "semantic",
                    c.started_at >= window.start,
                    c.started_at < window.end,
                )
            )
            async with engine.connect() as conn:
                rows = (await conn.execute(query)).all()
        finally:
            await engine.dispose()
        pairs = []
        for content, score, clarification in rows:
            content = content or {}
            asked = last_user_text(content.get("request") or {})
            matched = content.get("semantic_match")
            if not asked or not matched:
                continue
            good = (score is None or score >= 0.5) and not clarification
            pairs.append({"a": asked, "b": matched, "label": bool(good)})
        return pairs

    pairs = run(go())
    out.write_bytes(b"".join(orjson.dumps(p) + b"\n" for p in pairs))
    console.print(f"{len(pairs)} labelled pairs from rated semantic hits → {out}")


def register(app: typer.Typer) -> None:
    app.command()(warm)
    app.command()(invalidate)
    app.command()(stats)
    app.command("pairs-from-ledger")(pairs_from_ledger)
