"""Canonical OpenAI chat body → Gemini ``generateContent`` request (pure functions, no I/O).

- ``system`` / ``developer`` messages → ``systemInstruction.parts`` (in order, wherever they are).
- ``user`` → role ``user``; ``assistant`` → role ``model``; consecutive same-role turns merge.
  Content parts: text; ``image_url`` (``data:`` URL → ``inlineData``, other URLs → ``fileData``);
  ``input_audio`` → ``inlineData``; ``file`` with a ``data:`` URL → ``inlineData``. Empty text is
  dropped (Gemini rejects empty text parts).
- assistant ``tool_calls`` → ``functionCall {name, args}`` parts; ``arguments`` is parsed exactly
  once, and anything that is not a JSON object becomes ``{"_raw": "<string>"}``. The part gets the
  call's ``thoughtSignature`` back: from ``tool_calls[].extra_content.google.thought_signature``
  (the convention of Google's own OpenAI-compatible endpoint), else from the adapter's
  ``SignatureStash``; for Gemini 3 models a first call with neither gets Google's documented
  placeholder signature so the request is not rejected.
- ``tool`` messages → ``functionResponse {name, response}`` in a ``user`` turn. Gemini matches
  results by *name*, so the name is looked up from the earlier assistant tool call with that
  ``tool_call_id``. ``response`` must be an object: JSON objects pass as they are, anything else
  is wrapped as ``{"result": value}``. No ``id`` is sent (Gemini's ids are optional).
- ``tools`` → one ``{"functionDeclarations": [...]}`` with ``parametersJsonSchema`` (full JSON
  Schema); ``tool_choice`` ``auto`` / ``required`` / named / ``none`` / ``allowed_tools`` →
  ``functionCallingConfig`` ``AUTO`` / ``ANY`` / ``ANY`` + ``allowedFunctionNames`` / ``NONE`` /
  ``VALIDATED`` or ``ANY`` + names.
- ``generationConfig``: ``max_completion_tokens`` (else ``max_tokens``) → ``maxOutputTokens``,
  ``temperature``, ``top_p`` → ``topP``, ``stop`` → ``stopSequences``, ``n`` → ``candidateCount``,
  ``seed``, penalties, ``response_format`` → ``responseMimeType`` (+ ``responseJsonSchema``),
  ``reasoning_effort`` → ``thinkingConfig`` (``thinkingLevel`` on Gemini 3, else
  ``thinkingBudget``).

A body that cannot be expressed raises ``WireError`` (the caller's fault: a 400).
"""

from __future__ import annotations

import base64
import mimetypes
import urllib.parse
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import orjson

# Google's documented value for a functionCall whose real signature is unknown (history from
# another model or from a client that dropped it); it skips the Gemini 3 signature check.
PLACEHOLDER_SIGNATURE = "context_engineering_is_the_way_to_go"

# reasoning_effort → thinkingBudget (Gemini 2.5) / thinkingLevel (Gemini 3), as Google's
# OpenAI-compatible endpoint maps them.
THINKING_BUDGETS = {"none": 0, "minimal": 0, "low": 1024, "medium": 8192, "high": 24576}
THINKING_LEVELS = {"none": "low", "minimal": "low", "low": "low", "medium": "high", "high": "high"}


class WireError(ValueError):
    """The request cannot be expressed in Gemini's format (the caller's fault: a 400)."""


class SignatureStash:
    """``thoughtSignature``s keyed by the OpenAI tool_call id they were returned with.

    Bounded (least recently used entries go first); lives as long as the adapter, so a client
    that drops ``extra_content`` still gets its signatures back within one gateway process.
    """

    def __init__(self, maxsize: int = 20_000) -> None:
        self.maxsize = maxsize
        self._items: OrderedDict[str, str] = OrderedDict()

    def put(self, call_id: str, signature: str) -> None:
        self._items[call_id] = signature
        self._items.move_to_end(call_id)
        while len(self._items) > self.maxsize:
            self._items.popitem(last=False)

    def get(self, call_id: str) -> str | None:
        found = self._items.get(call_id)
        if found is not None:
            self._items.move_to_end(call_id)
        return found

    def __len__(self) -> int:
        return len(self._items)


def is_gemini3(model: str) -> bool:
    """Whether ``model`` enforces thought signatures on function calls (Gemini 3 and later)."""
    bare = model.rsplit("/", 1)[-1].lower()
    return bare.startswith("gemini-") and bare[7:8].isdigit() and int(bare[7:8]) >= 3


def text_of(content: Any) -> str:
    """The text of a message ``content``: a string or a list of text / refusal parts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        out: list[str] = []
        for part in content:
            if isinstance(part, str):
                out.append(part)
            elif isinstance(part, Mapping) and part.get("type") in ("text", "refusal"):
                out.append(str(part.get("text") or part.get("refusal") or ""))
        return "".join(out)
    raise WireError("message content must be a string or a list of parts")


def parse_arguments(arguments: Any) -> dict[str, Any]:
    """OpenAI ``function.arguments`` (a JSON string) → Gemini ``args`` (an object), parsed once."""
    if isinstance(arguments, Mapping):
        return dict(arguments)
    if arguments is None or arguments == "":
        return {}
    text = str(arguments)
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return {"_raw": text}
    return value if isinstance(value, dict) else {"_raw": text}


def data_url(url: str) -> tuple[str, str] | None:
    """``(mime type, base64 data)`` of a ``data:`` URL, or None for other URLs."""
    if not url.startswith("data:"):
        return None
    header, sep, payload = url[5:].partition(",")
    if not sep:
        raise WireError("malformed data: URL")
    fields = header.split(";")
    mime = fields[0] or "text/plain"
    if "base64" in fields[1:]:
        return mime, payload.strip()
    raw = urllib.parse.unquote_to_bytes(payload)
    return mime, base64.b64encode(raw).decode("ascii")


def _media_part(url: str) -> dict[str, Any]:
    found = data_url(url)
    if found is not None:
        return {"inlineData": {"mimeType": found[0], "data": found[1]}}
    mime = mimetypes.guess_type(urllib.parse.urlsplit(url).path)[0] or "image/jpeg"
    return {"fileData": {"mimeType": mime, "fileUri": url}}


def _part(part: Any) -> dict[str, Any] | None:
    if isinstance(part, str):
        return {"text": part} if part else None
    if not isinstance(part, Mapping):
        raise WireError(f"invalid content part: {part!r}")
    kind = part.get("type")
    if kind == "text":
        text = part.get("text")
        return {"text": text} if text else None
    if kind == "image_url":
        image = part.get("image_url")
        url = image.get("url") if isinstance(image, Mapping) else image
        if not isinstance(url, str) or not url:
            raise WireError("image_url part without a url")
        return _media_part(url)
    if kind == "input_audio":
        audio = part.get("input_audio") or {}
        fmt = str(audio.get("format") or "wav")
        return {"inlineData": {"mimeType": f"audio/{fmt}", "data": str(audio.get("data") or "")}}
    if kind == "file":
        file = part.get("file") or {}
        data = file.get("file_data")
        if isinstance(data, str) and data.startswith("data:"):
            return _media_part(data)
        raise WireError("file parts need a base64 data: URL in file_data")
    raise WireError(f"unsupported content part type {kind!r}")


def _user_parts(content: Any) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"text": content}] if content else []
    if isinstance(content, list):
        return [p for p in map(_part, content) if p is not None]
    raise WireError("message content must be a string or a list of parts")


def _signature_of(call: Mapping[str, Any]) -> str | None:
    extra = call.get("extra_content")
    google = extra.get("google") if isinstance(extra, Mapping) else None
    sig = google.get("thought_signature") if isinstance(google, Mapping) else None
    return sig if isinstance(sig, str) and sig else None


def _model_parts(
    message: Mapping[str, Any],
    names: dict[str, str],
    stash: SignatureStash | None,
    placeholder: bool,
) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    text = text_of(message.get("content"))
    if text:
        parts.append({"text": text})
    calls = message.get("tool_calls") or []
    if not isinstance(calls, list):
        raise WireError("assistant tool_calls must be a list")
    for k, call in enumerate(calls):
        fn = call.get("function") if isinstance(call, Mapping) else None
        name = fn.get("name") if isinstance(fn, Mapping) else None
        if not isinstance(name, str) or not name:
            raise WireError("an assistant tool call needs a function name")
        assert isinstance(call, Mapping) and isinstance(fn, Mapping)
        call_id = call.get("id")
        part: dict[str, Any] = {
            "functionCall": {"name": name, "args": parse_arguments(fn.get("arguments"))}
        }
        sig = _signature_of(call)
        if sig is None and isinstance(call_id, str) and stash is not None:
            sig = stash.get(call_id)
        if sig is None and placeholder and k == 0:
            sig = PLACEHOLDER_SIGNATURE
        if sig is not None:
            part["thoughtSignature"] = sig
        if isinstance(call_id, str):
            names[call_id] = name
        parts.append(part)
    return parts


def _function_response(message: Mapping[str, Any], names: Mapping[str, str], i: int) -> Any:
    call_id = message.get("tool_call_id")
    name = names.get(call_id) if isinstance(call_id, str) else None
    name = name or message.get("name")
    if not isinstance(name, str) or not name:
        raise WireError(
            f"messages[{i}]: tool_call_id {call_id!r} does not match an earlier assistant tool "
            "call (Gemini needs the function name of every tool result)"
        )
    text = text_of(message.get("content"))
    try:
        value: Any = orjson.loads(text) if text else ""
    except orjson.JSONDecodeError:
        value = text
    response = value if isinstance(value, dict) else {"result": value}
    return {"functionResponse": {"name": name, "response": response}}


def convert_messages(
    messages: Any, model: str, stash: SignatureStash | None = None
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``(systemInstruction parts, contents)`` for OpenAI ``messages``."""
    if not isinstance(messages, list) or not messages:
        raise WireError("messages must be a non-empty list")
    system: list[dict[str, Any]] = []
    contents: list[dict[str, Any]] = []
    names: dict[str, str] = {}
    placeholder = is_gemini3(model)

    def add(role: str, parts: list[dict[str, Any]]) -> None:
        if not parts:
            return
        if contents and contents[-1]["role"] == role:
            contents[-1]["parts"].extend(parts)
        else:
            contents.append({"role": role, "parts": parts})

    for i, message in enumerate(messages):
        if not isinstance(message, Mapping):
            raise WireError(f"messages[{i}] must be an object")
        role = message.get("role")
        if role in ("system", "developer"):
            text = text_of(message.get("content"))
            if text:
                system.append({"text": text})
        elif role == "user":
            add("user", _user_parts(message.get("content")))
        elif role == "assistant":
            add("model", _model_parts(message, names, stash, placeholder))
        elif role in ("tool", "function"):
            add("user", [_function_response(message, names, i)])
        else:
            raise WireError(f"messages[{i}]: unsupported role {role!r}")
    if not contents:
        raise WireError("Gemini needs at least one user or assistant message with content")
    return system, contents


def convert_tools(tools: Any) -> list[dict[str, Any]]:
    """OpenAI ``tools`` → Gemini ``tools`` (one ``functionDeclarations`` entry)."""
    if tools is None:
        return []
    if not isinstance(tools, list):
        raise WireError("tools must be a list")
    decls: list[dict[str, Any]] = []
    for tool in tools:
        if not isinstance(tool, Mapping):
            raise WireError("each tool must be an object")
        if tool.get("type", "function") != "function":
            raise WireError(f"unsupported tool type {tool.get('type')!r}")
        fn = tool.get("function")
        if not isinstance(fn, Mapping) or not isinstance(fn.get("name"), str):
            raise WireError("a function tool needs a name")
        decl: dict[str, Any] = {"name": fn["name"]}
        if fn.get("description"):
            decl["description"] = fn["description"]
        if isinstance(fn.get("parameters"), Mapping):
            decl["parametersJsonSchema"] = fn["parameters"]
        decls.append(decl)
    return [{"functionDeclarations": decls}] if decls else []


def convert_tool_choice(choice: Any) -> dict[str, Any] | None:
    """OpenAI ``tool_choice`` → Gemini ``toolConfig`` (None: the default, ``AUTO``)."""
    if choice is None or choice == "auto":
        return None
    modes = {"none": "NONE", "required": "ANY"}
    if isinstance(choice, str) and choice in modes:
        return {"functionCallingConfig": {"mode": modes[choice]}}
    if isinstance(choice, Mapping):
        if choice.get("type") == "function":
            name = (choice.get("function") or {}).get("name")
            if not isinstance(name, str) or not name:
                raise WireError("tool_choice.function.name is required")
            return {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": [name]}}
        if choice.get("type") == "allowed_tools":
            allowed = choice.get("allowed_tools") or {}
            names = [
                (t.get("function") or {}).get("name") or t.get("name")
                for t in allowed.get("tools") or []
                if isinstance(t, Mapping)
            ]
            mode = "ANY" if allowed.get("mode") == "required" else "VALIDATED"
            config: dict[str, Any] = {"mode": mode}
            if names:
                config["allowedFunctionNames"] = [n for n in names if isinstance(n, str)]
            return {"functionCallingConfig": config}
    raise WireError(f"unsupported tool_choice {choice!r}")


def generation_config(body: Mapping[str, Any], model: str) -> dict[str, Any]:
    """The ``generationConfig`` for an OpenAI body (only the fields it sets)."""
    g: dict[str, Any] = {}
    max_tokens = body.get("max_completion_tokens")
    if max_tokens is None:
        max_tokens = body.get("max_tokens")
    if max_tokens is not None:
        g["maxOutputTokens"] = max_tokens
    for src, dst in (
        ("temperature", "temperature"),
        ("top_p", "topP"),
        ("seed", "seed"),
        ("presence_penalty", "presencePenalty"),
        ("frequency_penalty", "frequencyPenalty"),
    ):
        if body.get(src) is not None:
            g[dst] = body[src]
    stop = body.get("stop")
    if isinstance(stop, str):
        g["stopSequences"] = [stop]
    elif isinstance(stop, list) and stop:
        g["stopSequences"] = list(stop)
    n = body.get("n")
    if isinstance(n, int) and n > 1:
        g["candidateCount"] = n
    fmt = body.get("response_format")
    if isinstance(fmt, Mapping):
        if fmt.get("type") == "json_object":
            g["responseMimeType"] = "application/json"
        elif fmt.get("type") == "json_schema":
            g["responseMimeType"] = "application/json"
            spec = fmt.get("json_schema") or {}
            if isinstance(spec.get("schema"), Mapping):
                g["responseJsonSchema"] = spec["schema"]
    effort = body.get("reasoning_effort")
    if isinstance(effort, str):
        if is_gemini3(model) and effort in THINKING_LEVELS:
            g["thinkingConfig"] = {"thinkingLevel": THINKING_LEVELS[effort]}
        elif effort in THINKING_BUDGETS:
            g["thinkingConfig"] = {"thinkingBudget": THINKING_BUDGETS[effort]}
    return g


def to_gemini(
    body: Mapping[str, Any], model: str, stash: SignatureStash | None = None
) -> dict[str, Any]:
    """The ``generateContent`` request body for a canonical OpenAI chat ``body``."""
    system, contents = convert_messages(body.get("messages"), model, stash)
    request: dict[str, Any] = {"contents": contents}
    if system:
        request["systemInstruction"] = {"role": "user", "parts": system}
    tools = convert_tools(body.get("tools"))
    if tools:
        request["tools"] = tools
        choice = convert_tool_choice(body.get("tool_choice"))
        if choice is not None:
            request["toolConfig"] = choice
    config = generation_config(body, model)
    if config:
        request["generationConfig"] = config
    return request
