"""Calibrated token estimates for models without a local tokenizer, and hard upper bounds.

Claude 3+ has no published tokenizer (exact counts only come from Anthropic's ``count_tokens``
endpoint); Gemini, Grok, Command and most hosted models have none either. For them thrifty counts
with o200k_base and multiplies by a documented safety factor::

    estimate = min(ceil(o200k_count * factor) + digit surcharge, upper bound)

(the digit surcharge applies to unknown models only, see below).

The factor is meant to over-count: an estimate feeds budgets and pre-flight context checks, where
under-counting is the expensive mistake.

Claude (``CLAUDE_LEGACY_FACTOR`` = 1.40, ``CLAUDE_FACTOR`` = 1.70)
    Measured ratios of Claude's count to the o200k count, by text kind:

    ====================================  ==========  =========================================
    text                                  ratio       source
    ====================================  ==========  =========================================
    English articles                      1.16        Claude 3.5 Sonnet ``count_tokens`` vs
    math                                  1.21        GPT-4o, VentureBeat, May 2025
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
    Claude Opus 4.7 introduced a new tokenizer that Anthropic's migration guide documents as
    "roughly 1.0 to 1.35x as many tokens" as 4.6; independent ``count_tokens`` measurements
    (April 2026) found up to 1.45-1.47x on
    English and technical prose, 1.15-1.36x on code, 1.00x on CJK and Cyrillic. The largest
    product over text kinds is English, 1.16 x 1.45 ~ 1.68: ``CLAUDE_FACTOR`` = 1.70 applies to
    Opus 4.7 and everything newer, and to any Claude id whose version cannot be read.

Other models (``UNKNOWN_FACTOR`` = 1.50, plus ``digit_surcharge``)
    Nothing is known about their tokenizer, so the estimate is calibrated on the tokenizers thrifty
    does have. Ratio of each to o200k_base on the same corpus (aggregate per kind):

    ===============  ======  =======  =======  ====  ========  ======  ========
    text             cl100k  Llama 3  Llama 4  Qwen  Qwen 3.5  Tekken  DeepSeek
    ===============  ======  =======  =======  ====  ========  ======  ========
    English prose    1.00    1.00     0.99     1.01  1.04      1.13    1.03
    de/fr/es/it/pt   1.11    1.11     0.98     1.11  1.05      1.06    1.12
    ru/el/be         1.15    1.04     0.97     1.06  1.05      1.07    1.06
    Chinese          1.24    1.02     0.89     0.94  0.92      1.43    0.89
    Japanese         1.33    0.98     0.84     0.94  0.84      1.05    0.93
    Python code      0.99    0.99     0.99     1.00  1.08      1.06    1.06
    JSON             1.00    1.00     1.00     1.02  1.14      1.07    1.06
    emoji            1.61    1.48     1.17     1.00  1.52      1.91    1.09
    random numbers   1.00    1.00     1.00     2.47  2.47      2.47    1.00
    ===============  ======  =======  =======  ====  ========  ======  ========

    (Corpus: gnupg's help texts in 26 languages, the Rust book and Rust by Example (zh) as text,
    CPython's stdlib, JSON schemas; measured with the tokenizers in this package.)

    1.50 covers the per-kind aggregate of every tokenizer above except on emoji-dominated text.
    Numbers are the one large systematic gap: tokenizers that split digits one by one (Qwen,
    Mistral, Gemma/Gemini's SentencePiece) need up to three tokens where o200k_base needs one,
    so for unknown models each run of digits adds the tokens o200k_base saved by grouping
    (``digit_surcharge``). Individual texts spread wider than the aggregates: cl100k_base (the
    oldest tokenizer here) reaches 1.6x on a Russian paragraph, whitespace-heavy junk (text
    stripped from HTML) 2x on Tekken. The upper bound caps every estimate; the test suite checks
    that the estimate covers every family tokenizer on paragraph samples of each kind.
    The same estimate applies when a model's family is known but its package is not installed.
    Claude gets no digit surcharge: Claude-2's BPE groups digits (0.99x o200k_base on numbers).

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
UNKNOWN_FACTOR = 1.50

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


def has_digit_surcharge(model: str) -> bool:
    """Whether estimates for the (normalised) model id add ``digit_surcharge``: all but Claude."""
    return not is_claude(model)


def apply_factor(o200k_tokens: int, factor: float) -> int:
    """``ceil(o200k_tokens * factor)``, robust to float noise (1.4 * 10 is 14, not 15)."""
    return math.ceil(round(o200k_tokens * factor, 6))


def utf8_bytes(text: str) -> int:
    """UTF-8 byte length of ``text`` (lone surrogates count as 3 bytes)."""
    if text.isascii():  # no copy for the common case
        return len(text)
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


def digit_surcharge(text: str) -> int:
    """Extra tokens a digit-by-digit tokenizer needs over o200k_base, which groups up to three
    digits per token: ``n - ceil(n / 3)`` for ``n`` ASCII digits."""
    n = sum(map(text.count, "0123456789"))
    return n - (n + 2) // 3
