"""Context pruning: invariants (property-based) and the truncation marker."""

from __future__ import annotations

import copy
import itertools
import os
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from thrifty.tokens import count_request
from thrifty.tokens.optimize import PRUNE_MARKER, conversation_turns, prune_context

INSTRUCTION = ("system", "developer")
WORDS = ["alpha", "beta", "gamma", "delta", "the", "EC2", "instance", "restart", "42", "\n", "é"]
# THRIFTY_EXAMPLES raises the example count for a deeper local run.
PROPS = settings(
    max_examples=int(os.environ.get("THRIFTY_EXAMPLES", "60")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

text = st.lists(st.sampled_from(WORDS), min_size=1, max_size=60).map(" ".join)


@st.composite
def conversations(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Valid chat conversations: instructions, an optional greeting, turns with tool rounds."""
    ids = itertools.count()
    messages: list[dict[str, Any]] = [
        {"role": draw(st.sampled_from(INSTRUCTION)), "content": draw(text)}
        for _ in range(draw(st.integers(0, 2)))
    ]
    if draw(st.booleans()):
        messages.append({"role": "assistant", "content": draw(text)})
    for _ in range(draw(st.integers(1, 6))):
        if draw(st.integers(0, 5)) == 0:  # an instruction between turns
            messages.append({"role": "developer", "content": draw(text)})
        if draw(st.booleans()):
            messages.append({"role": "user", "content": draw(text)})
        else:
            parts: list[dict[str, Any]] = [{"type": "text", "text": draw(text)}]
            if draw(st.booleans()):
                parts.append({"type": "image_url", "image_url": {"url": "https://x/y.png"}})
            messages.append({"role": "user", "content": parts})
        for _ in range(draw(st.integers(0, 2))):
            calls = [
                {
                    "id": f"call_{next(ids)}",
                    "type": "function",
                    "function": {"name": "lookup", "arguments": f'{{"q": "{draw(text)}"}}'},
                }
                for _ in range(draw(st.integers(1, 3)))
            ]
            messages.append({"role": "assistant", "content": None, "tool_calls": calls})
            for call in calls:
                messages.append({"role": "tool", "tool_call_id": call["id"], "content": draw(text)})
        if draw(st.booleans()):
            messages.append({"role": "assistant", "content": draw(text)})
    return messages


def problems(messages: list[dict[str, Any]]) -> list[str]:
    """Why ``messages`` is not a valid Chat Completions conversation (independent of Thrifty)."""
    found: list[str] = []
    chat = [m for m in messages if m["role"] not in INSTRUCTION]
    if not chat:
        return ["no message besides instructions"]
    if chat[0]["role"] == "tool":
        found.append("leading tool message")
    pending: set[str] = set()
    for m in chat:
        if m["role"] == "tool":
            if m["tool_call_id"] not in pending:
                found.append(f"orphan tool result {m['tool_call_id']}")
            pending.discard(m["tool_call_id"])
            continue
        if pending:
            found.append(f"unanswered tool calls {sorted(pending)}")
            pending = set()
        if m.get("tool_calls"):
            pending = {c["id"] for c in m["tool_calls"]}
    if pending:
        found.append(f"unanswered tool calls {sorted(pending)}")
    return found


def last_turns_start(messages: list[dict[str, Any]], n: int) -> int:
    """Index (in the non-instruction messages) where the last ``n`` turns begin."""
    chat = [m for m in messages if m["role"] not in INSTRUCTION]
    starts = [i for i, m in enumerate(chat) if m["role"] == "user" or i == 0]
    return starts[-n] if n <= len(starts) else 0


def body_of(messages: list[dict[str, Any]], model: str = "gpt-4o") -> dict[str, Any]:
    return {"model": model, "messages": messages, "temperature": 0.2}


@PROPS
@given(
    messages=conversations(),
    fraction=st.floats(0, 1.2),
    keep=st.integers(1, 3),
    truncate=st.booleans(),
)
def test_pruning_invariants(
    messages: list[dict[str, Any]], fraction: float, keep: int, truncate: bool
) -> None:
    assert problems(messages) == []
    body = body_of(messages)
    original = copy.deepcopy(body)
    before = count_request(body).tokens
    budget = int(before * fraction)

    new, result = prune_context(body, budget, keep_last_turns=keep, truncate=truncate)

    assert body == original  # the input is never mutated
    assert new["temperature"] == 0.2 and new["model"] == "gpt-4o"
    out = new["messages"]
    assert problems(out) == []
    # Instructions are all kept, unchanged and in order.
    assert [m for m in out if m["role"] in INSTRUCTION] == [
        m for m in messages if m["role"] in INSTRUCTION
    ]
    # What is kept is a suffix of the conversation (oldest turns go first); at most its first
    # message is truncated, with the marker.
    chat_in = [m for m in messages if m["role"] not in INSTRUCTION]
    chat_out = [m for m in out if m["role"] not in INSTRUCTION]
    suffix = chat_in[len(chat_in) - len(chat_out) :]
    assert chat_out[1:] == suffix[1:]
    if chat_out[0] != suffix[0]:
        assert truncate and result.messages_truncated == 1
        assert "tokens pruned by Thrifty" in str(chat_out[0]["content"])
    # The last `keep` turns are kept untouched.
    tail = chat_in[last_turns_start(messages, keep) :]
    assert chat_out[len(chat_out) - len(tail) :] == tail
    # Tool calls and their results stay together.
    kept_ids = {c["id"] for m in chat_out for c in m.get("tool_calls") or []}
    assert {m["tool_call_id"] for m in chat_out if m["role"] == "tool"} == kept_ids
    # The result reports the truth, and meets the budget whenever that is possible.
    after = count_request(new).tokens
    assert result.tokens_before == before and result.tokens_after == after
    assert result.messages_dropped == len(messages) - len(out)
    assert result.tokens_saved == before - after
    assert result.within_budget == (after <= budget)
    minimal = [m for m in messages if m["role"] in INSTRUCTION] + tail
    if count_request(body_of(minimal)).tokens <= budget:
        assert result.within_budget
    else:
        assert not result.within_budget
        tail_ids = {id(m) for m in tail}
        assert out == [m for m in messages if m["role"] in INSTRUCTION or id(m) in tail_ids]
    if before <= budget:
        assert out == messages and result.note == "within budget"


@PROPS
@given(messages=conversations())
def test_turns_partition_the_conversation(messages: list[dict[str, Any]]) -> None:
    turns = conversation_turns(messages)
    flat = [i for turn in turns for i in turn]
    assert flat == [i for i, m in enumerate(messages) if m["role"] not in INSTRUCTION]
    for turn in turns[1:]:
        assert messages[turn[0]]["role"] == "user"


def long_conversation() -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = [{"role": "system", "content": "You are a support agent."}]
    for k in range(4):
        messages.append({"role": "user", "content": f"Question {k}: " + "lorem ipsum " * 200})
        messages.append({"role": "assistant", "content": "An answer. " * 20})
    return messages


def test_truncates_the_oldest_kept_message_when_that_is_enough() -> None:
    body = body_of(long_conversation())
    before = count_request(body).tokens
    new, result = prune_context(body, before - 50)
    assert result.within_budget and result.turns_dropped == 0
    assert result.messages_truncated == 1 and result.tokens_truncated > 50
    first = new["messages"][1]["content"]
    assert first.startswith("Question 0: lorem ipsum")
    assert first.endswith(PRUNE_MARKER.format(tokens=result.tokens_truncated))
    assert new["messages"][2:] == body["messages"][2:]


def test_drops_whole_turns_when_truncation_is_off() -> None:
    body = body_of(long_conversation())
    before = count_request(body).tokens
    new, result = prune_context(body, before - 50, truncate=False)
    assert result.within_budget and result.turns_dropped == 1 and result.messages_dropped == 2
    assert new["messages"] == body["messages"][:1] + body["messages"][3:]


def test_unreachable_budget_returns_the_smallest_valid_body() -> None:
    body = body_of(long_conversation())
    new, result = prune_context(body, 10, keep_last_turns=1)
    assert not result.within_budget
    assert new["messages"] == [body["messages"][0], *body["messages"][-2:]]
    assert "not reachable" in result.note


def test_a_tool_result_after_a_user_message_stays_with_its_call() -> None:
    # Not valid for OpenAI, but seen from clients: the pair must still not be separated.
    messages: list[dict[str, Any]] = [
        {"role": "user", "content": "lorem ipsum " * 300},
        {"role": "assistant", "tool_calls": [{"id": "a", "function": {"name": "f"}}]},
        {"role": "user", "content": "lorem ipsum " * 300},
        {"role": "tool", "tool_call_id": "a", "content": "done"},
        {"role": "user", "content": "last"},
    ]
    assert conversation_turns(messages) == [[0, 1, 2, 3], [4]]
    new, result = prune_context(body_of(messages), 30, keep_last_turns=1, truncate=False)
    assert new["messages"] == messages[-1:]
    assert result.turns_dropped == 1 and result.messages_dropped == 4


def test_truncates_text_parts_and_keeps_images() -> None:
    image = {"type": "image_url", "image_url": {"url": "https://x/y.png", "detail": "low"}}
    messages: list[dict[str, Any]] = [
        {"role": "user", "content": [{"type": "text", "text": "lorem ipsum " * 300}, image]},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": "and now?"},
    ]
    body = body_of(messages)
    new, result = prune_context(body, count_request(body).tokens - 100, keep_last_turns=1)
    assert result.within_budget and result.messages_truncated == 1
    parts = new["messages"][0]["content"]
    assert parts[1] is image and "tokens pruned by Thrifty" in parts[0]["text"]


def test_estimated_models_are_counted_for_their_model() -> None:
    body = body_of(long_conversation(), model="claude-sonnet-4-5")
    before = count_request(body)
    assert before.source == "estimated"
    budget = before.tokens * 3 // 5
    new, result = prune_context(body, budget)
    assert result.within_budget and count_request(new).tokens <= budget
    assert result.turns_dropped == 1 and result.messages_truncated == 1


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        prune_context(body_of([]), -1)
    with pytest.raises(ValueError):
        prune_context(body_of([]), 10, keep_last_turns=0)
    new, result = prune_context({"model": "gpt-4o"}, 100)
    assert new == {"model": "gpt-4o", "messages": []} and result.within_budget
