"""Cascade checks: each failed check escalates, a good answer does not; the schema subset."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from thrifty.errors import ConfigError
from thrifty.routing.cascade import (
    DEFAULT_CHECKS,
    CheckResult,
    cascade_plan,
    check_answer,
    schema_errors,
)
from thrifty.routing.policy_config import CHECK_NAMES, RouteGroupConfig

ALL = [c for c in CHECK_NAMES if c != "regex"]
PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "minLength": 1},
        "age": {"type": "integer", "minimum": 0},
        "role": {"enum": ["admin", "user"]},
    },
    "required": ["name", "age"],
    "additionalProperties": False,
}
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"enum": ["c", "f"]}},
            "required": ["city"],
        },
    },
}


def request(**extra: Any) -> dict[str, Any]:
    return {"model": "auto", "messages": [{"role": "user", "content": "hi"}], **extra}


def answer(
    content: Any = "Hello there.",
    finish: str = "stop",
    tool_calls: list[dict[str, Any]] | None = None,
    **message: Any,
) -> dict[str, Any]:
    msg: dict[str, Any] = {"role": "assistant", "content": content, **message}
    if tool_calls is not None:
        msg["tool_calls"] = tool_calls
    return {
        "object": "chat.completion",
        "choices": [{"index": 0, "message": msg, "finish_reason": finish}],
    }


def call(name: str, arguments: Any) -> dict[str, Any]:
    return {"id": "c1", "type": "function", "function": {"name": name, "arguments": arguments}}


JSON_OBJECT = request(response_format={"type": "json_object"})
JSON_SCHEMA = request(
    response_format={"type": "json_schema", "json_schema": {"name": "person", "schema": PERSON}}
)
TOOLS = request(tools=[WEATHER_TOOL])

# (check, request body, failing response, detail fragment, passing response)
CASES = [
    ("json", JSON_OBJECT, answer("Sure! {name: 1}"), "not JSON", answer('{"a": 1}')),
    ("json", JSON_OBJECT, answer("[1, 2]"), "not a JSON object", answer("{}")),
    ("json", JSON_SCHEMA, answer("```json\n{}"), "not JSON", answer('{"name": "A", "age": 3}')),
    ("schema", JSON_SCHEMA, answer('{"name": "A"}'), "missing required property 'age'",
     answer('{"name": "A", "age": 3, "role": "user"}')),
    ("schema", JSON_SCHEMA, answer('{"name": "A", "age": "3"}'), "$.age: expected integer",
     answer('{"name": "A", "age": 3.0}')),
    ("schema", JSON_SCHEMA, answer('{"name": "A", "age": 3, "x": 1}'), "unexpected property 'x'",
     answer('{"name": "A", "age": 0}')),
    ("schema", JSON_SCHEMA, answer('{"name": "A", "age": 3, "role": "root"}'), "is not one of",
     answer('{"name": "A", "age": 3, "role": "admin"}')),
    ("schema", JSON_SCHEMA, answer("not json"), "not JSON", answer('{"name": "A", "age": 1}')),
    ("tool_args", TOOLS, answer(None, tool_calls=[call("get_weather", "{city: Paris}")]),
     "arguments are not JSON", answer(None, tool_calls=[call("get_weather", '{"city": "Paris"}')])),
    ("tool_args", TOOLS, answer(None, tool_calls=[call("get_weather", '{"unit": "c"}')]),
     "missing required property 'city'",
     answer(None, tool_calls=[call("get_weather", '{"city": "Oslo", "unit": "c"}')])),
    ("tool_args", TOOLS, answer(None, tool_calls=[call("get_weather", '"Paris"')]),
     "not a JSON object", answer(None, tool_calls=[call("get_weather", {"city": "Rome"})])),
    ("tool_args", TOOLS, answer(None, tool_calls=[call("get_time", "{}")]),
     "'get_time' was not offered", answer("No tool needed.")),
    ("tool_args", request(functions=[WEATHER_TOOL["function"]]),
     answer(None, function_call={"name": "get_weather", "arguments": "{}"}),
     "missing required property 'city'",
     answer(None, function_call={"name": "get_weather", "arguments": '{"city": "Oslo"}'})),
    ("empty", request(), answer(""), "no text and no tool calls", answer("ok")),
    ("empty", request(), answer("  \n "), "no text and no tool calls", answer("0")),
    ("empty", TOOLS, answer(None, refusal="I can't help with that."), "refusal",
     answer(None, tool_calls=[call("get_weather", '{"city": "Oslo"}')])),
    ("empty", request(), {"choices": []}, "no choices", answer([{"type": "text", "text": "x"}])),
    ("truncated", request(), answer("The answer is", finish="length"), "finish_reason length",
     answer("The answer is 42.", finish="stop")),
]  # fmt: skip


@pytest.mark.parametrize(("check", "body", "bad", "detail", "good"), CASES)
def test_each_failed_check_escalates_and_a_good_answer_does_not(
    check: str, body: dict[str, Any], bad: dict[str, Any], detail: str, good: dict[str, Any]
) -> None:
    result = check_answer(body, bad, [check])
    assert not result.ok
    assert result.failed == check
    assert detail in result.detail
    assert check_answer(body, good, [check]) == CheckResult(True)
    # the full default set also passes the good answer and fails the bad one
    assert check_answer(body, good, ALL).ok
    assert not check_answer(body, bad, ALL).ok


def test_checks_that_do_not_apply_pass() -> None:
    assert check_answer(request(), answer("not json at all"), ["json", "schema"]).ok
    assert check_answer(JSON_SCHEMA, answer(None, tool_calls=[call("f", "{}")]), ["json"]).ok
    assert check_answer(request(), answer("plain text"), ["tool_args"]).ok
    assert check_answer(request(), answer(""), ["json", "truncated"]).ok
    assert check_answer(request(), {"choices": []}, ["json"]).ok
    no_schema = request(response_format={"type": "json_schema", "json_schema": {"name": "x"}})
    assert check_answer(no_schema, answer("[1]"), ["schema"]).ok
    assert check_answer(request(), answer("x"), []).ok


def test_checks_run_in_the_configured_order() -> None:
    bad = answer("", finish="length")
    assert check_answer(request(), bad, ["empty", "truncated"]).failed == "empty"
    assert check_answer(request(), bad, ["truncated", "empty"]).failed == "truncated"
    assert check_answer(request(), bad).failed == "empty"
    assert DEFAULT_CHECKS == ("json", "schema", "tool_args", "empty", "truncated")


def test_every_choice_is_checked() -> None:
    response = answer("fine")
    response["choices"].append(
        {"index": 1, "message": {"role": "assistant", "content": "cut"}, "finish_reason": "length"}
    )
    result = check_answer(request(n=2), response, ["truncated"])
    assert (result.ok, result.failed, result.detail) == (
        False,
        "truncated",
        "choice 1: finish_reason length",
    )


def test_regex_must_match_the_answer() -> None:
    regex = r"^ANSWER: \d+$"
    assert check_answer(request(), answer("ANSWER: 42"), ["regex"], regex=regex).ok
    result = check_answer(request(), answer("I think 42"), ["regex"], regex=regex)
    assert (result.ok, result.failed) == (False, "regex")
    assert "no match" in result.detail
    assert check_answer(request(), answer("anything"), ["regex"]).ok  # no regex: nothing to do


def test_validator_runs_after_the_named_checks() -> None:
    def short(text: str) -> bool:
        return len(text) < 10

    assert check_answer(request(), answer("brief"), validator=short).ok
    result = check_answer(request(), answer("far too long an answer"), validator=short)
    assert result.failed == "validator"
    assert check_answer(request(), answer("", finish="stop"), validator=short).failed == "empty"


def test_unknown_check_names_are_an_error() -> None:
    with pytest.raises(ValueError, match="unknown cascade check"):
        check_answer(request(), answer(), ["json", "vibes"])


# ------------------------------------------------------------------ the schema subset


@pytest.mark.parametrize(
    ("value", "schema", "error"),
    [
        (1, {"type": "string"}, "expected string, got integer"),
        (True, {"type": "integer"}, "expected integer, got boolean"),
        (1.5, {"type": "integer"}, "expected integer, got number"),
        (None, {"type": ["string", "number"]}, "expected string/number, got null"),
        ([1, "a"], {"type": "array", "items": {"type": "integer"}}, "$[1]: expected integer"),
        ([], {"type": "array", "minItems": 1}, "minItems"),
        ("abc", {"type": "string", "maxLength": 2}, "maxLength"),
        ("abc", {"pattern": "^[0-9]+$"}, "does not match"),
        (5, {"maximum": 4}, "maximum"),
        (4, {"exclusiveMaximum": 4}, "must be < 4"),
        ("x", {"const": "y"}, "expected 'y'"),
        ({"a": 1}, {"additionalProperties": {"type": "string"}}, "$.a: expected string"),
        (3, {"anyOf": [{"type": "string"}, {"type": "null"}]}, "matches 0 of the anyOf"),
        (3, {"oneOf": [{"type": "integer"}, {"type": "number"}]}, "matches 2 of the oneOf"),
        (3, {"allOf": [{"type": "integer"}, {"minimum": 4}]}, "minimum"),
        ({"p": {"n": 1}}, {"properties": {"p": {"$ref": "#/$defs/P"}},
                           "$defs": {"P": {"required": ["m"]}}}, "$.p: missing required"),
        ({"a": 1}, False, "not allowed"),
    ],
)  # fmt: skip
def test_schema_errors(value: Any, schema: Any, error: str) -> None:
    errors = schema_errors(value, schema)
    assert errors and error in "; ".join(errors)


@pytest.mark.parametrize(
    ("value", "schema"),
    [
        ({"name": "A", "age": 2}, PERSON),
        (2.0, {"type": "integer"}),
        (None, {"type": ["string", "null"]}),
        ({"x": [1, 2]}, {"properties": {"x": {"type": "array", "items": {"type": "number"}}}}),
        ("ok", {"anyOf": [{"type": "string"}, {"type": "null"}]}),
        ({"a": 1}, {"$ref": "https://example.com/remote.json"}),
        ({"a": 1}, {"unknownKeyword": 1, "format": "email"}),
        ({"a": 1}, True),
        ("abc", {"pattern": "("}),
    ],
)
def test_schema_accepts(value: Any, schema: Any) -> None:
    assert schema_errors(value, schema) == []


def test_schema_errors_are_capped() -> None:
    schema = {"type": "object", "required": [f"k{i}" for i in range(20)]}
    assert len(schema_errors({}, schema)) == 5


# ------------------------------------------------------------------ the plan


def group(**cascade: Any) -> RouteGroupConfig:
    return RouteGroupConfig.model_validate(
        {
            "tiers": {"small": ["gpt-4o-mini"], "medium": ["gpt-4.1-mini"], "large": ["gpt-4o"]},
            "cascade": {"enabled": True, **cascade},
        }
    )


def test_cascade_plan_defaults_to_the_smallest_and_largest_tier() -> None:
    assert cascade_plan(group()) == ("gpt-4o-mini", "gpt-4o")
    assert cascade_plan(group(cheap="gpt-4.1-nano", strong="o3")) == ("gpt-4.1-nano", "o3")
    medium_only = RouteGroupConfig.model_validate(
        {"tiers": {"medium": ["a", "b"]}, "cascade": {"strong": "b"}}
    )
    assert cascade_plan(medium_only) == ("a", "b")
    same = RouteGroupConfig.model_validate({"tiers": {"medium": ["a"]}})
    with pytest.raises(ConfigError, match="two different models"):
        cascade_plan(same)
    with pytest.raises(ValidationError, match="two models"):
        group(cheap="gpt-4o")


def test_cascade_config_regex_and_checks() -> None:
    cfg = group(regex=r"\bDONE\b").cascade
    assert cfg.checks == (*DEFAULT_CHECKS, "regex")
    assert check_answer(request(), answer("all DONE"), cfg.checks, regex=cfg.regex).ok
    assert check_answer(request(), answer("not yet"), cfg.checks, regex=cfg.regex).failed == (
        "regex"
    )
    with pytest.raises(ValidationError, match="Input should be"):
        group(checks=["json", "vibes"])
    assert json.dumps(group().cascade.model_dump())
