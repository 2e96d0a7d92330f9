"""``thrifty analyze tradeoffs``: cost per successful query per model and complexity class,
the best model per class, and what to change."""

from __future__ import annotations

from pathlib import Path

import orjson
import typer
from rich.table import Table

from thrifty.cli.common import ConfigOption, console, load, print_table, run
from thrifty.db.engine import make_engine
from thrifty.db.migrate import upgrade
from thrifty.ledger.periods import parse_period
from thrifty.ledger.tradeoffs import report_json, tradeoffs

app = typer.Typer(help="Analyses over the ledger.")


@app.command("tradeoffs")
def tradeoffs_cmd(
    period: str = typer.Option("30d", "--period", "-p"),
    min_outcomes: int = typer.Option(20, "--min-outcomes"),
    as_json: bool = typer.Option(False, "--json"),
    config: Path | None = ConfigOption,
) -> None:
    """Per model x complexity class: requests, cost, success rate, cost per success."""
    cfg = load(config)

    async def go():  # type: ignore[no-untyped-def]
        engine = make_engine(cfg.database.url)
        try:
            await upgrade(engine)
            return await tradeoffs(engine, parse_period(period), min_outcomes=min_outcomes)
        finally:
            await engine.dispose()

    report = run(go())
    data = report_json(report)
    if as_json:
        print(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode())
        return
    table = Table("model", "class", "requests", "cost USD", "success", "cost / success USD")
    for cell in data["cells"]:
        rate = cell["success_rate"]
        cps = cell["cost_per_success_usd"]
        table.add_row(
            cell["model"],
            cell["complexity"],
            str(cell["requests"]),
            f"{cell['cost_usd']:.6f}",
            "—" if rate is None else f"{rate * 100:.1f}%",
            "—" if cps is None else f"{cps:.6f}",
        )
    print_table(table)
    for cls, best in data["best_by_class"].items():
        console.print(f"best for {cls}: [bold]{best or 'not enough outcomes'}[/bold]")
    for rec in data["recommendations"]:
        console.print(f"• {rec['text']}")
