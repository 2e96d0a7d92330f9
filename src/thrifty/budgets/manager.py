"""``BudgetManager``: the gateway's budgets — the backend holding the counters, the specs
(config first; budgets set through the admin API or CLI override by id) and the index the
budget stage reads. Rebuilt in place when the specs change."""

from __future__ import annotations

from typing import Any

from thrifty.budgets.backend import BudgetBackend, FailurePolicy, InProcessBudgetBackend
from thrifty.budgets.config import BudgetsConfig
from thrifty.budgets.model import BudgetIndex, BudgetSpec
from thrifty.config import RedisConfig


class BudgetManager:
    def __init__(self, config: BudgetsConfig, redis: RedisConfig) -> None:
        self.config = config
        self._redis = redis
        self.backend: BudgetBackend = InProcessBudgetBackend()
        self._stored: dict[str, BudgetSpec] = {}
        self.store: Any = None
        self.index = BudgetIndex(config.budgets)

    async def start(self, store: Any = None) -> None:
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
            self._stored = {s.id: s for s in await store.list()}
        self.rebuild()

    def specs(self) -> list[BudgetSpec]:
        merged = {s.id: s for s in self.config.budgets}
        merged.update(self._stored)
        return sorted(merged.values(), key=lambda s: s.id)

    def rebuild(self) -> None:
        self.index = BudgetIndex(self.specs())

    def set_stored(self, specs: list[BudgetSpec]) -> None:
        self._stored = {s.id: s for s in specs}
        self.rebuild()

    async def aclose(self) -> None:
        await self.backend.aclose()
