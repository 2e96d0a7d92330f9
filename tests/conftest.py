"""Shared fixtures: a real fake upstream on loopback, a gateway app driven in-process."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.support import FAKE_PROVIDER_KEY, gateway_config
from thrifty.config import Config
from thrifty.server.app import ThriftyApp, create_app
from thrifty.testing import FakeCohereServer, FakeGeminiServer, FakeOpenAIServer


@pytest.fixture
async def fake() -> AsyncIterator[FakeOpenAIServer]:
    server = FakeOpenAIServer()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def gemini_fake() -> AsyncIterator[FakeGeminiServer]:
    """A fake Gemini API that accepts ``FAKE_PROVIDER_KEY`` only."""
    async with FakeGeminiServer(api_key=FAKE_PROVIDER_KEY) as server:
        yield server


@pytest.fixture
async def cohere_fake() -> AsyncIterator[FakeCohereServer]:
    """A fake Cohere API that accepts ``FAKE_PROVIDER_KEY`` only."""
    async with FakeCohereServer(api_key=FAKE_PROVIDER_KEY) as server:
        yield server


@pytest.fixture
def config(fake: FakeOpenAIServer, tmp_path: Path) -> Config:
    return gateway_config(fake.base_url, tmp_path)


@pytest.fixture
async def app(config: Config) -> AsyncIterator[ThriftyApp]:
    application = create_app(config)
    async with application.gateway:
        yield application


@pytest.fixture
async def client(app: ThriftyApp) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://thrifty") as c:
        yield c


@pytest.fixture
async def api_key(app: ThriftyApp) -> str:
    key, _ = await app.gateway.keys.create("acme", user="alice", tier="premium")
    return key


@pytest.fixture
def auth(api_key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {api_key}"}
