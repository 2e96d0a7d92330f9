"""The scorer seam: how much a request needs the strong model.

A scorer maps a canonical OpenAI chat body to a float; **higher means the strong model is more
needed**. Only the order of scores matters to routing (thresholds are set from their quantiles, see
``routing.threshold``), so each scorer keeps its own scale:

- ``length`` (:class:`~thrifty.routing.length.LengthScorer`, the default, no training): in [0, 1);
- ``rules`` (:class:`~thrifty.routing.rules.RulesScorer`): the matched tier's score, in [0, 1];
- ``learned`` (:class:`~thrifty.routing.learned.LearnedScorer`): P(strong right) - P(cheap
  right), in [-1, 1].

:func:`make_scorer` builds one from a spec string (``length``, ``rules``, ``learned:PATH``).
Importing this module imports neither numpy nor the embedding model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from thrifty.errors import ConfigError

__all__ = [
    "LEARNED_MAX_TOKENS",
    "LEARNED_TRUNCATION",
    "RequestMeta",
    "Scorer",
    "conversation_text",
    "last_user_text",
    "make_scorer",
]

LEARNED_MAX_TOKENS = 64
"""Word pieces of a prompt (its head and tail, :data:`LEARNED_TRUNCATION`) a ``learned`` router is
trained on and embeds, unless trained otherwise (``thrifty router train --max-tokens``): the
smallest cap that kept the cross-validated quality, see ``docs/decisions.md``. Here, not in
``routing.learned``, so the CLI can read it without numpy."""
LEARNED_TRUNCATION = "head_tail"
"""How a longer prompt is cut for the ``learned`` router: its first and last word pieces."""


@dataclass(frozen=True, slots=True)
class RequestMeta:
    """What the gateway knows about a request beyond its body (all optional).

    ``prompt_tokens``: the prompt's token count when the caller has already counted it (the
    capability filter must): the length scorer then skips its own count.
    """

    tags: tuple[str, ...] = ()
    tenant: str | None = None
    user_tier: str | None = None
    prompt_tokens: int | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


@runtime_checkable
class Scorer(Protocol):
    """Scores requests; higher = needs the strong model.

    Invariants: deterministic (the same body and meta give the same score in one process), never
    raises on a well-formed chat body, and ``score_text(t)`` equals ``score`` of a body holding
    ``t`` as its only user message. ``score`` may block for a few ms (``learned`` embeds the
    prompt); async callers use ``ascore``, which keeps the event loop free.
    """

    name: str

    def score(self, body: Mapping[str, Any], meta: RequestMeta | None = None) -> float: ...

    def score_text(self, text: str) -> float: ...

    async def ascore(self, body: Mapping[str, Any], meta: RequestMeta | None = None) -> float: ...


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence) and not isinstance(content, (str, bytes)):
        parts: list[str] = []
        for part in content:
            if isinstance(part, str):
                parts.append(part)
            elif isinstance(part, Mapping) and part.get("type") in ("text", "input_text"):
                parts.append(str(part.get("text") or ""))
        return "\n".join(parts)
    return ""


def _messages(body: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    messages = body.get("messages")
    if not isinstance(messages, list):
        return []
    return [m for m in messages if isinstance(m, Mapping)]


def last_user_text(body: Mapping[str, Any]) -> str:
    """The text of the last user message (text parts joined by newlines); ``""`` if none.

    The learned scorer embeds this: it is what the router data labels (one prompt per row).
    """
    for message in reversed(_messages(body)):
        if message.get("role") == "user":
            return _content_text(message.get("content"))
    return ""


def conversation_text(body: Mapping[str, Any]) -> str:
    """The text of every message, in order, joined by newlines (for patterns over a whole chat)."""
    return "\n".join(_content_text(m.get("content")) for m in _messages(body))


def text_body(text: str) -> dict[str, Any]:
    """The chat body that ``score_text(text)`` scores: ``text`` as the only user message."""
    return {"messages": [{"role": "user", "content": text}]}


def make_scorer(spec: str, *, rules: Sequence[Mapping[str, Any]] | None = None) -> Scorer:
    """Build a scorer from ``length``, ``rules`` or ``learned:PATH`` (or ``learned``, which reads
    ``router.npz`` in the working directory).

    ``rules`` are the rule dicts for ``rules`` (default: the seed's keyword classes, an example).
    Raises ``ConfigError`` on an unknown spec or an unreadable model file.
    """
    kind, _, arg = spec.partition(":")
    kind = kind.strip().lower()
    if kind == "length":
        from thrifty.routing.length import LengthScorer

        return LengthScorer()
    if kind == "rules":
        from thrifty.routing.rules import SEED_KEYWORD_RULES, RulesScorer

        return RulesScorer.from_config(SEED_KEYWORD_RULES if rules is None else rules)
    if kind == "learned":
        from thrifty.routing.learned import LearnedScorer

        return LearnedScorer.load(Path(arg or "router.npz"))
    raise ConfigError(f"unknown scorer {spec!r}: use length, rules or learned[:PATH]")
