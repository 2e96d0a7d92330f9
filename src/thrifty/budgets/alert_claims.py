"""One delivery per alert across replicas: before a replica sends an alert, it claims the
alert's ``dedup_key`` in the shared Redis (``SET NX`` with an expiry); only the replica whose
claim lands sends it. Every replica still records the alert in its own log.

Each replica's ``AlertEngine`` already returns a key once per process; without claims, N
replicas that see the same threshold crossed (shared budget counters) or the same anomalous
hour (shared ledger) each send it, and a restarted replica sends again. A claim outlives both:
it expires after ``ttl_s`` (400 days: longer than any budget window but ``total``).

When Redis cannot be asked, the alert is sent anyway (a duplicate beats a missed alert) and
the failure is logged once per outage.
"""

from __future__ import annotations

import logging
from typing import Any

from thrifty.budgets.alerts import Alert

log = logging.getLogger("thrifty.alerts")

CLAIM_TTL_S = 400 * 86_400


class RedisAlertClaims:
    """``await claims(alert)``: True if this replica should send ``alert``."""

    def __init__(self, client: Any, prefix: str, *, ttl_s: int = CLAIM_TTL_S) -> None:
        self._client = client
        self._prefix = f"{prefix}:alert-claim:"
        self._ttl_s = ttl_s
        self._failing = False
        self.failures = 0

    @classmethod
    def from_url(cls, url: str, prefix: str, **kw: Any) -> RedisAlertClaims:
        import redis.asyncio as aioredis

        return cls(
            aioredis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0), prefix, **kw
        )

    async def __call__(self, alert: Alert) -> bool:
        try:
            won = await self._client.set(
                self._prefix + alert.dedup_key, b"1", nx=True, ex=self._ttl_s
            )
        except Exception as exc:
            self.failures += 1
            if not self._failing:
                log.warning(
                    "alert claims: Redis unavailable (%r); sending %s without a claim (other "
                    "replicas may send it too)",
                    exc,
                    alert.dedup_key,
                )
            self._failing = True
            return True
        self._failing = False
        return bool(won)

    async def aclose(self) -> None:
        await self._client.aclose()
