"""The fake OpenAI server, driven by the official ``openai`` SDK over real loopback sockets."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any, Literal

import httpx
import openai
import pytest
from openai import AsyncOpenAI, OpenAI
from pydantic import BaseModel, Field

from thrifty.testing import FakeOpenAIServer, FaultSpec, Latency
from thrifty.testing.fake_openai_answers import (
    ChatKnobs,
    messages_blob,
    schema_instance,
    stream_pieces,
)
from thrifty.tokens import count_messages, count_text
from thrifty.tokens.encodings import get_encoding

MESSAGES = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "What is the capital of France?"},
]
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                "days": {"type": "integer", "minimum": 1, "maximum": 7},
                "alerts": {"type": "boolean"},
            },
            "required": ["city", "unit"],
        },
    },
}
TIME_TOOL = {
    "type": "function",
    "function": {
        "name": "get_time",
        "parameters": {
            "type": "object",
            "properties": {"tz": {"type": "string"}},
            "required": ["tz"],
        },
    },
}


@pytest.fixture(scope="module")
def server() -> Iterator[FakeOpenAIServer]:
    fake = FakeOpenAIServer()
    fake.start_in_thread()
    yield fake
    fake.stop_thread()


@pytest.fixture
def fake(server: FakeOpenAIServer) -> FakeOpenAIServer:
    server.set_fault(None)
    server.clear()
    return server


@pytest.fixture
def client(fake: FakeOpenAIServer) -> Iterator[OpenAI]:
    with OpenAI(base_url=fake.base_url, api_key="sk-test", max_retries=0, timeout=10) as c:
        yield c


def chat(client: OpenAI, **kwargs: Any) -> Any:
    kwargs.setdefault("model", "gpt-4o-mini")
    kwargs.setdefault("messages", MESSAGES)
    return client.chat.completions.create(**kwargs)


# ---------------------------------------------------------------------------------------------
# Chat


def test_plain_chat_is_deterministic_and_counted(client: OpenAI, fake: FakeOpenAIServer) -> None:
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MESSAGES)
    first = raw.parse()
    second = chat(client)
    other = chat(client, messages=[{"role": "user", "content": "Something else entirely"}])

    content = first.choices[0].message.content
    assert content and content == second.choices[0].message.content
    assert other.choices[0].message.content != content
    assert first.id.startswith("chatcmpl-") and first.id != second.id
    assert first.object == "chat.completion"
    assert first.model == "gpt-4o-mini"
    assert first.system_fingerprint
    assert first.choices[0].finish_reason == "stop"
    assert first.choices[0].message.role == "assistant"
    assert first.choices[0].logprobs is None

    usage = first.usage
    assert usage is not None
    assert usage.prompt_tokens == count_messages(MESSAGES, "gpt-4o-mini")
    assert usage.completion_tokens == count_text(content, "gpt-4o-mini")
    assert 8 <= usage.completion_tokens <= 60
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert usage.prompt_tokens_details.cached_tokens == 0
    assert usage.completion_tokens_details.reasoning_tokens == 0

    assert raw.headers["x-request-id"].startswith("req_")
    assert first._request_id == raw.headers["x-request-id"]
    for name in ("limit", "remaining", "reset"):
        assert raw.headers[f"x-ratelimit-{name}-requests"]

    sent = fake.requests[0]
    assert sent["path"] == "/v1/chat/completions"
    assert sent["headers"]["authorization"] == "Bearer sk-test"
    assert sent["body"]["messages"] == MESSAGES
    assert len(fake.requests) == 3
    fake.clear()
    assert fake.requests == []


def test_answer_lengths_vary_and_can_be_requested(client: OpenAI) -> None:
    lengths = {
        chat(client, messages=[{"role": "user", "content": f"q{i}"}]).usage.completion_tokens
        for i in range(12)
    }
    assert len(lengths) > 3
    assert all(8 <= n <= 60 for n in lengths)
    long = chat(client, extra_headers={"x-fake-answer-tokens": "700"})
    assert long.usage.completion_tokens == 700
    marked = chat(client, messages=[{"role": "user", "content": "essay [fake:tokens=123]"}])
    assert marked.usage.completion_tokens == 123


def test_seed_and_temperature_change_the_answer(client: OpenAI) -> None:
    base = chat(client).choices[0].message.content
    assert chat(client, seed=1).choices[0].message.content != base
    assert (
        chat(client, seed=1).choices[0].message.content
        == chat(client, seed=1).choices[0].message.content
    )
    assert chat(client, temperature=0.7).choices[0].message.content != base
    assert chat(client, temperature=0).choices[0].message.content == base


@pytest.mark.parametrize("param", ["max_tokens", "max_completion_tokens"])
def test_max_tokens_truncates_with_finish_length(client: OpenAI, param: str) -> None:
    full = chat(client).choices[0].message.content
    resp = chat(client, **{param: 3})
    choice = resp.choices[0]
    assert choice.finish_reason == "length"
    assert resp.usage.completion_tokens == 3 == count_text(choice.message.content, "gpt-4o-mini")
    assert full.startswith(choice.message.content)


def test_stop_cuts_at_first_stop_sequence(client: OpenAI) -> None:
    full = chat(client).choices[0].message.content
    words = full.split()
    stop_word = " " + words[len(words) // 2]
    expected = full[: full.index(stop_word)]
    resp = chat(client, stop=[stop_word, "zzz-never"])
    assert resp.choices[0].message.content == expected
    assert resp.choices[0].finish_reason == "stop"
    assert resp.usage.completion_tokens == count_text(expected, "gpt-4o-mini")
    assert chat(client, stop=stop_word).choices[0].message.content == expected


def test_n_gives_distinct_choices(client: OpenAI) -> None:
    resp = chat(client, n=3)
    assert [c.index for c in resp.choices] == [0, 1, 2]
    contents = [c.message.content for c in resp.choices]
    assert len(set(contents)) == 3
    assert contents[0] == chat(client).choices[0].message.content
    assert resp.usage.completion_tokens == sum(count_text(c, "gpt-4o-mini") for c in contents)


def test_tool_call_arguments_follow_the_schema(client: OpenAI) -> None:
    resp = chat(client, tools=[WEATHER_TOOL, TIME_TOOL])
    choice = resp.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    (call,) = choice.message.tool_calls
    assert call.id.startswith("call_") and call.type == "function"
    assert call.function.name == "get_weather"
    args = json.loads(call.function.arguments)
    assert {"city", "unit"} <= set(args)
    assert args["unit"] in ("celsius", "fahrenheit")
    assert isinstance(args["city"], str) and args["city"]
    assert 1 <= args["days"] <= 7 and isinstance(args["days"], int)
    assert isinstance(args["alerts"], bool)
    assert resp.usage.completion_tokens == count_text(call.function.arguments, "gpt-4o-mini")
    assert resp.usage.prompt_tokens == count_messages(
        MESSAGES, "gpt-4o-mini", [WEATHER_TOOL, TIME_TOOL]
    )
    assert chat(client, tools=[WEATHER_TOOL, TIME_TOOL]).choices[0].message.tool_calls == [call]


def test_tool_choice_variants(client: OpenAI) -> None:
    tools = [WEATHER_TOOL, TIME_TOOL]
    named = chat(
        client, tools=tools, tool_choice={"type": "function", "function": {"name": "get_time"}}
    )
    assert [c.function.name for c in named.choices[0].message.tool_calls] == ["get_time"]
    assert "tz" in json.loads(named.choices[0].message.tool_calls[0].function.arguments)

    parallel = chat(client, tools=tools, parallel_tool_calls=True)
    calls = parallel.choices[0].message.tool_calls
    assert [c.function.name for c in calls] == ["get_weather", "get_time"]
    assert calls[0].id != calls[1].id

    none = chat(client, tools=tools, tool_choice="none")
    assert none.choices[0].message.tool_calls is None
    assert none.choices[0].finish_reason == "stop" and none.choices[0].message.content

    after_tool = [
        *MESSAGES,
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "18C, sunny"},
    ]
    final = chat(client, messages=after_tool, tools=tools)
    assert final.choices[0].finish_reason == "stop"
    assert final.choices[0].message.content

    with pytest.raises(openai.BadRequestError) as err:
        chat(client, tools=tools, tool_choice={"type": "function", "function": {"name": "nope"}})
    assert err.value.body["param"] == "tool_choice"


def test_json_object_mode(client: OpenAI) -> None:
    resp = chat(client, response_format={"type": "json_object"})
    assert isinstance(json.loads(resp.choices[0].message.content), dict)


class Address(BaseModel):
    street: str
    zip_code: str = Field(min_length=5, max_length=5)


class Person(BaseModel):
    name: str
    age: int = Field(ge=0, le=130)
    height_m: float
    member: bool
    role: Literal["admin", "user", "guest"]
    tags: list[str]
    address: Address
    nickname: str | None


def test_json_schema_mode_matches_the_schema(client: OpenAI) -> None:
    schema = {
        "type": "object",
        "properties": {
            "title": {"type": "string"},
            "rating": {"type": "integer", "minimum": 1, "maximum": 5},
            "score": {"type": "number"},
            "ok": {"type": "boolean"},
            "kind": {"enum": ["a", "b"]},
            "items": {
                "type": "array",
                "items": {"type": "object", "properties": {"x": {"type": "string"}}},
                "minItems": 2,
            },
        },
        "required": ["title", "rating", "score", "ok", "kind", "items"],
        "additionalProperties": False,
    }
    resp = chat(
        client,
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "review", "schema": schema, "strict": True},
        },
    )
    data = json.loads(resp.choices[0].message.content)
    assert set(data) == set(schema["required"])
    assert isinstance(data["title"], str)
    assert isinstance(data["rating"], int) and 1 <= data["rating"] <= 5
    assert isinstance(data["score"], float | int) and isinstance(data["ok"], bool)
    assert data["kind"] in ("a", "b")
    assert len(data["items"]) >= 2 and all(isinstance(i["x"], str) for i in data["items"])


def test_sdk_structured_output_parse_with_refs(client: OpenAI) -> None:
    # The SDK sends a strict schema with $defs/$ref and validates the answer with pydantic.
    parsed = client.chat.completions.parse(
        model="gpt-4o", messages=MESSAGES, response_format=Person
    )
    person = parsed.choices[0].message.parsed
    assert isinstance(person, Person)
    assert len(person.address.zip_code) == 5


def test_logprobs(client: OpenAI) -> None:
    resp = chat(client, logprobs=True, top_logprobs=3)
    choice = resp.choices[0]
    entries = choice.logprobs.content
    assert "".join(e.token for e in entries) == choice.message.content
    assert len(entries) == resp.usage.completion_tokens
    for e in entries:
        assert e.logprob <= 0
        assert bytes(e.bytes).decode() == e.token
        assert len(e.top_logprobs) == 3
        assert e.top_logprobs[0].token == e.token
        lps = [t.logprob for t in e.top_logprobs]
        assert lps == sorted(lps, reverse=True)
    assert choice.message.content == chat(client).choices[0].message.content
    no_top = chat(client, logprobs=True)
    assert all(e.top_logprobs == [] for e in no_top.choices[0].logprobs.content)


def test_validation_errors_name_the_param(client: OpenAI, fake: FakeOpenAIServer) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model="gpt-4o", messages=[])
    assert err.value.body["param"] == "messages"
    assert err.value.body["type"] == "invalid_request_error"
    with pytest.raises(openai.BadRequestError) as err:
        client.post("/chat/completions", body={"model": "gpt-4o"}, cast_to=httpx.Response)
    assert err.value.body["param"] == "messages"
    assert err.value.body["code"] == "missing_required_parameter"
    with pytest.raises(openai.BadRequestError) as err:
        client.post("/chat/completions", body={"messages": MESSAGES}, cast_to=httpx.Response)
    assert err.value.body["param"] == "model"
    with pytest.raises(openai.NotFoundError) as err:
        chat(client, model="unknown-model")
    assert err.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError) as err:
        chat(client, stream_options={"include_usage": True})
    assert err.value.body["param"] == "stream_options"
    response = httpx.post(f"{fake.base_url}/chat/completions", content=b"{not json")
    assert response.status_code == 400
    # unknown fields are ignored
    assert chat(client, extra_body={"some_future_field": {"x": 1}}).choices[0].message.content


# ---------------------------------------------------------------------------------------------
# Streaming


def test_stream_matches_non_stream(client: OpenAI) -> None:
    whole = chat(client)
    chunks = list(chat(client, stream=True, stream_options={"include_usage": True}))
    first, last = chunks[0], chunks[-1]
    assert first.choices[0].delta.role == "assistant"
    assert first.choices[0].delta.content == ""
    assert len({c.id for c in chunks}) == 1 and first.id.startswith("chatcmpl-")
    assert all(c.object == "chat.completion.chunk" and c.model == "gpt-4o-mini" for c in chunks)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    content_chunks = [c for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(content_chunks) > 4
    assert all(count_text(c.choices[0].delta.content) <= 2 for c in content_chunks)
    assert last.choices == []
    assert last.usage == whole.usage
    finish = chunks[-2]
    assert finish.choices[0].finish_reason == "stop"
    assert all(c.usage is None for c in chunks[:-1])


def test_stream_wire_format(fake: FakeOpenAIServer) -> None:
    body = {"model": "gpt-4o", "messages": MESSAGES, "stream": True}
    with httpx.stream("POST", f"{fake.base_url}/chat/completions", json=body) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        raw = r.read().decode()
    assert raw.endswith("data: [DONE]\n\n")
    events = [e for e in raw.split("\n\n") if e]
    assert all(e.startswith("data: ") for e in events)
    payloads = [json.loads(e[6:]) for e in events[:-1]]
    assert "usage" not in payloads[0]  # only with include_usage
    assert payloads[0]["choices"][0]["delta"] == {
        "role": "assistant",
        "content": "",
        "refusal": None,
    }
    assert payloads[-1]["choices"][0] == {
        "index": 0,
        "delta": {},
        "logprobs": None,
        "finish_reason": "stop",
    }

    body["stream_options"] = {"include_usage": True}
    with httpx.stream("POST", f"{fake.base_url}/chat/completions", json=body) as r:
        raw = r.read().decode()
    payloads = [json.loads(e[6:]) for e in raw.split("\n\n") if e and e != "data: [DONE]"]
    assert all(p["usage"] is None for p in payloads[:-1])
    assert payloads[-1]["choices"] == [] and payloads[-1]["usage"]["total_tokens"] > 0


def test_stream_max_tokens_n_and_logprobs(client: OpenAI) -> None:
    whole = chat(client, n=2, max_tokens=5, logprobs=True)
    chunks = list(chat(client, n=2, max_tokens=5, logprobs=True, stream=True))
    indices = [c.choices[0].index for c in chunks]
    assert indices[:4] == [0, 1, 0, 1]  # interleaved
    for choice in whole.choices:
        mine = [c.choices[0] for c in chunks if c.choices[0].index == choice.index]
        assert "".join(c.delta.content or "" for c in mine) == choice.message.content
        assert mine[-1].finish_reason == "length"
        tokens = [e.token for c in mine if c.logprobs for e in c.logprobs.content]
        assert tokens == [e.token for e in choice.logprobs.content]


def test_stream_tool_calls(client: OpenAI) -> None:
    tools = [WEATHER_TOOL, TIME_TOOL]
    whole = chat(client, tools=tools, parallel_tool_calls=True)
    chunks = list(
        chat(
            client,
            tools=tools,
            parallel_tool_calls=True,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[0].choices[0].delta.content is None
    calls: dict[int, dict[str, str]] = {}
    for chunk in chunks:
        if not chunk.choices:
            continue
        for delta in chunk.choices[0].delta.tool_calls or []:
            if delta.id is not None:
                assert delta.index not in calls
                assert delta.type == "function" and delta.function.arguments == ""
                calls[delta.index] = {"id": delta.id, "name": delta.function.name, "arguments": ""}
            else:
                assert delta.function.name is None
                calls[delta.index]["arguments"] += delta.function.arguments
    expected = whole.choices[0].message.tool_calls
    assert [calls[i] for i in sorted(calls)] == [
        {"id": c.id, "name": c.function.name, "arguments": c.function.arguments} for c in expected
    ]
    assert chunks[-2].choices[0].finish_reason == "tool_calls"
    assert chunks[-1].usage == whole.usage


def test_sdk_stream_helper_accumulates(client: OpenAI) -> None:
    with client.chat.completions.stream(
        model="gpt-4o", messages=MESSAGES, tools=[WEATHER_TOOL]
    ) as s:
        final = s.get_final_completion()
    call = final.choices[0].message.tool_calls[0]
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments)["city"]


# ---------------------------------------------------------------------------------------------
# Embeddings and models


def test_embeddings_base64_default_and_float_agree(client: OpenAI, fake: FakeOpenAIServer) -> None:
    texts = ["hello world", "数据库", "hello world!"]
    b64 = client.embeddings.create(model="text-embedding-3-small", input=texts)
    assert fake.requests[-1]["body"]["encoding_format"] == "base64"
    flt = client.embeddings.create(
        model="text-embedding-3-small", input=texts, encoding_format="float"
    )
    assert [d.embedding for d in b64.data] == [d.embedding for d in flt.data]
    vectors = [d.embedding for d in flt.data]
    assert [d.index for d in flt.data] == [0, 1, 2]
    assert all(len(v) == 256 for v in vectors)
    for v in vectors:
        assert abs(sum(x * x for x in v) - 1.0) < 1e-5
    assert vectors[0] != vectors[2]
    assert flt.usage.prompt_tokens == sum(count_text(t, "text-embedding-3-small") for t in texts)
    assert flt.usage.total_tokens == flt.usage.prompt_tokens
    assert flt.model == "text-embedding-3-small"
    again = client.embeddings.create(model="text-embedding-3-small", input="hello world")
    assert again.data[0].embedding == vectors[0]


def test_embeddings_dimensions_and_token_inputs(client: OpenAI) -> None:
    small = client.embeddings.create(model="text-embedding-3-large", input="hi", dimensions=64)
    assert len(small.data[0].embedding) == 64
    ids = client.embeddings.create(model="text-embedding-3-small", input=[[1, 2, 3], [4, 5]])
    assert len(ids.data) == 2 and ids.usage.prompt_tokens == 5
    one = client.embeddings.create(model="text-embedding-3-small", input=[1, 2, 3])
    assert one.data[0].embedding == ids.data[0].embedding
    with pytest.raises(openai.BadRequestError) as err:
        client.embeddings.create(model="text-embedding-3-small", input="")
    assert err.value.body["param"] == "input"


def test_models(client: OpenAI) -> None:
    models = client.models.list()
    ids = [m.id for m in models.data]
    assert "gpt-4o-mini" in ids and "text-embedding-3-small" in ids
    model = client.models.retrieve("my-custom-model")
    assert model.id == "my-custom-model" and model.object == "model"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("unknown-thing")


def test_health(fake: FakeOpenAIServer) -> None:
    r = httpx.get(fake.base_url.removesuffix("/v1") + "/health")
    assert r.status_code == 200 and r.json() == {"status": "ok"}


# ---------------------------------------------------------------------------------------------
# Faults and latency


@pytest.mark.parametrize(
    ("spec", "exc", "status"),
    [
        ("status=500", openai.InternalServerError, 500),
        ("status=503", openai.InternalServerError, 503),
        ("status=400", openai.BadRequestError, 400),
        ("status=401", openai.AuthenticationError, 401),
        ("status=404", openai.NotFoundError, 404),
        ("status=422", openai.UnprocessableEntityError, 422),
    ],
)
def test_status_faults(client: OpenAI, spec: str, exc: type[Exception], status: int) -> None:
    with pytest.raises(exc) as err:
        chat(client, extra_headers={"x-fake-fault": spec})
    assert err.value.status_code == status
    assert set(err.value.body) == {"message", "type", "param", "code"}


def test_status_fault_with_message_and_code(client: OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        chat(
            client,
            extra_headers={
                "x-fake-fault": "status=400;code=context_length_exceeded;message=too long; sorry"
            },
        )
    assert err.value.code == "context_length_exceeded"
    assert err.value.body["message"] == "too long; sorry"


def test_rate_limit_fault(client: OpenAI) -> None:
    with pytest.raises(openai.RateLimitError) as err:
        chat(client, extra_headers={"x-fake-fault": "status=429;retry_after=2"})
    assert err.value.response.headers["retry-after"] == "2"
    assert err.value.response.headers["x-ratelimit-remaining-requests"] == "0"
    assert err.value.code == "rate_limit_exceeded"


def test_timeout_fault(fake: FakeOpenAIServer) -> None:
    with OpenAI(base_url=fake.base_url, api_key="x", max_retries=0, timeout=0.2) as quick:
        started = time.monotonic()
        with pytest.raises(openai.APITimeoutError):
            chat(quick, extra_headers={"x-fake-fault": "timeout=2"})
        assert time.monotonic() - started < 1.5


@pytest.mark.parametrize("stream", [False, True])
def test_reset_fault(client: OpenAI, stream: bool) -> None:
    with pytest.raises(openai.APIConnectionError):
        result = chat(client, stream=stream, extra_headers={"x-fake-fault": "reset"})
        list(result) if stream else None


def test_malformed_fault(client: OpenAI) -> None:
    # The SDK does not wrap a body that is not JSON: json.JSONDecodeError escapes as is.
    with pytest.raises(json.JSONDecodeError):
        chat(client, extra_headers={"x-fake-fault": "malformed"})
    with pytest.raises(json.JSONDecodeError):
        list(chat(client, stream=True, extra_headers={"x-fake-fault": "malformed"}))


def test_cut_stream_fault(client: OpenAI, fake: FakeOpenAIServer) -> None:
    received = []
    stream = chat(client, stream=True, extra_headers={"x-fake-fault": "cut=3"})
    with pytest.raises(openai.APIConnectionError):
        for chunk in stream:
            received.append(chunk)
    assert len(received) == 3
    # on the wire: 3 events, then the connection drops without [DONE]
    body = {"model": "gpt-4o", "messages": MESSAGES, "stream": True}
    chunks: list[bytes] = []
    with (
        pytest.raises(httpx.RemoteProtocolError),
        httpx.stream(
            "POST",
            f"{fake.base_url}/chat/completions",
            json=body,
            headers={"x-fake-fault": "cut=3"},
        ) as r,
    ):
        for piece in r.iter_bytes():
            chunks.append(piece)
    raw = b"".join(chunks)
    assert raw.count(b"data: ") == 3 and b"[DONE]" not in raw


def test_cut_non_stream_fault(client: OpenAI) -> None:
    with pytest.raises(openai.APIConnectionError):
        chat(client, extra_headers={"x-fake-fault": "cut=1"})


def test_slow_stream_fault_trips_an_idle_timeout(fake: FakeOpenAIServer) -> None:
    with OpenAI(base_url=fake.base_url, api_key="x", max_retries=0, timeout=0.3) as quick:
        stream = chat(quick, stream=True, extra_headers={"x-fake-fault": "slow_stream=1.5"})
        first = next(iter(stream))
        assert first.choices[0].delta.role == "assistant"
        with pytest.raises(openai.APITimeoutError):
            list(stream)


def test_set_fault_for_a_model_and_a_number_of_times(
    client: OpenAI, fake: FakeOpenAIServer
) -> None:
    fake.set_fault("status=503", model="gpt-4o", times=2)
    assert chat(client, model="gpt-4o-mini").choices
    for _ in range(2):
        with pytest.raises(openai.InternalServerError):
            chat(client, model="gpt-4o")
    assert chat(client, model="gpt-4o").choices
    fake.set_fault("status=500")
    with pytest.raises(openai.InternalServerError):
        chat(client, model="gpt-4o-mini")
    with pytest.raises(openai.InternalServerError):
        client.models.list()
    assert chat(client, extra_headers={"x-fake-fault": "none"}).choices  # header wins
    fake.set_fault(None)
    assert chat(client).choices
    with pytest.raises(ValueError):
        fake.set_fault("explode=1")


def test_invalid_fault_header_is_a_400(client: OpenAI) -> None:
    with pytest.raises(openai.BadRequestError):
        chat(client, extra_headers={"x-fake-fault": "explode"})


def test_fault_spec_parse() -> None:
    assert FaultSpec.parse("none") is None
    assert FaultSpec.parse("") is None
    assert FaultSpec.parse("status=429;retry_after=2") == FaultSpec(status=429, retry_after=2.0)
    assert FaultSpec.parse("reset") == FaultSpec(reset=True)
    assert FaultSpec.parse(" cut=3 ") == FaultSpec(cut=3)
    assert FaultSpec.parse("timeout=0.5;status=500") == FaultSpec(timeout=0.5, status=500)
    assert FaultSpec.parse("slow-stream=2").slow_stream == 2.0
    assert FaultSpec.parse("status=500;message=a=b;c") == FaultSpec(status=500, message="a=b;c")
    for bad in ("status=abc", "status=99", "cut", "reset=1", "timeout=-1", "bogus"):
        with pytest.raises(ValueError):
            FaultSpec.parse(bad)
    assert Latency.parse("first=50,token=5") == Latency(first_token_ms=50, per_token_ms=5)
    assert Latency.parse("ttft=10") == Latency(first_token_ms=10)
    with pytest.raises(ValueError):
        Latency.parse("first=x")


def test_per_request_latency_header(client: OpenAI) -> None:
    started = time.monotonic()
    chat(client, extra_headers={"x-fake-latency": "first=150,token=0"})
    assert time.monotonic() - started >= 0.14
    started = time.monotonic()
    list(
        chat(
            client, stream=True, max_tokens=10, extra_headers={"x-fake-latency": "first=0,token=15"}
        )
    )
    assert time.monotonic() - started >= 0.13  # 10 tokens x 15 ms, minus timer slack


# ---------------------------------------------------------------------------------------------
# Configured servers, async, auth


def test_configured_faults_and_auth() -> None:
    fake = FakeOpenAIServer(faults={"gpt-4o": "status=502", "*": "status=429"}, api_key="sk-right")
    with fake:
        with OpenAI(base_url=fake.base_url, api_key="sk-right", max_retries=0) as good:
            with pytest.raises(openai.InternalServerError) as err:
                chat(good, model="gpt-4o")
            assert err.value.status_code == 502
            with pytest.raises(openai.RateLimitError):
                chat(good, model="gpt-4o-mini")
            assert chat(good, extra_headers={"x-fake-fault": "none"}).choices
        with OpenAI(base_url=fake.base_url, api_key="sk-wrong", max_retries=0) as bad:
            with pytest.raises(openai.AuthenticationError) as auth_err:
                chat(bad)
            assert auth_err.value.code == "invalid_api_key"
        assert httpx.get(fake.base_url.removesuffix("/v1") + "/health").status_code == 200
        assert httpx.get(f"{fake.base_url}/models").status_code == 401


@pytest.fixture
async def async_fake() -> AsyncIterator[FakeOpenAIServer]:
    async with FakeOpenAIServer(latency=Latency(first_token_ms=1, per_token_ms=0.1)) as fake:
        yield fake


async def test_async_client(async_fake: FakeOpenAIServer) -> None:
    url = async_fake.base_url
    assert url == f"http://127.0.0.1:{async_fake.port}/v1" and async_fake.port > 0
    async with AsyncOpenAI(base_url=url, api_key="x", max_retries=0) as client:
        whole = await client.chat.completions.create(model="gpt-4.1", messages=MESSAGES)
        stream = await client.chat.completions.create(
            model="gpt-4.1", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
        chunks = [c async for c in stream]
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == (
            whole.choices[0].message.content
        )
        assert chunks[-1].usage == whole.usage
        emb = await client.embeddings.create(model="text-embedding-3-small", input="hi")
        assert len(emb.data[0].embedding) == 256
        with pytest.raises(openai.RateLimitError):
            await client.chat.completions.create(
                model="gpt-4.1", messages=MESSAGES, extra_headers={"x-fake-fault": "status=429"}
            )


async def test_async_start_stop_is_idempotent() -> None:
    fake = FakeOpenAIServer(embedding_dim=8)
    url = await fake.start()
    assert await fake.start() == url
    async with AsyncOpenAI(base_url=url, api_key="x", max_retries=0) as client:
        emb = await client.embeddings.create(model="e", input="x", encoding_format="float")
        assert len(emb.data[0].embedding) == 8
    await fake.stop()
    await fake.stop()


# ---------------------------------------------------------------------------------------------
# Answer generation units


def test_schema_instance_handles_refs_unions_and_bounds() -> None:
    import random

    schema = {
        "$defs": {"Leaf": {"type": "object", "properties": {"v": {"type": ["integer", "null"]}}}},
        "type": "object",
        "properties": {
            "leaf": {"$ref": "#/$defs/Leaf"},
            "either": {"anyOf": [{"type": "null"}, {"type": "string", "format": "date"}]},
            "fixed": {"const": 42},
            "ratio": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
            "pair": {"type": "array", "prefixItems": [{"type": "string"}, {"type": "boolean"}]},
            "uniq": {
                "type": "array",
                "items": {"enum": [1, 2, 3]},
                "minItems": 3,
                "uniqueItems": True,
            },
            "code": {"type": "string", "minLength": 10, "maxLength": 10},
            "merged": {"allOf": [{"properties": {"a": {"type": "integer"}}}, {"required": ["b"]}]},
        },
    }
    value = schema_instance(schema, random.Random(1))
    assert isinstance(value["leaf"]["v"], int)
    assert value["either"] == "2024-01-01"
    assert value["fixed"] == 42
    assert 0 < value["ratio"] < 1
    assert isinstance(value["pair"][0], str) and isinstance(value["pair"][1], bool)
    assert sorted(value["uniq"]) == [1, 2, 3]
    assert len(value["code"]) == 10
    assert isinstance(value["merged"]["a"], int) and "b" in value["merged"]


def test_knobs_hash_ignores_key_order() -> None:
    a = messages_blob([{"role": "user", "content": "x"}])
    b = messages_blob([{"content": "x", "role": "user"}])
    assert a == b
    assert ChatKnobs(model="m", messages_blob=a) == ChatKnobs(model="m", messages_blob=b)


def test_stream_pieces_never_split_a_character() -> None:
    enc = get_encoding("cl100k_base")
    text = "数据库🎉连接池 hello 🇫🇷 naïve"
    pieces = stream_pieces(enc.decode_tokens_bytes(enc.encode_ordinary(text)))
    assert "".join(p for p, _, _ in pieces) == text
    assert all(end > start for _, start, end in pieces)
