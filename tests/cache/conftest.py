"""Fixtures for cache tests: a gateway with the cache on, over a fake upstream."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import chat_body, gateway_config
from thrifty.server.app import ThriftyApp, create_app
from thrifty.testing import FakeOpenAIServer


class CacheStack:
    def __init__(self, app: ThriftyApp, client: httpx.AsyncClient, fake: FakeOpenAIServer) -> None:
        self.app, self.client, self.fake = app, client, fake
        self.keys: dict[str, str] = {}

    async def key(self, tenant: str = "acme", user: str | None = None) -> dict[str, str]:
        name = f"{tenant}/{user}"
        if name not in self.keys:
            self.keys[name], _ = await self.app.gateway.keys.create(tenant, user=user)
        return {"authorization": f"Bearer {self.keys[name]}"}

    async def chat(
        self,
        body: dict[str, Any] | None = None,
        *,
        tenant: str = "acme",
        user: str | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> httpx.Response:
        body = body or chat_body("What is the capital of France?", **extra)
        auth = await self.key(tenant, user)
        return await self.client.post(
            "/v1/chat/completions", json=body, headers={**auth, **(headers or {})}
        )

    def upstream_calls(self) -> int:
        return sum(1 for r in self.fake.requests if r["path"].endswith("/chat/completions"))

    async def row(self, resp: httpx.Response) -> dict[str, Any]:
        row = await self.app.gateway.request_record(resp.headers["x-thrifty-request-id"])
        assert row is not None
        return row


@asynccontextmanager
async def cache_stack(
    fake: FakeOpenAIServer, tmp_path: Path, **cache: Any
) -> AsyncIterator[CacheStack]:
    redis = cache.pop("redis", None)
    extra: dict[str, Any] = {"redis": redis} if redis else {}
    if "ledger" in cache:
        extra["ledger"] = cache.pop("ledger")
    config = gateway_config(
        fake.base_url,
        tmp_path,
        cache={"enabled": True, "disk_path": str(tmp_path / "cache"), **cache},
        **extra,
    )
    app = create_app(config)
    async with app.gateway:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            yield CacheStack(app, client, fake)


@pytest.fixture
def make_stack(fake: FakeOpenAIServer, tmp_path: Path) -> Callable[..., Any]:
    return lambda **cache: cache_stack(fake, tmp_path, **cache)


@pytest.fixture
async def stack(fake: FakeOpenAIServer, tmp_path: Path) -> AsyncIterator[CacheStack]:
    async with cache_stack(fake, tmp_path) as s:
        yield s
