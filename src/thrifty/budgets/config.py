"""Typed, frozen configuration of budgets, rate limits and alerts (mounted into ``Config`` as
``budgets:``). The Redis URL and prefix are the gateway's shared ``redis:`` settings; only the
budget-specific timeout and failure policy live here."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from thrifty.budgets.model import BudgetSpec
from thrifty.budgets.sinks import SinksConfig


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RateLimitSpec(_Frozen):
    """Requests and/or tokens per minute for one scope. ``subject: None`` applies the limit to
    every subject of the scope separately (e.g. each key gets 600 rpm); a subject names one."""

    scope: Literal["key", "user", "tenant", "deployment"]
    subject: str | None = None
    rpm: int | None = Field(None, gt=0)
    tpm: int | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _check(self) -> RateLimitSpec:
        if self.rpm is None and self.tpm is None:
            raise ValueError("a rate limit needs rpm and/or tpm")
        return self


class AlertConfig(_Frozen):
    """Alert thresholds (seed values). ``thresholds`` are fractions of a budget's limit;
    ``forecast_ratio`` flags a projected period-end spend above that fraction of the limit;
    ``anomaly_z`` is the robust z-score above which an hour's spend is anomalous."""

    thresholds: tuple[float, ...] = (0.5, 0.8, 0.9, 1.0)
    forecast_ratio: float = Field(1.1, gt=0)
    forecast_min_elapsed: float = Field(0.05, ge=0, lt=1)
    anomaly_z: float = Field(3.5, gt=0)
    anomaly_min_history_h: int = Field(24, ge=3)
    anomaly_history_h: int = Field(168, ge=3)
    anomaly_min_delta_usd: float = Field(1.0, ge=0)
    sinks: SinksConfig = Field(default_factory=SinksConfig)
    quota_warning: float = Field(0.9, gt=0, le=1)
    quota_critical: float = Field(0.95, gt=0, le=1)

    @model_validator(mode="after")
    def _check(self) -> AlertConfig:
        if any(not 0 < t <= 10 for t in self.thresholds):
            raise ValueError("thresholds are fractions of the limit in (0, 10]")
        if tuple(sorted(set(self.thresholds))) != self.thresholds:
            raise ValueError("thresholds must be strictly increasing")
        if self.quota_warning > self.quota_critical:
            raise ValueError("quota_warning must not exceed quota_critical")
        return self


class BudgetsConfig(_Frozen):
    """``backend: redis`` shares counters between replicas (required for a promise that holds
    across replicas); ``memory`` counts per process. ``failure`` is what happens when Redis is
    unreachable: ``fail_closed`` refuses (503), ``fail_open`` continues on local counters and
    flags every request it lets through. ``reservation_ttl_s`` must exceed the longest request
    (a reservation that outlives it is released as the request is presumed dead)."""

    enabled: bool = True
    backend: Literal["memory", "redis"] = "memory"
    failure: Literal["fail_closed", "fail_open"] = "fail_closed"
    timeout_s: float = Field(0.25, gt=0)
    cooldown_s: float = Field(1.0, ge=0)
    reservation_ttl_s: float = Field(900.0, gt=0)
    budgets: tuple[BudgetSpec, ...] = ()
    rate_limits: tuple[RateLimitSpec, ...] = ()
    alerts: AlertConfig = Field(default_factory=AlertConfig)

    @model_validator(mode="after")
    def _check(self) -> BudgetsConfig:
        seen: set[str] = set()
        for i, b in enumerate(self.budgets):
            if b.id in seen:
                raise ValueError(f"budgets[{i}].id: {b.id!r} is used twice")
            seen.add(b.id)
        return self
