"""The request ledger.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ledger",
        sa.Column("request_id", sa.String(40), primary_key=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("first_byte_at", sa.DateTime(timezone=True)),
        sa.Column("ended_at", sa.DateTime(timezone=True)),
        sa.Column("endpoint", sa.String(40), nullable=False),
        sa.Column("tenant", sa.String(200), nullable=False),
        sa.Column("user", sa.String(200)),
        sa.Column("key_id", sa.String(32)),
        sa.Column("tags", sa.JSON, nullable=False),
        sa.Column("priority", sa.String(10), nullable=False),
        sa.Column("requested_model", sa.String(200), nullable=False),
        sa.Column("served_model", sa.String(200)),
        sa.Column("provider", sa.String(100)),
        sa.Column("deployment", sa.String(300)),
        sa.Column("route_reason", sa.String(200)),
        sa.Column("cache_status", sa.String(10), nullable=False),
        sa.Column("cache_similarity", sa.Float),
        sa.Column("prompt_tokens", sa.Integer, nullable=False),
        sa.Column("completion_tokens", sa.Integer, nullable=False),
        sa.Column("cached_tokens", sa.Integer, nullable=False),
        sa.Column("cache_write_tokens", sa.Integer, nullable=False),
        sa.Column("reasoning_tokens", sa.Integer, nullable=False),
        sa.Column("usage_source", sa.String(12), nullable=False),
        sa.Column("cost_usd", sa.Float),
        sa.Column("baseline_cost_usd", sa.Float),
        sa.Column("saved_usd", sa.Float, nullable=False),
        sa.Column("saved_cache_usd", sa.Float, nullable=False),
        sa.Column("saved_routing_usd", sa.Float, nullable=False),
        sa.Column("saved_compression_usd", sa.Float, nullable=False),
        sa.Column("saved_max_tokens_usd", sa.Float, nullable=False),
        sa.Column("unpriced", sa.Boolean, nullable=False),
        sa.Column("latency_ms", sa.Float, nullable=False),
        sa.Column("ttfb_ms", sa.Float),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("fallback_path", sa.JSON, nullable=False),
        sa.Column("status", sa.Integer, nullable=False),
        sa.Column("error_type", sa.String(60)),
        sa.Column("error_code", sa.String(60)),
        sa.Column("finish_reason", sa.String(30)),
        sa.Column("flags", sa.JSON, nullable=False),
        sa.Column("content", sa.JSON),
    )
    op.create_index("ix_ledger_started_at", "ledger", ["started_at"])
    op.create_index("ix_ledger_tenant_started", "ledger", ["tenant", "started_at"])


def downgrade() -> None:
    op.drop_index("ix_ledger_tenant_started", "ledger")
    op.drop_index("ix_ledger_started_at", "ledger")
    op.drop_table("ledger")
