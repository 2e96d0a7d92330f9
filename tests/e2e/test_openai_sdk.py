"""End to end over real loopback sockets: the official ``openai`` SDK → Thrifty → fake upstream."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from tests.support import gateway_config
from thrifty.server.local import LocalServer
from thrifty.testing import FakeOpenAIServer

pytestmark = pytest.mark.e2e


class _Background:
    """Fake upstream + gateway on real sockets, in a background event loop (for sync clients)."""

    def __init__(self, tmp_path: Path) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.tmp_path = tmp_path

    def call(self, coro):  # type: ignore[no-untyped-def]
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)

    async def _start(self) -> None:
        self.fake = FakeOpenAIServer()
        await self.fake.start()
        self.server = LocalServer(gateway_config(self.fake.base_url, self.tmp_path))
        await self.server.__aenter__()
        self.key, _ = await self.server.gateway.keys.create("acme", tier="premium")

    async def _stop(self) -> None:
        await self.server.__aexit__(None, None, None)
        await self.fake.stop()

    def __enter__(self) -> _Background:
        self.call(self._start())
        return self

    def __exit__(self, *exc: object) -> None:
        self.call(self._stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[_Background]:
    with _Background(tmp_path) as s:
        yield s


TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}, "unit": {"enum": ["c", "f"]}},
                "required": ["city"],
            },
        },
    }
]
MSG = [{"role": "user", "content": "What's the weather in Paris?"}]


def test_sync_sdk_chat_stream_tools_json_embeddings(stack: _Background) -> None:
    client = openai.OpenAI(base_url=stack.server.base_url, api_key=stack.key, max_retries=0)
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MSG)
    completion = raw.parse()
    assert raw.headers["x-thrifty-model"] == "gpt-4o-mini"
    assert completion.choices[0].message.content
    assert completion.usage.total_tokens > 0

    chunks = list(
        client.chat.completions.create(
            model="gpt-4o-mini", messages=MSG, stream=True, stream_options={"include_usage": True}
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == completion.choices[0].message.content
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0

    tool = client.chat.completions.create(model="gpt-4o", messages=MSG, tools=TOOLS)
    assert tool.choices[0].finish_reason == "tool_calls"
    assert tool.choices[0].message.tool_calls[0].function.name == "get_weather"

    json_answer = client.chat.completions.create(
        model="gpt-4o-mini", messages=MSG, response_format={"type": "json_object"}
    )
    import json

    assert isinstance(json.loads(json_answer.choices[0].message.content), dict)

    emb = client.embeddings.create(model="text-embedding-3-small", input=["a", "b"])
    assert len(emb.data) == 2 and len(emb.data[0].embedding) > 0  # SDK default: base64

    models = {m.id for m in client.models.list()}
    assert "gpt-4o-mini" in models

    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="no-such-model", messages=MSG)
    bad = openai.OpenAI(base_url=stack.server.base_url, api_key="tk-wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.chat.completions.create(model="gpt-4o-mini", messages=MSG)


def test_sync_sdk_sees_upstream_failures(stack: _Background) -> None:
    client = openai.OpenAI(base_url=stack.server.base_url, api_key=stack.key, max_retries=0)
    stack.fake.set_fault("status=429;retry_after=1")
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model="gpt-4o-mini", messages=MSG)
    stack.fake.set_fault("cut=2")
    with pytest.raises(openai.APIError):
        for _ in client.chat.completions.create(model="gpt-4o-mini", messages=MSG, stream=True):
            pass
    stack.fake.set_fault(None)
    assert client.chat.completions.create(model="gpt-4o-mini", messages=MSG).choices


async def test_async_sdk_stream_and_tools(tmp_path: Path) -> None:
    async with FakeOpenAIServer() as fake:
        async with LocalServer(gateway_config(fake.base_url, tmp_path)) as server:
            key, _ = await server.gateway.keys.create("acme")
            client = openai.AsyncOpenAI(base_url=server.base_url, api_key=key, max_retries=0)
            stream = await client.chat.completions.create(
                model="gpt-4o-mini", messages=MSG, tools=TOOLS, stream=True
            )
            args, name = "", None
            async for chunk in stream:
                for tc in chunk.choices[0].delta.tool_calls or [] if chunk.choices else []:
                    name = name or tc.function.name
                    args += tc.function.arguments or ""
            assert name == "get_weather"
            import json

            assert "city" in json.loads(args)
            answers = await asyncio.gather(
                *(
                    client.chat.completions.create(
                        model="gpt-4o-mini", messages=[{"role": "user", "content": f"q{i}"}]
                    )
                    for i in range(20)
                )
            )
            assert len({a.choices[0].message.content for a in answers}) > 1
            await client.close()
