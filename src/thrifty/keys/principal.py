"""Who a request is for: the tenant, user, tier and tags resolved from its virtual key."""

from __future__ import annotations

from dataclasses import dataclass, field

TIERS = ("basic", "standard", "premium", "enterprise")


@dataclass(frozen=True, slots=True)
class Principal:
    """The identity later stages use (budgets, cache scope, routing). Immutable."""

    tenant: str
    key_id: str | None = None
    user: str | None = None
    tier: str = "standard"
    tags: dict[str, str] = field(default_factory=dict)
