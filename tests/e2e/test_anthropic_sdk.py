"""The official ``anthropic`` SDK against Thrifty's /v1/messages over real sockets: the same
pipeline (keys, routing, ledger) as OpenAI clients, answered here by the OpenAI fake."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import anthropic
import httpx
import pytest

from tests.support import gateway_config
from thrifty.server.local import LocalServer
from thrifty.testing import FakeOpenAIServer

pytestmark = pytest.mark.e2e

TOOLS = [
    {
        "name": "get_weather",
        "description": "Weather for a city",
        "input_schema": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    }
]


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[tuple[LocalServer, str, FakeOpenAIServer]]:
    async with FakeOpenAIServer() as fake:
        config = gateway_config(
            fake.base_url,
            tmp_path,
            models=[
                {"name": "claude-sonnet-5-5", "provider": "up", "model": "claude-sonnet-5-5"},
            ],
        )
        async with LocalServer(config) as server:
            key, _ = await server.gateway.keys.create("acme", user="al")
            yield server, key, fake


def _client(server: LocalServer, key: str) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=server.root_url, api_key=key, max_retries=0)


async def test_messages_create_and_stream(stack) -> None:
    server, key, fake = stack
    client = _client(server, key)
    kwargs = {
        "model": "claude-sonnet-5-5",
        "max_tokens": 200,
        "system": "Be brief.",
        "messages": [{"role": "user", "content": "Tell me about lighthouses"}],
    }
    raw = await client.messages.with_raw_response.create(**kwargs)
    message = await raw.parse()
    assert message.type == "message" and message.role == "assistant"
    assert message.content[0].type == "text" and message.content[0].text
    assert message.stop_reason == "end_turn"
    assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0
    assert raw.headers["x-thrifty-model"] == "claude-sonnet-5-5"
    # what reached the upstream is the canonical OpenAI body
    sent = fake.requests[-1]["body"]
    assert sent["messages"][0] == {"role": "system", "content": "Be brief."}
    assert sent["max_tokens"] == 200

    async with client.messages.stream(**kwargs) as stream:
        text = "".join([t async for t in stream.text_stream])
        final = await stream.get_final_message()
    assert text == message.content[0].text
    assert final.usage.output_tokens == message.usage.output_tokens
    row = await server.gateway.request_record(raw.headers["x-thrifty-request-id"])
    assert row["endpoint"] == "messages" and row["cost_usd"] > 0 and row["user"] == "al"
    await client.close()


async def test_tools_round_trip(stack) -> None:
    server, key, fake = stack
    client = _client(server, key)
    first = await client.messages.create(
        model="claude-sonnet-5-5",
        max_tokens=200,
        tools=TOOLS,
        messages=[{"role": "user", "content": "Weather in Paris?"}],
    )
    assert first.stop_reason == "tool_use"
    call = next(b for b in first.content if b.type == "tool_use")
    assert call.name == "get_weather" and "city" in call.input
    second = await client.messages.create(
        model="claude-sonnet-5-5",
        max_tokens=200,
        tools=TOOLS,
        messages=[
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": [b.model_dump() for b in first.content]},
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "Sunny"}],
            },
        ],
    )
    assert second.stop_reason == "end_turn" and second.content[0].text
    sent = fake.requests[-1]["body"]["messages"]
    assert sent[1]["tool_calls"][0]["id"] == call.id
    assert sent[2] == {"role": "tool", "tool_call_id": call.id, "content": "Sunny"}

    async with client.messages.stream(
        model="claude-sonnet-5-5",
        max_tokens=200,
        tools=TOOLS,
        messages=[{"role": "user", "content": "Weather in Rome?"}],
    ) as stream:
        final = await stream.get_final_message()
    tool = next(b for b in final.content if b.type == "tool_use")
    assert tool.name == "get_weather" and isinstance(tool.input, dict) and "city" in tool.input
    await client.close()


async def test_count_tokens_and_errors(stack) -> None:
    server, key, _ = stack
    client = _client(server, key)
    counted = await client.messages.count_tokens(
        model="claude-sonnet-5-5", messages=[{"role": "user", "content": "Hello there, world"}]
    )
    assert counted.input_tokens > 0
    with pytest.raises(anthropic.NotFoundError):
        await client.messages.create(
            model="claude-9", max_tokens=10, messages=[{"role": "user", "content": "x"}]
        )
    bad = anthropic.AsyncAnthropic(base_url=server.root_url, api_key="tk-wrong", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError):
        await bad.messages.create(
            model="claude-sonnet-5-5", max_tokens=10, messages=[{"role": "user", "content": "x"}]
        )
    async with httpx.AsyncClient(base_url=server.root_url) as raw:
        for version in ("2023-06-01", "2026-10-21"):
            resp = await raw.post(
                "/v1/messages",
                headers={"x-api-key": key, "anthropic-version": version},
                json={"model": "claude-sonnet-5-5", "messages": [{"role": "user", "content": "x"}]},
            )
            assert resp.status_code == 400
            assert resp.json() == {
                "type": "error",
                "error": {
                    "type": "invalid_request_error",
                    "message": "max_tokens: Field required (a positive integer)",
                },
            }
    await client.close()
    await bad.close()
