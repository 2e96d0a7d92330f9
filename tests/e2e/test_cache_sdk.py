"""The caches with the official OpenAI SDK over real sockets: exact hits (streaming and not)
parse identically, a paraphrase is a semantic hit, a negation is not, N concurrent identical
requests make one upstream call."""

from __future__ import annotations

import asyncio
from pathlib import Path

import openai
import pytest

from tests.support import gateway_config
from thrifty.server.local import LocalServer
from thrifty.testing import FakeOpenAIServer, Latency

pytestmark = pytest.mark.e2e


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
            neg = await chat(model="gpt-4o-mini", messages=msgs("How do I turn off dark mode?"))
            await chat(model="gpt-4o-mini", messages=msgs("How do I turn on dark mode?"))
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
