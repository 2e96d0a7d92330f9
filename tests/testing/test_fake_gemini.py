"""The fake Gemini server on the wire, driven by plain HTTP clients (google-genai is not a
dependency of this project; the fake follows what google-genai 3.4.0 sends and parses)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import httpx
import orjson
import pytest

from thrifty.testing.fake_gemini import FakeGeminiServer
from thrifty.tokens import encoding_for

KEY = "gm-key"
O200K, _ = encoding_for("gemini-2.5-flash")
HELLO = {"contents": [{"role": "user", "parts": [{"text": "Hello there"}]}]}
TOOL = {
    "functionDeclarations": [
        {
            "name": "get_weather",
            "parametersJsonSchema": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        }
    ]
}


@pytest.fixture
async def fake() -> AsyncIterator[FakeGeminiServer]:
    async with FakeGeminiServer(api_key=KEY) as server:
        yield server


@pytest.fixture
async def http(fake: FakeGeminiServer) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(
        base_url=fake.base_url, headers={"x-goog-api-key": KEY}
    ) as session:
        yield session


async def post(
    http: aiohttp.ClientSession,
    model: str,
    method: str,
    body: Any,
    *,
    version: str = "v1beta",
    **kw: Any,
) -> tuple[int, Any, aiohttp.ClientResponse]:
    async with http.post(f"/{version}/models/{model}:{method}", json=body, **kw) as resp:
        raw = await resp.read()
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            data = raw
        return resp.status, data, resp


async def test_generate(http: aiohttp.ClientSession) -> None:
    status, data, _ = await post(http, "gemini-2.5-flash-lite", "generateContent", HELLO)
    assert status == 200
    cand = data["candidates"][0]
    assert cand["finishReason"] == "STOP" and cand["content"]["role"] == "model"
    text = cand["content"]["parts"][0]["text"]
    usage = data["usageMetadata"]
    assert usage["promptTokenCount"] == len(O200K.encode_ordinary("Hello there"))
    assert usage["candidatesTokenCount"] == len(O200K.encode_ordinary(text))
    assert usage["totalTokenCount"] == usage["promptTokenCount"] + usage["candidatesTokenCount"]
    assert "thoughtsTokenCount" not in usage  # Flash-Lite does not think
    assert data["modelVersion"] == "gemini-2.5-flash-lite" and data["responseId"]
    _, again, _ = await post(http, "gemini-2.5-flash-lite", "generateContent", HELLO)
    assert again["candidates"][0]["content"]["parts"][0]["text"] == text


async def test_auth(fake: FakeGeminiServer) -> None:
    async with aiohttp.ClientSession(base_url=fake.base_url) as http:
        status, data, _ = await post(http, "gemini-2.5-flash", "generateContent", HELLO)
        assert status == 403 and data["error"]["status"] == "PERMISSION_DENIED"
        headers = {"x-goog-api-key": "nope"}
        status, data, _ = await post(
            http, "gemini-2.5-flash", "generateContent", HELLO, headers=headers
        )
        assert status == 400 and data["error"]["status"] == "INVALID_ARGUMENT"
        assert data["error"]["details"][0]["reason"] == "API_KEY_INVALID"
        params = {"key": KEY}
        status, _, _ = await post(http, "gemini-2.5-flash", "generateContent", HELLO, params=params)
        assert status == 200


async def test_snake_case_and_v1(http: aiohttp.ClientSession, fake: FakeGeminiServer) -> None:
    body = {
        "system_instruction": {"parts": [{"text": "Be brief."}]},
        "contents": [{"role": "user", "parts": [{"text": "Weather?"}]}],
        "tools": [
            {
                "function_declarations": [
                    {
                        "name": "get_weather",
                        "parameters_json_schema": {
                            "type": "object",
                            "properties": {"city_name": {"type": "string"}},
                        },
                    }
                ]
            }
        ],
        "tool_config": {"function_calling_config": {"mode": "ANY"}},
        "generation_config": {"max_output_tokens": 100, "thinking_config": {"thinking_budget": 0}},
    }
    status, data, _ = await post(http, "gemini-2.5-flash", "generateContent", body, version="v1")
    assert status == 200, data
    part = data["candidates"][0]["content"]["parts"][0]
    assert set(part["functionCall"]["args"]) == {"city_name"}  # user data keeps its keys
    assert "thoughtSignature" not in part  # thinking was turned off


async def test_thinking_usage_and_signature(http: aiohttp.ClientSession) -> None:
    body = {
        **HELLO,
        "tools": [TOOL],
        "generationConfig": {"thinkingConfig": {"includeThoughts": True}},
    }
    status, data, _ = await post(http, "gemini-2.5-flash", "generateContent", body)
    assert status == 200
    parts = data["candidates"][0]["content"]["parts"]
    assert parts[0]["thought"] is True
    assert parts[1]["functionCall"]["name"] == "get_weather" and parts[1]["thoughtSignature"]
    usage = data["usageMetadata"]
    assert usage["thoughtsTokenCount"] == 32
    total = usage["promptTokenCount"] + usage["candidatesTokenCount"] + 32
    assert usage["totalTokenCount"] == total


async def test_thoughts_eat_the_output_limit(http: aiohttp.ClientSession) -> None:
    body = {**HELLO, "generationConfig": {"maxOutputTokens": 20}}
    _, data, _ = await post(http, "gemini-2.5-flash", "generateContent", body)
    cand = data["candidates"][0]
    assert cand["finishReason"] == "MAX_TOKENS" and "parts" not in cand["content"]
    assert "candidatesTokenCount" not in data["usageMetadata"]


async def test_cached_and_thoughts_headers(http: aiohttp.ClientSession) -> None:
    headers = {"x-fake-cached-tokens": "1", "x-fake-thoughts-tokens": "7"}
    _, data, _ = await post(http, "gemini-2.5-flash", "generateContent", HELLO, headers=headers)
    usage = data["usageMetadata"]
    assert usage["cachedContentTokenCount"] == 1 and usage["thoughtsTokenCount"] == 7


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"contents": []}, "contents is not specified"),
        ({"contents": [{"role": "assistant", "parts": [{"text": "x"}]}]}, "valid role"),
        ({"contents": [{"role": "user", "parts": []}]}, "must not be empty"),
        ({"contents": [{"role": "user", "parts": [{"text": ""}]}]}, "empty text parameter"),
        ({"contents": [{"role": "user", "parts": [{}]}]}, "required oneof field 'data'"),
        (
            {"contents": [{"parts": [{"inlineData": {"mimeType": "image/png", "data": "!!"}}]}]},
            "Base64 decoding failed",
        ),
        (
            {
                **HELLO,
                "tools": [
                    {
                        "functionDeclarations": [
                            {
                                "name": "f",
                                "parameters": {"type": "OBJECT", "additionalProperties": False},
                            }
                        ]
                    }
                ],
            },
            'Unknown name "additionalProperties"',
        ),
        (
            {**HELLO, "tools": [{"functionDeclarations": [{"name": "1bad"}]}]},
            "Invalid function name",
        ),
        ({**HELLO, "generationConfig": {"stopSequences": list("abcdef")}}, "at most 5"),
        ({**HELLO, "generationConfig": {"temperature": 3}}, "temperature"),
        ({**HELLO, "generationConfig": {"responseSchema": {"type": "STRING"}}}, "application/json"),
        (
            {
                **HELLO,
                "toolConfig": {
                    "functionCallingConfig": {"mode": "AUTO", "allowedFunctionNames": ["f"]}
                },
            },
            "allowed_function_names",
        ),
    ],
)
async def test_validation(http: aiohttp.ClientSession, body: Any, fragment: str) -> None:
    status, data, _ = await post(http, "gemini-2.5-flash", "generateContent", body)
    assert status == 400, data
    assert data["error"]["status"] == "INVALID_ARGUMENT" and fragment in data["error"]["message"]


async def test_budget_zero_on_pro(http: aiohttp.ClientSession) -> None:
    body = {**HELLO, "generationConfig": {"thinkingConfig": {"thinkingBudget": 0}}}
    status, data, _ = await post(http, "gemini-2.5-pro", "generateContent", body)
    assert status == 400 and "only works in thinking mode" in data["error"]["message"]


async def test_not_found(http: aiohttp.ClientSession) -> None:
    status, data, _ = await post(http, "unknown-model", "generateContent", HELLO)
    assert status == 404 and data["error"]["status"] == "NOT_FOUND"
    assert "models/unknown-model is not found for API version v1beta" in data["error"]["message"]
    status, _, _ = await post(http, "gemini-embedding-001", "generateContent", HELLO)
    assert status == 404
    status, _, _ = await post(
        http, "gemini-2.5-flash", "embedContent", {"content": HELLO["contents"][0]}
    )
    assert status == 404


async def test_gemini3_requires_signatures(http: aiohttp.ClientSession) -> None:
    model = "gemini-3-pro-preview"
    _, first, _ = await post(http, model, "generateContent", {**HELLO, "tools": [TOOL]})
    call_part = first["candidates"][0]["content"]["parts"][0]
    assert call_part["thoughtSignature"]
    reply = {"functionResponse": {"name": "get_weather", "response": {"result": "sunny"}}}
    turn = [
        HELLO["contents"][0],
        {"role": "model", "parts": [call_part]},
        {"role": "user", "parts": [reply]},
    ]
    status, _, _ = await post(http, model, "generateContent", {"contents": turn, "tools": [TOOL]})
    assert status == 200
    unsigned = {"functionCall": call_part["functionCall"]}
    turn[1] = {"role": "model", "parts": [unsigned]}
    status, data, _ = await post(
        http, model, "generateContent", {"contents": turn, "tools": [TOOL]}
    )
    assert status == 400 and "missing a thought_signature" in data["error"]["message"]
    # An earlier turn (before the last user text) is not checked.
    later = [
        *turn,
        {"role": "model", "parts": [{"text": "ok"}]},
        {"role": "user", "parts": [{"text": "more"}]},
    ]
    status, _, _ = await post(http, model, "generateContent", {"contents": later, "tools": [TOOL]})
    assert status == 200


async def test_stream_framing(http: aiohttp.ClientSession) -> None:
    url = "/v1beta/models/gemini-2.5-flash-lite:streamGenerateContent"
    async with http.post(url, params={"alt": "sse"}, json=HELLO) as resp:
        assert resp.headers["content-type"].startswith("text/event-stream")
        raw = await resp.read()
    assert raw.endswith(b"\r\n\r\n") and b"[DONE]" not in raw
    events = [orjson.loads(e[len(b"data: ") :]) for e in raw.split(b"\r\n\r\n") if e]
    assert len(events) > 1
    assert all("finishReason" not in e["candidates"][0] for e in events[:-1])
    assert events[-1]["candidates"][0]["finishReason"] == "STOP"
    text = "".join(e["candidates"][0]["content"]["parts"][0]["text"] for e in events)
    _, whole, _ = await post(http, "gemini-2.5-flash-lite", "generateContent", HELLO)
    assert text == whole["candidates"][0]["content"]["parts"][0]["text"]
    assert events[-1]["usageMetadata"] == whole["usageMetadata"]
    assert len({e["responseId"] for e in events}) == 1
    # Without alt=sse: one JSON array.
    status, array, _ = await post(http, "gemini-2.5-flash-lite", "streamGenerateContent", HELLO)
    assert status == 200 and isinstance(array, list) and len(array) == len(events)


async def test_count_tokens_and_models(http: aiohttp.ClientSession) -> None:
    status, data, _ = await post(http, "gemini-2.5-flash", "countTokens", HELLO)
    assert status == 200 and data == {"totalTokens": len(O200K.encode_ordinary("Hello there"))}
    async with http.get("/v1beta/models") as resp:
        names = [m["name"] for m in (await resp.json())["models"]]
    assert "models/gemini-2.5-flash" in names
    async with http.get("/v1beta/models/gemini-2.5-flash") as resp:
        assert (await resp.json())["name"] == "models/gemini-2.5-flash"


async def test_embeddings(http: aiohttp.ClientSession) -> None:
    content = {"parts": [{"text": "hello"}]}
    status, one, _ = await post(http, "text-embedding-004", "embedContent", {"content": content})
    assert status == 200 and len(one["embedding"]["values"]) == 768
    batch = {
        "requests": [
            {"model": "models/text-embedding-004", "content": content, "outputDimensionality": 16},
            {"model": "models/text-embedding-004", "content": {"parts": [{"text": "bye"}]}},
        ]
    }
    status, many, _ = await post(http, "text-embedding-004", "batchEmbedContents", batch)
    assert status == 200
    assert [len(e["values"]) for e in many["embeddings"]] == [16, 768]
    assert many["embeddings"][1]["values"] != one["embedding"]["values"]
    wrong = {"requests": [{"model": "models/other", "content": content}]}
    status, data, _ = await post(http, "text-embedding-004", "batchEmbedContents", wrong)
    assert status == 400 and "must match" in data["error"]["message"]
    too_many = {"requests": [{"model": "models/text-embedding-004", "content": content}] * 101}
    status, _, _ = await post(http, "text-embedding-004", "batchEmbedContents", too_many)
    assert status == 400


async def test_fault_statuses(http: aiohttp.ClientSession, fake: FakeGeminiServer) -> None:
    headers = {"x-fake-fault": "status=429;retry_after=3"}
    status, data, resp = await post(
        http, "gemini-2.5-flash", "generateContent", HELLO, headers=headers
    )
    assert status == 429 and resp.headers["retry-after"] == "3"
    assert data["error"]["status"] == "RESOURCE_EXHAUSTED"
    assert data["error"]["details"][0]["retryDelay"] == "3s"
    fake.set_fault("status=503", model="gemini-2.5-pro", times=2)
    for expected in (503, 503, 200):
        status, data, _ = await post(http, "gemini-2.5-pro", "generateContent", HELLO)
        assert status == expected
    assert data["candidates"]
    status, _, _ = await post(http, "gemini-2.5-flash", "generateContent", HELLO)
    assert status == 200  # the fault was for another model
    status, data, _ = await post(
        http, "gemini-2.5-flash", "generateContent", HELLO, headers={"x-fake-fault": "bogus"}
    )
    assert status == 400 and "x-fake-fault" in data["error"]["message"]


async def test_configured_faults_and_cut() -> None:
    async with FakeGeminiServer(faults={"gemini-2.5-flash": "status=500", "*": "cut=1"}) as fake:
        async with aiohttp.ClientSession(base_url=fake.base_url) as http:
            status, data, _ = await post(http, "gemini-2.5-flash", "generateContent", HELLO)
            assert status == 500 and data["error"]["status"] == "INTERNAL"
            url = "/v1beta/models/gemini-2.5-flash-lite:streamGenerateContent?alt=sse"
            with pytest.raises(aiohttp.ClientPayloadError):
                async with http.post(url, json=HELLO) as resp:
                    await resp.read()


async def test_stream_error_event(http: aiohttp.ClientSession) -> None:
    url = "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    async with http.post(url, json=HELLO, headers={"x-fake-stream-error": "500"}) as resp:
        raw = await resp.read()
    events = [orjson.loads(e[6:]) for e in raw.split(b"\r\n\r\n") if e]
    assert len(events) == 2 and events[1]["error"]["code"] == 500


def test_in_thread_with_sync_client() -> None:
    with FakeGeminiServer() as fake:
        url = f"{fake.base_url}/v1beta/models/gemini-2.5-flash:generateContent"
        resp = httpx.post(url, json=HELLO)
        assert resp.status_code == 200 and resp.json()["candidates"]
        assert fake.requests[-1]["path"] == "/v1beta/models/gemini-2.5-flash:generateContent"
