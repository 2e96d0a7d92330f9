"""Budget specs: validation, period windows (across DST changes, in several zones) and which
budgets apply to a request."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from thrifty.budgets import (
    BudgetIndex,
    BudgetsConfig,
    BudgetSpec,
    Window,
    applicable,
    period_window,
    soft_allowance,
    usd_to_micros,
    window_for,
)
from thrifty.keys.principal import Principal


def utc(y: int, m: int, d: int, h: int = 0, mi: int = 0) -> datetime:
    return datetime(y, m, d, h, mi, tzinfo=UTC)


def hours(w: Window) -> float:
    assert w[1] is not None
    return (w[1] - w[0]).total_seconds() / 3600


NY = ZoneInfo("America/New_York")


def test_daily_windows_across_dst_in_new_york() -> None:
    spring = window_for("daily", NY, utc(2024, 3, 10, 12))
    assert tuple(spring) == (utc(2024, 3, 10, 5), utc(2024, 3, 11, 4), "2024-03-10")
    assert hours(spring) == 23
    fall = window_for("daily", NY, utc(2024, 11, 3, 12))
    assert tuple(fall) == (utc(2024, 11, 3, 4), utc(2024, 11, 4, 5), "2024-11-03")
    assert hours(fall) == 25
    # The boundary itself: one microsecond before local midnight is still the previous day.
    assert window_for("daily", NY, utc(2024, 3, 11, 4) - timedelta(microseconds=1)).window_id == (
        "2024-03-10"
    )
    assert window_for("daily", NY, utc(2024, 3, 11, 4)).window_id == "2024-03-11"
    # The repeated hour of the fall-back night belongs to one day, both times.
    for instant in (utc(2024, 11, 3, 5, 30), utc(2024, 11, 3, 6, 30)):  # 01:30 EDT and EST
        assert window_for("daily", NY, instant).window_id == "2024-11-03"


def test_a_dst_gap_at_midnight_starts_the_day_when_the_gap_ends() -> None:
    santiago = ZoneInfo("America/Santiago")  # 2024-09-08 00:00 -> 01:00: midnight never happens
    w = window_for("daily", santiago, utc(2024, 9, 8, 12))
    assert tuple(w) == (utc(2024, 9, 8, 4), utc(2024, 9, 9, 3), "2024-09-08")
    assert hours(w) == 23
    before = window_for("daily", santiago, utc(2024, 9, 8, 3, 59))
    assert before.window_id == "2024-09-07" and before.end == w.start


def test_weekly_and_monthly_windows() -> None:
    week = window_for("weekly", NY, utc(2024, 3, 10, 12))  # a Sunday: the week began Monday 4th
    assert tuple(week) == (utc(2024, 3, 4, 5), utc(2024, 3, 11, 4), "2024-W10")
    assert hours(week) == 7 * 24 - 1
    new_year = window_for("weekly", ZoneInfo("UTC"), utc(2025, 1, 1))
    assert tuple(new_year) == (utc(2024, 12, 30), utc(2025, 1, 6), "2025-W01")  # the ISO year
    berlin = ZoneInfo("Europe/Berlin")
    march = window_for("monthly", berlin, utc(2024, 3, 15))
    assert tuple(march) == (utc(2024, 2, 29, 23), utc(2024, 3, 31, 22), "2024-03")
    assert window_for("monthly", berlin, utc(2024, 2, 29, 23)).window_id == "2024-03"
    assert window_for("monthly", berlin, utc(2024, 2, 29, 22, 59)).window_id == "2024-02"
    december = window_for("monthly", ZoneInfo("Asia/Tokyo"), utc(2024, 12, 31, 14, 59))
    assert tuple(december) == (utc(2024, 11, 30, 15), utc(2024, 12, 31, 15), "2024-12")
    total = window_for("total", NY, utc(2024, 1, 1))
    assert total.window_id == "total" and total.end is None


def test_consecutive_windows_tile_time() -> None:
    for period in ("daily", "weekly", "monthly"):
        for tz in ("America/New_York", "Europe/London", "Australia/Lord_Howe", "Asia/Kolkata"):
            spec = BudgetSpec(id="t", scope="org", limit_usd=1, period=period, timezone=tz)
            w = period_window(spec, utc(2024, 1, 1))
            for _ in range(60 if period == "daily" else 15):
                assert w.end is not None
                nxt = period_window(spec, w.end)
                assert nxt.start == w.end and nxt.window_id != w.window_id
                w = nxt


def test_naive_now_is_rejected() -> None:
    with pytest.raises(ValueError, match="aware"):
        window_for("daily", NY, datetime(2024, 1, 1))


def test_spec_validation() -> None:
    BudgetSpec(id="org-all", scope="org", limit_usd=100)
    bad: list[dict[str, Any]] = [
        {"id": "x", "scope": "org"},  # no limit
        {"id": "x", "scope": "tenant", "limit_usd": 1},  # no subject
        {"id": "x", "scope": "org", "subject": "a", "limit_usd": 1},
        {"id": "x", "scope": "tag", "subject": "feature", "limit_usd": 1},
        {"id": "x", "scope": "org", "limit_usd": 1, "timezone": "Mars/Base"},
        {"id": "x y", "scope": "org", "limit_usd": 1},
        {"id": "x", "scope": "org", "limit_usd": 0},
        {"id": "x", "scope": "org", "limit_usd": 1, "soft_multiplier": 0.5},
        {"id": "x", "scope": "org", "limit_usd": 1, "policy": "maybe"},
        {"id": "x", "scope": "tenant", "subject": "a", "tenant": "a", "limit_usd": 1},
    ]
    for data in bad:
        with pytest.raises(ValidationError):
            BudgetSpec(**data)
    with pytest.raises(ValidationError, match="used twice"):
        BudgetsConfig(budgets=[{"id": "a", "scope": "org", "limit_usd": 1}] * 2)


def test_money_units() -> None:
    assert usd_to_micros(0.1) == 100_000
    assert usd_to_micros(Decimal("0.0000001")) == 1  # rounds up
    assert usd_to_micros(1e-12) == 1
    assert usd_to_micros(2) == 2_000_000
    with pytest.raises(ValueError):
        usd_to_micros(-0.01)
    with pytest.raises(ValueError):
        usd_to_micros(float("nan"))
    s = BudgetSpec(id="x", scope="org", limit_usd=10.0000009, limit_tokens=1001)
    assert s.limit_micros == 10_000_000  # limits round down
    assert s.caps(1.5) == (15_000_001, 1501)
    assert BudgetSpec(id="y", scope="org", limit_tokens=5).caps() == (None, 5)


SPECS = [
    BudgetSpec(id="org", scope="org", limit_usd=1000),
    BudgetSpec(id="acme", scope="tenant", subject="acme", limit_usd=100, policy="soft"),
    BudgetSpec(id="globex", scope="tenant", subject="globex", limit_usd=100),
    BudgetSpec(id="alice", scope="user", subject="alice", limit_usd=10),
    BudgetSpec(id="alice-at-globex", scope="user", subject="alice", tenant="globex", limit_usd=5),
    BudgetSpec(
        id="k1", scope="key", subject="key-1", limit_usd=5, policy="soft", soft_multiplier=3
    ),
    BudgetSpec(id="search", scope="tag", subject="feature=search", limit_usd=20),
    BudgetSpec(id="eu", scope="tag", subject="region=eu", limit_usd=20),
    BudgetSpec(id="off", scope="org", limit_usd=1, enabled=False),
]


def test_applicable_selects_every_level() -> None:
    alice = Principal(tenant="acme", key_id="key-1", user="alice", tags={"region": "eu"})
    ids = [s.id for s in applicable(SPECS, alice, {"feature": "search"})]
    assert ids == ["org", "acme", "alice", "k1", "eu", "search"]
    # A request tag cannot override the key's tag to escape its budget.
    ids = [s.id for s in applicable(SPECS, alice, {"region": "us"})]
    assert "eu" in ids and "search" not in ids
    bob = Principal(tenant="globex", key_id="key-2", user="bob")
    assert [s.id for s in applicable(SPECS, bob)] == ["org", "globex"]
    alice_globex = Principal(tenant="globex", user="alice")
    assert [s.id for s in applicable(SPECS, alice_globex)] == [
        "org", "globex", "alice", "alice-at-globex"]  # fmt: skip
    anonymous = Principal(tenant="initech")
    assert [s.id for s in applicable(SPECS, anonymous)] == ["org"]


names = st.sampled_from(["a", "b", "c"])
tag_maps = st.dictionaries(st.sampled_from(["feature", "region"]), names, max_size=2)


@st.composite
def budget_specs(draw: Any) -> BudgetSpec:
    scope = draw(st.sampled_from(["org", "tenant", "user", "key", "tag"]))
    subject = None
    if scope == "tag":
        subject = f"{draw(st.sampled_from(['feature', 'region']))}={draw(names)}"
    elif scope != "org":
        subject = draw(names)
    tenant = draw(st.one_of(st.none(), names)) if scope in ("user", "key", "tag") else None
    return BudgetSpec(
        id=f"s{draw(st.integers(0, 10**6))}",
        scope=scope,
        subject=subject,
        tenant=tenant,
        limit_usd=1,
        enabled=draw(st.booleans()),
    )


@settings(max_examples=200, deadline=None)
@given(
    st.lists(budget_specs(), max_size=12, unique_by=lambda s: s.id),
    st.builds(
        Principal,
        tenant=names,
        key_id=st.one_of(st.none(), names),
        user=st.one_of(st.none(), names),
        tags=tag_maps,
    ),
    st.one_of(st.none(), tag_maps),
)
def test_the_index_selects_what_applicable_selects(
    specs: list[BudgetSpec], principal: Principal, tags: dict[str, str] | None
) -> None:
    assert BudgetIndex(specs).applicable(principal, tags) == applicable(specs, principal, tags)


def test_soft_allowance_only_for_critical_requests() -> None:
    alice = Principal(tenant="acme", key_id="key-1", user="alice")
    specs = applicable(SPECS, alice)
    assert soft_allowance(specs, critical=False) == {}
    assert soft_allowance(specs, critical=True) == {"acme": 2.0, "k1": 3.0}
