"""What a cache entry holds, when an answer may be stored, and how a stored answer is replayed
as an SSE stream that the official SDKs parse exactly like the original."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import orjson

from thrifty.providers.base import StreamEvent


class CacheEntry:
    """A stored answer: the ``chat.completion`` JSON exactly as it is sent (``body``), its usage
    and where it came from.

    Encoded as one JSON line of metadata, a newline, then ``body``: a hit sends ``body`` as it
    is and reads only the small first line, instead of decoding and re-encoding the whole answer
    (``response`` is decoded on first use: streamed replays, the Anthropic endpoint, stored
    content). Entries written before this format (one JSON object, no newline: orjson never
    writes a raw one) still decode.
    """

    __slots__ = (
        "_response",
        "body",
        "created",
        "provider",
        "served_model",
        "upstream_model",
        "usage",
    )

    def __init__(
        self,
        response: dict[str, Any] | None,
        served_model: str,
        provider: str,
        upstream_model: str,
        created: float,
        *,
        body: bytes | None = None,
        usage: Any = None,
    ) -> None:
        if response is None and body is None:
            raise ValueError("a cache entry needs the response or its body")
        self._response = response
        self.body = body if body is not None else orjson.dumps(response)
        self.usage = usage if response is None else response.get("usage")
        self.served_model = served_model
        self.provider = provider
        self.upstream_model = upstream_model
        self.created = created

    @property
    def response(self) -> dict[str, Any]:
        if self._response is None:
            self._response = orjson.loads(self.body)
        return self._response

    def encode(self) -> bytes:
        head = orjson.dumps(
            {
                "v": 2,
                "served_model": self.served_model,
                "provider": self.provider,
                "upstream_model": self.upstream_model,
                "created": self.created,
                "usage": self.usage,
            }
        )
        return b"".join((head, b"\n", self.body))

    @classmethod
    def decode(cls, raw: bytes) -> CacheEntry:
        cut = raw.find(b"\n")
        if cut < 0:  # the one-object format of earlier versions
            d = orjson.loads(raw)
            return cls(
                d["response"], d["served_model"], d["provider"], d["upstream_model"], d["created"]
            )
        head = orjson.loads(raw[:cut])
        return cls(
            None,
            head["served_model"],
            head["provider"],
            head["upstream_model"],
            head["created"],
            body=raw[cut + 1 :],
            usage=head["usage"],
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
        if message.get("audio"):  # its id is what a later turn cites, and it expires
            return "audio"
    return None


def assemble_completion(
    chunks_meta: dict[str, Any], content: str, finish_reason: str | None, usage: Any
) -> dict[str, Any]:
    """A ``chat.completion`` from a finished single-choice text stream: everything the SDK's
    own stream accumulator would have kept (the chunks' ``service_tier`` and ``moderation``
    included, when they carried them)."""
    completion: dict[str, Any] = {
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
    for key in ("service_tier", "moderation"):
        if key in chunks_meta:
            completion[key] = chunks_meta[key]
    return completion


# Message fields the role chunk and the text chunks carry; any other non-empty field (audio,
# annotations, reasoning, function or tool calls) is replayed as one delta of its own.
_TEXT_FIELDS = ("role", "content", "refusal")


def replay_deltas(message: dict[str, Any], logprobs: Any) -> list[tuple[dict[str, Any], Any]]:
    """The ``(delta, logprobs)`` of one stored choice's chunks before its finish chunk, shaped as
    OpenAI streams them: the role chunk (``content: ""``, or ``content: null, refusal: ""`` for
    a refusal), the whole content, the whole refusal, then each other field. The choice's
    ``logprobs`` ride on the text chunk they belong to (split when there are both texts, on the
    role chunk when there is none), so the SDK accumulates exactly the stored ones."""
    content, refusal = message.get("content"), message.get("refusal")
    role = {
        "role": message.get("role") or "assistant",
        "content": None if content is None else "",
        "refusal": "" if content is None and refusal is not None else None,
    }
    texts = [(key, text) for key, text in (("content", content), ("refusal", refusal)) if text]
    deltas: list[tuple[dict[str, Any], Any]] = [(role, None if texts else logprobs)]
    for key, text in texts:
        part = logprobs
        if logprobs is not None and len(texts) > 1:
            part = {**logprobs, "content": None, "refusal": None, key: logprobs.get(key)}
        deltas.append(({key: text}, part))
    for key, value in message.items():
        if key in _TEXT_FIELDS or not value:
            continue
        if key == "tool_calls":  # stream deltas address each call by its index
            value = [{"index": n, **call} for n, call in enumerate(value)]
        deltas.append(({key: value}, None))
    return deltas


class ReplayStream:
    """An ``UpstreamStream`` that replays a stored ``chat.completion`` as chunks: per choice a
    role chunk, its whole content (and refusal, and any other message field) in one chunk each
    with the choice's logprobs on its text chunk, a finish chunk; then the usage chunk
    (``choices: []``). The chunks carry the answer's ``service_tier``; its ``moderation`` rides
    on the last finish chunk.

    The answer is all there, so it goes out in as few events as the SDKs' accumulators need:
    every event costs a frame and a send, and a replay in word groups arrived in one burst
    all the same (``docs/decisions.md``)."""

    headers: dict[str, str] = {}

    def __init__(self, response: dict[str, Any]) -> None:
        self._response = response

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
        if r.get("service_tier") is not None:
            base["service_tier"] = r["service_tier"]

        def chunk(choices: list[dict[str, Any]], usage: Any = None) -> StreamEvent:
            return StreamEvent(data={**base, "choices": choices, "usage": usage})

        choices = r.get("choices") or ()
        for n, choice in enumerate(choices, 1):
            i = choice.get("index", 0)
            message = choice.get("message") or {}
            for delta, logprobs in replay_deltas(message, choice.get("logprobs")):
                yield chunk(
                    [{"index": i, "delta": delta, "logprobs": logprobs, "finish_reason": None}]
                )
            finish = chunk(
                [
                    {
                        "index": i,
                        "delta": {},
                        "logprobs": None,
                        "finish_reason": choice.get("finish_reason"),
                    }
                ]
            )
            if n == len(choices) and r.get("moderation") is not None:
                finish.data["moderation"] = r["moderation"]
            yield finish
        yield chunk([], r.get("usage"))
