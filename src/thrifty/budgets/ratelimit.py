"""Rate limits: requests per minute and tokens per minute per key / user / tenant / deployment.

The algorithm is GCRA (the generic cell rate algorithm, a leaky bucket kept as a single number
per subject): with ``rate = limit / period`` the *emission interval* is ``T = period / limit``
and the state is the *theoretical arrival time* ``TAT``. A request costing ``c`` units at time
``now`` computes ``new = max(TAT, now) + c*T``; it is allowed when ``new - now <= period``
(a full bucket lets ``limit`` units through at once, then ``limit`` per period), and then
``TAT = new``. Otherwise it is refused with ``retry_after = new - period - now``. A request
costing more than ``limit`` can never pass (``RateDecision.impossible``).

``charge(subject, cost)`` applies a cost unconditionally (positive: tokens used beyond the
estimate; negative: a refund of an over-estimate, never below an empty bucket). Tokens per
minute are typically checked with the request's upper bound and corrected with ``charge``.

``InProcessRateLimiter`` keeps TATs in memory (per replica); ``RedisRateLimiter`` runs the same
arithmetic as one Lua script per call on the Redis server clock (microseconds), so every
replica shares one bucket. Redis failures follow ``FailurePolicy``: ``fail_open`` (the default
for rate limits) decides on the local limiter and flags the decision, ``fail_closed`` raises
``BudgetStateUnavailable``.

Provider quotas learned from upstream headers live in ``thrifty.budgets.quota`` and are
re-exported here.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from thrifty.budgets.backend import BudgetStateUnavailable, FailurePolicy
from thrifty.budgets.quota import (
    QuotaEvent,
    QuotaTracker,
    QuotaWindow,
    parse_go_duration,
    parse_rate_limit_headers,
)
from thrifty.budgets.redis_backend import UNAVAILABLE_ERRORS

__all__ = [
    "InProcessRateLimiter",
    "QuotaEvent",
    "QuotaTracker",
    "QuotaWindow",
    "Rate",
    "RateDecision",
    "RedisRateLimiter",
    "parse_go_duration",
    "parse_rate_limit_headers",
]

log = logging.getLogger("thrifty.ratelimit")


@dataclass(frozen=True, slots=True)
class Rate:
    """``limit`` units (requests or tokens) per ``period_s`` seconds."""

    limit: int
    period_s: float = 60.0

    def __post_init__(self) -> None:
        if self.limit <= 0 or not self.period_s > 0:
            raise ValueError(f"a rate needs limit > 0 and period_s > 0 (got {self})")

    @property
    def interval_s(self) -> float:
        return self.period_s / self.limit


@dataclass(frozen=True, slots=True)
class RateDecision:
    """``allowed``; ``retry_after_s`` (0 when allowed) until the same request would pass;
    ``remaining``: units that would pass right now after this decision; ``reset_after_s``:
    until the bucket is full again. ``impossible``: the cost exceeds the limit itself (then
    ``retry_after_s`` is the period: retrying cannot help). ``flagged``: decided locally
    because the shared state was unreachable."""

    allowed: bool
    retry_after_s: float
    remaining: int
    limit: int
    reset_after_s: float = 0.0
    impossible: bool = False
    flagged: bool = False


def gcra(
    tat: float | None, now: float, rate: Rate, cost: float, *, force: bool = False
) -> tuple[RateDecision, float]:
    """One GCRA step (pure): the decision and the new TAT (unchanged when refused)."""
    t = rate.interval_s
    base = now if tat is None or tat < now else tat
    new = max(now, base + cost * t)
    if not force:
        if cost > rate.limit:
            d = RateDecision(
                False,
                rate.period_s,
                _left(base, now, rate),
                rate.limit,
                base - now,
                impossible=True,
            )
            return d, base
        if new - now > rate.period_s + 1e-9:
            retry = new - rate.period_s - now
            return RateDecision(False, retry, _left(base, now, rate), rate.limit, base - now), base
    return RateDecision(True, 0.0, _left(new, now, rate), rate.limit, new - now), new


def _left(tat: float, now: float, rate: Rate) -> int:
    return max(0, math.floor((rate.period_s - (tat - now)) / rate.interval_s + 1e-9))


class InProcessRateLimiter:
    """GCRA in memory. Synchronous critical sections (atomic within an event loop)."""

    def __init__(
        self,
        rate: Rate | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_subjects: int = 100_000,
    ) -> None:
        self.rate = rate
        self._clock = clock
        self._tat: dict[str, float] = {}
        self._max = max_subjects

    def _rate(self, rate: Rate | None) -> Rate:
        r = rate or self.rate
        if r is None:
            raise ValueError("no rate given and no default rate")
        return r

    def check_now(
        self, subject: str, cost: float = 1, rate: Rate | None = None, *, force: bool = False
    ) -> RateDecision:
        now = self._clock()
        decision, tat = gcra(self._tat.get(subject), now, self._rate(rate), cost, force=force)
        if tat > now:
            self._tat[subject] = tat
        else:
            self._tat.pop(subject, None)
        if len(self._tat) > self._max:
            for k in [k for k, v in self._tat.items() if v <= now]:
                del self._tat[k]
        return decision

    async def check(self, subject: str, cost: float = 1, rate: Rate | None = None) -> RateDecision:
        """Take ``cost`` units from ``subject``'s bucket if they fit."""
        return self.check_now(subject, cost, rate)

    async def charge(self, subject: str, cost: float, rate: Rate | None = None) -> RateDecision:
        """Apply ``cost`` (negative: refund) unconditionally."""
        return self.check_now(subject, cost, rate, force=True)


# KEYS: bucket.  ARGV: interval_us, period_us, cost, 'check' | 'charge', limit.
# Returns {allowed, retry_after_us, remaining, reset_after_us} (microseconds, truncated).
GCRA_LUA = r"""
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local iv, period, cost = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local limit = tonumber(ARGV[5])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local function left(x) return math.max(0, math.floor((period - (x - now)) / iv + 1e-9)) end
local new = math.max(now, tat + cost * iv)
if ARGV[4] == 'check' then
  if cost > limit then return {0, -1, left(tat), tat - now} end
  if new - now > period + 1 then return {0, new - period - now, left(tat), tat - now} end
end
if new > now then
  redis.call('SET', KEYS[1], string.format('%.0f', new), 'PX', math.ceil((new - now) / 1000) + 1)
else
  redis.call('DEL', KEYS[1])
end
return {1, 0, left(new), new - now}
"""


class RedisRateLimiter:
    """GCRA shared through Redis (one atomic script per call, under ``timeout_s``)."""

    def __init__(
        self,
        client: Any,
        prefix: str = "thrifty",
        rate: Rate | None = None,
        *,
        timeout_s: float = 0.25,
        failure: FailurePolicy | str = FailurePolicy.FAIL_OPEN,
        fallback: InProcessRateLimiter | None = None,
        cooldown_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._r = client
        self._base = f"{prefix}:rl:"
        self.rate = rate
        self.timeout_s = timeout_s
        self.failure = FailurePolicy(failure)
        self.fallback = fallback or InProcessRateLimiter(rate, clock=clock)
        self.cooldown_s = cooldown_s
        self._clock = clock
        self._down_until = 0.0
        self._script = client.register_script(GCRA_LUA)
        self.errors = 0

    async def _run(self, subject: str, cost: float, rate: Rate | None, mode: str) -> RateDecision:
        r = rate or self.rate
        if r is None:
            raise ValueError("no rate given and no default rate")
        try:
            if self._clock() < self._down_until:
                raise TimeoutError("in cooldown after a failure")
            args = [
                repr(r.interval_s * 1e6),
                repr(r.period_s * 1e6),
                repr(float(cost)),
                mode,
                r.limit,
            ]
            async with asyncio.timeout(self.timeout_s):
                raw = await self._script(keys=[self._base + subject], args=args, client=self._r)
        except UNAVAILABLE_ERRORS as exc:
            if self._clock() >= self._down_until:
                self.errors += 1
                self._down_until = self._clock() + self.cooldown_s
                log.warning("rate limit state (redis) unavailable: %r", exc)
            if self.failure is FailurePolicy.FAIL_CLOSED:
                raise BudgetStateUnavailable(
                    f"rate limit state unavailable: Redis could not be reached ({exc!r})"
                ) from None
            d = self.fallback.check_now(subject, cost, r, force=mode == "charge")
            return RateDecision(
                d.allowed,
                d.retry_after_s,
                d.remaining,
                d.limit,
                d.reset_after_s,
                d.impossible,
                flagged=True,
            )
        allowed, retry_us, left, reset_us = (int(x) for x in raw)
        if retry_us < 0:
            return RateDecision(False, r.period_s, left, r.limit, reset_us / 1e6, impossible=True)
        return RateDecision(bool(allowed), retry_us / 1e6, left, r.limit, reset_us / 1e6)

    async def check(self, subject: str, cost: float = 1, rate: Rate | None = None) -> RateDecision:
        """Take ``cost`` units from ``subject``'s shared bucket if they fit."""
        return await self._run(subject, cost, rate, "check")

    async def charge(self, subject: str, cost: float, rate: Rate | None = None) -> RateDecision:
        """Apply ``cost`` (negative: refund) unconditionally."""
        return await self._run(subject, cost, rate, "charge")
