"""The inbound Anthropic Messages API, translated to and from the canonical OpenAI shape.

Applications on the Anthropic SDK point at Thrifty unchanged; their requests run through the
same pipeline as OpenAI ones. Mapping (request):

- ``system`` (string or text blocks) → a system message; text blocks keep ``cache_control``.
- ``text`` / ``image`` (base64 → data URL, url) blocks → content parts; ``tool_use`` blocks →
  ``tool_calls`` (``input`` serialised once); ``tool_result`` blocks → ``tool`` messages, in
  order, before the rest of that user turn.
- ``max_tokens`` (required) → ``max_tokens``; ``stop_sequences`` → ``stop``; ``temperature``,
  ``top_p`` as they are; ``metadata.user_id`` → ``user``; ``tools`` / ``tool_choice``
  (auto / any / tool / none, ``disable_parallel_tool_use``) → OpenAI tools.
- Dropped, because OpenAI-shaped upstreams reject them: ``top_k``, ``thinking``,
  ``service_tier``, ``container``, ``mcp_servers``.
"""

from __future__ import annotations

import os
from typing import Any

import orjson

from thrifty.errors import InvalidRequestError, ThriftyError
from thrifty.wire.validate import expect_type, fail

STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    503: "overloaded_error",
}


def error_body(exc: ThriftyError) -> dict[str, Any]:
    """Anthropic's error shape: ``{"type": "error", "error": {"type", "message"}}``."""
    etype = ERROR_TYPES.get(
        exc.status, "api_error" if exc.status >= 500 else "invalid_request_error"
    )
    return {"type": "error", "error": {"type": etype, "message": exc.message}}


def _image_part(block: dict[str, Any], param: str) -> dict[str, Any]:
    source = block.get("source") or {}
    if source.get("type") == "base64":
        url = f"data:{source.get('media_type', 'image/png')};base64,{source.get('data', '')}"
    elif source.get("type") == "url":
        url = source.get("url", "")
    else:
        raise fail(f"{param}.source", f"Unsupported image source type {source.get('type')!r}.")
    return {"type": "image_url", "image_url": {"url": url}}


def _text_part(block: dict[str, Any]) -> dict[str, Any]:
    part: dict[str, Any] = {"type": "text", "text": block.get("text", "")}
    if "cache_control" in block:
        part["cache_control"] = block["cache_control"]
    return part


def _tool_result_text(block: dict[str, Any]) -> str:
    content = block.get("content")
    if isinstance(content, list):
        text = "".join(b.get("text", "") for b in content if b.get("type") == "text")
    else:
        text = str(content or "")
    return f"[tool error] {text}" if block.get("is_error") else text


def _blocks(content: Any, param: str) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    expect_type(param, content, "array")
    for j, block in enumerate(content):
        expect_type(f"{param}[{j}]", block, "object")
    return list(content)


def _user_turn(content: Any, param: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for j, block in enumerate(_blocks(content, param)):
        kind = block.get("type")
        if kind == "tool_result":
            out.append(
                {
                    "role": "tool",
                    "tool_call_id": block.get("tool_use_id", ""),
                    "content": _tool_result_text(block),
                }
            )
        elif kind == "text":
            parts.append(_text_part(block))
        elif kind == "image":
            parts.append(_image_part(block, f"{param}[{j}]"))
        else:
            raise fail(f"{param}[{j}].type", f"Unsupported content block type {kind!r}.")
    if parts:
        simple = len(parts) == 1 and parts[0]["type"] == "text" and len(parts[0]) == 2
        out.append({"role": "user", "content": parts[0]["text"] if simple else parts})
    return out


def _assistant_turn(content: Any, param: str) -> dict[str, Any]:
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for block in _blocks(content, param):
        kind = block.get("type")
        if kind == "text":
            texts.append(block.get("text", ""))
        elif kind == "tool_use":
            calls.append(
                {
                    "id": block.get("id", ""),
                    "type": "function",
                    "function": {
                        "name": block.get("name", ""),
                        "arguments": orjson.dumps(block.get("input") or {}).decode(),
                    },
                }
            )
        # thinking / redacted_thinking blocks cannot reach an OpenAI-shaped upstream: dropped.
    msg: dict[str, Any] = {"role": "assistant", "content": "".join(texts) or None}
    if calls:
        msg["tool_calls"] = calls
    return msg


def _tools(body: dict[str, Any], out: dict[str, Any]) -> None:
    tools = body.get("tools")
    if tools:
        expect_type("tools", tools, "array")
        out["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": t.get("name", ""),
                    "description": t.get("description", ""),
                    "parameters": t.get("input_schema") or {"type": "object"},
                },
            }
            for t in tools
            if isinstance(t, dict)
        ]
    choice = body.get("tool_choice")
    if isinstance(choice, dict):
        kind = choice.get("type")
        if kind == "any":
            out["tool_choice"] = "required"
        elif kind == "tool":
            out["tool_choice"] = {"type": "function", "function": {"name": choice.get("name")}}
        elif kind in ("auto", "none"):
            out["tool_choice"] = kind
        if choice.get("disable_parallel_tool_use"):
            out["parallel_tool_calls"] = False


def to_openai(body: dict[str, Any]) -> dict[str, Any]:
    """A canonical OpenAI chat body from an Anthropic Messages body (400 naming a bad field)."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequestError("model: Field required", param="model")
    max_tokens = body.get("max_tokens")
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        raise InvalidRequestError(
            "max_tokens: Field required (a positive integer)", param="max_tokens"
        )
    messages = body.get("messages")
    expect_type("messages", messages, "array")
    if not messages:
        raise fail("messages", "messages: at least one message is required")
    out_msgs: list[dict[str, Any]] = []
    system = body.get("system")
    if isinstance(system, str) and system:
        out_msgs.append({"role": "system", "content": system})
    elif isinstance(system, list) and system:
        out_msgs.append({"role": "system", "content": [_text_part(b) for b in system]})
    for i, msg in enumerate(messages):
        expect_type(f"messages[{i}]", msg, "object")
        role, param = msg.get("role"), f"messages[{i}].content"
        if role == "user":
            out_msgs.extend(_user_turn(msg.get("content"), param))
        elif role == "assistant":
            out_msgs.append(_assistant_turn(msg.get("content"), param))
        else:
            raise fail(f"messages[{i}].role", f"messages[{i}].role: expected user or assistant")
    out: dict[str, Any] = {"model": model, "messages": out_msgs, "max_tokens": max_tokens}
    for src, dst in (
        ("temperature", "temperature"),
        ("top_p", "top_p"),
        ("stop_sequences", "stop"),
    ):
        if body.get(src) is not None:
            out[dst] = body[src]
    user = (body.get("metadata") or {}).get("user_id")
    if user:
        out["user"] = user
    _tools(body, out)
    if body.get("stream"):
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}
    return out


def anthropic_usage(usage: dict[str, Any] | None) -> dict[str, int]:
    """Anthropic usage (``input_tokens`` excludes cache reads and writes) from OpenAI usage."""
    usage = usage or {}
    details = usage.get("prompt_tokens_details") or {}
    cached = int(details.get("cached_tokens") or 0)
    written = int(details.get("cache_write_tokens") or 0)
    return {
        "input_tokens": max(0, int(usage.get("prompt_tokens") or 0) - cached - written),
        "output_tokens": int(usage.get("completion_tokens") or 0),
        "cache_read_input_tokens": cached,
        "cache_creation_input_tokens": written,
    }


def new_message_id() -> str:
    return "msg_" + os.urandom(12).hex()


def from_openai(data: dict[str, Any], model: str) -> dict[str, Any]:
    """An Anthropic ``message`` from a canonical chat.completion."""
    choice = (data.get("choices") or [{}])[0]
    message = choice.get("message") or {}
    content: list[dict[str, Any]] = []
    if message.get("content"):
        content.append({"type": "text", "text": message["content"]})
    # An OpenAI refusal (structured outputs) has no field here: it is said as text and the
    # message stops as a refusal, as Claude's own refusals do.
    refusal = message.get("refusal")
    if refusal:
        content.append({"type": "text", "text": refusal})
    for call in message.get("tool_calls") or ():
        fn = call.get("function") or {}
        try:
            args = orjson.loads(fn.get("arguments") or "{}")
        except orjson.JSONDecodeError:
            args = {"_raw": fn.get("arguments")}
        content.append(
            {"type": "tool_use", "id": call.get("id"), "name": fn.get("name"), "input": args}
        )
    return {
        "id": new_message_id(),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": "refusal"
        if refusal
        else STOP_REASONS.get(choice.get("finish_reason") or "stop", "end_turn"),
        "stop_sequence": None,
        "usage": anthropic_usage(data.get("usage")),
    }
