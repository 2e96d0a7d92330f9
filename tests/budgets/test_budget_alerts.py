"""Alert logic: threshold crossings once per period, period-end forecasts with the date the
budget runs out, robust anomaly detection on synthetic hourly spend, quota and circuit alerts."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta

import pytest

from thrifty.budgets import (
    AlertConfig,
    AlertEngine,
    BudgetSpec,
    BudgetUsage,
    QuotaTracker,
    forecast,
    period_window,
    robust_z,
)

MONTHLY = BudgetSpec(id="acme-monthly", scope="tenant", subject="acme", limit_usd=100)


def usage(
    usd: float, tokens: int = 0, spec: BudgetSpec = MONTHLY, window: str = "2024-04"
) -> BudgetUsage:
    return BudgetUsage(spec.id, window, round(usd * 1_000_000), 0, tokens, 0)


def test_thresholds_fire_once_per_period() -> None:
    eng = AlertEngine()
    now = datetime(2024, 4, 2, tzinfo=UTC)  # early: no forecast noise (< 5% of the month)
    w = period_window(MONTHLY, now)
    assert eng.budget(MONTHLY, w, usage(49.99), now) == []
    [a] = eng.budget(MONTHLY, w, usage(50), now)
    assert (a.kind, a.severity, a.subject, a.period) == (
        "budget_threshold",
        "info",
        "acme-monthly",
        "2024-04",
    )
    assert a.data["level"] == 0.5 and a.dedup_key == "budget_threshold:acme-monthly:2024-04:0.5"
    assert eng.budget(MONTHLY, w, usage(60), now) == []  # once
    [a] = eng.budget(MONTHLY, w, usage(95), now)  # jumps past 80 and 90: only 90 is raised
    assert a.data["level"] == 0.9 and a.severity == "warning"
    assert eng.budget(MONTHLY, w, usage(96), now) == []  # 80 was marked fired too
    [a] = eng.budget(MONTHLY, w, usage(100), now)
    assert a.severity == "critical" and a.data["level"] == 1.0
    assert eng.budget(MONTHLY, w, usage(130), now) == []
    # The next period starts over.
    may = datetime(2024, 5, 2, tzinfo=UTC)
    [a] = eng.budget(MONTHLY, period_window(MONTHLY, may), usage(55, window="2024-05"), may)
    assert a.period == "2024-05" and a.data["level"] == 0.5
    # The fired set survives a restart.
    again = AlertEngine(fired=eng.fired)
    assert again.budget(MONTHLY, w, usage(100), now) == []


def test_token_limits_count_too() -> None:
    spec = BudgetSpec(id="tok", scope="org", limit_usd=1000, limit_tokens=1000, period="daily")
    now = datetime(2024, 4, 2, 0, 30, tzinfo=UTC)
    [a] = AlertEngine().budget(
        spec, period_window(spec, now), usage(1, 850, spec, "2024-04-02"), now
    )
    assert a.data["level"] == 0.8 and a.data["dimension"] == "tokens"


def test_forecast_projects_period_end_and_the_exhaustion_date() -> None:
    now = datetime(2024, 4, 11, tzinfo=UTC)  # 10 of April's 30 days gone
    w = period_window(MONTHLY, now)
    f = forecast(50.0, 100.0, w, now)
    assert f is not None and f.projected == pytest.approx(150) and f.ratio == pytest.approx(1.5)
    assert f.exhaust_at == datetime(2024, 4, 21, tzinfo=UTC)  # $5/day, $50 left
    eng = AlertEngine()
    alerts = eng.budget(MONTHLY, w, usage(50), now)
    [fc] = [a for a in alerts if a.kind == "budget_forecast"]
    assert fc.data["exhaust_at"] == datetime(2024, 4, 21, tzinfo=UTC) and "2024-04-21" in fc.message
    assert [a.kind for a in eng.budget(MONTHLY, w, usage(55), now)] == []  # once per period
    # Projected 105% (<= 110%): no alert, though it runs out on the 29th at this rate.
    f = forecast(35.0, 100.0, w, now)
    assert f is not None and f.ratio == pytest.approx(1.05)
    assert f.exhaust_at is not None and f.exhaust_at.date().isoformat() == "2024-04-29"
    assert [a.kind for a in AlertEngine().budget(MONTHLY, w, usage(35), now)] == []
    f = forecast(30.0, 100.0, w, now)  # on track for 90%: it does not run out this period
    assert f is not None and f.ratio == pytest.approx(0.9) and f.exhaust_at is None
    # A recent burn rate above the average takes over.
    f = forecast(35.0, 100.0, w, now, recent_rate=10 / 86400)  # $10/day lately
    assert f is not None and f.projected == pytest.approx(235)
    assert f.exhaust_at == now + timedelta(days=6.5)
    alerts = AlertEngine().budget(MONTHLY, w, usage(35), now, recent_rate_usd_per_h=10 / 24)
    assert [a.kind for a in alerts] == ["budget_forecast"]


def test_forecast_edge_cases() -> None:
    w = period_window(MONTHLY, datetime(2024, 4, 15, tzinfo=UTC))
    assert forecast(10, 100, w, datetime(2024, 4, 1, 12, tzinfo=UTC)) is None  # too early
    assert forecast(10, 100, w, w.start) is None
    over = forecast(120, 100, w, datetime(2024, 4, 20, tzinfo=UTC))
    assert over is not None and over.exhaust_at == datetime(2024, 4, 20, tzinfo=UTC)
    total = BudgetSpec(id="t", scope="org", limit_usd=100, period="total")
    now = datetime(1970, 1, 11, tzinfo=UTC)
    f = forecast(50, 100, period_window(total, now), now)
    assert (
        f is not None and f.projected is None and f.exhaust_at == datetime(1970, 1, 21, tzinfo=UTC)
    )


def test_robust_z() -> None:
    assert robust_z([], 1) is None
    assert robust_z([10, 10, 10], 10) == 0
    assert robust_z([10, 10, 10], 11) == math.inf
    assert robust_z([1, 2, 3, 4, 5], 3) == 0
    assert robust_z([1, 2, 3, 4, 5], 6) == pytest.approx(0.6745 * 3 / 1)
    # MAD = 0 but not constant: the mean absolute deviation stands in.
    z = robust_z([5, 5, 5, 5, 9], 9)
    assert z == pytest.approx(4 / (1.253314 * 0.8))


def _hours(n: int, start: datetime) -> list[datetime]:
    return [start + timedelta(hours=i) for i in range(n)]


def test_anomaly_on_synthetic_hourly_spend() -> None:
    rng = random.Random(7)
    start = datetime(2024, 4, 1, tzinfo=UTC)
    # A week of hourly spend with a daily cycle (busy days, quiet nights) and noise.
    hist = [20 + 10 * math.sin(2 * math.pi * (i % 24) / 24) + rng.gauss(0, 1.5) for i in range(168)]
    hist[30] = 400  # an old spike must not hide a new one (median and MAD ignore it)
    eng = AlertEngine()
    now = start + timedelta(hours=168)
    assert eng.anomaly("acme", hist, now, 31.0) == []  # a busy but normal hour
    [a] = eng.anomaly("acme", hist, now, 120.0)
    assert (a.kind, a.subject, a.period) == ("spend_anomaly", "acme", now.isoformat())
    assert a.data["z"] > 3.5 and a.severity == "critical"
    assert eng.anomaly("acme", hist, now, 150.0) == []  # once per tenant per hour
    assert len(eng.anomaly("acme", hist, now + timedelta(hours=1), 150.0)) == 1
    assert len(eng.anomaly("globex", hist, now, 150.0)) == 1  # per tenant
    # Too little history: no verdict.
    assert AlertEngine().anomaly("acme", hist[:10], now, 1000.0) == []


def test_anomaly_for_an_idle_tenant_respects_the_minimum_delta() -> None:
    eng = AlertEngine(AlertConfig(anomaly_min_delta_usd=1.0))
    idle = [0.0] * 48
    now = datetime(2024, 4, 3, tzinfo=UTC)
    assert eng.anomaly("quiet", idle, now, 0.5) == []  # infinite z, but 50 cents is noise
    [a] = eng.anomaly("quiet", idle, now, 5.0)
    assert a.data["z"] == math.inf


def test_quota_and_circuit_alerts() -> None:
    q = QuotaTracker(clock=lambda: 1000.0)
    eng = AlertEngine()
    now = datetime(2024, 4, 3, tzinfo=UTC)
    events = q.observe("openai/gpt-4o", {"x-ratelimit-limit-tokens": "100",
                                         "x-ratelimit-remaining-tokens": "4"})  # fmt: skip
    [a] = eng.quota(events, now)
    assert (a.kind, a.severity, a.subject) == ("quota", "critical", "openai/gpt-4o")
    assert eng.quota(events, now) == []
    opened = datetime(2024, 4, 3, 12, tzinfo=UTC)
    assert len(eng.circuit_open("azure/eu", opened)) == 1
    assert eng.circuit_open("azure/eu", opened) == []
    assert len(eng.circuit_open("azure/eu", opened + timedelta(minutes=5))) == 1
