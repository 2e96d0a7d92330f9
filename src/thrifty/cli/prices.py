"""``thrifty prices``: look at the price catalog, cost a request, compare models, project spend.

Every command takes ``--config PATH`` (else ``THRIFTY_CONFIG``, else the defaults) and uses its
``pricing`` section. A model with no price is an error (exit 1), never costed as $0.
"""

from __future__ import annotations

import difflib
import json
from decimal import Decimal
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.table import Table

from thrifty.config import resolve_config
from thrifty.errors import ConfigError
from thrifty.pricing import CostBreakdown, CostCalculator, ModelPrice, PriceCatalog, Usage

app = typer.Typer(
    help="The price catalog: list prices, cost a request, compare models, estimate spend.",
    no_args_is_help=True,
)

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="Config file (default: $THRIFTY_CONFIG, else defaults)."),
]
InputOption = Annotated[int, typer.Option("--input", "-i", min=0, help="Prompt tokens.")]
OutputOption = Annotated[int, typer.Option("--output", "-o", min=0, help="Completion tokens.")]
CachedOption = Annotated[
    int, typer.Option("--cached", min=0, help="Prompt tokens read from the provider's cache.")
]


def _out() -> Console:
    return Console(highlight=False)


def _fail(message: str) -> NoReturn:
    Console(stderr=True, highlight=False).print(f"[red]error:[/red] {message}")
    raise typer.Exit(1)


def _catalog(config: Path | None) -> PriceCatalog:
    try:
        return PriceCatalog.load(resolve_config(config).pricing)
    except ConfigError as exc:
        _fail(exc.message)


def _unpriced_message(catalog: PriceCatalog, models: list[str]) -> str:
    names = ", ".join(repr(m) for m in models)
    hints = {m: difflib.get_close_matches(m, catalog.names(), n=3, cutoff=0.75) for m in models}
    hint = "; ".join(
        f"for {m!r} did you mean {', '.join(close)}?" for m, close in hints.items() if close
    )
    return (
        f"no price for {names}: not in the catalog (see `thrifty prices list`); price it under "
        "pricing.overrides in the config (a self-hosted model needs an explicit "
        "input: 0, output: 0)" + (f"\n{hint}" if hint else "")
    )


def usd(amount: Decimal | float | None) -> str:
    """Dollars with as many decimals as needed (up to 9), at least 2: $0.000435, $12.50."""
    if amount is None:
        return "—"
    value = Decimal(str(amount)) if isinstance(amount, float) else amount
    if value == 0:
        return "$0.00"
    text = f"{value.quantize(Decimal('1e-9')):,.9f}".rstrip("0")
    whole, _, frac = text.partition(".")
    return f"${whole}.{frac.ljust(2, '0')}"


def _rate(value: Decimal | None) -> str:
    return "—" if value is None else usd(value)


@app.command("list")
def list_prices(
    provider: Annotated[
        str | None, typer.Option("--provider", "-p", help="Only this provider.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    config: ConfigOption = None,
) -> None:
    """List priced models (USD per million tokens)."""
    catalog = _catalog(config)
    entries = catalog.models(provider)
    if provider and not entries:
        _fail(f"no models for provider {provider!r} (known: {', '.join(catalog.providers())})")
    if as_json:
        typer.echo(json.dumps([e.to_dict() for e in entries], indent=2))
        return
    table = Table(title=f"{len(entries)} priced models (USD per 1M tokens)")
    table.add_column("Model", overflow="fold")
    table.add_column("Provider")
    table.add_column("Mode")
    for name in ("Input", "Cached", "Cache write", "Output"):
        table.add_column(name, justify="right")
    table.add_column("Context", justify="right")
    table.add_column("Long context", overflow="fold")
    for e in entries:
        tiers = ", ".join(
            f">{t.above_input_tokens:,}: {usd(t.input)}/{_rate(t.output)}" for t in e.tiers
        )
        table.add_row(
            e.id,
            e.provider,
            e.mode,
            _rate(e.input),
            _rate(e.cached_input),
            _rate(e.cache_write),
            _rate(e.output),
            f"{e.context_window:,}" if e.context_window else "—",
            tiers,
        )
    _out().print(table)


def _require(catalog: PriceCatalog, model: str) -> ModelPrice:
    price = catalog.get(model)
    if price is None:
        _fail(_unpriced_message(catalog, [model]))
    return price


def _usage(prompt: int, completion: int, cached: int = 0, cache_write: int = 0) -> Usage:
    try:
        return Usage(
            prompt_tokens=prompt,
            completion_tokens=completion,
            cached_tokens=cached,
            cache_write_tokens=cache_write,
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


@app.command("cost")
def cost_command(
    model: Annotated[str, typer.Argument(help="Model id, alias or snapshot.")],
    input_tokens: InputOption,
    output_tokens: OutputOption,
    cached: CachedOption = 0,
    cache_write: Annotated[
        int, typer.Option("--cache-write", min=0, help="Prompt tokens written to the cache.")
    ] = 0,
    config: ConfigOption = None,
) -> None:
    """Cost one request on MODEL, component by component."""
    catalog = _catalog(config)
    price = _require(catalog, model)
    usage = _usage(input_tokens, output_tokens, cached, cache_write)
    breakdown = CostCalculator(catalog).cost_of(model, usage)
    assert breakdown is not None
    rates = price.rates_for(usage.prompt_tokens)
    label = price.id if price.id == model else f"{model} → {price.id}"
    table = Table(title=f"{label} ({price.provider})")
    table.add_column("Component")
    table.add_column("Tokens", justify="right")
    table.add_column("USD / 1M", justify="right")
    table.add_column("Cost", justify="right")
    table.add_row(
        "input", f"{usage.uncached_prompt_tokens:,}", usd(rates.input), usd(breakdown.input)
    )
    table.add_row(
        "cached input",
        f"{usage.cached_tokens:,}",
        usd(rates.cached_rate),
        usd(breakdown.cached_input),
    )
    table.add_row(
        "cache write",
        f"{usage.cache_write_tokens:,}",
        usd(rates.cache_write_rate),
        usd(breakdown.cache_write),
    )
    table.add_row(
        "output", f"{usage.completion_tokens:,}", usd(rates.output_rate), usd(breakdown.output)
    )
    table.add_row("total", f"{usage.total_tokens:,}", "", usd(breakdown.total), style="bold")
    out = _out()
    out.print(table)
    if breakdown.tier is not None:
        out.print(f"long-context rates: the prompt exceeds {breakdown.tier:,} tokens")
    out.print(f"total: {usd(breakdown.total)}")


def _compare_table(rows: list[tuple[str, CostBreakdown | None]], catalog: PriceCatalog) -> Table:
    table = Table(title="Cost of the same request, cheapest first")
    table.add_column("#", justify="right")
    table.add_column("Model", overflow="fold")
    table.add_column("Provider")
    table.add_column("Input", justify="right")
    table.add_column("Output", justify="right")
    table.add_column("Total", justify="right")
    table.add_column("vs cheapest", justify="right")
    best = next((b.total for _, b in rows if b is not None), None)
    for rank, (model, b) in enumerate(rows, start=1):
        if b is None:
            table.add_row("", model, "", "", "", "unpriced", "")
            continue
        price = catalog.get(model)
        ratio = f"{b.total / best:.2f}x" if best else ("1.00x" if b.total == 0 else "—")
        table.add_row(
            str(rank),
            model,
            price.provider if price else "",
            usd(b.input + b.cached_input + b.cache_write),
            usd(b.output),
            usd(b.total),
            ratio,
        )
    return table


@app.command("compare")
def compare_command(
    models: Annotated[list[str], typer.Argument(help="Models to compare.")],
    input_tokens: InputOption,
    output_tokens: OutputOption,
    cached: CachedOption = 0,
    config: ConfigOption = None,
) -> None:
    """Cost the same request on several models, cheapest first."""
    catalog = _catalog(config)
    _usage(input_tokens, output_tokens, cached)
    rows = CostCalculator(catalog).compare(models, input_tokens, output_tokens, cached)
    _out().print(_compare_table(rows, catalog))
    missing = [m for m, b in rows if b is None]
    if missing:
        _fail(_unpriced_message(catalog, missing))


@app.command("cheapest")
def cheapest_command(
    models: Annotated[list[str], typer.Argument(help="Candidate models.")],
    input_tokens: InputOption,
    output_tokens: OutputOption,
    cached: CachedOption = 0,
    config: ConfigOption = None,
) -> None:
    """Name the cheapest of several models for a request (all must be priced)."""
    catalog = _catalog(config)
    _usage(input_tokens, output_tokens, cached)
    missing = [m for m in models if not catalog.is_priced(m)]
    if missing:
        _fail(_unpriced_message(catalog, missing) + "\n(cannot name the cheapest without them)")
    found = CostCalculator(catalog).cheapest(models, input_tokens, output_tokens, cached)
    assert found is not None
    model, breakdown = found
    _out().print(f"cheapest: {model} at {usd(breakdown.total)} per request")


@app.command("estimate")
def estimate_command(
    model: Annotated[str, typer.Argument(help="Model id, alias or snapshot.")],
    requests_per_day: Annotated[
        int, typer.Option("--requests-per-day", "-r", min=0, help="Requests per day.")
    ],
    input_tokens: Annotated[
        int, typer.Option("--input", "-i", min=0, help="Average prompt tokens per request.")
    ],
    output_tokens: Annotated[
        int, typer.Option("--output", "-o", min=0, help="Average completion tokens per request.")
    ],
    days: Annotated[int, typer.Option("--days", min=1, help="Days in the period.")] = 30,
    config: ConfigOption = None,
) -> None:
    """Project daily and monthly spend for steady traffic on MODEL."""
    catalog = _catalog(config)
    _require(catalog, model)
    estimate = CostCalculator(catalog).monthly_estimate(
        model, requests_per_day, input_tokens, output_tokens, days=days
    )
    assert estimate is not None
    out = _out()
    out.print(
        f"{model}: {requests_per_day:,} requests/day x ({input_tokens:,} in + "
        f"{output_tokens:,} out tokens)"
    )
    out.print(f"per request: {usd(estimate.per_request_usd)}")
    out.print(f"daily: {usd(estimate.daily_usd)}")
    out.print(f"monthly ({days} days): {usd(estimate.monthly_usd)}")


@app.command("update")
def update_command(
    file: Annotated[
        Path, typer.Argument(help="A newer catalog file (same format as the bundled one).")
    ],
    config: ConfigOption = None,
) -> None:
    """Validate FILE and install it as the configured pricing.catalog_file."""
    catalog = _catalog(config)
    try:
        count = catalog.import_file(file)
    except ConfigError as exc:
        _fail(exc.message)
    noun = "model" if count == 1 else "models"
    _out().print(f"imported {count} {noun} into {catalog.catalog_file}")
