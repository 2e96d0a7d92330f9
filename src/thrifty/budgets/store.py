"""Budgets defined at run time (admin API, ``thrifty budgets``) and the log of every change.

**Where a budget comes from.** The config's ``budgets.budgets`` are the base; budgets stored in
the database (table ``budgets``) override them *by id*: a stored budget with the id of a
config budget replaces it entirely, one with a new id adds a budget. Deleting a stored budget
that overrides a config budget reverts to the config definition; a budget defined only in the
config cannot be deleted at run time (remove it from the config, or store an override with
``enabled: false``). ``merge_specs`` computes the effective set; ``BudgetDefinitions`` holds it
for a running gateway and re-reads the database when the change log moved (every replica
notices within its refresh interval).

**Change log.** Every create, update, delete and reset is a row of ``budget_changes``: when,
who (``actor``: ``admin:<fingerprint>`` for the admin API, ``cli:<user>`` for the CLI,
``config`` for a config budget that appeared, changed or disappeared between start-ups), the
action and the old and new JSON (a spec, or for a reset the counters before and after).
The log's largest id is a cheap version number of the stored budgets (``last_change_id``).
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import ValidationError
from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    Index,
    Integer,
    String,
    Table,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from thrifty.budgets.model import BudgetIndex, BudgetSpec
from thrifty.budgets.results import BudgetUsage
from thrifty.db.schema import metadata
from thrifty.errors import ThriftyError

Action = Literal["create", "update", "delete", "reset"]
Source = Literal["config", "db", "db_override"]

# -- tables (to be moved into thrifty.db.schema; migration 0004 creates them) -----------------

budgets = (
    metadata.tables["budgets"]
    if "budgets" in metadata.tables
    else Table(
        "budgets",
        metadata,
        Column("id", String(128), primary_key=True),
        Column("spec", JSON, nullable=False),  # BudgetSpec.model_dump(mode="json")
        Column("created_at", DateTime(timezone=True), nullable=False),
        Column("updated_at", DateTime(timezone=True), nullable=False),
    )
)
budget_changes = (
    metadata.tables["budget_changes"]
    if "budget_changes" in metadata.tables
    else Table(
        "budget_changes",
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("budget_id", String(128), nullable=False),
        Column("at", DateTime(timezone=True), nullable=False),
        Column("actor", String(200), nullable=False),
        Column("action", String(10), nullable=False),
        Column("old", JSON),
        Column("new", JSON),
    )
)
if not budget_changes.indexes:
    Index("ix_budget_changes_budget_id", budget_changes.c.budget_id, budget_changes.c.id)


class StoredBudgetError(ThriftyError):
    """A stored budget no longer validates as a ``BudgetSpec`` (e.g. after a downgrade)."""

    code = "invalid_stored_budget"


def _utc(value: datetime) -> datetime:
    # SQLite returns naive datetimes; they were written in UTC.
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def spec_json(spec: BudgetSpec) -> dict[str, Any]:
    """A spec as the JSON the store keeps (every field, defaults included)."""
    return spec.model_dump(mode="json")


def usage_json(usage: BudgetUsage) -> dict[str, Any]:
    """One window's counters as JSON (the ``old`` of a reset)."""
    return {
        "window_id": usage.window_id,
        "spent_micros": usage.spent_micros,
        "spent_usd": usage.spent_usd,
        "spent_tokens": usage.spent_tokens,
        "reserved_micros": usage.reserved_micros,
        "reserved_tokens": usage.reserved_tokens,
    }


def _spec(budget_id: str, raw: Any) -> BudgetSpec:
    try:
        return BudgetSpec.model_validate(raw)
    except ValidationError as exc:
        raise StoredBudgetError(
            f"stored budget {budget_id!r} is not a valid budget: {exc.errors()[0]['msg']}"
        ) from None


@dataclass(frozen=True, slots=True)
class StoredBudget:
    spec: BudgetSpec
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class BudgetChange:
    """One row of the change log."""

    id: int
    budget_id: str
    at: datetime
    actor: str
    action: Action
    old: dict[str, Any] | None
    new: dict[str, Any] | None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "budget_id": self.budget_id,
            "at": self.at.isoformat(),
            "actor": self.actor,
            "action": self.action,
            "old": self.old,
            "new": self.new,
        }


def _change(row: Any) -> BudgetChange:
    return BudgetChange(
        row.id, row.budget_id, _utc(row.at), row.actor, row.action, row.old, row.new
    )


class BudgetStore:
    """Stored budgets and their change log (SQLAlchemy Core over the gateway's database)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def list_stored(self) -> list[StoredBudget]:
        """Every stored budget with its timestamps, by id."""
        async with self._engine.connect() as conn:
            rows = (await conn.execute(select(budgets).order_by(budgets.c.id))).all()
        return [
            StoredBudget(_spec(r.id, r.spec), _utc(r.created_at), _utc(r.updated_at)) for r in rows
        ]

    async def list(self) -> list[BudgetSpec]:
        """Every stored budget, by id (``StoredBudgetError`` if one no longer validates: a
        budget is a promise, so one that cannot be read must not silently stop capping)."""
        return [s.spec for s in await self.list_stored()]

    async def get(self, budget_id: str) -> BudgetSpec | None:
        async with self._engine.connect() as conn:
            row = (await conn.execute(select(budgets).where(budgets.c.id == budget_id))).first()
        return _spec(row.id, row.spec) if row else None

    async def put(
        self, spec: BudgetSpec, actor: str, *, base: BudgetSpec | None = None
    ) -> tuple[BudgetSpec | None, BudgetSpec]:
        """Create or replace the stored budget ``spec.id``; returns ``(old, new)``. ``base`` is
        the config definition of that id, if any: without a stored row it is the ``old``
        recorded (the change is an ``update`` of the effective budget). An identical
        re-``put`` records nothing."""
        for attempt in range(2):
            try:
                async with self._engine.begin() as conn:
                    return await self._put(conn, spec, actor, base)
            except IntegrityError:  # a concurrent create of the same id: retry as an update
                if attempt:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    async def _put(
        self, conn: AsyncConnection, spec: BudgetSpec, actor: str, base: BudgetSpec | None
    ) -> tuple[BudgetSpec | None, BudgetSpec]:
        now = datetime.now(UTC)
        new = spec_json(spec)
        q = select(budgets.c.spec).where(budgets.c.id == spec.id).with_for_update()
        row = (await conn.execute(q)).first()
        if row is not None:
            if row.spec == new:
                return spec, spec
            try:
                old: BudgetSpec | None = _spec(spec.id, row.spec)
            except StoredBudgetError:
                old = None
            await conn.execute(
                update(budgets).where(budgets.c.id == spec.id).values(spec=new, updated_at=now)
            )
            await self._log(conn, spec.id, actor, "update", row.spec, new, now)
            return old, spec
        await conn.execute(
            insert(budgets).values(id=spec.id, spec=new, created_at=now, updated_at=now)
        )
        action: Action = "create" if base is None else "update"
        old_json = None if base is None else spec_json(base)
        await self._log(conn, spec.id, actor, action, old_json, new, now)
        return base, spec

    async def delete(
        self, budget_id: str, actor: str, *, fallback: BudgetSpec | None = None
    ) -> dict[str, Any] | None:
        """Delete the stored budget; returns its JSON (``None`` if there was none: nothing is
        recorded). ``fallback`` is the config definition the id reverts to, recorded as
        ``new``."""
        async with self._engine.begin() as conn:
            q = select(budgets.c.spec).where(budgets.c.id == budget_id).with_for_update()
            row = (await conn.execute(q)).first()
            if row is None:
                return None
            await conn.execute(delete(budgets).where(budgets.c.id == budget_id))
            new = None if fallback is None else spec_json(fallback)
            await self._log(conn, budget_id, actor, "delete", row.spec, new, datetime.now(UTC))
        return dict(row.spec)

    async def record_reset(
        self, budget_id: str, actor: str, old_usage: BudgetUsage | dict[str, Any]
    ) -> BudgetChange:
        """Record that ``budget_id``'s spend in one window was reset (``old_usage``: the
        counters before, as returned by ``BudgetBackend.reset``)."""
        old = usage_json(old_usage) if isinstance(old_usage, BudgetUsage) else dict(old_usage)
        new = {"window_id": old.get("window_id"), "spent_micros": 0, "spent_tokens": 0}
        async with self._engine.begin() as conn:
            return await self._log(conn, budget_id, actor, "reset", old, new, datetime.now(UTC))

    async def changes(
        self, budget_id: str | None = None, limit: int = 100
    ) -> builtins.list[BudgetChange]:
        """The change log, newest first (of one budget when ``budget_id`` is given)."""
        q = select(budget_changes).order_by(budget_changes.c.id.desc()).limit(max(1, limit))
        if budget_id is not None:
            q = q.where(budget_changes.c.budget_id == budget_id)
        async with self._engine.connect() as conn:
            return [_change(r) for r in (await conn.execute(q)).all()]

    async def last_change_id(self) -> int:
        """The newest change's id (0 for none): changes whenever a stored budget does."""
        async with self._engine.connect() as conn:
            value = (await conn.execute(select(func.max(budget_changes.c.id)))).scalar()
        return int(value or 0)

    async def record_config(self, specs: Iterable[BudgetSpec]) -> builtins.list[BudgetChange]:
        """Log (actor ``config``) config budgets that are new, changed or gone since the last
        start-up, compared with the last ``config`` change of each id. Call at start-up."""
        current = {s.id: spec_json(s) for s in specs}
        q = (
            select(budget_changes)
            .where(budget_changes.c.actor == "config")
            .order_by(budget_changes.c.id)
        )
        now = datetime.now(UTC)
        out: builtins.list[BudgetChange] = []
        async with self._engine.begin() as conn:
            last = {r.budget_id: r for r in (await conn.execute(q)).all()}
            for bid, new in current.items():
                prev = last.get(bid)
                known = prev.new if prev is not None and prev.action != "delete" else None
                if known != new:
                    action: Action = "create" if known is None else "update"
                    out.append(await self._log(conn, bid, "config", action, known, new, now))
            for bid, prev in last.items():
                if bid not in current and prev.action != "delete":
                    out.append(await self._log(conn, bid, "config", "delete", prev.new, None, now))
        return out

    async def _log(
        self,
        conn: AsyncConnection,
        budget_id: str,
        actor: str,
        action: Action,
        old: dict[str, Any] | None,
        new: dict[str, Any] | None,
        at: datetime,
    ) -> BudgetChange:
        actor = actor[:200]
        result = await conn.execute(
            insert(budget_changes).values(
                budget_id=budget_id, at=at, actor=actor, action=action, old=old, new=new
            )
        )
        key = result.inserted_primary_key
        return BudgetChange(int(key[0]) if key else 0, budget_id, at, actor, action, old, new)


def merge_specs(
    config_specs: Iterable[BudgetSpec], stored: Iterable[BudgetSpec]
) -> tuple[list[BudgetSpec], dict[str, Source]]:
    """The effective budgets (config budgets overridden by stored ones with the same id, then
    stored-only ones; config order, then by id) and where each one comes from."""
    db = {s.id: s for s in stored}
    out: list[BudgetSpec] = []
    sources: dict[str, Source] = {}
    for s in config_specs:
        if s.id in db:
            out.append(db.pop(s.id))
            sources[s.id] = "db_override"
        else:
            out.append(s)
            sources[s.id] = "config"
    for bid in sorted(db):
        out.append(db[bid])
        sources[bid] = "db"
    return out, sources


class BudgetDefinitions:
    """The effective budget definitions of a running gateway: config + stored (see the module
    docstring), with a ``BudgetIndex`` over them. ``refresh()`` re-reads the stored budgets
    when the change log moved (call it after an admin change, and periodically so every
    replica picks up changes made elsewhere)."""

    def __init__(self, config_specs: Sequence[BudgetSpec], store: BudgetStore | None) -> None:
        self.config_specs: tuple[BudgetSpec, ...] = tuple(config_specs)
        self.store = store
        self._version = -1
        self._apply([])

    def _apply(self, stored: Iterable[BudgetSpec]) -> None:
        merged, self.sources = merge_specs(self.config_specs, stored)
        self._specs = tuple(merged)
        self._by_id = {s.id: s for s in merged}
        self.index = BudgetIndex(merged)

    def specs(self) -> tuple[BudgetSpec, ...]:
        return self._specs

    def get(self, budget_id: str) -> BudgetSpec | None:
        return self._by_id.get(budget_id)

    def config_spec(self, budget_id: str) -> BudgetSpec | None:
        return next((s for s in self.config_specs if s.id == budget_id), None)

    async def refresh(self, *, force: bool = False) -> bool:
        """Re-read the stored budgets if they changed (or ``force``); True when re-read."""
        if self.store is None:
            return False
        version = await self.store.last_change_id()
        if version == self._version and not force:
            return False
        self._apply(await self.store.list())
        self._version = version
        return True
