"""What the exact cache must never do: serve a stand-in's answer for the model that was asked,
serve one user tier's routed answer to another, let two principals share a scope, or leave
coalesced followers waiting on a leader that failed to land."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.server.test_auto_routing import ROUTING as AUTO_ROUTING
from tests.support import chat_body, gateway_config
from thrifty.cache.keys import scope_of
from thrifty.keys.principal import Principal
from thrifty.pipeline.context import RequestContext
from thrifty.server.app import ThriftyApp, create_app
from thrifty.testing import FakeOpenAIServer, Latency

# the auto-routing tests' group, with premium users' short prompts upgraded to the large model
UPGRADE = {"user_tiers": ["premium"], "when": ["simple", "medium"], "to": "large"}
ROUTING = {"groups": [{**AUTO_ROUTING["groups"][0], "user_tier_upgrades": [UPGRADE]}]}


@asynccontextmanager
async def served(
    fake: FakeOpenAIServer, tmp_path: Path, **overrides: Any
) -> AsyncIterator[tuple[ThriftyApp, httpx.AsyncClient]]:
    cache = {"enabled": True, "disk_path": str(tmp_path / "cache")}
    app = create_app(gateway_config(fake.base_url, tmp_path, cache=cache, **overrides))
    async with app.gateway:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            yield app, client


async def bearer(app: ThriftyApp, tenant: str = "acme", **kw: Any) -> dict[str, str]:
    key, _ = await app.gateway.keys.create(tenant, **kw)
    return {"authorization": f"Bearer {key}"}


def chat_calls(fake: FakeOpenAIServer) -> int:
    return sum(1 for r in fake.requests if r["path"].endswith("/chat/completions"))


async def test_a_fallback_models_answer_is_not_stored(fake: FakeOpenAIServer, tmp_path: Path):
    """gpt-4o failed and gpt-4o-mini answered: that answer is not gpt-4o's, so it is not
    cached under the gpt-4o request (else it would keep being served after gpt-4o is back)."""
    models = [
        {"name": "gpt-4o", "provider": "up", "model": "gpt-4o", "fallbacks": ["gpt-4o-mini"]},
        {"name": "gpt-4o-mini", "provider": "up", "model": "gpt-4o-mini"},
    ]
    async with served(fake, tmp_path, models=models) as (app, client):
        auth = await bearer(app)
        dispatch = next(s for s in app.gateway.chat_pipeline.stages if s.name == "dispatch")
        dispatch._retry = dispatch._retry.model_copy(update={"max_retries": 0})
        fake.set_fault("status=503", model="gpt-4o")
        body = chat_body("What is the capital of France?", model="gpt-4o")
        first = await client.post("/v1/chat/completions", json=body, headers=auth)
        assert first.status_code == 200 and first.headers["x-thrifty-model"] == "gpt-4o-mini"
        second = await client.post("/v1/chat/completions", json=body, headers=auth)
        assert second.headers["x-thrifty-cache"] == "miss"
        assert chat_calls(fake) >= 3  # gpt-4o tried (or skipped by its breaker), mini again
        # gpt-4o-mini's own answer to its own request is stored as usual
        mini = chat_body("What is the capital of France?", model="gpt-4o-mini")
        await client.post("/v1/chat/completions", json=mini, headers=auth)
        hit = await client.post("/v1/chat/completions", json=mini, headers=auth)
        assert hit.headers["x-thrifty-cache"] == "hit"


async def test_a_route_groups_answer_is_scoped_by_user_tier(
    fake: FakeOpenAIServer, tmp_path: Path
) -> None:
    """``auto`` sends a premium user's short prompt to the large model: a standard user's cached
    small-model answer must not serve it, nor the other way round."""
    async with served(fake, tmp_path, routing=ROUTING) as (app, client):
        standard = await bearer(app, user="sam", tier="standard")
        premium = await bearer(app, user="pat", tier="premium")
        body = chat_body("hi", model="auto")
        a = await client.post("/v1/chat/completions", json=body, headers=standard)
        b = await client.post("/v1/chat/completions", json=body, headers=premium)
        assert a.headers["x-thrifty-model"] == "gpt-4o-mini"
        assert b.headers["x-thrifty-cache"] == "miss" and b.headers["x-thrifty-model"] == "gpt-4o"
        again = await client.post("/v1/chat/completions", json=body, headers=premium)
        assert again.headers["x-thrifty-cache"] == "hit"
        assert again.headers["x-thrifty-model"] == "gpt-4o"
        # another standard user of the tenant shares the standard answer (tenant scope)
        other = await bearer(app, user="sue", tier="standard")
        shared = await client.post("/v1/chat/completions", json=body, headers=other)
        assert shared.headers["x-thrifty-cache"] == "hit"
        assert shared.headers["x-thrifty-model"] == "gpt-4o-mini"
        # an explicit model is keyed on the body alone, whoever asks
        explicit = chat_body("hi", model="gpt-4o-mini")
        await client.post("/v1/chat/completions", json=explicit, headers=standard)
        hit = await client.post("/v1/chat/completions", json=explicit, headers=premium)
        assert hit.headers["x-thrifty-cache"] == "hit"
        assert chat_calls(fake) == 3


async def test_a_route_group_is_split_only_by_the_tags_its_routing_reads(
    fake: FakeOpenAIServer, tmp_path: Path
) -> None:
    """A trace id in ``x-thrifty-tags`` changes nothing ``auto`` decides, so it does not split
    the cache; ``latency: low`` (time sensitivity) does."""
    async with served(fake, tmp_path, routing=ROUTING) as (app, client):
        auth = await bearer(app)
        body = chat_body("hi", model="auto")

        async def ask(tags: str) -> str:
            headers = {**auth, "x-thrifty-tags": tags}
            resp = await client.post("/v1/chat/completions", json=body, headers=headers)
            return str(resp.headers["x-thrifty-cache"])

        assert await ask("trace=a1") == "miss"
        assert await ask("trace=b2") == "hit"
        assert await ask("trace=c3,latency=low") == "miss"
        assert await ask("latency=low,trace=d4") == "hit"


def test_scope_names_cannot_collide() -> None:
    a = Principal(tenant="acme:bob", user="x")
    b = Principal(tenant="acme", user="bob:x")
    assert scope_of(a, "user") != scope_of(b, "user")
    assert scope_of(Principal(tenant="a|b"), "tenant") != scope_of(Principal(tenant="a"), "tenant")
    assert "|" not in scope_of(Principal(tenant="a|b", user="c|d"), "user")
    assert scope_of(Principal(tenant="a%3Ab"), "tenant") != scope_of(Principal(tenant="a:b"), "x")
    assert scope_of(Principal(tenant="acme", user="alice"), "user") == "u:acme:alice"


async def at_once(
    fake: FakeOpenAIServer,
    client: httpx.AsyncClient,
    auth: dict[str, str],
    body: dict[str, Any],
    n: int,
) -> list[httpx.Response]:
    """``n`` identical requests at once, the upstream slow enough that they coalesce; a hung
    follower fails the test instead of hanging it."""
    fake.latency = Latency(first_token_ms=200)
    requests = (client.post("/v1/chat/completions", json=body, headers=auth) for _ in range(n))
    return await asyncio.wait_for(asyncio.gather(*requests), timeout=30)


class Failing:
    def record(self, ctx: RequestContext) -> None:
        raise RuntimeError("a broken sink")


async def test_a_failing_recorder_still_lands_the_flight(
    fake: FakeOpenAIServer, tmp_path: Path
) -> None:
    """A sink that raises before the cache writer must not leave the followers waiting."""
    async with served(fake, tmp_path) as (app, client):
        auth = await bearer(app)
        app.gateway.recorders.insert(0, Failing())
        results = await at_once(fake, client, auth, chat_body("a popular question"), 5)
        assert all(r.status_code == 200 for r in results)
        assert sorted(r.headers["x-thrifty-cache"] for r in results) == ["hit"] * 4 + ["miss"]
        assert chat_calls(fake) == 1


async def test_a_store_that_raises_still_wakes_the_followers(
    fake: FakeOpenAIServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with served(fake, tmp_path) as (app, client):
        auth = await bearer(app)
        cache = app.gateway.cache
        assert cache is not None

        def broken_put(*args: Any) -> None:
            raise OSError("disk full")

        monkeypatch.setattr(cache, "put", broken_put)
        results = await at_once(fake, client, auth, chat_body("another popular question"), 3)
        # nothing was stored, but the followers still get the leader's answer
        assert all(r.status_code == 200 for r in results)
        assert sorted(r.headers["x-thrifty-cache"] for r in results) == ["hit", "hit", "miss"]
        assert chat_calls(fake) == 1


async def test_a_follower_stops_waiting_for_a_slow_leader(
    fake: FakeOpenAIServer, tmp_path: Path
) -> None:
    async with served(fake, tmp_path) as (app, client):
        auth = await bearer(app)
        stage = app.gateway.cache_stage
        assert stage is not None
        stage.follow_timeout_s = 0.05
        fake.latency = Latency(first_token_ms=500)
        body = chat_body("a slow question")
        leader = asyncio.ensure_future(client.post("/v1/chat/completions", json=body, headers=auth))
        while not stage.flights._flights:  # noqa: ASYNC110 (the leader registers its flight)
            await asyncio.sleep(0.005)
        follower = await client.post("/v1/chat/completions", json=body, headers=auth)
        await leader
        assert follower.status_code == 200 and follower.headers["x-thrifty-cache"] == "miss"
        row = await app.gateway.request_record(follower.headers["x-thrifty-request-id"])
        assert row is not None and "coalesce_timeout" in row["flags"]
        assert chat_calls(fake) == 2
