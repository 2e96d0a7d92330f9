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
effective tokens, approaching 1 for very long ones. Decision cost: one ``count_request`` (~20 µs
for a 100-token prompt) unless the caller passes ``RequestMeta.prompt_tokens``, then ~2 µs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from thrifty.routing.scorers import RequestMeta, text_body
from thrifty.tokens import count_request

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
            tokens = count_request({**body, "model": REFERENCE_MODEL}).tokens
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
