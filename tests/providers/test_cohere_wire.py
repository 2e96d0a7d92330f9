"""OpenAI ⇄ Cohere v2 translation, as pure functions (no sockets)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from thrifty.pricing import CostCalculator, PriceCatalog, Usage
from thrifty.providers.cohere_stream import StreamTranslator
from thrifty.providers.cohere_wire import (
    CohereFailure,
    WireError,
    canonical_usage,
    finish_reason,
    from_cohere,
    to_cohere,
)


def body(*messages: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"model": "x", "messages": list(messages), **extra}


USER = {"role": "user", "content": "hi"}


def test_messages() -> None:
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": {"a": 1}}}
    image = {
        "type": "image_url",
        "image_url": {"url": "data:image/png;base64,AAAA", "detail": "low"},
    }
    req = to_cohere(
        body(
            {"role": "system", "content": [{"type": "text", "text": "Be brief."}]},
            {"role": "user", "content": [{"type": "text", "text": "look"}, image]},
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "c1", "content": [{"type": "text", "text": "ok"}]},
            {"role": "assistant", "content": [{"type": "text", "text": "Done."}]},
        ),
        "command-a-vision-07-2025",
    )
    assert req["model"] == "command-a-vision-07-2025"
    assert req["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "look"}, image]},
        {
            "role": "assistant",
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"a":1}'}}
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "ok"},
        {"role": "assistant", "content": "Done."},
    ]


def test_parameters() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    req = to_cohere(
        body(
            USER,
            max_tokens=9,
            stop=["a", "b"],
            top_p=0.0,
            seed=1,
            frequency_penalty=0.1,
            presence_penalty=0.2,
            response_format={"type": "json_schema", "json_schema": {"name": "s", "schema": schema}},
        ),
        "m",
    )
    assert {k: v for k, v in req.items() if k not in ("model", "messages")} == {
        "max_tokens": 9,
        "stop_sequences": ["a", "b"],
        "p": 0.01,
        "seed": 1,
        "frequency_penalty": 0.1,
        "presence_penalty": 0.2,
        "response_format": {"type": "json_object", "json_schema": schema},
    }
    assert to_cohere(body(USER, response_format={"type": "json_object"}), "m")[
        "response_format"
    ] == {"type": "json_object"}


TOOLS = [
    {
        "type": "function",
        "function": {"name": "f", "parameters": {"type": "object"}, "strict": True},
    },
    {"type": "function", "function": {"name": "g", "description": "G."}},
]


@pytest.mark.parametrize(
    ("choice", "names", "sent"),
    [
        (None, ["f", "g"], None),
        ("auto", ["f", "g"], None),
        ("required", ["f", "g"], "REQUIRED"),
        ("none", ["f", "g"], "NONE"),
        ({"type": "function", "function": {"name": "g"}}, ["g"], "REQUIRED"),
        (
            {
                "type": "allowed_tools",
                "allowed_tools": {
                    "mode": "auto",
                    "tools": [{"type": "function", "function": {"name": "f"}}],
                },
            },
            ["f"],
            None,
        ),
    ],
)
def test_tool_choice(choice: Any, names: list[str], sent: str | None) -> None:
    req = to_cohere(body(USER, tools=TOOLS, tool_choice=choice), "m")
    assert [t["function"]["name"] for t in req["tools"]] == names
    assert req.get("tool_choice") == sent
    assert req["strict_tools"] is True if "f" in names else "strict_tools" not in req
    assert "strict" not in req["tools"][0]["function"]


@pytest.mark.parametrize(
    "bad",
    [
        body(USER, n=2),
        body(),
        body({"role": "wizard", "content": "x"}),
        body({"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}),
        body({"role": "tool", "content": "no id"}),
        body(USER, tools=[{"type": "custom", "custom": {}}]),
    ],
)
def test_untranslatable(bad: dict[str, Any]) -> None:
    with pytest.raises(WireError):
        to_cohere(bad, "m")


COHERE_RESPONSE: dict[str, Any] = {
    "id": "c14c80c3",
    "finish_reason": "TOOL_CALL",
    "message": {
        "role": "assistant",
        "tool_plan": "I will look up the weather.",
        "tool_calls": [
            {
                "id": "get_weather_1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
            }
        ],
        "content": [{"type": "thinking", "thinking": "hmm"}, {"type": "text", "text": ""}],
        "citations": [],
    },
    "usage": {
        "billed_units": {"input_tokens": 20, "output_tokens": 15},
        "tokens": {"input_tokens": 850, "output_tokens": 40},
        "cached_tokens": 0,
    },
}


def test_from_cohere_and_cost() -> None:
    out = from_cohere(COHERE_RESPONSE, "command-r-plus-08-2024", created=7)
    assert out["id"] == "chatcmpl-c14c80c3" and out["created"] == 7
    choice = out["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    assert choice["message"]["tool_calls"] == COHERE_RESPONSE["message"]["tool_calls"]
    assert out["usage"] == {
        "prompt_tokens": 20,
        "completion_tokens": 15,
        "total_tokens": 35,
        "prompt_tokens_details": {"cached_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0},
    }
    cost = CostCalculator(PriceCatalog.bundled()).cost_of(
        "command-r-plus-08-2024", Usage.from_openai(out["usage"])
    )
    assert cost is not None
    # 20 x $2.50 + 15 x $10.00, per million tokens (billed units, not raw tokens).
    assert cost.total == Decimal("0.0002")


def test_usage_fallbacks() -> None:
    raw_only = {"tokens": {"input_tokens": 12.0, "output_tokens": 3.0}, "cached_tokens": 50}
    usage = canonical_usage(raw_only)
    assert usage["prompt_tokens"] == 12 and usage["completion_tokens"] == 3
    assert usage["prompt_tokens_details"]["cached_tokens"] == 12  # never above the prompt
    assert canonical_usage(None)["total_tokens"] == 0


def test_finish_reasons() -> None:
    assert finish_reason("COMPLETE") == "stop" and finish_reason("STOP_SEQUENCE") == "stop"
    assert finish_reason("MAX_TOKENS") == "length" and finish_reason("TOOL_CALL") == "tool_calls"
    with pytest.raises(CohereFailure) as err:
        finish_reason("ERROR", "boom")
    assert err.value.reason == "ERROR" and err.value.message == "boom"
    with pytest.raises(CohereFailure):
        from_cohere({**COHERE_RESPONSE, "finish_reason": "TIMEOUT"}, "m")


def test_stream_translator() -> None:
    tr = StreamTranslator("m", created=1)
    events: list[dict[str, Any]] = [
        {"type": "message-start", "id": "abc", "delta": {"message": {"role": "assistant"}}},
        {
            "type": "content-start",
            "index": 0,
            "delta": {"message": {"content": {"type": "thinking"}}},
        },
        {
            "type": "content-delta",
            "index": 0,
            "delta": {"message": {"content": {"thinking": "hm"}}},
        },
        {
            "type": "content-start",
            "index": 1,
            "delta": {"message": {"content": {"type": "text", "text": ""}}},
        },
        {"type": "content-delta", "index": 1, "delta": {"message": {"content": {"text": "Hi"}}}},
        {"type": "tool-plan-delta", "delta": {"message": {"tool_plan": "plan"}}},
        {
            "type": "tool-call-start",
            "index": 3,
            "delta": {
                "message": {
                    "tool_calls": {
                        "id": "t1",
                        "type": "function",
                        "function": {"name": "f", "arguments": ""},
                    }
                }
            },
        },
        {
            "type": "tool-call-delta",
            "index": 3,
            "delta": {"message": {"tool_calls": {"function": {"arguments": '{"a"'}}}},
        },
        {
            "type": "tool-call-delta",
            "index": 3,
            "delta": {"message": {"tool_calls": {"function": {"arguments": ":1}"}}}},
        },
        {"type": "tool-call-end", "index": 3},
        {"type": "debug"},
        {
            "type": "message-end",
            "delta": {
                "finish_reason": "TOOL_CALL",
                "usage": {"billed_units": {"input_tokens": 5, "output_tokens": 2}},
            },
        },
    ]
    chunks = [c for e in events for c in tr.feed(e)]
    deltas = [c["choices"][0]["delta"] for c in chunks]
    assert deltas[0] == {"role": "assistant", "content": ""}
    assert deltas[1] == {"content": "Hi"}
    assert deltas[2]["tool_calls"][0] == {
        "index": 0,
        "id": "t1",
        "type": "function",
        "function": {"name": "f", "arguments": ""},
    }
    args = "".join(d["tool_calls"][0]["function"]["arguments"] for d in deltas[2:5])
    assert args == '{"a":1}' and all(d["tool_calls"][0]["index"] == 0 for d in deltas[2:5])
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls" and tr.done
    usage = tr.usage_chunk()
    assert usage is not None and usage["choices"] == [] and usage["usage"]["total_tokens"] == 7
    assert {c["id"] for c in chunks} == {"chatcmpl-abc"}


def test_stream_translator_error() -> None:
    tr = StreamTranslator("m")
    tr.feed({"type": "message-start", "id": "x"})
    with pytest.raises(CohereFailure) as err:
        tr.feed({"type": "message-end", "delta": {"finish_reason": "ERROR", "error": "overloaded"}})
    assert err.value.message == "overloaded"
