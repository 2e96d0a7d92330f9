"""Unit tests of the OpenAI ⇄ Anthropic translation and the stream translator."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from thrifty.config import ProviderConfig
from thrifty.errors import UpstreamConnectionError, UpstreamRateLimitError, UpstreamStatusError
from thrifty.providers.anthropic import AnthropicProvider, StreamTranslator
from thrifty.providers.anthropic_response import from_anthropic
from thrifty.providers.anthropic_wire import (
    JSON_OBJECT_INSTRUCTION,
    WireError,
    parse_arguments,
    rejects_sampling,
    to_anthropic,
)
from thrifty.providers.base import Deployment

USER = [{"role": "user", "content": "Hi"}]
TOOL = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
DEP = Deployment("anth", "claude-haiku-4-5", "haiku")


def test_parse_arguments_never_fails() -> None:
    assert parse_arguments('{"a": 1}') == {"a": 1}
    assert parse_arguments("") == {} and parse_arguments(None) == {}
    assert parse_arguments("{broken") == {"_raw": "{broken"}
    assert parse_arguments("[1, 2]") == {"_raw": "[1, 2]"}
    assert parse_arguments({"already": "parsed"}) == {"already": "parsed"}


@pytest.mark.parametrize(
    ("model", "rejects"),
    [
        ("claude-opus-4-7", True),
        ("claude-opus-4-8-20260601", True),
        ("claude-opus-4-12", True),
        ("claude-sonnet-5", True),
        ("claude-sonnet-5-5", True),
        ("claude-haiku-5-5", True),
        ("claude-opus-5-5", True),
        ("claude-fable-5-2", True),
        ("claude-mythos-preview", True),
        ("us.anthropic.claude-opus-4-7-20260416-v1:0", True),
        ("claude-opus-4-6", False),
        ("claude-sonnet-4-6", False),
        ("claude-sonnet-4-5-20250929", False),
        ("claude-haiku-4-5", False),
        ("claude-3-5-sonnet-20241022", False),
        ("claude-opus-4-1", False),
    ],
)
def test_models_that_reject_sampling_get_none(model: str, rejects: bool) -> None:
    """Opus 4.7+, Claude 5 models, Fable and Mythos answer any temperature / top_p / top_k with
    a 400 ("`temperature` is deprecated for this model"); older models keep them."""
    assert rejects_sampling(model) is rejects
    out = to_anthropic({"messages": USER, "temperature": 0.3, "top_k": 5}, model)
    assert ("temperature" in out) is not rejects and ("top_k" in out) is not rejects


def test_request_edge_cases() -> None:
    out = to_anthropic(
        {"messages": USER, "tools": [TOOL], "parallel_tool_calls": False, "top_p": 0.9},
        "m",
    )
    assert out["tool_choice"] == {"type": "auto", "disable_parallel_tool_use": True}
    assert out["top_p"] == 0.9 and "temperature" not in out
    both = to_anthropic({"messages": USER, "temperature": 0.5, "top_p": 0.9}, "m")
    assert both["temperature"] == 0.5 and "top_p" not in both  # recent models reject the pair
    new = to_anthropic(
        {"messages": USER, "temperature": 0.5, "top_k": 5}, "m", version="2026-10-21"
    )
    assert "temperature" not in new and "top_k" not in new
    assert "tool_choice" not in to_anthropic({"messages": USER, "tool_choice": "auto"}, "m")
    thinking = {"type": "enabled", "budget_tokens": 1024}
    extra = to_anthropic(
        {"messages": USER, "thinking": thinking, "safety_identifier": "s", "seed": 1}, "m"
    )
    assert extra["thinking"] == thinking and extra["metadata"] == {"user_id": "s"}
    assert "seed" not in extra
    fmt = to_anthropic(
        {
            "messages": [{"role": "system", "content": "S"}, *USER],
            "response_format": {"type": "json_object"},
        },
        "m",
    )
    assert fmt["system"] == f"S\n\n{JSON_OBJECT_INSTRUCTION}"


def test_message_parts_and_roles() -> None:
    messages = [
        {
            "role": "user",
            "content": [
                {
                    "type": "file",
                    "file": {
                        "file_data": "data:application/pdf;base64,JVBERi0=",
                        "filename": "a.pdf",
                    },
                },
                {
                    "type": "document",
                    "source": {"type": "text", "media_type": "text/plain", "data": "x"},
                },
                {"type": "text", "text": ""},
            ],
        },
        {"role": "assistant", "content": ""},  # empty: dropped, the user turns then merge
        {"role": "user", "content": "more", "name": "bob"},
        {"role": "assistant", "content": None, "refusal": "No."},
    ]
    out = to_anthropic({"messages": messages}, "m")
    assert out["messages"] == [
        {"role": "user", "content": [
            {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0="}},
            {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "x"}},
            {"type": "text", "text": "more"},
        ]},
        {"role": "assistant", "content": "No."},
    ]  # fmt: skip
    for bad in (
        {"messages": USER, "n": 3},
        {"messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}]},
        {
            "messages": [
                {
                    "role": "user",
                    "content": [{"type": "image_url", "image_url": {"url": "data:image/png,raw"}}],
                }
            ]
        },
        {"messages": [{"role": "tool", "content": "x"}]},
        {"messages": [{"role": "critic", "content": "x"}]},
        {"messages": USER, "tools": [{"type": "custom", "custom": {}}]},
        {"messages": USER, "tools": [TOOL], "tool_choice": "sometimes"},
    ):
        with pytest.raises(WireError):
            to_anthropic(bad, "m")


def test_response_mapping() -> None:
    msg = {
        "id": "msg_1",
        "model": "claude",
        "content": [
            {"type": "thinking", "thinking": "hmm", "signature": "sig"},
            {"type": "text", "text": "a"},
            {"type": "text", "text": "b"},
        ],
        "stop_reason": "pause_turn",
        "usage": {"input_tokens": 5, "output_tokens": 2, "cache_read_input_tokens": 10},
    }
    out = from_anthropic(msg, created=1)
    message = out["choices"][0]["message"]
    assert message["content"] == "ab" and message["reasoning_content"] == "hmm"
    assert out["choices"][0]["finish_reason"] == "stop" and out["created"] == 1
    assert out["usage"]["prompt_tokens"] == 15
    assert out["usage"]["prompt_tokens_details"] == {"cached_tokens": 10, "cache_write_tokens": 0}
    for reason, finish in (("model_context_window_exceeded", "length"), ("weird", "stop")):
        assert (
            from_anthropic({**msg, "stop_reason": reason})["choices"][0]["finish_reason"] == finish
        )


def test_stream_translator_edge_cases() -> None:
    t = StreamTranslator(created=7)
    start = {
        "message": {"id": "msg_1", "model": "m", "usage": {"input_tokens": 3, "output_tokens": 1}}
    }
    assert t.feed("message_start", start)[0]["choices"][0]["delta"]["role"] == "assistant"
    assert t.feed("ping", {}) == []
    assert (
        t.feed(
            "content_block_start",
            {"index": 0, "content_block": {"type": "thinking", "thinking": ""}},
        )
        == []
    )
    think = t.feed(
        "content_block_delta", {"index": 0, "delta": {"type": "thinking_delta", "thinking": "hm"}}
    )
    assert think[0]["choices"][0]["delta"] == {"reasoning_content": "hm"}
    block = {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {"a": 1}}
    first = t.feed("content_block_start", {"index": 1, "content_block": block})
    assert first[0]["choices"][0]["delta"]["tool_calls"][0]["index"] == 0
    whole = t.feed("content_block_stop", {"index": 1})  # no input_json_delta: input sent whole
    assert whole[0]["choices"][0]["delta"]["tool_calls"] == [
        {"index": 0, "function": {"arguments": '{"a":1}'}}
    ]
    end = t.feed("message_stop", {})  # no message_delta: a plain finish chunk, then usage
    assert end[0]["choices"][0]["finish_reason"] == "stop"
    assert end[1]["choices"] == [] and end[1]["usage"]["prompt_tokens"] == 3
    assert t.done and "usage" not in end[0]


@pytest.fixture
async def raw_upstream() -> AsyncIterator[tuple[str, list[bytes]]]:
    bodies: list[bytes] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        body = bodies.pop(0)
        status = 200 if body.startswith(b"event") or body.startswith(b":") else 429
        resp = web.Response(body=body, status=status, headers={"content-type": "text/event-stream"})
        return resp

    app = web.Application()
    app.router.add_post("/v1/messages", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}", bodies
    await runner.cleanup()


async def test_stream_framing_and_clean_end_without_message_stop(raw_upstream: Any) -> None:
    base, bodies = raw_upstream
    p = AnthropicProvider("anth", ProviderConfig(kind="anthropic", base_url=base, api_key="k"))
    await p.open()
    try:
        start = (
            b'{"type":"message_start","message":{"id":"m","model":"x","usage":{"input_tokens":1}}}'
        )
        delta = (
            b'{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"hi"}}'
        )
        # CRLF framing, a comment, an event without an `event:` line, then a clean close.
        bodies.append(
            b": keep-alive\r\n\r\nevent: message_start\r\ndata: "
            + start
            + b"\r\n\r\ndata: "
            + delta
            + b"\r\n\r\n"
        )
        stream = await p.stream(DEP, {"messages": USER})
        seen: list[dict[str, Any]] = []
        with pytest.raises(UpstreamConnectionError, match="message_stop"):
            async for event in stream:
                seen.append(event.data)
        assert [c["choices"][0]["delta"].get("content") for c in seen] == ["", "hi"]
        body = b'{"type":"error","error":{"type":"rate_limit_error","message":"slow down"}}'
        bodies.append(
            b"event: message_start\ndata: " + start + b"\n\nevent: error\ndata: " + body + b"\n\n"
        )
        stream = await p.stream(DEP, {"messages": USER})
        with pytest.raises(UpstreamRateLimitError, match="slow down"):
            async for _ in stream:
                pass
        bodies.append(b"not json")
        with pytest.raises(UpstreamRateLimitError) as info:
            await p.complete(DEP, {"messages": USER})
        assert "HTTP 429" in info.value.message
    finally:
        await p.aclose()


def test_config_headers_win() -> None:
    cfg = ProviderConfig(
        kind="anthropic",
        api_key="k",
        headers={"Anthropic-Version": "2026-10-21", "anthropic-beta": "x"},
    )
    p = AnthropicProvider("anth", cfg)
    assert p.version == "2026-10-21" and "anthropic-version" not in p.headers
    assert (
        p.headers["x-api-key"] == "k" and p.messages_url == "https://api.anthropic.com/v1/messages"
    )
    err = p.status_error(
        529, b'{"type":"error","error":{"type":"overloaded_error","message":"O"}}', {}, DEP
    )
    assert isinstance(err, UpstreamStatusError) and err.upstream_status == 529 and err.retryable
