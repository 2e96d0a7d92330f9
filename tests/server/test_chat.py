"""Chat completions through the real app: pass-through fidelity, headers, streaming."""

from __future__ import annotations

import httpx
import orjson

from tests.support import chat_body
from thrifty.testing import FakeOpenAIServer


async def test_non_stream_matches_upstream(
    client: httpx.AsyncClient, fake: FakeOpenAIServer, auth: dict[str, str]
) -> None:
    body = chat_body("What is the capital of France?")
    async with httpx.AsyncClient() as plain:
        direct = await plain.post(f"{fake.base_url}/chat/completions", json=body)
    resp = await client.post("/v1/chat/completions", json=body, headers=auth)
    assert resp.status_code == 200
    data = resp.json()
    expected = direct.json()
    assert data["choices"] == expected["choices"]
    assert data["usage"] == expected["usage"]
    assert resp.headers["x-thrifty-model"] == "gpt-4o-mini"
    assert resp.headers["x-thrifty-cache"] == "bypass"
    assert resp.headers["x-thrifty-request-id"].startswith("req_")


async def test_every_parameter_and_unknown_fields_pass_through(
    client: httpx.AsyncClient, fake: FakeOpenAIServer, auth: dict[str, str]
) -> None:
    tools = [
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
    body = chat_body(
        "Weather in Paris?",
        tools=tools,
        tool_choice="auto",
        parallel_tool_calls=False,
        n=1,
        stop=["\n\n"],
        seed=42,
        logprobs=True,
        top_logprobs=2,
        temperature=0.3,
        top_p=0.9,
        max_completion_tokens=50,
        max_tokens=60,
        user="u-1",
        metadata={"ticket": "T-1"},
        some_future_field={"nested": [1, 2, 3]},
    )
    fake.clear()
    resp = await client.post("/v1/chat/completions", json=body, headers=auth)
    assert resp.status_code == 200, resp.text
    sent = fake.requests[-1]["body"]
    assert sent == body  # byte-for-byte the same fields, model id included here
    call = resp.json()["choices"][0]["message"]["tool_calls"][0]
    assert call["function"]["name"] == "get_weather"
    assert "city" in orjson.loads(call["function"]["arguments"])


async def test_alias_rewrites_to_upstream_model_id(
    client: httpx.AsyncClient, fake: FakeOpenAIServer, auth: dict[str, str]
) -> None:
    fake.clear()
    resp = await client.post("/v1/chat/completions", json=chat_body(model="mini"), headers=auth)
    assert resp.status_code == 200
    assert resp.headers["x-thrifty-model"] == "gpt-4o-mini"
    resp = await client.post("/v1/chat/completions", json=chat_body(model="gpt-4o"), headers=auth)
    assert fake.requests[-1]["body"]["model"] == "gpt-4o-2024-08-06"
    assert resp.headers["x-thrifty-model"] == "gpt-4o"


async def test_json_modes(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    resp = await client.post(
        "/v1/chat/completions",
        json=chat_body("List a fruit", response_format={"type": "json_object"}),
        headers=auth,
    )
    assert isinstance(orjson.loads(resp.json()["choices"][0]["message"]["content"]), dict)
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "count": {"type": "integer"}},
        "required": ["name", "count"],
    }
    resp = await client.post(
        "/v1/chat/completions",
        json=chat_body(
            "A fruit and a count",
            response_format={"type": "json_schema", "json_schema": {"name": "f", "schema": schema}},
        ),
        headers=auth,
    )
    value = orjson.loads(resp.json()["choices"][0]["message"]["content"])
    assert isinstance(value["name"], str) and isinstance(value["count"], int)


def _frames(text: str) -> list[str]:
    return [line[6:] for line in text.split("\n\n") if line.startswith("data: ")]


async def test_stream_passthrough_without_usage_request(
    client: httpx.AsyncClient, fake: FakeOpenAIServer, auth: dict[str, str]
) -> None:
    body = chat_body("Tell me a story about a lighthouse", stream=True)
    fake.clear()
    resp = await client.post("/v1/chat/completions", json=body, headers=auth)
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/event-stream")
    assert resp.headers["x-thrifty-model"] == "gpt-4o-mini"
    frames = _frames(resp.text)
    assert frames[-1] == "[DONE]"
    chunks = [orjson.loads(f) for f in frames[:-1]]
    # Thrifty asked the upstream for usage (to cost the stream) but the client did not:
    assert fake.requests[-1]["body"]["stream_options"] == {"include_usage": True}
    assert all("usage" not in c for c in chunks)
    assert all(c["choices"] for c in chunks)
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    plain = await client.post(
        "/v1/chat/completions", json=chat_body(body["messages"][0]["content"]), headers=auth
    )
    assert text == plain.json()["choices"][0]["message"]["content"]


async def test_stream_with_include_usage_keeps_usage_chunk(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    body = chat_body("Count to five", stream=True, stream_options={"include_usage": True})
    resp = await client.post("/v1/chat/completions", json=body, headers=auth)
    chunks = [orjson.loads(f) for f in _frames(resp.text)[:-1]]
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["completion_tokens"] > 0
    assert all("usage" in c and c["usage"] is None for c in chunks[:-1])


async def test_stream_tool_calls(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    tools = [
        {
            "type": "function",
            "function": {
                "name": "lookup",
                "parameters": {"type": "object", "properties": {"q": {"type": "string"}}},
            },
        }
    ]
    resp = await client.post(
        "/v1/chat/completions", json=chat_body("find it", stream=True, tools=tools), headers=auth
    )
    chunks = [orjson.loads(f) for f in _frames(resp.text)[:-1]]
    calls = [tc for c in chunks for tc in (c["choices"][0]["delta"].get("tool_calls") or [])]
    assert calls[0]["function"]["name"] == "lookup"
    args = "".join(tc["function"].get("arguments", "") for tc in calls)
    assert isinstance(orjson.loads(args), dict)
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


async def test_path_without_v1_prefix(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    resp = await client.post("/chat/completions", json=chat_body(), headers=auth)
    assert resp.status_code == 200
