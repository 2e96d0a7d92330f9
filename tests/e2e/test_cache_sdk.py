"""The caches with the official OpenAI SDK over real sockets: exact hits (streaming and not)
parse identically, a paraphrase is a semantic hit, a negation is not, N concurrent identical
requests make one upstream call; any parameter change is a miss, entries expire, tenants never
share them (exact or semantic), the Redis tier serves another replica, the disk tier survives a
restart, and near-misses by a number, a negation or an entity are misses."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.redisx import redis_prefix, redis_url
from tests.support import gateway_config
from thrifty.server.local import LocalServer
from thrifty.testing import FakeOpenAIServer, Latency

pytestmark = pytest.mark.e2e
__all__ = ["redis_prefix"]


def msgs(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


async def test_caches_with_the_sdk(tmp_path: Path) -> None:
    async with FakeOpenAIServer() as fake:
        config = gateway_config(
            fake.base_url,
            tmp_path,
            cache={
                "enabled": True,
                "disk_path": str(tmp_path / "c"),
                "semantic": {"enabled": True},
            },
        )
        async with LocalServer(config) as server:
            key, _ = await server.gateway.keys.create("acme")
            client = openai.AsyncOpenAI(base_url=server.base_url, api_key=key, max_retries=0)
            chat = client.chat.completions.with_raw_response.create
            miss = await chat(model="gpt-4o-mini", messages=msgs("How do I reset my password?"))
            hit = await chat(model="gpt-4o-mini", messages=msgs("How do I reset my password?"))
            assert (miss.headers["x-thrifty-cache"], hit.headers["x-thrifty-cache"]) == (
                "miss",
                "hit",
            )
            assert hit.parse().choices[0].message.content == miss.parse().choices[0].message.content
            stream = await client.chat.completions.create(
                model="gpt-4o-mini", messages=msgs("How do I reset my password?"), stream=True
            )
            text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
            assert text == miss.parse().choices[0].message.content
            para = await chat(
                model="gpt-4o-mini", messages=msgs("What's the way to reset my password?")
            )
            assert para.headers["x-thrifty-cache"] == "semantic"
            await chat(model="gpt-4o-mini", messages=msgs("How do I turn on dark mode?"))
            neg = await chat(model="gpt-4o-mini", messages=msgs("How do I turn off dark mode?"))
            assert neg.headers["x-thrifty-cache"] == "miss"
            calls = len(fake.requests)
            fake.latency = Latency(first_token_ms=200)
            answers = await asyncio.gather(
                *(
                    chat(model="gpt-4o-mini", messages=msgs("one popular question"))
                    for _ in range(10)
                )
            )
            assert len(fake.requests) == calls + 1
            assert len({a.parse().choices[0].message.content for a in answers}) == 1
            await client.close()


@asynccontextmanager
async def sdk(
    fake: FakeOpenAIServer,
    tmp_path: Path,
    *tenants: str,
    redis: dict[str, str] | None = None,
    **cache: Any,
) -> AsyncIterator[dict[str, Any]]:
    """A served gateway with the cache on; one raw-response ``create`` per tenant."""
    extra: dict[str, Any] = {"redis": redis} if redis else {}
    config = gateway_config(
        fake.base_url,
        tmp_path,
        cache={"enabled": True, "disk_path": str(tmp_path / "c"), **cache},
        **extra,
    )
    async with LocalServer(config) as server:
        clients = []
        creates: dict[str, Any] = {}
        for tenant in tenants or ("acme",):
            key, _ = await server.gateway.keys.create(tenant)
            client = openai.AsyncOpenAI(base_url=server.base_url, api_key=key, max_retries=0)
            clients.append(client)
            creates[tenant] = client.chat.completions.with_raw_response.create
        try:
            yield creates
        finally:
            for client in clients:
                await client.close()


def status(raw: Any) -> str:
    return str(raw.headers["x-thrifty-cache"])


async def test_a_parameter_change_is_a_miss_with_the_sdk(tmp_path: Path) -> None:
    tool = {
        "type": "function",
        "function": {"name": "lookup", "parameters": {"type": "object", "properties": {}}},
    }
    base: dict[str, Any] = {
        "model": "gpt-4o-mini",
        "messages": msgs("Name a colour."),
        "temperature": 0,
    }
    changes: list[dict[str, Any]] = [
        {"temperature": 0.2},
        {"tools": [tool]},
        {"response_format": {"type": "json_object"}},
        {"messages": [{"role": "system", "content": "Answer in French."}, *msgs("Name a colour.")]},
        {"max_tokens": 50},
        {"seed": 7},
    ]
    async with FakeOpenAIServer() as fake, sdk(fake, tmp_path) as chat:
        assert status(await chat["acme"](**base)) == "miss"
        assert status(await chat["acme"](**base)) == "hit"
        for change in changes:
            assert status(await chat["acme"](**{**base, **change})) == "miss", change
        # the deny-list: user and metadata do not change the key
        assert status(await chat["acme"](**base, user="u-1", metadata={"k": "v"})) == "hit"


async def test_expiry_tenants_and_near_misses_with_the_sdk(tmp_path: Path) -> None:
    cache: dict[str, Any] = {
        "rules": [{"model": "gpt-4o", "ttl_s": 0.3}],
        "semantic": {"enabled": True},
    }
    async with FakeOpenAIServer() as fake, sdk(fake, tmp_path, "acme", "globex", **cache) as chat:
        acme, globex = chat["acme"], chat["globex"]
        short = {"model": "gpt-4o", "messages": msgs("What is the tallest mountain?")}
        await acme(**short)
        assert status(await acme(**short)) == "hit"
        assert status(await globex(**short)) == "miss"  # tenant B never gets A's entry
        await asyncio.sleep(0.5)
        assert status(await acme(**short)) == "miss"  # expired
        ask = {"model": "gpt-4o-mini", "messages": msgs("How do I reset my password?")}
        para = {"model": "gpt-4o-mini", "messages": msgs("What's the way to reset my password?")}
        await acme(**ask)
        assert status(await globex(**para)) == "miss"  # nor A's entry by meaning
        assert status(await acme(**para)) == "semantic"
        for first, second in (
            ("Give me 3 examples of renewable energy.", "Give me 5 examples of renewable energy."),
            ("Should I enable two-factor login?", "Should I not enable two-factor login?"),
            ("How do I install Django on Ubuntu?", "How do I install Django on Debian?"),
        ):
            await acme(model="gpt-4o-mini", messages=msgs(first))
            assert status(await acme(model="gpt-4o-mini", messages=msgs(second))) == "miss"


async def test_the_redis_tier_serves_another_replica_with_the_sdk(
    tmp_path: Path, redis_prefix: str
) -> None:
    redis = {"url": redis_url(), "prefix": redis_prefix}
    body = {"model": "gpt-4o-mini", "messages": msgs("What is the speed of light?")}
    async with FakeOpenAIServer() as fake:
        async with (
            sdk(fake, tmp_path / "a", redis=redis) as a,
            sdk(fake, tmp_path / "b", redis=redis) as b,
        ):
            first = await a["acme"](**body)
            await asyncio.sleep(0.2)  # the Redis write happens behind the request
            again = await b["acme"](**body)
            assert status(again) == "hit"
            assert again.parse().choices[0].message.content == (
                first.parse().choices[0].message.content
            )
        assert len(fake.requests) == 1


async def test_the_disk_tier_survives_a_restart_with_the_sdk(tmp_path: Path) -> None:
    body = {"model": "gpt-4o-mini", "messages": msgs("What is the boiling point of water?")}
    async with FakeOpenAIServer() as fake:
        async with sdk(fake, tmp_path) as chat:
            first = await chat["acme"](**body)
        async with sdk(fake, tmp_path) as chat:  # a new process on the same disk
            again = await chat["acme"](**body)
        assert status(again) == "hit"
        assert again.parse().choices[0].message.content == first.parse().choices[0].message.content
        assert len(fake.requests) == 1
