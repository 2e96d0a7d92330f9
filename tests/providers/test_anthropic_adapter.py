"""The Anthropic adapter round-tripping through the fake Anthropic server over loopback."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import httpx
import pytest

from thrifty.config import ProviderConfig
from thrifty.errors import (
    UpstreamConnectionError,
    UpstreamProtocolError,
    UpstreamRateLimitError,
    UpstreamStatusError,
    UpstreamTimeoutError,
)
from thrifty.pricing import PriceCatalog, Usage, compute_cost
from thrifty.providers.anthropic import AnthropicProvider
from thrifty.providers.base import Deployment
from thrifty.providers.factory import provider_class
from thrifty.testing.fake_anthropic import FakeAnthropicServer

DEP = Deployment("anth", "claude-sonnet-4-5", "sonnet")
HELLO = [{"role": "user", "content": "What is the capital of France?"}]
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
CLOCK = {
    "type": "function",
    "function": {
        "name": "get_time",
        "parameters": {"type": "object", "properties": {"tz": {"type": "string"}}},
    },
}
PNG_URL = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk"
LONG = " ".join(["A long and stable system prompt that is worth caching."] * 120)


@pytest.fixture
async def fake() -> AsyncIterator[FakeAnthropicServer]:
    async with FakeAnthropicServer(api_key="sk-ant") as server:
        yield server


def make(fake: FakeAnthropicServer, **config: Any) -> AnthropicProvider:
    cfg = {"kind": "anthropic", "base_url": fake.base_url, "api_key": "sk-ant", **config}
    return AnthropicProvider("anth", ProviderConfig(**cfg))


@pytest.fixture
async def provider(fake: FakeAnthropicServer) -> AsyncIterator[AnthropicProvider]:
    p = make(fake)
    await p.open()
    yield p
    await p.aclose()


def body(**extra: Any) -> dict[str, Any]:
    return {"model": "sonnet", "messages": HELLO, **extra}


async def collect(p: AnthropicProvider, request: dict[str, Any]) -> list[dict[str, Any]]:
    stream = await p.stream(DEP, {**request, "stream": True})
    try:
        return [event.data async for event in stream]
    finally:
        await stream.aclose()


def sent(fake: FakeAnthropicServer) -> dict[str, Any]:
    return fake.requests[-1]["body"]


# -- text --------------------------------------------------------------------------------


async def test_factory_maps_the_kind() -> None:
    assert provider_class("anthropic") is AnthropicProvider


async def test_complete_text_and_request_shape(
    provider: AnthropicProvider, fake: FakeAnthropicServer
) -> None:
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "developer", "content": [{"type": "text", "text": "Use French."}]},
        *HELLO,
    ]
    resp = await provider.complete(
        DEP, body(messages=messages, temperature=1.7, top_p=0.5, user="u-1", stop="\n\n")
    )
    data = resp.data
    assert data["object"] == "chat.completion" and data["model"] == "claude-sonnet-4-5"
    choice = data["choices"][0]
    assert choice["finish_reason"] == "stop" and choice["message"]["content"]
    assert choice["message"]["role"] == "assistant" and "tool_calls" not in choice["message"]
    assert data["usage"]["total_tokens"] == (
        data["usage"]["prompt_tokens"] + data["usage"]["completion_tokens"]
    )
    req = fake.requests[-1]
    assert req["path"] == "/v1/messages"
    assert req["headers"]["x-api-key"] == "sk-ant" and "authorization" not in req["headers"]
    assert req["headers"]["anthropic-version"] == "2023-06-01"
    assert req["body"] == {
        "model": "claude-sonnet-4-5",
        "max_tokens": 4096,
        "system": "Be brief.\n\nUse French.",
        "messages": HELLO,
        "stop_sequences": ["\n\n"],
        "temperature": 1.0,
        "metadata": {"user_id": "u-1"},
    }


async def test_models_that_reject_sampling_are_sent_none(fake: FakeAnthropicServer) -> None:
    """The fake answers Sonnet 5.5 with a temperature as the API does (a 400); the adapter
    leaves it out, and keeps it for a model that takes it."""
    p = make(fake)
    await p.open()
    try:
        new = Deployment("anth", "claude-sonnet-5-5", "sonnet")
        resp = await p.complete(new, body(temperature=0.2, top_p=0.5))
        assert resp.data["choices"][0]["message"]["content"]
        assert not {"temperature", "top_p", "top_k"} & set(fake.requests[-1]["body"])
        await p.complete(DEP, body(temperature=0.2))
        assert fake.requests[-1]["body"]["temperature"] == 0.2
    finally:
        await p.aclose()
    raw = {"model": "claude-sonnet-5-5", "max_tokens": 8, "messages": HELLO, "temperature": 0.2}
    async with httpx.AsyncClient(base_url=fake.base_url) as client:
        refused = await client.post(
            "/v1/messages",
            json=raw,
            headers={"x-api-key": fake.api_key, "anthropic-version": "2023-06-01"},
        )
    assert refused.status_code == 400
    assert refused.json()["error"]["message"] == "`temperature` is deprecated for this model."


async def test_new_api_version_drops_sampling(fake: FakeAnthropicServer) -> None:
    p = make(fake, api_version="2026-10-21", base_url=fake.base_url + "/v1")
    await p.open()
    try:
        resp = await p.complete(DEP, body(temperature=0.2, max_completion_tokens=64))
    finally:
        await p.aclose()
    assert resp.data["choices"][0]["message"]["content"]
    req = fake.requests[-1]
    assert req["path"] == "/v1/messages" and req["headers"]["anthropic-version"] == "2026-10-21"
    assert "temperature" not in req["body"] and req["body"]["max_tokens"] == 64


async def test_stream_text_matches_complete(provider: AnthropicProvider) -> None:
    whole = (await provider.complete(DEP, body())).data
    chunks = await collect(provider, body(stream_options={"include_usage": True}))
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": "", "refusal": None}
    assert all(
        c["object"] == "chat.completion.chunk" and c["id"] == chunks[0]["id"] for c in chunks
    )
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == whole["choices"][0]["message"]["content"]
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == whole["usage"]
    assert all(c["usage"] is None for c in chunks[:-1])  # include_usage: OpenAI's null usage
    plain = await collect(provider, body())
    assert plain[-1]["choices"] == [] and "usage" not in plain[0]  # the usage chunk is always sent


async def test_finish_reasons_length_and_stop(provider: AnthropicProvider) -> None:
    msgs = [{"role": "user", "content": "Talk [fake:tokens=30]"}]
    full = (await provider.complete(DEP, body(messages=msgs))).data
    text = full["choices"][0]["message"]["content"]
    word = text.split()[4]
    stopped = (await provider.complete(DEP, body(messages=msgs, stop=[word]))).data
    assert stopped["choices"][0]["finish_reason"] == "stop"
    assert text.startswith(stopped["choices"][0]["message"]["content"])
    short = (await provider.complete(DEP, body(messages=msgs, max_tokens=3))).data
    assert short["choices"][0]["finish_reason"] == "length"
    assert short["usage"]["completion_tokens"] == 3
    refused = await provider.complete(
        DEP, body(messages=[{"role": "user", "content": "[fake:refusal]"}])
    )
    assert refused.data["choices"][0]["finish_reason"] == "content_filter"
    chunks = await collect(provider, body(messages=msgs, max_tokens=3))
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1] == "length"


# -- tools -------------------------------------------------------------------------------


async def test_parallel_tool_calls_complete_and_stream(
    provider: AnthropicProvider, fake: FakeAnthropicServer
) -> None:
    request = body(tools=[WEATHER, CLOCK], tool_choice="auto")
    whole = (await provider.complete(DEP, request)).data
    message = whole["choices"][0]["message"]
    assert whole["choices"][0]["finish_reason"] == "tool_calls"
    assert message["content"].startswith("I'll use")  # the text block before the tool_use blocks
    calls = message["tool_calls"]
    assert [c["function"]["name"] for c in calls] == ["get_weather", "get_time"]
    assert isinstance(json.loads(calls[0]["function"]["arguments"])["city"], str)
    assert sent(fake)["tools"][0] == {
        "name": "get_weather",
        "description": "Weather for a city",
        "input_schema": WEATHER["function"]["parameters"],
    }
    assert sent(fake)["tool_choice"] == {"type": "auto"}

    chunks = await collect(provider, request)
    deltas = [
        tc
        for c in chunks
        if c["choices"]
        for tc in c["choices"][0]["delta"].get("tool_calls") or ()
    ]
    firsts = [d for d in deltas if "id" in d]
    # Anthropic's blocks are 0 (text), 1 and 2; OpenAI's indices count tool calls only.
    assert [d["index"] for d in firsts] == [0, 1]
    assert firsts[0] == {
        "index": 0,
        "id": calls[0]["id"],
        "type": "function",
        "function": {"name": "get_weather", "arguments": ""},
    }
    for i, call in enumerate(calls):
        args = "".join(d["function"]["arguments"] for d in deltas if d["index"] == i)
        assert args == call["function"]["arguments"]
        assert all(
            set(d) == {"index", "function"} for d in deltas if d["index"] == i and "id" not in d
        )
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1] == "tool_calls"


async def test_tool_choice_mapping(provider: AnthropicProvider, fake: FakeAnthropicServer) -> None:
    required = (
        await provider.complete(DEP, body(tools=[WEATHER, CLOCK], tool_choice="required"))
    ).data
    assert sent(fake)["tool_choice"] == {"type": "any"}
    assert required["choices"][0]["message"]["content"] is None  # no text before forced calls
    single = await provider.complete(
        DEP, body(tools=[WEATHER, CLOCK], tool_choice="required", parallel_tool_calls=False)
    )
    assert sent(fake)["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}
    assert len(single.data["choices"][0]["message"]["tool_calls"]) == 1
    named = {"type": "function", "function": {"name": "get_time"}}
    resp = await provider.complete(DEP, body(tools=[WEATHER, CLOCK], tool_choice=named))
    assert sent(fake)["tool_choice"] == {"type": "tool", "name": "get_time"}
    assert [c["function"]["name"] for c in resp.data["choices"][0]["message"]["tool_calls"]] == [
        "get_time"
    ]
    none = await provider.complete(DEP, body(tools=[WEATHER], tool_choice="none"))
    assert sent(fake)["tool_choice"] == {"type": "none"}
    assert none.data["choices"][0]["finish_reason"] == "stop"
    allowed = {"type": "allowed_tools", "allowed_tools": {"mode": "required", "tools": [CLOCK]}}
    await provider.complete(DEP, body(tools=[WEATHER, CLOCK], tool_choice=allowed))
    assert [t["name"] for t in sent(fake)["tools"]] == ["get_time"]
    assert sent(fake)["tool_choice"] == {"type": "any"}


async def test_tool_results_are_grouped_and_turns_merged(
    provider: AnthropicProvider, fake: FakeAnthropicServer
) -> None:
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather and time in Paris?"},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Quickly.", "cache_control": {"type": "ephemeral"}}
            ],
        },
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "toolu_a",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                },
                {
                    "id": "toolu_b",
                    "type": "function",
                    "function": {"name": "get_time", "arguments": "{not json"},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "toolu_a", "content": "18C"},
        {"role": "tool", "tool_call_id": "toolu_b", "content": [{"type": "text", "text": "noon"}]},
        {"role": "user", "content": "Thanks!"},
    ]
    resp = await provider.complete(DEP, body(messages=messages, tools=[WEATHER, CLOCK]))
    assert resp.data["choices"][0]["finish_reason"] == "stop"  # the fake's strict checks passed
    turns = sent(fake)["messages"]
    assert [t["role"] for t in turns] == ["user", "assistant", "user"]
    assert turns[0]["content"] == [
        {"type": "text", "text": "Weather and time in Paris?"},
        {"type": "text", "text": "Quickly.", "cache_control": {"type": "ephemeral"}},
    ]
    assert turns[1]["content"] == [
        {"type": "tool_use", "id": "toolu_a", "name": "get_weather", "input": {"city": "Paris"}},
        {"type": "tool_use", "id": "toolu_b", "name": "get_time", "input": {"_raw": "{not json"}},
    ]
    assert turns[2]["content"] == [
        {"type": "tool_result", "tool_use_id": "toolu_a", "content": "18C"},
        {
            "type": "tool_result",
            "tool_use_id": "toolu_b",
            "content": [{"type": "text", "text": "noon"}],
        },
        {"type": "text", "text": "Thanks!"},
    ]


async def test_images_and_system_blocks(
    provider: AnthropicProvider, fake: FakeAnthropicServer
) -> None:
    messages = [
        {
            "role": "system",
            "content": [{"type": "text", "text": "Sys.", "cache_control": {"type": "ephemeral"}}],
        },
        {"role": "system", "content": "More."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Compare."},
                {"type": "image_url", "image_url": {"url": PNG_URL}},
                {
                    "type": "image_url",
                    "image_url": {"url": "https://example.com/a.png", "detail": "low"},
                },
            ],
        },
    ]
    resp = await provider.complete(DEP, body(messages=messages))
    assert resp.data["usage"]["prompt_tokens"] > 512  # two images counted by the fake
    req = sent(fake)
    assert req["system"] == [
        {"type": "text", "text": "Sys.", "cache_control": {"type": "ephemeral"}},
        {"type": "text", "text": "More."},
    ]
    assert req["messages"][0]["content"][1:] == [
        {
            "type": "image",
            "source": {"type": "base64", "media_type": "image/png", "data": PNG_URL.split(",")[1]},
        },
        {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}},
    ]


async def test_response_format(provider: AnthropicProvider, fake: FakeAnthropicServer) -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    rf = {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}
    resp = await provider.complete(DEP, body(response_format=rf))
    assert sent(fake)["output_config"] == {"format": {"type": "json_schema", "schema": schema}}
    assert isinstance(json.loads(resp.data["choices"][0]["message"]["content"])["n"], int)
    await provider.complete(DEP, body(response_format={"type": "json_object"}))
    assert "JSON object" in sent(fake)["system"]


# -- usage and cost ----------------------------------------------------------------------


async def test_cache_usage_is_canonical_and_priced(
    provider: AnthropicProvider, fake: FakeAnthropicServer
) -> None:
    system = {
        "role": "system",
        "content": [{"type": "text", "text": LONG, "cache_control": {"type": "ephemeral"}}],
    }
    first = (await provider.complete(DEP, body(messages=[system, *HELLO]))).data["usage"]
    second_chunks = await collect(
        provider, body(messages=[system, {"role": "user", "content": "And Spain?"}])
    )
    second = second_chunks[-1]["usage"]
    # Replay both requests straight to the fake to see Anthropic's own numbers.
    headers = {"x-api-key": "sk-ant", "anthropic-version": "2023-06-01"}
    replay = {**fake.requests[-1]["body"], "stream": False}
    async with httpx.AsyncClient(base_url=fake.base_url, headers=headers) as client:
        raw_read = (await client.post("/v1/messages", json=replay)).json()["usage"]
        fake.clear_cache()
        raw_write = (await client.post("/v1/messages", json=fake.requests[0]["body"])).json()[
            "usage"
        ]
    assert (
        raw_write["cache_creation_input_tokens"] > 1024
        and raw_read["cache_read_input_tokens"] > 1024
    )
    written, read = raw_write["cache_creation_input_tokens"], raw_read["cache_read_input_tokens"]
    assert first == {
        "prompt_tokens": raw_write["input_tokens"] + written,
        "completion_tokens": raw_write["output_tokens"],
        "total_tokens": raw_write["input_tokens"] + written + raw_write["output_tokens"],
        "prompt_tokens_details": {"cached_tokens": 0, "cache_write_tokens": written},
        "completion_tokens_details": {"reasoning_tokens": 0},
    }
    assert second["prompt_tokens"] == raw_read["input_tokens"] + read
    assert second["prompt_tokens_details"] == {"cached_tokens": read, "cache_write_tokens": 0}
    assert second["completion_tokens"] == raw_read["output_tokens"]

    price = PriceCatalog.bundled().get("claude-sonnet-4-5")
    assert price is not None
    million = Decimal(1_000_000)
    expected_first = (
        Decimal(raw_write["input_tokens"]) * Decimal("3.00")
        + Decimal(written) * Decimal("3.75")
        + Decimal(raw_write["output_tokens"]) * Decimal("15.00")
    ) / million
    expected_second = (
        Decimal(raw_read["input_tokens"]) * Decimal("3.00")
        + Decimal(read) * Decimal("0.30")
        + Decimal(raw_read["output_tokens"]) * Decimal("15.00")
    ) / million
    assert compute_cost(price, Usage.from_openai(first)).total == expected_first
    assert compute_cost(price, Usage.from_openai(second)).total == expected_second
    assert Usage.from_openai(first) == Usage.from_anthropic(raw_write)


async def test_count_tokens(provider: AnthropicProvider, fake: FakeAnthropicServer) -> None:
    request = body(
        max_tokens=10, stop="x", user="u", temperature=0.3, tools=[WEATHER], tool_choice="none"
    )
    counted = await provider.count_tokens(DEP, request)
    assert fake.requests[-1]["path"] == "/v1/messages/count_tokens"
    assert set(sent(fake)) == {"model", "messages", "tools", "tool_choice"}
    usage = (await provider.complete(DEP, request)).data["usage"]
    assert counted == usage["prompt_tokens"]
    native = {"model": "x", "max_tokens": 5, "messages": [{"role": "user", "content": "Hi"}]}
    assert await provider.count_tokens(DEP, native, native=True) > 0
    assert sent(fake)["model"] == "claude-sonnet-4-5"


# -- errors ------------------------------------------------------------------------------


async def test_rate_limit_overloaded_and_server_errors(
    provider: AnthropicProvider, fake: FakeAnthropicServer
) -> None:
    fake.set_fault("status=429;retry_after=2", times=1)
    with pytest.raises(UpstreamRateLimitError) as rate:
        await provider.complete(DEP, body())
    assert rate.value.retry_after_s == 2 and rate.value.retryable and rate.value.status == 429
    assert rate.value.provider == "anth" and rate.value.deployment == DEP.id
    fake.set_fault("status=429;code=enforced_spend_limit_reached", times=1)
    with pytest.raises(UpstreamRateLimitError) as spend:
        await provider.complete(DEP, body())
    assert not spend.value.retryable
    fake.set_fault("status=529", times=1)
    with pytest.raises(UpstreamStatusError) as overloaded:
        await provider.stream(DEP, body(stream=True))
    err = overloaded.value
    assert err.upstream_status == 529 and err.retryable and err.status == 502
    assert err.message == "Overloaded"
    fake.set_fault("status=500", times=1)
    with pytest.raises(UpstreamStatusError) as server:
        await provider.complete(DEP, body())
    assert server.value.upstream_status == 500 and server.value.retryable


async def test_client_errors_are_not_retryable(
    provider: AnthropicProvider, fake: FakeAnthropicServer
) -> None:
    with pytest.raises(UpstreamStatusError) as missing:
        await provider.complete(Deployment("anth", "unknown-model", "x"), body())
    assert missing.value.status == 404 and not missing.value.retryable
    with pytest.raises(UpstreamStatusError) as n:
        await provider.complete(DEP, body(n=2))
    assert n.value.status == 400 and not n.value.retryable and "n > 1" in n.value.message
    with pytest.raises(UpstreamStatusError) as emb:
        await provider.embed(DEP, {"model": "x", "input": "hi"})
    assert emb.value.status == 400 and not emb.value.retryable and "embeddings" in emb.value.message
    wrong = make(fake, api_key="sk-wrong")
    await wrong.open()
    try:
        with pytest.raises(UpstreamStatusError) as auth:
            await wrong.complete(DEP, body())
    finally:
        await wrong.aclose()
    assert auth.value.upstream_status == 401 and not auth.value.retryable


async def test_transport_faults(fake: FakeAnthropicServer) -> None:
    p = make(fake, timeouts={"first_byte_s": 0.2, "stream_idle_s": 0.2})
    await p.open()
    try:
        fake.set_fault("timeout=1", times=1)
        with pytest.raises(UpstreamTimeoutError):
            await p.complete(DEP, body())
        fake.set_fault("reset", times=1)
        with pytest.raises(UpstreamConnectionError):
            await p.complete(DEP, body())
        fake.set_fault("malformed", times=1)
        with pytest.raises(UpstreamProtocolError):
            await p.complete(DEP, body())
        fake.set_fault("malformed", times=1)
        with pytest.raises(UpstreamProtocolError):
            await collect(p, body())
        fake.set_fault("slow_stream=1", times=1)
        with pytest.raises(UpstreamTimeoutError):
            await collect(p, body())
    finally:
        await p.aclose()


async def test_mid_stream_error_and_cut(
    provider: AnthropicProvider, fake: FakeAnthropicServer
) -> None:
    received: list[dict[str, Any]] = []
    fake.set_fault("stream_error=4", times=1)
    stream = await provider.stream(DEP, body(stream=True))
    with pytest.raises(UpstreamStatusError) as info:
        async for event in stream:
            received.append(event.data)
    await stream.aclose()
    assert received and received[0]["choices"][0]["delta"]["role"] == "assistant"
    assert info.value.upstream_status == 529 and info.value.retryable
    fake.set_fault("stream_error=2;type=invalid_request_error;message=bad thing", times=1)
    with pytest.raises(UpstreamStatusError) as bad:
        await collect(provider, body())
    assert bad.value.status == 400 and not bad.value.retryable and bad.value.message == "bad thing"
    fake.set_fault("cut=5", times=1)
    with pytest.raises(UpstreamConnectionError):
        await collect(provider, body())
