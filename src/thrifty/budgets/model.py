"""What a budget is, which budgets a request falls under, and when a budget's period resets.

A ``BudgetSpec`` caps spend (USD and/or tokens) of one *scope* over one *period*:

- scope ``org`` (every request), ``tenant``, ``user``, ``key`` (a virtual key id) or ``tag``
  (``subject`` is ``name=value``; it matches when the key's tags *or* the request's tags carry
  it, so a request cannot step out of a tag budget its key was given). ``tenant``, when set on a
  user / key / tag budget, restricts it to that tenant's requests.
- period ``daily``, ``weekly`` (ISO weeks, Monday 00:00), ``monthly`` or ``total`` (never
  resets), with boundaries at local midnight in ``timezone`` (DST-correct: a spring-forward day
  lasts 23 hours, a fall-back day 25).

Money is counted in integer **micro-dollars** (``MICROS_PER_USD``) everywhere budgets are
enforced: exact integer arithmetic in Python and in Redis Lua (whose numbers are doubles, exact
below 2**53 micro-dollars, about 9 billion USD — limits are validated far below that). Amounts
to reserve or charge round *up* to a whole micro-dollar and limits round *down*, so rounding can
only make a budget stricter, never looser.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from functools import lru_cache
from typing import Literal, NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from thrifty.keys.principal import Principal

ScopeKind = Literal["org", "tenant", "user", "key", "tag"]
Period = Literal["daily", "weekly", "monthly", "total"]
Policy = Literal["degrade", "reject", "soft"]

MICROS_PER_USD = 1_000_000
MAX_LIMIT_USD = 1_000_000_000.0
"""Largest ``limit_usd``: with the largest multiplier, caps stay exact in Lua doubles."""
MAX_MULTIPLIER = 8.0
MAX_LIMIT_TOKENS = 10**15
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SCOPE_RANK = {"org": 0, "tenant": 1, "user": 2, "key": 3, "tag": 4}
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@/=+-]{0,127}$")


def _decimal(amount: float | int | Decimal) -> Decimal:
    if isinstance(amount, Decimal):
        return amount
    if isinstance(amount, float):
        if not math.isfinite(amount):
            raise ValueError(f"amount must be finite (got {amount})")
        return Decimal(repr(amount))  # the shortest decimal that round-trips: what was meant
    return Decimal(amount)


def usd_to_micros(amount: float | int | Decimal) -> int:
    """A non-negative USD amount as micro-dollars, rounded **up** (for spend and reservations)."""
    d = _decimal(amount)
    if d < 0:
        raise ValueError(f"amount must be >= 0 (got {amount})")
    return int((d * MICROS_PER_USD).to_integral_value(rounding=ROUND_CEILING))


def micros_to_usd(micros: int) -> float:
    return micros / MICROS_PER_USD


@lru_cache(maxsize=256)
def zone(name: str) -> ZoneInfo:
    """The ``ZoneInfo`` for an IANA name (cached); ``ValueError`` when unknown."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r}") from exc


class BudgetSpec(BaseModel):
    """One budget. Immutable; an admin change replaces the spec (same ``id`` keeps the spend
    counted so far in the current period, so raising or lowering a limit applies at once)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    scope: ScopeKind = "tenant"
    subject: str | None = None
    """The tenant / user / key id, or ``name=value`` for a tag; ``None`` for ``org``."""
    tenant: str | None = None
    """Restrict a user / key / tag budget to one tenant's requests."""
    period: Period = "monthly"
    timezone: str = "UTC"
    limit_usd: float | None = Field(None, gt=0, le=MAX_LIMIT_USD)
    limit_tokens: int | None = Field(None, gt=0, le=MAX_LIMIT_TOKENS)
    policy: Policy = "reject"
    soft_multiplier: float = Field(2.0, ge=1.0, le=MAX_MULTIPLIER)
    """How far past the limit critical-priority requests may go under ``policy: soft``."""
    enabled: bool = True

    @field_validator("id")
    @classmethod
    def _check_id(cls, value: str) -> str:
        if not _ID.match(value):
            raise ValueError(
                "must be 1-128 characters: letters, digits and _ . : @ / = + -, "
                "starting with a letter or digit"
            )
        return value

    @field_validator("timezone")
    @classmethod
    def _check_tz(cls, value: str) -> str:
        zone(value)
        return value

    @model_validator(mode="after")
    def _check(self) -> BudgetSpec:
        if self.limit_usd is None and self.limit_tokens is None:
            raise ValueError("a budget needs limit_usd and/or limit_tokens")
        if self.scope == "org":
            if self.subject is not None:
                raise ValueError("an org budget takes no subject")
            if self.tenant is not None:
                raise ValueError("an org budget takes no tenant (use scope: tenant)")
        elif not self.subject:
            raise ValueError(f"a {self.scope} budget needs a subject")
        if self.scope == "tag" and "=" not in (self.subject or "")[1:]:
            raise ValueError("a tag budget's subject is name=value")
        if self.scope == "tenant" and self.tenant is not None:
            raise ValueError("a tenant budget names its tenant in subject, not tenant")
        return self

    @property
    def tz(self) -> ZoneInfo:
        return zone(self.timezone)

    @property
    def limit_micros(self) -> int | None:
        """The USD limit in micro-dollars, rounded down."""
        if self.limit_usd is None:
            return None
        return int((_decimal(self.limit_usd) * MICROS_PER_USD).to_integral_value(ROUND_FLOOR))

    def caps(self, multiplier: float = 1.0) -> tuple[int | None, int | None]:
        """``(micro-dollars, tokens)`` a reservation may bring spent + reserved up to: the
        limits times ``multiplier`` (>= 1), rounded down; ``None`` where there is no limit."""
        return _caps(self.limit_usd, self.limit_tokens, multiplier)


@lru_cache(maxsize=4096)
def _caps(
    limit_usd: float | None, limit_tokens: int | None, multiplier: float
) -> tuple[int | None, int | None]:
    if not (1.0 <= multiplier <= MAX_MULTIPLIER):
        raise ValueError(f"multiplier must be in [1, {MAX_MULTIPLIER}] (got {multiplier})")
    m = _decimal(multiplier)
    usd = None
    if limit_usd is not None:
        usd = int((_decimal(limit_usd) * m * MICROS_PER_USD).to_integral_value(ROUND_FLOOR))
    tok = None
    if limit_tokens is not None:
        tok = int((Decimal(limit_tokens) * m).to_integral_value(ROUND_FLOOR))
    return usd, tok


class Window(NamedTuple):
    """One period of a budget: ``[start, end)`` as UTC instants (``end`` is ``None`` for
    ``total``) and ``window_id``, the label of the period in the budget's time zone
    (``2024-03-10``, ``2024-W10``, ``2024-03`` or ``total``) that keys its counters."""

    start: datetime
    end: datetime | None
    window_id: str


def _local_midnight(day: date, tz: ZoneInfo) -> datetime:
    # A wall-clock midnight that does not exist (a DST gap at 00:00) resolves with the offset
    # before the gap (fold=0), i.e. to the instant the gap starts: the day starts then.
    return datetime(day.year, day.month, day.day, tzinfo=tz).astimezone(UTC)


def window_for(period: Period, tz: ZoneInfo, now: datetime) -> Window:
    """The period containing the instant ``now`` (an aware datetime) in time zone ``tz``."""
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be an aware datetime")
    if period == "total":
        return Window(EPOCH, None, "total")
    day = now.astimezone(tz).date()
    if period == "daily":
        first, nxt = day, day + timedelta(days=1)
        label = day.isoformat()
    elif period == "weekly":
        first = day - timedelta(days=day.weekday())
        nxt = first + timedelta(days=7)
        year, week, _ = first.isocalendar()
        label = f"{year}-W{week:02d}"
    elif period == "monthly":
        first = day.replace(day=1)
        nxt = (first.replace(day=28) + timedelta(days=4)).replace(day=1)
        label = f"{first.year:04d}-{first.month:02d}"
    else:  # pragma: no cover - Literal exhausted
        raise ValueError(f"unknown period {period!r}")
    start, end = _local_midnight(first, tz), _local_midnight(nxt, tz)
    return Window(start, end, label)


def period_window(spec: BudgetSpec, now: datetime) -> Window:
    """``(start, end, window_id)`` of ``spec``'s period containing ``now`` (see ``Window``)."""
    return window_for(spec.period, spec.tz, now)


def _tag_matches(subject: str, *tag_sets: Mapping[str, str] | None) -> bool:
    name, _, value = subject.partition("=")
    return any(tags is not None and tags.get(name) == value for tags in tag_sets)


def matches(spec: BudgetSpec, principal: Principal, tags: Mapping[str, str] | None) -> bool:
    """Does ``spec`` apply to a request by ``principal`` carrying ``tags``?"""
    if not spec.enabled:
        return False
    if spec.tenant is not None and spec.tenant != principal.tenant:
        return False
    if spec.scope == "org":
        return True
    if spec.scope == "tenant":
        return spec.subject == principal.tenant
    if spec.scope == "user":
        return principal.user is not None and spec.subject == principal.user
    if spec.scope == "key":
        return principal.key_id is not None and spec.subject == principal.key_id
    return _tag_matches(spec.subject or "", principal.tags, tags)


def applicable(
    specs: Iterable[BudgetSpec], principal: Principal, tags: Mapping[str, str] | None = None
) -> list[BudgetSpec]:
    """Every enabled budget a request falls under — org-wide, its tenant, its user, its key and
    each tag it carries (the key's or the request's) — ordered org, tenant, user, key, tag,
    then by id. A request must fit in *all* of them."""
    chosen = [s for s in specs if matches(s, principal, tags)]
    return sorted(chosen, key=lambda s: (_SCOPE_RANK[s.scope], s.id))


class BudgetIndex:
    """``applicable`` for many budgets in time independent of their number: specs indexed
    by scope and subject (rebuild it when the budgets change; it is immutable)."""

    def __init__(self, specs: Iterable[BudgetSpec]) -> None:
        self.specs = tuple(s for s in specs if s.enabled)
        self._by: dict[tuple[str, str | None], list[BudgetSpec]] = {}
        self._tag_names: set[str] = set()
        for s in self.specs:
            self._by.setdefault((s.scope, s.subject), []).append(s)
            if s.scope == "tag":
                self._tag_names.add((s.subject or "").partition("=")[0])

    def applicable(
        self, principal: Principal, tags: Mapping[str, str] | None = None
    ) -> list[BudgetSpec]:
        """Same result as ``applicable(specs, principal, tags)``."""
        if not self.specs:
            return []
        keys: list[tuple[str, str | None]] = [("org", None), ("tenant", principal.tenant)]
        if principal.user is not None:
            keys.append(("user", principal.user))
        if principal.key_id is not None:
            keys.append(("key", principal.key_id))
        seen: set[str] = set()
        for name in self._tag_names:
            for source in (principal.tags, tags):
                value = source.get(name) if source else None
                if value is not None and f"{name}={value}" not in seen:
                    seen.add(f"{name}={value}")
                    keys.append(("tag", f"{name}={value}"))
        out = [
            s
            for k in keys
            for s in self._by.get(k, ())
            if s.tenant is None or s.tenant == principal.tenant
        ]
        return sorted(out, key=lambda s: (_SCOPE_RANK[s.scope], s.id))


def soft_allowance(specs: Iterable[BudgetSpec], *, critical: bool) -> dict[str, float]:
    """The ``allow_over`` map for a reservation: each ``soft`` budget's multiplier for a
    critical-priority request, nothing for others."""
    if not critical:
        return {}
    return {s.id: s.soft_multiplier for s in specs if s.policy == "soft"}
