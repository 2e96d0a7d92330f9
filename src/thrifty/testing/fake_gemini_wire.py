"""Request validation and error bodies for the fake Gemini server (pure functions, no I/O).

Requests are proto3 JSON: both lowerCamelCase and snake_case field names are accepted
(``normalise``); user data under ``args``, ``response`` and the schema fields is left as is.
Validation follows the real API's 400s (``INVALID_ARGUMENT``) and its 404 for unknown models.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

STATUS_NAMES: dict[int, str] = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "NOT_IMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
FAULT_MESSAGES: dict[int, str] = {
    400: "Request contains an invalid argument.",
    403: "The caller does not have permission",
    404: "Requested entity was not found.",
    429: "Resource has been exhausted (e.g. check quota).",
    500: "An internal error has occurred. Please retry or report in "
    "https://developers.generativeai.google/guide/troubleshooting",
    503: "The model is overloaded. Please try again later.",
    504: "Deadline expired before operation could complete.",
}
SIGNATURE_MISSING = (
    "Function call is missing a thought_signature in functionCall parts. This is required for "
    "tools to work correctly, and missing thought_signature may lead to degraded model "
    "performance. Additional data, function call `default_api:{name}` , position {pos}. Please "
    "refer to https://ai.google.dev/gemini-api/docs/thought-signatures for more details."
)
MIME_TYPES = frozenset({"text/plain", "application/json", "text/x.enum"})
MODES = frozenset({"AUTO", "ANY", "NONE", "VALIDATED", "MODE_UNSPECIFIED"})
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:\-]{0,63}$")
_DATA_FIELDS = (
    "text",
    "inlineData",
    "fileData",
    "functionCall",
    "functionResponse",
    "executableCode",
    "codeExecutionResult",
)
_OPAQUE = frozenset(
    {"args", "response", "parameters", "parametersJsonSchema", "responseSchema"}
    | {"responseJsonSchema", "responseJsonSchemaOrdering"}
)
# Keys the OpenAPI-subset ``parameters`` schema rejects (``parametersJsonSchema`` takes them).
_OPENAPI_UNKNOWN = frozenset({"$schema", "additionalProperties", "$ref", "$defs", "definitions"})


class GeminiError(Exception):
    """A request failure, answered with Google's error body."""

    def __init__(
        self, message: str, status: int = 400, details: list[dict[str, Any]] | None = None
    ) -> None:
        super().__init__(message)
        self.message, self.status, self.details = message, status, details or []


def error_body(
    status: int, message: str, details: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """``{"error": {"code", "message", "status", "details"?}}``."""
    err: dict[str, Any] = {
        "code": status,
        "message": message,
        "status": STATUS_NAMES.get(status, "INTERNAL" if status >= 500 else "FAILED_PRECONDITION"),
    }
    if details:
        err["details"] = details
    return {"error": err}


def camel(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


def normalise(value: Any) -> Any:
    """snake_case keys → lowerCamelCase, except inside user data and schemas."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            name = camel(key) if isinstance(key, str) else key
            out[name] = item if name in _OPAQUE else normalise(item)
        return out
    if isinstance(value, list):
        return [normalise(v) for v in value]
    return value


def lower_types(schema: Any) -> Any:
    """An OpenAPI-subset schema (``"type": "OBJECT"``) as JSON Schema (``"object"``)."""
    if isinstance(schema, dict):
        return {
            k: (v.lower() if k == "type" and isinstance(v, str) else lower_types(v))
            for k, v in schema.items()
        }
    if isinstance(schema, list):
        return [lower_types(v) for v in schema]
    return schema


def is_thinking_model(model: str) -> bool:
    """Gemini 2.5 Pro/Flash and Gemini 3+ think by default (2.5 Flash-Lite does not)."""
    m = model.lower()
    return bool(re.search(r"gemini-(2\.5-(pro|flash)(?!-lite)|[3-9])", m))


def check_model(model: str, version: str, method: str) -> None:
    """404 for ``unknown*`` models, and for embedding models asked to generate (and back)."""
    embedding = "embedding" in model
    wants_embedding = method in ("embedContent", "batchEmbedContents")
    if model.startswith("unknown") or embedding != wants_embedding:
        raise GeminiError(
            f"models/{model} is not found for API version {version}, or is not supported for "
            f"{method}. Call ListModels to see the list of available models and their "
            "supported methods.",
            404,
        )


def _base64(value: Any, where: str) -> None:
    if not isinstance(value, str):
        raise GeminiError(f"Invalid value at '{where}' (TYPE_BYTES), expected a base64 string")
    text = value.replace("-", "+").replace("_", "/").rstrip("=")  # both alphabets are accepted
    try:
        if len(text) % 4 == 1:
            raise ValueError("bad length")
        base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise GeminiError(
            f"Invalid value at '{where}' (TYPE_BYTES), Base64 decoding failed for \"{value[:40]}\""
        ) from None


def _check_part(part: Any, where: str) -> None:
    if not isinstance(part, dict):
        raise GeminiError(f"Invalid value at '{where}' (type.googleapis.com/Part)")
    present = [f for f in _DATA_FIELDS if f in part]
    if not present:
        raise GeminiError(
            f"* GenerateContentRequest.{where}.data: required oneof field 'data' must have one "
            "initialized field\n"
        )
    if len(present) > 1:
        raise GeminiError(f"* GenerateContentRequest.{where}.data: oneof field 'data' is set twice")
    if "text" in present and part["text"] == "":
        raise GeminiError(
            "Unable to submit request because it has an empty text parameter. Add a value to "
            "the parameter and try again."
        )
    if "inlineData" in part:
        inline = part["inlineData"] or {}
        if not inline.get("mimeType"):
            raise GeminiError(f"* GenerateContentRequest.{where}.inline_data.mime_type: required")
        _base64(inline.get("data"), f"{where}.inline_data.data")
    if "functionCall" in part:
        fc = part["functionCall"]
        if not isinstance(fc, dict) or not fc.get("name"):
            raise GeminiError(f"* GenerateContentRequest.{where}.function_call.name: required")
        if "args" in fc and not isinstance(fc["args"], dict):
            raise GeminiError(f"Invalid value at '{where}.function_call.args' (Struct)")
    if "functionResponse" in part:
        fr = part["functionResponse"]
        if not isinstance(fr, dict) or not fr.get("name"):
            raise GeminiError(f"* GenerateContentRequest.{where}.function_response.name: required")
        if not isinstance(fr.get("response"), dict):
            raise GeminiError(
                f"Invalid value at '{where}.function_response.response' "
                "(type.googleapis.com/google.protobuf.Struct)"
            )
    if "thoughtSignature" in part:
        _base64(part["thoughtSignature"], f"{where}.thought_signature")


def _check_signatures(contents: list[dict[str, Any]]) -> None:
    """Gemini 3: in the current turn (after the last user text), the first functionCall of each
    model step must carry its ``thoughtSignature``."""
    start = 0
    for i, content in enumerate(contents):
        if content.get("role", "user") == "user" and any(
            "functionResponse" not in p for p in content["parts"]
        ):
            start = i + 1
    for content in contents[start:]:
        if content.get("role") != "model":
            continue
        calls = [p for p in content["parts"] if "functionCall" in p]
        if calls and not calls[0].get("thoughtSignature"):
            name = calls[0]["functionCall"].get("name")
            raise GeminiError(SIGNATURE_MISSING.format(name=name, pos=1))


def _openapi_unknown(schema: Any, where: str) -> None:
    if isinstance(schema, dict):
        for key, value in schema.items():
            if key in _OPENAPI_UNKNOWN:
                raise GeminiError(
                    f"Invalid JSON payload received. Unknown name \"{key}\" at '{where}': "
                    "Cannot find field."
                )
            _openapi_unknown(value, f"{where}.{key}")
    elif isinstance(schema, list):
        for value in schema:
            _openapi_unknown(value, where)


@dataclass(slots=True)
class GenRequest:
    """A validated ``generateContent`` request, normalised to camelCase."""

    model: str
    contents: list[dict[str, Any]]
    system: list[dict[str, Any]] = field(default_factory=list)
    functions: list[dict[str, Any]] = field(default_factory=list)
    mode: str = "AUTO"
    allowed: tuple[str, ...] = ()
    config: dict[str, Any] = field(default_factory=dict)


def _check_tools(tools: Any) -> list[dict[str, Any]]:
    functions: list[dict[str, Any]] = []
    for t, tool in enumerate(tools if isinstance(tools, list) else ()):
        for d, decl in enumerate((tool or {}).get("functionDeclarations") or ()):
            where = f"tools[{t}].function_declarations[{d}]"
            name = decl.get("name") if isinstance(decl, dict) else None
            if not isinstance(name, str) or not _NAME.match(name):
                raise GeminiError(
                    f"* GenerateContentRequest.{where}.name: Invalid function name. Must start "
                    "with a letter or an underscore. Must be alphameric (a-z, A-Z, 0-9), "
                    "underscores (_), dots (.), colons (:), or dashes (-), with a maximum length "
                    "of 64.\n"
                )
            if "parameters" in decl and "parametersJsonSchema" in decl:
                raise GeminiError(
                    f"* GenerateContentRequest.{where}: parameters and parameters_json_schema "
                    "cannot both be set.\n"
                )
            _openapi_unknown(decl.get("parameters"), f"{where}.parameters")
            functions.append(decl)
    return functions


def _check_config(config: dict[str, Any], model: str) -> None:
    def bad(name: str, message: str) -> GeminiError:
        return GeminiError(f"* GenerateContentRequest.generation_config.{name}: {message}\n")

    for name, lo, hi in (("temperature", 0.0, 2.0), ("topP", 0.0, 1.0)):
        value = config.get(name)
        if value is not None and not (isinstance(value, int | float) and lo <= value <= hi):
            raise bad(name, f"must be in the range [{lo}, {hi}]")
    count = config.get("candidateCount")
    if count is not None and not (isinstance(count, int) and 1 <= count <= 8):
        raise bad("candidate_count", "must be in the range [1, 8]")
    limit = config.get("maxOutputTokens")
    if limit is not None and not (isinstance(limit, int) and limit >= 1):
        raise bad("max_output_tokens", "must be positive")
    stops = config.get("stopSequences")
    if stops is not None and (not isinstance(stops, list) or len(stops) > 5):
        raise bad("stop_sequences", "at most 5 stop sequences are allowed")
    mime = config.get("responseMimeType")
    if mime is not None and mime not in MIME_TYPES:
        raise bad(
            "response_mime_type", f"unsupported mime type {mime!r}; allowed: {sorted(MIME_TYPES)}"
        )
    if "responseSchema" in config and "responseJsonSchema" in config:
        raise bad("response_schema", "response_schema and response_json_schema are exclusive")
    if (
        "responseSchema" in config or "responseJsonSchema" in config
    ) and mime != "application/json":
        raise bad(
            "response_mime_type", "a response schema needs response_mime_type application/json"
        )
    thinking = config.get("thinkingConfig") or {}
    if thinking.get("thinkingBudget") == 0 and "2.5-pro" in model:
        raise GeminiError("Budget 0 is invalid. This model only works in thinking mode.")


def parse_generate(body: Any, model: str) -> GenRequest:
    """Validate a ``generateContent`` body like the real API; raises ``GeminiError``."""
    if not isinstance(body, dict):
        raise GeminiError("Invalid JSON payload received. Expected an object.")
    body = normalise(body)
    contents = body.get("contents")
    if not isinstance(contents, list) or not contents:
        raise GeminiError("* GenerateContentRequest.contents: contents is not specified\n")
    for i, content in enumerate(contents):
        if not isinstance(content, dict):
            raise GeminiError(f"Invalid value at 'contents[{i}]' (type.googleapis.com/Content)")
        if content.get("role", "user") not in ("user", "model", ""):
            raise GeminiError("Please use a valid role: user, model.")
        parts = content.get("parts")
        if not isinstance(parts, list) or not parts:
            raise GeminiError(
                f"* GenerateContentRequest.contents[{i}].parts: contents.parts must not be empty.\n"
            )
        for j, part in enumerate(parts):
            _check_part(part, f"contents[{i}].parts[{j}]")
    if re.search(r"gemini-[3-9]", model):
        _check_signatures(contents)
    system = (body.get("systemInstruction") or {}).get("parts") or []
    for j, part in enumerate(system):
        _check_part(part, f"system_instruction.parts[{j}]")
    functions = _check_tools(body.get("tools"))
    calling = (body.get("toolConfig") or {}).get("functionCallingConfig") or {}
    mode = calling.get("mode") or "AUTO"
    if mode not in MODES:
        raise GeminiError(f"Invalid value at 'tool_config.function_calling_config.mode' ({mode})")
    allowed = tuple(calling.get("allowedFunctionNames") or ())
    if allowed and mode not in ("ANY", "VALIDATED"):
        raise GeminiError(
            "* GenerateContentRequest.tool_config.function_calling_config.allowed_function_names"
            ": allowed_function_names should only be set when the Mode is ANY or VALIDATED.\n"
        )
    config = body.get("generationConfig") or {}
    _check_config(config, model)
    return GenRequest(
        model=model,
        contents=contents,
        system=list(system),
        functions=functions,
        mode="AUTO" if mode == "MODE_UNSPECIFIED" else mode,
        allowed=allowed,
        config=config,
    )


def embed_texts(body: Any, model: str, method: str) -> tuple[list[str], list[int | None]]:
    """The texts and ``outputDimensionality`` of an ``embedContent`` / ``batchEmbedContents``
    body, validated; raises ``GeminiError``."""
    if not isinstance(body, dict):
        raise GeminiError("Invalid JSON payload received. Expected an object.")
    body = normalise(body)
    requests: list[Any]
    if method == "batchEmbedContents":
        requests = body.get("requests") or []
        if not isinstance(requests, list) or not requests:
            raise GeminiError("* BatchEmbedContentsRequest.requests: requests is not specified\n")
        if len(requests) > 100:
            raise GeminiError(
                "* BatchEmbedContentsRequest.requests: at most 100 requests can be in one batch\n"
            )
    else:
        requests = [body]
    texts: list[str] = []
    dims: list[int | None] = []
    for i, req in enumerate(requests):
        if not isinstance(req, Mapping):
            raise GeminiError(f"Invalid value at 'requests[{i}]'")
        named = req.get("model")
        if method == "batchEmbedContents" and named not in (f"models/{model}", model):
            raise GeminiError(
                f"Model names in requests[{i}] must match the model in the URL: models/{model}"
            )
        parts = (req.get("content") or {}).get("parts") or []
        text = "".join(str(p.get("text") or "") for p in parts if isinstance(p, Mapping))
        if not text:
            raise GeminiError("* EmbedContentRequest.content: content is not specified\n")
        dim = req.get("outputDimensionality")
        if dim is not None and not (isinstance(dim, int) and dim >= 1):
            raise GeminiError("* EmbedContentRequest.output_dimensionality: must be positive\n")
        texts.append(text)
        dims.append(dim)
    return texts, dims
