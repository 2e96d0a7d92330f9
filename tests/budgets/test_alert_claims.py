"""Alerts across replicas (real Redis): each alert is sent by one replica, recorded by all; a
restarted replica does not send it again; without Redis the alert is sent anyway."""

from __future__ import annotations

import logging

import pytest

from tests.budgets.test_sinks import Collect, make_alert
from tests.redisx import redis_prefix, redis_url
from thrifty.budgets.alert_claims import RedisAlertClaims
from thrifty.budgets.config import BudgetsConfig
from thrifty.budgets.manager import BudgetManager
from thrifty.budgets.sinks import AlertDispatcher
from thrifty.config import RedisConfig

__all__ = ["redis_prefix"]


def replica(prefix: str, url: str | None = None) -> tuple[AlertDispatcher, Collect]:
    sink = Collect()
    dispatcher = AlertDispatcher([sink])
    dispatcher.claim = RedisAlertClaims.from_url(url or redis_url(), prefix)
    return dispatcher, sink


async def close(dispatcher: AlertDispatcher) -> None:
    claims = dispatcher.claim
    await dispatcher.aclose()
    assert isinstance(claims, RedisAlertClaims)
    await claims.aclose()


async def test_each_alert_is_sent_by_one_replica(redis_prefix: str) -> None:
    (a, sent_a), (b, sent_b) = replica(redis_prefix), replica(redis_prefix)
    try:
        [first] = await a.dispatch([make_alert("budget:acme:2026-11:0.8")])
        [second] = await b.dispatch([make_alert("budget:acme:2026-11:0.8")])
        assert sent_a.got == ["budget:acme:2026-11:0.8"] and sent_b.got == []
        assert first.deliveries == {"collect": "sent"}
        assert second.deliveries == {"*": "sent by another replica"}
        assert len(b.log) == 1  # recorded by every replica
        # another key (the next level) is a new alert: whoever sees it first sends it
        b.submit([make_alert("budget:acme:2026-11:0.9")])
        await b.flush(5)
        assert sent_b.got == ["budget:acme:2026-11:0.9"]
    finally:
        await close(a)
        await close(b)
    restarted, sent = replica(redis_prefix)  # a fresh process: its engine forgot, Redis did not
    try:
        await restarted.dispatch([make_alert("budget:acme:2026-11:0.8")])
        assert sent.got == []
    finally:
        await close(restarted)


async def test_without_redis_the_alert_is_sent_anyway(caplog: pytest.LogCaptureFixture) -> None:
    dispatcher, sent = replica("unreachable", "redis://127.0.0.1:9/0")
    try:
        with caplog.at_level(logging.WARNING, logger="thrifty.alerts"):
            await dispatcher.dispatch([make_alert("k1"), make_alert("k2")])
        assert sent.got == ["k1", "k2"]
        claims = dispatcher.claim
        assert isinstance(claims, RedisAlertClaims) and claims.failures == 2
        assert caplog.text.count("alert claims: Redis unavailable") == 1  # once per outage
    finally:
        await close(dispatcher)


async def test_a_failing_claim_does_not_cost_the_alert() -> None:
    sink = Collect()
    dispatcher = AlertDispatcher([sink])

    async def broken(_alert: object) -> bool:
        raise RuntimeError("claim exploded")

    dispatcher.claim = broken
    [record] = await dispatcher.dispatch([make_alert()])
    assert sink.got == ["k1"] and record.deliveries == {"collect": "sent"}
    await dispatcher.aclose()


async def test_budget_managers_sharing_redis_claim_alerts(redis_prefix: str) -> None:
    shared = RedisConfig(url=redis_url(), prefix=redis_prefix)
    alone = BudgetManager(BudgetsConfig(), RedisConfig())
    await alone.start()
    assert alone.dispatcher.claim is None  # one process: nothing to share
    await alone.aclose()
    managers = [BudgetManager(BudgetsConfig(), shared) for _ in range(2)]
    sinks = [Collect(), Collect()]
    for manager, sink in zip(managers, sinks, strict=True):
        manager.dispatcher.sinks = [sink]
        await manager.start()
    try:
        for manager in managers:
            manager.dispatcher.submit([make_alert("anomaly:acme:2026-11-20T11")])
            await manager.dispatcher.flush(5)
        assert sorted(len(s.got) for s in sinks) == [0, 1]
    finally:
        for manager in managers:
            await manager.aclose()
