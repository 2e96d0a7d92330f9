"""OpenAI Chat Completions ⇄ Cohere Chat v2 translation (pure functions, no I/O).

Request (``to_cohere``):

- roles map 1:1 (``developer`` → ``system``); content is a string or a list of ``text`` /
  ``image_url`` parts (Cohere's vision models take the OpenAI part shape); system content is
  joined text. Assistant ``tool_calls`` keep the OpenAI shape (``arguments`` a string; an object
  is serialised once). ``tool`` messages keep ``tool_call_id`` and their text.
- ``tools`` keep the OpenAI shape (``strict`` on any tool → ``strict_tools: true``).
  ``tool_choice``: ``required`` → ``REQUIRED``, ``none`` → ``NONE``, ``auto`` → omitted; a named
  choice (or ``allowed_tools``) narrows ``tools`` to those functions (+ ``REQUIRED`` for named or
  ``mode: required``), since Cohere has no named choice.
- ``max_completion_tokens`` (else ``max_tokens``) → ``max_tokens``, ``stop`` →
  ``stop_sequences``, ``top_p`` → ``p`` (clamped to Cohere's 0.01-0.99), ``temperature``,
  ``seed``, penalties;
  ``response_format`` ``json_object`` → ``{"type": "json_object"}``, ``json_schema`` →
  ``{"type": "json_object", "json_schema": schema}``. ``n > 1``, audio and files are rejected.

Response (``from_cohere``) and stream (``StreamTranslator``): text parts are joined into
``content`` (``thinking`` parts and ``tool_plan`` are dropped); ``finish_reason``
``COMPLETE``/``STOP_SEQUENCE`` → ``stop``, ``MAX_TOKENS`` → ``length``, ``TOOL_CALL`` →
``tool_calls``; ``ERROR`` / ``TIMEOUT`` raise ``CohereFailure``. Usage bills from
``billed_units`` (``usage.tokens`` when absent): ``prompt_tokens = input_tokens``,
``completion_tokens = output_tokens``, ``cached_tokens = usage.cached_tokens`` (at most the prompt).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import orjson

from thrifty.providers.openai_message import assistant_message

FINISH_REASONS = {
    "COMPLETE": "stop",
    "STOP_SEQUENCE": "stop",
    "MAX_TOKENS": "length",
    "TOOL_CALL": "tool_calls",
}
FAILED = frozenset({"ERROR", "TIMEOUT"})
P_RANGE = (0.01, 0.99)  # Cohere rejects `p` outside this range; OpenAI's default top_p is 1


class WireError(ValueError):
    """The request cannot be expressed in Cohere's format (the caller's fault: a 400)."""


class CohereFailure(Exception):
    """Cohere answered with ``finish_reason`` ``ERROR`` or ``TIMEOUT``."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason, self.message = reason, message


def _text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            str(p.get("text") or p.get("refusal") or "")
            for p in content
            if isinstance(p, Mapping) and p.get("type") in ("text", "refusal")
        )
    raise WireError("message content must be a string or a list of parts")


def _user_content(content: Any) -> Any:
    if content is None or isinstance(content, str):
        return content or ""
    if not isinstance(content, list):
        raise WireError("message content must be a string or a list of parts")
    parts: list[dict[str, Any]] = []
    for part in content:
        kind = part.get("type") if isinstance(part, Mapping) else None
        if isinstance(part, str) or kind == "text":
            text = part if isinstance(part, str) else part.get("text")
            if text:
                parts.append({"type": "text", "text": text})
        elif kind == "image_url":
            assert isinstance(part, Mapping)
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, Mapping) else image
            if not isinstance(url, str) or not url:
                raise WireError("image_url part without a url")
            entry: dict[str, Any] = {"url": url}
            if isinstance(image, Mapping) and image.get("detail"):
                entry["detail"] = image["detail"]
            parts.append({"type": "image_url", "image_url": entry})
        else:
            raise WireError(f"Cohere does not accept content parts of type {kind!r}")
    return parts


def _tool_calls(calls: Any) -> list[dict[str, Any]]:
    if not isinstance(calls, list):
        raise WireError("assistant tool_calls must be a list")
    out = []
    for call in calls:
        fn = call.get("function") if isinstance(call, Mapping) else None
        if not isinstance(fn, Mapping) or not fn.get("name") or not call.get("id"):
            raise WireError("an assistant tool call needs an id and a function name")
        args = fn.get("arguments")
        if not isinstance(args, str):
            args = orjson.dumps(args if args is not None else {}).decode()
        out.append(
            {
                "id": call["id"],
                "type": "function",
                "function": {"name": fn["name"], "arguments": args},
            }
        )
    return out


def convert_messages(messages: Any) -> list[dict[str, Any]]:
    if not isinstance(messages, list) or not messages:
        raise WireError("messages must be a non-empty list")
    out: list[dict[str, Any]] = []
    for i, msg in enumerate(messages):
        if not isinstance(msg, Mapping):
            raise WireError(f"messages[{i}] must be an object")
        role = msg.get("role")
        if role in ("system", "developer"):
            out.append({"role": "system", "content": _text(msg.get("content"))})
        elif role == "user":
            out.append({"role": "user", "content": _user_content(msg.get("content"))})
        elif role == "assistant":
            entry: dict[str, Any] = {"role": "assistant"}
            text = _text(msg.get("content"))
            if msg.get("tool_calls"):
                entry["tool_calls"] = _tool_calls(msg["tool_calls"])
                if text:
                    entry["tool_plan"] = text
            else:
                entry["content"] = text
            out.append(entry)
        elif role == "tool":
            if not msg.get("tool_call_id"):
                raise WireError(f"messages[{i}]: a tool message needs a tool_call_id")
            out.append(
                {
                    "role": "tool",
                    "tool_call_id": msg["tool_call_id"],
                    "content": _text(msg.get("content")),
                }
            )
        else:
            raise WireError(f"messages[{i}]: unsupported role {role!r}")
    return out


def _tools(tools: Any, only: set[str] | None) -> tuple[list[dict[str, Any]], bool]:
    if not isinstance(tools, list):
        raise WireError("tools must be a list")
    out: list[dict[str, Any]] = []
    strict = False
    for tool in tools:
        fn = tool.get("function") if isinstance(tool, Mapping) else None
        if not isinstance(tool, Mapping) or tool.get("type", "function") != "function":
            raise WireError("Cohere supports function tools only")
        if not isinstance(fn, Mapping) or not isinstance(fn.get("name"), str):
            raise WireError("a function tool needs a name")
        if only is not None and fn["name"] not in only:
            continue
        entry: dict[str, Any] = {"name": fn["name"]}
        for key in ("description", "parameters"):
            if fn.get(key) is not None:
                entry[key] = fn[key]
        strict = strict or fn.get("strict") is True
        out.append({"type": "function", "function": entry})
    return out, strict


def _tool_choice(choice: Any) -> tuple[str | None, set[str] | None]:
    """(Cohere ``tool_choice``, the tool names to keep or None for all)."""
    if choice is None or choice == "auto":
        return None, None
    if choice == "required":
        return "REQUIRED", None
    if choice == "none":
        return "NONE", None
    if isinstance(choice, Mapping) and choice.get("type") == "function":
        name = (choice.get("function") or {}).get("name")
        if not isinstance(name, str) or not name:
            raise WireError("tool_choice.function.name is required")
        return "REQUIRED", {name}
    if isinstance(choice, Mapping) and choice.get("type") == "allowed_tools":
        allowed = choice.get("allowed_tools") or {}
        names = {
            str((t.get("function") or {}).get("name") or t.get("name"))
            for t in allowed.get("tools") or []
            if isinstance(t, Mapping)
        }
        return ("REQUIRED" if allowed.get("mode") == "required" else None), names
    raise WireError(f"unsupported tool_choice {choice!r}")


def to_cohere(body: Mapping[str, Any], model: str) -> dict[str, Any]:
    """The ``/v2/chat`` request body for a canonical OpenAI chat ``body``."""
    n = body.get("n")
    if isinstance(n, int) and n > 1:
        raise WireError("Cohere does not support n > 1")
    request: dict[str, Any] = {"model": model, "messages": convert_messages(body.get("messages"))}
    choice, only = _tool_choice(body.get("tool_choice"))
    if body.get("tools"):
        tools, strict = _tools(body["tools"], only)
        if tools:
            request["tools"] = tools
            if strict:
                request["strict_tools"] = True
            if choice is not None:
                request["tool_choice"] = choice
    max_tokens = body.get("max_completion_tokens")
    if max_tokens is None:
        max_tokens = body.get("max_tokens")
    if max_tokens is not None:
        request["max_tokens"] = max_tokens
    stop = body.get("stop")
    if stop:
        request["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    top_p = body.get("top_p")
    if isinstance(top_p, int | float):
        request["p"] = min(max(float(top_p), P_RANGE[0]), P_RANGE[1])
    for src, dst in (
        ("temperature", "temperature"),
        ("seed", "seed"),
        ("frequency_penalty", "frequency_penalty"),
        ("presence_penalty", "presence_penalty"),
    ):
        if body.get(src) is not None:
            request[dst] = body[src]
    fmt = body.get("response_format")
    if isinstance(fmt, Mapping) and fmt.get("type") in ("json_object", "json_schema"):
        rf: dict[str, Any] = {"type": "json_object"}
        spec = fmt.get("json_schema")
        if isinstance(spec, Mapping) and isinstance(spec.get("schema"), Mapping):
            rf["json_schema"] = spec["schema"]
        request["response_format"] = rf
    return request


def canonical_usage(usage: Mapping[str, Any] | None) -> dict[str, Any]:
    """OpenAI ``usage`` from a Cohere ``usage`` (see the module docstring)."""
    usage = usage or {}
    billed = usage.get("billed_units") or {}
    raw = usage.get("tokens") or {}

    def pick(key: str) -> int:
        for source in (billed, raw):
            value = source.get(key) if isinstance(source, Mapping) else None
            if isinstance(value, int | float) and not isinstance(value, bool):
                return int(value)
        return 0

    prompt, completion = pick("input_tokens"), pick("output_tokens")
    cached_raw = usage.get("cached_tokens")
    cached = int(cached_raw) if isinstance(cached_raw, int | float) else 0
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": min(cached, prompt)},
        "completion_tokens_details": {"reasoning_tokens": 0},
    }


def finish_reason(reason: Any, message: Any = None) -> str:
    """The OpenAI ``finish_reason``; raises ``CohereFailure`` for ``ERROR`` / ``TIMEOUT``."""
    if reason in FAILED:
        raise CohereFailure(str(reason), str(message or f"Cohere finished with {reason}"))
    return FINISH_REASONS.get(str(reason), "stop")


def _arguments(fn: Mapping[str, Any]) -> str:
    args = fn.get("arguments")
    if isinstance(args, str):
        return args
    return orjson.dumps(args if args is not None else {}).decode()


def from_cohere(data: Mapping[str, Any], model: str, created: int | None = None) -> dict[str, Any]:
    """A canonical ``chat.completion`` for a Cohere ``/v2/chat`` response."""
    msg = data.get("message") or {}
    texts = [
        str(p.get("text") or "")
        for p in msg.get("content") or ()
        if isinstance(p, Mapping) and p.get("type") == "text"
    ]
    calls = [
        {
            "id": str(call.get("id") or ""),
            "type": "function",
            "function": {"name": str(fn.get("name") or ""), "arguments": _arguments(fn)},
        }
        for call in msg.get("tool_calls") or ()
        if isinstance(call, Mapping) and isinstance(fn := call.get("function"), Mapping)
    ]
    message = assistant_message(texts, calls)
    return {
        "id": f"chatcmpl-{data.get('id') or ''}",
        "object": "chat.completion",
        "created": created if created is not None else int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": finish_reason(data.get("finish_reason"), data.get("error")),
            }
        ],
        "usage": canonical_usage(data.get("usage")),
        "system_fingerprint": None,
    }
