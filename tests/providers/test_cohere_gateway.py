"""End to end: the official ``openai`` SDK → Thrifty → the Cohere adapter → the fake Cohere."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from openai import AsyncOpenAI

from tests.support import ADMIN_KEY, FAKE_PROVIDER_KEY
from thrifty.config import Config, config_from_dict
from thrifty.server.app import ThriftyApp
from thrifty.testing.fake_cohere import FakeCohereServer

KEY = FAKE_PROVIDER_KEY


@pytest.fixture
def config(cohere_fake: FakeCohereServer, tmp_path: Path) -> Config:
    data: dict[str, Any] = {
        "server": {"admin_key": ADMIN_KEY},
        "database": {"url": f"sqlite+aiosqlite:///{tmp_path / 'thrifty.db'}"},
        "keys": {"cache_ttl_s": 0},
        "providers": {"co": {"kind": "cohere", "base_url": cohere_fake.base_url, "api_key": KEY}},
        "models": [
            {"name": "command-r-plus", "provider": "co", "model": "command-r-plus-08-2024"},
            {"name": "embed-v4.0", "mode": "embedding", "provider": "co", "model": "embed-v4.0"},
        ],
    }
    return config_from_dict(data, env={}, source="test")


@pytest.fixture
async def sdk(app: ThriftyApp, api_key: str) -> AsyncIterator[AsyncOpenAI]:
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://thrifty/v1") as http:
        yield AsyncOpenAI(
            api_key=api_key,
            base_url="http://thrifty/v1",
            http_client=http,  # type: ignore[arg-type]
            max_retries=0,
        )


WEATHER: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


async def test_chat_tools_stream_and_embeddings(sdk: AsyncOpenAI) -> None:
    messages: list[Any] = [{"role": "user", "content": "Weather in Paris?"}]
    stream = await sdk.chat.completions.create(
        model="command-r-plus", messages=messages, tools=[WEATHER], stream=True
    )
    calls: dict[int, Any] = {}
    async for chunk in stream:
        for delta in chunk.choices[0].delta.tool_calls or ():
            entry = calls.setdefault(delta.index, {"id": delta.id, "args": ""})
            entry["args"] += delta.function.arguments or "" if delta.function else ""
    assert list(calls) == [0] and calls[0]["id"].startswith("get_weather_")
    call = {
        "id": calls[0]["id"],
        "type": "function",
        "function": {"name": "get_weather", "arguments": calls[0]["args"]},
    }
    messages += [
        {"role": "assistant", "tool_calls": [call]},
        {"role": "tool", "tool_call_id": calls[0]["id"], "content": "18C"},
    ]
    final = await sdk.chat.completions.create(
        model="command-r-plus", messages=messages, tools=[WEATHER], top_p=1
    )
    assert final.choices[0].finish_reason == "stop" and final.choices[0].message.content
    emb = await sdk.embeddings.create(model="embed-v4.0", input="hello", dimensions=256)
    assert len(emb.data[0].embedding) == 256


async def test_upstream_validation_error_reaches_client(sdk: AsyncOpenAI) -> None:
    orphan: list[Any] = [
        {"role": "user", "content": "x"},
        {"role": "tool", "tool_call_id": "nope", "content": "1"},
    ]
    with pytest.raises(openai.BadRequestError) as err:
        await sdk.chat.completions.create(model="command-r-plus", messages=orphan)
    assert "tool_call_id" in str(err.value)
