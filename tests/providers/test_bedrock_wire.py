"""Bedrock translation units: OpenAI → Converse requests, Converse → OpenAI answers and chunks,
error codes, and streams that end early (against a hand-rolled upstream)."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp import web

pytest.importorskip("botocore")

from thrifty.config import ProviderConfig
from thrifty.errors import (
    UpstreamConnectionError,
    UpstreamProtocolError,
    UpstreamRateLimitError,
    UpstreamStatusError,
    UpstreamTimeoutError,
)
from thrifty.providers.base import Deployment
from thrifty.providers.bedrock import BedrockProvider, model_path
from thrifty.providers.bedrock_errors import bedrock_error, error_code
from thrifty.providers.bedrock_eventstream import encode_event, encode_message
from thrifty.providers.bedrock_request import ConverseRequestError, to_converse
from thrifty.providers.bedrock_response import (
    StreamTranslator,
    finish_reason,
    from_converse,
    openai_usage,
)

CACHE = {"cachePoint": {"type": "default"}}

# -- requests ---------------------------------------------------------------------------------


def test_system_developer_and_merging() -> None:
    req = to_converse(
        {
            "messages": [
                {"role": "system", "content": "A"},
                {"role": "developer", "content": [{"type": "text", "text": "B"}]},
                {"role": "user", "content": "one"},
                {"role": "user", "content": ""},
                {"role": "user", "content": "two"},
                {"role": "assistant", "content": "x"},
                {"role": "assistant", "content": None},
                {"role": "assistant", "content": [{"type": "refusal", "refusal": "no"}]},
            ]
        }
    )
    assert req == {
        "system": [{"text": "A"}, {"text": "B"}],
        "messages": [
            {"role": "user", "content": [{"text": "one"}, {"text": "two"}]},
            {"role": "assistant", "content": [{"text": "x"}, {"text": "no"}]},
        ],
    }


def test_tool_calls_and_results() -> None:
    req = to_converse(
        {
            "messages": [
                {"role": "user", "content": "go"},
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "c1",
                            "type": "function",
                            "function": {"name": "f", "arguments": '{"a": 1}'},
                        },
                        {
                            "id": "c2",
                            "type": "function",
                            "function": {"name": "g", "arguments": "not json"},
                        },
                        {
                            "id": "c3",
                            "type": "function",
                            "function": {"name": "f", "arguments": ""},
                        },
                        {
                            "id": "c4",
                            "type": "function",
                            "function": {"name": "f", "arguments": "[1]"},
                        },
                    ],
                },
                {"role": "tool", "tool_call_id": "c1", "content": "r1"},
                {"role": "tool", "tool_call_id": "c2", "content": ""},
            ],
            "tools": [{"type": "function", "function": {"name": "f"}}],
        }
    )
    uses = [b["toolUse"] for b in req["messages"][1]["content"]]
    assert [u["input"] for u in uses] == [
        {"a": 1},
        {"arguments": "not json"},
        {},
        {"arguments": "[1]"},
    ]
    assert req["messages"][2] == {
        "role": "user",
        "content": [
            {"toolResult": {"toolUseId": "c1", "content": [{"text": "r1"}]}},
            {"toolResult": {"toolUseId": "c2", "content": [{"text": "(empty)"}]}},
        ],
    }
    # g is only named in the history: it is declared so Bedrock accepts the toolUse block
    assert [t["toolSpec"]["name"] for t in req["toolConfig"]["tools"]] == ["f", "g"]
    assert req["toolConfig"]["tools"][0]["toolSpec"]["inputSchema"] == {
        "json": {"type": "object", "properties": {}}
    }


def test_tool_choice_none_keeps_tool_config_when_history_has_tools() -> None:
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    plain = to_converse(
        {"messages": [{"role": "user", "content": "x"}], "tools": tools, "tool_choice": "none"}
    )
    assert "toolConfig" not in plain
    history = [
        {"role": "user", "content": "x"},
        {
            "role": "assistant",
            "tool_calls": [{"id": "1", "function": {"name": "f", "arguments": "{}"}}],
        },
        {"role": "tool", "tool_call_id": "1", "content": "ok"},
    ]
    req = to_converse({"messages": history, "tools": tools, "tool_choice": "none"})
    assert req["toolConfig"] == {
        "tools": [{"toolSpec": {"name": "f", "inputSchema": {"json": {"type": "object"}}}}]
    }
    assert to_converse({"messages": history, "tools": tools, "tool_choice": "auto"})["toolConfig"][
        "toolChoice"
    ] == {"auto": {}}


def test_cache_control_becomes_cache_points() -> None:
    req = to_converse(
        {
            "messages": [
                {"role": "system", "content": "S", "cache_control": {"type": "ephemeral"}},
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "long", "cache_control": {"type": "ephemeral"}},
                        {"type": "text", "text": "q"},
                    ],
                },
            ],
            "tools": [
                {
                    "type": "function",
                    "function": {"name": "f"},
                    "cache_control": {"type": "ephemeral"},
                }
            ],
        }
    )
    assert req["system"] == [{"text": "S"}, CACHE]
    assert req["messages"][0]["content"] == [{"text": "long"}, CACHE, {"text": "q"}]
    assert req["toolConfig"]["tools"][1] == CACHE


def test_images_and_documents() -> None:
    png = base64.b64encode(b"png-bytes").decode()
    req = to_converse(
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "image_url", "image_url": {"url": f"data:image/jpg;base64,{png}"}},
                        {"type": "image_url", "image_url": "data:image/webp,raw%20bytes"},
                        {
                            "type": "file",
                            "file": {
                                "file_data": f"data:application/pdf;base64,{png}",
                                "filename": "Q3 report_v2.pdf",
                            },
                        },
                    ],
                }
            ]
        }
    )
    image, raw, doc = req["messages"][0]["content"]
    assert image == {"image": {"format": "jpeg", "source": {"bytes": png}}}
    assert raw["image"]["format"] == "webp"
    assert base64.b64decode(raw["image"]["source"]["bytes"]) == b"raw bytes"
    assert doc == {"document": {"format": "pdf", "name": "Q3 report v2", "source": {"bytes": png}}}


@pytest.mark.parametrize(
    ("body", "match"),
    [
        ({"messages": [], "n": 2}, "n must be 1"),
        ({"messages": [], "response_format": {"type": "json_schema"}}, "response_format"),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [{"type": "image_url", "image_url": {"url": "http://x/a.png"}}],
                    }
                ]
            },
            "data: URLs",
        ),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {
                                "type": "image_url",
                                "image_url": {"url": "data:image/bmp;base64,AAAA"},
                            }
                        ],
                    }
                ]
            },
            "image/bmp",
        ),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "image_url", "image_url": {"url": "data:image/png;base64,@@@"}}
                        ],
                    }
                ]
            },
            "base64",
        ),
        ({"messages": [{"role": "user", "content": [{"type": "input_audio"}]}]}, "input_audio"),
        ({"messages": [{"role": "function", "content": "x"}]}, "role"),
        ({"messages": [{"role": "tool", "content": "x"}]}, "tool_call_id"),
        ({"messages": [], "tools": [{"type": "web_search"}]}, "function tools"),
        ({"messages": "nope"}, "array"),
    ],
)
def test_refused_requests(body: dict[str, Any], match: str) -> None:
    with pytest.raises(ConverseRequestError, match=match):
        to_converse(body)


def test_inference_config_and_pass_through() -> None:
    req = to_converse(
        {
            "messages": [{"role": "user", "content": "x"}],
            "max_tokens": 10,
            "stop": ["A", "B"],
            "additionalModelRequestFields": {"top_k": 5},
            "guardrailConfig": {"guardrailIdentifier": "g", "guardrailVersion": "1"},
            "user": "dropped",
            "seed": 1,
        }
    )
    assert req["inferenceConfig"] == {"maxTokens": 10, "stopSequences": ["A", "B"]}
    assert req["additionalModelRequestFields"] == {"top_k": 5}
    assert "guardrailConfig" in req and "user" not in req and "seed" not in req


def test_model_path_encoding() -> None:
    assert model_path("a:b/c d", "converse") == "/model/a%3Ab%2Fc%20d/converse"


# -- responses --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("model_context_window_exceeded", "length"),
        ("tool_use", "tool_calls"),
        ("content_filtered", "content_filter"),
        ("guardrail_intervened", "content_filter"),
        ("malformed_model_output", "stop"),
        (None, "stop"),
    ],
)
def test_finish_reasons(reason: Any, expected: str) -> None:
    assert finish_reason(reason) == expected


def test_from_converse() -> None:
    data = {
        "output": {
            "message": {
                "role": "assistant",
                "content": [
                    {"reasoningContent": {"reasoningText": {"text": "hmm", "signature": "s"}}},
                    {"text": "Checking."},
                    {
                        "toolUse": {
                            "toolUseId": "t1",
                            "name": "get_weather",
                            "input": {"city": "Paris"},
                        }
                    },
                ],
            }
        },
        "stopReason": "tool_use",
        "usage": {
            "inputTokens": 50,
            "outputTokens": 20,
            "totalTokens": 1270,
            "cacheReadInputTokens": 1200,
            "cacheWriteInputTokens": 0,
        },
        "metrics": {"latencyMs": 412},
    }
    out = from_converse(data, "m", "chatcmpl-1", 5)
    msg = out["choices"][0]["message"]
    assert msg["content"] == "Checking." and msg["reasoning_content"] == "hmm"
    assert msg["tool_calls"] == [
        {
            "id": "t1",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
        }
    ]
    assert out["choices"][0]["finish_reason"] == "tool_calls"
    assert out["usage"]["prompt_tokens"] == 1250
    assert out["usage"]["prompt_tokens_details"] == {"cached_tokens": 1200, "cache_write_tokens": 0}
    guard = from_converse(
        {"output": {"message": {"content": []}}, "stopReason": "guardrail_intervened"}, "m", "i", 1
    )
    assert guard["choices"][0]["finish_reason"] == "content_filter"
    assert guard["choices"][0]["message"]["content"] == ""


def test_openai_usage_counts_cache_in_prompt() -> None:
    usage = openai_usage(
        {
            "inputTokens": 10,
            "outputTokens": 4,
            "cacheReadInputTokens": 100,
            "cacheWriteInputTokens": 30,
        }
    )
    assert usage["prompt_tokens"] == 140 and usage["total_tokens"] == 144
    assert usage["prompt_tokens_details"] == {"cached_tokens": 100, "cache_write_tokens": 30}
    assert openai_usage(None)["prompt_tokens"] == 0


def test_stream_translator() -> None:
    t = StreamTranslator("m", "id", 1)
    out: list[dict[str, Any]] = []
    for event, payload in [
        ("messageStart", {"role": "assistant", "p": "abc"}),
        (
            "contentBlockDelta",
            {"contentBlockIndex": 0, "delta": {"reasoningContent": {"text": "think"}}},
        ),
        ("contentBlockDelta", {"contentBlockIndex": 1, "delta": {"text": "Hi"}}),
        ("contentBlockStop", {"contentBlockIndex": 1}),
        (
            "contentBlockStart",
            {"contentBlockIndex": 2, "start": {"toolUse": {"toolUseId": "a", "name": "f"}}},
        ),
        ("contentBlockDelta", {"contentBlockIndex": 2, "delta": {"toolUse": {"input": '{"x"'}}}),
        (
            "contentBlockStart",
            {"contentBlockIndex": 4, "start": {"toolUse": {"toolUseId": "b", "name": "g"}}},
        ),
        ("contentBlockDelta", {"contentBlockIndex": 2, "delta": {"toolUse": {"input": ":1}"}}}),
        ("futureEvent", {}),
        ("messageStop", {"stopReason": "tool_use"}),
    ]:
        out.extend(t.translate(event, payload))
    assert not t.complete
    out.extend(t.translate("metadata", {"usage": {"inputTokens": 3, "outputTokens": 2}}))
    assert t.complete
    deltas = [c["choices"][0]["delta"] for c in out[:-1]]
    assert deltas[1] == {"reasoning_content": "think"} and deltas[2] == {"content": "Hi"}
    assert deltas[3]["tool_calls"][0] == {
        "index": 0,
        "id": "a",
        "type": "function",
        "function": {"name": "f", "arguments": ""},
    }
    assert deltas[5]["tool_calls"][0]["index"] == 1 and deltas[5]["tool_calls"][0]["id"] == "b"
    assert deltas[6]["tool_calls"][0] == {"index": 0, "function": {"arguments": ":1}"}}
    assert out[-2]["choices"][0]["finish_reason"] == "tool_calls"
    assert out[-1]["choices"] == [] and out[-1]["usage"]["prompt_tokens"] == 3


# -- errors -----------------------------------------------------------------------------------


def test_error_code_sources() -> None:
    assert error_code(
        {"x-amzn-ErrorType": "ThrottlingException:http://x/"}, b'{"message":"m"}'
    ) == ("ThrottlingException", "m")
    assert error_code({}, b'{"__type":"com.amazon.coral#ValidationException","Message":"v"}') == (
        "ValidationException",
        "v",
    )
    assert error_code({}, b"not json") == (None, None)


@pytest.mark.parametrize(
    ("code", "status", "cls", "upstream_status", "retryable"),
    [
        ("ThrottlingException", 429, UpstreamRateLimitError, 429, True),
        ("throttlingException", 0, UpstreamRateLimitError, 429, True),
        ("ServiceQuotaExceededException", 400, UpstreamRateLimitError, 429, True),
        ("ModelNotReadyException", 429, UpstreamStatusError, 503, True),
        ("InternalServerException", 500, UpstreamStatusError, 500, True),
        ("ServiceUnavailableException", 503, UpstreamStatusError, 503, True),
        ("ValidationException", 400, UpstreamStatusError, 400, False),
        ("AccessDeniedException", 403, UpstreamStatusError, 403, False),
        ("UnrecognizedClientException", 403, UpstreamStatusError, 403, False),
        ("ResourceNotFoundException", 404, UpstreamStatusError, 404, False),
        ("ModelErrorException", 424, UpstreamStatusError, 424, True),
        ("SomethingNew", 502, UpstreamStatusError, 502, True),
        (None, 429, UpstreamRateLimitError, 429, True),
    ],
)
def test_bedrock_error(
    code: str | None, status: int, cls: type, upstream_status: int, retryable: bool
) -> None:
    err = bedrock_error(code, "msg", status, provider="p", deployment="p/m")
    assert type(err) is cls
    assert err.upstream_status == upstream_status  # type: ignore[attr-defined]
    assert err.retryable is retryable


def test_model_timeout_is_a_timeout() -> None:
    err = bedrock_error("ModelTimeoutException", None, 408, provider="p", deployment="d")
    assert isinstance(err, UpstreamTimeoutError) and err.retryable


# -- streams that end early -------------------------------------------------------------------

START = encode_event("messageStart", {"role": "assistant"})
DELTA = encode_event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "Hi"}})
STOP = encode_event("messageStop", {"stopReason": "end_turn"})
META = encode_event("metadata", {"usage": {"inputTokens": 1, "outputTokens": 1, "totalTokens": 2}})


@pytest.fixture
async def upstream() -> AsyncIterator[Callable[[bytes], str]]:
    body: dict[str, bytes] = {}

    async def handler(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"content-type": "application/vnd.amazon.eventstream"})
        await resp.prepare(request)
        data = body["data"]
        for k in range(0, len(data), 7):  # frames split across chunks
            await resp.write(data[k : k + 7])
        await resp.write_eof()
        return resp

    app = web.Application()
    app.router.add_post("/{tail:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]

    def serve(data: bytes) -> str:
        body["data"] = data
        return f"http://127.0.0.1:{port}"

    yield serve
    await runner.cleanup()


async def run_stream(base_url: str) -> list[dict[str, Any]]:
    cfg = ProviderConfig(
        kind="bedrock",
        region="us-east-1",
        base_url=base_url,
        aws_access_key_id="A",
        aws_secret_access_key="S",
    )
    p = BedrockProvider("b", cfg)
    await p.open()
    try:
        stream = await p.stream(
            Deployment("b", "m", "m"), {"messages": [{"role": "user", "content": "x"}]}
        )
        return [e.data async for e in stream]
    finally:
        await p.aclose()


async def test_complete_stream_split_in_small_chunks(upstream: Callable[[bytes], str]) -> None:
    chunks = await run_stream(upstream(START + DELTA + STOP + META))
    assert [c["choices"][0]["delta"].get("content") for c in chunks[1:2]] == ["Hi"]
    assert chunks[-1]["choices"] == []


@pytest.mark.parametrize(
    "data", [START + DELTA, START + DELTA + STOP, START + DELTA + STOP + META[:-5]]
)
async def test_stream_without_stop_and_metadata(
    upstream: Callable[[bytes], str], data: bytes
) -> None:
    with pytest.raises(UpstreamConnectionError, match="ended the stream before"):
        await run_stream(upstream(data))


async def test_error_message_type(upstream: Callable[[bytes], str]) -> None:
    error = encode_message(
        {":message-type": "error", ":error-code": "InternalFailure", ":error-message": "oops"}
    )
    with pytest.raises(UpstreamStatusError, match="oops"):
        await run_stream(upstream(START + error))


async def test_non_json_event_payload(upstream: Callable[[bytes], str]) -> None:
    bad = encode_message({":message-type": "event", ":event-type": "messageStart"}, b"{oops")
    with pytest.raises(UpstreamProtocolError):
        await run_stream(upstream(bad))


async def test_converse_body_without_output(upstream: Callable[[bytes], str]) -> None:
    cfg = ProviderConfig(
        kind="bedrock",
        region="us-east-1",
        base_url=upstream(b'{"unexpected": true}'),
        aws_access_key_id="A",
        aws_secret_access_key="S",
    )
    p = BedrockProvider("b", cfg)
    await p.open()
    try:
        with pytest.raises(UpstreamProtocolError, match="no output"):
            await p.complete(
                Deployment("b", "m", "m"), {"messages": [{"role": "user", "content": "x"}]}
            )
    finally:
        await p.aclose()


async def test_no_credentials_anywhere(monkeypatch: pytest.MonkeyPatch) -> None:
    import thrifty.providers.bedrock as bedrock

    monkeypatch.delenv("AWS_BEARER_TOKEN_BEDROCK", raising=False)
    monkeypatch.setattr(bedrock, "_default_credentials", lambda: None)
    p = BedrockProvider("b", ProviderConfig(kind="bedrock", region="us-east-1"))
    await p.open()
    try:
        with pytest.raises(UpstreamStatusError, match="no AWS credentials") as exc:
            await p.complete(
                Deployment("b", "m", "m"), {"messages": [{"role": "user", "content": "x"}]}
            )
    finally:
        await p.aclose()
    assert exc.value.code == "upstream_auth_failed" and not exc.value.retryable
