"""The Gemini adapter against the fake Gemini server, over real loopback sockets."""

from __future__ import annotations

import base64
import struct
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import orjson
import pytest

from thrifty.config import ProviderConfig
from thrifty.errors import (
    UpstreamStatusError,
)
from thrifty.pricing import CostCalculator, PriceCatalog, Usage
from thrifty.providers.base import Deployment
from thrifty.providers.gemini import GeminiProvider
from thrifty.testing.fake_gemini import FakeGeminiServer
from thrifty.tokens import count_text, encoding_for

KEY = "gm-test-key"
FLASH = Deployment("gemini", "gemini-2.5-flash", "flash")
LITE = Deployment("gemini", "gemini-2.5-flash-lite", "lite")
GEMINI3 = Deployment("gemini", "gemini-3-pro-preview", "g3")
WEATHER: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
            "additionalProperties": False,
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
O200K, _ = encoding_for("gemini-2.5-flash")  # what the fake counts with
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\nfake").decode()


@pytest.fixture
async def fake() -> AsyncIterator[FakeGeminiServer]:
    async with FakeGeminiServer(api_key=KEY) as server:
        yield server


def make(base_url: str, **kw: Any) -> GeminiProvider:
    return GeminiProvider("gemini", ProviderConfig(kind="gemini", base_url=base_url, **kw))


@pytest.fixture
async def gemini(fake: FakeGeminiServer) -> AsyncIterator[GeminiProvider]:
    provider = make(fake.base_url, api_key=KEY)
    await provider.open()
    try:
        yield provider
    finally:
        await provider.aclose()


def chat(*messages: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"model": "flash", "messages": list(messages), **extra}


USER: dict[str, Any] = {"role": "user", "content": "What is the capital of France?"}


async def collect(provider: GeminiProvider, dep: Deployment, body: dict[str, Any]) -> list[Any]:
    stream = await provider.stream(dep, body)
    try:
        return [event.data async for event in stream]
    finally:
        await stream.aclose()


async def test_text_round_trip_and_wire(gemini: GeminiProvider, fake: FakeGeminiServer) -> None:
    body = chat({"role": "system", "content": "Be terse."}, USER, max_tokens=500, stop=["zzz"])
    resp = await gemini.complete(FLASH, {**body, "temperature": 0.2, "top_p": 0.9})
    data = resp.data
    assert data["object"] == "chat.completion"
    choice = data["choices"][0]
    assert choice["finish_reason"] == "stop"
    assert isinstance(choice["message"]["content"], str) and choice["message"]["content"]
    req = fake.requests[-1]
    assert req["path"] == "/v1beta/models/gemini-2.5-flash:generateContent"
    assert req["headers"]["x-goog-api-key"] == KEY
    sent = req["body"]
    assert sent["systemInstruction"]["parts"] == [{"text": "Be terse."}]
    assert sent["contents"] == [{"role": "user", "parts": [{"text": USER["content"]}]}]
    assert sent["generationConfig"] == {
        "maxOutputTokens": 500,
        "temperature": 0.2,
        "topP": 0.9,
        "stopSequences": ["zzz"],
    }
    # Same request, same answer; the stream carries the same text.
    again = await gemini.complete(FLASH, {**body, "temperature": 0.2, "top_p": 0.9})
    assert again.data["choices"][0]["message"]["content"] == choice["message"]["content"]


async def test_stream_chunks(gemini: GeminiProvider, fake: FakeGeminiServer) -> None:
    body = chat(USER, stream=True, stream_options={"include_usage": True})
    chunks = await collect(gemini, FLASH, body)
    plain = await gemini.complete(FLASH, chat(USER))
    assert fake.requests[0]["path"].endswith(":streamGenerateContent")
    assert fake.requests[0]["query"] == {"alt": "sse"}
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == plain.data["choices"][0]["message"]["content"]
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == plain.data["usage"]
    assert all(c["usage"] is None for c in chunks[:-1])
    assert len({c["id"] for c in chunks}) == 1


async def test_tool_calls_ids_and_results_by_name(
    gemini: GeminiProvider, fake: FakeGeminiServer
) -> None:
    body = chat(USER, tools=[WEATHER, TIME], tool_choice="required")
    resp = await gemini.complete(FLASH, body)
    choice = resp.data["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    calls = choice["message"]["tool_calls"]
    assert [c["function"]["name"] for c in calls] == ["get_weather", "get_time"]
    assert all(c["id"].startswith("call_") and len(c["id"]) == 29 for c in calls)
    assert len({c["id"] for c in calls}) == 2
    assert isinstance(orjson.loads(calls[0]["function"]["arguments"])["city"], str)
    sent = fake.requests[-1]["body"]
    decl = sent["tools"][0]["functionDeclarations"][0]
    assert decl["parametersJsonSchema"] == WEATHER["function"]["parameters"]
    assert sent["toolConfig"] == {"functionCallingConfig": {"mode": "ANY"}}
    # Thinking model: the first call carries a thought signature, returned to the client.
    sig = calls[0]["extra_content"]["google"]["thought_signature"]

    # Next turn: the results go back by name, the signature on the same part.
    history: list[dict[str, Any]] = [
        USER,
        {"role": "assistant", "content": None, "tool_calls": [_plain(c) for c in calls]},
        {"role": "tool", "tool_call_id": calls[1]["id"], "content": "12:00"},
        {"role": "tool", "tool_call_id": calls[0]["id"], "content": '{"temp": 18}'},
    ]
    final = await gemini.complete(FLASH, chat(*history, tools=[WEATHER, TIME]))
    assert final.data["choices"][0]["finish_reason"] == "stop"
    contents = fake.requests[-1]["body"]["contents"]
    assert contents[1]["role"] == "model"
    assert contents[1]["parts"][0]["thoughtSignature"] == sig  # from the adapter's stash
    assert "thoughtSignature" not in contents[1]["parts"][1]
    assert contents[2] == {
        "role": "user",
        "parts": [
            {"functionResponse": {"name": "get_time", "response": {"result": "12:00"}}},
            {"functionResponse": {"name": "get_weather", "response": {"temp": 18}}},
        ],
    }


def _plain(call: dict[str, Any]) -> dict[str, Any]:
    """A tool call as a client that drops unknown fields sends it back."""
    return {k: v for k, v in call.items() if k != "extra_content"}


async def test_gemini3_signature_round_trip(gemini: GeminiProvider) -> None:
    first = await gemini.complete(GEMINI3, chat(USER, tools=[WEATHER]))
    call = first.data["choices"][0]["message"]["tool_calls"][0]
    history: list[dict[str, Any]] = [USER, {"role": "assistant", "tool_calls": [call]}]
    tool_result = {"role": "tool", "tool_call_id": call["id"], "content": "sunny"}
    # extra_content echoed by the client is enough...
    ok = await gemini.complete(GEMINI3, chat(*history, tool_result, tools=[WEATHER]))
    assert ok.data["choices"][0]["finish_reason"] == "stop"
    # ...and a call the adapter never saw gets Google's placeholder instead of a 400.
    foreign = {"id": "toolu_1", "type": "function", "function": {"name": "get_weather"}}
    history = [USER, {"role": "assistant", "tool_calls": [foreign]}]
    result = {"role": "tool", "tool_call_id": "toolu_1", "content": "sunny"}
    ok = await gemini.complete(GEMINI3, chat(*history, result, tools=[WEATHER]))
    assert ok.data["choices"][0]["message"]["content"]


async def test_stream_tool_calls(gemini: GeminiProvider) -> None:
    body = chat(USER, tools=[WEATHER, TIME], tool_choice="required", stream=True)
    chunks = await collect(gemini, FLASH, body)
    plain = await gemini.complete(FLASH, chat(USER, tools=[WEATHER, TIME], tool_choice="required"))
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": None}
    deltas = [c["choices"][0]["delta"]["tool_calls"][0] for c in chunks[1:3]]
    assert [d["index"] for d in deltas] == [0, 1]
    expected = plain.data["choices"][0]["message"]["tool_calls"]
    for delta, call in zip(deltas, expected, strict=True):
        assert delta["function"] == call["function"]  # complete arguments in one delta
        assert delta["id"] != call["id"]  # another response, other ids
    assert chunks[3]["choices"][0]["finish_reason"] == "tool_calls"
    assert chunks[4]["choices"] == []


async def test_images_become_inline_data(gemini: GeminiProvider, fake: FakeGeminiServer) -> None:
    content = [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.webp"}},
    ]
    resp = await gemini.complete(LITE, chat({"role": "user", "content": content}))
    parts = fake.requests[-1]["body"]["contents"][0]["parts"]
    assert parts[1] == {"inlineData": {"mimeType": "image/png", "data": PNG}}
    assert parts[2] == {
        "fileData": {"mimeType": "image/webp", "fileUri": "https://example.com/cat.webp"}
    }
    text = len(O200K.encode_ordinary("What is this?"))
    assert resp.data["usage"]["prompt_tokens"] == text + 2 * 258


async def test_finish_reason_length_and_thinking_budget(gemini: GeminiProvider) -> None:
    resp = await gemini.complete(LITE, chat(USER, max_completion_tokens=3))
    assert resp.data["choices"][0]["finish_reason"] == "length"
    assert resp.data["usage"]["completion_tokens"] == 3
    # A thinking model spends its thoughts first: nothing is left for the answer.
    resp = await gemini.complete(FLASH, chat(USER, max_completion_tokens=10))
    choice = resp.data["choices"][0]
    assert choice["finish_reason"] == "length" and choice["message"]["content"] == ""
    assert resp.data["usage"]["completion_tokens_details"]["reasoning_tokens"] == 32
    # reasoning_effort "none" turns thinking off on 2.5.
    resp = await gemini.complete(FLASH, chat(USER, reasoning_effort="none"))
    assert resp.data["usage"]["completion_tokens_details"]["reasoning_tokens"] == 0


async def test_usage_and_cost(fake: FakeGeminiServer) -> None:
    headers = {"x-fake-cached-tokens": "4", "x-fake-thoughts-tokens": "40"}
    provider = make(fake.base_url, api_key=KEY, headers={**headers, "x-fake-answer-tokens": "12"})
    await provider.open()
    try:
        resp = await provider.complete(FLASH, chat(USER))
        chunks = await collect(provider, FLASH, chat(USER, stream=True))
    finally:
        await provider.aclose()
    prompt = len(O200K.encode_ordinary(USER["content"]))
    usage = resp.data["usage"]
    assert usage == {
        "prompt_tokens": prompt,
        "completion_tokens": 12 + 40,
        "total_tokens": prompt + 52,
        "prompt_tokens_details": {"cached_tokens": 4},
        "completion_tokens_details": {"reasoning_tokens": 40},
    }
    assert chunks[-1]["usage"] == usage
    cost = CostCalculator(PriceCatalog.bundled()).cost_of(
        "gemini-2.5-flash", Usage.from_openai(usage)
    )
    assert cost is not None
    # $0.30/M uncached input, $0.03/M cached, $2.50/M output (thoughts included).
    expected = Decimal(prompt - 4) * Decimal("0.3") + 4 * Decimal("0.03") + 52 * Decimal("2.5")
    assert cost.total == expected / 1_000_000


async def test_embeddings(gemini: GeminiProvider, fake: FakeGeminiServer) -> None:
    dep = Deployment("gemini", "gemini-embedding-001", "emb")
    one = await gemini.embed(dep, {"model": "emb", "input": "hello world"})
    assert fake.requests[-1]["path"].endswith("/models/gemini-embedding-001:embedContent")
    assert len(one.data["data"][0]["embedding"]) == 3072
    assert one.data["usage"]["prompt_tokens"] == count_text("hello world", "gemini-embedding-001")
    texts = [f"text {i}" for i in range(150)]
    many = await gemini.embed(dep, {"model": "emb", "input": texts, "dimensions": 8})
    batches = [r for r in fake.requests if r["path"].endswith(":batchEmbedContents")]
    assert [len(r["body"]["requests"]) for r in batches] == [100, 50]
    assert batches[0]["body"]["requests"][0]["outputDimensionality"] == 8
    assert [d["index"] for d in many.data["data"]] == list(range(150))
    packed = await gemini.embed(
        dep, {"model": "emb", "input": texts[:2], "dimensions": 8, "encoding_format": "base64"}
    )
    raw = base64.b64decode(packed.data["data"][1]["embedding"])
    assert list(struct.unpack("<8f", raw)) == pytest.approx(many.data["data"][1]["embedding"])
    with pytest.raises(UpstreamStatusError) as err:
        await gemini.embed(dep, {"model": "emb", "input": [[1, 2, 3]]})
    assert err.value.status == 400


async def test_api_version_and_query_key(fake: FakeGeminiServer) -> None:
    provider = make(f"{fake.base_url}/v1", api_key=KEY)
    await provider.open()
    try:
        await provider.complete(LITE, chat(USER))
    finally:
        await provider.aclose()
    assert fake.requests[-1]["path"] == "/v1/models/gemini-2.5-flash-lite:generateContent"
    provider = make(fake.base_url, api_key=KEY, api_version="v1alpha")
    await provider.open()
    try:
        await provider.complete(LITE, chat(USER))
    finally:
        await provider.aclose()
    assert fake.requests[-1]["path"].startswith("/v1alpha/")


def test_factory_and_default_url() -> None:
    from thrifty.providers.factory import provider_class

    provider = provider_class("gemini")("g", ProviderConfig(kind="gemini", api_key="k"))
    assert isinstance(provider, GeminiProvider)
    assert provider.url("gemini-2.5-flash", "generateContent") == (
        "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:generateContent"
    )
    assert provider.url("tunedModels/mine", "generateContent").endswith(
        "/v1beta/tunedModels/mine:generateContent"
    )
    assert provider.headers["x-goog-api-key"] == "k"
