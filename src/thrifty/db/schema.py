"""The relational schema (SQLAlchemy Core). Alembic migrations in ``migrations/`` create it."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
)

metadata = MetaData()

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(32), primary_key=True),
    # sha256 of the whole key; the key itself is never stored.
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("prefix", String(16), nullable=False),
    Column("tenant", String(200), nullable=False),
    Column("user", String(200)),
    Column("tier", String(20), nullable=False),
    Column("tags", JSON, nullable=False),
    Column("name", String(200)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("revoked_at", DateTime(timezone=True)),
)
Index("ix_api_keys_tenant", api_keys.c.tenant)

# One row per request (answered, failed, refused or served from cache); the request id is the
# primary key, so replays after an outage never duplicate. Costs are USD; NULL cost_usd with
# unpriced=1 means "the model has no known price" — never a silent $0.
ledger = Table(
    "ledger",
    metadata,
    Column("request_id", String(40), primary_key=True),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("first_byte_at", DateTime(timezone=True)),
    Column("ended_at", DateTime(timezone=True)),
    Column("endpoint", String(40), nullable=False),
    Column("tenant", String(200), nullable=False),
    Column("user", String(200)),
    Column("key_id", String(32)),
    Column("tags", JSON, nullable=False),
    Column("priority", String(10), nullable=False),
    Column("requested_model", String(200), nullable=False),
    Column("served_model", String(200)),
    Column("provider", String(100)),
    Column("deployment", String(300)),
    Column("route_reason", String(200)),
    Column("cache_status", String(10), nullable=False),
    Column("cache_similarity", Float),
    Column("prompt_tokens", Integer, nullable=False),
    Column("completion_tokens", Integer, nullable=False),
    Column("cached_tokens", Integer, nullable=False),
    Column("cache_write_tokens", Integer, nullable=False),
    Column("reasoning_tokens", Integer, nullable=False),
    Column("usage_source", String(12), nullable=False),
    Column("cost_usd", Float),
    Column("baseline_cost_usd", Float),
    Column("saved_usd", Float, nullable=False),
    Column("saved_cache_usd", Float, nullable=False),
    Column("saved_semantic_cache_usd", Float, nullable=False, server_default="0"),
    Column("saved_routing_usd", Float, nullable=False),
    Column("saved_compression_usd", Float, nullable=False),
    Column("saved_max_tokens_usd", Float, nullable=False),
    Column("unpriced", Boolean, nullable=False),
    Column("latency_ms", Float, nullable=False),
    Column("ttfb_ms", Float),
    Column("attempts", Integer, nullable=False),
    Column("fallback_path", JSON, nullable=False),
    Column("status", Integer, nullable=False),
    Column("error_type", String(60)),
    Column("error_code", String(60)),
    Column("finish_reason", String(30)),
    Column("flags", JSON, nullable=False),
    Column("content", JSON),
)
Index("ix_ledger_started_at", ledger.c.started_at)
Index("ix_ledger_tenant_started", ledger.c.tenant, ledger.c.started_at)


budgets = Table(
    "budgets",
    metadata,
    Column("id", String(128), primary_key=True),
    Column("spec", JSON, nullable=False),  # BudgetSpec.model_dump(mode="json")
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)
budget_changes = Table(
    "budget_changes",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("budget_id", String(128), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("actor", String(200), nullable=False),
    Column("action", String(10), nullable=False),  # create | update | delete | reset
    Column("old", JSON),
    Column("new", JSON),
)
Index("ix_budget_changes_budget_id", budget_changes.c.budget_id, budget_changes.c.id)

# One row per request a client rated (POST /v1/feedback); the latest rating wins.
feedback = Table(
    "feedback",
    metadata,
    Column("request_id", String(40), primary_key=True),
    Column("tenant", String(200), nullable=False),
    Column("score", Float),
    Column("needed_clarification", Boolean),
    Column("comment", String(2000)),
    Column("at", DateTime(timezone=True), nullable=False),
)
