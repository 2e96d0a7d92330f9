"""Prompt compression: lossless invariants (property-based) and the opt-in lossy lever."""

from __future__ import annotations

import copy
import json
import os
import re
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from thrifty.tokens import count_request
from thrifty.tokens.optimize import LOSSY_REWRITES, compress_lossless, compress_lossy

# THRIFTY_EXAMPLES raises the example count for a deeper local run.
PROPS = settings(
    max_examples=int(os.environ.get("THRIFTY_EXAMPLES", "80")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

# Prose: words, punctuation and every kind of whitespace run, but no backticks or tildes (so it
# opens no code block of its own) and no brackets (so it holds no JSON).
PROSE_PIECES = ["word", "Hello", "x", "é", "42", ",", ".", '"', "'", ":", "-", "#", "*"]
WHITESPACE = [" ", "  ", "   ", "\t", " \t ", "\n", "\n\n", "\n\n\n\n", "  \n", "\r\n", "\n    "]
prose = st.lists(st.sampled_from(PROSE_PIECES + WHITESPACE), max_size=40).map("".join)

# Strings full of what compression acts on outside JSON: whitespace runs, quotes, backticks.
json_strings = st.text(max_size=12) | st.lists(
    st.sampled_from(["a", " ", "  ", "\t", " \n", "`", "```", '"', "\\", "{", "["]), max_size=8
).map("".join)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**20), 10**20)
    | st.floats(allow_nan=False, allow_infinity=False)
    | json_strings,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(json_strings, inner, max_size=4),
    max_leaves=12,
)
json_containers = st.one_of(
    st.lists(json_values, max_size=4), st.dictionaries(json_strings, json_values, max_size=4)
)


@st.composite
def json_texts(draw: st.DrawFn) -> tuple[Any, str]:
    value = draw(json_containers)
    indent = draw(st.sampled_from([None, 0, 1, 2, 4, "\t"]))
    text = json.dumps(value, indent=indent, ensure_ascii=draw(st.booleans()))
    return value, text


@st.composite
def fences(draw: st.DrawFn) -> str:
    """A fenced code block whose lines hold anything but a closing fence."""
    char = draw(st.sampled_from(["`", "~"]))
    width = draw(st.integers(3, 5))
    info = draw(st.sampled_from(["", "python", "json", " js "]))
    line = st.text(alphabet='ab {}[]":,`~\t\r#*\u00e9', max_size=30).filter(
        lambda s: not re.fullmatch(r"[ \t\r]*([`~])\1{2,}[ \t\r]*", s)
    )
    lines = draw(st.lists(line, max_size=6))
    indent = draw(st.sampled_from(["", "  "]))
    fence = char * width
    return "\n".join([indent + fence + info, *lines, indent + fence])


@st.composite
def documents(draw: st.DrawFn) -> tuple[str, list[str]]:
    """Prose interleaved with fenced blocks and JSON blocks; returns (text, fenced blocks)."""
    pieces: list[str] = []
    blocks: list[str] = []
    for _ in range(draw(st.integers(1, 4))):
        pieces.append(draw(prose))
        kind = draw(st.sampled_from(["fence", "json", "none"]))
        if kind == "fence":
            block = draw(fences())
            blocks.append(block)
            pieces.append("\n" + block + "\n")
        elif kind == "json":
            pieces.append("\n" + draw(json_texts())[1] + "\n")
    return "".join(pieces), blocks


def body_with(content: Any, model: str = "gpt-4o") -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": content}]}


def content_of(body: dict[str, Any]) -> Any:
    return body["messages"][0]["content"]


@PROPS
@given(doc=documents(), as_parts=st.booleans())
def test_fenced_blocks_are_byte_identical(doc: tuple[str, list[str]], as_parts: bool) -> None:
    text, blocks = doc
    content: Any = [{"type": "text", "text": text}] if as_parts else text
    new, _ = compress_lossless(body_with(content))
    out = content_of(new)[0]["text"] if as_parts else content_of(new)
    pos = 0
    for block in blocks:
        found = out.find(block, pos)
        assert found >= 0, (block, out)
        pos = found + len(block)


@PROPS
@given(doc=documents(), model=st.sampled_from(["gpt-4o", "gpt-4", "claude-3-5-haiku"]))
def test_lossless_is_idempotent_and_never_adds_tokens(
    doc: tuple[str, list[str]], model: str
) -> None:
    body = body_with(doc[0], model)
    original = copy.deepcopy(body)
    once, result = compress_lossless(body)
    assert body == original
    if result.texts_changed or result.duplicates_dropped:
        assert result.tokens_before == count_request(body).tokens
        assert result.tokens_after == count_request(once).tokens <= result.tokens_before
    else:  # nothing to rewrite: nothing counted, nothing saved
        assert once == body and result.tokens_saved == 0
    twice, again = compress_lossless(once)
    assert twice == once and again.tokens_saved == 0


@PROPS
@given(
    value_text=json_texts(),
    before=prose,
    after=prose,
    where=st.sampled_from(["whole", "block", "inline"]),
)
def test_json_values_survive(
    value_text: tuple[Any, str], before: str, after: str, where: str
) -> None:
    value, text = value_text
    if where == "whole":
        new, _ = compress_lossless(body_with(f" \n{text}\n\n "))
        assert json.loads(content_of(new)) == value
        return
    # Markers the compressor leaves alone tell where the JSON went.
    head, tail = ("<<<\n", "\n>>>") if where == "block" else ("<<< ", " >>>")
    new, _ = compress_lossless(body_with(f"{before}\n{head}{text}{tail}\n{after}"))
    out = content_of(new)
    start = out.index(head.rstrip()) + len(head.rstrip())
    end = out.rindex(tail.lstrip())
    assert json.loads(out[start:end]) == value


@PROPS
@given(value_text=json_texts())
def test_tool_call_arguments_are_minified_to_the_same_value(value_text: tuple[Any, str]) -> None:
    value, text = value_text
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": text}}
    body = {
        "model": "gpt-4o",
        "messages": [
            {"role": "user", "content": "go"},
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "c1", "content": text},
        ],
    }
    new, result = compress_lossless(body)
    args = new["messages"][1]["tool_calls"][0]["function"]["arguments"]
    assert json.loads(args) == value and json.loads(new["messages"][2]["content"]) == value
    assert result.tokens_after <= result.tokens_before


lossy_phrases = st.sampled_from([phrase for phrase, _ in LOSSY_REWRITES])


@PROPS
@given(
    pieces=st.lists(
        st.one_of(lossy_phrases, st.sampled_from(PROSE_PIECES + WHITESPACE)), max_size=30
    )
)
def test_lossless_changes_only_whitespace_in_prose(pieces: list[str]) -> None:
    text = "".join(pieces)
    new, result = compress_lossless(body_with(text))
    assert content_of(new).split() == text.split()
    assert result.rewrites == 0 and not result.lossy


def test_lossless_examples() -> None:
    text = (
        "\n\nHello   world,  this is   a test.   \n\n\n\n"
        'Keep "a  b" and `x   y` as they are.\n'
        "```python\ndef f(  x ):    \n    return   x\n```\n"
        "    indented   line\tand\ttabs\n"
        '```json\n{\n  "fenced": true\n}\n```\n'
        '{\n  "a": [1,   2.50,  3],\n  "b": "x    y"\n}\n'
        "End.   \n\n"
    )
    new, result = compress_lossless(body_with(text))
    assert content_of(new) == (
        "Hello world, this is a test.\n\n"
        'Keep "a  b" and `x   y` as they are.\n'
        "```python\ndef f(  x ):    \n    return   x\n```\n"
        "    indented line\tand\ttabs\n"
        '```json\n{\n  "fenced": true\n}\n```\n'
        '{"a":[1,2.50,3],"b":"x    y"}\n'
        "End."
    )
    assert result.json_minified == 1 and result.texts_changed == 1
    assert result.tokens_saved > 0


def test_whole_json_content_is_minified() -> None:
    payload = json.dumps({"rows": [{"id": i, "name": f"item {i}"} for i in range(5)]}, indent=2)
    body = {
        "model": "gpt-4o",
        "messages": [{"role": "tool", "tool_call_id": "x", "content": payload}],
    }
    new, result = compress_lossless(body)
    assert new["messages"][0]["content"] == json.dumps(json.loads(payload), separators=(",", ":"))
    assert result.json_minified == 1 and result.tokens_saved > 0


def test_duplicate_system_messages_are_dropped() -> None:
    rules = {"role": "system", "content": "Answer in French.  "}
    body = {
        "model": "gpt-4o",
        "messages": [
            rules,
            {"role": "user", "content": "hi"},
            {"role": "system", "content": "Answer in French."},
            {"role": "developer", "content": "Answer in French."},
            {"role": "user", "content": "hi"},
        ],
    }
    new, result = compress_lossless(body)
    assert [m["role"] for m in new["messages"]] == ["system", "user", "developer", "user"]
    assert result.duplicates_dropped == 1
    kept, _ = compress_lossless(body, dedupe_system=False)
    assert len(kept["messages"]) == 5


def test_switches_and_untouched_parts() -> None:
    image = {"type": "image_url", "image_url": {"url": "https://x/y.png"}}
    body = {
        "model": "gpt-4o",
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "a  b\n[1,  2]"}, image]}
        ],
        "tools": [{"type": "function", "function": {"name": "f", "description": "x  y"}}],
    }
    new, _ = compress_lossless(body)
    assert new["messages"][0]["content"] == [{"type": "text", "text": "a b\n[1,2]"}, image]
    assert new["messages"][0]["content"][1] is image and new["tools"] is body["tools"]
    no_ws, _ = compress_lossless(body, whitespace=False)
    assert no_ws["messages"][0]["content"][0]["text"] == "a  b\n[1,2]"
    no_json, _ = compress_lossless(body, minify_json=False)
    assert no_json["messages"][0]["content"][0]["text"] == "a b\n[1,  2]"
    unchanged = {"model": "gpt-4o", "messages": [{"role": "user", "content": "fine"}]}
    same, result = compress_lossless(unchanged)
    assert same == unchanged and same is not unchanged and result.tokens_saved == 0


def test_lossy_rewrites_filler_only_when_asked() -> None:
    text = (
        "Could you please explain how EC2 works? I would like to know, in order to decide. "
        'Please note that the `in order to` in code stays, and so does "in order to".\n'
        "```\nin order to\n```"
    )
    body = body_with(text)
    lossless, _ = compress_lossless(body)
    assert content_of(lossless) == text
    new, result = compress_lossy(body)
    assert content_of(new) == (
        "Explain how EC2 works? To decide. "
        'The `in order to` in code stays, and so does "in order to".\n'
        "```\nin order to\n```"
    )
    assert result.lossy and result.rewrites == 4 and result.tokens_saved > 0


def test_lossy_respects_roles_and_replacement_case() -> None:
    body = {
        "model": "gpt-4o",
        "messages": [
            {"role": "system", "content": "In order to help, answer with regard to AWS."},
            {"role": "assistant", "content": "In order to help I asked."},
            {"role": "user", "content": "Due to the fact that it failed, could you explain why?"},
        ],
    }
    new, result = compress_lossy(body)
    assert [m["content"] for m in new["messages"]] == [
        "To help, answer about AWS.",
        "In order to help I asked.",
        "Because it failed, explain why?",
    ]
    assert result.rewrites == 4
    only_user, _ = compress_lossy(body, roles=["user"])
    assert only_user["messages"][0] is body["messages"][0]


MARKUP = st.sampled_from(["```", "~~~", "`", '"', "\\", "{", "}", "[", "]", ":", ",", "1", "a"])
noisy = st.lists(MARKUP | st.sampled_from(WHITESPACE) | st.text(max_size=3), max_size=40).map(
    "".join
)


@PROPS
@given(text=noisy)
def test_lossless_is_idempotent_on_any_text(text: str) -> None:
    once, result = compress_lossless(body_with(text))
    assert result.tokens_after <= result.tokens_before
    twice, _ = compress_lossless(once)
    assert twice == once


def test_rewrites_that_add_tokens_are_undone() -> None:
    from thrifty.tokens.optimize import _rewrite

    body = {
        "model": "gpt-4o",
        "messages": [
            {"role": "user", "content": "shorten   me   please"},
            {"role": "user", "content": "grow"},
        ],
    }

    def text_fn(text: str, tally: _rewrite.Tally) -> str:  # one text shrinks, one grows more
        return " ".join(text.split()) if "shorten" in text else text + " and many more words"

    new, result = _rewrite.rewrite_messages(
        body, text_fn, roles=None, arguments=False, dedupe=False, lossy=False
    )
    assert [m["content"] for m in new["messages"]] == ["shorten me please", "grow"]
    assert 0 < result.tokens_saved == result.tokens_before - count_request(new).tokens


@PROPS
@given(
    text=st.one_of(
        prose,
        st.text(alphabet=' \t\r\n{}[]`~"ab,:#', max_size=40),
        st.builds(lambda d: d[0], documents()),
    )
)
def test_the_fast_path_returns_what_the_full_rewrite_returns(text: str) -> None:
    """A text the pre-check passes over is exactly what the full lossless rewrite gives back."""
    from thrifty.tokens.optimize import compress as mod
    from thrifty.tokens.optimize._rewrite import Tally, rewrite_text

    if mod._MAYBE_LOSSLESS.search(text) is not None:
        return
    full = rewrite_text(text, mod._squeeze, Tally(), minify=True, strip_ends=True)
    assert full == text
    assert mod._lossless_text(text, Tally(), whitespace=True, minify=True) == text


@PROPS
@given(text=st.text(alphabet=" \t\r\n{[a}", max_size=12))
def test_the_substring_pre_check_is_the_regex(text: str) -> None:
    from thrifty.tokens.optimize import compress as mod

    assert mod._maybe_lossless(text) == (mod._MAYBE_LOSSLESS.search(text) is not None)


@PROPS
@given(
    messages=st.lists(
        st.fixed_dictionaries(
            {
                "role": st.sampled_from(["system", "developer", "user", "assistant"]),
                "content": st.one_of(prose, st.text(alphabet=' \t\r\n{}[]`"ab', max_size=20)),
            }
        ),
        min_size=1,
        max_size=4,
    )
)
def test_a_body_the_pre_check_skips_is_one_the_rewrite_leaves_alone(
    messages: list[dict[str, str]],
) -> None:
    from thrifty.tokens.optimize import compress as mod
    from thrifty.tokens.optimize._rewrite import rewrite_messages

    body = {"model": "gpt-4o", "messages": messages}
    if not mod._nothing_to_compress(body):
        return
    _, result = rewrite_messages(
        body,
        lambda text, tally: mod._lossless_text(text, tally, whitespace=True, minify=True),
        roles=None,
        arguments=True,
        dedupe=True,
        lossy=False,
    )
    assert result.texts_changed == 0 and result.duplicates_dropped == 0
