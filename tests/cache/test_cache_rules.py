"""The cache rules that the other cache tests leave out: filtered answers and errors are not
stored, a global scope is shared across tenants, a route can refuse semantic hits, an entry can
be invalidated by its key or by a pattern, and embeddings live 24 hours by default."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.cache.conftest import cache_stack
from tests.cache.test_exact_cache import ADMIN
from tests.support import chat_body, gateway_config
from thrifty.server.app import create_app
from thrifty.testing import FakeAnthropicServer, FakeOpenAIServer


@pytest.mark.parametrize("stream", [False, True])
async def test_a_filtered_answer_is_not_stored(tmp_path: Path, stream: bool) -> None:
    """An Anthropic refusal reaches the client as ``finish_reason: content_filter``: never
    stored, so asking again reaches the provider again."""
    import httpx

    async with FakeAnthropicServer() as ant:
        config = gateway_config(
            ant.base_url,
            tmp_path,
            cache={"enabled": True, "disk_path": str(tmp_path / "cache")},
            providers={
                "anthropic": {"kind": "anthropic", "base_url": ant.base_url, "api_key": "sk-ant"}
            },
            models=[
                {"name": "claude-haiku-4-5", "provider": "anthropic", "model": "claude-haiku-4-5"}
            ],
        )
        app = create_app(config)
        async with app.gateway as gw:
            key, _ = await gw.keys.create("acme")
            auth = {"authorization": f"Bearer {key}"}
            body = chat_body("[fake:refusal]", model="claude-haiku-4-5", stream=stream)
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
                first = await c.post("/v1/chat/completions", json=body, headers=auth)
                assert "content_filter" in first.text
                again = await c.post("/v1/chat/completions", json=body, headers=auth)
                assert again.headers["x-thrifty-cache"] == "miss"
                # an ordinary answer from the same route is stored
                plain = chat_body("Hello", model="claude-haiku-4-5", stream=stream)
                await c.post("/v1/chat/completions", json=plain, headers=auth)
                hit = await c.post("/v1/chat/completions", json=plain, headers=auth)
                assert hit.headers["x-thrifty-cache"] == "hit"
        assert len([r for r in ant.requests if r["path"].endswith("/messages")]) == 3


async def test_an_error_is_not_stored(fake: FakeOpenAIServer, tmp_path: Path) -> None:
    async with cache_stack(fake, tmp_path) as s:
        fake.set_fault("status=400;message=bad request", times=1)
        failed = await s.chat()
        assert failed.status_code == 400
        ok = await s.chat()
        assert ok.status_code == 200 and ok.headers["x-thrifty-cache"] == "miss"
        assert (await s.chat()).headers["x-thrifty-cache"] == "hit"


async def test_a_global_scope_is_shared_across_tenants(
    fake: FakeOpenAIServer, tmp_path: Path
) -> None:
    faq = {"x-thrifty-tags": "use_case=faq"}
    async with cache_stack(fake, tmp_path, rules=[{"use_case": "faq", "scope": "global"}]) as s:
        await s.chat(tenant="acme", headers=faq)
        shared = await s.chat(tenant="globex", headers=faq)
        assert shared.headers["x-thrifty-cache"] == "hit"
        # without the tag, each tenant keeps its own entries
        await s.chat(tenant="acme")
        assert (await s.chat(tenant="globex")).headers["x-thrifty-cache"] == "miss"


async def test_a_route_can_refuse_semantic_hits(fake: FakeOpenAIServer, tmp_path: Path) -> None:
    semantic = {"semantic": {"enabled": True, "threshold": 0.92}}
    rules = [{"model": "gpt-4o", "semantic": False}]
    async with cache_stack(fake, tmp_path, rules=rules, **semantic) as s:
        for model in ("gpt-4o-mini", "gpt-4o"):
            await s.chat(chat_body("How do I reset my password?", model=model))
            paraphrase = await s.chat(
                chat_body("What's the way to reset my password?", model=model)
            )
            expected = "semantic" if model == "gpt-4o-mini" else "miss"
            assert paraphrase.headers["x-thrifty-cache"] == expected, model


async def test_invalidate_by_key_and_by_pattern(fake: FakeOpenAIServer, tmp_path: Path) -> None:
    async with cache_stack(fake, tmp_path) as s:
        await s.chat(tenant="acme")
        memory = s.app.gateway.cache.memory  # type: ignore[union-attr]
        (key,) = list(memory._data)
        r = await s.client.post("/admin/cache/invalidate", json={"key": key}, headers=ADMIN)
        assert r.status_code == 200 and r.json()["invalidated"] >= 1
        assert (await s.chat(tenant="acme")).headers["x-thrifty-cache"] == "miss"
        await s.chat(tenant="globex")
        r = await s.client.post(
            "/admin/cache/invalidate", json={"pattern": "t:acme|*"}, headers=ADMIN
        )
        assert r.json()["invalidated"] >= 1
        assert (await s.chat(tenant="acme")).headers["x-thrifty-cache"] == "miss"
        assert (await s.chat(tenant="globex")).headers["x-thrifty-cache"] == "hit"


async def test_embeddings_live_a_day_by_default(fake: FakeOpenAIServer, tmp_path: Path) -> None:
    async with cache_stack(fake, tmp_path) as s:
        auth = await s.key()
        body = {"model": "text-embedding-3-small", "input": ["a", "b"]}
        await s.client.post("/v1/embeddings", json=body, headers=auth)
        await s.chat()
        memory = s.app.gateway.cache.memory  # type: ignore[union-attr]
        left = {
            key.split("|")[1]: expires - time.monotonic()
            for key, (expires, *_) in memory._data.items()
        }
        assert 86_000 < left["embedding"] <= 86_400
        assert 3_500 < left["chat.completions"] <= 3_600
