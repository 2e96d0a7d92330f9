"""Canonical OpenAI chat body → Bedrock Converse request body (pure, no I/O).

What maps (see WIRE_FORMATS §3 "OpenAI ⇄ Bedrock mapping"):

- ``system`` / ``developer`` messages → top-level ``system: [{"text"}]`` (in order);
- ``user`` / ``assistant`` content (a string or parts) → ``content`` blocks: ``text``, ``image``
  (``data:`` URLs only → ``image.source.bytes`` base64 + ``format``), ``file`` (``data:`` URL →
  ``document``), ``refusal`` → text; blank text is dropped (Bedrock rejects it);
- assistant ``tool_calls`` → ``toolUse {toolUseId, name, input}``: ``arguments`` is parsed once;
  an argument string that is not a JSON object is sent as ``{"arguments": "<the string>"}``
  (``{}`` when blank) instead of failing the request;
- ``tool`` messages → ``toolResult`` blocks in a **user** turn; consecutive same-role turns are
  merged (tool results first, then any user text of the same turn), so roles alternate;
- ``cache_control`` on a content part, a message or a tool → a ``cachePoint`` block after it;
- ``max_completion_tokens`` / ``max_tokens``, ``temperature``, ``top_p``, ``stop`` →
  ``inferenceConfig``; ``tools`` → ``toolConfig.tools[].toolSpec``; ``tool_choice`` ``auto`` /
  ``required`` / named → ``auto`` / ``any`` / ``tool``; ``none`` drops ``toolConfig`` unless the
  history holds tool blocks (Bedrock then requires it; tools only named in the history get a
  minimal ``toolSpec``).

Converse has no field for unknown OpenAI parameters, so they are dropped (``seed``,
``logprobs``, ``user``, ``parallel_tool_calls``, ``reasoning_effort``, ...). Converse's own
top-level fields found in the body (``additionalModelRequestFields``, ``guardrailConfig``,
``performanceConfig``, ``requestMetadata``, ...) are passed through unchanged. ``n > 1``,
non-text ``response_format``, remote image URLs and non-function tools are refused with
``ConverseRequestError`` (a 400 for the client).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote_to_bytes

import orjson

__all__ = ["PASS_THROUGH", "ConverseRequestError", "to_converse"]

PASS_THROUGH = (
    "additionalModelRequestFields",
    "additionalModelResponseFieldPaths",
    "guardrailConfig",
    "performanceConfig",
    "promptVariables",
    "requestMetadata",
    "serviceTier",
)
_CACHE_POINT: dict[str, Any] = {"cachePoint": {"type": "default"}}
_IMAGE_FORMATS = {
    "image/png": "png",
    "image/jpeg": "jpeg",
    "image/jpg": "jpeg",
    "image/gif": "gif",
    "image/webp": "webp",
}
_DOCUMENT_FORMATS = {
    "application/pdf": "pdf",
    "text/csv": "csv",
    "application/msword": "doc",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "docx",
    "application/vnd.ms-excel": "xls",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "xlsx",
    "text/html": "html",
    "text/plain": "txt",
    "text/markdown": "md",
}
_DATA_URL = re.compile(
    r"data:(?P<mime>[\w.+-]+/[\w.+-]+)?(?P<params>(;[^,;]*)*?),(?P<data>.*)", re.S
)
_BAD_NAME_CHARS = re.compile(r"[^A-Za-z0-9()\[\]-]+")


class ConverseRequestError(ValueError):
    """The OpenAI body cannot be expressed as a Converse request (the client's fault)."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


def _data_url(url: str, param: str) -> tuple[str, str]:
    """(mime type, base64 data) of a ``data:`` URL."""
    m = _DATA_URL.fullmatch(url.strip())
    if m is None:
        raise ConverseRequestError(
            "Bedrock needs inline data: only data: URLs are supported, not remote URLs.", param
        )
    mime = (m.group("mime") or "text/plain").lower()
    data = m.group("data")
    if ";base64" in m.group("params").lower():
        data = "".join(data.split())
        try:
            base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            raise ConverseRequestError("The data: URL is not valid base64.", param) from None
        return mime, data
    return mime, base64.b64encode(unquote_to_bytes(data)).decode("ascii")


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _part_blocks(part: Any, param: str) -> list[dict[str, Any]]:
    if isinstance(part, str):
        return [{"text": part}] if part.strip() else []
    if not isinstance(part, Mapping):
        raise ConverseRequestError("A content part must be an object.", param)
    kind = part.get("type")
    blocks: list[dict[str, Any]]
    if kind in ("text", "refusal", "input_text", "output_text"):
        text = _text(part.get("text") if kind != "refusal" else part.get("refusal"))
        blocks = [{"text": text}] if text.strip() else []
    elif kind == "image_url":
        image = part.get("image_url")
        url = image.get("url") if isinstance(image, Mapping) else image
        if not isinstance(url, str):
            raise ConverseRequestError("image_url.url must be a string.", param)
        mime, data = _data_url(url, param)
        fmt = _IMAGE_FORMATS.get(mime)
        if fmt is None:
            raise ConverseRequestError(f"Bedrock does not support images of type {mime}.", param)
        blocks = [{"image": {"format": fmt, "source": {"bytes": data}}}]
    elif kind == "file":
        blocks = [_document_block(part.get("file"), param)]
    else:
        raise ConverseRequestError(f"Content parts of type {kind!r} are not supported.", param)
    if blocks and part.get("cache_control"):
        blocks.append(dict(_CACHE_POINT))
    return blocks


def _document_block(file: Any, param: str) -> dict[str, Any]:
    if not isinstance(file, Mapping) or not isinstance(file.get("file_data"), str):
        raise ConverseRequestError("Files must be sent inline as file.file_data.", param)
    mime, data = _data_url(file["file_data"], param)
    fmt = _DOCUMENT_FORMATS.get(mime)
    if fmt is None:
        raise ConverseRequestError(f"Bedrock does not support documents of type {mime}.", param)
    stem = _text(file.get("filename")).rsplit(".", 1)[0]
    name = " ".join(_BAD_NAME_CHARS.sub(" ", stem).split())[:200] or "document"
    return {"document": {"format": fmt, "name": name, "source": {"bytes": data}}}


def _content_blocks(content: Any, param: str) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"text": content}] if content.strip() else []
    if isinstance(content, list):
        blocks: list[dict[str, Any]] = []
        for i, part in enumerate(content):
            blocks.extend(_part_blocks(part, f"{param}[{i}]"))
        return blocks
    raise ConverseRequestError("content must be a string or an array of parts.", param)


def _tool_input(arguments: Any) -> Any:
    if isinstance(arguments, Mapping):
        return dict(arguments)
    text = _text(arguments)
    if not text.strip():
        return {}
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return {"arguments": text}
    return value if isinstance(value, dict) else {"arguments": text}


def _tool_uses(message: Mapping[str, Any], param: str) -> list[dict[str, Any]]:
    calls = message.get("tool_calls")
    if not calls:
        return []
    if not isinstance(calls, list):
        raise ConverseRequestError("tool_calls must be an array.", f"{param}.tool_calls")
    blocks = []
    for i, call in enumerate(calls):
        fn = call.get("function") if isinstance(call, Mapping) else None
        if not isinstance(fn, Mapping) or not isinstance(fn.get("name"), str):
            raise ConverseRequestError(
                "A tool call needs function.name.", f"{param}.tool_calls[{i}]"
            )
        blocks.append(
            {
                "toolUse": {
                    "toolUseId": str(call.get("id") or f"tooluse_{i}"),
                    "name": fn["name"],
                    "input": _tool_input(fn.get("arguments")),
                }
            }
        )
    return blocks


def _tool_result(message: Mapping[str, Any], param: str) -> dict[str, Any]:
    tool_call_id = message.get("tool_call_id")
    if not isinstance(tool_call_id, str) or not tool_call_id:
        raise ConverseRequestError("A tool message needs tool_call_id.", f"{param}.tool_call_id")
    content = message.get("content")
    blocks = [
        b for b in _content_blocks(content, f"{param}.content") if "text" in b or "image" in b
    ]
    if not blocks:
        blocks = [{"text": _text(content) or "(empty)"}]
    return {"toolResult": {"toolUseId": tool_call_id, "content": blocks}}


def _turns(messages: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(system blocks, merged alternating message turns)."""
    if not isinstance(messages, list):
        raise ConverseRequestError("messages must be an array.", "messages")
    system: list[dict[str, Any]] = []
    turns: list[dict[str, Any]] = []
    for i, message in enumerate(messages):
        param = f"messages[{i}]"
        if not isinstance(message, Mapping):
            raise ConverseRequestError("A message must be an object.", param)
        role = message.get("role")
        cache = [dict(_CACHE_POINT)] if message.get("cache_control") else []
        if role in ("system", "developer"):
            blocks = _content_blocks(message.get("content"), f"{param}.content")
            if any("text" not in b and "cachePoint" not in b for b in blocks):
                raise ConverseRequestError("System messages may only contain text.", param)
            system.extend(blocks + cache if blocks else [])
            continue
        if role == "user":
            target, blocks = "user", _content_blocks(message.get("content"), f"{param}.content")
        elif role == "assistant":
            target = "assistant"
            blocks = _content_blocks(message.get("content"), f"{param}.content")
            blocks += _tool_uses(message, param)
        elif role == "tool":
            target, blocks = "user", [_tool_result(message, param)]
        else:
            raise ConverseRequestError(f"Messages with role {role!r} are not supported.", param)
        if not blocks:
            continue
        blocks += cache
        if turns and turns[-1]["role"] == target:
            merged = turns[-1]["content"] + blocks
            # tool results lead their user turn (they answer the previous assistant turn)
            merged.sort(key=lambda b: 0 if "toolResult" in b else 1)
            turns[-1]["content"] = merged
        else:
            turns.append({"role": target, "content": blocks})
    return system, turns


def _inference_config(body: Mapping[str, Any]) -> dict[str, Any]:
    config: dict[str, Any] = {}
    max_tokens = body.get("max_completion_tokens")
    if max_tokens is None:
        max_tokens = body.get("max_tokens")
    if max_tokens is not None:
        config["maxTokens"] = max_tokens
    if body.get("temperature") is not None:
        config["temperature"] = body["temperature"]
    if body.get("top_p") is not None:
        config["topP"] = body["top_p"]
    stop = body.get("stop")
    if isinstance(stop, str):
        config["stopSequences"] = [stop]
    elif isinstance(stop, list) and stop:
        config["stopSequences"] = list(stop)
    return config


def _tool_config(body: Mapping[str, Any], turns: list[dict[str, Any]]) -> dict[str, Any] | None:
    tools = body.get("tools") or []
    if not isinstance(tools, list):
        raise ConverseRequestError("tools must be an array.", "tools")
    specs: list[dict[str, Any]] = []
    names: set[str] = set()
    for i, tool in enumerate(tools):
        fn = tool.get("function") if isinstance(tool, Mapping) else None
        if not isinstance(tool, Mapping) or tool.get("type", "function") != "function":
            raise ConverseRequestError("Only function tools are supported.", f"tools[{i}]")
        if not isinstance(fn, Mapping) or not isinstance(fn.get("name"), str):
            raise ConverseRequestError("A tool needs function.name.", f"tools[{i}].function")
        spec: dict[str, Any] = {
            "name": fn["name"],
            "inputSchema": {"json": fn.get("parameters") or {"type": "object", "properties": {}}},
        }
        if fn.get("description"):
            spec["description"] = fn["description"]
        if isinstance(fn.get("strict"), bool):
            spec["strict"] = fn["strict"]
        specs.append({"toolSpec": spec})
        if tool.get("cache_control"):
            specs.append(dict(_CACHE_POINT))
        names.add(fn["name"])
    used = [b["toolUse"]["name"] for t in turns for b in t["content"] if "toolUse" in b]
    in_history = bool(used) or any("toolResult" in b for t in turns for b in t["content"])
    choice = body.get("tool_choice")
    if (not specs or choice == "none") and not in_history:
        return None
    for name in used:  # Bedrock wants every tool named in the history to be declared
        if name not in names:
            names.add(name)
            specs.append({"toolSpec": {"name": name, "inputSchema": {"json": {"type": "object"}}}})
    if not specs:
        return None
    config: dict[str, Any] = {"tools": specs}
    if choice == "auto":
        config["toolChoice"] = {"auto": {}}
    elif choice == "required":
        config["toolChoice"] = {"any": {}}
    elif isinstance(choice, Mapping) and choice.get("type") == "function":
        name = (choice.get("function") or {}).get("name")
        if not isinstance(name, str):
            raise ConverseRequestError("tool_choice.function.name is required.", "tool_choice")
        config["toolChoice"] = {"tool": {"name": name}}
    return config


def to_converse(body: Mapping[str, Any]) -> dict[str, Any]:
    """The Converse request for a canonical chat body (``model`` and ``stream`` are not part of
    it: the model goes in the URL, streaming is the endpoint). Raises ``ConverseRequestError``."""
    n = body.get("n")
    if isinstance(n, int) and n > 1:
        raise ConverseRequestError("Bedrock returns one choice: n must be 1.", "n")
    fmt = body.get("response_format")
    if isinstance(fmt, Mapping) and fmt.get("type") not in (None, "text"):
        raise ConverseRequestError(
            "response_format is not supported by Bedrock Converse.", "response_format"
        )
    system, turns = _turns(body.get("messages"))
    request: dict[str, Any] = {"messages": turns}
    if system:
        request["system"] = system
    inference = _inference_config(body)
    if inference:
        request["inferenceConfig"] = inference
    tool_config = _tool_config(body, turns)
    if tool_config is not None:
        request["toolConfig"] = tool_config
    for key in PASS_THROUGH:
        if body.get(key) is not None:
            request[key] = body[key]
    return request
