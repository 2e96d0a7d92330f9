"""The fake Cohere server on the wire, driven by plain HTTP clients (the ``cohere`` SDK is not a
dependency of this project; the fake follows what cohere 7.3.1 sends and parses)."""

from __future__ import annotations

import base64
import struct
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import httpx
import orjson
import pytest

from thrifty.testing.fake_cohere import FakeCohereServer
from thrifty.testing.fake_cohere_wire import TEMPLATE_TOKENS
from thrifty.tokens import encoding_for

KEY = "co-key"
O200K, _ = encoding_for("command-a-03-2025")
MODEL = "command-a-03-2025"
HELLO = {"model": MODEL, "messages": [{"role": "user", "content": "Hello there"}]}
TOOLS = [
    {
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
]


@pytest.fixture
async def fake() -> AsyncIterator[FakeCohereServer]:
    async with FakeCohereServer(api_key=KEY) as server:
        yield server


@pytest.fixture
async def http(fake: FakeCohereServer) -> AsyncIterator[aiohttp.ClientSession]:
    headers = {"authorization": f"Bearer {KEY}"}
    async with aiohttp.ClientSession(base_url=fake.base_url, headers=headers) as session:
        yield session


async def post(
    http: aiohttp.ClientSession, path: str, body: Any, **kw: Any
) -> tuple[int, Any, aiohttp.ClientResponse]:
    async with http.post(path, json=body, **kw) as resp:
        raw = await resp.read()
        try:
            return resp.status, orjson.loads(raw), resp
        except orjson.JSONDecodeError:
            return resp.status, raw, resp


def parse_sse(raw: bytes) -> list[tuple[str, dict[str, Any]]]:
    events = []
    for frame in raw.decode().split("\n\n"):
        if not frame:
            continue
        lines = dict(line.split(": ", 1) for line in frame.split("\n"))
        events.append((lines["event"], orjson.loads(lines["data"])))
    return events


async def test_chat(http: aiohttp.ClientSession) -> None:
    status, data, _ = await post(http, "/v2/chat", HELLO)
    assert status == 200
    assert data["finish_reason"] == "COMPLETE" and data["id"]
    text = data["message"]["content"][0]["text"]
    assert data["message"]["role"] == "assistant" and text
    prompt = len(O200K.encode_ordinary("Hello there"))
    output = len(O200K.encode_ordinary(text))
    assert data["usage"] == {
        "billed_units": {"input_tokens": prompt, "output_tokens": output},
        "tokens": {"input_tokens": prompt + TEMPLATE_TOKENS, "output_tokens": output},
        "cached_tokens": 0,
    }
    _, again, _ = await post(http, "/v2/chat", HELLO)
    assert again["message"]["content"][0]["text"] == text


async def test_auth(fake: FakeCohereServer) -> None:
    async with aiohttp.ClientSession(base_url=fake.base_url) as http:
        status, data, _ = await post(http, "/v2/chat", HELLO)
        assert status == 401 and data["message"] == "no api key supplied" and data["id"]
        bad = {"authorization": "Bearer nope"}
        status, data, _ = await post(http, "/v2/chat", HELLO, headers=bad)
        assert status == 401 and data["message"] == "invalid api token"


async def test_tool_call(http: aiohttp.ClientSession) -> None:
    status, data, _ = await post(http, "/v2/chat", {**HELLO, "tools": TOOLS})
    assert status == 200 and data["finish_reason"] == "TOOL_CALL"
    message = data["message"]
    assert message["tool_plan"].startswith("I will use the get_weather tool")
    call = message["tool_calls"][0]
    assert call["id"].startswith("get_weather_") and call["type"] == "function"
    assert isinstance(orjson.loads(call["function"]["arguments"])["city"], str)
    history = [
        *HELLO["messages"],
        {"role": "assistant", "tool_plan": message["tool_plan"], "tool_calls": [call]},
        {"role": "tool", "tool_call_id": call["id"], "content": "18C"},
    ]
    status, data, _ = await post(http, "/v2/chat", {**HELLO, "messages": history, "tools": TOOLS})
    assert status == 200 and data["finish_reason"] == "COMPLETE"
    status, data, _ = await post(http, "/v2/chat", {**HELLO, "tools": TOOLS, "tool_choice": "NONE"})
    assert data["finish_reason"] == "COMPLETE"


async def test_stream(http: aiohttp.ClientSession) -> None:
    async with http.post("/v2/chat", json={**HELLO, "stream": True}) as resp:
        assert resp.headers["content-type"].startswith("text/event-stream")
        events = parse_sse(await resp.read())
    kinds = [k for k, _ in events]
    assert kinds[:2] == ["message-start", "content-start"]
    assert kinds[-2:] == ["content-end", "message-end"]
    assert all(kind == data["type"] for kind, data in events)
    text = "".join(
        d["delta"]["message"]["content"]["text"] for k, d in events if k == "content-delta"
    )
    _, whole, _ = await post(http, "/v2/chat", HELLO)
    assert text == whole["message"]["content"][0]["text"]
    end = events[-1][1]["delta"]
    assert end["finish_reason"] == "COMPLETE" and end["usage"] == whole["usage"]


async def test_stream_tool_calls(http: aiohttp.ClientSession) -> None:
    body = {**HELLO, "tools": TOOLS, "stream": True}
    async with http.post("/v2/chat", json=body) as resp:
        events = parse_sse(await resp.read())
    kinds = [k for k, _ in events]
    assert "tool-plan-delta" in kinds and kinds[-2:] == ["tool-call-end", "message-end"]
    start = next(d for k, d in events if k == "tool-call-start")
    call = start["delta"]["message"]["tool_calls"]
    assert isinstance(call, dict) and call["function"]["arguments"] == ""
    args = "".join(
        d["delta"]["message"]["tool_calls"]["function"]["arguments"]
        for k, d in events
        if k == "tool-call-delta"
    )
    _, whole, _ = await post(http, "/v2/chat", {**HELLO, "tools": TOOLS})
    assert args == whole["message"]["tool_calls"][0]["function"]["arguments"]
    plan = "".join(d["delta"]["message"]["tool_plan"] for k, d in events if k == "tool-plan-delta")
    assert plan == whole["message"]["tool_plan"]


async def test_limits(http: aiohttp.ClientSession) -> None:
    _, data, _ = await post(http, "/v2/chat", {**HELLO, "max_tokens": 3})
    assert (
        data["finish_reason"] == "MAX_TOKENS"
        and data["usage"]["billed_units"]["output_tokens"] == 3
    )
    headers = {"x-fake-answer-tokens": "20", "x-fake-cached-tokens": "2"}
    _, data, _ = await post(http, "/v2/chat", HELLO, headers=headers)
    assert (
        data["usage"]["billed_units"]["output_tokens"] == 20 and data["usage"]["cached_tokens"] == 2
    )
    word = data["message"]["content"][0]["text"].split(" ")[2]
    _, cut, _ = await post(http, "/v2/chat", {**HELLO, "stop_sequences": [word]}, headers=headers)
    assert cut["finish_reason"] == "STOP_SEQUENCE"


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"messages": HELLO["messages"]}, "model must be specified"),
        ({"model": MODEL, "messages": []}, "messages must not be empty"),
        ({"model": MODEL, "messages": [{"role": "bot", "content": "x"}]}, "unknown role"),
        ({**HELLO, "p": 1.0}, "p must be between"),
        ({**HELLO, "temperature": -1}, "temperature"),
        ({**HELLO, "stop_sequences": list("abcdef")}, "at most 5"),
        ({**HELLO, "tool_choice": "AUTO", "tools": TOOLS}, "tool_choice must be"),
        ({**HELLO, "tool_choice": "REQUIRED"}, "requires tools"),
        ({**HELLO, "response_format": {"type": "json_schema"}}, "response_format"),
        (
            {**HELLO, "messages": [{"role": "tool", "tool_call_id": "x", "content": "1"}]},
            "does not match",
        ),
        (
            {
                "model": MODEL,
                "messages": [
                    {
                        "role": "user",
                        "content": [{"type": "image_url", "image_url": {"url": "data:,"}}],
                    }
                ],
            },
            "does not support image",
        ),
    ],
)
async def test_validation(http: aiohttp.ClientSession, body: Any, fragment: str) -> None:
    status, data, _ = await post(http, "/v2/chat", body)
    assert status == 400, data
    assert data["message"].startswith("invalid request: ") and fragment in data["message"]


async def test_not_found(http: aiohttp.ClientSession) -> None:
    status, data, _ = await post(http, "/v2/chat", {**HELLO, "model": "unknown-x"})
    assert status == 404 and "unknown-x" in data["message"]
    status, _, _ = await post(http, "/v2/chat", {**HELLO, "model": "embed-v4.0"})
    assert status == 404


async def test_embed(http: aiohttp.ClientSession) -> None:
    body = {
        "model": "embed-v4.0",
        "texts": ["hello", "world"],
        "input_type": "search_document",
        "embedding_types": ["float", "base64", "int8"],
        "output_dimension": 256,
    }
    status, data, _ = await post(http, "/v2/embed", body)
    assert status == 200 and data["response_type"] == "embeddings_by_type"
    floats = data["embeddings"]["float"]
    assert [len(v) for v in floats] == [256, 256]
    unpacked = struct.unpack("<256f", base64.b64decode(data["embeddings"]["base64"][0]))
    assert list(unpacked) == pytest.approx(floats[0])
    assert all(-127 <= x <= 127 for x in data["embeddings"]["int8"][0])
    tokens = len(O200K.encode_ordinary("hello")) + len(O200K.encode_ordinary("world"))
    assert data["meta"]["billed_units"] == {"input_tokens": tokens}
    assert data["texts"] == ["hello", "world"]
    for bad, fragment in [
        ({**body, "input_type": None}, "input_type must be provided"),
        ({**body, "texts": ["x"] * 97}, "too many texts"),
        ({**body, "output_dimension": 100}, "output_dimension"),
        ({**body, "embedding_types": ["binary"]}, "embedding_types"),
    ]:
        status, data, _ = await post(http, "/v2/embed", bad)
        assert status == 400 and fragment in data["message"], data


async def test_faults(http: aiohttp.ClientSession, fake: FakeCohereServer) -> None:
    status, data, resp = await post(
        http, "/v2/chat", HELLO, headers={"x-fake-fault": "status=429;retry_after=1"}
    )
    assert status == 429 and resp.headers["retry-after"] == "1" and data["message"]
    fake.set_fault("status=503", model=MODEL, times=1)
    assert (await post(http, "/v2/chat", HELLO))[0] == 503
    assert (await post(http, "/v2/chat", HELLO))[0] == 200
    status, raw, _ = await post(http, "/v2/chat", HELLO, headers={"x-fake-fault": "malformed"})
    assert status == 200 and isinstance(raw, bytes)
    with pytest.raises(aiohttp.ClientPayloadError):
        headers = {"x-fake-fault": "cut=2"}
        async with http.post("/v2/chat", json={**HELLO, "stream": True}, headers=headers) as resp:
            await resp.read()


async def test_finish_reason_error(http: aiohttp.ClientSession) -> None:
    headers = {"x-fake-finish-reason": "ERROR"}
    _, data, _ = await post(http, "/v2/chat", HELLO, headers=headers)
    assert data["finish_reason"] == "ERROR"
    async with http.post("/v2/chat", json={**HELLO, "stream": True}, headers=headers) as resp:
        events = parse_sse(await resp.read())
    end = events[-1][1]["delta"]
    assert end["finish_reason"] == "ERROR" and end["error"]
    assert any(k == "content-delta" for k, _ in events)


def test_in_thread_with_sync_client() -> None:
    with FakeCohereServer() as fake:
        resp = httpx.post(f"{fake.base_url}/v2/chat", json=HELLO)
        assert resp.status_code == 200 and resp.json()["finish_reason"] == "COMPLETE"
        assert fake.requests[-1]["body"] == HELLO
