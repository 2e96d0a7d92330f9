"""The Gemini adapter's error mapping, against the fake Gemini server and small stub servers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from aiohttp import web

from thrifty.config import ProviderConfig
from thrifty.errors import (
    UpstreamConnectionError,
    UpstreamProtocolError,
    UpstreamRateLimitError,
    UpstreamStatusError,
    UpstreamTimeoutError,
)
from thrifty.providers.base import Deployment
from thrifty.providers.gemini import GeminiProvider
from thrifty.testing.fake_gemini import FakeGeminiServer

KEY = "gm-test-key"
FLASH = Deployment("gemini", "gemini-2.5-flash", "flash")
USER = {"role": "user", "content": "What is the capital of France?"}


@pytest.fixture
async def fake() -> AsyncIterator[FakeGeminiServer]:
    async with FakeGeminiServer(api_key=KEY) as server:
        yield server


def make(base_url: str, **kw: Any) -> GeminiProvider:
    return GeminiProvider("gemini", ProviderConfig(kind="gemini", base_url=base_url, **kw))


@pytest.fixture
async def gemini(fake: FakeGeminiServer) -> AsyncIterator[GeminiProvider]:
    provider = make(fake.base_url, api_key=KEY)
    await provider.open()
    try:
        yield provider
    finally:
        await provider.aclose()


def chat(*messages: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"model": "flash", "messages": list(messages), **extra}


async def collect(provider: GeminiProvider, dep: Deployment, body: dict[str, Any]) -> list[Any]:
    stream = await provider.stream(dep, body)
    try:
        return [event.data async for event in stream]
    finally:
        await stream.aclose()


@pytest.mark.parametrize(
    ("spec", "status", "retryable"),
    [
        ("status=400", 400, False),
        ("status=500", 502, True),
        ("status=503", 502, True),
    ],
)
async def test_status_errors(
    gemini: GeminiProvider, fake: FakeGeminiServer, spec: str, status: int, retryable: bool
) -> None:
    fake.set_fault(spec, times=1)
    with pytest.raises(UpstreamStatusError) as err:
        await gemini.complete(FLASH, chat(USER))
    assert err.value.status == status and err.value.retryable is retryable
    assert err.value.message  # Google's message, kept


async def test_not_found_keeps_message(gemini: GeminiProvider) -> None:
    with pytest.raises(UpstreamStatusError) as err:
        await gemini.complete(Deployment("gemini", "unknown-model", "x"), chat(USER))
    assert err.value.status == 404 and not err.value.retryable
    assert "models/unknown-model is not found" in err.value.message


async def test_rate_limit(gemini: GeminiProvider, fake: FakeGeminiServer) -> None:
    fake.set_fault("status=429;retry_after=2", times=1)
    with pytest.raises(UpstreamRateLimitError) as err:
        await gemini.complete(FLASH, chat(USER))
    assert err.value.retry_after_s == 2.0 and err.value.retryable


async def test_resource_exhausted_retry_info(fake: FakeGeminiServer) -> None:
    async def handler(request: web.Request) -> web.Response:
        body = {
            "error": {
                "code": 429,
                "message": "You exceeded your current quota.",
                "status": "RESOURCE_EXHAUSTED",
                "details": [
                    {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "13s"}
                ],
            }
        }
        return web.json_response(body, status=429)

    async with _server(handler) as base:
        provider = make(base)
        await provider.open()
        try:
            with pytest.raises(UpstreamRateLimitError) as err:
                await provider.complete(FLASH, chat(USER))
        finally:
            await provider.aclose()
    assert err.value.retry_after_s == 13.0
    assert err.value.message == "You exceeded your current quota."


async def test_bad_key_is_not_the_callers_fault(fake: FakeGeminiServer) -> None:
    provider = make(fake.base_url, api_key="wrong")
    await provider.open()
    try:
        with pytest.raises(UpstreamStatusError) as err:
            await provider.complete(FLASH, chat(USER))
    finally:
        await provider.aclose()
    assert err.value.upstream_status == 401 and err.value.status == 502
    assert err.value.code == "upstream_auth_failed"


async def test_transport_faults(gemini: GeminiProvider, fake: FakeGeminiServer) -> None:
    fake.set_fault("reset", times=1)
    with pytest.raises(UpstreamConnectionError):
        await gemini.complete(FLASH, chat(USER))
    fake.set_fault("malformed", times=1)
    with pytest.raises(UpstreamProtocolError):
        await gemini.complete(FLASH, chat(USER))
    fake.set_fault("malformed", times=1)
    with pytest.raises(UpstreamProtocolError):
        await collect(gemini, FLASH, chat(USER, stream=True))
    fake.set_fault("cut=2", times=1)
    with pytest.raises(UpstreamConnectionError):
        await collect(gemini, FLASH, chat(USER, stream=True))


async def test_timeout(fake: FakeGeminiServer) -> None:
    provider = make(fake.base_url, api_key=KEY, timeouts={"first_byte_s": 0.2})
    await provider.open()
    fake.set_fault("timeout=1", times=1)
    try:
        with pytest.raises(UpstreamTimeoutError):
            await provider.complete(FLASH, chat(USER))
    finally:
        await provider.aclose()


async def test_mid_stream_error(fake: FakeGeminiServer) -> None:
    provider = make(fake.base_url, api_key=KEY, headers={"x-fake-stream-error": "503"})
    await provider.open()
    try:
        stream = await provider.stream(FLASH, chat(USER, stream=True))
        seen: list[Any] = []
        with pytest.raises(UpstreamStatusError) as err:
            async for event in stream:
                seen.append(event.data)
    finally:
        await provider.aclose()
    assert seen  # the first chunk got through
    assert err.value.upstream_status == 503 and err.value.retryable


async def test_stream_without_finish_reason_is_cut(fake: FakeGeminiServer) -> None:
    chunk = {"candidates": [{"content": {"role": "model", "parts": [{"text": "Hi"}]}}]}

    async def handler(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await resp.prepare(request)
        await resp.write(b"data: " + orjson.dumps(chunk) + b"\r\n\r\n")
        await resp.write_eof()
        return resp

    async with _server(handler) as base:
        provider = make(base)
        await provider.open()
        try:
            stream = await provider.stream(FLASH, chat(USER, stream=True))
            with pytest.raises(UpstreamConnectionError):
                async for _ in stream:
                    pass
        finally:
            await provider.aclose()


async def test_untranslatable_request_is_a_400(gemini: GeminiProvider) -> None:
    orphan = {"role": "tool", "tool_call_id": "call_x", "content": "1"}
    with pytest.raises(UpstreamStatusError) as err:
        await gemini.complete(FLASH, chat(USER, orphan))
    assert err.value.status == 400 and "call_x" in err.value.message


class _server:
    """A one-handler aiohttp server for shapes the fake does not produce."""

    def __init__(self, handler: Any) -> None:
        self.app = web.Application()
        self.app.router.add_route("*", "/{tail:.*}", handler)
        self.runner = web.AppRunner(self.app)

    async def __aenter__(self) -> str:
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        return f"http://127.0.0.1:{self.runner.addresses[0][1]}"

    async def __aexit__(self, *exc: object) -> None:
        await self.runner.cleanup()
