"""Parse and validate OpenAI Chat Completions and Embeddings requests.

The canonical request inside Thrifty is the OpenAI body itself, a plain ``dict``: the fields
Thrifty understands are checked here (a bad one is a 400 naming the field, as OpenAI does), and
every other field is kept untouched so it passes through to OpenAI-compatible upstreams.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from thrifty.errors import InvalidRequestError
from thrifty.wire.validate import expect_range, expect_type, fail

ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
TOOL_CHOICE_MODES = frozenset({"none", "auto", "required"})
RESPONSE_FORMATS = frozenset({"text", "json_object", "json_schema"})

# (field, JSON type, min, max) for scalar sampling/limit parameters.
_SCALARS: tuple[tuple[str, str, float | None, float | None], ...] = (
    ("temperature", "number", 0, 2),
    ("top_p", "number", 0, 1),
    ("frequency_penalty", "number", -2, 2),
    ("presence_penalty", "number", -2, 2),
    ("n", "integer", 1, 128),
    ("max_tokens", "integer", 1, None),
    ("max_completion_tokens", "integer", 1, None),
    ("seed", "integer", None, None),
    ("top_logprobs", "integer", 0, 20),
    ("stream", "boolean", None, None),
    ("logprobs", "boolean", None, None),
    ("parallel_tool_calls", "boolean", None, None),
    ("user", "string", None, None),
)
_SCALAR_SPECS = {name: (kind, lo, hi) for name, kind, lo, hi in _SCALARS}


@dataclass(slots=True)
class ChatRequest:
    """A validated chat request. ``body`` is the whole OpenAI body, unknown fields included."""

    body: dict[str, Any]
    model: str
    stream: bool
    include_usage: bool

    @property
    def max_output_tokens(self) -> int | None:
        b = self.body
        value = b.get("max_completion_tokens", b.get("max_tokens"))
        return value if isinstance(value, int) else None


@dataclass(slots=True)
class EmbeddingsRequest:
    body: dict[str, Any]
    model: str
    inputs: list[Any]
    """One item per input: a string or a list of token ids."""


def load_json_object(raw: bytes) -> dict[str, Any]:
    if not raw:
        raise InvalidRequestError(
            "The request body is empty; expected a JSON object.", code="invalid_json"
        )
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequestError(
            f"The request body is not valid JSON: {exc}", code="invalid_json"
        ) from None
    if not isinstance(data, dict):
        raise InvalidRequestError("The request body must be a JSON object.", code="invalid_json")
    return data


def _model(body: dict[str, Any]) -> str:
    model = body.get("model")
    if model is None:
        raise InvalidRequestError(
            "you must provide a model parameter", param="model", code="missing_required_parameter"
        )
    expect_type("model", model, "string")
    if not model:
        raise fail("model", "'model' must not be empty.")
    return model


def _check_content(i: int, role: str, content: Any) -> None:
    if isinstance(content, str):
        return
    param = f"messages[{i}].content"
    if content is None:
        if role in ("assistant", "function"):
            return
        raise fail(param, f"Invalid value for '{param}': a {role} message needs content.")
    if isinstance(content, str):
        return
    if not isinstance(content, list):
        expect_type(param, content, "string")
    for j, part in enumerate(content):
        pp = f"{param}[{j}]"
        expect_type(pp, part, "object")
        kind = part.get("type")
        if not isinstance(kind, str):
            raise fail(f"{pp}.type", f"Missing required parameter: '{pp}.type'.")
        if kind == "text" and not isinstance(part.get("text"), str):
            raise fail(f"{pp}.text", f"Invalid type for '{pp}.text': expected a string.")


def _check_messages(body: dict[str, Any]) -> None:
    messages = body.get("messages")
    if messages is None:
        raise InvalidRequestError(
            "Missing required parameter: 'messages'.",
            param="messages",
            code="missing_required_parameter",
        )
    expect_type("messages", messages, "array")
    if not messages:
        raise fail(
            "messages", "Invalid 'messages': empty array. Expected an array with minimum length 1."
        )
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict):
            expect_type(f"messages[{i}]", msg, "object")
        role = msg.get("role")
        if role not in ROLES:
            raise fail(
                f"messages[{i}].role",
                f"Invalid value for 'messages[{i}].role': {role!r}; "
                f"expected one of {', '.join(sorted(ROLES))}.",
            )
        if role == "tool" and not isinstance(msg.get("tool_call_id"), str):
            raise fail(
                f"messages[{i}].tool_call_id",
                f"Missing required parameter: 'messages[{i}].tool_call_id'.",
            )
        if "content" not in msg and role != "assistant":
            raise fail(
                f"messages[{i}].content",
                f"Missing required parameter: 'messages[{i}].content'.",
            )
        _check_content(i, role, msg.get("content"))
        tool_calls = msg.get("tool_calls")
        if tool_calls is not None and not isinstance(tool_calls, list):
            expect_type(f"messages[{i}].tool_calls", tool_calls, "array")


def _check_tools(body: dict[str, Any]) -> None:
    tools = body.get("tools")
    if tools is not None:
        expect_type("tools", tools, "array")
        for i, tool in enumerate(tools):
            expect_type(f"tools[{i}]", tool, "object")
            if tool.get("type", "function") == "function":
                fn = tool.get("function")
                expect_type(f"tools[{i}].function", fn, "object")
                if not isinstance(fn.get("name"), str) or not fn["name"]:
                    raise fail(
                        f"tools[{i}].function.name",
                        f"Missing required parameter: 'tools[{i}].function.name'.",
                    )
    choice = body.get("tool_choice")
    if choice is not None:
        if isinstance(choice, str):
            if choice not in TOOL_CHOICE_MODES:
                raise fail("tool_choice", f"Invalid value for 'tool_choice': {choice!r}.")
        else:
            expect_type("tool_choice", choice, "object")


def _check_response_format(body: dict[str, Any]) -> None:
    rf = body.get("response_format")
    if rf is None:
        return
    expect_type("response_format", rf, "object")
    kind = rf.get("type")
    if kind not in RESPONSE_FORMATS:
        raise fail(
            "response_format.type",
            f"Invalid value for 'response_format.type': {kind!r}; "
            "expected one of text, json_object, json_schema.",
        )
    if kind == "json_schema":
        schema = rf.get("json_schema")
        expect_type("response_format.json_schema", schema, "object")
        if not isinstance(schema.get("name"), str):
            raise fail(
                "response_format.json_schema.name",
                "Missing required parameter: 'response_format.json_schema.name'.",
            )


def parse_chat_request(raw: bytes) -> ChatRequest:
    """Validate a Chat Completions body; raises ``InvalidRequestError`` naming the bad field."""
    body = load_json_object(raw)
    return chat_request_from_body(body)


def chat_request_from_body(body: dict[str, Any]) -> ChatRequest:
    model = _model(body)
    _check_messages(body)
    # One pass over the fields present (a request carries a few of the thirteen).
    for name, value in body.items():
        spec = _SCALAR_SPECS.get(name)
        if spec is not None and value is not None:
            kind, lo, hi = spec
            expect_type(name, value, kind)
            if lo is not None or hi is not None:
                expect_range(name, value, lo, hi)
    stop = body.get("stop")
    if stop is not None and not isinstance(stop, str):
        expect_type("stop", stop, "array")
        if len(stop) > 4 or not all(isinstance(s, str) for s in stop):
            raise fail("stop", "Invalid value for 'stop': up to 4 strings are allowed.")
    _check_tools(body)
    _check_response_format(body)
    metadata = body.get("metadata")
    if metadata is not None:
        expect_type("metadata", metadata, "object")
    stream = bool(body.get("stream"))
    options = body.get("stream_options")
    include_usage = False
    if options is not None:
        expect_type("stream_options", options, "object")
        if not stream:
            raise fail(
                "stream_options",
                "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
            )
        include_usage = bool(options.get("include_usage"))
    return ChatRequest(body=body, model=model, stream=stream, include_usage=include_usage)


def parse_embeddings_request(raw: bytes) -> EmbeddingsRequest:
    """Validate an Embeddings body: ``input`` is a string, strings, token ids or lists of them."""
    return embeddings_request_from_body(load_json_object(raw))


def embeddings_request_from_body(body: dict[str, Any]) -> EmbeddingsRequest:
    model = _model(body)
    if "input" not in body:
        raise InvalidRequestError(
            "Missing required parameter: 'input'.", param="input", code="missing_required_parameter"
        )
    value = body["input"]
    if isinstance(value, str):
        inputs: list[Any] = [value]
    elif isinstance(value, list) and value:
        if all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            inputs = [value]
        elif all(isinstance(v, str) for v in value) or all(
            isinstance(v, list) and v and all(isinstance(t, int) for t in v) for v in value
        ):
            inputs = list(value)
        else:
            raise fail(
                "input",
                "Invalid 'input': expected a string, an array of strings, an array of "
                "token ids, or an array of token-id arrays.",
            )
    else:
        raise fail("input", "Invalid 'input': expected a non-empty string or array.")
    if any(item == "" for item in inputs):
        raise fail("input", "Invalid 'input': strings must not be empty.")
    fmt = body.get("encoding_format")
    if fmt is not None and fmt not in ("float", "base64"):
        raise fail("encoding_format", "Invalid 'encoding_format': expected 'float' or 'base64'.")
    dims = body.get("dimensions")
    if dims is not None:
        expect_type("dimensions", dims, "integer")
        expect_range("dimensions", dims, 1, None)
    return EmbeddingsRequest(body=body, model=model, inputs=inputs)
