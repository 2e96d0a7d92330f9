"""Deterministic answers, usage and prompt-cache accounting for the fake Anthropic server.

Answers are seeded from a blake2b digest of the model, system, messages, tools, tool choice and
output schema: the same request always gets the same answer, streamed or not.

- With custom tools, a ``tool_choice`` other than ``none``, and a last user turn without
  ``tool_result`` blocks, the model calls tools: the named one for ``{"type": "tool"}``, else the
  first tool, or the first two unless ``disable_parallel_tool_use``. Inputs are generated from
  each ``input_schema``. Under ``auto`` a short text block comes first (as Claude often does).
- Otherwise a text answer of 8-60 tokens (``[fake:tokens=N]`` in the messages, or the header
  ``x-fake-answer-tokens``, sets it), a JSON instance of ``output_config.format.schema``, or for
  ``[fake:refusal]`` a refusal (``stop_reason: refusal``). It is cut at the first stop sequence
  (``stop_sequence``) and at ``max_tokens`` (``max_tokens``).

Tokens are counted with o200k_base (the fake's stand-in for Claude's tokenizer): text as
encoded, 3 per message, 256 per image or document, tools as their sorted JSON.

Prompt caching: the prompt is the sequence tools → system blocks → message blocks; each block
with ``cache_control`` ends a cacheable prefix (ignored when shorter than ``min_tokens``). The
longest prefix seen before is read (``cache_read_input_tokens``); the rest up to the last
breakpoint is written (``cache_creation_input_tokens``, 5m or 1h by that breakpoint's ``ttl``),
and every breakpoint's prefix is remembered. ``input_tokens`` is what is left, as Anthropic
reports it: the total prompt is ``input + read + creation``.
"""

from __future__ import annotations

import hashlib
import random
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from thrifty.testing.fake_anthropic_requests import MessagesRequest
from thrifty.testing.fake_openai_answers import (
    MAX_ANSWER_TOKENS,
    MIN_ANSWER_TOKENS,
    answer_tokens_marker,
    prose_of_tokens,
    schema_instance,
    stream_pieces,
)
from thrifty.tokens import encoding_for

MESSAGE_OVERHEAD = 3
MEDIA_TOKENS = 256
REFUSAL_MARKER = b"[fake:refusal]"
REFUSAL_TEXT = "I can't help with that request."
_B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def _enc() -> Any:
    return encoding_for("gpt-4o")[0]


def _dumps(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def _ntokens(text: str) -> int:
    return len(_enc().encode_ordinary(text)) if text else 0


# -- prompt tokens and cache -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Segment:
    """One cacheable unit of the prompt: its tokens, its identity, its cache marker."""

    tokens: int
    key: bytes
    cache_control: dict[str, Any] | None


def _strip_cache(block: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in block.items() if k != "cache_control"}


def _block_tokens(block: dict[str, Any]) -> int:
    kind = block.get("type")
    if kind == "text":
        return _ntokens(str(block.get("text") or ""))
    if kind in ("image", "document"):
        return MEDIA_TOKENS
    if kind == "tool_use":
        return _ntokens(str(block.get("name"))) + _ntokens(_dumps(block.get("input")).decode())
    if kind == "tool_result":
        inner = block.get("content")
        if isinstance(inner, list):
            return 2 + sum(_block_tokens(b) for b in inner if isinstance(b, dict))
        return 2 + _ntokens(str(inner or ""))
    if kind == "thinking":
        return _ntokens(str(block.get("thinking") or ""))
    return _ntokens(_dumps(block).decode())


def prompt_segments(req: MessagesRequest) -> list[Segment]:
    """The prompt in cache order: tools, system blocks, then message blocks."""
    out: list[Segment] = []
    for tool in req.tools:
        body = _strip_cache(tool)
        out.append(Segment(_ntokens(_dumps(body).decode()), b"T" + _dumps(body), _cc(tool)))
    for block in req.system:
        out.append(Segment(_block_tokens(block), b"S" + _dumps(_strip_cache(block)), _cc(block)))
    for turn in req.messages:
        role = turn["role"].encode()
        for j, block in enumerate(turn["content"]):
            tokens = _block_tokens(block) + (MESSAGE_OVERHEAD if j == 0 else 0)
            key = b"M" + role + _dumps(_strip_cache(block))
            out.append(Segment(tokens, key, _cc(block)))
    return out


def _cc(block: dict[str, Any]) -> dict[str, Any] | None:
    cc = block.get("cache_control")
    return cc if isinstance(cc, dict) else None


def count_prompt(req: MessagesRequest) -> int:
    """All input tokens of a request (what ``count_tokens`` returns)."""
    return sum(s.tokens for s in prompt_segments(req))


@dataclass(frozen=True, slots=True)
class PromptUsage:
    input_tokens: int
    cache_read: int = 0
    cache_creation: int = 0
    creation_1h: bool = False

    def usage(self, output_tokens: int) -> dict[str, Any]:
        """The Anthropic ``usage`` object."""
        one_hour = self.cache_creation if self.creation_1h else 0
        return {
            "input_tokens": self.input_tokens,
            "cache_creation_input_tokens": self.cache_creation,
            "cache_read_input_tokens": self.cache_read,
            "cache_creation": {
                "ephemeral_5m_input_tokens": self.cache_creation - one_hour,
                "ephemeral_1h_input_tokens": one_hour,
            },
            "output_tokens": output_tokens,
            "service_tier": "standard",
        }


class PromptCache:
    """The prefixes written so far (thread-safe); see the module docstring."""

    def __init__(self, min_tokens: int = 1024) -> None:
        self.min_tokens = min_tokens
        self._seen: set[bytes] = set()
        self._lock = threading.Lock()

    def clear(self) -> None:
        with self._lock:
            self._seen.clear()

    def account(self, model: str, segments: list[Segment]) -> PromptUsage:
        h = hashlib.blake2b(model.encode(), digest_size=16)
        total = 0
        points: list[tuple[int, bytes, bool]] = []
        for seg in segments:
            h.update(len(seg.key).to_bytes(8, "little") + seg.key)
            total += seg.tokens
            if seg.cache_control is not None and total >= self.min_tokens:
                points.append((total, h.copy().digest(), seg.cache_control.get("ttl") == "1h"))
        if not points:
            return PromptUsage(total)
        with self._lock:
            read = max((t for t, key, _ in points if key in self._seen), default=0)
            self._seen.update(key for _, key, _ in points)
        last_tokens, _, one_hour = points[-1]
        creation = max(0, last_tokens - read)
        return PromptUsage(total - read - creation, read, creation, one_hour and creation > 0)


# -- answers ---------------------------------------------------------------------------------


@dataclass(slots=True)
class Block:
    """One output content block: text (with its tokens) or a tool_use (with its JSON)."""

    type: str
    text: str = ""
    token_bytes: list[bytes] = field(default_factory=list)
    id: str = ""
    name: str = ""
    input: Any = None
    input_json: str = ""

    def content(self) -> dict[str, Any]:
        if self.type == "text":
            return {"type": "text", "text": self.text}
        return {"type": "tool_use", "id": self.id, "name": self.name, "input": self.input}


@dataclass(slots=True)
class AnswerPlan:
    blocks: list[Block]
    stop_reason: str
    stop_sequence: str | None
    output_tokens: int


def _rng(req: MessagesRequest) -> random.Random:
    h = hashlib.blake2b(digest_size=16)
    for part in (req.model, req.system, req.messages, req.tools, req.tool_choice):
        h.update(_dumps(part) + b"\0")
    h.update(_dumps(req.output_schema))
    return random.Random(h.digest())


def _text_block(text: str) -> Block:
    enc = _enc()
    return Block("text", text, enc.decode_tokens_bytes(enc.encode_ordinary(text)))


def _tools_to_call(req: MessagesRequest) -> list[dict[str, Any]]:
    choice = req.tool_choice or {"type": "auto"}
    custom = [t for t in req.tools if t.get("type") in (None, "custom")]
    if not custom or choice.get("type") == "none" or not req.messages:
        return []
    last = req.messages[-1]
    if last["role"] != "user" or any(b["type"] == "tool_result" for b in last["content"]):
        return []
    if choice.get("type") == "tool":
        return [t for t in custom if t["name"] == choice.get("name")][:1]
    return custom[: 1 if choice.get("disable_parallel_tool_use") else 2]


def _tool_id(rng: random.Random) -> str:
    return "toolu_01" + "".join(rng.choice(_B62) for _ in range(22))


def plan_answer(req: MessagesRequest, answer_tokens: int | None = None) -> AnswerPlan:
    """The answer to a validated request (see the module docstring)."""
    rng = _rng(req)
    enc = _enc()
    calls = _tools_to_call(req)
    if calls:
        blocks: list[Block] = []
        if (req.tool_choice or {"type": "auto"}).get("type") == "auto":
            names = " and ".join(t["name"] for t in calls)
            blocks.append(_text_block(f"I'll use {names} to answer that."))
        for tool in calls:
            value = schema_instance(tool.get("input_schema") or {"type": "object"}, rng)
            value = value if isinstance(value, dict) else {}
            text = orjson.dumps(value).decode()
            block = Block("tool_use", id=_tool_id(rng), name=tool["name"], input=value)
            block.input_json = text
            blocks.append(block)
        output = sum(_ntokens(b.text) + _ntokens(b.input_json) for b in blocks)
        return AnswerPlan(blocks, "tool_use", None, max(1, output))

    blob = _dumps(req.messages)
    target = answer_tokens or answer_tokens_marker(blob)
    target = target or rng.randint(MIN_ANSWER_TOKENS, MAX_ANSWER_TOKENS)
    stop_reason = "end_turn"
    if REFUSAL_MARKER in blob:
        text, stop_reason = REFUSAL_TEXT, "refusal"
    elif req.output_schema is not None:
        text = orjson.dumps(schema_instance(req.output_schema, rng)).decode()
    else:
        text = prose_of_tokens(enc, rng, target)
    stop_sequence = None
    found = [(i, s) for s in req.stop_sequences if (i := text.find(s)) >= 0]
    if found and stop_reason == "end_turn":
        cut, stop_sequence = min(found)
        text, stop_reason = text[:cut], "stop_sequence"
    ids = enc.encode_ordinary(text)
    if req.max_tokens is not None and len(ids) > req.max_tokens:
        ids = ids[: req.max_tokens]
        text, stop_reason, stop_sequence = enc.decode(ids), "max_tokens", None
    blocks = [_text_block(text)] if text else []
    return AnswerPlan(blocks, stop_reason, stop_sequence, max(1, len(ids)))


def message_object(
    msg_id: str, model: str, plan: AnswerPlan, prompt: PromptUsage
) -> dict[str, Any]:
    """The non-streaming Message."""
    return {
        "id": msg_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [b.content() for b in plan.blocks],
        "stop_reason": plan.stop_reason,
        "stop_sequence": plan.stop_sequence,
        "usage": prompt.usage(plan.output_tokens),
    }


def stream_events(
    msg_id: str, model: str, plan: AnswerPlan, prompt: PromptUsage, *, repeat_usage: bool
) -> Iterator[tuple[str, dict[str, Any], int]]:
    """``(event name, data, output tokens it carries)`` for a streamed answer: message_start,
    per block content_block_start / deltas / content_block_stop (a ping after the first start;
    tool input as ``input_json_delta`` fragments, the first one ``""``), message_delta (with
    the cumulative input and cache counts too when ``repeat_usage``), message_stop."""
    start = message_object(msg_id, model, plan, prompt)
    start.update(content=[], stop_reason=None, stop_sequence=None)
    start["usage"] = prompt.usage(1)
    yield "message_start", {"type": "message_start", "message": start}, 0
    enc = _enc()
    for index, block in enumerate(plan.blocks):
        first = block.content()
        if block.type == "text":
            first["text"] = ""
        else:
            first["input"] = {}
        opened = {"type": "content_block_start", "index": index, "content_block": first}
        yield "content_block_start", opened, 0
        if index == 0:
            yield "ping", {"type": "ping"}, 0
        if block.type == "text":
            for text, a, b in stream_pieces(block.token_bytes):
                delta = {"type": "text_delta", "text": text}
                yield "content_block_delta", _delta(index, delta), b - a
        else:
            pieces = stream_pieces(enc.decode_tokens_bytes(enc.encode_ordinary(block.input_json)))
            for text, a, b in [("", 0, 0), *pieces]:
                delta = {"type": "input_json_delta", "partial_json": text}
                yield "content_block_delta", _delta(index, delta), b - a
        yield "content_block_stop", {"type": "content_block_stop", "index": index}, 0
    usage: dict[str, Any] = {"output_tokens": plan.output_tokens}
    if repeat_usage:
        full = prompt.usage(plan.output_tokens)
        for key in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"):
            usage[key] = full[key]
    stop = {"stop_reason": plan.stop_reason, "stop_sequence": plan.stop_sequence}
    yield "message_delta", {"type": "message_delta", "delta": stop, "usage": usage}, 0
    yield "message_stop", {"type": "message_stop"}, 0


def _delta(index: int, delta: dict[str, Any]) -> dict[str, Any]:
    return {"type": "content_block_delta", "index": index, "delta": delta}
