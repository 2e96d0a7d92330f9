"""The fake Anthropic server, driven by the official ``anthropic`` SDK over real loopback sockets."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import pytest
from anthropic import Anthropic, AsyncAnthropic

from thrifty.testing.fake_anthropic import FakeAnthropicServer
from thrifty.testing.fake_anthropic_wire import AnthropicFault

MODEL = "claude-haiku-4-5"
HELLO = [{"role": "user", "content": "What is the capital of France?"}]
WEATHER = {
    "name": "get_weather",
    "description": "Current weather for a city.",
    "input_schema": {
        "type": "object",
        "properties": {
            "city": {"type": "string"},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        },
        "required": ["city", "unit"],
    },
}
CLOCK = {
    "name": "get_time",
    "input_schema": {"type": "object", "properties": {"tz": {"type": "string"}}},
}
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 16).decode()
LONG = " ".join(["The cache should hold this long and stable system prompt."] * 120)


@pytest.fixture(scope="module")
def server() -> Iterator[FakeAnthropicServer]:
    with FakeAnthropicServer() as fake:
        yield fake


@pytest.fixture
def fake(server: FakeAnthropicServer) -> FakeAnthropicServer:
    server.set_fault(None)
    server.clear()
    return server


@pytest.fixture
def client(fake: FakeAnthropicServer) -> Iterator[Anthropic]:
    with Anthropic(base_url=fake.base_url, api_key="sk-ant", max_retries=0, timeout=10) as c:
        yield c


def create(client: Anthropic, **kwargs: Any) -> Any:
    kwargs.setdefault("model", MODEL)
    kwargs.setdefault("max_tokens", 256)
    kwargs.setdefault("messages", HELLO)
    return client.messages.create(**kwargs)


def raw_post(
    fake: FakeAnthropicServer, body: Any, path: str = "/v1/messages", **headers: str
) -> httpx.Response:
    given = {k.replace("_", "-"): v for k, v in headers.items()}
    hdrs = {"x-api-key": "k", "anthropic-version": "2023-06-01", **given}
    hdrs = {k: v for k, v in hdrs.items() if v}
    return httpx.post(fake.base_url + path, json=body, headers=hdrs, timeout=10)


# -- messages ----------------------------------------------------------------------------


def test_text_answer_is_deterministic_and_counted(
    client: Anthropic, fake: FakeAnthropicServer
) -> None:
    raw = client.messages.with_raw_response.create(model=MODEL, max_tokens=256, messages=HELLO)
    first = raw.parse()
    second = create(client)
    other = create(client, messages=[{"role": "user", "content": "Something else"}])
    assert first.type == "message" and first.role == "assistant" and first.model == MODEL
    assert first.id.startswith("msg_") and first.id != second.id
    assert first.content[0].type == "text" and first.content[0].text
    assert first.content[0].text == second.content[0].text != other.content[0].text
    assert first.stop_reason == "end_turn" and first.stop_sequence is None
    counted = client.messages.count_tokens(model=MODEL, messages=HELLO)
    assert first.usage.input_tokens == counted.input_tokens > 0
    assert first.usage.cache_read_input_tokens == first.usage.cache_creation_input_tokens == 0
    assert 8 <= first.usage.output_tokens <= 60
    assert raw.headers["request-id"].startswith("req_")
    assert raw.headers["anthropic-ratelimit-requests-reset"].endswith("Z")
    seen = fake.requests[0]["headers"]
    assert seen["authorization"] == "Bearer sk-ant" and seen["anthropic-version"] == "2026-10-21"


def test_answer_length_stop_sequence_and_max_tokens(client: Anthropic) -> None:
    long = create(client, messages=[{"role": "user", "content": "Tell me [fake:tokens=40]"}])
    assert long.usage.output_tokens == 40
    text = long.content[0].text
    word = text.split()[5]
    stopped = create(
        client,
        messages=[{"role": "user", "content": "Tell me [fake:tokens=40]"}],
        stop_sequences=[word],
    )
    assert stopped.stop_reason == "stop_sequence" and stopped.stop_sequence == word
    assert text.startswith(stopped.content[0].text) and word not in stopped.content[0].text
    short = create(
        client, messages=[{"role": "user", "content": "Tell me [fake:tokens=40]"}], max_tokens=5
    )
    assert short.stop_reason == "max_tokens" and short.usage.output_tokens == 5


def test_refusal_and_structured_output(client: Anthropic) -> None:
    refused = create(client, messages=[{"role": "user", "content": "[fake:refusal] do it"}])
    assert refused.stop_reason == "refusal"
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
        "required": ["name", "age"],
        "additionalProperties": False,
    }
    out = create(client, output_config={"format": {"type": "json_schema", "schema": schema}})
    data = json.loads(out.content[0].text)
    assert isinstance(data["name"], str) and isinstance(data["age"], int)


def test_tools_parallel_named_and_results(client: Anthropic) -> None:
    msg = create(client, tools=[WEATHER, CLOCK])
    assert msg.stop_reason == "tool_use"
    assert [b.type for b in msg.content] == ["text", "tool_use", "tool_use"]
    weather, clock = msg.content[1], msg.content[2]
    assert weather.name == "get_weather" and clock.name == "get_time"
    assert weather.id.startswith("toolu_") and weather.input["unit"] in ("celsius", "fahrenheit")
    assert isinstance(weather.input["city"], str)
    one = create(
        client,
        tools=[WEATHER, CLOCK],
        tool_choice={"type": "any", "disable_parallel_tool_use": True},
    )
    assert [b.type for b in one.content] == ["tool_use"]
    named = create(client, tools=[WEATHER, CLOCK], tool_choice={"type": "tool", "name": "get_time"})
    assert [(b.type, b.name) for b in named.content] == [("tool_use", "get_time")]
    assert create(client, tools=[WEATHER], tool_choice={"type": "none"}).stop_reason == "end_turn"
    turns = [
        *HELLO,
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in msg.content]},
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": weather.id, "content": "18C"},
                {
                    "type": "tool_result",
                    "tool_use_id": clock.id,
                    "content": [{"type": "text", "text": "noon"}],
                },
                {"type": "text", "text": "Thanks"},
            ],
        },
    ]
    final = create(client, tools=[WEATHER, CLOCK], messages=turns)
    assert final.stop_reason == "end_turn" and final.content[0].type == "text"


def test_stream_accumulates_to_the_same_message(client: Anthropic) -> None:
    plain = create(client, tools=[WEATHER, CLOCK])
    with client.messages.stream(
        model=MODEL, max_tokens=256, messages=HELLO, tools=[WEATHER, CLOCK]
    ) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_message()
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    assert [b.model_dump() for b in final.content] == [b.model_dump() for b in plain.content]
    assert final.stop_reason == "tool_use"
    assert final.usage.input_tokens == plain.usage.input_tokens
    assert final.usage.output_tokens == plain.usage.output_tokens


def test_stream_wire_format(fake: FakeAnthropicServer) -> None:
    body = {"model": MODEL, "max_tokens": 64, "messages": HELLO, "stream": True, "tools": [WEATHER]}
    resp = raw_post(fake, body)
    assert resp.headers["content-type"].startswith("text/event-stream")
    events = [e for e in resp.text.split("\n\n") if e]
    names = [e.split("\n")[0].removeprefix("event: ") for e in events]
    datas = [json.loads(e.split("\n")[1].removeprefix("data: ")) for e in events]
    assert all(d["type"] == n for n, d in zip(names, datas, strict=True))
    assert names[:3] == ["message_start", "content_block_start", "ping"]
    assert names[-2:] == ["message_delta", "message_stop"]
    start = datas[0]["message"]
    assert (
        start["content"] == []
        and start["stop_reason"] is None
        and start["usage"]["output_tokens"] == 1
    )
    tool_start = next(d for d in datas if d.get("content_block", {}).get("type") == "tool_use")
    assert tool_start["index"] == 1 and tool_start["content_block"]["input"] == {}
    fragments = [
        d["delta"]["partial_json"]
        for d in datas
        if d.get("delta", {}).get("type") == "input_json_delta"
    ]
    assert fragments[0] == "" and json.loads("".join(fragments))["city"]
    delta = datas[-2]
    assert delta["delta"]["stop_reason"] == "tool_use" and "input_tokens" not in delta["usage"]


def test_new_version_repeats_usage_and_rejects_sampling(
    client: Anthropic, fake: FakeAnthropicServer
) -> None:
    body = {"model": MODEL, "max_tokens": 64, "messages": HELLO, "stream": True}
    resp = raw_post(fake, body, anthropic_version="2026-10-21")
    delta = next(
        json.loads(line[6:]) for line in resp.text.splitlines() if '"message_delta"' in line
    )
    assert delta["usage"]["input_tokens"] > 0 and delta["usage"]["cache_read_input_tokens"] == 0
    with pytest.raises(anthropic.BadRequestError, match="temperature"):
        create(client, extra_body={"temperature": 0.5})
    assert raw_post(fake, {**body, "stream": False, "temperature": 0.5}).status_code == 200
    assert raw_post(fake, {**body, "stream": False, "temperature": 1.5}).status_code == 400
    system_role = create(client, messages=[{"role": "system", "content": "Be terse."}, *HELLO])
    assert system_role.stop_reason == "end_turn"


def test_images_and_count_tokens(client: Anthropic, fake: FakeAnthropicServer) -> None:
    content = [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.png"}},
        {"type": "text", "text": "Describe both."},
    ]
    msg = create(client, messages=[{"role": "user", "content": content}])
    counted = client.messages.count_tokens(
        model=MODEL, messages=[{"role": "user", "content": content}]
    )
    assert msg.usage.input_tokens == counted.input_tokens > 512
    with pytest.raises(anthropic.BadRequestError, match="media_type"):
        bad = [
            {"type": "image", "source": {"type": "base64", "media_type": "image/tiff", "data": PNG}}
        ]
        create(client, messages=[{"role": "user", "content": bad}])
    resp = raw_post(
        fake, {"model": MODEL, "messages": HELLO, "max_tokens": 5}, "/v1/messages/count_tokens"
    )
    assert resp.status_code == 400 and "max_tokens" in resp.json()["error"]["message"]


def test_prompt_cache_write_then_read(client: Anthropic, fake: FakeAnthropicServer) -> None:
    fake.clear_cache()
    system = [{"type": "text", "text": LONG, "cache_control": {"type": "ephemeral", "ttl": "1h"}}]
    total = client.messages.count_tokens(model=MODEL, system=system, messages=HELLO).input_tokens
    first = create(client, system=system)
    second = create(client, system=system, messages=[{"role": "user", "content": "And of Spain?"}])
    written = first.usage.cache_creation_input_tokens
    assert written > 1024 and first.usage.cache_read_input_tokens == 0
    assert first.usage.cache_creation.ephemeral_1h_input_tokens == written
    assert first.usage.input_tokens + written == total
    assert second.usage.cache_read_input_tokens == written
    assert second.usage.cache_creation_input_tokens == 0
    short = [{"type": "text", "text": "Short.", "cache_control": {"type": "ephemeral"}}]
    assert create(client, system=short).usage.cache_creation_input_tokens == 0  # under 1024


def test_validation_errors(client: Anthropic, fake: FakeAnthropicServer) -> None:
    def bad(**kwargs: Any) -> str:
        with pytest.raises(anthropic.BadRequestError) as info:
            create(client, **kwargs)
        assert info.value.type == "invalid_request_error"
        return str(info.value.api_message)

    assert "alternate" in bad(messages=[*HELLO, {"role": "user", "content": "again"}])
    assert "non-empty" in bad(messages=[{"role": "user", "content": ""}])
    orphan = [
        *HELLO,
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}}],
        },
        {"role": "user", "content": "hm"},
    ]
    assert "without `tool_result`" in bad(messages=orphan, tools=[WEATHER])
    stray = [
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "toolu_9", "content": "x"}],
        }
    ]
    assert "unexpected `tool_use_id`" in bad(messages=stray)
    assert "not found" in bad(tools=[WEATHER], tool_choice={"type": "tool", "name": "nope"})
    with pytest.raises(anthropic.NotFoundError):
        create(client, model="unknown-model")
    assert (
        raw_post(fake, {"model": MODEL, "messages": HELLO}).json()["error"]["message"]
        == "max_tokens: Field required"
    )
    no_version = raw_post(
        fake, {"model": MODEL, "messages": HELLO, "max_tokens": 5}, anthropic_version=""
    )
    assert no_version.status_code == 400 and "anthropic-version" in no_version.text
    no_key = raw_post(fake, {"model": MODEL, "messages": HELLO, "max_tokens": 5}, x_api_key="")
    assert no_key.status_code == 401 and no_key.json()["error"]["type"] == "authentication_error"


def test_lenient_alternation_merges_turns() -> None:
    with (
        FakeAnthropicServer(strict_alternation=False) as fake,
        Anthropic(base_url=fake.base_url, api_key="k", max_retries=0) as c,
    ):
        msg = c.messages.create(
            model=MODEL, max_tokens=32, messages=[*HELLO, {"role": "user", "content": "again"}]
        )
        assert msg.stop_reason in ("end_turn", "max_tokens")


# -- faults --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "exc", "status", "etype"),
    [
        ("status=429;retry_after=2", anthropic.RateLimitError, 429, "rate_limit_error"),
        ("status=529", anthropic.OverloadedError, 529, "overloaded_error"),
        ("status=500", anthropic.InternalServerError, 500, "api_error"),
        ("status=401", anthropic.AuthenticationError, 401, "authentication_error"),
    ],
)
def test_status_faults(
    client: Anthropic, spec: str, exc: type[Exception], status: int, etype: str
) -> None:
    with pytest.raises(exc) as info:
        create(client, extra_headers={"x-fake-fault": spec})
    err = info.value
    assert isinstance(err, anthropic.APIStatusError)
    assert err.status_code == status and err.type == etype
    assert err.request_id and err.request_id.startswith("req_")
    if status == 429:
        assert err.response.headers["retry-after"] == "2"
        assert err.response.headers["anthropic-ratelimit-requests-remaining"] == "0"


def test_spend_limit_code(client: Anthropic) -> None:
    with pytest.raises(anthropic.RateLimitError) as info:
        create(
            client, extra_headers={"x-fake-fault": "status=429;code=enforced_spend_limit_reached"}
        )
    assert info.value.error_code == "enforced_spend_limit_reached"


def test_mid_stream_error(client: Anthropic) -> None:
    seen: list[str] = []
    with pytest.raises(anthropic.APIStatusError) as info:
        with client.messages.stream(
            model=MODEL,
            max_tokens=64,
            messages=HELLO,
            extra_headers={"x-fake-fault": "stream_error=3"},
        ) as stream:
            for event in stream:
                seen.append(event.type)
    assert info.value.type == "overloaded_error"
    assert seen[0] == "message_start" and "message_stop" not in seen
    with pytest.raises(anthropic.OverloadedError):  # the same fault, not streamed
        create(client, extra_headers={"x-fake-fault": "stream_error=3"})


def test_reset_and_malformed(client: Anthropic) -> None:
    with pytest.raises(anthropic.APIConnectionError):
        create(client, extra_headers={"x-fake-fault": "reset"})
    with pytest.raises(json.JSONDecodeError):  # the SDK does not wrap a broken body
        create(client, extra_headers={"x-fake-fault": "malformed"})


def test_set_fault_per_model_and_times(client: Anthropic, fake: FakeAnthropicServer) -> None:
    fake.set_fault("status=529", model="claude-opus-4-5", times=1)
    create(client)  # another model: untouched
    with pytest.raises(anthropic.OverloadedError):
        create(client, model="claude-opus-4-5")
    create(client, model="claude-opus-4-5")  # used up
    with pytest.raises(anthropic.BadRequestError, match="x-fake-fault"):
        create(client, extra_headers={"x-fake-fault": "stream_error=x"})


def test_fault_parse() -> None:
    fault = AnthropicFault.parse("stream_error=2;type=api_error;message=boom; really")
    assert fault is not None and fault.stream_error == 2
    assert fault.error_type == "api_error" and fault.error_message == "boom; really"
    plain = AnthropicFault.parse("status=529")
    assert plain is not None and plain.spec is not None and plain.spec.status == 529
    assert plain.stream_error is None and plain.error_type == "overloaded_error"
    assert AnthropicFault.parse("none") is None
    with pytest.raises(ValueError):
        AnthropicFault.parse("stream_error=-1")


async def test_async_client_and_configured_faults() -> None:
    async with FakeAnthropicServer(
        api_key="sk-right", faults={"claude-opus-4-1": "status=500"}
    ) as fake:
        client = AsyncAnthropic(base_url=fake.base_url, api_key="sk-right", max_retries=0)
        msg = await client.messages.create(model=MODEL, max_tokens=32, messages=HELLO)
        assert msg.content[0].text
        async with client.messages.stream(model=MODEL, max_tokens=32, messages=HELLO) as stream:
            final = await stream.get_final_message()
        assert final.content[0].text == msg.content[0].text
        counted = await client.messages.count_tokens(model=MODEL, messages=HELLO)
        assert counted.input_tokens == msg.usage.input_tokens
        with pytest.raises(anthropic.InternalServerError):
            await client.messages.create(model="claude-opus-4-1", max_tokens=32, messages=HELLO)
        wrong = AsyncAnthropic(base_url=fake.base_url, api_key="sk-wrong", max_retries=0)
        with pytest.raises(anthropic.AuthenticationError):
            await wrong.messages.create(model=MODEL, max_tokens=32, messages=HELLO)
        body = {"model": MODEL, "max_tokens": 5, "messages": HELLO}
        x_api_key = await asyncio.to_thread(raw_post, fake, body, x_api_key="sk-right")
        assert x_api_key.status_code == 200
        await client.close()
        await wrong.close()
