"""The write-behind ledger writer against real SQLite files and a real PostgreSQL server: batching,
idempotency, graceful shutdown, and what happens to rows while the database is gone (spill file,
replay, no loss, no duplicates)."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import event, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.ledger.rows import ledger_row
from tests.pg import TcpProxy
from thrifty.db.engine import make_engine
from thrifty.db.migrate import upgrade
from thrifty.db.schema import ledger
from thrifty.ledger.writer import LedgerWriter

Row = dict[str, Any]
INSTANTS = ("started_at", "first_byte_at", "ended_at")


# -- helpers -----------------------------------------------------------------------------------
@dataclass
class Db:
    backend: str
    url: str
    engine: AsyncEngine

    async def counts(self) -> tuple[int, int]:
        """(rows, distinct request ids) in ``ledger``."""
        return await counts(self.engine)

    async def rows(self, *ids: str) -> dict[str, Row]:
        async with self.engine.connect() as conn:
            result = await conn.execute(select(ledger).where(ledger.c.request_id.in_(ids)))
            return {r.request_id: dict(r._mapping) for r in result}


async def counts(engine: AsyncEngine) -> tuple[int, int]:
    async with engine.connect() as conn:
        q = select(func.count(), func.count(ledger.c.request_id.distinct()))
        total, distinct = (await conn.execute(q)).one()
    return total, distinct


async def wait_until(
    predicate: Callable[[], bool], limit_s: float = 10.0, what: str = "condition"
) -> float:
    """Poll ``predicate`` until true; return the seconds it took."""
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > limit_s:
            raise AssertionError(f"timed out after {limit_s}s waiting for {what}")
        await asyncio.sleep(0.01)
    return time.monotonic() - start


def spill_lines(writer: LedgerWriter) -> int:
    """Rows now on disk (the spill file and the one being replayed)."""
    p = writer.spill_path
    total = 0
    for path in (p, p.with_suffix(p.suffix + ".replaying")):
        with contextlib.suppress(FileNotFoundError):
            total += sum(1 for line in path.read_bytes().splitlines() if line.strip())
    return total


class Inserts:
    """Wraps a writer's ``_insert_rows``: records batch sizes, and fails like a lost database
    while ``down`` (or once ``budget`` successful calls are used up)."""

    def __init__(self, writer: LedgerWriter) -> None:
        self._real: Callable[[Sequence[Row]], Awaitable[None]] = writer._insert_rows
        writer._insert_rows = self  # type: ignore[method-assign]
        self.down = False
        self.delay_s = 0.0
        self.budget: int | None = None
        self.sizes: list[int] = []
        self.failures = 0

    async def __call__(self, rows: Sequence[Row]) -> None:
        if self.budget is not None:
            if self.budget <= 0:
                self.down = True
            self.budget -= 1
        if self.down:
            self.failures += 1
            raise ConnectionResetError("simulated database outage")
        if self.delay_s:
            await asyncio.sleep(self.delay_s)  # a slow database
        await self._real(rows)
        self.sizes.append(len(rows))


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'db' / 'thrifty.db'}"
    return request.getfixturevalue("pg_url")


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[Db]:
    engine = make_engine(db_url)
    await upgrade(engine)
    try:
        yield Db(engine.dialect.name, db_url, engine)
    finally:
        await engine.dispose()


@dataclass
class Writers:
    """Makes writers on a spill path under tmp_path; closes those still open at teardown."""

    tmp_path: Path
    made: list[LedgerWriter] = field(default_factory=list)

    @property
    def spill_path(self) -> Path:
        return self.tmp_path / "spill" / "ledger.jsonl"

    def __call__(self, engine: AsyncEngine, **kwargs: Any) -> LedgerWriter:
        kwargs.setdefault("flush_interval_s", 0.02)
        kwargs.setdefault("retry_interval_s", 0.1)
        w = LedgerWriter(engine, self.spill_path, **kwargs)
        self.made.append(w)
        return w


@pytest.fixture
async def writers(tmp_path: Path) -> AsyncIterator[Writers]:
    w = Writers(tmp_path)
    yield w
    for writer in w.made:
        if writer._task is not None:
            writer._stop.set()
            await writer._task


# -- the happy path ----------------------------------------------------------------------------
async def test_rows_are_written_in_batches(db: Db, writers: Writers) -> None:
    writer = writers(db.engine, batch_size=50)
    inserts = Inserts(writer)
    await writer.start()
    for i in range(230):
        writer.append(ledger_row(i))
    await writer.flush()
    assert await db.counts() == (230, 230)
    assert sum(inserts.sizes) == 230
    assert max(inserts.sizes) <= 50 and len(inserts.sizes) >= 5
    assert writer.stats == {"written": 230, "spilled": 0, "replayed": 0, "db_errors": 0}
    assert writer.pending == 0 and not writer.has_spill

    # more rows later are picked up by the background task without an explicit flush
    for i in range(230, 260):
        writer.append(ledger_row(i))
    await wait_until(lambda: writer.stats["written"] == 260, what="background flush")
    await writer.aclose()
    assert await db.counts() == (260, 260)


async def test_flush_waits_for_the_batch_in_flight(db: Db, writers: Writers) -> None:
    writer = writers(db.engine, batch_size=10)
    inserts = Inserts(writer)
    inserts.delay_s = 0.2
    await writer.start()
    for i in range(10):
        writer.append(ledger_row(i))
    await wait_until(lambda: writer.pending == 0, what="the task to take the batch")
    await writer.flush()  # the batch is in the task's hands, not the queue's: flush waits for it
    assert await db.counts() == (10, 10)
    await writer.aclose()


async def test_flush_during_a_background_replay(db: Db, writers: Writers) -> None:
    writer = writers(db.engine, queue_size=1, retry_interval_s=0.01)
    inserts = Inserts(writer)
    inserts.delay_s = 0.2
    await writer.start()
    for i in range(20):
        writer.append(ledger_row(i))
    replaying = writer.spill_path.with_suffix(".jsonl.replaying")
    await wait_until(replaying.exists, what="the background replay")
    await writer.flush()  # one replay at a time: no second reader of the file being replayed
    assert not writer.has_spill
    assert await db.counts() == (20, 20)
    await writer.aclose()
    assert writer.stats["replayed"] == 19


async def test_duplicate_request_id_yields_one_row(db: Db, writers: Writers) -> None:
    writer = writers(db.engine)
    await writer.start()
    row = ledger_row("req-dup")
    writer.append(row)
    writer.append(dict(row))  # the same request twice in one batch
    writer.append(ledger_row(1))
    await writer.flush()
    writer.append(ledger_row("req-dup", status=500))  # and again in a later batch
    await writer.aclose()
    assert await db.counts() == (2, 2)
    stored = await db.rows("req-dup")
    assert stored["req-dup"]["status"] == 200  # first write wins; replays never overwrite


async def test_stored_values_round_trip(db: Db, writers: Writers) -> None:
    writer = writers(db.engine)
    await writer.start()
    row = ledger_row(7, tags={"a": "b", "n": 1}, content={"messages": [{"role": "user"}]})
    writer.append(row)
    await writer.aclose()
    stored = (await db.rows(row["request_id"]))[row["request_id"]]
    for col in ("tags", "content", "fallback_path", "flags", "status", "cost_usd", "unpriced"):
        assert stored[col] == row[col], col
    if db.backend == "postgresql":  # SQLite keeps no time zone
        assert stored["started_at"] == row["started_at"]
    else:
        assert stored["started_at"] == row["started_at"].replace(tzinfo=None)


async def test_aclose_right_after_appends_loses_nothing(db: Db, writers: Writers) -> None:
    writer = writers(db.engine, batch_size=500)
    await writer.start()
    n = 5_000
    for i in range(n):
        writer.append(ledger_row(i))
    assert writer.pending == n  # nothing written yet: append never waits for the database
    await writer.aclose()
    assert await db.counts() == (n, n)
    assert writer.stats["written"] == n and writer.stats["spilled"] == 0
    assert not writer.has_spill


async def test_aclose_without_start_flushes(db: Db, writers: Writers) -> None:
    writer = writers(db.engine)
    for i in range(10):
        writer.append(ledger_row(i))
    await writer.aclose()
    assert await db.counts() == (10, 10)


# -- back-pressure and the spill file ------------------------------------------------------------
async def test_full_queue_spills_to_disk_instead_of_dropping(db: Db, writers: Writers) -> None:
    writer = writers(db.engine, queue_size=10, batch_size=10)
    await writer.start()
    n = 500
    for i in range(n):  # a burst far faster than the database: the queue fills at once
        writer.append(ledger_row(i))
    assert writer.pending == 10
    assert writer.stats["spilled"] == n - 10
    assert spill_lines(writer) == n - 10
    # the database is healthy: the spilled rows are replayed by the background task
    await wait_until(lambda: not writer.has_spill, what="replay of the spill file")
    await writer.aclose()
    assert await db.counts() == (n, n)
    assert writer.stats["replayed"] == n - 10


async def test_outage_spills_then_replays(db: Db, writers: Writers) -> None:
    writer = writers(db.engine, batch_size=25)
    inserts = Inserts(writer)
    await writer.start()
    for i in range(50):
        writer.append(ledger_row(i))
    await writer.flush()
    inserts.down = True
    for i in range(50, 150):
        writer.append(ledger_row(i))
    await wait_until(lambda: writer.stats["spilled"] == 100, what="rows spilled")
    assert not writer.healthy and writer.has_spill and spill_lines(writer) == 100
    assert await db.counts() == (50, 50)
    await asyncio.sleep(0.3)  # several failed retries: still nothing lost, nothing doubled
    assert spill_lines(writer) == 100
    inserts.down = False
    for i in range(150, 160):
        writer.append(ledger_row(i))
    await wait_until(lambda: not writer.has_spill, what="replay after recovery")
    assert writer.healthy
    await writer.aclose()
    assert await db.counts() == (160, 160)
    assert writer.stats["replayed"] == 100 and writer.stats["db_errors"] > 0


async def test_crash_mid_replay_does_not_duplicate(db: Db, writers: Writers) -> None:
    batch = 50
    first = writers(db.engine, batch_size=batch)
    inserts = Inserts(first)
    inserts.down = True  # not started: no background task races the replay below
    n = 200
    for i in range(n):
        first.append(ledger_row(i))
    await first.flush()
    assert first.stats["spilled"] == n and await db.counts() == (0, 0)

    # the database comes back; the replay commits two batches, then the process "crashes"
    inserts.down, inserts.budget = False, 2
    await first._replay()
    assert inserts.sizes == [batch, batch]
    assert await db.counts() == (2 * batch, 2 * batch)
    assert first.has_spill and spill_lines(first) == n  # the file survives a partial replay
    inserts.budget = 0
    await first.aclose()  # shutting down while still failing leaves the file as it is
    assert spill_lines(first) == n

    # a new process on the same spill file replays everything; committed rows are not doubled
    second = writers(db.engine, batch_size=batch)
    await second.start()
    await wait_until(lambda: not second.has_spill, what="replay after restart")
    await second.aclose()
    assert await db.counts() == (n, n)
    assert second.stats["replayed"] == n


async def test_spilled_rows_are_stored_like_direct_ones(db: Db, writers: Writers) -> None:
    """Spill (JSON lines) and replay lose nothing: datetimes, JSON, floats, NULLs, booleans."""
    writer = writers(db.engine)
    inserts = Inserts(writer)
    await writer.start()
    extra = {"tags": {"k": "v"}, "cache_similarity": 0.93, "unpriced": True, "cost_usd": None}
    writer.append(ledger_row("direct", **extra))
    await writer.flush()
    inserts.down = True
    writer.append(ledger_row("direct", **extra) | {"request_id": "spilled"})
    await wait_until(lambda: writer.stats["spilled"] == 1, what="the spill")
    inserts.down = False
    await writer.aclose()
    stored = await db.rows("direct", "spilled")
    direct, spilled = stored["direct"], stored["spilled"]
    assert direct.pop("request_id") == "direct" and spilled.pop("request_id") == "spilled"
    assert spilled == direct


def write_spill(path: Path, rows: Sequence[Row], tail: bytes = b"") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows) + tail)


async def test_torn_last_line_is_skipped(db: Db, writers: Writers) -> None:
    rows = [ledger_row(i) for i in range(20)]
    torn = orjson.dumps(ledger_row(20))[:57]  # a crash in the middle of the last write
    write_spill(writers.spill_path, rows, torn)
    writer = writers(db.engine)
    await writer.start()  # a spill file left from before is replayed at start-up
    await wait_until(lambda: not writer.has_spill, what="replay at start-up")
    await writer.aclose()
    assert await db.counts() == (20, 20)
    assert writer.stats["replayed"] == 20


async def test_rows_spilled_after_a_torn_line_survive(db: Db, writers: Writers) -> None:
    """A crash tore the last line; the restarted writer spills more rows to the same file
    (the database is still down). None of the new rows may be lost to the torn line."""
    rows = [ledger_row(i) for i in range(20)]
    write_spill(writers.spill_path, rows, orjson.dumps(ledger_row(20))[:57])
    writer = writers(db.engine, batch_size=10)
    inserts = Inserts(writer)
    inserts.down = True
    await writer.start()
    for i in range(100, 130):
        writer.append(ledger_row(i))
    await wait_until(lambda: writer.stats["spilled"] == 30, what="rows spilled")
    inserts.down = False
    await wait_until(lambda: not writer.has_spill, what="replay after recovery")
    await writer.aclose()
    assert await db.counts() == (50, 50)


# -- real outages ------------------------------------------------------------------------------
async def produce(writer: LedgerWriter, ids: Sequence[str], pause_s: float) -> None:
    for rid in ids:
        writer.append(ledger_row(rid))
        await asyncio.sleep(pause_s)


async def test_postgres_outage_under_load(pg_url: str, tmp_path: Path) -> None:
    """PostgreSQL goes away under load (every connection reset, new ones refused) and comes
    back: rows spill to disk meanwhile, are replayed after, and each is stored exactly once."""
    direct = make_engine(pg_url)
    await upgrade(direct)
    spill = tmp_path / "spill" / "ledger.jsonl"
    n, producers = 2_000, 8
    ids = [f"req-{k}-{j}" for k in range(producers) for j in range(n // producers)]
    try:
        async with TcpProxy.for_url(pg_url) as proxy:
            engine = make_engine(proxy.url(pg_url))  # pool_pre_ping: stale connections replaced
            writer = LedgerWriter(
                engine, spill, batch_size=100, flush_interval_s=0.02, retry_interval_s=0.2
            )
            await writer.start()
            per = n // producers
            tasks = [
                asyncio.create_task(produce(writer, ids[k * per : (k + 1) * per], 0.012))
                for k in range(producers)
            ]  # ~8 x 83 rows/s for ~3 s
            await wait_until(lambda: writer.stats["written"] >= 200, what="first writes")
            assert proxy.open_connections >= 1

            await proxy.cut()
            outage_start = time.monotonic()
            await wait_until(lambda: writer.stats["spilled"] > 0, what="rows spilled")
            await asyncio.sleep(1.0)
            spilled_during = spill_lines(writer)
            assert not writer.healthy and spilled_during > 0
            stored_during, _ = await counts(direct)
            assert stored_during < n
            accepted_before = proxy.accepted

            await proxy.restore()
            outage_s = time.monotonic() - outage_start
            await asyncio.gather(*tasks)
            await wait_until(
                lambda: writer.healthy and not writer.has_spill and writer.pending == 0,
                what="replay after the outage",
            )
            assert proxy.accepted > accepted_before  # reconnected through the proxy
            await writer.aclose()
            await engine.dispose()
        total, distinct = await counts(direct)
        assert (total, distinct) == (n, n)
        assert not writer.has_spill
        assert writer.stats["replayed"] >= spilled_during
        assert writer.stats["db_errors"] > 0
        assert outage_s >= 1.0
    finally:
        await direct.dispose()


async def test_postgres_flapping_connection(pg_url: str, tmp_path: Path) -> None:
    """The connection drops and comes back again and again, mid-insert as often as not (a commit
    whose reply never arrives is spilled and replayed too): still every row exactly once."""
    direct = make_engine(pg_url)
    await upgrade(direct)
    n, producers = 3_000, 6
    per = n // producers
    ids = [f"req-{k}-{j}" for k in range(producers) for j in range(per)]
    try:
        async with TcpProxy.for_url(pg_url) as proxy:
            engine = make_engine(proxy.url(pg_url))
            writer = LedgerWriter(
                engine,
                tmp_path / "ledger.jsonl",
                batch_size=50,
                flush_interval_s=0.005,
                retry_interval_s=0.05,
            )
            await writer.start()
            tasks = [
                asyncio.create_task(produce(writer, ids[k * per : (k + 1) * per], 0.003))
                for k in range(producers)
            ]
            for cycle in range(6):
                await asyncio.sleep(0.1 + 0.037 * cycle)
                await proxy.cut()
                await asyncio.sleep(0.1)
                await proxy.restore()
            await asyncio.gather(*tasks)
            await wait_until(
                lambda: writer.healthy and not writer.has_spill and writer.pending == 0,
                what="replay after the last drop",
            )
            await writer.aclose()
            await engine.dispose()
        assert await counts(direct) == (n, n)
        assert writer.stats["db_errors"] > 0 and writer.stats["replayed"] > 0
        assert writer.stats["written"] + writer.stats["spilled"] >= n
    finally:
        await direct.dispose()


async def test_sqlite_outage_database_locked(tmp_path: Path, writers: Writers) -> None:
    """Another process holds SQLite's write lock: inserts fail with "database is locked", rows
    spill; once the lock is released they are replayed, each stored once."""
    path = tmp_path / "db" / "thrifty.db"
    url = f"sqlite+aiosqlite:///{path}"
    migrate = make_engine(url)
    await upgrade(migrate)
    await migrate.dispose()
    engine = make_engine(url)

    @event.listens_for(engine.sync_engine, "connect")
    def _short_busy_timeout(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA busy_timeout=50")  # fail fast instead of waiting 30 s for the lock
        cur.close()

    writer = writers(engine, batch_size=50)
    await writer.start()
    n, producers = 1_000, 4
    ids = [f"req-{k}-{j}" for k in range(producers) for j in range(n // producers)]
    per = n // producers
    locker = sqlite3.connect(path, isolation_level=None, timeout=10)
    try:
        tasks = [
            asyncio.create_task(produce(writer, ids[k * per : (k + 1) * per], 0.004))
            for k in range(producers)
        ]
        await wait_until(lambda: writer.stats["written"] >= 100, what="first writes")
        locker.execute("BEGIN EXCLUSIVE")
        await wait_until(lambda: writer.stats["spilled"] > 0, what="rows spilled")
        await asyncio.sleep(0.3)
        assert not writer.healthy and spill_lines(writer) > 0
        locker.execute("ROLLBACK")
        await asyncio.gather(*tasks)
        await wait_until(
            lambda: writer.healthy and not writer.has_spill and writer.pending == 0,
            what="replay after the lock is released",
        )
        await writer.aclose()
        assert await counts(engine) == (n, n)
        assert writer.stats["replayed"] > 0 and writer.stats["db_errors"] > 0
    finally:
        locker.close()
        await engine.dispose()


async def test_spill_before_start_never_raises(db: Db, writers: Writers) -> None:
    """``append`` never raises: a full queue spills even before ``start`` made the directory."""
    writer = writers(db.engine, queue_size=5)
    assert not writers.spill_path.parent.exists()
    for i in range(20):
        writer.append(ledger_row(i))
    assert writer.pending == 5 and spill_lines(writer) == 15
    await writer.start()
    await writer.aclose()
    assert await db.counts() == (20, 20)


@pytest.mark.parametrize("dialect_name", ["sqlite", "postgresql"])
def test_insert_plan_sends_what_sqlalchemy_would(dialect_name: str) -> None:
    """The plan's tuples are SQLAlchemy's own bind processing of each column, value for value —
    float columns given ints, Decimals or None included (they skip the call when already float)."""
    from decimal import Decimal

    from sqlalchemy.dialects import postgresql, sqlite

    from thrifty.ledger.writer import InsertPlan

    dialect = (sqlite if dialect_name == "sqlite" else postgresql.asyncpg).dialect()
    plan = InsertPlan(dialect)
    rows = [
        ledger_row(1),
        ledger_row(2, cost_usd=3, saved_usd=Decimal("0.25"), ttfb_ms=None, unpriced=True),
        ledger_row(3, cache_similarity=0.93, content={"request": {"a": [1, 2]}}, tags={}),
        ledger_row(4, content=None, fallback_path=[], first_byte_at=None),
    ]
    # build_row writes instants as epoch seconds: sent as SQLAlchemy sends the same datetime.
    as_epoch = [
        {**row, **{c: row[c].timestamp() for c in INSTANTS if row[c] is not None}} for row in rows
    ]
    for batch in (rows, as_epoch):
        for row, sent in zip(rows, plan.params(batch), strict=True):
            for name, value in zip(plan.names, sent, strict=True):
                proc = ledger.c[name].type.dialect_impl(dialect).bind_processor(dialect)
                want = row[name] if proc is None else proc(row[name])
                assert value == want and type(value) is type(want), name


def test_sqlite_instants_match_sqlalchemy_on_the_same_datetime() -> None:
    """``sqlite_instant(epoch)`` is SQLAlchemy's text for ``fromtimestamp(epoch, UTC)``: the
    same rounding of microseconds (half to even, carried into the next second), any second."""
    import random
    from datetime import UTC, datetime

    from sqlalchemy.dialects import sqlite

    from thrifty.ledger.writer import sqlite_instant

    proc = sqlite.DATETIME().bind_processor(sqlite.dialect())
    rng = random.Random(7)
    values = [1.7e9 + rng.random() * 1e8 for _ in range(20_000)]
    values += [1.7e9 + 0.9999995, 1.7e9 + 0.0000005, 1.7e9, 1795000000.9999999, -1.5, 0.25]
    for value in values:
        assert sqlite_instant(value) == proc(datetime.fromtimestamp(value, UTC)), value
    assert sqlite_instant(None) is None


def test_sqlite_datetimes_are_formatted_as_sqlalchemy_formats_them() -> None:
    from datetime import UTC, datetime, timedelta, timezone

    from sqlalchemy.dialects import sqlite

    from thrifty.ledger.writer import sqlite_datetime

    dialect = sqlite.dialect()
    proc = sqlite.DATETIME().bind_processor(dialect)
    values = [
        datetime(2026, 11, 22, 21, 30, 14, 123456, tzinfo=UTC),
        datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),  # no microseconds
        datetime(2026, 1, 2, 3, 4, 5, 7),  # naive
        datetime(999, 12, 31, 23, 59, 59, 999999, tzinfo=timezone(timedelta(hours=2))),
        None,
    ]
    for value in values:
        assert sqlite_datetime(value) == proc(value), value
