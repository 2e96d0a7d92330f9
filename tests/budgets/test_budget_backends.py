"""Reservation and settlement arithmetic, expiry, soft allowance and period resets — the same
contract checked on the in-process backend and on the Redis backend (real Redis)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.budgets.budget_support import open_backend, spec
from tests.redisx import redis_prefix
from thrifty.budgets import (
    BudgetSpec,
    InProcessBudgetBackend,
    headroom,
    period_window,
)

__all__ = ["redis_prefix"]


@pytest.fixture(params=["memory", "redis"])
def backend_kind(request: pytest.FixtureRequest) -> tuple[str, str]:
    """``(kind, redis prefix)``: Redis is only required by the ``redis`` variants."""
    prefix = request.getfixturevalue("redis_prefix") if request.param == "redis" else ""
    return request.param, prefix


@pytest.fixture
async def backend(backend_kind: tuple[str, str]) -> AsyncIterator[Any]:
    async with open_backend(*backend_kind) as b:
        yield b


async def test_reserve_settle_release_arithmetic(backend: Any) -> None:
    a = spec("a", limit_usd=1.0, limit_tokens=1000)
    refs = [(a, "w")]
    r = await backend.reserve("r1", refs, 0.4, 300, 30)
    assert r.ok and r.cost_micros == 400_000 and not r.flagged
    assert (r.usage[0].reserved_micros, r.usage[0].reserved_tokens) == (400_000, 300)
    s = await backend.settle("r1", 0.123456, 250)
    assert (s.status, s.reserved_micros, s.actual_micros, s.actual_tokens) == (
        "settled", 400_000, 123_456, 250)  # fmt: skip
    assert not s.overrun
    u = await backend.usage(a, "w")
    assert (u.spent_micros, u.reserved_micros, u.spent_tokens, u.reserved_tokens) == (
        123_456, 0, 250, 0)  # fmt: skip
    assert (await backend.reserve("r2", refs, 0.5, 10, 30)).ok
    rel = await backend.release("r2")
    assert rel.status == "released" and rel.actual_micros == 0
    assert (await backend.usage(a, "w")).reserved_micros == 0
    left = await backend.remaining(a, "w")
    assert (left.micros, left.tokens, left.usd) == (876_544, 750, 0.876544)
    assert (await backend.release("r2")).status == "unknown"
    assert (await backend.settle("never", 1, 1)).status == "unknown"


async def test_sub_micro_amounts_round_up_and_decimal_amounts_do_not_drift(backend: Any) -> None:
    a = spec("a", limit_usd=1.0)
    for i in range(10):  # 0.1 ten times is exactly 1.0 here; float sums would drift past it
        assert (await backend.reserve(f"r{i}", [(a, "w")], 0.1, 0, 30)).ok, i
    assert not (await backend.reserve("r10", [(a, "w")], 0.000_000_1, 0, 30)).ok  # rounds up to 1µ$
    for i in range(10):
        await backend.settle(f"r{i}", 0.1, 0)
    assert (await backend.usage(a, "w")).spent_micros == 1_000_000


async def test_all_or_none_and_refusal_names_the_budget(backend: Any) -> None:
    org, team = spec("org", limit_usd=10.0), spec("team", scope="tenant", limit_usd=1.0)
    refs = [(org, "w"), (team, "w")]
    assert (await backend.reserve("a", refs, 0.75, 0, 30)).ok
    r = await backend.reserve("b", refs, 0.5, 0, 30)
    assert not r.ok and r.refused is not None
    assert (r.refused.budget.id, r.refused.dimension, r.refused.remaining) == (
        "team",
        "usd",
        250_000,
    )
    assert r.refused.requested == 500_000 and r.refused.remaining_usd == 0.25
    assert (await backend.usage(org, "w")).reserved_micros == 750_000  # nothing taken from org
    # Token limits refuse the same way.
    tok = spec("tok", limit_tokens=100)
    assert (await backend.reserve("c", [(tok, "w")], 0, 80, 30)).ok
    r = await backend.reserve("d", [(org, "w"), (tok, "w")], 0, 30, 30)
    assert r.refused is not None and (r.refused.budget.id, r.refused.dimension) == ("tok", "tokens")
    assert r.refused.remaining == 20
    # The same budget listed twice is charged once.
    r = await backend.reserve("e", [(org, "w"), (org, "w")], 1.0, 0, 30)
    assert r.ok and len(r.usage) == 1
    assert (await backend.usage(org, "w")).reserved_micros == 1_750_000


async def test_duplicate_request_id_is_an_error(backend: Any) -> None:
    a = spec("a")
    assert (await backend.reserve("dup", [(a, "w")], 0.1, 0, 30)).ok
    with pytest.raises(ValueError, match="already holds"):
        await backend.reserve("dup", [(a, "w")], 0.1, 0, 30)
    await backend.release("dup")
    assert (await backend.reserve("dup", [(a, "w")], 0.1, 0, 30)).ok


async def test_overrun_is_recorded_and_reported(backend: Any) -> None:
    a = spec("a", limit_usd=1.0)
    await backend.reserve("r", [(a, "w")], 0.1, 5, 30)
    s = await backend.settle("r", 0.3, 9)
    assert s.overrun and s.actual_micros == 300_000
    assert (await backend.usage(a, "w")).spent_micros == 300_000


async def test_reservations_expire_and_a_late_settle_still_records(backend: Any) -> None:
    a = spec("a", limit_usd=1.0)
    assert (await backend.reserve("dies", [(a, "w")], 0.9, 0, 0.05)).ok
    assert (await backend.reserve("late", [(a, "w")], 0.1, 0, 0.05)).ok
    assert not (await backend.reserve("x", [(a, "w")], 0.5, 0, 30)).ok
    await asyncio.sleep(0.12)
    u = await backend.usage(a, "w")
    assert u.reserved_micros == 0  # purged on read
    assert (await backend.reserve("y", [(a, "w")], 0.5, 0, 30)).ok  # room again
    s = await backend.settle("late", 0.05, 0)
    assert s.status == "late" and s.actual_micros == 50_000
    u = await backend.usage(a, "w")
    assert (u.spent_micros, u.reserved_micros) == (50_000, 500_000)
    assert (await backend.release("dies")).status == "late"  # expired: nothing to release


async def test_soft_allowance_goes_past_the_limit_up_to_the_multiplier(backend: Any) -> None:
    a = spec("a", limit_usd=1.0, policy="soft", soft_multiplier=2.0)
    assert (await backend.reserve("n1", [(a, "w")], 0.8, 0, 30)).ok
    normal = await backend.reserve("n2", [(a, "w")], 0.5, 0, 30)
    assert not normal.ok and normal.refused is not None and normal.refused.multiplier == 1.0
    crit = await backend.reserve("c1", [(a, "w")], 0.5, 0, 30, allow_over={"a": 2.0})
    assert crit.ok and crit.over_limit == ("a",)
    crit2 = await backend.reserve("c2", [(a, "w")], 0.8, 0, 30, allow_over={"a": 2.0})
    assert not crit2.ok and crit2.refused is not None
    assert (crit2.refused.cap, crit2.refused.remaining) == (2_000_000, 700_000)
    assert (await backend.remaining(a, "w")).micros == 0  # never negative


async def test_headroom_is_the_least_left(backend: Any) -> None:
    a, b = spec("a", limit_usd=5.0), spec("b", limit_usd=2.0, limit_tokens=900)
    await backend.reserve("r", [(a, "w"), (b, "w")], 1.5, 100, 30)
    h = await headroom(backend, [(a, "w"), (b, "w")])
    assert (h.micros, h.tokens) == (500_000, 800)
    ua, ub, other = await backend.usages([(a, "w"), (b, "w"), (a, "other")])
    assert (ua.budget_id, ua.reserved_micros, ub.reserved_tokens) == ("a", 1_500_000, 100)
    assert (other.window_id, other.reserved_micros) == ("other", 0)
    assert await backend.usages([]) == []


async def test_reset_zeroes_spend_but_keeps_live_reservations(backend: Any) -> None:
    a = spec("a", limit_usd=1.0)
    await backend.reserve("r1", [(a, "w")], 0.5, 0, 30)
    await backend.settle("r1", 0.5, 0)
    await backend.reserve("r2", [(a, "w")], 0.25, 0, 30)
    before = await backend.reset(a, "w")
    assert (before.spent_micros, before.reserved_micros) == (500_000, 250_000)
    u = await backend.usage(a, "w")
    assert (u.spent_micros, u.reserved_micros) == (0, 250_000)


async def test_a_new_period_starts_from_zero(backend: Any) -> None:
    daily = BudgetSpec(id="d", scope="org", period="daily", timezone="Europe/Paris", limit_usd=1.0)
    t1 = datetime(2024, 3, 30, 22, 59, tzinfo=UTC)  # 23:59 in Paris
    t2 = t1 + timedelta(minutes=2)  # 00:01 on the 31st (the night clocks go forward)
    w1, w2 = period_window(daily, t1).window_id, period_window(daily, t2).window_id
    assert (w1, w2) == ("2024-03-30", "2024-03-31")
    await backend.reserve("r", [(daily, w1)], 1.0, 0, 30)
    await backend.settle("r", 1.0, 0)
    assert not (await backend.reserve("s", [(daily, w1)], 0.01, 0, 30)).ok
    assert (await backend.reserve("s", [(daily, w2)], 1.0, 0, 30)).ok


async def test_in_process_expiry_follows_an_injected_clock() -> None:
    now = [1000.0]
    b = InProcessBudgetBackend(clock=lambda: now[0], late_grace_s=60)
    a = spec("a", limit_usd=1.0)
    assert (await b.reserve("r", [(a, "w")], 1.0, 0, ttl_s=10)).ok
    now[0] += 9.99
    assert not (await b.reserve("s", [(a, "w")], 0.5, 0, 10)).ok
    now[0] += 0.02
    assert (await b.reserve("s", [(a, "w")], 0.5, 0, 10)).ok
    now[0] += 61 + 10  # past the grace: a settle this late is unknown
    assert (await b.settle("r", 0.1, 0)).status == "unknown"


def test_invalid_arguments() -> None:
    b = InProcessBudgetBackend()
    a = spec("a")
    for kwargs in ({"cost_usd": -1}, {"tokens": -1}, {"ttl_s": 0}, {"request_id": ""}):
        args: dict[str, Any] = {"request_id": "r", "budgets": [(a, "w")], "cost_usd": 0.1,
                                "tokens": 1, "ttl_s": 5} | kwargs  # fmt: skip
        with pytest.raises(ValueError):
            asyncio.run(b.reserve(**args))
    with pytest.raises(ValueError):
        asyncio.run(b.reserve("r", [(a, "w")], 0.1, 0, 5, allow_over={"a": 0.5}))
    started = time.perf_counter()
    assert asyncio.run(b.reserve("r", [], 0.1, 0, 5)).ok  # no budget applies: nothing to hold
    assert time.perf_counter() - started < 1
