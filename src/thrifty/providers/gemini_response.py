"""Gemini ``GenerateContentResponse`` → canonical OpenAI chat completion and stream chunks.

- ``candidates[]`` → ``choices[]`` (``index`` kept); text parts are joined into ``content``
  (thought-summary parts, ``thought: true``, are left out); ``functionCall`` parts become
  ``tool_calls`` with ``arguments = json(args)``, serialised exactly once.
- Gemini's function calls usually carry no id, so ids are synthesised: ``call_`` + 24 hex digits
  of a hash of (``responseId``, candidate, call position). The same response always gives the
  same ids, in the stream and out of it. A ``thoughtSignature`` on the part is returned as
  ``tool_calls[].extra_content.google.thought_signature`` (as Google's OpenAI-compatible endpoint
  does) and kept in the adapter's ``SignatureStash`` under that id.
- ``finishReason``: ``STOP`` → ``stop``, or ``tool_calls`` when the candidate called a function;
  ``MAX_TOKENS`` → ``length``; safety, recitation, blocklist, prohibited content, SPII and the
  image filters → ``content_filter``; anything else → ``stop`` (logged). A prompt blocked by
  ``promptFeedback.blockReason`` (no candidates) → one empty ``content_filter`` choice.
- ``usageMetadata`` → OpenAI usage: ``prompt_tokens = promptTokenCount + toolUsePromptTokenCount``
  (cached content already inside), ``cached_tokens = cachedContentTokenCount``,
  ``completion_tokens = candidatesTokenCount + thoughtsTokenCount`` (thinking is billed as
  output but reported apart), ``reasoning_tokens = thoughtsTokenCount``.
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from collections.abc import Mapping
from typing import Any

import orjson

from thrifty.providers.gemini_request import SignatureStash
from thrifty.providers.openai_message import assistant_message

log = logging.getLogger(__name__)

CONTENT_FILTER_REASONS = frozenset(
    {
        "SAFETY",
        "RECITATION",
        "BLOCKLIST",
        "PROHIBITED_CONTENT",
        "SPII",
        "IMAGE_SAFETY",
        "IMAGE_PROHIBITED_CONTENT",
        "IMAGE_RECITATION",
    }
)
QUIET_STOP_REASONS = frozenset({"STOP", "FINISH_REASON_UNSPECIFIED", "LANGUAGE", "NO_IMAGE"})


def finish_reason(reason: Any, called_function: bool) -> str:
    """The OpenAI ``finish_reason`` for a Gemini ``finishReason``."""
    if reason == "MAX_TOKENS":
        return "length"
    if reason in CONTENT_FILTER_REASONS or (
        isinstance(reason, str) and reason.startswith("IMAGE_") and reason != "IMAGE_OTHER"
    ):
        return "content_filter"
    if reason not in QUIET_STOP_REASONS and reason is not None:
        log.warning("gemini finishReason %s mapped to a plain stop", reason)
    return "tool_calls" if called_function else "stop"


def _count(meta: Mapping[str, Any], key: str) -> int:
    value = meta.get(key)
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0


def canonical_usage(meta: Mapping[str, Any] | None) -> dict[str, Any]:
    """OpenAI ``usage`` from Gemini ``usageMetadata`` (see the module docstring)."""
    meta = meta or {}
    prompt = _count(meta, "promptTokenCount") + _count(meta, "toolUsePromptTokenCount")
    thoughts = _count(meta, "thoughtsTokenCount")
    completion = _count(meta, "candidatesTokenCount") + thoughts
    cached = min(_count(meta, "cachedContentTokenCount"), prompt)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached},
        "completion_tokens_details": {"reasoning_tokens": thoughts},
    }


def synthesized_call_id(nonce: str, candidate: int, position: int) -> str:
    """A stable OpenAI tool_call id for Gemini's id-less function call."""
    digest = hashlib.blake2b(f"{nonce}\0{candidate}\0{position}".encode(), digest_size=12)
    return "call_" + digest.hexdigest()


def tool_call(
    part: Mapping[str, Any],
    nonce: str,
    candidate: int,
    position: int,
    stash: SignatureStash | None,
) -> dict[str, Any]:
    """An OpenAI ``tool_calls[]`` entry for a Gemini ``functionCall`` part."""
    fc = part.get("functionCall") or part.get("function_call") or {}
    given = fc.get("id")
    call_id = given if isinstance(given, str) and given else None
    call_id = call_id or synthesized_call_id(nonce, candidate, position)
    args = fc.get("args")
    call: dict[str, Any] = {
        "id": call_id,
        "type": "function",
        "function": {
            "name": str(fc.get("name") or ""),
            "arguments": orjson.dumps(args if args is not None else {}).decode(),
        },
    }
    sig = part.get("thoughtSignature") or part.get("thought_signature")
    if isinstance(sig, str) and sig:
        call["extra_content"] = {"google": {"thought_signature": sig}}
        if stash is not None:
            stash.put(call_id, sig)
    return call


def _parts(candidate: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    content = candidate.get("content")
    parts = content.get("parts") if isinstance(content, Mapping) else None
    return [p for p in parts if isinstance(p, Mapping)] if isinstance(parts, list) else []


def _is_call(part: Mapping[str, Any]) -> bool:
    return isinstance(part.get("functionCall") or part.get("function_call"), Mapping)


def _visible_text(part: Mapping[str, Any]) -> str | None:
    text = part.get("text")
    if isinstance(text, str) and text and not part.get("thought"):
        return text
    return None


def blocked(data: Mapping[str, Any]) -> bool:
    """Whether the prompt was blocked (``promptFeedback.blockReason`` and no candidates)."""
    feedback = data.get("promptFeedback")
    return (
        not data.get("candidates")
        and isinstance(feedback, Mapping)
        and bool(feedback.get("blockReason"))
    )


def from_gemini(
    data: Mapping[str, Any],
    model: str,
    stash: SignatureStash | None = None,
    created: int | None = None,
) -> dict[str, Any]:
    """A canonical ``chat.completion`` for a Gemini ``generateContent`` response."""
    response_id = data.get("responseId")
    nonce = response_id if isinstance(response_id, str) and response_id else uuid.uuid4().hex
    choices: list[dict[str, Any]] = []
    for pos, cand in enumerate(data.get("candidates") or ()):
        index = cand.get("index", pos) if isinstance(cand, Mapping) else pos
        texts: list[str] = []
        calls: list[dict[str, Any]] = []
        for part in _parts(cand):
            text = _visible_text(part)
            if text is not None:
                texts.append(text)
            if _is_call(part):
                calls.append(tool_call(part, nonce, index, len(calls), stash))
        message = assistant_message(texts, calls)
        choices.append(
            {
                "index": index,
                "message": message,
                "logprobs": None,
                "finish_reason": finish_reason(cand.get("finishReason"), bool(calls)),
            }
        )
    if not choices:
        choices.append(
            {
                "index": 0,
                "message": {"role": "assistant", "content": "", "refusal": None},
                "logprobs": None,
                "finish_reason": "content_filter" if blocked(data) else "stop",
            }
        )
    return {
        "id": f"chatcmpl-{nonce}",
        "object": "chat.completion",
        "created": created if created is not None else int(time.time()),
        "model": data.get("modelVersion") or model,
        "choices": choices,
        "usage": canonical_usage(data.get("usageMetadata")),
        "system_fingerprint": None,
    }


class StreamTranslator:
    """Turns Gemini stream chunks (each a ``GenerateContentResponse``) into canonical chunks.

    ``feed(chunk)`` returns the OpenAI chunks for one Gemini chunk: a role chunk the first time a
    candidate appears, content deltas, one complete tool_calls delta per function call (index
    renumbered per choice from 0), and a finish chunk when the candidate's ``finishReason``
    arrives. ``usage_chunk()`` is the final usage-only chunk (``choices: []``), or None when
    Gemini sent no ``usageMetadata``. ``complete`` says whether every candidate finished.
    """

    def __init__(
        self,
        model: str,
        stash: SignatureStash | None = None,
        *,
        usage_null: bool = False,
        created: int | None = None,
    ) -> None:
        self.model = model
        self.stash = stash
        self.usage_null = usage_null
        self.created = created if created is not None else int(time.time())
        self.id: str | None = None
        self._nonce = ""
        self._calls: dict[int, int] = {}  # candidate index → tool calls so far
        self._open: set[int] = set()
        self._finished: set[int] = set()
        self._usage: Mapping[str, Any] | None = None

    @property
    def complete(self) -> bool:
        return bool(self._finished) and self._open <= self._finished

    def _chunk(
        self, index: int, delta: dict[str, Any], finish: str | None = None
    ) -> dict[str, Any]:
        chunk: dict[str, Any] = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [
                {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}
            ],
        }
        if self.usage_null:
            chunk["usage"] = None
        return chunk

    def feed(self, data: Mapping[str, Any]) -> list[dict[str, Any]]:
        if self.id is None:
            response_id = data.get("responseId")
            self._nonce = response_id if isinstance(response_id, str) and response_id else ""
            self._nonce = self._nonce or uuid.uuid4().hex
            self.id = f"chatcmpl-{self._nonce}"
        version = data.get("modelVersion")
        if isinstance(version, str) and version:
            self.model = version
        if isinstance(data.get("usageMetadata"), Mapping):
            self._usage = data["usageMetadata"]
        out: list[dict[str, Any]] = []
        if blocked(data):
            self._open.add(0)
            self._finished.add(0)
            out.append(self._chunk(0, {"role": "assistant", "content": ""}))
            out.append(self._chunk(0, {}, "content_filter"))
            return out
        for pos, cand in enumerate(data.get("candidates") or ()):
            if not isinstance(cand, Mapping):
                continue
            index = cand.get("index", pos)
            parts = _parts(cand)
            if index not in self._open:
                self._open.add(index)
                first_is_call = bool(parts) and _is_call(parts[0])
                role = {"role": "assistant", "content": None if first_is_call else ""}
                out.append(self._chunk(index, role))
            for part in parts:
                text = _visible_text(part)
                if text is not None:
                    out.append(self._chunk(index, {"content": text}))
                if _is_call(part):
                    k = self._calls.get(index, 0)
                    call = tool_call(part, self._nonce, index, k, self.stash)
                    self._calls[index] = k + 1
                    out.append(self._chunk(index, {"tool_calls": [{"index": k, **call}]}))
            reason = cand.get("finishReason")
            if reason and index not in self._finished:
                self._finished.add(index)
                called = self._calls.get(index, 0) > 0
                out.append(self._chunk(index, {}, finish_reason(reason, called)))
        return out

    def usage_chunk(self) -> dict[str, Any] | None:
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
