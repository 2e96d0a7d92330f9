"""Deterministic answers of the fake Bedrock server (no I/O).

The answer is generated from a ``random.Random`` seeded with a digest of the model id, ``system``,
``messages`` and ``toolConfig`` (sorted keys): the same request always gets the same answer,
streamed or not; ``inferenceConfig`` only truncates it.

- Text: prose of 8-60 tokens, or N tokens with header ``x-fake-answer-tokens: N`` or the marker
  ``[fake:tokens=N]`` in the messages; cut at the first ``stopSequences`` hit
  (``stop_sequence``) and at ``maxTokens`` (``max_tokens``), else ``end_turn``.
- Tools: with a ``toolConfig`` and a last user turn that is not made of tool results, the model
  calls a tool (``tool_use``): the named one for ``toolChoice.tool``, else the first; with
  ``toolChoice.auto`` (or none) a short text block comes first, so the tool block has
  ``contentBlockIndex`` 1. The marker ``[fake:parallel]`` calls the first two tools. The
  ``input`` is an instance of the tool's JSON schema.
- Usage: tokens are counted with o200k_base over the text of every block (images count
  ``IMAGE_TOKENS``). With ``cachePoint`` blocks the prefix up to each cache point (tools, then
  system, then messages) is remembered per model in ``PromptCache``: the longest prefix seen
  before is a cache read (``cacheReadInputTokens``), the rest up to the last cache point a cache
  write (``cacheWriteInputTokens``), and ``inputTokens`` EXCLUDES both, like Bedrock.
"""

from __future__ import annotations

import hashlib
import random
import string
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
import tiktoken

from thrifty.testing.fake_openai_answers import (
    MAX_ANSWER_TOKENS,
    MIN_ANSWER_TOKENS,
    answer_tokens_marker,
    prose_of_tokens,
    stream_pieces,
    tool_arguments,
)
from thrifty.tokens import encoding_for

__all__ = ["IMAGE_TOKENS", "AnswerPlan", "PromptCache", "plan_answer", "stream_events"]

IMAGE_TOKENS = 258
DOCUMENT_TOKENS = 500
MESSAGE_OVERHEAD = 3
_PARALLEL_MARKER = b"[fake:parallel]"
_ID_CHARS = string.ascii_letters + string.digits
PADDING = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


def encoding() -> tiktoken.Encoding:
    return encoding_for("gpt-4o")[0]


class PromptCache:
    """Prompt prefixes seen so far (thread-safe), keyed by model and prefix digest."""

    def __init__(self) -> None:
        self._seen: set[tuple[str, bytes]] = set()
        self._lock = threading.Lock()

    def clear(self) -> None:
        with self._lock:
            self._seen.clear()

    def account(self, model: str, points: Sequence[tuple[int, bytes]]) -> tuple[int, int]:
        """(cache read, cache write) tokens for a request with these cache ``points``
        (``(prefix tokens, prefix digest)`` in order); remembers every point."""
        if not points:
            return 0, 0
        with self._lock:
            read = max((t for t, d in points if (model, d) in self._seen), default=0)
            self._seen.update((model, d) for _, d in points)
        return read, max(0, points[-1][0] - read)


def _block_tokens(enc: tiktoken.Encoding, block: Mapping[str, Any]) -> int:
    key, value = next(iter(block.items()))
    if key == "text" and isinstance(value, str):
        return len(enc.encode_ordinary(value))
    if key == "image":
        return IMAGE_TOKENS
    if key in ("document", "video"):
        return DOCUMENT_TOKENS
    if key == "toolResult":
        return 3 + sum(_block_tokens(enc, b) for b in value.get("content") or ())
    if key == "json":
        return len(enc.encode_ordinary(orjson.dumps(value).decode()))
    if key == "cachePoint":
        return 0
    return len(enc.encode_ordinary(orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()))


def count_prompt(
    enc: tiktoken.Encoding, body: Mapping[str, Any]
) -> tuple[int, list[tuple[int, bytes]]]:
    """(prompt tokens, cache points) in the order Bedrock caches: tools, system, messages."""
    digest = hashlib.blake2b(digest_size=16)
    total = 0
    points: list[tuple[int, bytes]] = []

    def visit(block: Mapping[str, Any]) -> None:
        nonlocal total
        if "cachePoint" in block:
            points.append((total, digest.copy().digest()))
            return
        total += _block_tokens(enc, block) if len(block) == 1 else 0
        digest.update(orjson.dumps(block, option=orjson.OPT_SORT_KEYS))

    tool_config = body.get("toolConfig") or {}
    for tool in tool_config.get("tools") or ():
        visit(tool)
    for block in body.get("system") or ():
        visit(block)
    for message in body.get("messages") or ():
        total += MESSAGE_OVERHEAD
        digest.update(str(message.get("role")).encode())
        for block in message.get("content") or ():
            visit(block)
    return total + 1, points


@dataclass(slots=True)
class AnswerPlan:
    """One answer: output content blocks, ``stopReason`` and Bedrock ``usage``."""

    blocks: list[dict[str, Any]]
    stop_reason: str
    usage: dict[str, int]
    token_bytes: dict[int, list[bytes]] = field(default_factory=dict)

    def response(self, latency_ms: int = 0) -> dict[str, Any]:
        """The Converse response body."""
        return {
            "output": {"message": {"role": "assistant", "content": self.blocks}},
            "stopReason": self.stop_reason,
            "usage": self.usage,
            "metrics": {"latencyMs": latency_ms},
        }


def _rng(model: str, body: Mapping[str, Any]) -> random.Random:
    h = hashlib.blake2b(digest_size=16)
    h.update(model.encode())
    h.update(b"\0")
    shape = {k: body.get(k) for k in ("system", "messages", "toolConfig")}
    h.update(orjson.dumps(shape, option=orjson.OPT_SORT_KEYS))
    return random.Random(h.digest())


def _tools_to_call(body: Mapping[str, Any], blob: bytes) -> tuple[list[Mapping[str, Any]], bool]:
    """(tool specs to call, whether a text block comes first)."""
    config = body.get("toolConfig")
    messages = body.get("messages") or []
    if not isinstance(config, Mapping) or not messages:
        return [], False
    last = messages[-1]
    if last.get("role") != "user" or any("toolResult" in b for b in last.get("content") or ()):
        return [], False
    specs = [t["toolSpec"] for t in config.get("tools") or () if "toolSpec" in t]
    choice = config.get("toolChoice") or {"auto": {}}
    if "tool" in choice:
        return [s for s in specs if s["name"] == choice["tool"]["name"]][:1], False
    count = 2 if _PARALLEL_MARKER in blob else 1
    return specs[:count], "auto" in choice


def plan_answer(
    model: str,
    body: Mapping[str, Any],
    cache: PromptCache,
    answer_tokens: int | None = None,
) -> AnswerPlan:
    """The answer to a validated Converse ``body`` (see the module docstring)."""
    enc = encoding()
    rng = _rng(model, body)
    blob = orjson.dumps(body.get("messages"))
    inference = body.get("inferenceConfig") or {}
    max_tokens = inference.get("maxTokens")
    calls, text_first = _tools_to_call(body, blob)
    blocks: list[dict[str, Any]] = []
    token_bytes: dict[int, list[bytes]] = {}
    output = 0
    stop_reason = "end_turn"
    if not calls or text_first:
        if calls:
            text = f"I'll use the {calls[0]['name']} tool."
        else:
            target = answer_tokens or answer_tokens_marker(blob)
            text = prose_of_tokens(
                enc, rng, target or rng.randint(MIN_ANSWER_TOKENS, MAX_ANSWER_TOKENS)
            )
            stops = [s for s in inference.get("stopSequences") or () if s in text]
            if stops:
                text = text[: min(text.find(s) for s in stops)]
                stop_reason = "stop_sequence"
        ids = enc.encode_ordinary(text)
        if isinstance(max_tokens, int) and len(ids) > max_tokens:
            ids = ids[:max_tokens]
            text = enc.decode(ids)
            stop_reason = "max_tokens"
            calls = []
        output += len(ids)
        if text:
            token_bytes[len(blocks)] = enc.decode_tokens_bytes(ids)
            blocks.append({"text": text})
    for spec in calls:
        arguments = tool_arguments({"parameters": (spec.get("inputSchema") or {}).get("json")}, rng)
        output += len(enc.encode_ordinary(arguments))
        tool_id = "tooluse_" + "".join(rng.choice(_ID_CHARS) for _ in range(22))
        blocks.append(
            {
                "toolUse": {
                    "toolUseId": tool_id,
                    "name": spec["name"],
                    "input": orjson.loads(arguments),
                }
            }
        )
        stop_reason = "tool_use"
    prompt, points = count_prompt(enc, body)
    read, write = cache.account(model, points)
    usage = {
        "inputTokens": prompt - read - write,
        "outputTokens": output,
        "totalTokens": prompt + output,
    }
    if points:
        usage["cacheReadInputTokens"] = read
        usage["cacheWriteInputTokens"] = write
    return AnswerPlan(blocks, stop_reason, usage, token_bytes)


def _padded(payload: dict[str, Any], n: int) -> dict[str, Any]:
    """Real events carry a padding field ``p`` of varying length; clients must ignore it."""
    return {**payload, "p": PADDING[: 1 + n % len(PADDING)]}


def stream_events(plan: AnswerPlan, latency_ms: int = 0) -> Iterator[tuple[str, dict[str, Any]]]:
    """The ConverseStream events of ``plan``: ``(event type, payload)``."""
    n = 0
    yield "messageStart", _padded({"role": "assistant"}, n)
    for index, block in enumerate(plan.blocks):
        if "text" in block:
            pieces = stream_pieces(plan.token_bytes.get(index) or [block["text"].encode()])
            for text, _, _ in pieces:
                n += 1
                delta = {"contentBlockIndex": index, "delta": {"text": text}}
                yield "contentBlockDelta", _padded(delta, n)
        else:
            use = block["toolUse"]
            start = {"toolUse": {"toolUseId": use["toolUseId"], "name": use["name"]}}
            yield "contentBlockStart", _padded({"contentBlockIndex": index, "start": start}, n)
            arguments = orjson.dumps(use["input"]).decode()
            step = max(1, len(arguments) // 3)
            for k in range(0, len(arguments), step):
                n += 1
                delta = {"toolUse": {"input": arguments[k : k + step]}}
                yield "contentBlockDelta", _padded({"contentBlockIndex": index, "delta": delta}, n)
        yield "contentBlockStop", _padded({"contentBlockIndex": index}, n)
    yield "messageStop", _padded({"stopReason": plan.stop_reason}, n)
    yield "metadata", _padded({"usage": plan.usage, "metrics": {"latencyMs": latency_ms}}, n)
