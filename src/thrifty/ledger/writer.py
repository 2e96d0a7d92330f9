"""The write-behind ledger writer: rows leave the request path at once and reach the database in
batches.

Guarantees:
- ``append`` never blocks and never raises. Rows go to a bounded in-memory queue; if it is full
  (the database is far behind) the row goes straight to the spill file instead of being dropped.
- A background task flushes the queue in batches (``batch_size`` rows, or every
  ``flush_interval_s``). Inserts are idempotent by request id (``ON CONFLICT DO NOTHING``).
- If the database fails, the batch is appended to an append-only JSON-lines spill file and the
  writer keeps serving; every ``retry_interval_s`` it replays the spill file, deleting it only
  after every row in it was committed. Replays cannot duplicate rows.
- ``aclose`` flushes everything that is queued (to the database, or to the spill file when the
  database is down), so a graceful shutdown loses nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import operator
import os
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import JSON, DateTime
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncEngine

from thrifty.db.schema import ledger

log = logging.getLogger("thrifty.ledger")

Row = dict[str, Any]
_SQLITE_DATETIME = sqlite.DATETIME._storage_format  # the format sqlite_datetime writes
_DATETIME_COLUMNS = ("started_at", "first_byte_at", "ended_at")


def _encode(row: Row) -> bytes:
    return orjson.dumps(row) + b"\n"


def _decode(line: bytes) -> Row:
    row = orjson.loads(line)
    for col in _DATETIME_COLUMNS:
        value = row.get(col)
        if isinstance(value, str):  # a datetime (epoch seconds stay a float)
            row[col] = datetime.fromisoformat(value)
    return row


def sqlite_datetime(value: datetime | None) -> str | None:
    """What SQLAlchemy's SQLite ``DATETIME`` bind processor makes of ``value`` (its default
    storage format, ``YYYY-MM-DD HH:MM:SS.ffffff``, time zone dropped) in ~0.8 µs instead of
    ~1.3 µs."""
    if value is None:
        return None
    return value.isoformat(" ", "microseconds")[:26]  # the UTC offset cut off


_last_second: list[Any] = [None, ""]  # the second last formatted, and its text


def sqlite_instant(value: float | datetime | None) -> str | None:
    """A ledger instant for SQLite: ``value`` is epoch seconds (what ``build_row`` writes) or a
    datetime. The text is exactly ``sqlite_datetime(datetime.fromtimestamp(value, UTC))``, in
    ~0.5 µs instead of ~3.5 µs: the date and time of day are formatted once per second."""
    if value is None or isinstance(value, datetime):
        return sqlite_datetime(value)
    seconds = int(value)
    micros = round((value - seconds) * 1e6)  # half to even, as ``fromtimestamp`` rounds
    if micros >= 1_000_000:
        seconds, micros = seconds + 1, micros - 1_000_000
    elif micros < 0:  # before 1970: ``int`` truncated towards zero
        seconds, micros = seconds - 1, micros + 1_000_000
    last = _last_second
    if last[0] != seconds:
        last[1] = datetime.fromtimestamp(seconds, UTC).isoformat(" ")[:19]
        last[0] = seconds
    return f"{last[1]}.{micros:06d}"


def aware_instant(value: float | datetime | None) -> datetime | None:
    """A ledger instant as the aware datetime other drivers take (epoch seconds converted)."""
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromtimestamp(value, UTC)


class InsertPlan:
    """The ledger insert, compiled once for a dialect: its SQL with positional parameters, and per
    column what SQLAlchemy's own bind processor would send, done in fewer steps. ``params`` turns
    row dicts into those tuples, so the batch goes to the driver as one ``executemany`` without
    SQLAlchemy's per-row parameter processing, which ran on the event loop at ~25 µs a row.

    - Instants (``DateTime`` columns) may be epoch seconds, as ``build_row`` writes them, or
      datetimes: SQLite gets ``sqlite_instant``'s text, other dialects an aware datetime.
    - JSON columns go straight to the dialect's JSON serializer (SQLAlchemy's processor only
      wraps it; ``None`` becomes JSON ``null`` either way).
    - Float columns pass a float or None as it is."""

    def __init__(self, dialect: Dialect) -> None:
        insert = postgresql.insert if dialect.name == "postgresql" else sqlite.insert
        stmt = insert(ledger).on_conflict_do_nothing(index_elements=["request_id"])
        compiled = stmt.compile(dialect=dialect)
        names = compiled.positiontup
        if not names:
            raise ValueError(f"{dialect.name}: a positional parameter style is needed")
        self.sql = str(compiled)
        self.names: tuple[str, ...] = tuple(names)
        self._values = operator.itemgetter(*names)
        self._procs: list[tuple[int, Callable[[Any], Any]]] = []
        self._floats: list[int] = []  # to_float columns: a float or None passes as it is
        serialize = getattr(dialect, "_json_serializer", None) or json.dumps
        for i, name in enumerate(names):
            column_type = ledger.c[name].type
            impl = column_type.dialect_impl(dialect)
            proc = impl.bind_processor(dialect)
            if isinstance(column_type, DateTime):
                if isinstance(impl, sqlite.DATETIME):
                    if impl._storage_format != _SQLITE_DATETIME:
                        raise ValueError("an unexpected SQLite DATETIME storage format")
                    self._procs.append((i, sqlite_instant))
                elif proc is None:  # asyncpg and psycopg take the datetime itself
                    self._procs.append((i, aware_instant))
                else:
                    raise ValueError(f"{dialect.name}: an unexpected DateTime bind processor")
            elif isinstance(column_type, JSON) and not column_type.none_as_null:
                self._procs.append((i, serialize))
            elif proc is not None and getattr(proc, "__name__", "") == "to_float":
                self._floats.append(i)
            elif proc is not None:
                self._procs.append((i, proc))

    def params(self, rows: Sequence[Row]) -> list[tuple[Any, ...]]:
        out = []
        for row in rows:
            try:
                values = list(self._values(row))
            except KeyError:  # a row missing a column (an old spill file): NULL / the default
                values = [row.get(name) for name in self.names]
            for i, proc in self._procs:
                values[i] = proc(values[i])
            for i in self._floats:
                value = values[i]
                if value is not None and type(value) is not float:
                    values[i] = float(value)
            out.append(tuple(values))
        return out


class LedgerWriter:
    def __init__(
        self,
        engine: AsyncEngine,
        spill_path: str | Path,
        *,
        batch_size: int = 500,
        flush_interval_s: float = 0.2,
        queue_size: int = 100_000,
        retry_interval_s: float = 2.0,
    ) -> None:
        self._engine = engine
        self._spill_path = Path(spill_path)
        self._batch_size = batch_size
        self._flush_interval_s = flush_interval_s
        self._retry_interval_s = retry_interval_s
        self._queue: asyncio.Queue[Row] = asyncio.Queue(queue_size)
        self._task: asyncio.Task[None] | None = None
        self._last_retry = 0.0
        self._stop = asyncio.Event()
        # One writer at a time: ``flush`` must not return while the task's batch is in flight,
        # and two replays of one spill file must not run at once.
        self._lock = asyncio.Lock()
        self._plan = InsertPlan(engine.dialect)
        self.stats = {"written": 0, "spilled": 0, "replayed": 0, "db_errors": 0}
        self.healthy = True

    # -- request path ----------------------------------------------------------------------
    def append(self, row: Row) -> None:
        """Queue a row (non-blocking). A full queue spills the row to disk, never drops it."""
        try:
            self._queue.put_nowait(row)
        except asyncio.QueueFull:
            self._spill([row])

    # -- lifecycle -------------------------------------------------------------------------
    async def start(self) -> None:
        if self._task is None:
            self._spill_path.parent.mkdir(parents=True, exist_ok=True)
            self._task = asyncio.create_task(self._run(), name="thrifty-ledger-writer")

    async def aclose(self) -> None:
        """Flush everything queued, try the spill file once more, stop the task."""
        self._stop.set()
        if self._task is not None:
            await self._task
            self._task = None
        while not self._queue.empty():
            await self._write(self._take(self._batch_size))
        await self._replay()

    async def flush(self) -> None:
        """Write what is queued now (tests, reports that must see the latest rows)."""
        async with self._lock:
            while not self._queue.empty():
                await self._write(self._take(self._batch_size))
            if self.healthy:
                await self._replay()

    @property
    def pending(self) -> int:
        return self._queue.qsize()

    @property
    def has_spill(self) -> bool:
        p = self._spill_path
        return p.exists() or p.with_suffix(p.suffix + ".replaying").exists()

    @property
    def spill_path(self) -> Path:
        return self._spill_path

    # -- background ------------------------------------------------------------------------
    def _take(self, n: int) -> list[Row]:
        batch: list[Row] = []
        while len(batch) < n:
            try:
                batch.append(self._queue.get_nowait())
            except asyncio.QueueEmpty:
                break
        return batch

    async def _run(self) -> None:
        # Never cancelled (a cancelled driver call can wedge the connection): ``aclose`` sets
        # ``_stop`` and this loop ends after its current write.
        while not self._stop.is_set():
            if self._queue.qsize() < self._batch_size:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), self._flush_interval_s)
            try:
                async with self._lock:
                    batch = self._take(self._batch_size)
                    if batch:
                        await self._write(batch)
                    now = time.monotonic()
                    if self.has_spill and now - self._last_retry >= self._retry_interval_s:
                        self._last_retry = now
                        await self._replay()
            except Exception:  # keep the writer alive whatever happens
                log.exception("ledger writer error")

    async def _insert_rows(self, rows: Sequence[Row]) -> None:
        async with self._engine.begin() as conn:
            await conn.exec_driver_sql(self._plan.sql, self._plan.params(rows))

    async def _write(self, rows: list[Row]) -> None:
        if not rows:
            return
        try:
            await self._insert_rows(rows)
        except Exception as exc:  # any driver / connection failure: keep the rows on disk
            self.stats["db_errors"] += 1
            if self.healthy:
                log.error(
                    "ledger database unavailable (%s); spilling rows to %s", exc, self._spill_path
                )
            self.healthy = False
            self._spill(rows)
            return
        self.stats["written"] += len(rows)
        if not self.healthy:
            log.warning("ledger database is back; replaying spilled rows")
            self.healthy = True
            await self._replay()

    def _spill(self, rows: Sequence[Row]) -> None:
        data = b"".join(_encode(r) for r in rows)
        self._spill_path.parent.mkdir(parents=True, exist_ok=True)  # also before ``start``
        fd = os.open(self._spill_path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                data = b"\n" + data  # a line torn by a crash must not swallow the next row
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        self.stats["spilled"] += len(rows)

    async def _replay(self) -> None:
        """Insert the spill file's rows; delete the file only when all of them committed."""
        path = self._spill_path
        replaying = path.with_suffix(path.suffix + ".replaying")
        if not replaying.exists():
            if not path.exists():
                return
            os.replace(path, replaying)  # new spills go to a fresh file meanwhile
        lines = [line for line in replaying.read_bytes().splitlines() if line.strip()]
        rows: list[Row] = []
        for line in lines:
            try:
                rows.append(_decode(line))
            except (orjson.JSONDecodeError, ValueError):
                log.error("skipping a corrupt line in %s", replaying)  # a torn final write
        try:
            for i in range(0, len(rows), self._batch_size):
                await self._insert_rows(rows[i : i + self._batch_size])
        except Exception as exc:
            self.healthy = False
            log.info("ledger replay failed (%s); will retry", exc)
            return
        self.healthy = True
        replaying.unlink()
        self.stats["replayed"] += len(rows)
        log.info("replayed %d spilled ledger rows", len(rows))
