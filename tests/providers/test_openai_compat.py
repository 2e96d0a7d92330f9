"""The OpenAI-compatible adapter's wire details: URLs, auth headers, Azure, extra headers."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from email.utils import formatdate
from typing import Any

import pytest
from aiohttp import web

from thrifty.config import ProviderConfig
from thrifty.errors import UpstreamTimeoutError
from thrifty.providers.base import Deployment
from thrifty.providers.openai_compat import OpenAICompatProvider, parse_retry_after

ANSWER = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1,
    "model": "m",
    "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}
    ],
    "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
}


@pytest.fixture
async def capture() -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    seen: list[dict[str, Any]] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append(
            {
                "path": request.path,
                "query": dict(request.query),
                "headers": dict(request.headers),
                "body": await request.json(),
            }
        )
        if request.headers.get("x-slow"):
            import asyncio

            await asyncio.sleep(2)
        return web.json_response(ANSWER)

    app = web.Application()
    app.router.add_post("/{tail:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}", seen
    await runner.cleanup()


async def test_openai_kind_bearer_and_extra_headers(capture) -> None:
    base, seen = capture
    cfg = ProviderConfig(
        kind="vllm", base_url=f"{base}/v1", api_key="sk-up", headers={"X-Team": "search"}
    )
    p = OpenAICompatProvider("local", cfg)
    await p.open()
    try:
        resp = await p.complete(
            Deployment("local", "meta-llama/Llama-3.1-8B", "llama"),
            {"model": "llama", "messages": [], "extra_field": 1},
        )
    finally:
        await p.aclose()
    assert resp.data == ANSWER
    req = seen[0]
    assert req["path"] == "/v1/chat/completions"
    assert req["headers"]["Authorization"] == "Bearer sk-up"
    assert req["headers"]["X-Team"] == "search"
    assert req["body"] == {"model": "meta-llama/Llama-3.1-8B", "messages": [], "extra_field": 1}


async def test_azure_deployment_url_api_version_and_api_key(capture) -> None:
    base, seen = capture
    cfg = ProviderConfig(kind="azure", base_url=base, api_key="az-key", api_version="2024-10-21")
    p = OpenAICompatProvider("azure", cfg)
    await p.open()
    try:
        await p.complete(
            Deployment("azure", "my-gpt4o", "gpt-4o"), {"model": "gpt-4o", "messages": []}
        )
        await p.embed(Deployment("azure", "my-embed", "emb"), {"model": "emb", "input": "x"})
    finally:
        await p.aclose()
    assert seen[0]["path"] == "/openai/deployments/my-gpt4o/chat/completions"
    assert seen[1]["path"] == "/openai/deployments/my-embed/embeddings"
    assert seen[0]["query"] == {"api-version": "2024-10-21"}
    assert seen[0]["headers"]["api-key"] == "az-key"
    assert "Authorization" not in seen[0]["headers"]


async def test_total_timeout(capture) -> None:
    base, _ = capture
    cfg = ProviderConfig(
        kind="openai", base_url=base, headers={"x-slow": "1"}, timeouts={"first_byte_s": 0.3}
    )
    p = OpenAICompatProvider("slow", cfg)
    await p.open()
    try:
        with pytest.raises(UpstreamTimeoutError):
            await p.complete(Deployment("slow", "m", "m"), {"model": "m", "messages": []})
    finally:
        await p.aclose()


def test_parse_retry_after() -> None:
    assert parse_retry_after({"retry-after-ms": "1500"}) == 1.5
    assert parse_retry_after({"retry-after": "3"}) == 3.0
    assert parse_retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0  # past
    future = parse_retry_after({"retry-after": formatdate(time.time() + 30, usegmt=True)})
    assert future is not None and 25 < future <= 30
    assert parse_retry_after({"retry-after": "soon"}) is None
    assert parse_retry_after({}) is None
