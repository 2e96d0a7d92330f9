"""Budgets that are never overrun, rate limits, provider quotas, alerts and forecasts.

- ``model``: ``BudgetSpec``, ``period_window`` (DST-correct period boundaries), ``applicable``.
- ``backend``: the reserve / settle / release contract and ``InProcessBudgetBackend``;
  ``redis_backend``: ``RedisBudgetBackend`` (atomic Lua over N budgets, timeouts, failure policy).
- ``ratelimit``: GCRA rate limiters (in-process and Redis); ``quota``: ``QuotaTracker``.
- ``alerts``: threshold, forecast, anomaly, quota and circuit alerts (pure logic).
- ``config``: ``BudgetsConfig`` (mounted into ``Config`` as ``budgets:``).
"""

from thrifty.budgets.alerts import Alert, AlertEngine, Forecast, forecast, robust_z
from thrifty.budgets.backend import (
    BudgetBackend,
    BudgetRef,
    BudgetStateUnavailable,
    FailurePolicy,
    InProcessBudgetBackend,
    headroom,
)
from thrifty.budgets.config import AlertConfig, BudgetsConfig, RateLimitSpec
from thrifty.budgets.model import (
    MICROS_PER_USD,
    BudgetIndex,
    BudgetSpec,
    Window,
    applicable,
    micros_to_usd,
    period_window,
    soft_allowance,
    usd_to_micros,
    window_for,
)
from thrifty.budgets.quota import QuotaEvent, QuotaTracker, QuotaWindow, parse_go_duration
from thrifty.budgets.ratelimit import (
    InProcessRateLimiter,
    Rate,
    RateDecision,
    RedisRateLimiter,
)
from thrifty.budgets.redis_backend import RedisBudgetBackend
from thrifty.budgets.results import (
    BudgetUsage,
    Refusal,
    Remaining,
    ReserveResult,
    SettleResult,
)

__all__ = [
    "MICROS_PER_USD",
    "Alert",
    "AlertConfig",
    "AlertEngine",
    "BudgetBackend",
    "BudgetIndex",
    "BudgetRef",
    "BudgetSpec",
    "BudgetStateUnavailable",
    "BudgetUsage",
    "BudgetsConfig",
    "FailurePolicy",
    "Forecast",
    "InProcessBudgetBackend",
    "InProcessRateLimiter",
    "QuotaEvent",
    "QuotaTracker",
    "QuotaWindow",
    "Rate",
    "RateDecision",
    "RateLimitSpec",
    "RedisBudgetBackend",
    "RedisRateLimiter",
    "Refusal",
    "Remaining",
    "ReserveResult",
    "SettleResult",
    "Window",
    "applicable",
    "forecast",
    "headroom",
    "micros_to_usd",
    "parse_go_duration",
    "period_window",
    "robust_z",
    "soft_allowance",
    "usd_to_micros",
    "window_for",
]
