"""Budget state shared by every replica in Redis, with the contract of ``thrifty.budgets.backend``.

Layout (``P`` = ``<prefix>:{budgets}:``; the ``{budgets}`` hash tag keeps every key in one
cluster slot, since the scripts touch the counters a reservation names)::

    P c:<budget id>:<window id>  hash  sm / st: spent micro-dollars / tokens
                                       rm / rt: reserved by live reservations
    P rz                         zset  member: a reservation's hash key, score: expiry (ms)
    P r:<request id>             hash  m / t: amounts, k: counter keys ("\\n"-joined),
                                       s: "r" live | "x" expired (kept ``late_grace_s``)

Three Lua scripts, each one atomic round trip: ``RESERVE`` (purge expired reservations, check
``spent + reserved + cost <= cap`` on all N counters, then reserve on all or none), ``FINISH``
(purge, then settle or release one reservation) and ``READ`` (purge, read N counters, optionally
zero their spend for an admin reset). Expiry uses the Redis server clock (``TIME``), so replicas'
clock skew cannot expire another replica's reservation early. Amounts travel as decimal strings
and are added with ``HINCRBY`` (exact 64-bit integers); Lua compares them as doubles, exact
below 2**53 (caps are validated far below that).

Every call runs under ``timeout_s``. When Redis is unreachable (refused, timed out, read-only
or loading), ``FailurePolicy.FAIL_CLOSED`` raises ``BudgetStateUnavailable``; ``FAIL_OPEN``
decides on the local ``InProcessBudgetBackend`` and flags the result. The local counters start
from the last counters this process saw in Redis (from zero for a budget it never saw: a
replica started during an outage knows nothing of the shared spend — the price of
``fail_open``); spend settled locally is replayed into Redis once it answers again.
After a failure Redis is not tried again for ``cooldown_s``, so an outage costs each request
at most one timeout. A reply lost to a timeout may leave a reservation in Redis: it holds
budget until it expires (a conservative error). A settle that cannot reach Redis raises under
``fail_closed`` (the request already ran: the caller logs it, the ledger keeps the spend, the
reservation expires); under ``fail_open`` it is recorded locally and replayed.

Each call purges at most ``purge_limit`` expired reservations (oldest first); any left over
keep counting as reserved until a later call purges them — an error on the safe side.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any, Literal, TypeVar

from thrifty.budgets.backend import (
    Amount,
    BudgetRef,
    BudgetStateUnavailable,
    BudgetUsage,
    FailurePolicy,
    InProcessBudgetBackend,
    Refusal,
    Remaining,
    ReserveResult,
    SettleResult,
    check_amounts,
    dedupe,
    over_limit,
    remaining_of,
)
from thrifty.budgets.model import BudgetSpec, usd_to_micros
from thrifty.budgets.redis_lua import FINISH, READ, RESERVE

log = logging.getLogger("thrifty.budgets")
_R = TypeVar("_R", ReserveResult, SettleResult)

try:
    from redis import exceptions as _rx

    # What counts as "Redis unreachable" (anything else, e.g. a script error, is a bug and raises).
    UNAVAILABLE_ERRORS: tuple[type[BaseException], ...] = (
        _rx.ConnectionError,
        _rx.TimeoutError,
        _rx.ReadOnlyError,
        _rx.BusyLoadingError,
        OSError,
        TimeoutError,
    )
except ImportError:  # pragma: no cover - redis is an optional extra
    UNAVAILABLE_ERRORS = (OSError, TimeoutError)


def blocking_client(url: str, max_connections: int = 64, timeout_s: float = 0.25) -> Any:
    """A ``redis.asyncio.Redis`` on a ``BlockingConnectionPool`` of ``max_connections``."""
    import redis.asyncio as aioredis

    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=timeout_s,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
    )
    return aioredis.Redis(connection_pool=pool)


class _Down(Exception):
    pass


class RedisBudgetBackend:
    """Shared budget state (see the module docstring). ``client`` is a ``redis.asyncio.Redis``;
    ``retention_s`` is how long a period's counters are kept after their last use (``total``
    windows are kept forever)."""

    def __init__(
        self,
        client: Any,
        prefix: str = "thrifty",
        *,
        timeout_s: float = 0.25,
        failure: FailurePolicy | str = FailurePolicy.FAIL_CLOSED,
        fallback: InProcessBudgetBackend | None = None,
        cooldown_s: float = 1.0,
        retention_s: float = 40 * 86_400,
        late_grace_s: float = 86_400,
        purge_limit: int = 1000,
        clock: Callable[[], float] = time.monotonic,
        owns_client: bool = False,
    ) -> None:
        self._r = client
        self._base = f"{prefix}:{{budgets}}:"
        self._zset = self._base + "rz"
        self.timeout_s = timeout_s
        self.failure = FailurePolicy(failure)
        self.fallback = fallback or InProcessBudgetBackend(clock=clock)
        self.cooldown_s = cooldown_s
        self._retention_ms = int(retention_s * 1000)
        self._grace_ms = str(int(late_grace_s * 1000))
        self._purge = str(purge_limit)
        self._clock = clock
        self._owns = owns_client
        self._down_until = 0.0
        self._s_reserve = client.register_script(RESERVE)
        self._s_finish = client.register_script(FINISH)
        self._s_read = client.register_script(READ)
        self._local: dict[str, list[BudgetRef]] = {}  # held by the fallback (fail_open)
        self._inflight: dict[str, tuple[float, list[BudgetRef]]] = {}
        self._last: dict[tuple[str, str], BudgetUsage] = {}
        self._unsynced: list[tuple[list[str], int, int]] = []
        self.errors = 0

    @classmethod
    def from_url(
        cls, url: str, prefix: str = "thrifty", *, max_connections: int = 64, **kw: Any
    ) -> RedisBudgetBackend:
        """A backend owning its client. The pool *blocks* for a free connection (within the
        call's timeout) rather than failing: redis-py's default pool raises
        ``MaxConnectionsError`` past 100 concurrent commands, which would read as an outage.
        Pass a client built the same way when sharing one."""
        client = blocking_client(url, max_connections, kw.get("timeout_s", 0.25))
        return cls(client, prefix, owns_client=True, **kw)

    # -- plumbing ---------------------------------------------------------------------------

    def _key(self, spec: BudgetSpec, window: str) -> str:
        return f"{self._base}c:{spec.id}:{window}"

    async def _call(self, fn: Callable[[], Awaitable[Any]]) -> Any:
        if self._clock() < self._down_until:
            raise _Down("in cooldown after a failure")
        try:
            async with asyncio.timeout(self.timeout_s):
                if self._unsynced:
                    await self._flush_unsynced()
                return await fn()
        except UNAVAILABLE_ERRORS as exc:
            self.errors += 1
            self._down_until = self._clock() + self.cooldown_s
            log.warning("budget state (redis) unavailable: %r", exc)
            raise _Down(repr(exc)) from exc

    async def _flush_unsynced(self) -> None:
        batch, self._unsynced = self._unsynced, []
        try:
            pipe = self._r.pipeline(transaction=True)
            for keys, micros, tokens in batch:
                for key in keys:
                    pipe.hincrby(key, "sm", micros)
                    pipe.hincrby(key, "st", tokens)
            await pipe.execute()
        except BaseException:
            self._unsynced = batch + self._unsynced
            raise

    def _unavailable(self, what: str, exc: _Down) -> BudgetStateUnavailable:
        return BudgetStateUnavailable(
            f"budget state unavailable: Redis could not be reached to {what} ({exc}); "
            "refusing under failure policy fail_closed"
        )

    def _usages(self, refs: Sequence[BudgetRef], flat: Sequence[int], at: int) -> list[BudgetUsage]:
        out = []
        for j, (spec, window) in enumerate(refs):
            sm, rm, st, rt = (int(x) for x in flat[at + 4 * j : at + 4 * j + 4])
            u = BudgetUsage(spec.id, window, sm, rm, st, rt)
            if len(self._last) > 50_000:
                self._last.clear()  # old windows; the next reads refill what is current
            self._last[(spec.id, window)] = u
            out.append(u)
        return out

    def _remember(self, request_id: str, refs: list[BudgetRef], ttl_s: float) -> None:
        now = self._clock()
        if len(self._inflight) > 10_000:
            for rid in [r for r, (exp, _) in self._inflight.items() if exp < now]:
                del self._inflight[rid]
        self._inflight[request_id] = (now + ttl_s, refs)

    # -- the contract -----------------------------------------------------------------------

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
        if request_id in self._local:
            raise ValueError(f"request {request_id!r} already holds a reservation")
        refs = dedupe(budgets)
        allow = allow_over or {}
        args: list[Any] = [int(ttl_s * 1000) or 1, micros, tokens, self._purge, self._grace_ms]
        for spec, window in refs:
            mult = allow.get(spec.id, 1.0)
            cap_m, cap_t = spec.caps(mult)
            keep = 0 if window == "total" else self._retention_ms
            args += [-1 if cap_m is None else cap_m, -1 if cap_t is None else cap_t, keep]
        keys = [self._zset, self._base + "r:" + request_id] + [self._key(s, w) for s, w in refs]
        try:
            raw = await self._call(lambda: self._s_reserve(keys=keys, args=args, client=self._r))
        except _Down as exc:
            if self.failure is FailurePolicy.FAIL_CLOSED:
                raise self._unavailable("reserve", exc) from None
            for spec, window in refs:
                if (spec.id, window) in self._last:
                    self.fallback.seed(self._last[(spec.id, window)])
            res = self.fallback.reserve_now(request_id, refs, micros, tokens, ttl_s, allow)
            if res.ok:
                self._local[request_id] = refs
            return _flag(res)
        code = int(raw[0])
        if code == -1:
            raise ValueError(f"request {request_id!r} already holds a reservation")
        if code == 0:
            after = self._usages(refs, raw, 1)
            self._remember(request_id, refs, ttl_s)
            return ReserveResult(
                True, request_id, micros, tokens, None, tuple(after), over_limit(refs, after)
            )
        spec, window = refs[code - 1]
        sm, rm, st, rt = (int(x) for x in raw[2:6])
        u = BudgetUsage(spec.id, window, sm, rm, st, rt)
        self._last[(spec.id, window)] = u
        mult = allow.get(spec.id, 1.0)
        cap_m, cap_t = spec.caps(mult)
        refusal: Refusal
        if int(raw[1]) == 1:
            assert cap_m is not None
            refusal = Refusal(spec, window, "usd", cap_m, mult, max(0, cap_m - sm - rm), micros, u)
        else:
            assert cap_t is not None
            refusal = Refusal(
                spec, window, "tokens", cap_t, mult, max(0, cap_t - st - rt), tokens, u
            )
        return ReserveResult(False, request_id, micros, tokens, refusal, (u,))

    async def _finish(
        self, request_id: str, micros: int, tokens: int, mode: Literal["s", "r"]
    ) -> SettleResult:
        settle = mode == "s"
        local = self._local.pop(request_id, None)
        if local is not None:
            res = self.fallback.finish_now(request_id, micros, tokens, settle=settle)
            if settle and res.status != "unknown":
                self._queue(local, micros, tokens)
            return _flag(res)
        entry = self._inflight.pop(request_id, None)
        args = [mode, micros, tokens, self._purge, self._grace_ms]
        keys = [self._zset, self._base + "r:" + request_id]
        try:
            raw = await self._call(lambda: self._s_finish(keys=keys, args=args, client=self._r))
        except _Down as exc:
            if self.failure is FailurePolicy.FAIL_CLOSED:
                raise self._unavailable("settle" if settle else "release", exc) from None
            if entry is None:
                return _flag(SettleResult("unknown", request_id))
            if settle:
                self.fallback.record_spend(entry[1], micros, tokens)
                self._queue(entry[1], micros, tokens)
            if not settle:
                return _flag(SettleResult("released", request_id))
            return _flag(SettleResult("settled", request_id, 0, 0, micros, tokens))
        code, m, t = (int(x) for x in raw)
        if code == 0:
            return SettleResult("unknown", request_id)
        status: Literal["settled", "released", "late"] = (
            "late" if code == 2 else ("settled" if settle else "released")
        )
        if not settle:
            micros = tokens = 0
        return SettleResult(status, request_id, m, t, micros, tokens)

    def _queue(self, refs: Sequence[BudgetRef], micros: int, tokens: int) -> None:
        if refs and (micros or tokens):
            self._unsynced.append(([self._key(s, w) for s, w in refs], micros, tokens))

    async def settle(
        self, request_id: str, actual_cost_usd: Amount, actual_tokens: int
    ) -> SettleResult:
        if actual_tokens < 0:
            raise ValueError("actual_tokens must be >= 0")
        return await self._finish(request_id, usd_to_micros(actual_cost_usd), actual_tokens, "s")

    async def release(self, request_id: str) -> SettleResult:
        return await self._finish(request_id, 0, 0, "r")

    async def _read_counters(
        self, refs: Sequence[BudgetRef], reset: bool = False
    ) -> list[BudgetUsage]:
        keys = [self._zset] + [self._key(s, w) for s, w in refs]
        args = [self._purge, self._grace_ms, "reset" if reset else ""]
        try:
            raw = await self._call(lambda: self._s_read(keys=keys, args=args, client=self._r))
        except _Down as exc:
            if self.failure is FailurePolicy.FAIL_CLOSED or reset:
                raise self._unavailable("read usage", exc) from None
            return await self.fallback.usages(refs)  # the local view (fail_open)
        return self._usages(refs, raw, 0)

    async def usage(self, budget: BudgetSpec, window_id: str) -> BudgetUsage:
        return (await self._read_counters([(budget, window_id)]))[0]

    async def usages(self, budgets: Sequence[BudgetRef]) -> list[BudgetUsage]:
        """Several budgets' counters in one round trip (after purging expired reservations)."""
        return await self._read_counters(budgets) if budgets else []

    async def remaining(self, budget: BudgetSpec, window_id: str) -> Remaining:
        return remaining_of(budget, await self.usage(budget, window_id))

    async def reset(self, budget: BudgetSpec, window_id: str) -> BudgetUsage:
        """Zero the spend of one window (live reservations keep counting); returns the usage
        before. Never falls back: a reset must reach the shared state."""
        return (await self._read_counters([(budget, window_id)], reset=True))[0]

    async def aclose(self) -> None:
        if self._owns:
            await self._r.aclose()


def _flag(res: _R) -> _R:
    return replace(res, flagged=True)
