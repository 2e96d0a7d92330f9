"""Virtual keys in the database, stored hashed: the plaintext key is shown once and never kept.

Keys are 256-bit random tokens, so an unsalted SHA-256 is a sufficient one-way hash (there is
nothing to brute-force); it also allows a constant-time indexed lookup on every request.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from thrifty.db.schema import api_keys
from thrifty.errors import InvalidRequestError, NotFoundError
from thrifty.keys.principal import TIERS, Principal

KEY_PREFIX = "tk-"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """A stored key's metadata (never the key itself)."""

    id: str
    prefix: str
    tenant: str
    user: str | None
    tier: str
    tags: dict[str, str]
    name: str | None
    created_at: datetime
    revoked_at: datetime | None

    def principal(self) -> Principal:
        return Principal(
            tenant=self.tenant, key_id=self.id, user=self.user, tier=self.tier, tags=self.tags
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "prefix": self.prefix,
            "tenant": self.tenant,
            "user": self.user,
            "tier": self.tier,
            "tags": self.tags,
            "name": self.name,
            "created_at": self.created_at.isoformat(),
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
            "revoked": self.revoked_at is not None,
        }


def _record(row: Any) -> KeyRecord:
    created, revoked = row.created_at, row.revoked_at
    # SQLite returns naive datetimes; they were written in UTC.
    if created is not None and created.tzinfo is None:
        created = created.replace(tzinfo=UTC)
    if revoked is not None and revoked.tzinfo is None:
        revoked = revoked.replace(tzinfo=UTC)
    return KeyRecord(
        id=row.id,
        prefix=row.prefix,
        tenant=row.tenant,
        user=row.user,
        tier=row.tier,
        tags=dict(row.tags or {}),
        name=row.name,
        created_at=created,
        revoked_at=revoked,
    )


class KeyStore:
    """Create, look up, list and revoke virtual keys."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def create(
        self,
        tenant: str,
        *,
        user: str | None = None,
        tier: str = "standard",
        tags: dict[str, str] | None = None,
        name: str | None = None,
    ) -> tuple[str, KeyRecord]:
        """Create a key; returns the plaintext key (show it once) and its record."""
        if not tenant:
            raise InvalidRequestError("a key needs a tenant", param="tenant")
        if tier not in TIERS:
            raise InvalidRequestError(
                f"tier must be one of {', '.join(TIERS)}, got {tier!r}", param="tier"
            )
        key = new_key()
        rec = KeyRecord(
            id="key_" + secrets.token_hex(8),
            prefix=key[:10],
            tenant=tenant,
            user=user,
            tier=tier,
            tags=dict(tags or {}),
            name=name,
            created_at=datetime.now(UTC),
            revoked_at=None,
        )
        async with self._engine.begin() as conn:
            await conn.execute(
                insert(api_keys).values(
                    id=rec.id,
                    key_hash=hash_key(key),
                    prefix=rec.prefix,
                    tenant=rec.tenant,
                    user=rec.user,
                    tier=rec.tier,
                    tags=rec.tags,
                    name=rec.name,
                    created_at=rec.created_at,
                )
            )
        return key, rec

    async def lookup(self, key: str) -> KeyRecord | None:
        """The active (not revoked) record for a plaintext key, or None."""
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(
                    select(api_keys).where(
                        api_keys.c.key_hash == hash_key(key), api_keys.c.revoked_at.is_(None)
                    )
                )
            ).first()
        return _record(row) if row else None

    async def list(
        self, *, tenant: str | None = None, include_revoked: bool = True
    ) -> list[KeyRecord]:
        q = select(api_keys).order_by(api_keys.c.created_at)
        if tenant:
            q = q.where(api_keys.c.tenant == tenant)
        if not include_revoked:
            q = q.where(api_keys.c.revoked_at.is_(None))
        async with self._engine.connect() as conn:
            return [_record(r) for r in (await conn.execute(q)).all()]

    async def revoke(self, key_id_or_prefix: str) -> KeyRecord:
        """Revoke by id (``key_…``) or by the displayed prefix; NotFoundError if no match."""
        match = or_(api_keys.c.id == key_id_or_prefix, api_keys.c.prefix == key_id_or_prefix)
        async with self._engine.begin() as conn:
            rows = (await conn.execute(select(api_keys).where(match))).all()
            if not rows:
                raise NotFoundError(f"no key {key_id_or_prefix!r}", param="key_id")
            if len(rows) > 1:
                raise InvalidRequestError(
                    f"{key_id_or_prefix!r} matches {len(rows)} keys; use the key id",
                    param="key_id",
                )
            await conn.execute(
                update(api_keys)
                .where(api_keys.c.id == rows[0].id, api_keys.c.revoked_at.is_(None))
                .values(revoked_at=datetime.now(UTC))
            )
            row = (await conn.execute(select(api_keys).where(api_keys.c.id == rows[0].id))).one()
        return _record(row)
