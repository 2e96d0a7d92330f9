"""Request validation for the fake OpenAI server: OpenAI's 400 errors, with ``param``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from thrifty.testing.fake_openai_answers import (
    ANSWER_TOKENS_LIMIT,
    ChatKnobs,
    answer_tokens_marker,
    messages_blob,
    select_functions,
)

ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})


class BadRequest(Exception):
    """A validation failure, turned into an OpenAI 400 (or 404) error body."""

    def __init__(
        self, message: str, param: str | None = None, code: str | None = None, status: int = 400
    ) -> None:
        super().__init__(message)
        self.message, self.param, self.code, self.status = message, param, code, status


def model_of(body: Any) -> str | None:
    """The ``model`` of a parsed body, if it is a string."""
    if isinstance(body, dict):
        model = body.get("model")
        if isinstance(model, str):
            return model
    return None


def check_model(model: Any) -> str:
    """Validate a model id; any id is known unless it starts with ``unknown`` (404)."""
    if model is None:
        raise BadRequest(
            "you must provide a model parameter", "model", "missing_required_parameter"
        )
    if not isinstance(model, str) or not model:
        raise BadRequest("Invalid type for 'model': expected a string.", "model", "invalid_type")
    if model.startswith("unknown"):
        raise BadRequest(
            f"The model `{model}` does not exist or you do not have access to it.",
            None,
            "model_not_found",
            status=404,
        )
    return model


def _int_param(body: Mapping[str, Any], name: str, lo: int, hi: int) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise BadRequest(f"Invalid type for '{name}': expected an integer.", name, "invalid_type")
    if not lo <= value <= hi:
        raise BadRequest(
            f"Invalid '{name}': {value} is out of range [{lo}, {hi}].", name, "invalid_value"
        )
    return value


def chat_knobs(
    body: dict[str, Any], answer_tokens_header: str | None = None
) -> tuple[ChatKnobs, bool, bool]:
    """Validate a chat request like OpenAI does; returns the knobs, ``stream``, ``include_usage``.

    Raises ``BadRequest`` (400, or 404 for an unknown model).
    """
    model = check_model(body.get("model"))
    messages = body.get("messages")
    if messages is None:
        raise BadRequest(
            "Missing required parameter: 'messages'.", "messages", "missing_required_parameter"
        )
    if not isinstance(messages, list):
        raise BadRequest("Invalid type for 'messages': expected an array.", "messages")
    if not messages:
        raise BadRequest(
            "Invalid 'messages': empty array. Expected an array with minimum length 1.",
            "messages",
            "empty_array",
        )
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise BadRequest(f"Invalid type for 'messages[{i}]': expected an object.")
        if message.get("role") not in ROLES:
            raise BadRequest(
                f"Invalid value: '{message.get('role')}'. Supported values are: 'system', "
                "'assistant', 'user', 'function', 'tool', and 'developer'.",
                f"messages[{i}].role",
                "invalid_value",
            )
        if message["role"] == "tool" and not message.get("tool_call_id"):
            raise BadRequest(
                f"Missing required parameter: 'messages[{i}].tool_call_id'.",
                f"messages[{i}].tool_call_id",
                "missing_required_parameter",
            )
    n = _int_param(body, "n", 1, 128) or 1
    max_tokens = _int_param(body, "max_completion_tokens", 1, 1 << 30)
    if max_tokens is None:
        max_tokens = _int_param(body, "max_tokens", 1, 1 << 30)
    seed = _int_param(body, "seed", -(1 << 63), (1 << 64) - 1)
    temperature = body.get("temperature")
    if temperature is not None and (
        not isinstance(temperature, int | float) or not 0 <= temperature <= 2
    ):
        raise BadRequest("Invalid 'temperature': expected a number in [0, 2].", "temperature")
    stop = body.get("stop")
    if isinstance(stop, str):
        stops: tuple[str, ...] = (stop,)
    elif isinstance(stop, list) and all(isinstance(s, str) for s in stop) and len(stop) <= 4:
        stops = tuple(stop)
    elif stop is None:
        stops = ()
    else:
        raise BadRequest("Invalid 'stop': expected a string or up to 4 strings.", "stop")
    stream = body.get("stream") is True
    stream_options = body.get("stream_options")
    if stream_options is not None and not stream:
        raise BadRequest(
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
            "stream_options",
            "invalid_value",
        )
    include_usage = isinstance(stream_options, dict) and stream_options.get("include_usage") is True
    logprobs = body.get("logprobs") is True
    top_logprobs = _int_param(body, "top_logprobs", 0, 20) or 0
    if top_logprobs and not logprobs:
        raise BadRequest(
            "Invalid value for 'top_logprobs': 'logprobs' must be set to true.", "top_logprobs"
        )
    response_format = body.get("response_format")
    if response_format is not None:
        rf_type = response_format.get("type") if isinstance(response_format, dict) else None
        if rf_type not in ("text", "json_object", "json_schema"):
            raise BadRequest(
                "Invalid 'response_format.type': expected 'text', 'json_object' or 'json_schema'.",
                "response_format.type",
                "invalid_value",
            )
        if rf_type == "json_schema" and not isinstance(
            (response_format.get("json_schema") or {}).get("name"), str
        ):
            raise BadRequest(
                "Missing required parameter: 'response_format.json_schema.name'.",
                "response_format.json_schema.name",
                "missing_required_parameter",
            )
    tools = body.get("tools")
    tool_choice = body.get("tool_choice")
    if tools is not None:
        if not isinstance(tools, list):
            raise BadRequest("Invalid type for 'tools': expected an array.", "tools")
        for i, tool in enumerate(tools):
            fn = tool.get("function") if isinstance(tool, dict) else None
            if isinstance(tool, dict) and tool.get("type", "function") != "function":
                continue
            if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
                raise BadRequest(
                    f"Missing required parameter: 'tools[{i}].function.name'.",
                    f"tools[{i}].function.name",
                    "missing_required_parameter",
                )
    if tool_choice is not None:
        if not tools:
            raise BadRequest(
                "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' "
                "are specified.",
                "tool_choice",
            )
        if isinstance(tool_choice, dict) and tool_choice.get("type") == "function":
            wanted = (tool_choice.get("function") or {}).get("name")
            names = {(t.get("function") or {}).get("name") for t in tools if isinstance(t, dict)}
            if wanted not in names:
                raise BadRequest(
                    f"Invalid value for 'tool_choice': function '{wanted}' not found in 'tools'.",
                    "tool_choice",
                )
    blob = messages_blob(messages)
    answer_tokens = answer_tokens_marker(blob)
    if answer_tokens_header is not None:
        try:
            answer_tokens = min(max(1, int(answer_tokens_header)), ANSWER_TOKENS_LIMIT)
        except ValueError:
            raise BadRequest("invalid x-fake-answer-tokens header") from None
    knobs = ChatKnobs(
        model=model,
        messages_blob=blob,
        n=n,
        max_tokens=max_tokens,
        stop=stops,
        seed=seed,
        temperature=float(temperature) if temperature is not None else None,
        call_functions=select_functions(
            tools, tool_choice, body.get("parallel_tool_calls"), messages
        ),
        response_format=response_format,
        logprobs=logprobs,
        top_logprobs=top_logprobs,
        answer_tokens=answer_tokens,
    )
    return knobs, stream, include_usage


def embedding_args(body: dict[str, Any], default_dim: int) -> tuple[str, list[Any], int, bool]:
    """Validate an embeddings request: ``(model, inputs, dimensions, base64?)``."""
    model = check_model(body.get("model"))
    raw = body.get("input")
    if raw is None:
        raise BadRequest(
            "Missing required parameter: 'input'.", "input", "missing_required_parameter"
        )
    inputs: list[Any]
    if isinstance(raw, str):
        inputs = [raw]
    elif isinstance(raw, list) and raw and all(isinstance(x, str) for x in raw):
        inputs = raw
    elif isinstance(raw, list) and raw and all(_is_int(x) for x in raw):
        inputs = [raw]
    elif (
        isinstance(raw, list)
        and raw
        and all(isinstance(x, list) and x and all(_is_int(t) for t in x) for x in raw)
    ):
        inputs = raw
    else:
        raise BadRequest("'$.input' is invalid. Please check the API reference.", "input")
    if any(isinstance(x, str) and not x for x in inputs):
        raise BadRequest("'$.input' is invalid: empty string.", "input")
    if len(inputs) > 2048:
        raise BadRequest("'$.input' must have at most 2048 items.", "input")
    dims = _int_param(body, "dimensions", 1, 16384) or default_dim
    fmt = body.get("encoding_format")
    if fmt not in (None, "float", "base64"):
        raise BadRequest(
            "Invalid value for 'encoding_format': expected 'float' or 'base64'.",
            "encoding_format",
            "invalid_value",
        )
    return model, inputs, dims, fmt == "base64"


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)
