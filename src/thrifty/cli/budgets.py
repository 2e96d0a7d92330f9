"""``thrifty budgets list|set|delete|reset|changes``: budgets and their change log.

Without ``--url`` the commands work on the configured database (``BudgetStore``): definitions
are the config's ``budgets.budgets`` overridden by stored budgets with the same id (see
``thrifty.budgets.store``). Running gateways pick stored changes up on their next refresh.
Spend counters live in the budget backend: with ``budgets.backend: redis`` ``list`` and
``reset`` read and reset them in Redis directly; the ``memory`` backend's counters exist only
inside a running gateway, so there ``list`` shows definitions only and ``reset`` needs
``--url``. With ``--url`` (and ``--admin-key`` or ``$THRIFTY_ADMIN_KEY``) every command calls
that gateway's admin API instead, which also applies the change there at once.
"""

from __future__ import annotations

import getpass
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import typer
from rich.table import Table

from thrifty.budgets.config import BudgetsConfig
from thrifty.budgets.model import BudgetSpec, period_window
from thrifty.budgets.store import BudgetStore, merge_specs, spec_json, usage_json
from thrifty.cli.cache_ops import AdminKeyOption, UrlOption, _admin
from thrifty.cli.common import ConfigOption, console, err_console, load, print_table, run
from thrifty.config import Config
from thrifty.db.engine import make_engine
from thrifty.db.migrate import upgrade
from thrifty.errors import InvalidRequestError, NotFoundError, ThriftyError
from thrifty.server.admin_budgets import budget_view, validate_spec

app = typer.Typer(help="Define, list and reset budgets; show who changed what (change log).")


def budgets_config(cfg: Config) -> BudgetsConfig:
    """The config's ``budgets:`` section (defaults when the config has none)."""
    section = getattr(cfg, "budgets", None)
    return section if isinstance(section, BudgetsConfig) else BudgetsConfig()


def cli_actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except Exception:  # no user name (e.g. a container without passwd entry)
        return "cli"


def _path(budget_id: str, suffix: str = "") -> str:
    return "/admin/budgets/" + quote(budget_id, safe="/:@=+") + suffix


@asynccontextmanager
async def _store(cfg: Config) -> AsyncIterator[BudgetStore]:
    engine = make_engine(cfg.database.url)
    try:
        await upgrade(engine)
        yield BudgetStore(engine)
    finally:
        await engine.dispose()


@asynccontextmanager
async def _redis_backend(cfg: Config) -> AsyncIterator[Any]:
    """The shared backend when the config uses one and names Redis, else ``None``."""
    bc = budgets_config(cfg)
    if bc.backend != "redis" or not cfg.redis.url:
        yield None
        return
    from thrifty.budgets.redis_backend import RedisBudgetBackend

    backend = RedisBudgetBackend.from_url(
        cfg.redis.url, cfg.redis.prefix, timeout_s=max(bc.timeout_s, 2.0)
    )
    try:
        yield backend
    finally:
        await backend.aclose()


def _money(value: Any) -> str:
    return "" if value is None else f"${value:,.4f}"


def _num(value: Any) -> str:
    return "" if value is None else f"{value:,}"


def _print_budgets(rows: list[dict[str, Any]]) -> None:
    table = Table(
        "id", "scope", "subject", "period", "limit", "policy", "source", "window", "spent",
        "reserved", "remaining", "used",
    )  # fmt: skip
    for r in rows:
        tokens = f"{_num(r['limit_tokens'])} tokens" if r["limit_tokens"] else ""
        limits = [x for x in (_money(r["limit_usd"]), tokens) if x]
        subject = r["subject"] or ""
        if r.get("tenant"):
            subject += f" (tenant {r['tenant']})"
        has_usage = "spent_usd" in r
        table.add_row(
            r["id"] + ("" if r["enabled"] else " [dim](disabled)[/dim]"),
            r["scope"],
            subject,
            f"{r['period']} {r['timezone']}",
            " + ".join(limits),
            r["policy"] + (f" x{r['soft_multiplier']:g}" if r["policy"] == "soft" else ""),
            r.get("source", ""),
            r["window"]["id"],
            _money(r["spent_usd"]) if has_usage else "",
            _money(r["reserved_usd"]) if has_usage else "",
            (_money(r["remaining_usd"]) or _num(r["remaining_tokens"])) if has_usage else "",
            f"{r['percent_used']:.1f}%" if has_usage else "",
        )
    print_table(table)


@app.command("list")
def list_budgets(
    url: str | None = UrlOption,
    admin_key: str | None = AdminKeyOption,
    config: Path | None = ConfigOption,
) -> None:
    """Budgets (config + database) with their current window; spend when it is readable."""
    if url:
        rows = _admin(url, admin_key, "GET", "/admin/budgets")["data"]
        _print_budgets(rows)
        return
    cfg = load(config)

    async def go() -> tuple[list[dict[str, Any]], bool]:
        async with _store(cfg) as store:
            specs, sources = merge_specs(budgets_config(cfg).budgets, await store.list())
        now = datetime.now(UTC)
        windows = [period_window(s, now) for s in specs]
        async with _redis_backend(cfg) as backend:
            usages: list[Any] = [None] * len(specs)
            if backend is not None and specs:
                refs = [(s, w.window_id) for s, w in zip(specs, windows, strict=True)]
                usages = await backend.usages(refs)
            rows = [
                budget_view(s, sources[s.id], w, u)
                for s, w, u in zip(specs, windows, usages, strict=True)
            ]
            return rows, backend is not None

    rows, with_spend = run(go())
    if not rows:
        console.print("no budgets (define them under budgets.budgets or with `budgets set`)")
        return
    _print_budgets(rows)
    if not with_spend:
        console.print(
            "[dim]spend: the memory backend's counters live in the running gateway; "
            "pass --url (and --admin-key) to see them[/dim]"
        )


@app.command("set")
def set_budget(
    budget_id: str = typer.Argument(..., metavar="ID", help="The budget id."),
    scope: str = typer.Option("tenant", "--scope", help="org|tenant|user|key|tag"),
    subject: str | None = typer.Option(None, "--subject", help="tenant/user/key id, or k=v"),
    tenant: str | None = typer.Option(None, "--tenant", help="restrict to one tenant"),
    period: str = typer.Option("monthly", "--period", help="daily|weekly|monthly|total"),
    limit_usd: float | None = typer.Option(None, "--limit-usd"),
    limit_tokens: int | None = typer.Option(None, "--limit-tokens"),
    policy: str = typer.Option("reject", "--policy", help="reject|degrade|soft"),
    soft_multiplier: float = typer.Option(2.0, "--soft-multiplier"),
    timezone: str = typer.Option("UTC", "--timezone", help="IANA zone of the period bounds"),
    disabled: bool = typer.Option(False, "--disabled", help="store it switched off"),
    url: str | None = UrlOption,
    admin_key: str | None = AdminKeyOption,
    config: Path | None = ConfigOption,
) -> None:
    """Create or replace a budget in the database (overrides a config budget of that id)."""
    body: dict[str, Any] = {
        "scope": scope,
        "subject": subject,
        "tenant": tenant,
        "period": period,
        "limit_usd": limit_usd,
        "limit_tokens": limit_tokens,
        "policy": policy,
        "soft_multiplier": soft_multiplier,
        "timezone": timezone,
        "enabled": not disabled,
    }
    try:
        spec = validate_spec(budget_id, body)
    except ThriftyError as exc:
        err_console.print(f"[red]error:[/red] {exc.message}")
        raise typer.Exit(2) from None
    if url:
        data = _admin(url, admin_key, "PUT", _path(budget_id), spec_json(spec))
        old = data["old"]
    else:
        cfg = load(config)
        base = next((s for s in budgets_config(cfg).budgets if s.id == budget_id), None)

        async def go() -> BudgetSpec | None:
            async with _store(cfg) as store:
                return (await store.put(spec, cli_actor(), base=base))[0]

        prev = run(go())
        old = spec_json(prev) if prev else None
    if old is None:
        console.print(f"[green]created[/green] budget {budget_id}")
    else:
        diff = describe(old, spec_json(spec))
        console.print(f"[green]updated[/green] budget {budget_id}: {diff or 'no change'}")


@app.command()
def delete(
    budget_id: str = typer.Argument(..., metavar="ID"),
    url: str | None = UrlOption,
    admin_key: str | None = AdminKeyOption,
    config: Path | None = ConfigOption,
) -> None:
    """Delete a stored budget (a config budget it overrode applies again)."""
    if url:
        reverted = _admin(url, admin_key, "DELETE", _path(budget_id))["reverted_to"]
    else:
        cfg = load(config)
        fallback = next((s for s in budgets_config(cfg).budgets if s.id == budget_id), None)

        async def go() -> None:
            async with _store(cfg) as store:
                if await store.delete(budget_id, cli_actor(), fallback=fallback) is not None:
                    return
            if fallback is not None:
                raise InvalidRequestError(
                    f"budget {budget_id!r} is defined in the config file; remove it there, "
                    "or `budgets set … --disabled` to switch it off"
                )
            raise NotFoundError(f"no stored budget {budget_id!r}")

        run(go())
        reverted = fallback
    console.print(f"[yellow]deleted[/yellow] budget {budget_id}")
    if reverted is not None:
        console.print("the config file's definition of this id applies again")


@app.command()
def reset(
    budget_id: str = typer.Argument(..., metavar="ID"),
    url: str | None = UrlOption,
    admin_key: str | None = AdminKeyOption,
    config: Path | None = ConfigOption,
) -> None:
    """Zero a budget's spend in its current window (live reservations keep counting)."""
    if url:
        data = _admin(url, admin_key, "POST", _path(budget_id, "/reset"))
        before, window = data["before"], data["window"]["id"]
    else:
        cfg = load(config)

        async def go() -> tuple[dict[str, Any], str]:
            async with _redis_backend(cfg) as backend:
                if backend is None:
                    raise InvalidRequestError(
                        "the memory backend's counters live in the running gateway: "
                        "pass --url (and --admin-key)"
                    )
                async with _store(cfg) as store:
                    specs, _ = merge_specs(budgets_config(cfg).budgets, await store.list())
                    spec = next((s for s in specs if s.id == budget_id), None)
                    if spec is None:
                        raise NotFoundError(f"no budget {budget_id!r}")
                    win = period_window(spec, datetime.now(UTC)).window_id
                    usage = await backend.reset(spec, win)
                    await store.record_reset(budget_id, cli_actor(), usage)
                    return usage_json(usage), win

        before, window = run(go())
    console.print(
        f"[yellow]reset[/yellow] budget {budget_id} ({window}): spent "
        f"${before['spent_usd']:,.4f} / {before['spent_tokens']:,} tokens → 0"
    )


def describe(old: dict[str, Any] | None, new: dict[str, Any] | None) -> str:
    """A one-line summary of a change's old → new."""
    if old is None and new is None:
        return ""
    if old is None or new is None:
        doc = new if old is None else old
        assert doc is not None
        keys = ("scope", "subject", "period", "limit_usd", "limit_tokens", "policy")
        return ", ".join(f"{k}={doc[k]}" for k in keys if doc.get(k) is not None)
    if "spent_micros" in old:  # a reset
        return f"window {old.get('window_id')}: spent ${old.get('spent_usd', 0):,.4f} → 0"
    return ", ".join(f"{k}: {old.get(k)} → {new.get(k)}" for k in new if old.get(k) != new.get(k))


@app.command()
def changes(
    budget_id: str | None = typer.Argument(None, metavar="[ID]"),
    limit: int = typer.Option(50, "--limit", "-n", min=1, max=10_000),
    url: str | None = UrlOption,
    admin_key: str | None = AdminKeyOption,
    config: Path | None = ConfigOption,
) -> None:
    """The change log (newest first): who changed which budget when, old → new."""
    if url:
        if budget_id is None:
            err_console.print("[red]error:[/red] with --url give a budget ID")
            raise typer.Exit(2)
        path = _path(budget_id, f"/changes?limit={limit}")
        rows = _admin(url, admin_key, "GET", path)["data"]
    else:
        cfg = load(config)

        async def go() -> list[dict[str, Any]]:
            async with _store(cfg) as store:
                return [c.to_json() for c in await store.changes(budget_id, limit)]

        rows = run(go())
    table = Table("#", "at", "budget", "action", "actor", "old → new")
    for c in rows:
        at = datetime.fromisoformat(c["at"]).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
        table.add_row(
            str(c["id"]),
            at,
            c["budget_id"],
            c["action"],
            c["actor"],
            describe(c["old"], c["new"]),
        )
    print_table(table)
