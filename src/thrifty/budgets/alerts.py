"""Alert logic for budgets, forecasts, spend anomalies and quotas (pure: no I/O; sinks deliver
the ``Alert`` objects returned here).

**Thresholds.** A budget's utilisation is its *recorded spend* (not live reservations) over
its limit, the larger of the USD and token ratios. Reaching 50 / 80 / 90 / 100 % (configurable)
raises ``budget_threshold``; when one update jumps past several levels only the highest is
raised and the lower ones are marked as fired.

**Forecast.** Period-end spend is projected linearly from the period's average spend rate so
far, ``rate = spent / elapsed`` (``projected = spent + rate * time_left``); when the caller
knows a recent rate (e.g. the last 24 hours from the ledger) the larger of the two is used,
so a late acceleration is caught while a quiet day does not hide an earlier burn. No forecast
is made in the first ``forecast_min_elapsed`` (5 %) of a period, where one hour of traffic
would extrapolate wildly. ``budget_forecast`` is raised when the projection exceeds
``forecast_ratio`` (110 %) of the limit, with the instant the budget runs out at that rate.

**Anomalies.** Per tenant, the latest hour's spend is compared with the trailing hourly
history (up to ``anomaly_history_h`` hours, at least ``anomaly_min_history_h``) by a robust
z-score (Iglewicz & Hoaglin's modified z): ``z = 0.6745 * (x - median) / MAD`` with
``MAD = median(|x_i - median|)``. Median and MAD ignore the outliers they are meant to find
(a mean and standard deviation would be dragged up by the very spikes and by earlier ones);
0.6745 scales MAD to a standard deviation for normal data, so ``z > 3.5`` is the customary
outlier cut. When more than half the hours are identical (MAD = 0, common for idle tenants),
the mean absolute deviation (scaled by 1.2533) stands in; when every hour is identical any
increase counts as anomalous. Only increases are reported, and only when the excess over the
median is at least ``anomaly_min_delta_usd`` (cents of noise on a tiny tenant are not news).

**Dedup.** Every alert has a ``dedup_key`` naming its subject and period (budget window, hour,
quota window, circuit opening); ``AlertEngine`` returns each key once. Its fired set can be
exported and restored (``fired`` / constructor) to survive restarts. Across replicas (and
restarts) the dispatcher claims each key in Redis before sending (``alert_claims``).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from thrifty.budgets.config import AlertConfig
from thrifty.budgets.model import BudgetSpec, Window, micros_to_usd
from thrifty.budgets.quota import QuotaEvent
from thrifty.budgets.results import BudgetUsage

AlertKind = Literal["budget_threshold", "budget_forecast", "spend_anomaly", "quota", "circuit_open"]
Severity = Literal["info", "warning", "critical"]


@dataclass(frozen=True, slots=True)
class Alert:
    kind: AlertKind
    severity: Severity
    subject: str
    period: str
    dedup_key: str
    message: str
    at: datetime
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Forecast:
    """A projection in the budget's unit: ``rate`` per second, ``projected`` at period end
    (``None`` for a ``total`` period), ``exhaust_at`` when ``used`` reaches ``limit`` at that
    rate (``None`` if not before the period ends, or the rate is zero)."""

    used: float
    limit: float
    rate: float
    projected: float | None
    exhaust_at: datetime | None

    @property
    def ratio(self) -> float | None:
        return None if self.projected is None else self.projected / self.limit


def forecast(
    used: float,
    limit: float,
    window: Window,
    now: datetime,
    *,
    recent_rate: float | None = None,
    min_elapsed: float = 0.05,
) -> Forecast | None:
    """Project ``used`` (spent so far in ``window``) to the period end; ``None`` too early
    in the period (before ``min_elapsed`` of it) or before it started. ``recent_rate`` (per
    second), when given, is used if larger than the period average."""
    elapsed = (now - window.start).total_seconds()
    if elapsed <= 0:
        return None
    left = 0.0
    if window.end is not None:
        length = (window.end - window.start).total_seconds()
        if elapsed < min_elapsed * length:
            return None
        left = max(0.0, (window.end - now).total_seconds())
    rate = used / elapsed
    if recent_rate is not None:
        rate = max(rate, recent_rate)
    projected = None if window.end is None else used + rate * left
    exhaust: datetime | None = None
    if used >= limit:
        exhaust = now
    elif rate > 0:
        at = now + timedelta(seconds=(limit - used) / rate)
        exhaust = at if window.end is None or at < window.end else None
    return Forecast(used, limit, rate, projected, exhaust)


def utilisation(spec: BudgetSpec, usage: BudgetUsage) -> tuple[float, str]:
    """Recorded spend over the limit, the larger of USD and tokens: ``(ratio, dimension)``."""
    best = (0.0, "usd" if spec.limit_usd is not None else "tokens")
    lim = spec.limit_micros
    if lim:
        best = max(best, (usage.spent_micros / lim, "usd"))
    if spec.limit_tokens:
        best = max(best, (usage.spent_tokens / spec.limit_tokens, "tokens"))
    return best


def robust_z(history: Sequence[float], value: float) -> float | None:
    """The modified z-score of ``value`` against ``history`` (see the module docstring);
    ``inf`` / ``-inf`` when the history is constant and ``value`` differs, ``None`` when empty."""
    if not history:
        return None
    med = statistics.median(history)
    mad = statistics.median(abs(x - med) for x in history)
    if mad > 0:
        return 0.6745 * (value - med) / mad
    mean_ad = statistics.fmean(abs(x - med) for x in history)
    if mean_ad > 0:
        return (value - med) / (1.253314 * mean_ad)
    if value == med:
        return 0.0
    return math.copysign(math.inf, value - med)


class AlertEngine:
    """Turns observations into de-duplicated alerts (one per ``dedup_key``)."""

    def __init__(
        self, config: AlertConfig | None = None, fired: Iterable[str] = (), max_keys: int = 100_000
    ) -> None:
        self.config = config or AlertConfig()
        self._fired: dict[str, None] = dict.fromkeys(fired)
        self._max = max_keys

    @property
    def fired(self) -> list[str]:
        """Dedup keys already fired (oldest first), to persist."""
        return list(self._fired)

    def admit(self, alerts: Iterable[Alert]) -> list[Alert]:
        """The alerts not fired before, now marked fired."""
        out = []
        for a in alerts:
            if a.dedup_key not in self._fired:
                self._mark(a.dedup_key)
                out.append(a)
        return out

    def _mark(self, key: str) -> None:
        self._fired[key] = None
        while len(self._fired) > self._max:
            del self._fired[next(iter(self._fired))]

    def budget(
        self,
        spec: BudgetSpec,
        window: Window,
        usage: BudgetUsage,
        now: datetime,
        *,
        recent_rate_usd_per_h: float | None = None,
    ) -> list[Alert]:
        """Threshold and forecast alerts for one budget window after its spend changed."""
        out: list[Alert] = []
        ratio, dim = utilisation(spec, usage)
        wid = window.window_id
        reached = [t for t in self.config.thresholds if ratio >= t]
        if reached:
            key = f"budget_threshold:{spec.id}:{wid}:{reached[-1]:g}"
            if key not in self._fired:
                for lower in reached[:-1]:
                    self._mark(f"budget_threshold:{spec.id}:{wid}:{lower:g}")
                level = reached[-1]
                sev: Severity = "critical" if level >= 1 else "warning" if level >= 0.8 else "info"
                out.append(
                    Alert(
                        "budget_threshold",
                        sev,
                        spec.id,
                        wid,
                        key,
                        f"budget {spec.id} ({wid}) reached {level:.0%} of its limit "
                        f"({ratio:.1%} of {dim})",
                        now,
                        {
                            "level": level,
                            "utilisation": ratio,
                            "dimension": dim,
                            "spent_usd": usage.spent_usd,
                            "spent_tokens": usage.spent_tokens,
                            "limit_usd": spec.limit_usd,
                            "limit_tokens": spec.limit_tokens,
                        },
                    )
                )
        fc = self._budget_forecast(spec, window, usage, now, recent_rate_usd_per_h)
        if fc is not None:
            out.append(fc)
        return self.admit(out)

    def _budget_forecast(
        self,
        spec: BudgetSpec,
        window: Window,
        usage: BudgetUsage,
        now: datetime,
        recent_rate_usd_per_h: float | None,
    ) -> Alert | None:
        cands: list[tuple[Forecast, str]] = []
        cfg = self.config
        if spec.limit_micros:
            recent = None if recent_rate_usd_per_h is None else recent_rate_usd_per_h / 3600
            f = forecast(
                usage.spent_usd,
                micros_to_usd(spec.limit_micros),
                window,
                now,
                recent_rate=recent,
                min_elapsed=cfg.forecast_min_elapsed,
            )
            if f is not None:
                cands.append((f, "usd"))
        if spec.limit_tokens:
            f = forecast(
                float(usage.spent_tokens),
                float(spec.limit_tokens),
                window,
                now,
                min_elapsed=cfg.forecast_min_elapsed,
            )
            if f is not None:
                cands.append((f, "tokens"))
        over = [(f, d) for f, d in cands if f.ratio is not None and f.ratio > cfg.forecast_ratio]
        if not over:
            return None
        f, dim = max(over, key=lambda c: c[0].ratio or 0.0)
        when = f.exhaust_at.isoformat() if f.exhaust_at else "after the period ends"
        return Alert(
            "budget_forecast",
            "warning",
            spec.id,
            window.window_id,
            f"budget_forecast:{spec.id}:{window.window_id}",
            f"budget {spec.id} ({window.window_id}) is projected to reach {f.ratio:.0%} of its "
            f"{dim} limit by the end of the period; at this rate it runs out {when}",
            now,
            {
                "dimension": dim,
                "projected": f.projected,
                "limit": f.limit,
                "ratio": f.ratio,
                "rate_per_hour": f.rate * 3600,
                "exhaust_at": f.exhaust_at,
            },
        )

    def anomaly(
        self, tenant: str, history: Sequence[float], hour: datetime, spend_usd: float
    ) -> list[Alert]:
        """Is ``spend_usd`` in the hour starting at ``hour`` anomalous against ``history``
        (the tenant's preceding hourly spend, oldest first)?"""
        cfg = self.config
        hist = list(history)[-cfg.anomaly_history_h :]
        if len(hist) < cfg.anomaly_min_history_h:
            return []
        z = robust_z(hist, spend_usd)
        med = statistics.median(hist)
        if z is None or z <= cfg.anomaly_z or spend_usd - med < cfg.anomaly_min_delta_usd:
            return []
        period = hour.replace(minute=0, second=0, microsecond=0).isoformat()
        sev: Severity = "critical" if z > 2 * cfg.anomaly_z else "warning"
        return self.admit(
            [
                Alert(
                    "spend_anomaly",
                    sev,
                    tenant,
                    period,
                    f"spend_anomaly:{tenant}:{period}",
                    f"tenant {tenant} spent ${spend_usd:.2f} in the hour from {period}, against a "
                    f"median of ${med:.2f} per hour (robust z = {z:.1f})",
                    hour,
                    {"spend_usd": spend_usd, "median_usd": med, "z": z, "history_hours": len(hist)},
                )
            ]
        )

    def quota(self, events: Iterable[QuotaEvent], now: datetime) -> list[Alert]:
        """Alerts for quota crossings (``QuotaTracker`` already fires once per quota window)."""
        out = []
        for e in events:
            period = f"{now.timestamp():.0f}" if e.reset_at is None else f"{e.reset_at:.0f}"
            out.append(
                Alert(
                    "quota",
                    e.level,
                    e.deployment,
                    period,
                    f"quota:{e.deployment}:{e.kind}:{e.level}:{period}",
                    f"deployment {e.deployment} used {e.utilisation:.0%} of its provider "
                    f"{e.kind.replace('_', ' ')} quota ({e.remaining} of {e.limit} left)",
                    now,
                    {
                        "kind": e.kind,
                        "utilisation": e.utilisation,
                        "limit": e.limit,
                        "remaining": e.remaining,
                        "reset_at": e.reset_at,
                    },
                )
            )
        return self.admit(out)

    def circuit_open(self, deployment: str, opened_at: datetime) -> list[Alert]:
        """One alert per opening of a deployment's circuit breaker."""
        period = opened_at.isoformat()
        return self.admit(
            [
                Alert(
                    "circuit_open",
                    "warning",
                    deployment,
                    period,
                    f"circuit_open:{deployment}:{period}",
                    f"circuit breaker of deployment {deployment} opened",
                    opened_at,
                    {},
                )
            ]
        )
