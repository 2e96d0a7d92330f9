"""Small type checks that turn a bad field into an OpenAI-style 400 naming the field."""

from __future__ import annotations

from typing import Any

from thrifty.errors import InvalidRequestError


def fail(param: str, message: str) -> InvalidRequestError:
    return InvalidRequestError(message, param=param, code="invalid_value")


def type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


_PLAIN_TYPES: dict[str, type] = {"string": str, "boolean": bool, "object": dict, "array": list}


def expect_type(param: str, value: Any, expected: str) -> None:
    plain = _PLAIN_TYPES.get(expected)
    if plain is not None:
        ok = isinstance(value, plain)
    elif expected == "integer":
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif expected == "number":
        ok = isinstance(value, int | float) and not isinstance(value, bool)
    else:
        raise KeyError(expected)
    if not ok:
        raise InvalidRequestError(
            f"Invalid type for '{param}': expected {_article(expected)}, "
            f"but got {_article(type_name(value))} instead.",
            param=param,
            code="invalid_type",
        )


def expect_range(param: str, value: float, lo: float | None, hi: float | None) -> None:
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        if lo is not None and hi is not None:
            bound = f"between {lo:g} and {hi:g}"
        elif lo is not None:
            bound = f"at least {lo:g}"
        else:
            bound = f"at most {hi:g}"
        raise fail(param, f"Invalid value for '{param}': {value!r} must be {bound}.")


def _article(word: str) -> str:
    return ("an " if word[0] in "aeiou" else "a ") + word
