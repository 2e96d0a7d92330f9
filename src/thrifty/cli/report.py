"""``thrifty report usage|monthly|request``: spend and savings from the ledger."""

from __future__ import annotations

import csv
import io
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import typer
from rich.table import Table

from thrifty.cli.common import ConfigOption, console, err_console, load, print_table, run
from thrifty.db.engine import make_engine
from thrifty.db.migrate import upgrade
from thrifty.errors import InvalidRequestError
from thrifty.ledger import reports
from thrifty.ledger.periods import Period, parse_period
from thrifty.ledger.reports import ReportRow

app = typer.Typer(help="Spend, savings and usage reports from the ledger.")

FormatOption = typer.Option("table", "--format", "-f", help="table | csv | json")
_MONEY = ("cost_usd", "baseline_cost_usd", "saved_usd", "avg_cost_per_request_usd")


def _fetch(
    config: Path | None, period: Period, group_by: list[str], filters: dict[str, str]
) -> tuple[list[ReportRow], ReportRow]:
    cfg = load(config)

    async def go() -> tuple[list[ReportRow], ReportRow]:
        engine = make_engine(cfg.database.url)
        try:
            await upgrade(engine)
            rows = await reports.usage_report(engine, period, group_by, filters)
            total = await reports.usage_report(engine, period, [], filters)
            return rows, (total[0] if total else ReportRow(group={}))
        finally:
            await engine.dispose()

    return run(go())


def _emit(rows: list[ReportRow], total: ReportRow, fmt: str, title: str, cols: list[str]) -> None:
    records = [r.to_json() for r in rows]
    if fmt == "json":
        sys.stdout.write(
            orjson.dumps({"title": title, "data": records, "total": total.to_json()}).decode()
            + "\n"
        )
        return
    if fmt == "csv":
        buf = io.StringIO()
        fields = list(records[0]) if records else list(total.to_json())
        writer = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(records)
        writer.writerow({**{f: "" for f in fields}, **total.to_json(), fields[0]: "TOTAL"})
        sys.stdout.write(buf.getvalue())
        return
    if fmt != "table":
        err_console.print(f"[red]error:[/red] unknown format {fmt!r} (table, csv, json)")
        raise typer.Exit(2)
    table = Table(title=title, show_footer=True)
    groups = [k for k in (records[0] if records else {}) if k in rows[0].group] if rows else []
    shown = groups + cols
    tot = total.to_json()
    for i, c in enumerate(shown):
        footer = "TOTAL" if i == 0 and groups else _fmt(c, tot.get(c, ""))
        table.add_column(c, footer, justify="left" if c in groups else "right")
    for rec in records:
        table.add_row(*(_fmt(c, rec.get(c)) for c in shown))
    print_table(table)
    if total.unpriced_requests:
        console.print(
            f"[yellow]{total.unpriced_requests} request(s) used unpriced models; their cost is "
            "unknown and not included (see GET /admin/prices/unpriced).[/yellow]"
        )


def _fmt(col: str, value: Any) -> str:
    if value is None:
        return "—"
    if col in _MONEY or col.startswith("saved_"):
        return f"{float(value):.6f}"
    if col.endswith("_rate"):
        return f"{float(value) * 100:.1f}%"
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value)


def _filters(tenant: str | None, user: str | None, model: str | None) -> dict[str, str]:
    return {k: v for k, v in {"tenant": tenant, "user": user, "model": model}.items() if v}


@app.command("usage")
def usage(
    period: str = typer.Option("30d", "--period", "-p", help="1h, 24h, 7d, 30d, month, YYYY-MM"),
    start: str | None = typer.Option(None, "--from", help="ISO date/time (custom range)"),
    end: str | None = typer.Option(None, "--to", help="ISO date/time (custom range)"),
    by: str = typer.Option(
        "tenant", "--by", "-b", help="comma list: tenant,user,key,model,provider,day,tag:<name>"
    ),
    tenant: str | None = typer.Option(None, "--tenant"),
    user: str | None = typer.Option(None, "--user"),
    model: str | None = typer.Option(None, "--model"),
    fmt: str = FormatOption,
    config: Path | None = ConfigOption,
) -> None:
    """Requests, tokens, cost, baseline, savings by lever, cache hit rate, latency, errors."""
    try:
        p = parse_period(period, start=start, end=end)
        rows, total = _fetch(
            config, p, [b for b in by.split(",") if b], _filters(tenant, user, model)
        )
    except InvalidRequestError as exc:
        err_console.print(f"[red]error:[/red] {exc.message}")
        raise typer.Exit(2) from None
    cols = [
        "requests",
        "cost_usd",
        "baseline_cost_usd",
        "saved_usd",
        "saved_cache_usd",
        "saved_routing_usd",
        "prompt_tokens",
        "completion_tokens",
        "cache_hit_rate",
        "avg_latency_ms",
        "p95_latency_ms",
        "avg_cost_per_request_usd",
        "error_rate",
    ]
    _emit(rows, total, fmt, f"Usage {p.label}", cols)


@app.command("monthly")
def monthly(
    month: str | None = typer.Option(None, "--month", "-m", help="YYYY-MM (default: this month)"),
    fmt: str = typer.Option("csv", "--format", "-f", help="csv | table | json"),
    config: Path | None = ConfigOption,
) -> None:
    """The monthly cost report for finance: one line per tenant and model (CSV by default)."""
    month = month or datetime.now(UTC).strftime("%Y-%m")
    try:
        p = parse_period(month)
    except InvalidRequestError as exc:
        err_console.print(f"[red]error:[/red] {exc.message}")
        raise typer.Exit(2) from None
    rows, total = _fetch(config, p, ["tenant", "model"], {})
    cols = [
        "requests",
        "prompt_tokens",
        "completion_tokens",
        "cost_usd",
        "baseline_cost_usd",
        "saved_usd",
        "unpriced_requests",
    ]
    _emit(rows, total, fmt, f"Monthly cost report {p.label}", cols)


@app.command("request")
def request(
    request_id: str = typer.Argument(...),
    config: Path | None = ConfigOption,
) -> None:
    """Print one request's ledger row as JSON."""
    cfg = load(config)

    async def go() -> dict[str, Any] | None:
        engine = make_engine(cfg.database.url)
        try:
            await upgrade(engine)
            return await reports.request_detail(engine, request_id)
        finally:
            await engine.dispose()

    row = run(go())
    if row is None:
        err_console.print(f"[red]error:[/red] no ledger row for {request_id}")
        raise typer.Exit(1)
    sys.stdout.write(orjson.dumps(row, option=orjson.OPT_INDENT_2).decode() + "\n")
