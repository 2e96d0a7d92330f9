"""Resolve a request's credentials to a ``Principal``.

Lookups go to the key store and are cached in process for ``keys.cache_ttl_s`` seconds (also
negative results, so a flood of bad keys does not reach the database). A revocation through
the admin API clears the cache at once; one through the CLI is seen within the TTL.
"""

from __future__ import annotations

import hmac
import logging
import time

from thrifty.config import ServerConfig
from thrifty.errors import AuthenticationError, PermissionDeniedError
from thrifty.keys.principal import Principal
from thrifty.keys.store import KeyStore

log = logging.getLogger("thrifty.auth")

_MAX_CACHE = 100_000


def bearer_token(authorization: str | None, x_api_key: str | None = None) -> str | None:
    if authorization:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
    return x_api_key or None


class Authenticator:
    def __init__(self, store: KeyStore, server: ServerConfig, cache_ttl_s: float) -> None:
        self._store = store
        self._ttl = cache_ttl_s
        self._open = server.open_mode
        self._open_principal = Principal(tenant=server.open_mode_tenant, tier="standard")
        self._admin_key = server.admin_key
        self._cache: dict[str, tuple[float, Principal | None]] = {}
        if self._open:
            log.warning(
                "OPEN MODE: requests without a key are accepted as tenant %r. "
                "Never use this outside local development.",
                server.open_mode_tenant,
            )

    async def principal(self, token: str | None) -> Principal:
        """The principal for a key; ``AuthenticationError`` (401) if missing, bad or revoked."""
        if not token:
            if self._open:
                return self._open_principal
            raise AuthenticationError(
                "You didn't provide an API key. Send it as 'Authorization: Bearer <key>'."
            )
        now = time.monotonic()
        hit = self._cache.get(token)
        if hit is not None and hit[0] > now:
            principal = hit[1]
        else:
            rec = await self._store.lookup(token)
            principal = rec.principal() if rec else None
            if self._ttl > 0:
                if len(self._cache) >= _MAX_CACHE:
                    self._cache.clear()
                self._cache[token] = (now + self._ttl, principal)
        if principal is None:
            raise AuthenticationError("Incorrect API key provided.")
        return principal

    def invalidate(self) -> None:
        self._cache.clear()

    def check_admin(self, token: str | None) -> None:
        """Admin API guard: 403 when no admin key is configured, 401 on a wrong one."""
        if not self._admin_key:
            raise PermissionDeniedError(
                "The admin API is disabled: set server.admin_key or THRIFTY_ADMIN_KEY."
            )
        if not token or not hmac.compare_digest(token.encode(), self._admin_key.encode()):
            raise AuthenticationError("Incorrect admin key provided.")
