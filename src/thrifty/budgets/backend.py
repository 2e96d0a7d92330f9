"""The budget state seam: reserve before dispatch, settle after, release on failure.

Contract of every ``BudgetBackend`` (the in-process one here, ``RedisBudgetBackend``):

- ``reserve(request_id, budgets, cost_usd, tokens, ttl_s, allow_over)`` is **atomic across all
  the budgets given**: for each (budget, window) it checks
  ``spent + reserved + this <= cap`` for every limit the budget has (USD and tokens), where
  ``cap`` is the limit, times ``allow_over[budget.id]`` when the caller allows this request past
  a soft budget. Either the amounts are reserved on *all* of them or on *none*, and a refusal
  names the first budget that did not fit with what it had left.
- ``settle(request_id, actual_cost_usd, actual_tokens)`` turns the reservation into spend:
  ``spent += actual`` and the reservation is released. The caller guarantees the reservation
  was a true worst case; if ``actual`` is larger it is recorded anyway and reported
  (``SettleResult.overrun``), never silently dropped.
- ``release(request_id)`` drops a reservation without spend (the request failed upstream).
- A reservation not settled or released within ``ttl_s`` expires (its request is presumed
  dead) and stops counting. Expired reservations are purged before every check and read. A
  settle arriving after expiry still records its spend (``status == "late"``) for
  ``late_grace_s``.

**Invariant** (what the property tests check): with every reservation a true worst case,
``spent + reserved <= limit`` for every budget and window at every instant, and
``<= limit * m`` only when requests were allowed over it with multiplier ``m``. Because
``spent`` only grows by settled actuals that were reserved, ``spent <= limit`` always holds.

Amounts are integers (micro-dollars, tokens), see ``thrifty.budgets.model``.
"""

from __future__ import annotations

import heapq
import itertools
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Literal, Protocol

from thrifty.budgets.model import BudgetSpec, usd_to_micros
from thrifty.budgets.results import (
    BudgetUsage,
    Refusal,
    Remaining,
    ReserveResult,
    SettleResult,
    remaining_of,
)
from thrifty.errors import ServiceUnavailableError

BudgetRef = tuple[BudgetSpec, str]
"""A budget and the ``window_id`` of the period being charged (``period_window(...)[2]``)."""
Amount = float | int | Decimal


class FailurePolicy(StrEnum):
    """What a shared backend does when its state (Redis) is unreachable."""

    FAIL_CLOSED = "fail_closed"  # refuse: BudgetStateUnavailable, mapped to 503
    FAIL_OPEN = "fail_open"  # continue on local counters; results are flagged


class BudgetStateUnavailable(ServiceUnavailableError):
    """The shared budget state could not be read or written in time (``fail_closed``)."""

    code = "budget_state_unavailable"


class BudgetBackend(Protocol):
    """See the module docstring for the contract."""

    async def reserve(
        self,
        request_id: str,
        budgets: Sequence[BudgetRef],
        cost_usd: Amount,
        tokens: int,
        ttl_s: float,
        allow_over: Mapping[str, float] | None = None,
    ) -> ReserveResult: ...

    async def settle(
        self, request_id: str, actual_cost_usd: Amount, actual_tokens: int
    ) -> SettleResult: ...

    async def release(self, request_id: str) -> SettleResult: ...

    async def usage(self, budget: BudgetSpec, window_id: str) -> BudgetUsage: ...

    async def usages(self, budgets: Sequence[BudgetRef]) -> list[BudgetUsage]:
        """Several budgets' counters at once (one round trip when shared)."""
        ...

    async def remaining(self, budget: BudgetSpec, window_id: str) -> Remaining: ...

    async def reset(self, budget: BudgetSpec, window_id: str) -> BudgetUsage: ...

    async def aclose(self) -> None: ...


def dedupe(budgets: Iterable[BudgetRef]) -> list[BudgetRef]:
    """The budgets once each (by id and window), in the order given."""
    seen: set[tuple[str, str]] = set()
    out: list[BudgetRef] = []
    for spec, window in budgets:
        if (spec.id, window) not in seen:
            seen.add((spec.id, window))
            out.append((spec, window))
    return out


def check_amounts(request_id: str, cost_usd: Amount, tokens: int, ttl_s: float) -> int:
    """Validate reserve arguments; returns the cost in micro-dollars (rounded up)."""
    if not request_id:
        raise ValueError("request_id must be non-empty")
    if tokens < 0:
        raise ValueError(f"tokens must be >= 0 (got {tokens})")
    if not ttl_s > 0:
        raise ValueError(f"ttl_s must be > 0 (got {ttl_s})")
    return usd_to_micros(cost_usd)


def over_limit(budgets: Sequence[BudgetRef], usage: Sequence[BudgetUsage]) -> tuple[str, ...]:
    out = []
    for (spec, _), u in zip(budgets, usage, strict=True):
        cap_m, cap_t = spec.caps()
        if (cap_m is not None and u.spent_micros + u.reserved_micros > cap_m) or (
            cap_t is not None and u.spent_tokens + u.reserved_tokens > cap_t
        ):
            out.append(spec.id)
    return tuple(out)


@dataclass(slots=True)
class _Counter:
    spent_m: int = 0
    spent_t: int = 0
    res_m: int = 0
    res_t: int = 0


@dataclass(slots=True)
class _Reservation:
    keys: tuple[tuple[str, str], ...]
    micros: int
    tokens: int
    expires_at: float
    seq: int
    expired_at: float | None = None


class InProcessBudgetBackend:
    """Budget state in this process's memory. Every method's critical section runs without an
    ``await``, so it is atomic with respect to other tasks of the event loop (do not share an
    instance between threads). ``clock`` (monotonic seconds) drives expiry; tests inject one."""

    def __init__(
        self, *, clock: Callable[[], float] = time.monotonic, late_grace_s: float = 86_400.0
    ) -> None:
        self._clock = clock
        self._late_grace_s = late_grace_s
        self._counters: dict[tuple[str, str], _Counter] = {}
        self._live: dict[str, _Reservation] = {}
        self._expired: dict[str, _Reservation] = {}
        self._heap: list[tuple[float, int, str]] = []
        self._seq = itertools.count()

    # -- internals (synchronous: no awaits, hence atomic) ------------------------------------

    def _counter(self, key: tuple[str, str]) -> _Counter:
        c = self._counters.get(key)
        if c is None:
            c = self._counters[key] = _Counter()
        return c

    def purge(self) -> int:
        """Release every expired reservation now; returns how many."""
        now = self._clock()
        n = 0
        while self._heap and self._heap[0][0] <= now:
            _, seq, rid = heapq.heappop(self._heap)
            r = self._live.get(rid)
            if r is None or r.seq != seq:
                continue  # settled or released already (lazy deletion)
            del self._live[rid]
            for key in r.keys:
                c = self._counter(key)
                c.res_m -= r.micros
                c.res_t -= r.tokens
            r.expired_at = now
            self._expired[rid] = r
            n += 1
        if self._expired:
            stale = [
                k
                for k, r in self._expired.items()
                if now - (r.expired_at or now) > self._late_grace_s
            ]
            for k in stale:
                del self._expired[k]
        return n

    def _usage(self, key: tuple[str, str]) -> BudgetUsage:
        c = self._counters.get(key) or _Counter()
        return BudgetUsage(key[0], key[1], c.spent_m, c.res_m, c.spent_t, c.res_t)

    def reserve_now(
        self,
        request_id: str,
        budgets: Sequence[BudgetRef],
        cost_micros: int,
        tokens: int,
        ttl_s: float,
        allow_over: Mapping[str, float] | None = None,
    ) -> ReserveResult:
        """``reserve`` with the cost already in micro-dollars (synchronous, atomic)."""
        self.purge()
        if request_id in self._live:
            raise ValueError(f"request {request_id!r} already holds a reservation")
        refs = dedupe(budgets)
        allow = allow_over or {}
        zero = _Counter()
        dim: Literal["usd", "tokens"]
        for spec, window in refs:
            c = self._counters.get((spec.id, window), zero)
            mult = allow.get(spec.id, 1.0)
            cap_m, cap_t = spec.caps(mult)
            used_m, used_t = c.spent_m + c.res_m, c.spent_t + c.res_t
            if cap_m is not None and used_m + cost_micros > cap_m:
                dim, cap, used, asked = "usd", cap_m, used_m, cost_micros
            elif cap_t is not None and used_t + tokens > cap_t:
                dim, cap, used, asked = "tokens", cap_t, used_t, tokens
            else:
                continue
            u = self._usage((spec.id, window))
            refusal = Refusal(spec, window, dim, cap, mult, max(0, cap - used), asked, u)
            return ReserveResult(False, request_id, cost_micros, tokens, refusal, (u,))
        keys = tuple((spec.id, window) for spec, window in refs)
        for key in keys:
            c = self._counter(key)
            c.res_m += cost_micros
            c.res_t += tokens
        seq = next(self._seq)
        expires = self._clock() + ttl_s
        self._live[request_id] = _Reservation(keys, cost_micros, tokens, expires, seq)
        self._expired.pop(request_id, None)
        heapq.heappush(self._heap, (expires, seq, request_id))
        after = tuple(self._usage(k) for k in keys)
        return ReserveResult(
            True, request_id, cost_micros, tokens, None, after, over_limit(refs, after)
        )

    def finish_now(
        self, request_id: str, actual_micros: int, actual_tokens: int, *, settle: bool
    ) -> SettleResult:
        """Settle (``settle=True``) or release a reservation (synchronous, atomic)."""
        if actual_micros < 0 or actual_tokens < 0:
            raise ValueError("actual amounts must be >= 0")
        self.purge()
        r = self._live.pop(request_id, None)
        status: Literal["settled", "released", "late"]
        if r is not None:
            status = "settled" if settle else "released"
        else:
            r = self._expired.pop(request_id, None)
            if r is None:
                return SettleResult("unknown", request_id)
            status = "late"
        for key in r.keys:
            c = self._counter(key)
            if status != "late":
                c.res_m -= r.micros
                c.res_t -= r.tokens
            if settle:
                c.spent_m += actual_micros
                c.spent_t += actual_tokens
        if not settle:
            actual_micros = actual_tokens = 0
        return SettleResult(status, request_id, r.micros, r.tokens, actual_micros, actual_tokens)

    def record_spend(self, budgets: Iterable[BudgetRef], micros: int, tokens: int) -> None:
        """Add spend unconditionally (spend that already happened: a settle that could not
        reach the shared state under ``fail_open``)."""
        for spec, window in dedupe(budgets):
            c = self._counter((spec.id, window))
            c.spent_m += micros
            c.spent_t += tokens

    def seed(self, usage: BudgetUsage) -> None:
        """Raise a counter's spend to at least ``usage``'s spent + reserved (the last state seen
        in the shared store), so local decisions start from what was known to be used."""
        c = self._counter((usage.budget_id, usage.window_id))
        c.spent_m = max(c.spent_m, usage.spent_micros + usage.reserved_micros)
        c.spent_t = max(c.spent_t, usage.spent_tokens + usage.reserved_tokens)

    def holds(self, request_id: str) -> bool:
        return request_id in self._live or request_id in self._expired

    # -- the async contract ------------------------------------------------------------------

    async def reserve(
        self,
        request_id: str,
        budgets: Sequence[BudgetRef],
        cost_usd: Amount,
        tokens: int,
        ttl_s: float,
        allow_over: Mapping[str, float] | None = None,
    ) -> ReserveResult:
        micros = check_amounts(request_id, cost_usd, tokens, ttl_s)
        return self.reserve_now(request_id, budgets, micros, tokens, ttl_s, allow_over)

    async def settle(
        self, request_id: str, actual_cost_usd: Amount, actual_tokens: int
    ) -> SettleResult:
        return self.finish_now(
            request_id, usd_to_micros(actual_cost_usd), actual_tokens, settle=True
        )

    async def release(self, request_id: str) -> SettleResult:
        return self.finish_now(request_id, 0, 0, settle=False)

    async def usage(self, budget: BudgetSpec, window_id: str) -> BudgetUsage:
        self.purge()
        return self._usage((budget.id, window_id))

    async def usages(self, budgets: Sequence[BudgetRef]) -> list[BudgetUsage]:
        self.purge()
        return [self._usage((spec.id, window)) for spec, window in budgets]

    async def remaining(self, budget: BudgetSpec, window_id: str) -> Remaining:
        return remaining_of(budget, await self.usage(budget, window_id))

    async def reset(self, budget: BudgetSpec, window_id: str) -> BudgetUsage:
        """Zero the spend of one window (live reservations keep counting); returns the usage
        before the reset."""
        self.purge()
        before = self._usage((budget.id, window_id))
        c = self._counter((budget.id, window_id))
        c.spent_m = c.spent_t = 0
        return before

    async def aclose(self) -> None:
        return None


async def headroom(
    backend: BudgetBackend,
    budgets: Sequence[BudgetRef],
    allow_over: Mapping[str, float] | None = None,
) -> Remaining:
    """The least left across ``budgets`` (per dimension; ``None`` where none has a limit): what
    a request could still reserve, e.g. to choose ``max_tokens`` for a request that sent none.
    Advisory only — the reservation that follows is the atomic check."""
    micros: int | None = None
    tokens: int | None = None
    allow = allow_over or {}
    refs = dedupe(budgets)
    for (spec, _), u in zip(refs, await backend.usages(refs), strict=True):
        r = remaining_of(spec, u, allow.get(spec.id, 1.0))
        if r.micros is not None:
            micros = r.micros if micros is None else min(micros, r.micros)
        if r.tokens is not None:
            tokens = r.tokens if tokens is None else min(tokens, r.tokens)
    return Remaining(micros, tokens)
