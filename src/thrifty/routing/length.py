"""The ``length`` scorer: request size plus cheap structural signals, no training.

Longer prompts need the strong model more often. On RouteLLM's MMLU outcomes (GPT-4 vs Mixtral,
``/work/shared/data/routing``) ranking by prompt size alone recovers APGR 0.584 (random: 0.50,
the seed's keyword classes: 0.50).

**Size is estimated, not tokenized.** The request's size is its chat-format tokens (exact: they
are fixed per message role of the reference format, o200k_base / ``gpt-4o``, whatever model the
request names, so scores are comparable across requests) plus its text at one token per
``bytes_per_token`` (4) UTF-8 bytes. Measured on the development data the estimate ranks prompts
*better* than an exact o200k count (APGR 0.584 vs 0.580; a ranking is all APGR sees) at a tenth of
the cost: encoding costs 28-38 ns per character, so an exact count set the scorer's p99 at
0.08-0.13 ms, the estimate's is ~0.006 ms (``bench/router.py``). Bytes rather than characters so
that scripts with more tokens per character count more: a least-squares fit of o200k counts on
English, code and 25 languages' GnuPG help texts gave 0.254 tokens per character plus 0.229 per
extra UTF-8 byte, i.e. bytes / 4. The estimate is 0.97x the o200k count on MMLU prompts (median),
0.9-1.06x on most Latin-script languages and CJK, 0.77x on Hungarian, 1.47x on Russian: good for
ranking and for the long-context bonus, not for billing (budgets and the ledger count exactly, in
``thrifty.tokens``). ``LengthWeights(exact=True)`` counts exactly instead.

Everything other than message text — tool definitions, names, tool calls, images — is counted
exactly, on a copy of the request with its texts emptied (a plain chat of text messages has
nothing else, and its chat-format tokens are known per role without counting).

Structural signals add token-equivalents to the size: fenced code blocks, tool definitions,
earlier conversation turns and a long-context bonus. Their weights are priors (code and
tool use are where strong models pull ahead on public benchmarks), **not** fitted: the development
data has no code blocks, tools or multi-turn chats, so they are unmeasured there. Tune them, or
train ``learned`` on your own outcomes.

The score is ``size / (size + half_point)``: 0 for an empty request, 0.5 at ``half_point``
effective tokens, approaching 1 for very long ones. A caller that has already counted the prompt
passes ``RequestMeta.prompt_tokens``, which replaces the estimate.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from thrifty.routing.scorers import RequestMeta, text_body
from thrifty.tokens import count_messages, count_request
from thrifty.tokens.estimate import utf8_bytes

__all__ = ["LengthScorer", "LengthWeights"]

REFERENCE_MODEL = "gpt-4o"
"""Chat-format tokens (and exact sizes) are counted with this model's tokenizer (o200k_base)."""


@dataclass(frozen=True, slots=True)
class LengthWeights:
    """Token-equivalents added per structural signal (priors, see the module docstring)."""

    code_block: float = 150.0
    """Per fenced code block (a pair of ``` fences) in any message."""
    tool: float = 100.0
    """Per tool (function) definition offered to the model (their tokens count as size too)."""
    turn: float = 40.0
    """Per earlier user or assistant turn before the last user message (conversation depth)."""
    long_context_tokens: int = 4000
    long_context: float = 1000.0
    """Added once when the prompt exceeds ``long_context_tokens``."""
    half_point: float = 256.0
    """Effective size (tokens) that scores 0.5."""
    bytes_per_token: float = 4.0
    """UTF-8 bytes of message text per estimated token."""
    exact: bool = False
    """Count the message text exactly (o200k_base) instead of estimating it: ~10x the cost."""


_TEXT_PARTS = frozenset({"text", "input_text", "output_text"})
_PLAIN_KEYS = frozenset({"role", "content", "tool_call_id"})


def _part_text(part: Any) -> str | None:
    """The text of a content part that is estimated, ``None`` for any other part."""
    if isinstance(part, str):
        return part
    if isinstance(part, Mapping) and part.get("type") in _TEXT_PARTS:
        text = part.get("text")
        return text if isinstance(text, str) else None
    return None


def _text_bytes(messages: list[Any]) -> int:
    """UTF-8 bytes of the messages' texts (string contents and text parts)."""
    total = 0
    for message in messages:
        if not isinstance(message, Mapping):
            continue
        content = message.get("content")
        parts = [content] if isinstance(content, str) else content
        if isinstance(parts, list):
            for part in parts:
                text = _part_text(part)
                if text:
                    total += utf8_bytes(text)
    return total


def _emptied(messages: list[Any]) -> list[Any]:
    """``messages`` with every text emptied (other parts, names and tool calls kept)."""
    out: list[Any] = []
    for message in messages:
        if isinstance(message, Mapping):
            content = message.get("content")
            if isinstance(content, str):
                message = {**message, "content": ""}
            elif isinstance(content, list):
                parts = [
                    part
                    if _part_text(part) is None
                    else ("" if isinstance(part, str) else {**part, "text": ""})
                    for part in content
                ]
                message = {**message, "content": parts}
        out.append(message)
    return out


@lru_cache(maxsize=1)
def _no_message_tokens() -> int:
    """The chat-format tokens of a request with no messages (the reply primer)."""
    return count_messages([], REFERENCE_MODEL)


@lru_cache(maxsize=64)
def _message_tokens(role: str) -> int:
    """The chat-format tokens of a message with ``role`` and no text (reference model)."""
    empty = [{"role": role, "content": ""}]
    return count_messages(empty, REFERENCE_MODEL) - _no_message_tokens()


def _plain_fixed_tokens(body: Mapping[str, Any], messages: list[Any]) -> int | None:
    """The tokens of a request other than its message text when it has nothing else (no tools,
    images, names or tool calls): the chat format's tokens. ``None`` for any other request."""
    if body.get("tools") or body.get("functions"):
        return None
    total = _no_message_tokens()
    for message in messages:
        if not isinstance(message, Mapping):
            continue
        role = message.get("role")
        if not isinstance(role, str) or not message.keys() <= _PLAIN_KEYS:
            return None
        content = message.get("content")
        if isinstance(content, list):
            if any(_part_text(part) is None for part in content):
                return None
        elif content is not None and not isinstance(content, str):
            return None
        total += _message_tokens(role)
    return total


def _prompt_tokens(body: Mapping[str, Any], weights: LengthWeights) -> int:
    """The request's prompt tokens with the reference model: everything but the message text
    exactly, the text estimated (or all exactly, with ``weights.exact``)."""
    messages = body.get("messages")
    if weights.exact or not isinstance(messages, list):
        return count_request({**body, "model": REFERENCE_MODEL}).tokens
    fixed = _plain_fixed_tokens(body, messages)
    if fixed is None:
        skeleton = {**body, "messages": _emptied(messages), "model": REFERENCE_MODEL}
        fixed = count_request(skeleton).tokens
    return fixed + math.ceil(_text_bytes(messages) / weights.bytes_per_token)


def _fences(content: Any) -> int:
    if isinstance(content, str):
        return content.count("```")
    if isinstance(content, list):
        total = 0
        for part in content:
            if isinstance(part, Mapping) and isinstance(part.get("text"), str):
                total += part["text"].count("```")
        return total
    return 0


@dataclass(frozen=True, slots=True)
class _Shape:
    code_blocks: int
    tools: int
    earlier_turns: int


def _shape(body: Mapping[str, Any]) -> _Shape:
    messages = body.get("messages")
    messages = messages if isinstance(messages, list) else []
    fences = 0
    turns = 0
    for message in messages:
        if not isinstance(message, Mapping):
            continue
        fences += _fences(message.get("content"))
        if message.get("role") in ("user", "assistant"):
            turns += 1
    tools = body.get("tools") or body.get("functions") or ()
    n_tools = len(tools) if isinstance(tools, list) else 0
    return _Shape(code_blocks=fences // 2, tools=n_tools, earlier_turns=max(turns - 1, 0))


class LengthScorer:
    """Scores by request size in tokens plus structural signals (see the module docstring).

    Stateless and thread-safe; ``score`` never raises on a chat body (non-list messages count 0).
    """

    name = "length"
    tag_conditions: frozenset[str] = frozenset()  # reads the body only

    def __init__(self, weights: LengthWeights | None = None) -> None:
        self.weights = weights or LengthWeights()

    def effective_tokens(self, body: Mapping[str, Any], meta: RequestMeta | None = None) -> float:
        """The request's size in token-equivalents: prompt tokens plus the structural bonuses."""
        w = self.weights
        if meta is not None and meta.prompt_tokens is not None:
            tokens = meta.prompt_tokens
        else:
            tokens = _prompt_tokens(body, w)
        shape = _shape(body)
        size = (
            float(tokens)
            + w.code_block * shape.code_blocks
            + w.tool * shape.tools
            + w.turn * shape.earlier_turns
        )
        if tokens > w.long_context_tokens:
            size += w.long_context
        return size

    def score(self, body: Mapping[str, Any], meta: RequestMeta | None = None) -> float:
        size = self.effective_tokens(body, meta)
        return size / (size + self.weights.half_point)

    def score_text(self, text: str) -> float:
        return self.score(text_body(text))

    async def ascore(self, body: Mapping[str, Any], meta: RequestMeta | None = None) -> float:
        return self.score(body, meta)
