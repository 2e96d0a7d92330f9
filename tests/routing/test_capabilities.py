"""What a request needs (tools, vision, JSON, size) and whether a catalog model provides it."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from thrifty.pricing import CostCalculator, PriceCatalog
from thrifty.routing.capabilities import (
    Candidate,
    Needs,
    Rejection,
    check_candidate,
    fits,
    format_tokens,
    required_capabilities,
)
from thrifty.tokens import count_request, request_upper_bound

CATALOG = PriceCatalog.bundled()
CALC = CostCalculator(CATALOG)


def chat(content: Any = "hello", **extra: Any) -> dict[str, Any]:
    return {"model": "auto", "messages": [{"role": "user", "content": content}], **extra}


def price(model: str) -> Any:
    entry = CATALOG.get(model)
    assert entry is not None, model
    return entry


def test_a_text_request_needs_nothing_special() -> None:
    b = chat("What is S3?")
    needs = required_capabilities(b)
    assert (needs.tools, needs.vision, needs.json) == (False, False, False)
    assert needs.max_output is None and needs.prompt_tokens is None
    assert needs.prompt_tokens_upper == request_upper_bound(b)
    assert needs.prompt_estimate == needs.prompt_tokens_upper
    assert needs.describe().startswith("text only; prompt ~")


@pytest.mark.parametrize(
    "extra",
    [
        {"tools": [{"type": "function", "function": {"name": "f"}}]},
        {"functions": [{"name": "f"}]},
    ],
)
def test_tool_definitions_need_tool_calling(extra: dict[str, Any]) -> None:
    assert required_capabilities(chat(**extra)).tools


def test_tool_history_needs_tool_calling() -> None:
    b = {
        "model": "auto",
        "messages": [
            {"role": "user", "content": "weather?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [{"id": "1", "type": "function", "function": {"name": "w"}}],
            },
            {"role": "tool", "tool_call_id": "1", "content": "sunny"},
        ],
    }
    assert required_capabilities(b).tools
    assert not required_capabilities(chat(tools=[])).tools


@pytest.mark.parametrize(
    "part",
    [
        {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
        {"type": "input_image", "image_url": "data:image/png;base64,AAAA"},
    ],
)
def test_image_parts_need_vision(part: dict[str, Any]) -> None:
    needs = required_capabilities(chat([{"type": "text", "text": "what is it?"}, part]))
    assert needs.vision and not needs.tools
    assert not required_capabilities(chat([{"type": "text", "text": "no image"}])).vision


@pytest.mark.parametrize(
    ("fmt", "json_mode"),
    [
        ({"type": "json_object"}, True),
        ({"type": "json_schema", "json_schema": {"name": "x", "schema": {}}}, True),
        ({"type": "text"}, False),
        ("json", False),
    ],
)
def test_response_format_json_needs_json_mode(fmt: Any, json_mode: bool) -> None:
    assert required_capabilities(chat(response_format=fmt)).json is json_mode


@pytest.mark.parametrize(
    ("extra", "max_output"),
    [
        ({"max_tokens": 300}, 300),
        ({"max_completion_tokens": 200, "max_tokens": 300}, 200),
        ({"max_completion_tokens": None, "max_tokens": 300}, 300),
        ({"max_tokens": 0}, None),
        ({"max_tokens": True}, None),
        ({"max_tokens": "300"}, None),
        ({}, None),
    ],
)
def test_max_output_comes_from_the_body(extra: dict[str, Any], max_output: int | None) -> None:
    assert required_capabilities(chat(**extra)).max_output == max_output


def test_counting_refines_the_bound_conservatively() -> None:
    b = chat("The quick brown fox jumps over the lazy dog. " * 200)
    bound = required_capabilities(b)
    counted = required_capabilities(b, count=True)
    assert counted.prompt_tokens is not None
    exact = count_request({**b, "model": "gpt-4o"}).tokens
    assert exact <= counted.prompt_tokens <= bound.prompt_tokens_upper
    assert counted.prompt_estimate == counted.prompt_tokens
    assert counted.counted(b) is counted


@pytest.mark.parametrize(
    "b",
    [{}, {"messages": "hi"}, {"messages": [None, 3, {"role": "user", "content": [None, 1]}]}],
)
def test_malformed_bodies_do_not_raise(b: dict[str, Any]) -> None:
    needs = required_capabilities(b)
    assert not (needs.tools or needs.vision or needs.json)


# ------------------------------------------------------------------ fits


def test_fits_reports_the_context_it_checked() -> None:
    assert fits(price("gpt-4o"), Needs(prompt_tokens_upper=1000)) == (True, "fits 128k context")
    ok, why = fits(price("gpt-4.1"), Needs(prompt_tokens_upper=1000, max_output=1000))
    assert ok and why == "fits 1.05M context"


@pytest.mark.parametrize(
    ("model", "needs", "why"),
    [
        ("gpt-4", Needs(prompt_tokens_upper=8000, max_output=500), "exceed the 8.19k context"),
        ("gpt-4", Needs(prompt_tokens_upper=8192), "fills the 8.19k context"),
        ("gpt-4o-mini", Needs(prompt_tokens_upper=10, max_output=20_000), "max output 20000"),
        ("o1-mini", Needs(tools=True), "no tool calling support"),
        ("gpt-5-chat-latest", Needs(tools=True), "no tool calling support"),
        ("claude-3-5-haiku", Needs(vision=True), "no vision support"),
        ("amazon.nova-micro-v1:0", Needs(vision=True), "no vision support"),
        ("gpt-4", Needs(json=True), "no JSON mode support"),
        ("meta.llama3-1-8b-instruct-v1:0", Needs(json=True), "no JSON mode support"),
    ],
)
def test_fits_rejects(model: str, needs: Needs, why: str) -> None:
    ok, reason = fits(price(model), needs)
    assert not ok
    assert why in reason


def test_fits_uses_the_count_when_made() -> None:
    needs = Needs(prompt_tokens_upper=200_000, prompt_tokens=60_000, max_output=1000)
    assert fits(price("gpt-4o-mini"), needs).ok
    assert not fits(price("gpt-4o-mini"), replace(needs, prompt_tokens=None)).ok


@pytest.mark.parametrize("model", ["gpt-4o", "claude-sonnet-4-5", "gemini-2.5-flash"])
def test_capable_models_fit_everything(model: str) -> None:
    needs = Needs(tools=True, vision=True, json=True, prompt_tokens_upper=5000, max_output=4000)
    assert fits(price(model), needs).ok


def test_unknown_capabilities_are_allowed_and_noted() -> None:
    needs = Needs(tools=True, vision=True, json=True, prompt_tokens_upper=10**7)
    assert fits(None, needs) == (True, "capabilities unknown (not in the price catalog)")
    no_window = replace(price("gpt-4o"), context_window=None)
    ok, why = fits(no_window, Needs(prompt_tokens_upper=10**7))
    assert ok and why == "context window unknown"


@pytest.mark.parametrize(
    ("n", "text"),
    [(512, "512"), (8192, "8.19k"), (16385, "16k"), (128_000, "128k"), (1_047_576, "1.05M")],
)
def test_format_tokens(n: int, text: str) -> None:
    assert format_tokens(n) == text


# ------------------------------------------------------------------ check_candidate


def test_check_candidate_availability_fit_and_cap() -> None:
    needs = Needs(prompt_tokens_upper=1000, max_output=1000)
    ok = check_candidate("gpt-4o", "large", needs, CALC)
    assert isinstance(ok, Candidate) and ok.tier == "large"
    assert ok.worst_case_usd == pytest.approx((1000 * 2.5 + 1000 * 10) / 1e6)
    gone = check_candidate("gpt-4o", "large", needs, CALC, available={"gpt-4o-mini"})
    assert gone == Rejection("gpt-4o", "unavailable")
    capped = check_candidate("gpt-4o", "large", needs, CALC, cap_usd=0.01)
    assert isinstance(capped, Rejection) and capped.on_size
    assert capped.reason == "worst case $0.0125 > cap $0.0100"
    assert capped.worst_case_usd == pytest.approx(0.0125)
    assert isinstance(check_candidate("gpt-4o", "large", needs, CALC, cap_usd=0.0125), Candidate)
    unpriced = check_candidate("my-own-llm", "small", needs, CALC, cap_usd=1.0)
    assert isinstance(unpriced, Rejection) and "unpriced" in unpriced.reason
    free = check_candidate("my-own-llm", "small", needs, CALC)
    assert isinstance(free, Candidate) and free.worst_case_usd is None
    too_long = check_candidate("gpt-4", "small", Needs(prompt_tokens_upper=9000), CALC)
    assert isinstance(too_long, Rejection) and too_long.on_size
