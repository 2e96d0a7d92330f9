"""Single-flight: identical requests in flight at the same time make one upstream call.

In one process a leader registers a future under the request's cache key; followers await it
and are answered with the leader's result. Across replicas the leader also takes a Redis lock
(``SET NX PX``); a follower on another replica waits for the lock to go and then reads the
answer from the shared cache tier (or, if the leader stored nothing, calls upstream itself).
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

log = logging.getLogger("thrifty.cache")


class SingleFlight:
    def __init__(
        self, redis: Any = None, prefix: str = "thrifty", lock_ttl_s: float = 60.0
    ) -> None:
        # A leader registers its key with no future; the first follower creates one, so a
        # request that nobody joins costs a dict entry, not a future.
        self._flights: dict[str, asyncio.Future[bytes | None] | None] = {}
        self._redis = redis
        self._prefix = f"{prefix}:flight:"
        self._lock_ms = int(lock_ttl_s * 1000)
        self._token = os.urandom(8).hex()

    def follow(self, key: str) -> asyncio.Future[bytes | None] | None:
        """The in-process flight for ``key``, if one is running."""
        if key not in self._flights:
            return None
        future = self._flights[key]
        if future is None:
            future = asyncio.get_running_loop().create_future()
            self._flights[key] = future
        return future

    def lead(self, key: str) -> None:
        self._flights[key] = None

    def land(self, key: str, value: bytes | None) -> None:
        """The leader finished: wake the followers with the stored entry (or None)."""
        future = self._flights.pop(key, None)
        if future is not None and not future.done():
            future.set_result(value)
        if self._redis is not None:
            task = asyncio.get_running_loop().create_task(self._unlock(key))
            task.add_done_callback(lambda t: t.exception())

    async def lock(self, key: str) -> bool:
        """Take the cross-replica lock; False if another replica leads this request."""
        if self._redis is None:
            return True
        try:
            async with asyncio.timeout(0.5):
                return bool(
                    await self._redis.set(
                        self._prefix + key, self._token, nx=True, px=self._lock_ms
                    )
                )
        except Exception as exc:
            log.warning("coalescing lock unavailable (%s): calling upstream", exc)
            return True

    async def wait_remote(self, key: str, timeout_s: float = 30.0, poll_s: float = 0.02) -> None:
        """Wait until another replica's leader released the lock (or the wait times out)."""
        try:
            async with asyncio.timeout(timeout_s):
                while await self._redis.exists(self._prefix + key):  # noqa: ASYNC110
                    await asyncio.sleep(poll_s)  # the lock lives in another process
        except Exception as exc:
            log.info("stopped waiting for a remote leader: %s", exc.__class__.__name__)

    async def _unlock(self, key: str) -> None:
        try:
            async with asyncio.timeout(0.5):
                if (await self._redis.get(self._prefix + key)) == self._token.encode():
                    await self._redis.delete(self._prefix + key)
        except Exception:
            pass  # the lock expires by itself
