"""Token usage in one canonical shape (OpenAI semantics), and adapters from provider shapes.

``prompt_tokens`` counts ALL input tokens, including those read from a cache
(``cached_tokens``) and those written to one (``cache_write_tokens``); ``completion_tokens``
counts all output tokens, including hidden reasoning (``reasoning_tokens``). So::

    cached_tokens + cache_write_tokens <= prompt_tokens
    reasoning_tokens <= completion_tokens
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


def _int(data: Mapping[str, Any] | None, *keys: str) -> int:
    """The first of ``keys`` present in ``data`` as an int (0 when absent or null)."""
    if not data:
        return 0
    for key in keys:
        value = data.get(key)
        if type(value) is int:
            return value
        if value is not None:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"usage field {key!r} must be a number (got {value!r})")
            return int(value)
    return 0


def _sub(data: Mapping[str, Any] | None, key: str) -> Mapping[str, Any] | None:
    if not data:
        return None
    value = data.get(key)
    return value if type(value) is dict or isinstance(value, Mapping) else None


@dataclass(frozen=True, slots=True)
class Usage:
    """The tokens of one request. Raises ``ValueError`` when negative or inconsistent."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0

    def __post_init__(self) -> None:
        p, c = self.prompt_tokens, self.completion_tokens
        cached, written, reasoning = (
            self.cached_tokens,
            self.cache_write_tokens,
            self.reasoning_tokens,
        )
        if (
            type(p) is int
            and type(c) is int
            and type(cached) is int
            and type(written) is int
            and type(reasoning) is int
            and cached >= 0
            and written >= 0
            and cached + written <= p
            and 0 <= reasoning <= c
        ):
            return  # the common case, checked at once; the loop below names what is wrong
        for name in (
            "prompt_tokens",
            "completion_tokens",
            "cached_tokens",
            "cache_write_tokens",
            "reasoning_tokens",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"{name} must be an integer (got {value!r})")
            if value < 0:
                raise ValueError(f"{name} must be >= 0 (got {value})")
        if self.cached_tokens + self.cache_write_tokens > self.prompt_tokens:
            raise ValueError(
                f"cached_tokens ({self.cached_tokens}) + cache_write_tokens "
                f"({self.cache_write_tokens}) exceed prompt_tokens ({self.prompt_tokens}); "
                "prompt_tokens must count every input token"
            )
        if self.reasoning_tokens > self.completion_tokens:
            raise ValueError(
                f"reasoning_tokens ({self.reasoning_tokens}) exceed completion_tokens "
                f"({self.completion_tokens}); completion_tokens must include reasoning"
            )

    @property
    def uncached_prompt_tokens(self) -> int:
        """Input tokens billed at the plain input price."""
        return self.prompt_tokens - self.cached_tokens - self.cache_write_tokens

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @classmethod
    def from_openai(cls, usage: Mapping[str, Any] | None) -> Usage:
        """From an OpenAI-style ``usage`` object: Chat Completions (``prompt_tokens``,
        ``prompt_tokens_details.cached_tokens``, ``completion_tokens_details.reasoning_tokens``),
        the Responses API (``input_tokens`` / ``output_tokens`` and their ``*_details``), and
        DeepSeek's ``prompt_cache_hit_tokens``."""
        prompt_details = _sub(usage, "prompt_tokens_details") or _sub(usage, "input_tokens_details")
        completion_details = _sub(usage, "completion_tokens_details") or _sub(
            usage, "output_tokens_details"
        )
        cached = _int(prompt_details, "cached_tokens") or _int(usage, "prompt_cache_hit_tokens")
        return cls(
            prompt_tokens=_int(usage, "prompt_tokens", "input_tokens"),
            completion_tokens=_int(usage, "completion_tokens", "output_tokens"),
            cached_tokens=cached,
            cache_write_tokens=_int(prompt_details, "cache_write_tokens", "cache_creation_tokens"),
            reasoning_tokens=_int(completion_details, "reasoning_tokens"),
        )

    @classmethod
    def from_anthropic(cls, usage: Mapping[str, Any] | None) -> Usage:
        """From an Anthropic Messages ``usage`` object, whose ``input_tokens`` EXCLUDES cache
        reads (``cache_read_input_tokens``) and writes (``cache_creation_input_tokens``)."""
        fresh = _int(usage, "input_tokens")
        read = _int(usage, "cache_read_input_tokens")
        written = _int(usage, "cache_creation_input_tokens")
        return cls(
            prompt_tokens=fresh + read + written,
            completion_tokens=_int(usage, "output_tokens"),
            cached_tokens=read,
            cache_write_tokens=written,
        )

    @classmethod
    def from_gemini(cls, usage: Mapping[str, Any] | None) -> Usage:
        """From a Gemini ``usageMetadata`` object: ``promptTokenCount`` includes cached content,
        and thinking tokens (``thoughtsTokenCount``) are billed as output but reported apart
        from ``candidatesTokenCount``."""
        thoughts = _int(usage, "thoughtsTokenCount")
        return cls(
            prompt_tokens=_int(usage, "promptTokenCount"),
            completion_tokens=_int(usage, "candidatesTokenCount") + thoughts,
            cached_tokens=_int(usage, "cachedContentTokenCount"),
            reasoning_tokens=thoughts,
        )
