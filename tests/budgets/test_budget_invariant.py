"""Budgets are never overrun.

Property-based (hypothesis): random *concurrent* mixes of requests — random worst-case costs
and token counts, actuals at most the reservation, random settles, releases and requests that
die (their reservations expire), on several overlapping budgets with USD and token limits and
critical requests allowed past soft budgets — checked by a watcher that reads every budget
throughout the run: ``spent <= spent + reserved <= limit`` always (``<= limit * multiplier``
where critical requests were allowed over a soft budget), and at the end the spend recorded
is exactly the sum of the settled actuals and nothing stays reserved. A second property runs
sequential mixes against a reference model, so neither backend refuses what fits.

Both properties run on the in-process backend and on the Redis backend (real Redis).
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tests.budgets.budget_support import open_backend
from tests.redisx import redis_prefix
from thrifty.budgets import BudgetSpec, InProcessBudgetBackend

__all__ = ["redis_prefix"]
WINDOW = "2024-06"


@dataclass(frozen=True)
class Req:
    budgets: tuple[int, ...]
    cents: int  # worst-case cost in cents
    tokens: int
    critical: bool
    outcome: str  # settle | release | die
    pct: int  # actual = worst case * pct / 100 (<= the reservation)
    yields: tuple[int, int]


def _budget(i: int, cents: int, tokens: int | None, soft: float | None) -> BudgetSpec:
    return BudgetSpec(
        id=f"b{i}",
        scope="org",
        limit_usd=cents / 100,
        limit_tokens=tokens,
        policy="soft" if soft else "reject",
        soft_multiplier=soft or 2.0,
    )


budget_st = st.tuples(
    st.integers(1, 300),
    st.one_of(st.none(), st.integers(50, 3000)),
    st.sampled_from([None, 1.5, 2.0, 3.0]),
)


@st.composite
def mixes(draw: Any, max_requests: int = 40) -> tuple[list[BudgetSpec], list[Req]]:
    raw = draw(st.lists(budget_st, min_size=1, max_size=4))
    specs = [_budget(i, *b) for i, b in enumerate(raw)]
    n = len(specs)
    reqs = draw(
        st.lists(
            st.builds(
                Req,
                budgets=st.lists(st.integers(0, n - 1), min_size=1, max_size=n, unique=True).map(
                    tuple
                ),
                cents=st.integers(0, 120),
                tokens=st.integers(0, 700),
                critical=st.booleans(),
                outcome=st.sampled_from(["settle", "settle", "settle", "release", "die"]),
                pct=st.integers(0, 100),
                yields=st.tuples(st.integers(0, 3), st.integers(0, 3)),
            ),
            min_size=1,
            max_size=max_requests,
        )
    )
    return specs, reqs


def _allow(specs: list[BudgetSpec], req: Req) -> dict[str, float]:
    if not req.critical:
        return {}
    return {specs[i].id: specs[i].soft_multiplier for i in req.budgets if specs[i].policy == "soft"}


async def _yield(n: int) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


class StepClock:
    """Monotonic time for the in-process backend that moves only when told (no real sleeps)."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def run_concurrent_mix(
    backend: Any, specs: list[BudgetSpec], reqs: list[Req], clock: StepClock | None = None
) -> None:
    """Run ``reqs`` at once; ``clock`` (in-process) advances 5 ms per watcher pass, else real
    time runs (Redis expires reservations on its own clock)."""
    caps = []
    for i, s in enumerate(specs):
        soft_used = any(r.critical and i in r.budgets for r in reqs) and s.policy == "soft"
        caps.append(s.caps(s.soft_multiplier if soft_used else 1.0))
    settled_m = [0] * len(specs)
    settled_t = [0] * len(specs)
    done = asyncio.Event()
    violations: list[str] = []

    async def check() -> None:
        for i, s in enumerate(specs):
            u = await backend.usage(s, WINDOW)
            cap_m, cap_t = caps[i]
            assert u.reserved_micros >= 0 and u.reserved_tokens >= 0
            if (
                cap_m is not None
                and not u.spent_micros <= u.spent_micros + u.reserved_micros <= cap_m
            ):
                violations.append(f"{s.id}: usd {u} > {cap_m}")
            if cap_t is not None and not u.spent_tokens + u.reserved_tokens <= cap_t:
                violations.append(f"{s.id}: tokens {u} > {cap_t}")

    async def watcher() -> None:
        while not done.is_set():
            await check()
            if clock is not None:
                clock.now += 0.005
            await asyncio.sleep(0)

    async def one(k: int, r: Req) -> None:
        await _yield(r.yields[0])
        rid = f"req-{k}"
        refs = [(specs[i], WINDOW) for i in r.budgets]
        ttl = 0.03 if r.outcome == "die" else 60.0
        res = await backend.reserve(rid, refs, r.cents / 100, r.tokens, ttl, _allow(specs, r))
        event("refused" if not res.ok else "over a soft limit" if res.over_limit else "reserved")
        if not res.ok:
            assert res.refused is not None and res.refused.budget.id in {s.id for s, _ in refs}
            return
        await _yield(r.yields[1])
        if r.outcome == "settle":
            actual_cents, actual_tokens = r.cents * r.pct // 100, r.tokens * r.pct // 100
            s = await backend.settle(rid, actual_cents / 100, actual_tokens)
            assert s.status == "settled" and not s.overrun
            for i in r.budgets:
                settled_m[i] += actual_cents * 10_000
                settled_t[i] += actual_tokens
        elif r.outcome == "release":
            assert (await backend.release(rid)).status == "released"

    watch = asyncio.create_task(watcher())
    await asyncio.gather(*(one(k, r) for k, r in enumerate(reqs)))
    done.set()
    await watch
    if clock is not None:
        clock.now += 1.0
    else:
        await asyncio.sleep(0.05)  # every dying reservation expires
    await check()
    assert not violations, violations
    for i, s in enumerate(specs):
        u = await backend.usage(s, WINDOW)
        assert (u.spent_micros, u.spent_tokens) == (settled_m[i], settled_t[i])
        assert (u.reserved_micros, u.reserved_tokens) == (0, 0)


CONCURRENT = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@CONCURRENT
@given(mixes())
def test_invariant_in_process_concurrent(mix: tuple[list[BudgetSpec], list[Req]]) -> None:
    async def main() -> None:
        clock = StepClock()
        await run_concurrent_mix(InProcessBudgetBackend(clock=clock), *mix, clock=clock)

    asyncio.run(main())


@settings(CONCURRENT, max_examples=40)
@given(mixes())
def test_invariant_redis_concurrent(
    redis_prefix: str, mix: tuple[list[BudgetSpec], list[Req]]
) -> None:
    async def main() -> None:
        async with open_backend("redis", f"{redis_prefix}:{uuid.uuid4().hex[:8]}") as b:
            await run_concurrent_mix(b, *mix)

    asyncio.run(main())


class Reference:
    """The contract, sequentially, in the plainest possible code."""

    def __init__(self) -> None:
        self.spent: dict[str, list[int]] = {}
        self.reserved: dict[str, list[int]] = {}
        self.live: dict[str, tuple[list[str], int, int]] = {}

    def reserve(
        self, rid: str, specs: list[BudgetSpec], m: int, t: int, allow: dict[str, float]
    ) -> bool:
        for s in specs:
            cap_m, cap_t = s.caps(allow.get(s.id, 1.0))
            sm, st_ = self.spent.get(s.id, [0, 0])
            rm, rt = self.reserved.get(s.id, [0, 0])
            if (cap_m is not None and sm + rm + m > cap_m) or (
                cap_t is not None and st_ + rt + t > cap_t
            ):
                return False
        for s in specs:
            self.reserved.setdefault(s.id, [0, 0])
            self.reserved[s.id][0] += m
            self.reserved[s.id][1] += t
        self.live[rid] = ([s.id for s in specs], m, t)
        return True

    def finish(self, rid: str, m: int, t: int, settle: bool) -> None:
        ids, rm, rt = self.live.pop(rid)
        for i in ids:
            self.reserved[i][0] -= rm
            self.reserved[i][1] -= rt
            if settle:
                self.spent.setdefault(i, [0, 0])
                self.spent[i][0] += m
                self.spent[i][1] += t


async def run_sequential_mix(backend: Any, specs: list[BudgetSpec], reqs: list[Req]) -> None:
    ref = Reference()
    pending: list[tuple[str, Req]] = []
    for k, r in enumerate(reqs):
        rid = f"q{k}"
        chosen = [specs[i] for i in r.budgets]
        allow = _allow(specs, r)
        res = await backend.reserve(
            rid, [(s, WINDOW) for s in chosen], r.cents / 100, r.tokens, 60, allow
        )
        assert res.ok == ref.reserve(rid, chosen, r.cents * 10_000, r.tokens, allow), (k, r)
        if res.ok:
            pending.append((rid, r))
        # Finish the oldest pending request every other step, so reservations overlap.
        if pending and (k % 2 or r.outcome == "release"):
            prid, pr = pending.pop(0)
            settle = pr.outcome != "release"
            m, t = pr.cents * pr.pct // 100, pr.tokens * pr.pct // 100
            if settle:
                await backend.settle(prid, m / 100, t)
            else:
                await backend.release(prid)
            ref.finish(prid, m * 10_000, t, settle)
    for s in specs:
        u = await backend.usage(s, WINDOW)
        assert [u.spent_micros, u.spent_tokens] == ref.spent.get(s.id, [0, 0])
        assert [u.reserved_micros, u.reserved_tokens] == ref.reserved.get(s.id, [0, 0])


@settings(max_examples=100, deadline=None)
@given(mixes(max_requests=30))
def test_in_process_matches_the_reference(mix: tuple[list[BudgetSpec], list[Req]]) -> None:
    async def main() -> None:
        async with open_backend("memory", "") as b:
            await run_sequential_mix(b, *mix)

    asyncio.run(main())


@settings(CONCURRENT, max_examples=30)
@given(mixes(max_requests=30))
def test_redis_matches_the_reference(
    redis_prefix: str, mix: tuple[list[BudgetSpec], list[Req]]
) -> None:
    async def main() -> None:
        async with open_backend("redis", f"{redis_prefix}:{uuid.uuid4().hex[:8]}") as b:
            await run_sequential_mix(b, *mix)

    asyncio.run(main())
