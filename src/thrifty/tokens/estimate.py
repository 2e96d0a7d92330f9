"""Calibrated token estimates for models without a local tokenizer, and hard upper bounds.

Claude 3+ has no published tokenizer (exact counts only come from Anthropic's ``count_tokens``
endpoint); Gemini, Grok, Command and most hosted models have none either. For them thrifty counts
with o200k_base and multiplies by a documented safety factor::

    estimate = min(ceil(o200k_count * factor), upper bound)

The factor is meant to over-count: an estimate feeds budgets and pre-flight context checks, where
under-counting is the expensive mistake.

Claude (``CLAUDE_LEGACY_FACTOR`` = 1.40, ``CLAUDE_FACTOR`` = 1.70)
    Measured ratios of Claude's count to the o200k count, by text kind:

    ====================================  ==========  =========================================
    text                                  ratio       source
    ====================================  ==========  =========================================
    English articles                      1.16        Claude 3.5 Sonnet ``count_tokens`` vs
    math                                  1.21        GPT-4o, published May 2025 (VentureBeat)
    Python code                           1.30
    English prose, code, JSON             1.02-1.11   Claude-2 BPE (``tokenizer.json`` of the
    Chinese                               1.21        ``anthropic`` SDK before 0.39), measured
    German/French/Spanish/Italian         1.31        offline by us against o200k_base on gnupg
    Russian/Greek/Belarusian              1.32        help texts, the Rust book, CPython's
    Japanese                              1.39        stdlib and JSON schemas
    emoji                                 1.48
    ====================================  ==========  =========================================

    Claude 3.x up to Opus/Sonnet 4.6 and Haiku 4.5 share the older tokenizer: 1.40 covers every
    kind above except emoji (and pathological input), which the upper bound caps.
    Claude Opus 4.7 introduced a new tokenizer that Anthropic documents as "roughly 1.0-1.35x as
    many tokens" as 4.6; independent ``count_tokens`` measurements found up to 1.45-1.47x on
    English and technical prose, 1.15-1.36x on code, 1.00x on CJK and Cyrillic. The largest
    product over text kinds is English, 1.16 x 1.45 ~ 1.68: ``CLAUDE_FACTOR`` = 1.70 applies to
    Opus 4.7 and everything newer, and to any Claude id whose version cannot be read.

Other models (``UNKNOWN_FACTOR`` = 1.60)
    Nothing is known about their tokenizer, so the factor is calibrated on the tokenizers thrifty
    does have: across cl100k_base, Llama 3, Llama 4, Qwen, Mistral Tekken and DeepSeek V3, the
    ratio to o200k_base on English, code, JSON, European, Cyrillic, CJK and emoji text stays
    below 1.60 (the worst is cl100k_base on Cyrillic and Japanese, ~1.5; the test suite checks
    the bound on its sample texts). The same factor applies when a model's family is known but its
    tokenizer package is not installed.

Upper bound (``upper_bound_tokens``)
    A byte-level BPE never produces more tokens than the UTF-8 bytes of the text it encodes. Where
    the tokenizer normalises first (Qwen: NFC) the bound is taken on the normalised text. For
    models with an unknown tokenizer the bound is the larger of the raw and NFKC byte lengths
    (Claude 2's tokenizer applied NFKC, which can expand a character up to 18-fold) plus one (a
    SentencePiece dummy prefix). This is the hard bound budgets should use when "never
    under-count" matters more than precision.
"""

from __future__ import annotations

import math
import re
import unicodedata

CLAUDE_LEGACY_FACTOR = 1.40
CLAUDE_FACTOR = 1.70
UNKNOWN_FACTOR = 1.60

# "claude-3-5-sonnet-20241022", "claude-3.7-sonnet", "claude-sonnet-4-5", "claude-opus-4-1-2025..",
# "claude-2.1", "claude-instant-1.2", "claude-v2" (Bedrock). Dates never read as minor versions.
_CLAUDE = re.compile(
    r"^claude-(?:"
    r"(?:opus|sonnet|haiku)-(?P<major>\d+)(?:[.-](?P<minor>\d{1,2})(?!\d))?"
    r"|(?P<major2>\d+)(?:[.-](?P<minor2>\d)(?!\d))?"
    r"|(?P<legacy>instant|v\d)"
    r")"
)
_LAST_LEGACY_CLAUDE = (4, 6)


def is_claude(model: str) -> bool:
    """Whether the (normalised, vendor-prefix-free) model id names a Claude model."""
    return model.startswith("claude")


def claude_factor(model: str) -> float:
    """The safety factor for a Claude model id (normalised, without vendor prefix)."""
    m = _CLAUDE.match(model)
    if m is None:
        return CLAUDE_FACTOR
    if m.group("legacy"):
        return CLAUDE_LEGACY_FACTOR
    major = m.group("major") or m.group("major2")
    minor = m.group("minor") or m.group("minor2") or "0"
    version = (int(major), int(minor))
    return CLAUDE_LEGACY_FACTOR if version <= _LAST_LEGACY_CLAUDE else CLAUDE_FACTOR


def apply_factor(o200k_tokens: int, factor: float) -> int:
    """``ceil(o200k_tokens * factor)``, robust to float noise (1.4 * 10 is 14, not 15)."""
    return math.ceil(round(o200k_tokens * factor, 6))


def utf8_bytes(text: str) -> int:
    """UTF-8 byte length of ``text`` (lone surrogates count as 3 bytes)."""
    return len(text.encode("utf-8", "surrogatepass"))


def nfc_bound(text: str) -> int:
    """Upper bound for a byte-level BPE that NFC-normalises its input (Qwen)."""
    if text.isascii():
        return len(text)
    return utf8_bytes(unicodedata.normalize("NFC", text))


def unknown_bound(text: str) -> int:
    """Upper bound for a tokenizer about which nothing is known (see the module docstring)."""
    if not text:
        return 0
    if text.isascii():
        return len(text) + 1
    return max(utf8_bytes(text), utf8_bytes(unicodedata.normalize("NFKC", text))) + 1
