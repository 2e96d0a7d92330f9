"""Canonical OpenAI chunks → Anthropic Messages streaming events (named SSE events).

``message_start`` → (``content_block_start`` → ``content_block_delta``… → ``content_block_stop``)
per text or tool_use block → ``message_delta`` (stop reason and usage) → ``message_stop``.
OpenAI tool-call indices count tool calls only; Anthropic block indices count every block, so
blocks are numbered here as they open.
"""

from __future__ import annotations

from typing import Any

import orjson

from thrifty.wire.anthropic import STOP_REASONS, anthropic_usage, new_message_id


def frame(event: str, data: dict[str, Any]) -> bytes:
    return b"event: " + event.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


class AnthropicStreamEncoder:
    def __init__(self, model: str) -> None:
        self.model = model
        self._index = -1
        self._open: str | None = None  # "text" or the OpenAI tool index as "tool:N"
        self._stop_reason = "end_turn"
        self._refused = False
        self._usage: dict[str, Any] | None = None

    def start(self) -> list[bytes]:
        message: dict[str, Any] = {
            "id": new_message_id(),
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        }
        return [
            frame("message_start", {"type": "message_start", "message": message}),
            frame("ping", {"type": "ping"}),
        ]

    def _close(self) -> list[bytes]:
        if self._open is None:
            return []
        self._open = None
        return [frame("content_block_stop", {"type": "content_block_stop", "index": self._index})]

    def _begin(self, key: str, block: dict[str, Any]) -> list[bytes]:
        out = self._close()
        self._index += 1
        self._open = key
        out.append(
            frame(
                "content_block_start",
                {"type": "content_block_start", "index": self._index, "content_block": block},
            )
        )
        return out

    def _delta(self, delta: dict[str, Any]) -> bytes:
        return frame(
            "content_block_delta",
            {"type": "content_block_delta", "index": self._index, "delta": delta},
        )

    def chunk(self, data: dict[str, Any]) -> list[bytes]:
        out: list[bytes] = []
        if data.get("usage"):
            self._usage = data["usage"]
        for choice in data.get("choices") or ():
            if choice.get("index", 0) != 0:
                continue  # Anthropic has no n > 1
            delta = choice.get("delta") or {}
            refusal = delta.get("refusal")
            if refusal:  # said as text, and the message stops as a refusal (as from_openai)
                self._refused = True
            for text in (delta.get("content"), refusal):
                if text:
                    if self._open != "text":
                        out += self._begin("text", {"type": "text", "text": ""})
                    out.append(self._delta({"type": "text_delta", "text": text}))
            for call in delta.get("tool_calls") or ():
                key = f"tool:{call.get('index', 0)}"
                fn = call.get("function") or {}
                if self._open != key:
                    block = {
                        "type": "tool_use",
                        "id": call.get("id"),
                        "name": fn.get("name"),
                        "input": {},
                    }
                    out += self._begin(key, block)
                if fn.get("arguments"):
                    out.append(
                        self._delta({"type": "input_json_delta", "partial_json": fn["arguments"]})
                    )
            if choice.get("finish_reason"):
                reason = STOP_REASONS.get(choice["finish_reason"], "end_turn")
                self._stop_reason = "refusal" if self._refused else reason
        return out

    def finish(self, *, cost_usd: float | None = None, saved_usd: float = 0.0) -> list[bytes]:
        """The closing events. The final usage also carries Thrifty's cost, since the
        response headers left before it was known."""
        out = self._close()
        usage: dict[str, Any] = anthropic_usage(self._usage)
        usage["thrifty_cost_usd"] = cost_usd
        usage["thrifty_saved_usd"] = saved_usd
        out.append(
            frame(
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": self._stop_reason, "stop_sequence": None},
                    "usage": usage,
                },
            )
        )
        out.append(frame("message_stop", {"type": "message_stop"}))
        return out
