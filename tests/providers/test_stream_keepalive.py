"""Upstream connections are kept alive across streams: a stream whose wire protocol has ended
(``data: [DONE]``, ``message_stop``, ``message-end``) gives its connection back to the pool once
the HTTP body ends, instead of closing it. Without this every streamed request paid a new TCP
(and, to a real provider, TLS) handshake."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.providers.test_transport import Answer, self_signed, server
from thrifty.config import ProviderConfig
from thrifty.providers.base import Deployment, Provider
from thrifty.providers.factory import provider_class
from thrifty.providers.transport import Pool
from thrifty.providers.transport import connection as connection_module
from thrifty.testing import (
    FakeAnthropicServer,
    FakeBedrockServer,
    FakeCohereServer,
    FakeGeminiServer,
    FakeOpenAIServer,
)
from thrifty.testing.fake_bedrock import FAKE_ACCESS_KEY, FAKE_SECRET_KEY
from thrifty.testing.server_base import ServerLifecycle

KEY = "sk-keepalive"


def _openai() -> tuple[ServerLifecycle, Callable[[str], dict[str, Any]], str]:
    return FakeOpenAIServer(), lambda url: {"api_key": KEY, "base_url": url}, "gpt-4o-mini"


FAKES: dict[str, Callable[[], tuple[ServerLifecycle, Callable[[str], dict[str, Any]], str]]] = {
    "openai": _openai,
    "anthropic": lambda: (
        FakeAnthropicServer(api_key=KEY),
        lambda url: {"api_key": KEY, "base_url": url},
        "claude-sonnet-4-5",
    ),
    "gemini": lambda: (
        FakeGeminiServer(api_key=KEY),
        lambda url: {"api_key": KEY, "base_url": url},
        "gemini-2.5-flash",
    ),
    "cohere": lambda: (
        FakeCohereServer(api_key=KEY),
        lambda url: {"api_key": KEY, "base_url": url},
        "command-r-plus",
    ),
    "bedrock": lambda: (
        FakeBedrockServer(),
        lambda url: {
            "base_url": url,
            "region": "us-east-1",
            "aws_access_key_id": FAKE_ACCESS_KEY,
            "aws_secret_access_key": FAKE_SECRET_KEY,
        },
        "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
    ),
}


async def settled(provider: Provider, limit_s: float = 5.0) -> None:
    """Until every open upstream connection is idle in its pool again (a stream's final chunk
    may land a moment after its last event)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit_s
    pools = getattr(provider, "_pools", None) or {}
    while any(pool._open != len(pool._idle) for pool in pools.values()):
        assert loop.time() < deadline, "a connection never went back to its pool"
        await asyncio.sleep(0.005)


@pytest.mark.parametrize("kind", sorted(FAKES))
async def test_streams_and_completions_share_one_upstream_connection(kind: str) -> None:
    fake, settings, model = FAKES[kind]()
    async with fake:
        cls = provider_class(kind)
        provider: Provider = cls(kind, ProviderConfig(kind=kind, **settings(fake.base_url)))
        await provider.open()
        dep = Deployment(kind, model, "m")
        body = {"model": "m", "messages": [{"role": "user", "content": "Hello there"}]}
        try:
            for i in range(4):
                stream = await provider.stream(dep, {**body, "stream": True})
                try:
                    events = [event async for event in stream]
                finally:
                    await stream.aclose()
                assert events, kind
                await settled(provider)
                if i == 1:
                    await provider.complete(dep, body)
        finally:
            await provider.aclose()
        assert fake.connections == 1, kind


# -- the transport: a body that ends after the stream's last event ----------------------------
EVENTS = b'data: {"n": 1}\n\ndata: [DONE]\n\n'
HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"


def late_end(delay_s: float) -> Answer:
    """``EVENTS`` in one chunk, then the body's final chunk ``delay_s`` later."""
    return [HEAD + b"%x\r\n%s\r\n" % (len(EVENTS), EVENTS), delay_s, b"0\r\n\r\n"]


async def read_events(pool: Pool) -> list[bytes]:
    """Lines up to ``data: [DONE]``, then ``release_when_complete`` (what an adapter does)."""
    resp = await pool.request("POST", "/v1/chat/completions", b"", b"{}")
    lines = []
    while True:
        line = await resp.readline(5.0)
        lines.append(line)
        if line.startswith(b"data: [DONE]"):
            resp.release_when_complete()
            resp.close()  # the adapter's aclose: changes nothing now
            return lines


@pytest.mark.parametrize("tls", [False, True])
async def test_a_final_chunk_after_the_last_event_still_returns_the_connection(
    tls: bool, tmp_path: Path
) -> None:
    server_ctx = client_ctx = None
    if tls:
        cert, key = self_signed(tmp_path)
        server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        server_ctx.load_cert_chain(cert, key)
        client_ctx = ssl.create_default_context(cafile=cert)
    async with server(lambda n, h, b: late_end(0.5), ssl=server_ctx) as s:
        pool = Pool(s["origin"], ssl_context=client_ctx)
        for _ in range(2):
            await read_events(pool)
            # the reader has its events while the body is still open: not pooled yet ...
            assert pool._open == 1 and not pool._idle
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 5
            while not pool._idle:  # ... until the final chunk lands
                assert loop.time() < deadline, "the connection never went back to the pool"
                await asyncio.sleep(0.01)
        await pool.close()
        assert s["connections"] == 1 and len(s["heads"]) == 2


async def test_a_body_that_never_ends_is_dropped_after_the_grace(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(connection_module, "END_GRACE_S", 0.05)
    async with server(lambda n, h, b: late_end(3600.0)) as s:
        pool = Pool(s["origin"], limit=1)
        await read_events(pool)
        await asyncio.sleep(0.2)  # past the grace: the connection was closed, not pooled
        await asyncio.wait_for(read_events(pool), 5)  # the limit of 1 is free again
        await asyncio.sleep(0.2)
        await pool.close()
        assert s["connections"] == 2 and len(s["heads"]) == 2


async def test_closing_the_pool_drops_a_connection_still_reading_a_finished_stream() -> None:
    async with server(lambda n, h, b: late_end(3600.0)) as s:
        pool = Pool(s["origin"])
        await read_events(pool)
        assert len(pool.settling) == 1 and pool._open == 1
        await pool.close()
        for _ in range(100):  # the abort lands within a few loop iterations
            if pool._open == 0:
                break
            await asyncio.sleep(0.01)
        assert pool._open == 0 and not pool.settling
