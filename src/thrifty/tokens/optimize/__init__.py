"""Token optimization levers over the canonical OpenAI chat body.

Each lever is a pure function: it takes a body (``model``, ``messages``, optional ``tools``, ...),
never mutates it, and returns a new body plus a small frozen result saying what it did and how
many prompt tokens it saved (counted with ``thrifty.tokens`` for the body's model), so the gateway
can switch each lever per route and record its savings per request.

- ``prune_context`` (``prune``): fit a token budget by dropping the oldest turns (or truncating
  the oldest kept message with a visible marker); system messages, the last N turns and
  tool-call/result pairs are always kept.
- ``compress_lossless`` (``compress``, on by default): whitespace, JSON minification and duplicate
  system messages; never changes code blocks, JSON values or the meaning of text.
- ``compress_lossy`` (``compress``, opt-in): seed 001's filler phrases and verbose constructions;
  can change meaning.
- ``apply_response_limit`` / ``classify_complexity`` (``limits``): cap ``max_tokens`` by
  complexity class and user tier when the route enables it and the client set no cap.

A gateway applying several levers runs them in this order: lossless, lossy, prune (pruning
counts what compression left), then limits.
"""

from thrifty.tokens.optimize.compress import (
    LOSSY_REWRITES,
    CompressResult,
    compress_lossless,
    compress_lossy,
)
from thrifty.tokens.optimize.limits import (
    BASE_MAX_TOKENS,
    DEFAULT_THRESHOLDS,
    TIER_MULTIPLIERS,
    Complexity,
    ComplexityThresholds,
    LimitPolicy,
    LimitResult,
    apply_response_limit,
    classify_complexity,
    response_limit,
)
from thrifty.tokens.optimize.prune import (
    PRUNE_MARKER,
    PruneResult,
    conversation_turns,
    prune_context,
)

__all__ = [
    "BASE_MAX_TOKENS",
    "DEFAULT_THRESHOLDS",
    "LOSSY_REWRITES",
    "PRUNE_MARKER",
    "TIER_MULTIPLIERS",
    "Complexity",
    "ComplexityThresholds",
    "CompressResult",
    "LimitPolicy",
    "LimitResult",
    "PruneResult",
    "apply_response_limit",
    "classify_complexity",
    "compress_lossless",
    "compress_lossy",
    "conversation_turns",
    "prune_context",
    "response_limit",
]
