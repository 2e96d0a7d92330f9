"""Cross-provider paths over real sockets: the OpenAI SDK through Thrifty to an Anthropic
upstream, the Anthropic SDK through Thrifty to an Anthropic upstream, and a fallback chain
across providers (Anthropic → OpenAI) with one ledger row per request."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import anthropic
import openai
import pytest

from tests.support import gateway_config
from thrifty.server.local import LocalServer
from thrifty.testing import FakeOpenAIServer
from thrifty.testing.fake_anthropic import FakeAnthropicServer

pytestmark = pytest.mark.e2e


@pytest.fixture
async def stack(
    tmp_path: Path,
) -> AsyncIterator[tuple[LocalServer, str, FakeAnthropicServer, FakeOpenAIServer]]:
    async with FakeOpenAIServer() as oai, FakeAnthropicServer() as ant:
        config = gateway_config(
            oai.base_url,
            tmp_path,
            providers={
                "anthropic": {"kind": "anthropic", "base_url": ant.base_url, "api_key": "sk-ant"},
                "openai": {"kind": "openai", "base_url": oai.base_url, "api_key": "sk-oai"},
            },
            models=[
                {
                    "name": "claude-haiku-4-5",
                    "provider": "anthropic",
                    "model": "claude-haiku-4-5",
                    "fallbacks": ["gpt-4o-mini"],
                },
                {"name": "gpt-4o-mini", "provider": "openai", "model": "gpt-4o-mini"},
            ],
            resilience={"retries": {"max_retries": 0}},
        )
        async with LocalServer(config) as server:
            key, _ = await server.gateway.keys.create("acme")
            yield server, key, ant, oai


async def test_openai_sdk_to_anthropic_upstream(stack) -> None:
    server, key, ant, _ = stack
    client = openai.AsyncOpenAI(base_url=server.base_url, api_key=key, max_retries=0)
    msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi there"}]
    raw = await client.chat.completions.with_raw_response.create(
        model="claude-haiku-4-5", messages=msgs, max_tokens=100
    )
    answer = raw.parse()
    assert answer.choices[0].message.content
    assert raw.headers["x-thrifty-model"] == "claude-haiku-4-5"
    sent = ant.requests[-1]
    assert sent["body"]["system"] in ("Be brief.", [{"type": "text", "text": "Be brief."}])
    chunks = [
        c
        async for c in await client.chat.completions.create(
            model="claude-haiku-4-5", messages=msgs, max_tokens=100, stream=True
        )
    ]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == answer.choices[0].message.content
    row = await server.gateway.request_record(raw.headers["x-thrifty-request-id"])
    assert row["provider"] == "anthropic" and row["cost_usd"] > 0
    await client.close()


async def test_anthropic_sdk_to_anthropic_upstream(stack) -> None:
    server, key, _, _ = stack
    client = anthropic.AsyncAnthropic(base_url=server.root_url, api_key=key, max_retries=0)
    msg = await client.messages.create(
        model="claude-haiku-4-5", max_tokens=100, messages=[{"role": "user", "content": "Hello"}]
    )
    assert msg.content[0].text and msg.usage.output_tokens > 0
    counted = await client.messages.count_tokens(
        model="claude-haiku-4-5", messages=[{"role": "user", "content": "Hello"}]
    )
    assert counted.input_tokens > 0
    await client.close()


async def test_fallback_chain_across_providers(stack) -> None:
    server, key, ant, _oai = stack
    ant.set_fault("status=529")
    client = openai.AsyncOpenAI(base_url=server.base_url, api_key=key, max_retries=0)
    raw = await client.chat.completions.with_raw_response.create(
        model="claude-haiku-4-5", messages=[{"role": "user", "content": "Hi"}], max_tokens=50
    )
    assert raw.headers["x-thrifty-model"] == "gpt-4o-mini"
    assert raw.headers["x-thrifty-fallback"].startswith("anthropic/claude-haiku-4-5(")
    row = await server.gateway.request_record(raw.headers["x-thrifty-request-id"])
    assert row["requested_model"] == "claude-haiku-4-5" and row["served_model"] == "gpt-4o-mini"
    assert [a["deployment"] for a in row["fallback_path"]] == [
        "anthropic/claude-haiku-4-5",
        "openai/gpt-4o-mini",
    ]
    # the stream fails over before its first byte too
    ant.set_fault("status=500")
    chunks = [
        c
        async for c in await client.chat.completions.create(
            model="claude-haiku-4-5",
            messages=[{"role": "user", "content": "Hi"}],
            max_tokens=50,
            stream=True,
        )
    ]
    assert any(c.choices and c.choices[0].delta.content for c in chunks)
    await client.close()


async def test_bedrock_to_anthropic_to_openai_chain(tmp_path: Path) -> None:
    """The seed's chain: Bedrock Claude first, then Anthropic direct, then OpenAI."""
    from thrifty.testing import FAKE_ACCESS_KEY, FAKE_SECRET_KEY, FakeBedrockServer

    bedrock_id = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
    async with FakeOpenAIServer() as oai, FakeAnthropicServer() as ant, FakeBedrockServer() as brk:
        config = gateway_config(
            oai.base_url,
            tmp_path,
            providers={
                "bedrock": {
                    "kind": "bedrock",
                    "base_url": brk.base_url,
                    "region": "us-east-1",
                    "aws_access_key_id": FAKE_ACCESS_KEY,
                    "aws_secret_access_key": FAKE_SECRET_KEY,
                },
                "anthropic": {"kind": "anthropic", "base_url": ant.base_url, "api_key": "sk-ant"},
                "openai": {"kind": "openai", "base_url": oai.base_url, "api_key": "sk-oai"},
            },
            models=[
                {
                    "name": "claude-sonnet-4-5",
                    "deployments": [
                        {"provider": "bedrock", "model": bedrock_id},
                        {"provider": "anthropic", "model": "claude-sonnet-4-5"},
                    ],
                    "fallbacks": ["gpt-4o"],
                },
                {"name": "gpt-4o", "provider": "openai", "model": "gpt-4o"},
            ],
            resilience={"retries": {"max_retries": 0}},
        )
        async with LocalServer(config) as server:
            key, _ = await server.gateway.keys.create("acme")
            client = openai.AsyncOpenAI(base_url=server.base_url, api_key=key, max_retries=0)

            async def ask() -> tuple[str, dict]:
                raw = await client.chat.completions.with_raw_response.create(
                    model="claude-sonnet-4-5",
                    messages=[{"role": "user", "content": "Hello"}],
                    max_tokens=50,
                )
                assert raw.parse().choices[0].message.content
                row = await server.gateway.request_record(raw.headers["x-thrifty-request-id"])
                return raw.headers["x-thrifty-model"], row

            served, row = await ask()
            assert row["deployment"] == f"bedrock/{bedrock_id}" and row["cost_usd"] > 0
            assert brk.requests[-1]["headers"]["authorization"].startswith("AWS4-HMAC-SHA256")
            brk.set_fault("status=503")
            served, row = await ask()
            assert (
                row["deployment"] == "anthropic/claude-sonnet-4-5" and served == "claude-sonnet-4-5"
            )
            ant.set_fault("status=529")
            served, row = await ask()
            assert served == "gpt-4o"
            assert [a["deployment"] for a in row["fallback_path"]] == [
                f"bedrock/{bedrock_id}",
                "anthropic/claude-sonnet-4-5",
                "openai/gpt-4o",
            ]
            await client.close()
