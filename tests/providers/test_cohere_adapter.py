"""The Cohere adapter against the fake Cohere server, over real loopback sockets."""

from __future__ import annotations

import base64
import struct
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import orjson
import pytest
from aiohttp import web

from thrifty.config import ProviderConfig
from thrifty.errors import (
    UpstreamConnectionError,
    UpstreamProtocolError,
    UpstreamRateLimitError,
    UpstreamStatusError,
    UpstreamTimeoutError,
)
from thrifty.pricing import CostCalculator, PriceCatalog, Usage
from thrifty.providers.base import Deployment
from thrifty.providers.cohere import CohereProvider
from thrifty.testing.fake_cohere import FakeCohereServer
from thrifty.tokens import encoding_for

KEY = "co-test-key"
CMD = Deployment("cohere", "command-r-plus-08-2024", "cmd")
EMBED = Deployment("cohere", "embed-v4.0", "emb")
O200K, _ = encoding_for("command-r-plus-08-2024")  # what the fake counts with
USER = {"role": "user", "content": "What is the capital of France?"}
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
TIME = {
    "type": "function",
    "function": {
        "name": "get_time",
        "parameters": {"type": "object", "properties": {"tz": {"type": "string"}}},
    },
}


@pytest.fixture
async def fake() -> AsyncIterator[FakeCohereServer]:
    async with FakeCohereServer(api_key=KEY) as server:
        yield server


def make(base_url: str, **kw: Any) -> CohereProvider:
    return CohereProvider("cohere", ProviderConfig(kind="cohere", base_url=base_url, **kw))


@pytest.fixture
async def cohere(fake: FakeCohereServer) -> AsyncIterator[CohereProvider]:
    provider = make(fake.base_url, api_key=KEY)
    await provider.open()
    try:
        yield provider
    finally:
        await provider.aclose()


def chat(*messages: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"model": "cmd", "messages": list(messages), **extra}


async def collect(provider: CohereProvider, body: dict[str, Any]) -> list[Any]:
    stream = await provider.stream(CMD, body)
    try:
        return [event.data async for event in stream]
    finally:
        await stream.aclose()


async def test_text_round_trip_and_wire(cohere: CohereProvider, fake: FakeCohereServer) -> None:
    body = chat(
        {"role": "developer", "content": "Be terse."},
        USER,
        max_completion_tokens=300,
        stop="zzz",
        top_p=1.0,
        temperature=0.3,
    )
    resp = await cohere.complete(CMD, body)
    choice = resp.data["choices"][0]
    assert choice["finish_reason"] == "stop" and choice["message"]["content"]
    req = fake.requests[-1]
    assert req["path"] == "/v2/chat" and req["headers"]["authorization"] == f"Bearer {KEY}"
    assert req["body"] == {
        "model": "command-r-plus-08-2024",
        "messages": [{"role": "system", "content": "Be terse."}, USER],
        "max_tokens": 300,
        "stop_sequences": ["zzz"],
        "p": 0.99,  # clamped: Cohere rejects p = 1
        "temperature": 0.3,
        "stream": False,
    }
    prompt = len(O200K.encode_ordinary("Be terse.")) + len(O200K.encode_ordinary(USER["content"]))
    assert resp.data["usage"]["prompt_tokens"] == prompt  # billed, not raw (template) tokens


async def test_stream(cohere: CohereProvider, fake: FakeCohereServer) -> None:
    chunks = await collect(cohere, chat(USER, stream_options={"include_usage": True}))
    plain = await cohere.complete(CMD, chat(USER))
    assert fake.requests[0]["body"]["stream"] is True
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == plain.data["choices"][0]["message"]["content"]
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == plain.data["usage"]
    assert all(c["usage"] is None for c in chunks[:-1])
    assert len({c["id"] for c in chunks}) == 1


async def test_tools_round_trip(cohere: CohereProvider, fake: FakeCohereServer) -> None:
    resp = await cohere.complete(CMD, chat(USER, tools=[WEATHER, TIME], tool_choice="required"))
    choice = resp.data["choices"][0]
    assert choice["finish_reason"] == "tool_calls" and choice["message"]["content"] is None
    calls = choice["message"]["tool_calls"]
    assert [c["function"]["name"] for c in calls] == ["get_weather", "get_time"]
    assert isinstance(orjson.loads(calls[0]["function"]["arguments"])["city"], str)
    assert fake.requests[-1]["body"]["tool_choice"] == "REQUIRED"
    history = [
        USER,
        {"role": "assistant", "content": "Checking.", "tool_calls": calls},
        {"role": "tool", "tool_call_id": calls[0]["id"], "content": "18C"},
        {"role": "tool", "tool_call_id": calls[1]["id"], "content": "noon"},
    ]
    final = await cohere.complete(CMD, chat(*history, tools=[WEATHER, TIME]))
    assert final.data["choices"][0]["finish_reason"] == "stop"
    sent = fake.requests[-1]["body"]["messages"]
    assert sent[1] == {"role": "assistant", "tool_calls": calls, "tool_plan": "Checking."}
    assert sent[2] == {"role": "tool", "tool_call_id": calls[0]["id"], "content": "18C"}


async def test_named_tool_choice_narrows_tools(
    cohere: CohereProvider, fake: FakeCohereServer
) -> None:
    choice = {"type": "function", "function": {"name": "get_time"}}
    resp = await cohere.complete(CMD, chat(USER, tools=[WEATHER, TIME], tool_choice=choice))
    calls = resp.data["choices"][0]["message"]["tool_calls"]
    assert [c["function"]["name"] for c in calls] == ["get_time"]
    sent = fake.requests[-1]["body"]
    assert [t["function"]["name"] for t in sent["tools"]] == ["get_time"]
    assert sent["tool_choice"] == "REQUIRED"


async def test_stream_tool_calls(cohere: CohereProvider) -> None:
    body = chat(USER, tools=[WEATHER, TIME], tool_choice="required")
    chunks = await collect(cohere, body)
    plain = await cohere.complete(CMD, body)
    calls: dict[int, dict[str, Any]] = {}
    for chunk in chunks[:-1]:
        for delta in chunk["choices"][0]["delta"].get("tool_calls") or ():
            entry = calls.setdefault(delta["index"], {"id": delta.get("id"), "arguments": ""})
            entry["arguments"] += delta["function"]["arguments"]
    expected = plain.data["choices"][0]["message"]["tool_calls"]
    assert [c["id"] for c in calls.values()] == [c["id"] for c in expected]
    assert [c["arguments"] for c in calls.values()] == [
        c["function"]["arguments"] for c in expected
    ]
    assert sorted(calls) == [0, 1]
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"


async def test_finish_reasons(cohere: CohereProvider) -> None:
    resp = await cohere.complete(CMD, chat(USER, max_tokens=2))
    assert resp.data["choices"][0]["finish_reason"] == "length"
    assert resp.data["usage"]["completion_tokens"] == 2
    marker = {"role": "user", "content": "Say it [fake:tokens=30]"}
    full = (await cohere.complete(CMD, chat(marker))).data["choices"][0]["message"]["content"]
    stop = full.split(" ")[3]
    resp = await cohere.complete(CMD, chat(marker, stop=[stop]))
    assert resp.data["choices"][0]["finish_reason"] == "stop"
    assert resp.data["choices"][0]["message"]["content"] == full[: full.find(stop)]


async def test_usage_and_cost(fake: FakeCohereServer) -> None:
    headers = {"x-fake-answer-tokens": "12", "x-fake-cached-tokens": "3"}
    provider = make(fake.base_url, api_key=KEY, headers=headers)
    await provider.open()
    try:
        resp = await provider.complete(CMD, chat(USER))
        chunks = await collect(provider, chat(USER))
    finally:
        await provider.aclose()
    prompt = len(O200K.encode_ordinary(USER["content"]))
    usage = resp.data["usage"]
    assert usage == {
        "prompt_tokens": prompt,
        "completion_tokens": 12,
        "total_tokens": prompt + 12,
        "prompt_tokens_details": {"cached_tokens": 3},
        "completion_tokens_details": {"reasoning_tokens": 0},
    }
    assert chunks[-1]["usage"] == usage
    cost = CostCalculator(PriceCatalog.bundled()).cost_of(
        "command-r-plus-08-2024", Usage.from_openai(usage)
    )
    assert cost is not None
    # $2.50/M input (no cache price: cached tokens bill at the input rate), $10/M output.
    assert cost.total == (prompt * Decimal("2.5") + 12 * Decimal(10)) / 1_000_000


async def test_embeddings(cohere: CohereProvider, fake: FakeCohereServer) -> None:
    texts = [f"text {i}" for i in range(100)]
    resp = await cohere.embed(EMBED, {"model": "emb", "input": texts, "dimensions": 256})
    batches = [r["body"] for r in fake.requests if r["path"] == "/v2/embed"]
    assert [len(b["texts"]) for b in batches] == [96, 4]
    assert batches[0]["input_type"] == "search_document"
    assert batches[0]["embedding_types"] == ["float"] and batches[0]["output_dimension"] == 256
    assert [d["index"] for d in resp.data["data"]] == list(range(100))
    assert len(resp.data["data"][0]["embedding"]) == 256
    tokens = sum(len(O200K.encode_ordinary(t)) for t in texts)
    assert resp.data["usage"] == {"prompt_tokens": tokens, "total_tokens": tokens}
    packed = await cohere.embed(
        EMBED,
        {
            "model": "emb",
            "input": "text 1",
            "encoding_format": "base64",
            "input_type": "search_query",
        },
    )
    assert fake.requests[-1]["body"]["input_type"] == "search_query"
    floats = await cohere.embed(EMBED, {"model": "emb", "input": "text 1"})
    raw = base64.b64decode(packed.data["data"][0]["embedding"])
    vector = floats.data["data"][0]["embedding"]
    assert len(vector) == 1536
    assert list(struct.unpack(f"<{len(vector)}f", raw)) == pytest.approx(vector)
    with pytest.raises(UpstreamStatusError) as err:
        await cohere.embed(EMBED, {"model": "emb", "input": [[1, 2]]})
    assert err.value.status == 400


@pytest.mark.parametrize(
    ("spec", "status", "retryable"),
    [
        ("status=400", 400, False),
        ("status=422", 422, False),
        ("status=500", 502, True),
        ("status=503", 502, True),
    ],
)
async def test_status_errors(
    cohere: CohereProvider, fake: FakeCohereServer, spec: str, status: int, retryable: bool
) -> None:
    fake.set_fault(spec, times=1)
    with pytest.raises(UpstreamStatusError) as err:
        await cohere.complete(CMD, chat(USER))
    assert err.value.status == status and err.value.retryable is retryable


async def test_validation_message_kept(cohere: CohereProvider) -> None:
    orphan = {"role": "tool", "tool_call_id": "nope", "content": "1"}
    with pytest.raises(UpstreamStatusError) as err:
        await cohere.complete(CMD, chat(USER, orphan))
    assert err.value.status == 400 and "tool_call_id 'nope'" in err.value.message
    with pytest.raises(UpstreamStatusError) as err:
        await cohere.complete(Deployment("cohere", "unknown-x", "x"), chat(USER))
    assert err.value.status == 404 and "unknown-x" in err.value.message


async def test_rate_limit(cohere: CohereProvider, fake: FakeCohereServer) -> None:
    fake.set_fault("status=429;retry_after=2", times=1)
    with pytest.raises(UpstreamRateLimitError) as err:
        await cohere.complete(CMD, chat(USER))
    assert err.value.retry_after_s == 2.0 and err.value.retryable


async def test_bad_key(fake: FakeCohereServer) -> None:
    provider = make(fake.base_url, api_key="wrong")
    await provider.open()
    try:
        with pytest.raises(UpstreamStatusError) as err:
            await provider.complete(CMD, chat(USER))
    finally:
        await provider.aclose()
    assert err.value.upstream_status == 401 and err.value.code == "upstream_auth_failed"
    assert err.value.message == "invalid api token"


async def test_invalid_token_498() -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.json_response({"id": "1", "message": "invalid token"}, status=498)

    async with _server(handler) as base:
        provider = make(base)
        await provider.open()
        try:
            with pytest.raises(UpstreamStatusError) as err:
                await provider.complete(CMD, chat(USER))
        finally:
            await provider.aclose()
    assert err.value.upstream_status == 401 and not err.value.retryable


@pytest.mark.parametrize(("reason", "upstream"), [("ERROR", 500), ("TIMEOUT", 504)])
async def test_finish_reason_error(fake: FakeCohereServer, reason: str, upstream: int) -> None:
    provider = make(fake.base_url, api_key=KEY, headers={"x-fake-finish-reason": reason})
    await provider.open()
    try:
        with pytest.raises(UpstreamStatusError) as err:
            await provider.complete(CMD, chat(USER))
        assert err.value.upstream_status == upstream and err.value.retryable
        stream = await provider.stream(CMD, chat(USER))
        seen: list[Any] = []
        with pytest.raises(UpstreamStatusError) as err:
            async for event in stream:
                seen.append(event.data)
        assert err.value.upstream_status == upstream
        assert any(c["choices"] and c["choices"][0]["delta"].get("content") for c in seen)
    finally:
        await provider.aclose()


async def test_transport_faults(cohere: CohereProvider, fake: FakeCohereServer) -> None:
    fake.set_fault("reset", times=1)
    with pytest.raises(UpstreamConnectionError):
        await cohere.complete(CMD, chat(USER))
    fake.set_fault("malformed", times=1)
    with pytest.raises(UpstreamProtocolError):
        await cohere.complete(CMD, chat(USER))
    fake.set_fault("malformed", times=1)
    with pytest.raises(UpstreamProtocolError):
        await collect(cohere, chat(USER))
    fake.set_fault("cut=3", times=1)
    with pytest.raises(UpstreamConnectionError):
        await collect(cohere, chat(USER))


async def test_timeout(fake: FakeCohereServer) -> None:
    provider = make(fake.base_url, api_key=KEY, timeouts={"first_byte_s": 0.2})
    await provider.open()
    fake.set_fault("timeout=1", times=1)
    try:
        with pytest.raises(UpstreamTimeoutError):
            await provider.complete(CMD, chat(USER))
    finally:
        await provider.aclose()


async def test_untranslatable_request_is_a_400(cohere: CohereProvider) -> None:
    with pytest.raises(UpstreamStatusError) as err:
        await cohere.complete(CMD, chat(USER, n=2))
    assert err.value.status == 400 and "n > 1" in err.value.message


class _server:
    """A one-handler aiohttp server for shapes the fake does not produce."""

    def __init__(self, handler: Any) -> None:
        self.app = web.Application()
        self.app.router.add_route("*", "/{tail:.*}", handler)
        self.runner = web.AppRunner(self.app)

    async def __aenter__(self) -> str:
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", 0).start()
        return f"http://127.0.0.1:{self.runner.addresses[0][1]}"

    async def __aexit__(self, *exc: object) -> None:
        await self.runner.cleanup()


def test_factory_and_default_url() -> None:
    from thrifty.providers.factory import provider_class

    provider = provider_class("cohere")("c", ProviderConfig(kind="cohere", api_key="k"))
    assert isinstance(provider, CohereProvider)
    assert provider.root == "https://api.cohere.com"
    assert provider.headers["authorization"] == "Bearer k"
    assert make("https://example.com/v2").root == "https://example.com"
