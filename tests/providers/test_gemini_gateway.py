"""End to end: the official ``openai`` SDK → Thrifty → the Gemini adapter → the fake Gemini."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from openai import AsyncOpenAI

from tests.support import ADMIN_KEY, FAKE_PROVIDER_KEY
from thrifty.config import Config, config_from_dict
from thrifty.server.app import ThriftyApp
from thrifty.testing.fake_gemini import FakeGeminiServer

KEY = FAKE_PROVIDER_KEY


@pytest.fixture
def config(gemini_fake: FakeGeminiServer, tmp_path: Path) -> Config:
    data: dict[str, Any] = {
        "server": {"admin_key": ADMIN_KEY},
        "database": {"url": f"sqlite+aiosqlite:///{tmp_path / 'thrifty.db'}"},
        "keys": {"cache_ttl_s": 0},
        "providers": {
            "google": {"kind": "gemini", "base_url": gemini_fake.base_url, "api_key": KEY}
        },
        "models": [
            {"name": "gemini-2.5-flash", "provider": "google", "model": "gemini-2.5-flash"},
            {
                "name": "gemini-embedding-001",
                "mode": "embedding",
                "provider": "google",
                "model": "gemini-embedding-001",
            },
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
        )


WEATHER: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


async def test_chat_tools_and_stream_through_gateway(sdk: AsyncOpenAI) -> None:
    messages: list[Any] = [{"role": "user", "content": "Weather in Paris?"}]
    first = await sdk.chat.completions.create(
        model="gemini-2.5-flash", messages=messages, tools=[WEATHER]
    )
    call = first.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert first.choices[0].finish_reason == "tool_calls" and call.id.startswith("call_")
    assert first.usage is not None and first.usage.completion_tokens_details is not None
    assert first.usage.completion_tokens_details.reasoning_tokens == 32
    messages += [
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "18C and sunny"},
    ]
    stream = await sdk.chat.completions.create(
        model="gemini-2.5-flash", messages=messages, tools=[WEATHER], stream=True
    )
    text = ""
    finish = None
    async for chunk in stream:
        assert chunk.choices, "no usage-only chunk unless the client asked for one"
        text += chunk.choices[0].delta.content or ""
        finish = chunk.choices[0].finish_reason or finish
    assert text and finish == "stop"


async def test_stream_usage_and_embeddings(sdk: AsyncOpenAI) -> None:
    stream = await sdk.chat.completions.create(
        model="gemini-2.5-flash",
        messages=[{"role": "user", "content": "Hi"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [c async for c in stream]
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens > 32
    emb = await sdk.embeddings.create(model="gemini-embedding-001", input=["a", "b"])
    assert len(emb.data) == 2 and len(emb.data[0].embedding) == 3072
