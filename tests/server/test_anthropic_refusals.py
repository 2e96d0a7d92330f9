"""An OpenAI refusal (``message.refusal`` / ``delta.refusal``, structured outputs) reaches an
Anthropic-API client as text with ``stop_reason: refusal``, as Claude's own refusals do; it was
dropped, so the client saw an empty message that ended normally."""

from __future__ import annotations

from typing import Any

import orjson

from thrifty.wire.anthropic import from_openai
from thrifty.wire.anthropic_stream import AnthropicStreamEncoder

REFUSAL = "I can't help with that."


def completion(message: dict[str, Any]) -> dict[str, Any]:
    return {
        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 6, "total_tokens": 11},
    }


def test_a_refusal_is_text_that_stops_as_a_refusal() -> None:
    msg = from_openai(completion({"role": "assistant", "content": None, "refusal": REFUSAL}), "m")
    assert msg["content"] == [{"type": "text", "text": REFUSAL}]
    assert msg["stop_reason"] == "refusal"
    plain = from_openai(completion({"role": "assistant", "content": "Hi", "refusal": None}), "m")
    assert plain["content"] == [{"type": "text", "text": "Hi"}]
    assert plain["stop_reason"] == "end_turn"


def events(frames: list[bytes]) -> list[dict[str, Any]]:
    out = []
    for f in frames:
        data = f.split(b"data: ", 1)[1].strip()
        out.append(orjson.loads(data))
    return out


def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


def test_a_streamed_refusal_is_text_that_stops_as_a_refusal() -> None:
    enc = AnthropicStreamEncoder("m")
    frames = enc.start()
    frames += enc.chunk(chunk({"role": "assistant", "content": None, "refusal": ""}))
    frames += enc.chunk(chunk({"refusal": "I can't"}))
    frames += enc.chunk(chunk({"refusal": " help with that."}))
    frames += enc.chunk(chunk({}, "stop"))
    frames += enc.finish()
    evs = events(frames)
    text = "".join(e["delta"]["text"] for e in evs if e["type"] == "content_block_delta")
    assert text == REFUSAL
    (stop,) = [e for e in evs if e["type"] == "message_delta"]
    assert stop["delta"]["stop_reason"] == "refusal"
    plain = AnthropicStreamEncoder("m")
    tail = plain.chunk(chunk({"content": "Hi", "refusal": None})) + plain.chunk(chunk({}, "stop"))
    (stop,) = [e for e in events(tail + plain.finish()) if e["type"] == "message_delta"]
    assert stop["delta"]["stop_reason"] == "end_turn"
