"""Cascade checks: does the cheap model's answer need the strong model? Pure functions.

A cascade route answers with the cheap model first and escalates to the strong one when the
answer fails one of the route's checks (run in the configured order; the first failure decides):

- ``json``: JSON mode was asked (``response_format`` ``json_object`` / ``json_schema``) and the
  content does not parse (``json_object``: or is not an object);
- ``schema``: ``json_schema`` was asked and the parsed content violates the schema;
- ``tool_args``: a tool call names a tool the request did not offer, or its arguments are not a
  JSON object or violate the tool's ``parameters`` schema (missing required parameters ...);
- ``empty``: no choice, or a choice with neither text nor tool calls (a refusal counts as empty);
- ``truncated``: a choice stopped on ``finish_reason: length``;
- ``regex``: the route's regex finds no match in the answer's text;
- ``validator``: a caller-supplied function (``check_answer(..., validator=f)``) rejects it.

A check that does not apply (``json`` without JSON mode, ``tool_args`` without tool calls)
passes. Every choice of a response is checked. Schemas are validated by :func:`schema_errors`,
a small validator of the JSON Schema subset structured outputs use (``type``, ``enum``,
``const``, ``properties``, ``required``, ``additionalProperties``, ``items``, ``anyOf``,
``oneOf``, ``allOf``, local ``$ref``, string / array / number bounds, ``pattern``); other
keywords are ignored, so an answer is never escalated over a keyword it does not understand.
The validator is built in so that the decision does not depend on an optional package.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, NamedTuple

from thrifty.errors import ConfigError
from thrifty.routing.policy_config import CHECK_NAMES, RouteGroupConfig

__all__ = [
    "DEFAULT_CHECKS",
    "CheckResult",
    "cascade_plan",
    "check_answer",
    "schema_errors",
]

DEFAULT_CHECKS: tuple[str, ...] = ("json", "schema", "tool_args", "empty", "truncated")
Validator = Callable[[str], bool]
_KNOWN = frozenset((*CHECK_NAMES, "validator"))
_MAX_ERRORS = 5


class CheckResult(NamedTuple):
    """``ok`` (keep the cheap answer), else the first ``failed`` check's name and a ``detail``."""

    ok: bool
    failed: str | None = None
    detail: str = ""


def cascade_plan(config: RouteGroupConfig) -> tuple[str, str]:
    """The cascade's ``(cheap, strong)`` models: ``cascade.cheap`` / ``cascade.strong``, else the
    first model of the smallest / largest filled tier. ``ConfigError`` if they are the same."""
    tiers = config.tiers
    cheap = config.cascade.cheap or tiers.models(tiers.filled[0])[0]
    strong = config.cascade.strong or tiers.models(tiers.filled[-1])[0]
    if cheap == strong:
        raise ConfigError(f"route group {config.name!r}: cascade needs two different models")
    return cheap, strong


# ------------------------------------------------------------------ schema subset

_TYPES: dict[str, Callable[[Any], bool]] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "integer": lambda v: (
        (isinstance(v, int) and not isinstance(v, bool))
        or (isinstance(v, float) and v.is_integer())
    ),
}


def _resolve(ref: str, root: Mapping[str, Any]) -> Any:
    if not ref.startswith("#"):
        return {}  # remote refs are not followed: accept
    node: Any = root
    for raw in ref[1:].split("/"):
        if not raw:
            continue
        key = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, Mapping) and key in node:
            node = node[key]
        elif isinstance(node, list) and key.isdigit() and int(key) < len(node):
            node = node[int(key)]
        else:
            return {}
    return node


def _validate(value: Any, schema: Any, root: Any, path: str, errors: list[str]) -> None:
    if len(errors) >= _MAX_ERRORS:
        return
    if schema is False:
        errors.append(f"{path}: not allowed")
        return
    if not isinstance(schema, Mapping):
        return
    if isinstance(schema.get("$ref"), str):
        _validate(value, _resolve(schema["$ref"], root), root, path, errors)
    kind = schema.get("type")
    if kind is not None:
        kinds = [kind] if isinstance(kind, str) else list(kind)
        if not any(_TYPES.get(k, lambda v: True)(value) for k in kinds):
            errors.append(f"{path}: expected {'/'.join(map(str, kinds))}, got {_json_type(value)}")
            return
    if "enum" in schema and isinstance(schema["enum"], list) and value not in schema["enum"]:
        errors.append(f"{path}: {value!r} is not one of {schema['enum']}")
    if "const" in schema and value != schema["const"]:
        errors.append(f"{path}: expected {schema['const']!r}")
    for sub in schema.get("allOf") or ():
        _validate(value, sub, root, path, errors)
    for key, need in (("anyOf", "any"), ("oneOf", "one")):
        options = schema.get(key)
        if isinstance(options, list) and options:
            passing = sum(not schema_errors(value, opt, root=root) for opt in options)
            if passing == 0 or (need == "one" and passing > 1):
                errors.append(f"{path}: matches {passing} of the {key} options")
    if isinstance(value, dict):
        _validate_object(value, schema, root, path, errors)
    elif isinstance(value, list):
        if isinstance(schema.get("items"), Mapping):
            for i, item in enumerate(value):
                _validate(item, schema["items"], root, f"{path}[{i}]", errors)
        _bounds(len(value), schema, "minItems", "maxItems", path, "items", errors)
    elif isinstance(value, str):
        _bounds(len(value), schema, "minLength", "maxLength", path, "characters", errors)
        pattern = schema.get("pattern")
        if isinstance(pattern, str):
            try:
                if re.search(pattern, value) is None:
                    errors.append(f"{path}: does not match {pattern!r}")
            except re.error:
                pass
    elif _TYPES["number"](value):
        _bounds(value, schema, "minimum", "maximum", path, "", errors)
        low = _number(schema.get("exclusiveMinimum"))
        high = _number(schema.get("exclusiveMaximum"))
        if low is not None and value <= low:
            errors.append(f"{path}: must be > {low:g}")
        if high is not None and value >= high:
            errors.append(f"{path}: must be < {high:g}")


def _validate_object(
    value: dict[str, Any], schema: Mapping[str, Any], root: Any, path: str, errors: list[str]
) -> None:
    props = schema.get("properties")
    props = props if isinstance(props, Mapping) else {}
    for name in schema.get("required") or ():
        if name not in value:
            errors.append(f"{path}: missing required property {name!r}")
    extra = schema.get("additionalProperties", True)
    for name, item in value.items():
        if name in props:
            _validate(item, props[name], root, f"{path}.{name}", errors)
        elif extra is False:
            errors.append(f"{path}: unexpected property {name!r}")
        elif isinstance(extra, Mapping):
            _validate(item, extra, root, f"{path}.{name}", errors)


def _bounds(
    n: float, schema: Mapping[str, Any], low: str, high: str, path: str, unit: str, out: list[str]
) -> None:
    lo, hi = _number(schema.get(low)), _number(schema.get(high))
    suffix = f" {unit}" if unit else ""
    if lo is not None and n < lo:
        out.append(f"{path}: {n}{suffix} < {low} {lo}")
    if hi is not None and n > hi:
        out.append(f"{path}: {n}{suffix} > {high} {hi}")


def _number(value: Any) -> float | None:
    return float(value) if _TYPES["number"](value) else None


def _json_type(value: Any) -> str:
    for name in ("null", "boolean", "integer", "number", "string", "array", "object"):
        if _TYPES[name](value):
            return name
    return type(value).__name__


def schema_errors(value: Any, schema: Any, *, root: Any = None) -> list[str]:
    """Violations of ``schema`` by ``value`` (at most five, ``$`` = the root), ``[]`` if valid."""
    errors: list[str] = []
    _validate(value, schema, schema if root is None else root, "$", errors)
    return errors[:_MAX_ERRORS]


# ------------------------------------------------------------------ the checks


def _choices(response: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    choices = response.get("choices")
    if not isinstance(choices, list):
        return []
    return [c for c in choices if isinstance(c, Mapping)]


def _message(choice: Mapping[str, Any]) -> Mapping[str, Any]:
    message = choice.get("message")
    return message if isinstance(message, Mapping) else {}


def _text(message: Mapping[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts
        return "".join(str(p.get("text") or "") for p in content if isinstance(p, Mapping))
    return ""


def _tool_calls(message: Mapping[str, Any]) -> list[tuple[str, Any]]:
    calls: list[tuple[str, Any]] = []
    for call in message.get("tool_calls") or ():
        fn = call.get("function") if isinstance(call, Mapping) else None
        if isinstance(fn, Mapping):
            calls.append((str(fn.get("name") or ""), fn.get("arguments")))
    legacy = message.get("function_call")
    if isinstance(legacy, Mapping):
        calls.append((str(legacy.get("name") or ""), legacy.get("arguments")))
    return calls


def _offered_tools(body: Mapping[str, Any]) -> dict[str, Any]:
    tools: dict[str, Any] = {}
    for tool in body.get("tools") or ():
        fn = tool.get("function") if isinstance(tool, Mapping) else None
        if isinstance(fn, Mapping) and fn.get("name"):
            tools[str(fn["name"])] = fn.get("parameters")
    for fn in body.get("functions") or ():
        if isinstance(fn, Mapping) and fn.get("name"):
            tools[str(fn["name"])] = fn.get("parameters")
    return tools


def _response_format(body: Mapping[str, Any]) -> tuple[str | None, Any]:
    fmt = body.get("response_format")
    if not isinstance(fmt, Mapping):
        return None, None
    kind = fmt.get("type")
    if kind == "json_schema":
        spec = fmt.get("json_schema")
        return kind, spec.get("schema") if isinstance(spec, Mapping) else None
    return (kind, None) if kind == "json_object" else (None, None)


def _check_choice(
    name: str,
    body: Mapping[str, Any],
    choice: Mapping[str, Any],
    regex: re.Pattern[str] | None,
    validator: Validator | None,
) -> str | None:
    """The failure detail of check ``name`` on one choice, ``None`` when it passes."""
    message = _message(choice)
    text = _text(message)
    calls = _tool_calls(message)
    if name == "empty":
        if message.get("refusal"):
            return f"refusal: {str(message['refusal'])[:80]}"
        return None if text.strip() or calls else "no text and no tool calls"
    if name == "truncated":
        return "finish_reason length" if choice.get("finish_reason") == "length" else None
    if name in ("json", "schema"):
        kind, schema = _response_format(body)
        if kind is None or (calls and not text.strip()):
            return None
        try:
            value = json.loads(text)
        except ValueError as exc:
            return f"not JSON: {exc}"
        if name == "json":
            is_object = isinstance(value, dict)
            return "not a JSON object" if kind == "json_object" and not is_object else None
        errors = schema_errors(value, schema) if kind == "json_schema" and schema else []
        return "; ".join(errors) or None
    if name == "tool_args":
        offered = _offered_tools(body)
        for tool, arguments in calls:
            if tool not in offered:
                return f"tool {tool!r} was not offered"
            try:
                args = json.loads(arguments) if isinstance(arguments, str) else arguments
            except ValueError as exc:
                return f"{tool}: arguments are not JSON: {exc}"
            if not isinstance(args, dict):
                return f"{tool}: arguments are not a JSON object"
            errors = schema_errors(args, offered[tool]) if offered[tool] else []
            if errors:
                return f"{tool}: " + "; ".join(errors)
        return None
    if name == "regex":
        if regex is None or regex.search(text):
            return None
        return f"no match for {regex.pattern!r}"
    if name == "validator":
        return None if validator is None or validator(text) else "rejected by the validator"
    raise ValueError(f"unknown cascade check {name!r}")  # pragma: no cover (checked above)


def check_answer(
    body: Mapping[str, Any],
    response: Mapping[str, Any],
    checks: Iterable[str] = DEFAULT_CHECKS,
    *,
    regex: str | re.Pattern[str] | None = None,
    validator: Validator | None = None,
) -> CheckResult:
    """Run ``checks`` (in order) on every choice of a ``chat.completion`` response to ``body``.

    ``regex`` / ``validator`` feed the ``regex`` / ``validator`` checks (a ``validator`` given
    here runs after the named checks even if not listed). Returns the first failure, or
    ``CheckResult(True)``.
    A response without choices fails ``empty`` when that check is on and passes otherwise.
    Raises ``ValueError`` for an unknown check name."""
    names: Sequence[str] = list(checks)
    unknown = [n for n in names if n not in _KNOWN]
    if unknown:
        raise ValueError(f"unknown cascade check(s) {unknown}: use {sorted(_KNOWN)}")
    if validator is not None and "validator" not in names:
        names = [*names, "validator"]
    pattern = re.compile(regex) if isinstance(regex, str) else regex
    choices = _choices(response)
    if not choices:
        ok = "empty" not in names
        return CheckResult(True) if ok else CheckResult(False, "empty", "no choices")
    for name in names:
        for i, choice in enumerate(choices):
            detail = _check_choice(name, body, choice, pattern, validator)
            if detail is not None:
                where = f"choice {i}: " if len(choices) > 1 else ""
                return CheckResult(False, name, where + detail)
    return CheckResult(True)
