"""``BudgetManager``: the gateway's budgets — the backend holding the counters, the budget
definitions (config first; budgets set through the admin API or CLI override by id, re-read
when the change log moves) and the alerting that follows every settled request."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime
from typing import Any

from thrifty.budgets.alert_claims import RedisAlertClaims
from thrifty.budgets.alerts import AlertEngine
from thrifty.budgets.backend import BudgetBackend, FailurePolicy, InProcessBudgetBackend
from thrifty.budgets.config import BudgetsConfig
from thrifty.budgets.model import period_window
from thrifty.budgets.sinks import build_dispatcher
from thrifty.budgets.store import BudgetDefinitions, BudgetStore
from thrifty.config import RedisConfig

log = logging.getLogger("thrifty.budgets")


class BudgetManager(BudgetDefinitions):
    def __init__(self, config: BudgetsConfig, redis: RedisConfig) -> None:
        super().__init__(config.budgets, None)
        self.config = config
        self._redis = redis
        self.backend: BudgetBackend = InProcessBudgetBackend()
        self.engine = AlertEngine(config.alerts)
        self.dispatcher = build_dispatcher(config.alerts.sinks)
        self.alerts = self.dispatcher.log
        self._poller: asyncio.Task[None] | None = None
        self._claims: RedisAlertClaims | None = None
        self.on_change: Any = None

    async def start(self, store: BudgetStore | None = None) -> None:
        if self._redis.url:  # replicas share Redis: each alert is sent by one of them
            self._claims = RedisAlertClaims.from_url(self._redis.url, self._redis.prefix)
            self.dispatcher.claim = self._claims
        if self.config.backend == "redis":
            if not self._redis.url:
                from thrifty.errors import ConfigError

                raise ConfigError("budgets.backend: redis needs redis.url")
            from thrifty.budgets.redis_backend import RedisBudgetBackend

            self.backend = RedisBudgetBackend.from_url(
                self._redis.url,
                self._redis.prefix,
                timeout_s=self.config.timeout_s,
                failure=FailurePolicy(self.config.failure),
                cooldown_s=self.config.cooldown_s,
            )
        self.store = store
        if store is not None:
            await store.record_config(self.config_specs)
            await self.refresh(force=True)
            self._poller = asyncio.create_task(self._poll(), name="thrifty-budget-refresh")

    async def refresh(self, *, force: bool = False) -> bool:
        changed = await super().refresh(force=force)
        if changed and self.on_change is not None:
            self.on_change()
        return changed

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(2.0)
            try:
                await self.refresh()
            except Exception as exc:
                log.warning("could not re-read budgets: %s", exc)

    async def check_alerts(self, principal: Any, tags: dict[str, str]) -> None:
        """Threshold and forecast alerts for the budgets a request touched (after settle)."""
        now = datetime.now(UTC)
        for spec in self.index.applicable(principal, tags):
            window = period_window(spec, now)
            usage = await self.backend.usage(spec, window.window_id)
            self.dispatcher.submit(self.engine.budget(spec, window, usage, now))

    async def check_anomalies(self, gateway: Any, now: datetime | None = None) -> int:
        """Spend anomalies per tenant: the last complete hour against the hours before it
        (robust z-score, ``docs/anomalies.md``). Returns how many alerts fired."""
        from datetime import timedelta

        from thrifty.ledger.periods import Period

        now = now or datetime.now(UTC)
        hour = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
        history_h = self.config.alerts.anomaly_history_h
        period = Period(hour - timedelta(hours=history_h), hour + timedelta(hours=1), "anomaly")
        rows, _ = await gateway.usage(period, ["tenant", "hour"])
        spend: dict[str, dict[str, float]] = {}
        for r in rows:
            spend.setdefault(r.group["tenant"], {})[r.group["hour"]] = r.cost_usd
        fired = 0
        for tenant, by_hour in spend.items():
            hours = [hour - timedelta(hours=h) for h in range(history_h, 0, -1)]
            labels = [h.strftime("%Y-%m-%dT%H") for h in hours]
            seen = [i for i, label in enumerate(labels) if label in by_hour]
            # The history starts at the tenant's first hour with traffic, not at zero-padding.
            history = [by_hour.get(label, 0.0) for label in labels[seen[0] :]] if seen else []
            current = by_hour.get(hour.strftime("%Y-%m-%dT%H"), 0.0)
            alerts = self.engine.anomaly(tenant, history, hour, current)
            fired += len(alerts)
            self.dispatcher.submit(alerts)
        return fired

    def watch_anomalies(self, gateway: Any, interval_s: float = 300.0) -> None:
        async def loop() -> None:
            while True:
                await asyncio.sleep(interval_s)
                try:
                    await self.check_anomalies(gateway)
                except Exception as exc:
                    log.warning("anomaly check failed: %s", exc)

        self._anomalies = asyncio.create_task(loop(), name="thrifty-anomalies")

    async def aclose(self) -> None:
        anomalies = getattr(self, "_anomalies", None)
        if anomalies is not None:
            anomalies.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await anomalies
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
        await self.dispatcher.aclose()
        if self._claims is not None:
            await self._claims.aclose()
        await self.backend.aclose()
