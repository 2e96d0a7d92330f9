"""The ``length`` scorer: request size plus cheap structural signals, no training.

Longer prompts need the strong model more often: on RouteLLM's MMLU outcomes (GPT-4 vs Mixtral,
``/work/shared/data/routing``) ranking by prompt tokens alone recovers APGR 0.580 (random: 0.50,
the seed's keyword classes: 0.50). The request's size is counted with one fixed tokenizer
(o200k_base, the ``gpt-4o`` count) whatever model it names, so scores are comparable across
requests and a threshold means the same thing for all of them; counting with the requested model's
*estimate* instead measured 0.576.

Structural signals add token-equivalents to the size: fenced code blocks, tool definitions,
earlier conversation turns and a long-context bonus. Their weights are priors (code and
tool use are where strong models pull ahead on public benchmarks), **not** fitted: the development
data has no code blocks, tools or multi-turn chats, so they are unmeasured there. Tune them, or
train ``learned`` on your own outcomes.

The score is ``size / (size + half_point)``: 0 for an empty request, 0.5 at ``half_point``
effective tokens, approaching 1 for very long ones.

Bounded cost: an exact o200k count costs ~28 ns per character, so only ``exact_chars`` (1,200)
characters of message text per request are counted exactly. The messages are walked from the last
to the first (recent turns matter most): each text is kept whole while the budget lasts, the first
one that does not fit is cut at its last whitespace within the budget, and the texts before it are
emptied (their messages stay, so the chat format's per-message tokens still count). Tools, images,
names and tool calls are left as they are and counted exactly. The reduced request is counted
exactly (``T``); the removed characters are added at the tokens per character of the kept text:
``T + round(removed * (T - fixed) / kept)``, where ``fixed`` is the request's tokens other than
message text (the chat format's tokens, exactly; for a request with tools, images or tool calls,
from a second count of the request with its texts emptied). Requests with at most ``exact_chars``
characters of message text are counted exactly, so their scores are unchanged. On the development
data (the 9 % of prompts beyond the budget estimated) APGR is 0.5802 vs 0.5801 counted exactly;
the count error is ~4 % at p99 over all prompts (3.7 %; 6.8 % over the estimated ones alone). The
ratio is measured on the kept text only, so a long conversation whose recent turns are unlike its
earlier ones is estimated less well. A plain chat (text contents, no tools, names or tool calls)
is not walked twice: its chat-format tokens are known per role, so only its kept texts are
encoded (the same number ``count_request`` gives; tested on the dev prompts). Decision cost
(``bench/router.py``, 2-core machine): 0.022 ms p50 and 0.077 ms p99 on MMLU prompts (0.026 /
0.114 ms before the budget), ~3 µs more per message of a long conversation (every message is
still walked), or ~2 µs when the caller passes ``RequestMeta.prompt_tokens``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from thrifty.routing.scorers import RequestMeta, text_body
from thrifty.tokens import count_messages, count_request
from thrifty.tokens._parts import content_pieces
from thrifty.tokens.encodings import O200K_BASE, get_encoding

__all__ = ["LengthScorer", "LengthWeights"]

REFERENCE_MODEL = "gpt-4o"
"""Sizes are counted with this model's tokenizer (o200k_base, exact and offline)."""


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
    exact_chars: int = 1200
    """Characters of message text counted exactly per request; the rest is estimated at the
    counted part's tokens per character (0: count everything exactly)."""


_TEXT_PARTS = frozenset({"text", "input_text", "output_text"})
_PLAIN_KEYS = frozenset({"role", "content", "tool_call_id"})
_FALLBACK_CHARS_PER_TOKEN = 4.0
"""Used for the removed text when no text was kept to measure the ratio on (not expected)."""


def _part_text(part: Any) -> str | None:
    """The text of a content part that the budget applies to, ``None`` for any other part."""
    if isinstance(part, str):
        return part
    if isinstance(part, Mapping) and part.get("type") in _TEXT_PARTS:
        text = part.get("text")
        return text if isinstance(text, str) else None
    return None


def _head(text: str, budget: int) -> str:
    """The start of ``text`` (longer than ``budget``), cut at its last whitespace within
    ``budget`` characters, or at ``budget`` when there is none."""
    at = max(text.rfind(" ", 0, budget + 1), text.rfind("\n", 0, budget + 1))
    at = max(at, text.rfind("\t", 0, budget + 1))
    return text[:at] if at > 0 else text[:budget]


def _take(text: str, left: int) -> tuple[str | None, int, int, int]:
    """``text`` within ``left`` characters: ``None`` when it fits whole (else its head), the
    characters kept and removed, and the budget left."""
    n = len(text)
    if n <= left:
        return None, n, 0, left - n
    head = _head(text, left)
    return head, len(head), n - len(head), 0


def _reduce_parts(parts: list[Any], left: int) -> tuple[list[Any], int, int, int]:
    """``parts`` within ``left`` characters of text: the parts, kept and removed characters and
    the budget left. Text parts are taken in order; other parts are untouched."""
    out = parts
    kept = removed = 0
    for j, part in enumerate(parts):
        text = _part_text(part)
        if text is None:
            continue
        head, k, r, left = _take(text, left)
        kept += k
        removed += r
        if head is not None:
            if out is parts:
                out = list(parts)
            out[j] = head if isinstance(part, str) else {**part, "text": head}
    return out, kept, removed, left


def _reduce(messages: list[Any], budget: int) -> tuple[list[Any], int, int]:
    """``messages`` with at most ``budget`` characters of text (see the module docstring), the
    characters of text kept and removed. Unchanged messages are shared, not copied."""
    out = messages
    kept = removed = 0
    left = budget
    for i in range(len(messages) - 1, -1, -1):
        message = messages[i]
        if not isinstance(message, Mapping):
            continue
        content = message.get("content")
        new: str | list[Any] | None
        if isinstance(content, str):
            new, k, r, left = _take(content, left)
        elif isinstance(content, list):
            new, k, r, left = _reduce_parts(content, left)
            new = new if r else None
        else:
            continue
        kept += k
        removed += r
        if new is None:
            continue
        if out is messages:
            out = list(messages)
        out[i] = {**message, "content": new}
    return out, kept, removed


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


def _plain_text_tokens(messages: list[Any]) -> int:
    """The reference tokenizer's count of the message texts of a plain chat (see
    ``_plain_fixed_tokens``): what ``count_request`` adds to the chat format's tokens."""
    encode = get_encoding(O200K_BASE).encode_ordinary
    return sum(
        len(encode(piece))
        for message in messages
        if isinstance(message, Mapping)
        for piece in content_pieces(message.get("content"))[0]
        if piece
    )


def _prompt_tokens(body: Mapping[str, Any], budget: int) -> int:
    """The request's prompt tokens with the reference model: exact for at most ``budget``
    characters of message text, the rest estimated (see the module docstring)."""
    messages = body.get("messages")
    fixed = _plain_fixed_tokens(body, messages) if isinstance(messages, list) else None
    if fixed is not None and isinstance(messages, list):
        # A plain chat: its format's tokens are known, so only its texts are encoded (what
        # count_request would do, without walking the request twice).
        reduced, kept, removed = _reduce(messages, budget) if budget > 0 else (messages, 0, 0)
        text = _plain_text_tokens(reduced)
        if not removed:
            return fixed + text
        per_char = text / kept if kept > 0 else 1 / _FALLBACK_CHARS_PER_TOKEN
        return fixed + text + round(removed * per_char)
    if budget > 0 and isinstance(messages, list):
        reduced, kept, removed = _reduce(messages, budget)
        if removed:
            counted = count_request({**body, "messages": reduced, "model": REFERENCE_MODEL})
            fixed = _plain_fixed_tokens(body, reduced)
            if fixed is None:
                empty = _reduce(messages, 0)[0]
                skeleton = {**body, "messages": empty, "model": REFERENCE_MODEL}
                fixed = count_request(skeleton).tokens
            if kept > 0:
                estimate = removed * max(counted.tokens - fixed, 0) / kept
            else:
                estimate = removed / _FALLBACK_CHARS_PER_TOKEN
            return counted.tokens + round(estimate)
    return count_request({**body, "model": REFERENCE_MODEL}).tokens


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

    def __init__(self, weights: LengthWeights | None = None) -> None:
        self.weights = weights or LengthWeights()

    def effective_tokens(self, body: Mapping[str, Any], meta: RequestMeta | None = None) -> float:
        """The request's size in token-equivalents: prompt tokens plus the structural bonuses."""
        w = self.weights
        if meta is not None and meta.prompt_tokens is not None:
            tokens = meta.prompt_tokens
        else:
            tokens = _prompt_tokens(body, w.exact_chars)
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
