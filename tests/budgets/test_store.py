"""Stored budgets and their change log, on SQLite and on the real PostgreSQL (schema from the
real migrations)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import insert, inspect
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.pg import pg_database
from thrifty.budgets import BudgetSpec, BudgetUsage
from thrifty.budgets.store import (
    BudgetDefinitions,
    BudgetStore,
    StoredBudgetError,
    budgets,
    merge_specs,
    spec_json,
)
from thrifty.db.engine import make_engine
from thrifty.db.migrate import _alembic_config, current_revision, upgrade
from thrifty.keys.principal import Principal


def tenant_budget(id: str = "acme", limit: float = 100.0, **kw: object) -> BudgetSpec:
    return BudgetSpec.model_validate(
        {"id": id, "scope": "tenant", "subject": "acme", "limit_usd": limit, **kw}
    )


@pytest.fixture(params=["sqlite", "postgres"])
async def engine(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    async with contextlib.AsyncExitStack() as stack:
        if request.param == "sqlite":
            url = f"sqlite:///{tmp_path / 'budgets.db'}"
        else:
            url = await stack.enter_async_context(pg_database())
        eng = make_engine(url)
        stack.push_async_callback(eng.dispose)
        await upgrade(eng)
        yield eng


@pytest.fixture
def store(engine: AsyncEngine) -> BudgetStore:
    return BudgetStore(engine)


async def test_migration_creates_and_drops_the_tables(engine: AsyncEngine) -> None:
    assert await current_revision(engine) == "0005"  # the latest migration

    async def tables() -> set[str]:
        async with engine.connect() as conn:
            return set(await conn.run_sync(lambda c: inspect(c).get_table_names()))

    assert {"budgets", "budget_changes"} <= await tables()
    async with engine.begin() as conn:
        await conn.run_sync(lambda c: command.downgrade(_alembic_config(c), "0003"))
    assert not {"budgets", "budget_changes"} & await tables()
    await upgrade(engine)
    assert await current_revision(engine) == "0005"


async def test_put_creates_then_updates_and_logs_each_change(store: BudgetStore) -> None:
    assert await store.list() == [] and await store.get("acme") is None
    assert await store.last_change_id() == 0
    first = tenant_budget()
    assert await store.put(first, "admin:abc") == (None, first)
    assert await store.get("acme") == first
    second = tenant_budget(limit=250.0, period="daily", timezone="Europe/Berlin")
    old, new = await store.put(second, "cli:bob")
    assert (old, new) == (first, second)
    assert await store.list() == [second]
    # an identical put records nothing
    assert await store.put(second, "cli:bob") == (second, second)
    log = await store.changes()
    assert [(c.action, c.actor) for c in log] == [("update", "cli:bob"), ("create", "admin:abc")]
    assert log[0].old == spec_json(first) and log[0].new == spec_json(second)
    assert log[1].old is None and log[1].new is not None and log[1].new["limit_usd"] == 100.0
    assert log[0].at.tzinfo is not None and log[0].at <= datetime.now(UTC)
    assert log[0].id > log[1].id == 1
    assert await store.last_change_id() == log[0].id
    assert log[0].to_json()["action"] == "update"
    stored = await store.list_stored()
    assert stored[0].created_at <= stored[0].updated_at


async def test_put_over_a_config_budget_records_the_config_definition(store: BudgetStore) -> None:
    base = tenant_budget(limit=10.0)
    override = tenant_budget(limit=20.0)
    assert await store.put(override, "admin:x", base=base) == (base, override)
    [change] = await store.changes("acme")
    assert change.action == "update" and change.old == spec_json(base)


async def test_delete_records_and_reverts_to_the_fallback(store: BudgetStore) -> None:
    base = tenant_budget(limit=10.0)
    override = tenant_budget(limit=20.0)
    await store.put(override, "admin:x", base=base)
    assert await store.delete("nope", "admin:x") is None
    old = await store.delete("acme", "admin:y", fallback=base)
    assert old == spec_json(override)
    assert await store.get("acme") is None
    last = (await store.changes("acme"))[0]
    assert (last.action, last.actor, last.old, last.new) == (
        "delete",
        "admin:y",
        spec_json(override),
        spec_json(base),
    )
    assert len(await store.changes()) == 2  # the missing id recorded nothing


async def test_record_reset_and_filtered_changes(store: BudgetStore) -> None:
    await store.put(tenant_budget("a"), "cli")
    await store.put(tenant_budget("b"), "cli")
    usage = BudgetUsage("a", "2026-11", spent_micros=1_500_000, spent_tokens=42)
    change = await store.record_reset("a", "admin:r", usage)
    assert change.action == "reset" and change.old is not None and change.new is not None
    assert change.old["spent_usd"] == 1.5 and change.old["window_id"] == "2026-11"
    assert change.new == {"window_id": "2026-11", "spent_micros": 0, "spent_tokens": 0}
    assert [c.action for c in await store.changes("a")] == ["reset", "create"]
    assert [c.budget_id for c in await store.changes(limit=2)] == ["a", "b"]
    assert await store.changes("zzz") == []


async def test_concurrent_creates_of_one_id_all_land(store: BudgetStore) -> None:
    specs = [tenant_budget(limit=float(n)) for n in range(1, 7)]
    await asyncio.gather(*(store.put(s, f"admin:{n}") for n, s in enumerate(specs)))
    stored = await store.get("acme")
    assert stored in specs
    actions = [c.action for c in await store.changes("acme")]
    assert actions.count("create") == 1 and len(actions) == len(specs)
    assert (await store.changes("acme"))[0].new == spec_json(stored)  # type: ignore[arg-type]


async def test_an_invalid_stored_budget_is_loud(engine: AsyncEngine, store: BudgetStore) -> None:
    now = datetime.now(UTC)
    async with engine.begin() as conn:
        await conn.execute(
            insert(budgets).values(
                id="bad", spec={"id": "bad", "scope": "org"}, created_at=now, updated_at=now
            )
        )
    with pytest.raises(StoredBudgetError, match="bad"):
        await store.list()
    # it can still be replaced and deleted
    fixed = BudgetSpec(id="bad", scope="org", limit_usd=1.0)
    assert await store.put(fixed, "admin:x") == (None, fixed)
    assert await store.delete("bad", "admin:x") == spec_json(fixed)


async def test_record_config_logs_config_budgets_that_changed(store: BudgetStore) -> None:
    a, b = tenant_budget("a"), tenant_budget("b")
    first = await store.record_config([a, b])
    assert [(c.budget_id, c.action, c.actor) for c in first] == [
        ("a", "create", "config"),
        ("b", "create", "config"),
    ]
    assert await store.record_config([a, b]) == []
    a2 = tenant_budget("a", limit=5.0)
    changed = await store.record_config([a2])
    assert [(c.budget_id, c.action) for c in changed] == [("a", "update"), ("b", "delete")]
    assert changed[0].old == spec_json(a) and changed[0].new == spec_json(a2)
    assert await store.record_config([a2]) == []
    assert [(c.budget_id, c.action) for c in await store.record_config([a2, b])] == [
        ("b", "create")
    ]


def test_merge_specs_db_overrides_config_by_id() -> None:
    cfg = [tenant_budget("x", 1.0), tenant_budget("y", 2.0)]
    db = [tenant_budget("z", 3.0), tenant_budget("x", 9.0)]
    merged, sources = merge_specs(cfg, db)
    assert [(s.id, s.limit_usd) for s in merged] == [("x", 9.0), ("y", 2.0), ("z", 3.0)]
    assert sources == {"x": "db_override", "y": "config", "z": "db"}


async def test_definitions_refresh_when_the_log_moves(store: BudgetStore) -> None:
    defs = BudgetDefinitions([tenant_budget("cfg", 1.0)], store)
    assert [s.id for s in defs.specs()] == ["cfg"]
    assert await defs.refresh() is True  # first read
    assert await defs.refresh() is False  # nothing changed
    await store.put(tenant_budget("cfg", 7.0), "admin:x", base=defs.config_spec("cfg"))
    await store.put(BudgetSpec(id="all", scope="org", limit_usd=50.0), "admin:x")
    assert await defs.refresh() is True
    assert defs.get("cfg") is not None and defs.get("cfg").limit_usd == 7.0  # type: ignore[union-attr]
    assert defs.sources == {"cfg": "db_override", "all": "db"}
    hit = defs.index.applicable(Principal(tenant="acme"))
    assert [s.id for s in hit] == ["all", "cfg"]
    await store.delete("cfg", "admin:x", fallback=defs.config_spec("cfg"))
    assert await defs.refresh() is True
    assert defs.get("cfg").limit_usd == 1.0  # type: ignore[union-attr]
    assert await BudgetDefinitions([], None).refresh() is False
