"""The Bedrock adapter round-trips through the fake Bedrock server over real HTTP."""

from __future__ import annotations

import base64
import re
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import orjson
import pytest

pytest.importorskip("botocore")

from thrifty.config import ProviderConfig, Timeouts
from thrifty.errors import (
    UpstreamConnectionError,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamRateLimitError,
    UpstreamStatusError,
    UpstreamTimeoutError,
)
from thrifty.pricing import CostCalculator, PriceCatalog
from thrifty.pricing.usage import Usage
from thrifty.providers.base import Deployment, Provider
from thrifty.providers.bedrock import BedrockProvider
from thrifty.providers.factory import provider_class
from thrifty.testing.fake_bedrock import (
    FAKE_ACCESS_KEY,
    FAKE_SECRET_KEY,
    FakeBedrockServer,
)

CLAUDE = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
TOOLS = [
    {
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
    },
    {
        "type": "function",
        "function": {
            "name": "get_time",
            "parameters": {"type": "object", "properties": {"tz": {"type": "string"}}},
        },
    },
]
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 16).decode()
SIGV4 = re.compile(
    r"AWS4-HMAC-SHA256 Credential=AKIDTHRIFTYFAKE/\d{8}/us-east-1/bedrock/aws4_request, "
    r"SignedHeaders=[a-z0-9;-]*host[a-z0-9;-]*x-amz-date[a-z0-9;-]*, Signature=[0-9a-f]{64}"
)


def dep(model: str = CLAUDE) -> Deployment:
    return Deployment("bedrock", model, "claude")


def chat(text: str = "Hello there", **kw: Any) -> dict[str, Any]:
    return {"model": "claude", "messages": [{"role": "user", "content": text}], **kw}


@pytest.fixture
async def fake() -> AsyncIterator[FakeBedrockServer]:
    async with FakeBedrockServer() as server:
        yield server


def make_provider(fake: FakeBedrockServer, **kw: Any) -> BedrockProvider:
    settings: dict[str, Any] = {
        "kind": "bedrock",
        "region": "us-east-1",
        "base_url": fake.base_url,
        "aws_access_key_id": FAKE_ACCESS_KEY,
        "aws_secret_access_key": FAKE_SECRET_KEY,
    }
    settings.update(kw)
    return BedrockProvider("bedrock", ProviderConfig(**settings))


@pytest.fixture
async def provider(fake: FakeBedrockServer) -> AsyncIterator[BedrockProvider]:
    p = make_provider(fake)
    await p.open()
    try:
        yield p
    finally:
        await p.aclose()


async def collect(
    p: BedrockProvider, body: dict[str, Any], model: str = CLAUDE
) -> list[dict[str, Any]]:
    stream = await p.stream(dep(model), body)
    try:
        return [ev.data async for ev in stream]
    finally:
        await stream.aclose()


def test_factory_and_protocol() -> None:
    assert provider_class("bedrock") is BedrockProvider
    cfg = ProviderConfig(kind="bedrock", base_url="https://bedrock-runtime.eu-west-1.amazonaws.com")
    p = BedrockProvider("b", cfg)
    assert isinstance(p, Provider)
    assert p.region == "eu-west-1"
    p = BedrockProvider("b", ProviderConfig(kind="bedrock", region="ap-south-1"))
    assert p.base_url == "https://bedrock-runtime.ap-south-1.amazonaws.com"


# -- text -------------------------------------------------------------------------------------


async def test_complete_text(provider: BedrockProvider, fake: FakeBedrockServer) -> None:
    body = {
        "model": "claude",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hello"},
            {"role": "user", "content": [{"type": "text", "text": "there"}]},
        ],
        "max_completion_tokens": 200,
        "temperature": 0.3,
        "top_p": 0.9,
        "seed": 7,
    }
    resp = await provider.complete(dep(), body)
    data = resp.data
    assert data["object"] == "chat.completion" and data["model"] == CLAUDE
    assert data["id"].startswith("chatcmpl-")
    (choice,) = data["choices"]
    assert choice["finish_reason"] == "stop"
    assert choice["message"]["role"] == "assistant" and choice["message"]["content"]
    assert data["usage"]["total_tokens"] == (
        data["usage"]["prompt_tokens"] + data["usage"]["completion_tokens"]
    )
    assert resp.headers.get("x-amzn-requestid")
    sent = fake.requests[-1]["body"]
    assert sent == {
        "system": [{"text": "Be brief."}],
        "messages": [{"role": "user", "content": [{"text": "Hello"}, {"text": "there"}]}],
        "inferenceConfig": {"maxTokens": 200, "temperature": 0.3, "topP": 0.9},
    }


async def test_claude_models_that_reject_sampling_are_sent_none(
    provider: BedrockProvider, fake: FakeBedrockServer
) -> None:
    body = chat(temperature=0.3, top_p=0.9, max_tokens=50)
    await provider.complete(dep("us.anthropic.claude-opus-4-7-20260416-v1:0"), body)
    assert fake.requests[-1]["body"]["inferenceConfig"] == {"maxTokens": 50}
    await provider.complete(dep(), body)  # an older Claude keeps them
    assert fake.requests[-1]["body"]["inferenceConfig"]["temperature"] == 0.3


async def test_stream_text_matches_complete(provider: BedrockProvider) -> None:
    whole = await provider.complete(dep(), chat())
    chunks = await collect(provider, chat(stream=True))
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == whole.data["choices"][0]["message"]["content"]
    finish, last = chunks[-2], chunks[-1]
    assert finish["choices"][0]["finish_reason"] == "stop"
    assert last["choices"] == [] and last["usage"] == whole.data["usage"]
    assert len({c["id"] for c in chunks}) == 1


@pytest.mark.parametrize(
    ("model", "raw"),
    [
        ("meta.llama3-3-70b-instruct-v1:0", "/model/meta.llama3-3-70b-instruct-v1%3A0/converse"),
        ("us.amazon.nova-pro-v1:0", "/model/us.amazon.nova-pro-v1%3A0/converse"),
        ("mistral.mistral-large-2407-v1:0", "/model/mistral.mistral-large-2407-v1%3A0/converse"),
        (
            "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.amazon.nova-pro-v1:0",
            "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile"
            "%2Fus.amazon.nova-pro-v1%3A0/converse",
        ),
    ],
)
async def test_model_ids_are_percent_encoded(
    provider: BedrockProvider, fake: FakeBedrockServer, model: str, raw: str
) -> None:
    await provider.complete(dep(model), chat())
    assert fake.requests[-1]["raw_path"] == raw
    assert fake.requests[-1]["model"] == model
    await collect(provider, chat(stream=True), model)
    assert fake.requests[-1]["raw_path"] == raw + "-stream"


# -- finish reasons ---------------------------------------------------------------------------


async def test_finish_reasons(provider: BedrockProvider, fake: FakeBedrockServer) -> None:
    cut = await provider.complete(dep(), chat("Talk [fake:tokens=20]", max_tokens=4))
    assert cut.data["choices"][0]["finish_reason"] == "length"
    assert cut.data["usage"]["completion_tokens"] == 4
    full = (await provider.complete(dep(), chat("Talk [fake:tokens=20]"))).data
    word = full["choices"][0]["message"]["content"].split()[5]
    stopped = await provider.complete(dep(), chat("Talk [fake:tokens=20]", stop=word))
    assert stopped.data["choices"][0]["finish_reason"] == "stop"
    assert fake.requests[-1]["body"]["inferenceConfig"] == {"stopSequences": [word]}
    chunks = await collect(provider, chat("Talk [fake:tokens=20]", max_tokens=4, stream=True))
    assert chunks[-2]["choices"][0]["finish_reason"] == "length"


# -- tools ------------------------------------------------------------------------------------


async def test_tool_calls_complete(provider: BedrockProvider, fake: FakeBedrockServer) -> None:
    resp = await provider.complete(dep(), chat("Weather in Paris?", tools=TOOLS))
    (choice,) = resp.data["choices"]
    assert choice["finish_reason"] == "tool_calls"
    assert "get_weather" in choice["message"]["content"]
    (call,) = choice["message"]["tool_calls"]
    assert call["type"] == "function" and call["id"].startswith("tooluse_")
    assert call["function"]["name"] == "get_weather"
    assert isinstance(orjson.loads(call["function"]["arguments"])["city"], str)
    tool_config = fake.requests[-1]["body"]["toolConfig"]
    assert "toolChoice" not in tool_config
    assert tool_config["tools"][0] == {
        "toolSpec": {
            "name": "get_weather",
            "description": "Weather for a city",
            "inputSchema": {"json": TOOLS[0]["function"]["parameters"]},
        }
    }
    forced = await provider.complete(
        dep(),
        chat(
            "Time?", tools=TOOLS, tool_choice={"type": "function", "function": {"name": "get_time"}}
        ),
    )
    message = forced.data["choices"][0]["message"]
    assert message["content"] is None and message["tool_calls"][0]["function"]["name"] == "get_time"
    assert fake.requests[-1]["body"]["toolConfig"]["toolChoice"] == {"tool": {"name": "get_time"}}
    await provider.complete(dep(), chat("Any?", tools=TOOLS, tool_choice="required"))
    assert fake.requests[-1]["body"]["toolConfig"]["toolChoice"] == {"any": {}}
    plain = await provider.complete(dep(), chat("No tools", tools=TOOLS, tool_choice="none"))
    assert "toolConfig" not in fake.requests[-1]["body"]
    assert plain.data["choices"][0]["finish_reason"] == "stop"


async def test_tool_call_stream_indices_are_renumbered(provider: BedrockProvider) -> None:
    chunks = await collect(
        provider, chat("Weather and time [fake:parallel]", tools=TOOLS, stream=True)
    )
    calls: dict[int, dict[str, Any]] = {}
    for chunk in chunks:
        for choice in chunk["choices"]:
            for delta in choice["delta"].get("tool_calls") or ():
                entry = calls.setdefault(delta["index"], {"arguments": ""})
                if "id" in delta:
                    entry["id"], entry["name"] = delta["id"], delta["function"]["name"]
                entry["arguments"] += delta["function"]["arguments"]
    # Bedrock's contentBlockIndex is 1 and 2 (the text block is 0); OpenAI's index is 0 and 1
    assert sorted(calls) == [0, 1]
    assert [calls[0]["name"], calls[1]["name"]] == ["get_weather", "get_time"]
    assert "city" in orjson.loads(calls[0]["arguments"])
    assert isinstance(orjson.loads(calls[1]["arguments"]), dict)
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"


async def test_tool_results_round_trip(provider: BedrockProvider, fake: FakeBedrockServer) -> None:
    first = await provider.complete(dep(), chat("Weather and time [fake:parallel]", tools=TOOLS))
    message = first.data["choices"][0]["message"]
    a, b = message["tool_calls"]
    history = [
        {"role": "user", "content": "Weather and time [fake:parallel]"},
        message,
        {"role": "tool", "tool_call_id": a["id"], "content": "21C"},
        {"role": "tool", "tool_call_id": b["id"], "content": [{"type": "text", "text": "noon"}]},
        {"role": "user", "content": "Thanks! Summarise."},
    ]
    final = await provider.complete(dep(), {"model": "claude", "messages": history, "tools": TOOLS})
    assert final.data["choices"][0]["finish_reason"] == "stop"
    turns = fake.requests[-1]["body"]["messages"]
    assert [t["role"] for t in turns] == ["user", "assistant", "user"]
    assert [next(iter(blk)) for blk in turns[1]["content"]] == ["text", "toolUse", "toolUse"]
    assert turns[1]["content"][1]["toolUse"]["input"] == orjson.loads(a["function"]["arguments"])
    assert turns[2]["content"] == [
        {"toolResult": {"toolUseId": a["id"], "content": [{"text": "21C"}]}},
        {"toolResult": {"toolUseId": b["id"], "content": [{"text": "noon"}]}},
        {"text": "Thanks! Summarise."},
    ]


# -- images -----------------------------------------------------------------------------------


async def test_image_data_url(provider: BedrockProvider, fake: FakeBedrockServer) -> None:
    content = [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
    ]
    body = {"model": "claude", "messages": [{"role": "user", "content": content}]}
    resp = await provider.complete(dep(), body)
    assert resp.data["choices"][0]["finish_reason"] == "stop"
    block = fake.requests[-1]["body"]["messages"][0]["content"][1]
    assert block == {"image": {"format": "png", "source": {"bytes": PNG}}}


async def test_remote_image_url_is_refused_before_sending(
    provider: BedrockProvider, fake: FakeBedrockServer
) -> None:
    content = [{"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]
    with pytest.raises(UpstreamStatusError) as exc:
        await provider.complete(
            dep(), {"model": "c", "messages": [{"role": "user", "content": content}]}
        )
    assert exc.value.status == 400 and not exc.value.retryable
    assert fake.requests == []


# -- usage, cache and cost --------------------------------------------------------------------


async def test_cache_usage_and_cost(provider: BedrockProvider, fake: FakeBedrockServer) -> None:
    system = {
        "role": "system",
        "content": [
            {"type": "text", "text": "Policy. " * 300, "cache_control": {"type": "ephemeral"}}
        ],
    }
    body = {"model": "claude", "messages": [system, {"role": "user", "content": "Hi"}]}
    first = (await provider.complete(dep(), body)).data["usage"]
    assert fake.requests[-1]["body"]["system"][1] == {"cachePoint": {"type": "default"}}
    second_chunks = await collect(provider, {**body, "stream": True})
    second = second_chunks[-1]["usage"]
    write = first["prompt_tokens_details"]["cache_write_tokens"]
    assert write > 300 and first["prompt_tokens_details"]["cached_tokens"] == 0
    assert second["prompt_tokens_details"] == {"cached_tokens": write, "cache_write_tokens": 0}
    assert second["prompt_tokens"] == first["prompt_tokens"]  # input + read + write

    usage = Usage.from_openai(second)
    assert (
        usage.cached_tokens == write
        and usage.uncached_prompt_tokens == second["prompt_tokens"] - write
    )
    cost = CostCalculator(PriceCatalog.bundled()).cost_of(CLAUDE, usage)
    assert cost is not None
    m = Decimal(1_000_000)
    expected = (
        Decimal(usage.uncached_prompt_tokens) * Decimal("3.3") / m
        + Decimal(write) * Decimal("0.33") / m
        + Decimal(second["completion_tokens"]) * Decimal("16.5") / m
    )
    assert cost.total == expected
    first_cost = CostCalculator(PriceCatalog.bundled()).cost_of(CLAUDE, Usage.from_openai(first))
    assert first_cost is not None
    assert first_cost.cache_write == Decimal(write) * Decimal("4.125") / m


# -- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "cls", "status", "retryable"),
    [
        ("status=429", UpstreamRateLimitError, 429, True),
        ("status=429;code=ModelNotReadyException", UpstreamStatusError, 502, True),
        ("status=500", UpstreamStatusError, 502, True),
        ("status=503", UpstreamStatusError, 502, True),
        ("status=400", UpstreamStatusError, 400, False),
        ("status=403", UpstreamStatusError, 502, False),
        ("status=404", UpstreamStatusError, 404, False),
        ("status=408", UpstreamTimeoutError, 504, True),
        ("status=424", UpstreamStatusError, 502, True),
        ("reset", UpstreamConnectionError, 502, True),
        ("malformed", UpstreamProtocolError, 502, True),
        ("cut=1", UpstreamConnectionError, 502, True),
    ],
)
@pytest.mark.parametrize("streaming", [False, True])
async def test_errors(
    provider: BedrockProvider,
    fake: FakeBedrockServer,
    spec: str,
    cls: type[UpstreamError],
    status: int,
    retryable: bool,
    streaming: bool,
) -> None:
    fake.set_fault(spec)
    with pytest.raises(UpstreamError) as exc:
        if streaming:
            await collect(provider, chat(stream=True))
        else:
            await provider.complete(dep(), chat())
    assert type(exc.value) is cls, exc.value
    assert (exc.value.status, exc.value.retryable) == (status, retryable)
    assert exc.value.provider == "bedrock" and exc.value.deployment == f"bedrock/{CLAUDE}"
    if spec == "status=403":
        assert exc.value.code == "upstream_auth_failed"


@pytest.mark.parametrize(
    ("spec", "cls", "upstream_status", "retryable"),
    [
        ("stream_error=2", UpstreamRateLimitError, 429, True),
        ("stream_error=3;code=modelStreamErrorException", UpstreamStatusError, 424, True),
        ("stream_error=2;code=serviceUnavailableException", UpstreamStatusError, 503, True),
        ("stream_error=2;code=internalServerException", UpstreamStatusError, 500, True),
        ("stream_error=2;code=validationException", UpstreamStatusError, 400, False),
    ],
)
async def test_mid_stream_exceptions(
    provider: BedrockProvider,
    fake: FakeBedrockServer,
    spec: str,
    cls: type[UpstreamStatusError],
    upstream_status: int,
    retryable: bool,
) -> None:
    fake.set_fault(spec)
    stream = await provider.stream(dep(), chat(stream=True))
    seen: list[dict[str, Any]] = []
    with pytest.raises(UpstreamError) as exc:
        async for event in stream:
            seen.append(event.data)
    await stream.aclose()
    assert type(exc.value) is cls
    assert exc.value.upstream_status == upstream_status  # type: ignore[attr-defined]
    assert exc.value.retryable is retryable
    assert seen and seen[0]["choices"][0]["delta"]["role"] == "assistant"


async def test_cut_stream_is_a_connection_error(
    provider: BedrockProvider, fake: FakeBedrockServer
) -> None:
    fake.set_fault("cut=4")
    stream = await provider.stream(dep(), chat(stream=True))
    seen = 0
    with pytest.raises(UpstreamConnectionError):
        async for _ in stream:
            seen += 1
    assert seen >= 2
    await stream.aclose()


async def test_timeouts(fake: FakeBedrockServer) -> None:
    p = make_provider(fake, timeouts=Timeouts(first_byte_s=0.2, stream_idle_s=0.2))
    await p.open()
    try:
        fake.set_fault("timeout=1")
        with pytest.raises(UpstreamTimeoutError):
            await p.complete(dep(), chat())
        fake.set_fault("slow_stream=1")
        with pytest.raises(UpstreamTimeoutError):
            await collect(p, chat(stream=True))
    finally:
        await p.aclose()


async def test_request_errors_are_not_sent(
    provider: BedrockProvider, fake: FakeBedrockServer
) -> None:
    for body in (chat(n=2), chat(response_format={"type": "json_object"})):
        with pytest.raises(UpstreamStatusError) as exc:
            await provider.complete(dep(), body)
        assert exc.value.status == 400 and not exc.value.retryable
    with pytest.raises(UpstreamStatusError) as exc:
        await provider.embed(dep("amazon.titan-embed-text-v2:0"), {"input": "x"})
    assert exc.value.status == 400 and not exc.value.retryable
    assert fake.requests == []


async def test_validation_error_from_bedrock(provider: BedrockProvider) -> None:
    body = {"model": "c", "messages": [{"role": "assistant", "content": "I start"}]}
    with pytest.raises(UpstreamStatusError) as exc:
        await provider.complete(dep(), body)
    assert exc.value.status == 400 and not exc.value.retryable
    assert "must start with a user message" in exc.value.message


# -- auth -------------------------------------------------------------------------------------


async def test_sigv4_header_verified_by_fake(
    provider: BedrockProvider, fake: FakeBedrockServer
) -> None:
    await provider.complete(dep(), chat())
    req = fake.requests[-1]
    assert SIGV4.fullmatch(req["headers"]["authorization"])
    assert re.fullmatch(r"\d{8}T\d{6}Z", req["headers"]["x-amz-date"])
    assert req["access_key"] == FAKE_ACCESS_KEY  # known key: the signature was recomputed


async def test_wrong_secret_is_a_non_retryable_auth_error(fake: FakeBedrockServer) -> None:
    p = make_provider(fake, aws_secret_access_key="wrong")
    await p.open()
    try:
        with pytest.raises(UpstreamStatusError) as exc:
            await p.complete(dep(), chat())
    finally:
        await p.aclose()
    assert exc.value.code == "upstream_auth_failed" and not exc.value.retryable
    assert "InvalidSignatureException" in exc.value.message


async def test_session_token_and_region_scope(fake: FakeBedrockServer) -> None:
    p = make_provider(fake, aws_session_token="tok-123")
    await p.open()
    try:
        await p.complete(dep(), chat())
    finally:
        await p.aclose()
    headers = fake.requests[-1]["headers"]
    assert headers["x-amz-security-token"] == "tok-123"
    assert "x-amz-security-token" in headers["authorization"]
    p = make_provider(fake, region="eu-west-1")
    await p.open()
    try:
        with pytest.raises(UpstreamStatusError) as exc:
            await p.complete(dep(), chat())
    finally:
        await p.aclose()
    assert exc.value.code == "upstream_auth_failed"


async def test_bearer_api_key() -> None:
    async with FakeBedrockServer(api_keys={"bedrock-api-key-abc"}) as fake:
        p = BedrockProvider(
            "bedrock",
            ProviderConfig(kind="bedrock", base_url=fake.base_url, api_key="bedrock-api-key-abc"),
        )
        await p.open()
        try:
            await p.complete(dep(), chat())
        finally:
            await p.aclose()
        assert fake.requests[-1]["headers"]["authorization"] == "Bearer bedrock-api-key-abc"
        assert fake.requests[-1]["access_key"] == "bearer"


async def test_default_credential_chain(
    fake: FakeBedrockServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", FAKE_ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", FAKE_SECRET_KEY)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_BEARER_TOKEN_BEDROCK", raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    p = BedrockProvider("bedrock", ProviderConfig(kind="bedrock", base_url=fake.base_url))
    await p.open()
    try:
        await p.complete(dep(), chat())
    finally:
        await p.aclose()
    assert fake.requests[-1]["access_key"] == FAKE_ACCESS_KEY
