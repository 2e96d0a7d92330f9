"""Anthropic Messages → OpenAI Chat Completions translation of responses (pure functions, no I/O).

- ``from_anthropic``: an Anthropic Message → a canonical ``chat.completion``;
- ``finish_reason``: Anthropic ``stop_reason`` → OpenAI ``finish_reason`` (``FINISH_REASONS``);
- ``canonical_usage``: Anthropic usage → the OpenAI convention (prompt tokens include cache reads
  and writes).

The request direction is ``anthropic_wire``; the stream translator is
``anthropic.StreamTranslator``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import orjson

from thrifty.providers.openai_message import (
    assistant_message,
    completion_object,
    usage_object,
)

__all__ = ["FINISH_REASONS", "canonical_usage", "finish_reason", "from_anthropic"]

FINISH_REASONS: dict[str, str] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


def canonical_usage(usage: Mapping[str, Any] | None) -> dict[str, Any]:
    """Anthropic usage → OpenAI usage. Anthropic's ``input_tokens`` EXCLUDES cache reads and
    writes; OpenAI's ``prompt_tokens`` includes both (``cached_tokens`` = reads,
    ``cache_write_tokens`` = writes)."""
    u = usage or {}
    fresh = int(u.get("input_tokens") or 0)
    read = int(u.get("cache_read_input_tokens") or 0)
    written = int(u.get("cache_creation_input_tokens") or 0)
    output = int(u.get("output_tokens") or 0)
    prompt = fresh + read + written
    return usage_object(prompt, output, read, written)


def finish_reason(stop_reason: Any) -> str:
    """Anthropic ``stop_reason`` → OpenAI ``finish_reason`` (unknown values → ``stop``)."""
    return FINISH_REASONS.get(str(stop_reason), "stop")


def from_anthropic(msg: Mapping[str, Any], created: int | None = None) -> dict[str, Any]:
    """An Anthropic Message → an OpenAI ``chat.completion``. Text blocks are joined into
    ``content``; ``tool_use`` → ``tool_calls`` (``arguments`` serialised once); thinking text goes
    to the side field ``reasoning_content`` (signatures are not kept)."""
    texts: list[str] = []
    thinking: list[str] = []
    calls: list[dict[str, Any]] = []
    for block in msg.get("content") or ():
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            texts.append(str(block.get("text") or ""))
        elif kind == "tool_use":
            arguments = orjson.dumps(block.get("input") or {}).decode()
            calls.append(
                {
                    "id": block.get("id"),
                    "type": "function",
                    "function": {"name": block.get("name"), "arguments": arguments},
                }
            )
        elif kind == "thinking":
            thinking.append(str(block.get("thinking") or ""))
    message = assistant_message(texts, calls, thinking)
    completion = completion_object(
        msg.get("id"),
        created if created is not None else int(time.time()),
        msg.get("model"),
        message,
        finish_reason(msg.get("stop_reason")),
        canonical_usage(msg.get("usage")),
    )
    completion["system_fingerprint"] = None
    return completion
