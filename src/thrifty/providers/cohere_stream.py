"""Cohere Chat v2 stream events → canonical OpenAI ``chat.completion.chunk``s (pure, no I/O).

Cohere frames events as ``event: <type>`` + ``data: <json>``; the JSON's ``type`` is what counts:

- ``message-start`` → the role chunk (``delta: {"role": "assistant", "content": ""}``);
- ``content-delta`` with text → a content delta (``thinking`` content is dropped);
- ``tool-call-start`` → the first tool_calls delta (``id``, ``type``, ``name``, ``arguments``),
  ``tool-call-delta`` → an ``arguments`` delta; the OpenAI ``index`` is renumbered from 0 in the
  order calls start, whatever Cohere's own ``index`` is;
- ``message-end`` → the finish chunk, and the usage-only chunk (``choices: []``) from
  ``usage_chunk``; ``finish_reason`` ``ERROR`` / ``TIMEOUT`` raise ``CohereFailure``;
- ``tool-plan-delta``, ``content-start``/``-end``, ``tool-call-end``, ``citation-*``, ``debug``
  and unknown types carry nothing for OpenAI clients and are skipped.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from typing import Any

from thrifty.providers.cohere_wire import canonical_usage, finish_reason


def _message_delta(event: Mapping[str, Any]) -> Mapping[str, Any]:
    delta = event.get("delta")
    msg = delta.get("message") if isinstance(delta, Mapping) else None
    return msg if isinstance(msg, Mapping) else {}


class StreamTranslator:
    """Stateful translation of one stream; ``done`` is set by ``message-end``."""

    def __init__(self, model: str, *, usage_null: bool = False, created: int | None = None) -> None:
        self.model = model
        self.usage_null = usage_null
        self.created = created if created is not None else int(time.time())
        self.id = f"chatcmpl-{uuid.uuid4().hex}"
        self.done = False
        self._started = False
        self._thinking: set[Any] = set()  # content indexes holding thinking
        self._tools: dict[Any, int] = {}  # Cohere index → OpenAI index
        self._usage: Mapping[str, Any] | None = None

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        chunk: dict[str, Any] = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
        if self.usage_null:
            chunk["usage"] = None
        return chunk

    def _start(self, out: list[dict[str, Any]], content: str | None = "") -> None:
        if not self._started:
            self._started = True
            out.append(self._chunk({"role": "assistant", "content": content}))

    def feed(self, event: Mapping[str, Any]) -> list[dict[str, Any]]:
        kind = event.get("type")
        out: list[dict[str, Any]] = []
        if kind == "message-start":
            if event.get("id"):
                self.id = f"chatcmpl-{event['id']}"
            self._start(out)
        elif kind == "content-start":
            content = _message_delta(event).get("content")
            if isinstance(content, Mapping) and content.get("type") == "thinking":
                self._thinking.add(event.get("index"))
        elif kind == "content-delta":
            content = _message_delta(event).get("content")
            text = content.get("text") if isinstance(content, Mapping) else None
            if event.get("index") not in self._thinking and isinstance(text, str) and text:
                self._start(out)
                out.append(self._chunk({"content": text}))
        elif kind == "tool-call-start":
            call = _message_delta(event).get("tool_calls")
            if isinstance(call, list):  # documented as one object; tolerate a list
                call = call[0] if call else None
            if isinstance(call, Mapping):
                self._start(out, None)
                k = self._tools.setdefault(event.get("index", len(self._tools)), len(self._tools))
                fn = call.get("function") or {}
                entry = {
                    "index": k,
                    "id": call.get("id"),
                    "type": "function",
                    "function": {"name": fn.get("name"), "arguments": fn.get("arguments") or ""},
                }
                out.append(self._chunk({"tool_calls": [entry]}))
        elif kind == "tool-call-delta":
            call = _message_delta(event).get("tool_calls")
            if isinstance(call, list):
                call = call[0] if call else None
            fn = call.get("function") if isinstance(call, Mapping) else None
            args = fn.get("arguments") if isinstance(fn, Mapping) else None
            if isinstance(args, str) and args:
                index = event.get("index")
                k = self._tools.get(index, len(self._tools) - 1)
                out.append(
                    self._chunk({"tool_calls": [{"index": k, "function": {"arguments": args}}]})
                )
        elif kind == "message-end":
            delta = event.get("delta") or {}
            reason = finish_reason(delta.get("finish_reason"), delta.get("error"))
            if self._tools and reason == "stop":
                reason = "tool_calls"
            if isinstance(delta.get("usage"), Mapping):
                self._usage = delta["usage"]
            self._start(out)
            out.append(self._chunk({}, reason))
            self.done = True
        return out

    def usage_chunk(self) -> dict[str, Any] | None:
        """The usage-only final chunk, or None when Cohere sent no usage."""
        if self._usage is None:
            return None
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [],
            "usage": canonical_usage(self._usage),
        }
