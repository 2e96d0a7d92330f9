"""Token counting (exact and offline for OpenAI models), context pruning and compression."""

from thrifty.tokens.counting import (
    TokenCount,
    TokenizerDataError,
    count_messages,
    count_request,
    count_text,
    encoding_for,
    utf8_upper_bound,
)

__all__ = [
    "TokenCount",
    "TokenizerDataError",
    "count_messages",
    "count_request",
    "count_text",
    "encoding_for",
    "utf8_upper_bound",
]
