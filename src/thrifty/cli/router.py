"""``thrifty router``: train the learned router on your outcomes, and measure any scorer.

``train`` cross-validates (grouped k-fold), prints APGR / CPT(50%) / CPT(80%) with bootstrap
intervals next to the baselines (length, random, oracle) and saves the model, unless its APGR
interval includes 0.5: then it refuses (exit 1) and saves nothing. ``eval`` prints the
quality/cost curve and the metrics of ``length``, ``rules`` or a saved ``learned`` model.
Exit codes: 0 done, 1 router refused, 2 bad input (file, column, scorer, missing extra).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table

from thrifty.errors import ConfigError
from thrifty.routing.scorers import LEARNED_MAX_TOKENS, LEARNED_TRUNCATION

app = typer.Typer(
    help="Learned routing: train a router on outcome data, evaluate any scorer.",
    no_args_is_help=True,
)

DataOption = Annotated[
    Path,
    typer.Option(
        "--data", "-d", help="CSV with prompt, cheap_correct, strong_correct (0/1) columns."
    ),
]
OptionalDataOption = Annotated[
    Path | None,
    typer.Option(
        "--data", "-d", help="CSV with prompt, cheap_correct, strong_correct (0/1) columns."
    ),
]
SeedOption = Annotated[int, typer.Option("--seed", help="Seed for folds, bootstrap, sampling.")]
BootOption = Annotated[
    int, typer.Option("--bootstrap", min=50, help="Bootstrap replicates for the intervals.")
]
SampleOption = Annotated[
    int | None, typer.Option("--sample", min=10, help="Use a random subset of N rows.")
]
CacheOption = Annotated[
    Path | None,
    typer.Option("--embeddings-cache", help="Reuse/store the prompts' embeddings in this .npz."),
]


def _out() -> Console:
    console = Console(highlight=False)
    if not console.is_terminal:  # a file or a pipe: do not wrap the tables at 80 columns
        console.width = 160
    return console


def _fail(message: str, code: int = 2) -> NoReturn:
    Console(stderr=True, highlight=False).print(f"[red]error:[/red] {message}")
    raise typer.Exit(code)


def _pct(value: float) -> str:
    return "—" if not math.isfinite(value) else f"{value:.1%}"


def _interval(iv: Any, percent: bool) -> str:
    if percent:
        return f"{_pct(iv.estimate)} [{_pct(iv.low)}, {_pct(iv.high)}]"
    if not math.isfinite(iv.estimate):
        return "—"
    return f"{iv.estimate:.3f} [{iv.low:.3f}, {iv.high:.3f}]"


def _metrics_table(title: str, intervals: dict[str, dict[str, Any]]) -> Table:
    table = Table(title=title)
    table.add_column("router")
    table.add_column("APGR [95% CI]", justify="right")
    table.add_column("CPT(50%) [95% CI]", justify="right")
    table.add_column("CPT(80%) [95% CI]", justify="right")
    for name, ivs in intervals.items():
        table.add_row(
            name,
            _interval(ivs["apgr"], False),
            _interval(ivs["cpt50"], True),
            _interval(ivs["cpt80"], True),
        )
    return table


def _load(data: Path, sample: int | None, seed: int, group_col: str | None = None) -> Any:
    try:
        import numpy as np
    except ImportError:
        _fail("router training and evaluation need numpy: pip install 'thrifty[router]'")

    from thrifty.routing.train import load_csv

    try:
        dataset = load_csv(data, group_col=group_col)
    except ConfigError as exc:
        _fail(exc.message)
    if sample is not None and sample < len(dataset):
        idx = np.sort(np.random.default_rng(seed).choice(len(dataset), sample, replace=False))
        dataset = dataset.subset(idx)
    return dataset


def _embed(
    prompts: list[str], cache: Path | None, max_tokens: int, truncation: Any
) -> tuple[Any, str]:
    from thrifty.cache.embedder import get_embedder
    from thrifty.routing.train import embed_cached

    embedder = get_embedder()
    what = f"{len(prompts):,} prompts with {embedder.model_id} (≤ {max_tokens} word pieces)"
    try:
        with _out().status(f"embedding {what}…"):
            vectors = embed_cached(
                prompts, embedder, cache, max_tokens=max_tokens, truncation=truncation
            )
            return vectors, embedder.model_id
    except ConfigError as exc:
        _fail(exc.message)


def _length_scores(prompts: list[str]) -> Any:
    import numpy as np

    from thrifty.routing.length import LengthScorer

    scorer = LengthScorer()
    return np.array([scorer.score_text(p) for p in prompts])


def _from_ledger(config: Path | None, period: str, out: Path) -> Path:
    """Write the shadow-sampled training set from the ledger to ``out`` (see
    ``thrifty.routing.ledger_dataset`` for how rows are labelled)."""
    import asyncio

    from thrifty.cli.common import load
    from thrifty.db.engine import make_engine
    from thrifty.db.migrate import upgrade
    from thrifty.ledger.periods import parse_period
    from thrifty.routing.ledger_dataset import ledger_rows, write_csv

    cfg = load(config)

    async def go() -> list[dict[str, Any]]:
        engine = make_engine(cfg.database.url)
        try:
            await upgrade(engine)
            return await ledger_rows(engine, parse_period(period))
        finally:
            await engine.dispose()

    rows = asyncio.run(go())
    if not rows:
        _fail(
            "no shadow-sampled requests with stored content in the ledger for this period "
            "(turn on a route group's shadow sampling and ledger.store_content)"
        )
    write_csv(rows, out)
    _out().print(f"{len(rows):,} labelled prompts from the ledger → {out}")
    return out


@app.command()
def train(
    data: OptionalDataOption = None,
    from_ledger: Annotated[
        bool,
        typer.Option("--from-ledger", help="Build the training set from shadow-sampled requests."),
    ] = False,
    period: Annotated[str, typer.Option("--period", help="Ledger period (--from-ledger).")] = "90d",
    config: Annotated[Path | None, typer.Option("--config", "-c")] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to save the model.")] = Path(
        "router.npz"
    ),
    folds: Annotated[int, typer.Option("--folds", min=2, help="Cross-validation folds.")] = 5,
    seed: SeedOption = 0,
    group_col: Annotated[
        str | None,
        typer.Option(
            "--group-col",
            help="Column grouping near-duplicate prompts (default: 'group' if present, else "
            "clusters of near-duplicate prompts). A topic column (e.g. subject) measures "
            "transfer to unseen topics instead.",
        ),
    ] = None,
    l2: Annotated[float, typer.Option("--l2", min=0.0, help="L2 penalty of the heads.")] = 10.0,
    max_tokens: Annotated[
        int,
        typer.Option(
            "--max-tokens",
            min=3,
            max=256,
            help="Word pieces of each prompt to embed, in training and when scoring: fewer "
            "decide faster (~0.2 ms each on one core). The model records it.",
        ),
    ] = LEARNED_MAX_TOKENS,
    truncation: Annotated[
        str,
        typer.Option(
            "--truncation",
            help="Which word pieces of a longer prompt to keep: head_tail (its first and last "
            "halves) or head. The model records it.",
        ),
    ] = LEARNED_TRUNCATION,
    calibrate: Annotated[
        bool, typer.Option("--calibrate/--no-calibrate", help="Platt-scale both heads.")
    ] = True,
    bootstrap: BootOption = 1000,
    sample: SampleOption = None,
    embeddings_cache: CacheOption = None,
) -> None:
    """Train the learned router with grouped k-fold cross-validation; save it if it beats random."""
    from thrifty.routing.train import train_router

    if truncation not in ("head", "head_tail"):
        _fail(f"--truncation must be head or head_tail, not {truncation!r}")
    if from_ledger:
        data = _from_ledger(config, period, out.with_suffix(".ledger.csv"))
    if data is None:
        _fail("give --data CSV or --from-ledger")

    dataset = _load(data, sample, seed, group_col)
    vectors, embedder_id = _embed(dataset.prompts, embeddings_cache, max_tokens, truncation)
    console = _out()
    with console.status(f"cross-validating ({folds} folds) and fitting…"):
        try:
            model, report = train_router(
                dataset,
                vectors,
                embedder_id=embedder_id,
                max_tokens=max_tokens,
                truncation=truncation,  # type: ignore[arg-type]  # checked above
                folds=folds,
                seed=seed,
                l2=l2,
                calibrate=calibrate,
                n_boot=bootstrap,
                baselines={"length": _length_scores(dataset.prompts)},
            )
        except ConfigError as exc:
            _fail(exc.message)
    console.print(
        f"{report.rows:,} prompts; cheap right {dataset.cheap.mean():.1%}, "
        f"strong right {dataset.strong.mean():.1%}; {folds}-fold CV grouped by "
        f"{report.grouping} ({report.n_groups:,} groups); prompts embedded at most "
        f"{max_tokens} word pieces long ({truncation})"
    )
    console.print(_metrics_table("Cross-validated routing quality", report.intervals))
    console.print(
        "calibration (expected error, out of fold): "
        f"P(strong right) {report.calibration['strong']:.3f}, "
        f"P(cheap right) {report.calibration['cheap']:.3f}"
    )
    apgr = report.intervals["learned"]["apgr"]
    if not report.accepted:
        _fail(
            f"refusing to save this router: its APGR interval [{apgr.low:.3f}, {apgr.high:.3f}] "
            "includes 0.5 (or lies below), so it cannot be told from random routing. "
            "Collect more or cleaner outcomes, then train again.",
            code=1,
        )
    path = model.save(out)
    console.print(f"saved {path} (version {model.version}); use it as scorer learned:{path}")


@app.command("eval")
def evaluate(
    data: DataOption,
    scorer: Annotated[
        str, typer.Option("--scorer", "-s", help="length | rules | learned[:PATH]")
    ] = "length",
    rules: Annotated[
        Path | None,
        typer.Option("--rules", help="YAML list of rules for 'rules' (default: the seed example)."),
    ] = None,
    seed: SeedOption = 0,
    bootstrap: BootOption = 1000,
    sample: SampleOption = None,
    embeddings_cache: CacheOption = None,
) -> None:
    """Print a scorer's quality/cost curve and its APGR / CPT against random and the oracle."""
    import numpy as np

    from thrifty.routing import metrics
    from thrifty.routing.learned import LearnedScorer
    from thrifty.routing.scorers import make_scorer

    dataset = _load(data, sample, seed)
    try:
        built = make_scorer(scorer, rules=_read_rules(rules) if rules else None)
    except ConfigError as exc:
        _fail(exc.message)
    console = _out()
    if isinstance(built, LearnedScorer):
        if built.model.metadata.get("data_sha256") == dataset.sha256:
            console.print("[yellow]note:[/yellow] this is the model's training data: optimistic.")
        model = built.model
        vectors, embedder_id = _embed(
            dataset.prompts, embeddings_cache, model.max_tokens, model.truncation
        )
        if embedder_id != built.model.embedder_id:
            _fail(f"the model needs {built.model.embedder_id} embeddings, not {embedder_id}")
        scores = built.score_embeddings(vectors)
    else:
        scores = np.array([built.score_text(p) for p in dataset.prompts])
    result = metrics.evaluate(scores, dataset.cheap, dataset.strong)
    console.print(_curve_table(f"{scorer}: quality/cost curve (decile thresholds)", result))
    if len(np.unique(scores)) <= 20:
        points = metrics.operating_points(scores, dataset.cheap, dataset.strong)
        title = f"{scorer}: few distinct scores, so the deciles collapse; its own thresholds"
        console.print(_curve_table(title, result, points))
    console.print(
        f"all cheap {_pct(result.cheap_accuracy)}, all strong {_pct(result.strong_accuracy)} "
        f"({len(dataset):,} prompts)"
    )
    intervals = {
        scorer: metrics.bootstrap(
            dataset.cheap, dataset.strong, scores, n_boot=bootstrap, seed=seed
        ),
        "random": metrics.bootstrap(
            dataset.cheap,
            dataset.strong,
            metrics.random_scores(len(dataset), seed),
            n_boot=bootstrap,
            seed=seed,
        ),
        "oracle": metrics.bootstrap(dataset.cheap, dataset.strong, n_boot=bootstrap, seed=seed),
    }
    console.print(_metrics_table("Routing quality", intervals))


def _curve_table(title: str, result: Any, points: Any = None) -> Table:
    gap = result.strong_accuracy - result.cheap_accuracy
    table = Table(title=title)
    for column in ("strong if score >=", "strong calls", "accuracy", "gap recovered"):
        table.add_column(column, justify="right")
    seen: set[float] = set()
    for i, point in enumerate(result.curve if points is None else points):
        if point.strong_share in seen:  # tied deciles repeat the same point
            continue
        seen.add(point.strong_share)
        recovered = (point.accuracy - result.cheap_accuracy) / gap if gap else math.nan
        threshold = "none" if math.isinf(point.threshold) else f"{point.threshold:.4g}"
        if i == 0 and points is None:
            threshold = f"> {threshold}"  # the top decile is strict: nothing goes strong
        table.add_row(threshold, _pct(point.strong_share), _pct(point.accuracy), _pct(recovered))
    return table


def _read_rules(path: Path) -> list[dict[str, Any]]:
    import yaml

    try:
        loaded = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        _fail(f"cannot read rules from {path}: {exc}")
    if isinstance(loaded, dict):
        loaded = loaded.get("rules")
    if not isinstance(loaded, list):
        _fail(f"{path}: expected a list of rules (or a 'rules:' key holding one)")
    return loaded
