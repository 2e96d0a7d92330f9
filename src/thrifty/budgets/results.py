"""What budget backends return: counters, what is left, refusals, reservation and settlement
results. Amounts are integers: micro-dollars (``*_micros``) and tokens."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from thrifty.budgets.model import BudgetSpec, micros_to_usd


@dataclass(frozen=True, slots=True)
class BudgetUsage:
    """One budget window's counters: spend recorded and amounts held by live reservations."""

    budget_id: str
    window_id: str
    spent_micros: int = 0
    reserved_micros: int = 0
    spent_tokens: int = 0
    reserved_tokens: int = 0

    @property
    def spent_usd(self) -> float:
        return micros_to_usd(self.spent_micros)

    @property
    def reserved_usd(self) -> float:
        return micros_to_usd(self.reserved_micros)


@dataclass(frozen=True, slots=True)
class Remaining:
    """What is left under a budget's limit (not counting any soft multiplier) after spend and
    live reservations; ``None`` for a dimension without a limit. Never negative."""

    micros: int | None
    tokens: int | None

    @property
    def usd(self) -> float | None:
        return None if self.micros is None else micros_to_usd(self.micros)


def remaining_of(spec: BudgetSpec, usage: BudgetUsage, multiplier: float = 1.0) -> Remaining:
    cap_m, cap_t = spec.caps(multiplier)
    used_m = usage.spent_micros + usage.reserved_micros
    used_t = usage.spent_tokens + usage.reserved_tokens
    return Remaining(
        None if cap_m is None else max(0, cap_m - used_m),
        None if cap_t is None else max(0, cap_t - used_t),
    )


@dataclass(frozen=True, slots=True)
class Refusal:
    """The budget that did not fit: ``dimension`` is ``usd`` or ``tokens``; ``cap`` the cap
    applied (limit * multiplier, micro-dollars or tokens); ``remaining`` what was left of the
    cap; ``requested`` what the request asked for, in the same unit."""

    budget: BudgetSpec
    window_id: str
    dimension: Literal["usd", "tokens"]
    cap: int
    multiplier: float
    remaining: int
    requested: int
    usage: BudgetUsage

    @property
    def remaining_usd(self) -> float | None:
        return micros_to_usd(self.remaining) if self.dimension == "usd" else None


@dataclass(frozen=True, slots=True)
class ReserveResult:
    """``ok``: reserved on every budget given. ``usage``: each budget's counters after the
    reservation when ok; on a refusal, the refusing budget's counters as checked.
    ``over_limit``: ids of budgets now past their base limit (only possible through
    ``allow_over``). ``flagged``: decided on local counters because the shared state was
    unreachable (``fail_open``)."""

    ok: bool
    request_id: str
    cost_micros: int
    tokens: int
    refused: Refusal | None = None
    usage: tuple[BudgetUsage, ...] = ()
    over_limit: tuple[str, ...] = ()
    flagged: bool = False


@dataclass(frozen=True, slots=True)
class SettleResult:
    """``status``: ``settled`` / ``released``; ``late`` when the reservation had expired (the
    spend is still recorded on settle); ``unknown`` when there was no such reservation (nothing
    recorded). ``overrun``: the actual exceeded what was reserved (recorded anyway)."""

    status: Literal["settled", "released", "late", "unknown"]
    request_id: str
    reserved_micros: int = 0
    reserved_tokens: int = 0
    actual_micros: int = 0
    actual_tokens: int = 0
    flagged: bool = False

    @property
    def overrun(self) -> bool:
        return (
            self.actual_micros > self.reserved_micros or self.actual_tokens > self.reserved_tokens
        )
