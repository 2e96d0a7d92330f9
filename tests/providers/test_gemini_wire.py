"""OpenAI ⇄ Gemini translation, as pure functions (no sockets)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson
import pytest

from thrifty.pricing import CostCalculator, PriceCatalog, Usage
from thrifty.providers.gemini_request import (
    PLACEHOLDER_SIGNATURE,
    SignatureStash,
    WireError,
    is_gemini3,
    parse_arguments,
    to_gemini,
)
from thrifty.providers.gemini_response import (
    StreamTranslator,
    canonical_usage,
    finish_reason,
    from_gemini,
    synthesized_call_id,
)

CALL: dict[str, Any] = {
    "id": "call_1",
    "type": "function",
    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
}


def body(*messages: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"model": "m", "messages": list(messages), **extra}


def test_roles_system_and_merging() -> None:
    req = to_gemini(
        body(
            {"role": "system", "content": "A."},
            {"role": "user", "content": "one"},
            {
                "role": "user",
                "content": [{"type": "text", "text": "two"}, {"type": "text", "text": ""}],
            },
            {"role": "developer", "content": [{"type": "text", "text": "B."}]},
            {"role": "assistant", "content": "three"},
            {"role": "assistant", "content": ""},
        ),
        "gemini-2.5-flash",
    )
    assert req["systemInstruction"] == {"role": "user", "parts": [{"text": "A."}, {"text": "B."}]}
    assert req["contents"] == [
        {"role": "user", "parts": [{"text": "one"}, {"text": "two"}]},
        {"role": "model", "parts": [{"text": "three"}]},
    ]


def test_tool_calls_and_results() -> None:
    stash = SignatureStash()
    stash.put("call_1", "c2ln")
    call2 = {"id": "call_2", "type": "function", "function": {"name": "f", "arguments": "not json"}}
    req = to_gemini(
        body(
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "Let me check.", "tool_calls": [CALL, call2]},
            {
                "role": "tool",
                "tool_call_id": "call_2",
                "content": [{"type": "text", "text": "[1]"}],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": '{"temp": 18}'},
            {"role": "user", "content": "thanks"},
        ),
        "gemini-2.5-flash",
        stash,
    )
    model, results = req["contents"][1], req["contents"][2]
    assert model["parts"] == [
        {"text": "Let me check."},
        {
            "functionCall": {"name": "get_weather", "args": {"city": "Paris"}},
            "thoughtSignature": "c2ln",
        },
        {"functionCall": {"name": "f", "args": {"_raw": "not json"}}},
    ]
    assert results == {
        "role": "user",
        "parts": [
            {"functionResponse": {"name": "f", "response": {"result": [1]}}},
            {"functionResponse": {"name": "get_weather", "response": {"temp": 18}}},
            {"text": "thanks"},
        ],
    }


def test_signature_sources() -> None:
    with_extra = {**CALL, "extra_content": {"google": {"thought_signature": "ZXh0cmE="}}}
    history: list[dict[str, Any]] = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "tool_calls": [with_extra]},
    ]
    req = to_gemini(body(*history), "gemini-3-pro-preview", SignatureStash())
    assert req["contents"][1]["parts"][0]["thoughtSignature"] == "ZXh0cmE="
    history[1] = {"role": "assistant", "tool_calls": [CALL, {**CALL, "id": "call_9"}]}
    req = to_gemini(body(*history), "gemini-3-pro-preview", SignatureStash())
    parts = req["contents"][1]["parts"]
    assert parts[0]["thoughtSignature"] == PLACEHOLDER_SIGNATURE
    assert "thoughtSignature" not in parts[1]  # only the first call of a step needs one
    req = to_gemini(body(*history), "gemini-2.5-flash", SignatureStash())
    assert "thoughtSignature" not in req["contents"][1]["parts"][0]


def test_is_gemini3() -> None:
    assert is_gemini3("gemini-3-pro-preview") and is_gemini3("models/gemini-3-flash")
    assert not is_gemini3("gemini-2.5-pro") and not is_gemini3("gemma-3-27b")


def test_stash_is_bounded() -> None:
    stash = SignatureStash(maxsize=2)
    for i in range(3):
        stash.put(f"c{i}", str(i))
    assert stash.get("c0") is None and stash.get("c2") == "2" and len(stash) == 2


def test_parse_arguments() -> None:
    assert parse_arguments("") == {} and parse_arguments(None) == {}
    assert parse_arguments('{"a": 1}') == {"a": 1}
    assert parse_arguments("[1]") == {"_raw": "[1]"}
    assert parse_arguments({"a": 1}) == {"a": 1}


@pytest.mark.parametrize(
    ("choice", "config"),
    [
        ("none", {"mode": "NONE"}),
        ("required", {"mode": "ANY"}),
        (
            {"type": "function", "function": {"name": "f"}},
            {"mode": "ANY", "allowedFunctionNames": ["f"]},
        ),
        (
            {
                "type": "allowed_tools",
                "allowed_tools": {
                    "mode": "auto",
                    "tools": [{"type": "function", "function": {"name": "f"}}],
                },
            },
            {"mode": "VALIDATED", "allowedFunctionNames": ["f"]},
        ),
    ],
)
def test_tool_choice(choice: Any, config: dict[str, Any]) -> None:
    tools = [{"type": "function", "function": {"name": "f"}}]
    req = to_gemini(body({"role": "user", "content": "x"}, tools=tools, tool_choice=choice), "g")
    assert req["tools"] == [{"functionDeclarations": [{"name": "f"}]}]
    assert req["toolConfig"] == {"functionCallingConfig": config}


def test_generation_config() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    req = to_gemini(
        body(
            {"role": "user", "content": "x"},
            max_completion_tokens=7,
            max_tokens=99,
            stop="END",
            n=2,
            seed=3,
            presence_penalty=0.5,
            response_format={"type": "json_schema", "json_schema": {"name": "s", "schema": schema}},
            reasoning_effort="low",
        ),
        "gemini-2.5-flash",
    )
    assert req["generationConfig"] == {
        "maxOutputTokens": 7,
        "seed": 3,
        "presencePenalty": 0.5,
        "stopSequences": ["END"],
        "candidateCount": 2,
        "responseMimeType": "application/json",
        "responseJsonSchema": schema,
        "thinkingConfig": {"thinkingBudget": 1024},
    }
    req = to_gemini(
        body(
            {"role": "user", "content": "x"},
            reasoning_effort="high",
            response_format={"type": "json_object"},
        ),
        "gemini-3-pro-preview",
    )
    assert req["generationConfig"] == {
        "responseMimeType": "application/json",
        "thinkingConfig": {"thinkingLevel": "high"},
    }


@pytest.mark.parametrize(
    "bad",
    [
        [],
        [{"role": "system", "content": "only"}],
        [{"role": "wizard", "content": "x"}],
        [{"role": "user", "content": [{"type": "input_text_x", "text": "x"}]}],
        [{"role": "user", "content": [{"type": "file", "file": {"file_id": "f"}}]}],
        [{"role": "tool", "tool_call_id": "nope", "content": "1"}],
    ],
)
def test_untranslatable(bad: list[Any]) -> None:
    with pytest.raises(WireError):
        to_gemini(body(*bad), "g")


@pytest.mark.parametrize(
    ("reason", "called", "expected"),
    [
        ("STOP", False, "stop"),
        ("STOP", True, "tool_calls"),
        ("MAX_TOKENS", True, "length"),
        ("SAFETY", False, "content_filter"),
        ("RECITATION", False, "content_filter"),
        ("PROHIBITED_CONTENT", False, "content_filter"),
        ("IMAGE_SAFETY", False, "content_filter"),
        ("MALFORMED_FUNCTION_CALL", False, "stop"),
        ("OTHER", False, "stop"),
    ],
)
def test_finish_reasons(reason: str, called: bool, expected: str) -> None:
    assert finish_reason(reason, called) == expected


GEMINI_RESPONSE: dict[str, Any] = {
    "candidates": [
        {
            "content": {
                "role": "model",
                "parts": [
                    {"text": "thinking...", "thought": True},
                    {"text": "Checking."},
                    {
                        "functionCall": {"name": "get_weather", "args": {"city": "Paris"}},
                        "thoughtSignature": "c2ln",
                    },
                    {"functionCall": {"name": "get_time", "args": {}}},
                ],
            },
            "finishReason": "STOP",
            "index": 0,
        }
    ],
    "usageMetadata": {
        "promptTokenCount": 1250,
        "candidatesTokenCount": 12,
        "totalTokenCount": 1302,
        "cachedContentTokenCount": 1024,
        "thoughtsTokenCount": 40,
    },
    "modelVersion": "gemini-2.5-flash",
    "responseId": "abc123",
}


def test_from_gemini_and_cost() -> None:
    stash = SignatureStash()
    out = from_gemini(GEMINI_RESPONSE, "gemini-2.5-flash", stash, created=5)
    message = out["choices"][0]["message"]
    assert out["id"] == "chatcmpl-abc123" and out["created"] == 5
    assert message["content"] == "Checking."
    calls = message["tool_calls"]
    assert calls[0]["id"] == synthesized_call_id("abc123", 0, 0)
    assert calls[1]["id"] == synthesized_call_id("abc123", 0, 1)
    assert calls[0]["function"] == {"name": "get_weather", "arguments": '{"city":"Paris"}'}
    assert orjson.loads(calls[1]["function"]["arguments"]) == {}
    assert calls[0]["extra_content"] == {"google": {"thought_signature": "c2ln"}}
    assert stash.get(calls[0]["id"]) == "c2ln"
    assert out["choices"][0]["finish_reason"] == "tool_calls"
    assert out["usage"] == {
        "prompt_tokens": 1250,
        "completion_tokens": 52,
        "total_tokens": 1302,
        "prompt_tokens_details": {"cached_tokens": 1024},
        "completion_tokens_details": {"reasoning_tokens": 40},
    }
    # Same as the pricing package's own Gemini reading.
    assert Usage.from_openai(out["usage"]) == Usage.from_gemini(GEMINI_RESPONSE["usageMetadata"])
    cost = CostCalculator(PriceCatalog.bundled()).cost_of(
        "gemini-2.5-flash", Usage.from_openai(out["usage"])
    )
    assert cost is not None
    # 226 uncached x $0.30 + 1024 cached x $0.03 + 52 output x $2.50, per million tokens.
    assert cost.total == Decimal("0.00022852")


def test_usage_tool_prompt_and_missing_fields() -> None:
    usage = canonical_usage({"promptTokenCount": 10, "toolUsePromptTokenCount": 5})
    assert usage["prompt_tokens"] == 15 and usage["completion_tokens"] == 0
    assert canonical_usage(None)["total_tokens"] == 0


def test_blocked_prompt_and_empty_candidate() -> None:
    blocked = {
        "promptFeedback": {"blockReason": "SAFETY"},
        "usageMetadata": {"promptTokenCount": 3},
    }
    out = from_gemini(blocked, "m")
    assert out["choices"][0]["finish_reason"] == "content_filter"
    assert out["choices"][0]["message"]["content"] == ""
    empty = {"candidates": [{"content": {"role": "model"}, "finishReason": "MAX_TOKENS"}]}
    out = from_gemini(empty, "m")
    assert out["choices"][0]["message"]["content"] == ""
    assert out["choices"][0]["finish_reason"] == "length"


def test_stream_translator_renumbers_and_finishes() -> None:
    tr = StreamTranslator("m", created=1)
    first = tr.feed(
        {
            "responseId": "r1",
            "candidates": [
                {"content": {"parts": [{"text": "Let me look."}]}, "index": 0},
                {
                    "content": {"parts": [{"functionCall": {"name": "a", "args": {"x": 1}}}]},
                    "index": 1,
                },
            ],
        }
    )
    assert [c["choices"][0]["index"] for c in first] == [0, 0, 1, 1]
    assert first[2]["choices"][0]["delta"] == {"role": "assistant", "content": None}
    assert not tr.complete
    second = tr.feed(
        {
            "candidates": [
                {
                    "content": {"parts": [{"functionCall": {"name": "b", "args": {}}}]},
                    "finishReason": "STOP",
                    "index": 0,
                },
                {
                    "content": {"parts": [{"functionCall": {"name": "c", "args": {}}}]},
                    "finishReason": "STOP",
                    "index": 1,
                },
            ],
            "usageMetadata": {"promptTokenCount": 4, "candidatesTokenCount": 6},
        }
    )
    calls = [c["choices"][0]["delta"].get("tool_calls") for c in second]
    assert calls[0][0]["index"] == 0 and calls[0][0]["function"]["name"] == "b"
    assert second[1]["choices"][0]["finish_reason"] == "tool_calls"
    assert calls[2][0]["index"] == 1 and calls[2][0]["function"]["name"] == "c"
    assert calls[2][0]["id"] == synthesized_call_id("r1", 1, 1)
    assert tr.complete
    usage = tr.usage_chunk()
    assert usage is not None and usage["choices"] == [] and usage["usage"]["total_tokens"] == 10
    assert {c["id"] for c in first + second} == {"chatcmpl-r1"}


def test_stream_translator_blocked() -> None:
    tr = StreamTranslator("m")
    chunks = tr.feed({"promptFeedback": {"blockReason": "OTHER"}})
    assert chunks[-1]["choices"][0]["finish_reason"] == "content_filter"
    assert tr.complete and tr.usage_chunk() is None
