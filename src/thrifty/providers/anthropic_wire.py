"""OpenAI Chat Completions → Anthropic Messages translation of requests (pure functions, no I/O).

Request (``to_anthropic``), canonical OpenAI body → Anthropic Messages body:

- ``system`` / ``developer`` messages → top-level ``system``, in order: one string joined with
  blank lines, or text blocks when any part carries ``cache_control`` (kept untouched).
  ``response_format: json_object`` appends an instruction to it (Anthropic has no JSON mode);
  ``json_schema`` → ``output_config.format: {"type": "json_schema", "schema"}`` (structured
  outputs).
- ``user`` / ``assistant`` content: strings, text parts, ``image_url`` parts (``data:`` URL →
  base64 source, other URLs → url source), ``file`` parts with a ``data:`` URL → ``document``;
  parts that already look like Anthropic blocks pass through. ``cache_control`` on a part is kept.
  Empty text parts are dropped (Anthropic rejects empty text blocks). ``name`` is dropped.
- assistant ``tool_calls`` → ``tool_use`` blocks, ``arguments`` parsed exactly once. Arguments that
  are not a JSON object (invalid JSON from a model, a list, a number) become
  ``{"_raw": "<the string>"}`` rather than failing the request; ``""`` becomes ``{}``.
- consecutive ``tool`` messages → ``tool_result`` blocks grouped into ONE user turn, before any
  text; then consecutive same-role turns are merged (Anthropic wants alternation).
- ``tools`` → ``{"name", "description", "input_schema", "strict"}``; ``tool_choice`` ``none`` /
  ``auto`` / ``required`` / named / ``allowed_tools`` → ``none`` / ``auto`` / ``any`` / ``tool``;
  ``parallel_tool_calls: false`` → ``disable_parallel_tool_use: true``.
- ``max_completion_tokens`` or ``max_tokens`` → ``max_tokens``, which Anthropic requires: the
  caller's ``default_max_tokens`` (``DEFAULT_MAX_TOKENS`` = 4096) when the body has neither.
- ``stop`` → ``stop_sequences``; ``user`` (else ``safety_identifier``) → ``metadata.user_id``.
- ``temperature`` (clamped to Anthropic's 0-1) and ``top_p`` only when the anthropic-version
  predates ``2026-10-21`` and the model still takes them (``sampling_allowed``); when both are
  given only ``temperature`` is sent (recent Claude models reject the pair). Under
  ``2026-10-21``, and for the models that reject non-default sampling on every request (Claude
  Opus 4.7 and later, every Claude 5 model, Fable and Mythos: ``rejects_sampling``; they answer
  "``temperature`` is deprecated for this model" with a 400), they are dropped silently.
- Anthropic-only fields a client may add (``thinking``, ``top_k``, ``cache_control``,
  ``output_config``, ``inference_geo``, ``speed``) pass through. ``n > 1`` and audio input are
  rejected (``WireError``); ``seed``, ``logprobs``, penalties, ``logit_bias`` are dropped.

``count_tokens_body`` keeps the fields ``/v1/messages/count_tokens`` accepts. The response direction
(``from_anthropic``, ``finish_reason``, ``canonical_usage``) is ``anthropic_response``; the stream
translator is ``anthropic.StreamTranslator``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import orjson

DEFAULT_VERSION = "2023-06-01"
SAMPLING_REMOVED_IN = "2026-10-21"
DEFAULT_MAX_TOKENS = 4096
JSON_OBJECT_INSTRUCTION = (
    "Respond with a single valid JSON object only: no prose, no Markdown code fences."
)

_PASSTHROUGH = ("thinking", "cache_control", "inference_geo", "speed")
_NATIVE_BLOCKS = frozenset({"text", "image", "document", "search_result", "tool_result"})
# count_tokens accepts these fields only.
COUNT_TOKENS_FIELDS = frozenset(
    {"model", "messages", "system", "tools", "tool_choice", "thinking", "output_config"}
    | {"cache_control", "mcp_servers", "speed"}
)


class WireError(ValueError):
    """The request cannot be expressed in Anthropic's format (the caller's fault: a 400)."""


# Claude Opus 4.7+, any Claude 5+ model, and the Fable / Mythos lines (Mythos Preview included),
# as bare ids, dated snapshots or Bedrock / Vertex ids ("us.anthropic.claude-opus-4-7-…-v1:0").
# Opus 4.6 and Sonnet 4.6 still take a temperature (with thinking off) and are not matched.
_NO_SAMPLING = re.compile(
    r"claude-(?:opus-4-(?:[7-9]|\d\d)|(?:opus|sonnet|haiku|fable|mythos)-(?:[5-9]|\d\d)|fable|mythos)"
)


def rejects_sampling(model: str) -> bool:
    """Whether ``model`` rejects ``temperature`` / ``top_p`` / ``top_k`` on every request."""
    return _NO_SAMPLING.search(model.lower()) is not None


def sampling_allowed(version: str, model: str = "") -> bool:
    """Whether ``temperature`` / ``top_p`` / ``top_k`` may be sent under this anthropic-version
    to ``model``."""
    return version < SAMPLING_REMOVED_IN and not rejects_sampling(model)


def parse_arguments(arguments: Any) -> dict[str, Any]:
    """An OpenAI ``function.arguments`` string → a ``tool_use.input`` object (parsed once)."""
    if isinstance(arguments, dict):
        return arguments
    if arguments is None or arguments == "":
        return {}
    text = arguments if isinstance(arguments, str) else str(arguments)
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return {"_raw": text}
    return value if isinstance(value, dict) else {"_raw": text}


# -- request -------------------------------------------------------------------------------


def _text_value(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            str(p.get("text") or "") for p in content if isinstance(p, dict) and "text" in p
        )
    return "" if content is None else str(content)


def _data_url(url: str) -> tuple[str, str] | None:
    """(media_type, base64 data) of a ``data:...;base64,`` URL."""
    if not url.startswith("data:"):
        return None
    header, sep, data = url[5:].partition(",")
    if not sep or not header.endswith(";base64"):
        raise WireError("only base64 data: URLs are supported for images and files")
    return header.removesuffix(";base64") or "application/octet-stream", data


def _with_cache(block: dict[str, Any], part: Mapping[str, Any]) -> dict[str, Any]:
    if "cache_control" in part:
        block["cache_control"] = part["cache_control"]
    return block


def _block(part: Any) -> dict[str, Any] | None:
    """One OpenAI content part → one Anthropic block (``None``: drop it)."""
    if isinstance(part, str):
        return {"type": "text", "text": part} if part else None
    if not isinstance(part, dict):
        raise WireError(f"invalid content part: {part!r}")
    kind = part.get("type")
    if kind in ("text", "refusal"):
        text = part.get("text") if kind == "text" else part.get("refusal")
        if not text:
            return None
        block: dict[str, Any] = {"type": "text", "text": str(text)}
        if kind == "text" and part.get("citations"):
            block["citations"] = part["citations"]
        return _with_cache(block, part)
    if kind == "image_url":
        image = part.get("image_url")
        url = image.get("url") if isinstance(image, dict) else image
        if not isinstance(url, str) or not url:
            raise WireError("image_url part without a url")
        inline = _data_url(url)
        source = (
            {"type": "base64", "media_type": inline[0], "data": inline[1]}
            if inline
            else {"type": "url", "url": url}
        )
        return _with_cache({"type": "image", "source": source}, part)
    if kind == "file":
        file = part.get("file") or {}
        if isinstance(file.get("file_data"), str):
            inline = _data_url(file["file_data"])
            if inline is None:
                raise WireError("file parts need a base64 data: URL in file_data")
            source = {"type": "base64", "media_type": inline[0], "data": inline[1]}
            return _with_cache({"type": "document", "source": source}, part)
        if isinstance(file.get("file_id"), str):
            source = {"type": "file", "file_id": file["file_id"]}
            return _with_cache({"type": "document", "source": source}, part)
        raise WireError("file part without file_data or file_id")
    if kind == "input_audio":
        raise WireError("Anthropic models do not accept audio input")
    if kind in _NATIVE_BLOCKS:
        return dict(part)  # already an Anthropic block: pass it through untouched
    raise WireError(f"unsupported content part type {kind!r}")


def _blocks(content: Any) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    if isinstance(content, list):
        return [b for b in (_block(p) for p in content) if b is not None]
    raise WireError("message content must be a string or a list of parts")


def _tool_result(message: Mapping[str, Any]) -> dict[str, Any]:
    call_id = message.get("tool_call_id")
    if not isinstance(call_id, str) or not call_id:
        raise WireError("a tool message needs a tool_call_id")
    content = message.get("content")
    result: dict[str, Any] = {"type": "tool_result", "tool_use_id": call_id}
    if isinstance(content, list):
        result["content"] = _blocks(content)
    else:
        result["content"] = _text_value(content)
    return result


def _assistant_blocks(message: Mapping[str, Any]) -> list[dict[str, Any]]:
    blocks = _blocks(message.get("content"))
    if not blocks and isinstance(message.get("refusal"), str) and message["refusal"]:
        blocks.append({"type": "text", "text": message["refusal"]})
    for call in message.get("tool_calls") or ():
        fn = (call.get("function") or {}) if isinstance(call, dict) else {}
        if not isinstance(fn.get("name"), str) or not isinstance(call.get("id"), str):
            raise WireError("an assistant tool call needs an id and a function name")
        blocks.append(
            {
                "type": "tool_use",
                "id": call["id"],
                "name": fn["name"],
                "input": parse_arguments(fn.get("arguments")),
            }
        )
    return blocks


def _system(messages: list[Any], response_format: Any) -> str | list[dict[str, Any]] | None:
    contents = [m.get("content") for m in messages if m.get("role") in ("system", "developer")]
    rf_type = response_format.get("type") if isinstance(response_format, dict) else None
    if rf_type == "json_object":
        contents.append(JSON_OBJECT_INSTRUCTION)
    if not contents:
        return None
    blocks: list[dict[str, Any]] = []
    for c in contents:
        for block in _blocks(c):
            if block["type"] != "text":
                raise WireError("system messages may only contain text")
            blocks.append(block)
    if all(set(b) == {"type", "text"} for b in blocks):
        return "\n\n".join(b["text"] for b in blocks) or None
    return blocks or None


def _turns(messages: list[Any]) -> list[dict[str, Any]]:
    """user/assistant/tool messages → alternating Anthropic turns (tool results first)."""
    turns: list[dict[str, Any]] = []
    for i, m in enumerate(messages):
        role = m.get("role")
        if role in ("system", "developer"):
            continue
        if role == "user":
            anth_role, blocks = "user", _blocks(m.get("content"))
            if not blocks and isinstance(m.get("content"), str):
                blocks = [{"type": "text", "text": m["content"]}]  # let upstream judge ""
        elif role == "assistant":
            anth_role, blocks = "assistant", _assistant_blocks(m)
            if not blocks:
                continue  # an empty assistant turn carries nothing
        elif role == "tool":
            anth_role, blocks = "user", [_tool_result(m)]
        else:
            raise WireError(f"messages[{i}]: unsupported role {role!r}")
        if turns and turns[-1]["role"] == anth_role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": anth_role, "content": blocks})
    for turn in turns:
        if turn["role"] == "user":
            content = turn["content"]
            results = [b for b in content if b.get("type") == "tool_result"]
            if results:
                turn["content"] = results + [b for b in content if b.get("type") != "tool_result"]
        if (
            len(turn["content"]) == 1
            and turn["content"][0].get("type") == "text"
            and set(turn["content"][0]) == {"type", "text"}
        ):
            turn["content"] = turn["content"][0]["text"]  # the compact string form
    return turns


def _tools(tools: Any, allowed: set[str] | None) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for tool in tools or ():
        if not isinstance(tool, dict):
            raise WireError("each tool must be an object")
        fn = tool.get("function")
        if tool.get("type", "function") == "function" and isinstance(fn, dict):
            name = fn.get("name")
            if not isinstance(name, str):
                raise WireError("a function tool needs a name")
            if allowed is not None and name not in allowed:
                continue
            schema = fn.get("parameters") or {"type": "object", "properties": {}}
            entry: dict[str, Any] = {"name": name, "input_schema": schema}
            if fn.get("description"):
                entry["description"] = fn["description"]
            if isinstance(fn.get("strict"), bool):
                entry["strict"] = fn["strict"]
            out.append(_with_cache(entry, tool))
        elif "name" in tool and "function" not in tool:
            out.append(dict(tool))  # an Anthropic tool (server tools have their own type)
        else:
            raise WireError(f"unsupported tool type {tool.get('type')!r}")
    return out


def _tool_choice(choice: Any, parallel: Any) -> tuple[dict[str, Any] | None, set[str] | None]:
    """(Anthropic tool_choice, names allowed by an ``allowed_tools`` choice)."""
    allowed: set[str] | None = None
    result: dict[str, Any] | None
    if choice is None:
        result = None
    elif choice == "none":
        return {"type": "none"}, None
    elif choice == "auto":
        result = {"type": "auto"}
    elif choice == "required":
        result = {"type": "any"}
    elif isinstance(choice, dict) and choice.get("type") == "function":
        name = (choice.get("function") or {}).get("name")
        if not isinstance(name, str):
            raise WireError("tool_choice.function.name is required")
        result = {"type": "tool", "name": name}
    elif isinstance(choice, dict) and choice.get("type") == "allowed_tools":
        spec = choice.get("allowed_tools") or {}
        allowed = {
            str((t.get("function") or {}).get("name") or t.get("name"))
            for t in spec.get("tools") or ()
            if isinstance(t, dict)
        }
        result = {"type": "any" if spec.get("mode") == "required" else "auto"}
    elif isinstance(choice, dict) and choice.get("type") in ("auto", "any", "tool", "none"):
        result = dict(choice)  # already Anthropic-shaped
    else:
        raise WireError(f"unsupported tool_choice {choice!r}")
    if parallel is False:
        result = {**(result or {"type": "auto"}), "disable_parallel_tool_use": True}
    return result, allowed


def to_anthropic(
    body: Mapping[str, Any],
    model: str,
    *,
    version: str = DEFAULT_VERSION,
    default_max_tokens: int = DEFAULT_MAX_TOKENS,
) -> dict[str, Any]:
    """A canonical OpenAI chat body → an Anthropic Messages body (see the module docstring).
    Raises ``WireError`` for what Anthropic cannot express."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        raise WireError("messages must be a list of objects")
    n = body.get("n")
    if n is not None and n != 1:
        raise WireError("Anthropic models do not support n > 1")
    out: dict[str, Any] = {"model": model}
    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
    out["max_tokens"] = max_tokens if isinstance(max_tokens, int) else default_max_tokens
    response_format = body.get("response_format")
    system = _system(messages, response_format)
    if system is not None:
        out["system"] = system
    out["messages"] = _turns(messages)
    choice, allowed = _tool_choice(body.get("tool_choice"), body.get("parallel_tool_calls"))
    tools = _tools(body.get("tools"), allowed)
    if tools:
        out["tools"] = tools
        if choice is not None:
            out["tool_choice"] = choice
    stop = body.get("stop")
    if isinstance(stop, str):
        out["stop_sequences"] = [stop]
    elif isinstance(stop, list) and stop:
        out["stop_sequences"] = [str(s) for s in stop]
    if sampling_allowed(version, model):
        temperature = body.get("temperature")
        if isinstance(temperature, int | float):
            out["temperature"] = min(max(float(temperature), 0.0), 1.0)
        elif isinstance(body.get("top_p"), int | float):
            out["top_p"] = body["top_p"]
        if isinstance(body.get("top_k"), int):
            out["top_k"] = body["top_k"]
    user = body.get("user") or body.get("safety_identifier")
    if isinstance(user, str) and user:
        out["metadata"] = {"user_id": user}
    output_config = dict(body.get("output_config") or {})
    if isinstance(response_format, dict) and response_format.get("type") == "json_schema":
        spec = response_format.get("json_schema") or {}
        schema = spec.get("schema") if isinstance(spec, dict) else None
        output_config["format"] = {"type": "json_schema", "schema": schema or {"type": "object"}}
    if output_config:
        out["output_config"] = output_config
    for key in _PASSTHROUGH:
        if key in body:
            out[key] = body[key]
    if body.get("stream") is True:
        out["stream"] = True
    return out


def count_tokens_body(anthropic_body: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of a Messages body that ``/v1/messages/count_tokens`` accepts."""
    return {k: v for k, v in anthropic_body.items() if k in COUNT_TOKENS_FIELDS}
