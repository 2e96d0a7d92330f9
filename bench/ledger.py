"""The ledger writer: rows/s it sustains into SQLite and PostgreSQL, and what recording a request
costs on the request path.

    .venv/bin/python bench/ledger.py                          # ~1 min
    .venv/bin/python bench/ledger.py --rows 50000 --batches 500,2000 --repeat 5 --no-pg

Throughput: a burst of ``--rows`` complete rows (``build_row`` output, unique request ids) is
appended to a started ``LedgerWriter`` and the clock stops when its background task has committed
the last one (``stats["written"]``, checked against ``COUNT(*)`` after). The queue holds the whole
burst, so nothing spills: this is the insert rate the task sustains while it is always behind.
SQLite is a fresh file per run (WAL, as ``make_engine`` sets it up); PostgreSQL is a fresh
temporary database (``THRIFTY_TEST_PG_URL``, default trust auth on 127.0.0.1:5432, created and
dropped like the tests' ``tests/pg.py``), truncated between runs, and skipped with a message when
unreachable. Each cell is the median of ``--repeat`` runs.

Request path: per-call wall time (``perf_counter_ns`` around each call) of a no-op function
(the baseline: the timer and the call themselves), ``writer.append(row)``, and
``LedgerRecorder.record(ctx)`` (``build_row`` + ``append``: all recording does in a request),
interleaved in rounds while a started writer drains into SQLite in the background (the loop
yields every 1,000 calls, like a server would, and waits, untimed, whenever more than 5,000 rows
are queued: a request rate the database keeps up with). "Added" is the median (p99) minus the
baseline's. For comparison, ``append`` in degraded mode: the queue full, so each row is written
to the spill file and fsynced on the request path (``--spill-appends`` calls).
Results are printed as markdown and appended to ``bench/results/ledger.jsonl``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from _common import REPO, fmt, machine, markdown_table, pct, save_results, versions

sys.path.insert(0, str(REPO))  # for tests.pg (the same temporary-database helper as the tests)

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.pg import PgUnavailable, temp_database
from thrifty.db.engine import make_engine
from thrifty.db.migrate import upgrade
from thrifty.db.schema import ledger
from thrifty.keys.principal import Principal
from thrifty.ledger.recorder import LedgerRecorder
from thrifty.ledger.row import build_row
from thrifty.ledger.writer import LedgerWriter
from thrifty.pipeline.context import Attempt, RequestContext, new_request_id

PG_TARGET_ROWS_S = 10_000


def sample_context() -> RequestContext:
    """A finished, priced chat request as the pipeline leaves it for the record stage."""
    ctx = RequestContext(
        request_id=new_request_id(),
        endpoint="chat.completions",
        principal=Principal("acme", key_id="key_0123456789abcdef", user="alice", tier="premium"),
        requested_model="mini",
        body={"model": "mini", "messages": [{"role": "user", "content": "Hello there"}]},
        tags={"team": "search", "env": "prod"},
    )
    ctx.first_byte = ctx.started + 0.12
    ctx.ended = ctx.started + 0.48
    ctx.route_reason = "alias"
    ctx.cache_status = "miss"
    ctx.attempts.append(Attempt("up/gpt-4o-mini", None, 479.9))
    ctx.usage = {"prompt_tokens": 120, "completion_tokens": 24, "total_tokens": 144}
    ctx.finish_reason = "stop"
    ctx.cost_usd, ctx.baseline_cost_usd = 0.000123, 0.000456
    ctx.savings = {"routing": 0.000333}
    ctx.flags = ["compressed"]
    return ctx


def make_rows(n: int) -> list[dict[str, Any]]:
    template = build_row(sample_context())
    return [{**template, "request_id": new_request_id()} for _ in range(n)]


def with_datetimes(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The same rows with their instants as aware datetimes, as ``build_row`` wrote them before
    it wrote epoch seconds: the baseline of the ``instants`` column."""
    cols = ("started_at", "first_byte_at", "ended_at")
    return [
        {**r, **{c: datetime.fromtimestamp(r[c], UTC) for c in cols if r[c] is not None}}
        for r in rows
    ]


# -- throughput --------------------------------------------------------------------------------
async def count_rows(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return (await conn.execute(select(func.count()).select_from(ledger))).scalar_one()


async def drain_time(
    engine: AsyncEngine, spill: Path, rows: list[dict[str, Any]], batch: int
) -> tuple[float, float]:
    """(wall seconds, process CPU seconds) to write ``rows`` through a started writer."""
    writer = LedgerWriter(
        engine, spill, batch_size=batch, flush_interval_s=0.01, queue_size=len(rows) + 1
    )
    await writer.start()
    await asyncio.sleep(0.02)  # the task is up and waiting
    t0, c0 = time.perf_counter(), time.process_time()
    for row in rows:
        writer.append(row)
    while writer.stats["written"] < len(rows):
        if writer.stats["spilled"] or writer.stats["db_errors"]:
            raise RuntimeError(f"the writer spilled rows: {writer.stats}")
        await asyncio.sleep(0.0005)
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
    await writer.aclose()
    stored = await count_rows(engine)
    if stored != len(rows) or writer.has_spill:
        raise RuntimeError(f"{stored} rows stored of {len(rows)} (spill: {writer.has_spill})")
    return elapsed, cpu


async def throughput_sqlite(
    rows: list[dict[str, Any]], batch: int, tmp: Path, run: str
) -> tuple[float, float]:
    db = tmp / f"sqlite-{batch}-{run}" / "thrifty.db"
    engine = make_engine(f"sqlite+aiosqlite:///{db}")
    try:
        await upgrade(engine)
        return await drain_time(engine, db.parent / "spill.jsonl", rows, batch)
    finally:
        await engine.dispose()


async def throughput_pg(
    engine: AsyncEngine, rows: list[dict[str, Any]], batch: int, tmp: Path
) -> tuple[float, float]:
    async with engine.begin() as conn:
        await conn.execute(text("TRUNCATE ledger"))
    return await drain_time(engine, tmp / "pg-spill.jsonl", rows, batch)


async def measure_throughput(a: argparse.Namespace, tmp: Path) -> list[dict[str, Any]]:
    rows = make_rows(a.rows)
    records: list[dict[str, Any]] = []

    def record(backend: str, batch: int, runs: list[tuple[float, float]], instants: str) -> None:
        times = [t for t, _ in runs]
        t = statistics.median(times)
        rec = {
            "kind": "throughput",
            "backend": backend,
            "batch": batch,
            "instants": instants,
            "rows": len(rows),
            "runs": len(times),
            "seconds": t,
            "rows_per_s": len(rows) / t,
            "ms_per_batch": t * 1000 / (len(rows) / batch),
            "min_rows_per_s": len(rows) / max(times),
            "max_rows_per_s": len(rows) / min(times),
            "cpu_us_per_row": statistics.median(c for _, c in runs) * 1e6 / len(rows),
        }
        records.append(rec)
        print(
            f"  {backend:10} batch {batch:5} {instants:8}: {rec['rows_per_s']:>9,.0f} rows/s, "
            f"{rec['cpu_us_per_row']:.1f} µs CPU/row",
            flush=True,
        )

    # SQLite: rows as build_row writes them (epoch-second instants) against the same rows with
    # datetime instants (the earlier form), interleaved run by run.
    variants = {"epoch": rows, "datetime": with_datetimes(rows)}
    for batch in a.batches:
        runs: dict[str, list[tuple[float, float]]] = {k: [] for k in variants}
        for r in range(a.repeat):
            for name, batch_rows in variants.items():
                runs[name].append(await throughput_sqlite(batch_rows, batch, tmp, f"{name}{r}"))
        for name in variants:
            record("sqlite", batch, runs[name], name)
    if a.no_pg:
        return records
    try:
        async with temp_database(prefix="thrifty_bench") as url:
            engine = make_engine(url)
            try:
                await upgrade(engine)
                await throughput_pg(engine, rows[:100], 100, tmp)  # warm the pool
                for batch in a.batches:
                    times = [await throughput_pg(engine, rows, batch, tmp) for _ in range(a.repeat)]
                    record("postgresql", batch, times, "epoch")
            finally:
                await engine.dispose()
    except PgUnavailable as exc:
        print(f"  postgresql skipped: {exc}", flush=True)
    return records


# -- the request path --------------------------------------------------------------------------
def _noop(_arg: Any) -> None:
    return None


def time_calls(fn: Callable[[Any], None], args: list[Any], out: list[int]) -> None:
    clock = time.perf_counter_ns
    for i, arg in enumerate(args):
        t0 = clock()
        fn(arg)
        out[i] = clock() - t0


async def measure_request_path(a: argparse.Namespace, tmp: Path) -> list[dict[str, Any]]:
    engine = make_engine(f"sqlite+aiosqlite:///{tmp / 'path' / 'thrifty.db'}")
    await upgrade(engine)
    writer = LedgerWriter(engine, tmp / "path" / "spill.jsonl")  # production defaults
    recorder = LedgerRecorder(writer)
    await writer.start()
    rounds, chunk = 10, 1_000
    per_round = max(chunk, a.appends // rounds)
    contexts = [sample_context() for _ in range(chunk)]

    def fresh_contexts() -> list[RequestContext]:
        for ctx in contexts:
            ctx.request_id = new_request_id()
        return contexts

    variants: dict[str, tuple[Callable[[Any], None], Callable[[], list[Any]]]] = {
        "baseline (no-op call)": (_noop, lambda: make_rows(chunk)),
        "writer.append(row)": (writer.append, lambda: make_rows(chunk)),
        "recorder.record(ctx) = build_row + append": (recorder.record, fresh_contexts),
    }
    samples: dict[str, list[int]] = {name: [] for name in variants}
    buf = [0] * chunk
    try:
        for r in range(rounds):
            order = list(variants) if r % 2 == 0 else list(reversed(variants))
            for name in order:
                fn, make_args = variants[name]
                for _ in range(per_round // chunk):
                    time_calls(fn, make_args(), buf)
                    samples[name].extend(buf)
                    await asyncio.sleep(0)  # the writer task runs between chunks
                    # A request rate the database keeps up with: the queue never fills.
                    while writer.pending > 5 * chunk:  # noqa: ASYNC110 (polling a counter)
                        await asyncio.sleep(0.001)
        # Degraded mode, for comparison: the queue is full (the database far behind), so each
        # row goes to the spill file (write + fsync) on the request path.
        full = LedgerWriter(engine, tmp / "path" / "full-spill.jsonl", queue_size=1)
        full.append(make_rows(1)[0])
        name = "writer.append(row), queue full: spill + fsync"
        samples[name] = [0] * a.spill_appends
        time_calls(full.append, make_rows(a.spill_appends), samples[name])
        await writer.aclose()
        stored = await count_rows(engine)
    finally:
        await engine.dispose()
    appended = len(samples["writer.append(row)"]) + len(samples[list(variants)[2]])
    records = []
    base = None
    for name, vals in samples.items():
        vals.sort()
        us = [v / 1000 for v in vals]
        median, p99 = statistics.median(us), pct(us, 99)
        if base is None:
            base = (median, p99)
        records.append(
            {
                "kind": "request_path",
                "call": name,
                "calls": len(us),
                "median_us": median,
                "p99_us": p99,
                "p999_us": pct(us, 99.9),
                "added_median_us": median - base[0],
                "added_p99_us": p99 - base[1],
            }
        )
    records.append(
        {
            "kind": "request_path_check",
            "rows_stored": stored,
            "rows_appended": appended,
            "writer_stats": dict(writer.stats),
        }
    )
    return records


# -- report ------------------------------------------------------------------------------------
def report(records: list[dict[str, Any]]) -> str:
    out = []
    tp = [r for r in records if r["kind"] == "throughput"]
    if tp:
        out.append(f"### Ledger writer throughput ({tp[0]['rows']:,} rows per run)\n")
        out.append(
            markdown_table(
                [
                    "backend",
                    "batch",
                    "instants",
                    "rows/s (median)",
                    "range",
                    "ms per batch",
                    "CPU µs per row",
                ],
                [
                    [
                        r["backend"],
                        r["batch"],
                        r.get("instants", "datetime"),
                        f"{r['rows_per_s']:,.0f}",
                        f"{r['min_rows_per_s']:,.0f} - {r['max_rows_per_s']:,.0f}",
                        fmt(r["ms_per_batch"], 1),
                        fmt(r.get("cpu_us_per_row"), 1),
                    ]
                    for r in tp
                ],
            )
        )
        out.append(
            "\nInstants: `epoch` rows are what `build_row` writes (epoch seconds); `datetime` "
            "rows are the same rows with aware datetimes, as it wrote them before. CPU is the "
            "whole process (the event loop and the driver's thread)."
        )
        pg = [r for r in tp if r["backend"] == "postgresql"]
        if pg:
            best = max(r["rows_per_s"] for r in pg)
            verdict = "met" if best >= PG_TARGET_ROWS_S else "NOT met"
            out.append(
                f"\nTarget ≥ {PG_TARGET_ROWS_S:,} rows/s into PostgreSQL: {verdict} "
                f"(best {best:,.0f} rows/s)."
            )
        else:
            out.append("\nPostgreSQL: not measured.")
    rp = [r for r in records if r["kind"] == "request_path"]
    if rp:
        out.append("\n### What recording adds on the request path\n")
        out.append(
            markdown_table(
                [
                    "call",
                    "calls",
                    "median µs",
                    "p99 µs",
                    "p99.9 µs",
                    "added median µs",
                    "added p99 µs",
                ],
                [
                    [
                        r["call"],
                        f"{r['calls']:,}",
                        fmt(r["median_us"], 3),
                        fmt(r["p99_us"], 3),
                        fmt(r["p999_us"], 3),
                        fmt(r["added_median_us"], 3, signed=True),
                        fmt(r["added_p99_us"], 3, signed=True),
                    ]
                    for r in rp
                ],
            )
        )
        chk = next(r for r in records if r["kind"] == "request_path_check")
        out.append(
            f"\nRows stored after the run: {chk['rows_stored']:,} of {chk['rows_appended']:,} "
            f"appended (writer stats {chk['writer_stats']})."
        )
    return "\n".join(out)


async def amain(a: argparse.Namespace) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="thrifty-bench-ledger-") as d:
        tmp = Path(d)
        records: list[dict[str, Any]] = []
        if not a.skip_throughput:
            print("throughput:", flush=True)
            records += await measure_throughput(a, tmp)
        if a.appends:
            print("request path ...", flush=True)
            gc.collect()
            records += await measure_request_path(a, tmp)
        return records


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--rows", type=int, default=20_000, help="rows per throughput run")
    ap.add_argument(
        "--batches",
        type=lambda s: [int(x) for x in s.split(",")],
        default=[100, 500, 2000],
        help="comma-separated batch sizes (default 100,500,2000)",
    )
    ap.add_argument("--repeat", type=int, default=3, help="runs per cell (median reported)")
    ap.add_argument("--appends", type=int, default=100_000, help="calls per request-path variant")
    ap.add_argument(
        "--spill-appends", type=int, default=2_000, help="calls timed with a full queue"
    )
    ap.add_argument("--no-pg", action="store_true", help="SQLite only")
    ap.add_argument("--skip-throughput", action="store_true", help="only the request path")
    a = ap.parse_args()
    records = asyncio.run(amain(a))
    text_report = report(records)
    print()
    print(text_report)
    meta = {"machine": machine(), "versions": versions("sqlalchemy", "asyncpg", "aiosqlite")}
    path = save_results("ledger", [{**r, **meta} for r in records])
    print(f"\n(results appended to {path.relative_to(REPO)})")


if __name__ == "__main__":
    main()
