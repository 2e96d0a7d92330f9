"""Token counting (exact and offline for OpenAI models and open families with a packaged
tokenizer, a calibrated estimate with a hard upper bound elsewhere), context pruning and
compression."""

from thrifty.tokens.counting import (
    IMAGE_TOKENS_HIGH,
    IMAGE_TOKENS_LOW,
    TokenCount,
    Tokenizer,
    count_messages,
    count_request,
    count_text,
    encoding_for,
    estimate_factor,
    estimate_tokens,
    request_upper_bound,
    tokenizer_for,
    upper_bound_tokens,
    utf8_upper_bound,
)
from thrifty.tokens.encodings import TokenizerDataError

__all__ = [
    "IMAGE_TOKENS_HIGH",
    "IMAGE_TOKENS_LOW",
    "TokenCount",
    "Tokenizer",
    "TokenizerDataError",
    "count_messages",
    "count_request",
    "count_text",
    "encoding_for",
    "estimate_factor",
    "estimate_tokens",
    "request_upper_bound",
    "tokenizer_for",
    "upper_bound_tokens",
    "utf8_upper_bound",
]
