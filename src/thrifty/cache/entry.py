"""What a cache entry holds, when an answer may be stored, and how a stored answer is replayed
as an SSE stream that the official SDKs parse exactly like the original."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import orjson

from thrifty.providers.base import StreamEvent

_WORDS = re.compile(r"\S+\s*|\s+")


@dataclass(slots=True)
class CacheEntry:
    response: dict[str, Any]
    served_model: str
    provider: str
    upstream_model: str
    created: float

    def encode(self) -> bytes:
        return orjson.dumps(
            {
                "response": self.response,
                "served_model": self.served_model,
                "provider": self.provider,
                "upstream_model": self.upstream_model,
                "created": self.created,
            }
        )

    @classmethod
    def decode(cls, raw: bytes) -> CacheEntry:
        d = orjson.loads(raw)
        return cls(
            d["response"], d["served_model"], d["provider"], d["upstream_model"], d["created"]
        )


def storable_reason(body: dict[str, Any], response: dict[str, Any], config: Any) -> str | None:
    """Why an answer must not be stored, or None when it may be."""
    temperature = body.get("temperature")
    if (1.0 if temperature is None else temperature) > config.max_temperature:
        return "temperature"
    if (body.get("n") or 1) > 1 and not config.store_multiple_choices:
        return "n"
    choices = response.get("choices")
    if not choices:
        return "no_choices"
    for choice in choices:
        if choice.get("finish_reason") in ("length", "content_filter", None):
            return f"finish_reason:{choice.get('finish_reason')}"
        message = choice.get("message") or {}
        if message.get("tool_calls") or message.get("function_call"):
            return "tool_calls"
    return None


def assemble_completion(
    chunks_meta: dict[str, Any], content: str, finish_reason: str | None, usage: Any
) -> dict[str, Any]:
    """A ``chat.completion`` from a finished single-choice stream (text only)."""
    return {
        "id": chunks_meta.get("id", "chatcmpl-cached"),
        "object": "chat.completion",
        "created": chunks_meta.get("created", int(time.time())),
        "model": chunks_meta.get("model", ""),
        "system_fingerprint": chunks_meta.get("system_fingerprint"),
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content, "refusal": None},
                "logprobs": None,
                "finish_reason": finish_reason,
            }
        ],
        "usage": usage,
    }


class ReplayStream:
    """An ``UpstreamStream`` that replays a stored ``chat.completion`` as chunks: role chunk,
    content in word groups, finish chunk, and the usage chunk (``choices: []``)."""

    headers: dict[str, str] = {}

    def __init__(self, response: dict[str, Any], words_per_chunk: int = 4) -> None:
        self._response = response
        self._n = words_per_chunk

    async def aclose(self) -> None:
        return None

    def __aiter__(self) -> AsyncIterator[StreamEvent]:
        return self._events()

    async def _events(self) -> AsyncIterator[StreamEvent]:
        r = self._response
        base = {
            "id": r.get("id"),
            "object": "chat.completion.chunk",
            "created": r.get("created"),
            "model": r.get("model"),
            "system_fingerprint": r.get("system_fingerprint"),
        }

        def chunk(choices: list[dict[str, Any]], usage: Any = None) -> StreamEvent:
            return StreamEvent(data={**base, "choices": choices, "usage": usage})

        for choice in r.get("choices") or ():
            i = choice.get("index", 0)
            role = {"role": "assistant", "content": "", "refusal": None}
            yield chunk([{"index": i, "delta": role, "logprobs": None, "finish_reason": None}])
            words = _WORDS.findall((choice.get("message") or {}).get("content") or "")
            for j in range(0, len(words), self._n):
                piece = "".join(words[j : j + self._n])
                yield chunk(
                    [
                        {
                            "index": i,
                            "delta": {"content": piece},
                            "logprobs": None,
                            "finish_reason": None,
                        }
                    ]
                )
            yield chunk(
                [
                    {
                        "index": i,
                        "delta": {},
                        "logprobs": None,
                        "finish_reason": choice.get("finish_reason"),
                    }
                ]
            )
        yield chunk([], r.get("usage"))
