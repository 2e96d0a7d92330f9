"""``thrifty cache``: the response cache from the command line.

``calibrate`` reads labelled pairs, embeds them with the semantic cache's embedder, prints the
precision/recall curve over cosine thresholds (cosine alone and with the near-miss guard), and
picks the lowest threshold that meets the target precision, with a Wilson 95% interval on the
false-hit rate there. Exit status: 0 when a threshold was found, 1 when the target is out of
reach on these pairs, 2 on a bad file or a missing ``semantic`` extra.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal, NoReturn

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from thrifty.cache.semantic.calibrate import Calibration

app = typer.Typer(
    help="The response cache: calibrate the semantic threshold.", no_args_is_help=True
)


@app.callback()
def _group() -> None:
    """The response cache: calibrate the semantic threshold."""


def _fail(message: str, code: int = 2) -> NoReturn:
    Console(stderr=True, highlight=False).print(f"[red]error:[/red] {message}")
    raise typer.Exit(code)


def _pct(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value * 100:.{digits}f}%"


def _table(result: Calibration, step: float) -> Table:
    title = "semantic cache: precision / recall by cosine threshold" + (
        " (with the near-miss guard)" if result.guard else " (cosine alone)"
    )
    table = Table(title=title, title_justify="left")
    table.add_column("threshold", justify="right")
    table.add_column("hits", justify="right")
    table.add_column("false hits", justify="right")
    table.add_column("precision", justify="right")
    table.add_column("recall", justify="right")
    if result.guard:
        table.add_column("cosine-only precision", justify="right")
        table.add_column("cosine-only recall", justify="right")
    every = max(1, round(step / 0.005))
    for i, (point, base) in enumerate(zip(result.curve, result.cosine_only, strict=True)):
        chosen = point.threshold == result.threshold
        if not chosen and (i % every or point.threshold < 0.3):
            continue
        cells = [
            f"{point.threshold:.3f}" + (" ◀" if chosen else ""),
            str(point.hits),
            str(point.false_hits),
            _pct(point.precision),
            _pct(point.recall),
        ]
        if result.guard:
            cells += [_pct(base.precision), _pct(base.recall)]
        table.add_row(*cells, style="bold green" if chosen else None)
    return table


def _needed(result: Calibration) -> str:
    n = result.hits_needed()
    more = "label more pairs, or collect them with `thrifty cache pairs-from-ledger`"
    return f"{more} (about {n} right hits with no wrong one would show it)" if n else more


def _summary(result: Calibration) -> str:
    target = _pct(result.target_precision)
    if result.point is None or result.false_hit_ci is None:
        return (
            f"no threshold reaches {target} precision on these pairs "
            f"({result.positives} positive, {result.negatives} negative)"
        )
    low, high = result.false_hit_ci
    p = result.point
    return (
        f"threshold {p.threshold:.3f}: precision {_pct(p.precision, 2)}, recall {_pct(p.recall)} "
        f"({p.true_hits} right and {p.false_hits} wrong hits of {result.positives} positive, "
        f"{result.negatives} negative pairs)\n"
        f"false-hit rate {_pct(result.false_hit_rate, 2)}, 95% CI {_pct(low, 2)} to "
        f"{_pct(high, 2)} ({result.ci_method})"
        + (
            ""
            if result.conclusive
            else f"\nnot conclusive: the false-hit rate could be up to {_pct(high, 2)}, more than "
            f"{target} precision allows; {_needed(result)}"
        )
    )


@app.command("calibrate")
def calibrate_command(
    pairs: Annotated[
        Path,
        typer.Option(
            "--pairs",
            exists=True,
            dir_okay=False,
            readable=True,
            help="Labelled pairs: .json ({origin, similar} or {a, b, label}), .jsonl, .csv.",
        ),
    ],
    target_precision: Annotated[
        float,
        typer.Option(
            "--target-precision", min=0.5, max=1.0, help="Precision the threshold must meet."
        ),
    ] = 0.99,
    guard: Annotated[
        bool,
        typer.Option("--guard/--no-guard", help="Apply the near-miss guard after the cosine test."),
    ] = True,
    fmt: Annotated[
        Literal["table", "json"], typer.Option("--format", help="Output format.")
    ] = "table",
    step: Annotated[
        float,
        typer.Option("--step", min=0.005, max=0.5, help="Threshold step of the printed curve."),
    ] = 0.02,
    negatives: Annotated[
        bool,
        typer.Option(
            "--construct-negatives/--no-construct-negatives",
            help="When the file has no negatives, add random and constructed near-miss ones.",
        ),
    ] = True,
) -> None:
    """Print the precision/recall curve and pick the threshold that meets the target precision."""
    from thrifty.cache.embedder import get_embedder
    from thrifty.cache.semantic.calibrate import calibrate, read_pairs, score_pairs
    from thrifty.cache.semantic.devset import build_devset
    from thrifty.cache.semantic.guard import Guard
    from thrifty.errors import ConfigError

    try:
        labelled = read_pairs(pairs)
    except (ValueError, UnicodeDecodeError) as exc:
        _fail(str(exc))
    if not labelled:
        _fail(f"{pairs}: no pairs")
    note = ""
    if negatives and all(p.label for p in labelled):
        positives = [(p.a, p.b) for p in labelled]
        labelled = build_devset(positives)
        note = (
            f"{pairs.name} holds positives only: added {len(labelled) - len(positives)} "
            "negatives (random pairs and constructed near-misses)"
        )
    try:
        embedder = get_embedder()
        scores = score_pairs(labelled, embedder.embed, Guard() if guard else None)
    except ConfigError as exc:
        _fail(exc.message)
    result = calibrate(scores, target_precision=target_precision, guard=guard)
    if fmt == "json":
        payload = result.to_dict()
        payload["pairs_file"] = str(pairs)
        payload["model_id"] = embedder.model_id
        if note:
            payload["note"] = note
        typer.echo(json.dumps(payload, indent=2))
    else:
        out = Console(highlight=False)
        if not out.is_terminal:
            out.width = 160
        if note:
            out.print(f"[dim]{note}[/dim]")
        out.print(_table(result, step))
        out.print(_summary(result))
        if result.guard_rejections:
            reasons = ", ".join(f"{k} {v}" for k, v in result.guard_rejections.items())
            out.print(f"[dim]guard rejections by reason (all pairs): {reasons}[/dim]")
    if result.threshold is None:
        raise typer.Exit(1)
