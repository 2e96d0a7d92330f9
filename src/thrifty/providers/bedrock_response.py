"""Bedrock Converse answers → canonical OpenAI shapes (pure, no I/O).

- ``from_converse``: a Converse response → a ``chat.completion``;
- ``StreamTranslator``: ConverseStream events → ``chat.completion.chunk`` dicts;
- ``openai_usage``: Bedrock ``usage`` → OpenAI ``usage``. Bedrock's ``inputTokens`` EXCLUDES
  cache reads and writes, so ``prompt_tokens = inputTokens + cacheReadInputTokens +
  cacheWriteInputTokens``; ``prompt_tokens_details.cached_tokens`` is the cache read and
  ``prompt_tokens_details.cache_write_tokens`` the cache write (what ``thrifty.pricing.Usage``
  reads).

``stopReason`` → ``finish_reason``: ``end_turn`` / ``stop_sequence`` → ``stop``, ``max_tokens`` /
``model_context_window_exceeded`` → ``length``, ``tool_use`` → ``tool_calls``,
``content_filtered`` / ``guardrail_intervened`` → ``content_filter``, anything else (e.g.
``malformed_model_output``) → ``stop``. Reasoning text (``reasoningContent``) is exposed as the
non-standard ``reasoning_content`` field of the message / delta.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import orjson

from thrifty.providers.openai_message import (
    assistant_message,
    completion_object,
    usage_object,
)

__all__ = ["FINISH_REASONS", "StreamTranslator", "finish_reason", "from_converse", "openai_usage"]

log = logging.getLogger("thrifty.providers.bedrock")

FINISH_REASONS: dict[str, str] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "content_filtered": "content_filter",
    "guardrail_intervened": "content_filter",
}


def finish_reason(stop_reason: Any) -> str:
    """The OpenAI ``finish_reason`` for a Bedrock ``stopReason``."""
    found = FINISH_REASONS.get(stop_reason) if isinstance(stop_reason, str) else None
    if found is None:
        log.warning("bedrock stopReason %r mapped to finish_reason 'stop'", stop_reason)
        return "stop"
    return found


def _n(usage: Mapping[str, Any], key: str) -> int:
    value = usage.get(key)
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0


def openai_usage(usage: Any) -> dict[str, Any]:
    """An OpenAI ``usage`` object from a Bedrock ``TokenUsage`` (see the module docstring)."""
    u = usage if isinstance(usage, Mapping) else {}
    read = _n(u, "cacheReadInputTokens")
    write = _n(u, "cacheWriteInputTokens")
    prompt = _n(u, "inputTokens") + read + write
    completion = _n(u, "outputTokens")
    return usage_object(prompt, completion, read, write)


def _arguments(value: Any) -> str:
    """OpenAI ``arguments``: the tool input serialised exactly once."""
    if isinstance(value, str):
        return value
    return orjson.dumps(value if value is not None else {}).decode()


def from_converse(
    data: Mapping[str, Any], model: str, completion_id: str, created: int
) -> dict[str, Any]:
    """A ``chat.completion`` for a Converse response body."""
    output = data.get("output")
    message = output.get("message") if isinstance(output, Mapping) else None
    blocks = message.get("content") if isinstance(message, Mapping) else None
    texts: list[str] = []
    reasoning: list[str] = []
    tool_calls: list[dict[str, Any]] = []
    for block in blocks if isinstance(blocks, list) else ():
        if not isinstance(block, Mapping):
            continue
        if isinstance(block.get("text"), str):
            texts.append(block["text"])
        elif isinstance(block.get("toolUse"), Mapping):
            use = block["toolUse"]
            tool_calls.append(
                {
                    "id": str(use.get("toolUseId") or f"call_{len(tool_calls)}"),
                    "type": "function",
                    "function": {
                        "name": str(use.get("name") or ""),
                        "arguments": _arguments(use.get("input")),
                    },
                }
            )
        elif isinstance(block.get("reasoningContent"), Mapping):
            text = (block["reasoningContent"].get("reasoningText") or {}).get("text")
            if isinstance(text, str):
                reasoning.append(text)
    msg = assistant_message(texts, tool_calls, reasoning)
    return completion_object(
        completion_id,
        created,
        model,
        msg,
        finish_reason(data.get("stopReason")),
        openai_usage(data.get("usage")),
    )


class StreamTranslator:
    """ConverseStream events → OpenAI chunks, one event at a time.

    ``messageStart`` → the role chunk; text deltas → ``content`` deltas; a tool-use
    ``contentBlockStart`` → a ``tool_calls`` delta with ``id`` / ``name`` and an OpenAI ``index``
    counted among tool calls only (Bedrock's ``contentBlockIndex`` counts text blocks too);
    tool-use input fragments → ``arguments`` deltas; ``messageStop`` → the finish chunk;
    ``metadata`` → a usage-only chunk with ``choices: []``. ``complete`` is true once both
    ``messageStop`` and ``metadata`` were seen.
    """

    def __init__(self, model: str, completion_id: str, created: int) -> None:
        self._base = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
        }
        self._tools: dict[int, int] = {}
        self.stopped = False
        self.has_usage = False

    @property
    def complete(self) -> bool:
        return self.stopped and self.has_usage

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return {**self._base, "choices": [choice]}

    def _tool_index(self, block_index: Any) -> int:
        key = block_index if isinstance(block_index, int) else -1
        if key not in self._tools:
            self._tools[key] = len(self._tools)
        return self._tools[key]

    def translate(self, event_type: str | None, payload: Any) -> list[dict[str, Any]]:
        """The chunks for one event (often one, sometimes none)."""
        p = payload if isinstance(payload, Mapping) else {}
        if event_type == "messageStart":
            return [self._chunk({"role": "assistant", "content": ""})]
        if event_type == "contentBlockStart":
            start = p.get("start")
            use = start.get("toolUse") if isinstance(start, Mapping) else None
            if not isinstance(use, Mapping):
                return []
            call = {
                "index": self._tool_index(p.get("contentBlockIndex")),
                "id": str(use.get("toolUseId") or ""),
                "type": "function",
                "function": {"name": str(use.get("name") or ""), "arguments": ""},
            }
            return [self._chunk({"tool_calls": [call]})]
        if event_type == "contentBlockDelta":
            delta = p.get("delta")
            if not isinstance(delta, Mapping):
                return []
            if isinstance(delta.get("text"), str):
                return [self._chunk({"content": delta["text"]})] if delta["text"] else []
            use = delta.get("toolUse")
            if isinstance(use, Mapping):
                fragment = use.get("input")
                call = {
                    "index": self._tool_index(p.get("contentBlockIndex")),
                    "function": {"arguments": _arguments(fragment) if fragment else ""},
                }
                return [self._chunk({"tool_calls": [call]})]
            reasoning = delta.get("reasoningContent")
            if isinstance(reasoning, Mapping) and isinstance(reasoning.get("text"), str):
                return [self._chunk({"reasoning_content": reasoning["text"]})]
            return []
        if event_type == "messageStop":
            self.stopped = True
            return [self._chunk({}, finish_reason(p.get("stopReason")))]
        if event_type == "metadata":
            self.has_usage = True
            return [{**self._base, "choices": [], "usage": openai_usage(p.get("usage"))}]
        return []  # contentBlockStop and event types added later
