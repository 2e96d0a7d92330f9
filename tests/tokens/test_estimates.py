# ruff: noqa: RUF001 (natural-language samples: Cyrillic letters and CJK punctuation are intended)
"""Claude and unknown models: calibrated estimates with documented safety factors, and the hard
upper bounds budgets rely on."""

from __future__ import annotations

import math

import pytest

from thrifty.tokens import (
    TokenCount,
    count_messages,
    count_request,
    count_text,
    counting,
    estimate,
    estimate_factor,
    estimate_tokens,
    request_upper_bound,
    tokenizer_for,
    upper_bound_tokens,
    utf8_upper_bound,
)
from thrifty.tokens import families as F
from thrifty.tokens import family_loaders as FL

# Paragraph-sized samples of the text kinds the factors were calibrated on (see estimate.py).
KINDS = {
    "english": (
        "Budgets are enforced before a request leaves the gateway, so the count has to be "
        "known in advance. When the provider publishes its tokenizer, the count is exact; when "
        "it does not, the gateway multiplies a stand-in count by a safety factor and never goes "
        "above the byte length of the text, which no byte-level tokenizer can exceed."
    ),
    "german": (
        "Die Anfrage wird vor dem Versand geprüft: Überschreitet sie das Budget des Mandanten, "
        "lehnt das Gateway sie ab. Für Modelle ohne veröffentlichten Tokenizer schätzt es die "
        "Anzahl der Tokens großzügig, damit keine Kostengrenze überschritten wird."
    ),
    "russian": (
        "Запрос проверяется до отправки: если он превышает бюджет арендатора, шлюз его "
        "отклоняет. Для моделей без опубликованного токенизатора количество токенов "
        "оценивается с запасом, чтобы не превысить лимит расходов."
    ),
    "chinese": (
        "请求在发送之前会先经过检查：如果超出了租户的预算，网关就会拒绝它。对于没有公开分词器的"
        "模型，网关会按照一个有记录的安全系数来估算令牌数量，并且永远不会超过文本的字节长度。"
    ),
    "japanese": (
        "リクエストは送信前に確認されます。テナントの予算を超える場合、ゲートウェイはそれを拒否"
        "します。トークナイザーが公開されていないモデルでは、安全係数を掛けて多めに見積もります。"
    ),
    "python": (
        "def route(request: dict[str, Any], budget: Budget) -> Decision:\n"
        "    tokens = count_request(request)\n"
        "    if tokens.upper_bound > budget.remaining:\n"
        "        return Decision.reject(reason='budget', needed=tokens.upper_bound)\n"
        "    for candidate in sorted(budget.models, key=lambda m: m.price):\n"
        "        if candidate.context >= tokens.tokens:\n"
        "            return Decision.accept(candidate)\n"
        "    raise NoModelFits(tokens)\n"
    ),
    "json": (
        '{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], '
        '"temperature": 0.2, "max_tokens": 512, "tools": [{"type": "function", "function": '
        '{"name": "lookup", "parameters": {"type": "object", "properties": {"id": '
        '{"type": "string"}}}}}], "metadata": {"tenant": "acme", "trace": "4bf92f3577b34da6"}}'
    ),
    "numbers": "Invoice 2024-0917: 1,234.56 EUR, 7,890.12 USD, ref 31415926535 8979323846 264338",
}


@pytest.mark.parametrize(
    ("model", "factor"),
    [
        ("claude-3-5-sonnet-20241022", 1.40),
        ("claude-3-opus-20240229", 1.40),
        ("claude-3.7-sonnet", 1.40),
        ("anthropic/claude-3.5-haiku", 1.40),  # OpenRouter
        ("anthropic.claude-3-5-sonnet-20240620-v1:0", 1.40),  # Bedrock
        ("us.anthropic.claude-sonnet-4-20250514-v1:0", 1.40),
        ("claude-3-5-sonnet-v2@20241022", 1.40),  # Vertex
        ("claude-sonnet-4-20250514", 1.40),
        ("claude-opus-4-1-20250805", 1.40),
        ("claude-sonnet-4-5", 1.40),
        ("claude-haiku-4-5-20251001", 1.40),
        ("claude-opus-4-6", 1.40),
        ("claude-sonnet-4.6", 1.40),
        ("claude-2.1", 1.40),
        ("claude-instant-1.2", 1.40),
        ("anthropic.claude-v2:1", 1.40),
        ("claude-opus-4-7", 1.70),  # Anthropic's new tokenizer: up to ~1.35-1.47x more tokens
        ("claude-opus-4-8", 1.70),
        ("claude-opus-5", 1.70),
        ("claude-sonnet-5-20260101", 1.70),
        ("claude-next", 1.70),  # unreadable version: the conservative factor
        ("gemini-2.5-pro", 1.50),
        ("grok-4", 1.50),
        ("", 1.50),
    ],
)
def test_estimate_factor_by_model(model: str, factor: float) -> None:
    assert estimate_factor(model) == factor
    assert estimate_factor(model) == pytest.approx(
        {1.40: estimate.CLAUDE_LEGACY_FACTOR, 1.70: estimate.CLAUDE_FACTOR}.get(
            factor, estimate.UNKNOWN_FACTOR
        )
    )


@pytest.mark.parametrize("model", ["claude-3-5-sonnet", "claude-opus-4-7", "gemini-2.0-flash"])
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_estimates_lie_between_o200k_and_the_upper_bound(model: str, kind: str) -> None:
    text = KINDS[kind]
    o200k = count_text(text, "gpt-4o")
    est = estimate_tokens(text, model)
    assert count_text(text, model) == est
    assert o200k <= est <= upper_bound_tokens(text, model) <= utf8_upper_bound(text) + 1
    if model.startswith("claude"):
        assert est <= utf8_upper_bound(text)


def test_claude_estimate_is_ceil_of_factor_times_o200k() -> None:
    text = KINDS["english"]
    o200k = count_text(text, "gpt-4o")
    assert estimate_tokens(text, "claude-3-5-sonnet") == math.ceil(o200k * 1.40)
    assert estimate_tokens(text, "claude-opus-4-7") == math.ceil(o200k * 1.70)
    # No digit surcharge for Claude (its older BPE groups digits like o200k_base).
    numbers = KINDS["numbers"]
    assert estimate_tokens(numbers, "claude-3-5-sonnet") == math.ceil(
        count_text(numbers, "gpt-4o") * 1.40
    )


def test_unknown_models_add_the_digit_surcharge() -> None:
    assert estimate.digit_surcharge("no digits") == 0
    assert estimate.digit_surcharge("123") == 2  # o200k: one token; digit-by-digit: three
    assert estimate.digit_surcharge("1234") == 2
    assert estimate.digit_surcharge("1 2 3") == 2  # an upper bound on o200k's saving
    text = "Order 31415926535897932384 shipped to Mr Smith on Tuesday morning"
    o200k = count_text(text, "gpt-4o")
    expected = math.ceil(o200k * 1.5) + 20 - 7
    assert expected < upper_bound_tokens(text, "gemini-2.0-flash")
    assert estimate_tokens(text, "gemini-2.0-flash") == expected
    # Digit-only text reaches the bound: bytes + 1.
    digits = "31415926535897932384"
    assert estimate_tokens(digits, "gemini-2.0-flash") == 21


@pytest.mark.parametrize("family", sorted(F.FAMILIES))
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_unknown_estimate_covers_every_local_tokenizer(family: str, kind: str) -> None:
    """The calibration claim of ``UNKNOWN_FACTOR``, checked on these samples. (cl100k_base, the
    oldest tokenizer measured, exceeds it on Cyrillic: 1.6x o200k_base on the Russian sample.)"""
    tok = FL.load(family)
    assert tok is not None
    text = KINDS[kind]
    assert estimate_tokens(text, "unknown-model") >= len(tok.encode_ordinary(text))


def test_apply_factor_is_not_fooled_by_float_noise() -> None:
    assert 50 * 1.1 != 55  # 55.00000000000001
    assert estimate.apply_factor(50, 1.1) == 55
    assert estimate.apply_factor(45, 1.4) == 63  # 62.99999999999999
    assert estimate.apply_factor(0, 1.7) == 0
    assert estimate.apply_factor(3, 1.5) == 5


def test_upper_bounds() -> None:
    assert utf8_upper_bound("héllo") == 6
    assert upper_bound_tokens("héllo", "gpt-4o") == 6
    assert upper_bound_tokens("héllo", "llama-3.3-70b-versatile") == 6
    assert upper_bound_tokens("", "claude-3-5-sonnet") == 0
    assert upper_bound_tokens("hello", "claude-3-5-sonnet") == 6  # +1: SentencePiece prefix
    # NFKC can expand one character 18-fold; the bound for unknown tokenizers allows for it.
    arabic_ligature = "\ufdfa"
    assert utf8_upper_bound(arabic_ligature) == 3
    assert upper_bound_tokens(arabic_ligature, "claude-3-5-sonnet") == 33 + 1
    assert upper_bound_tokens(arabic_ligature) == 34  # no model: as unknown
    # NFC can expand too (U+0F73 -> U+0F71 U+0F72): Qwen's bound is on the NFC form.
    tibetan = "\u0f73"
    assert upper_bound_tokens(tibetan, "qwen3-32b") == 6 > utf8_upper_bound(tibetan)
    assert count_text(tibetan, "qwen3-32b") <= 6


def test_unknown_and_missing_models_are_estimated() -> None:
    messages = [{"role": "user", "content": KINDS["english"]}]
    for body in (
        {"model": "gemini-2.0-flash", "messages": messages},
        {"model": "some-new-model", "messages": messages},
        {"messages": messages},
        {"model": 42, "messages": messages},
    ):
        counted = count_request(body)
        assert counted.source == "estimated"
        assert counted.upper_bound is not None
        assert counted.tokens <= counted.upper_bound == request_upper_bound(body)
    o200k = count_messages(messages, "gpt-4o")
    gemini = count_request({"model": "gemini-2.0-flash", "messages": messages})
    assert gemini.tokens >= math.ceil(o200k * 1.5)
    _, exact = tokenizer_for("gemini-2.0-flash")
    assert not exact


def test_claude_request_is_estimated_with_its_factor() -> None:
    messages = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": KINDS["python"]},
    ]
    o200k = count_messages(messages, "gpt-4o")
    for model, factor in [("claude-3-5-haiku", 1.40), ("claude-opus-4-7", 1.70)]:
        counted = count_request({"model": model, "messages": messages})
        assert counted == TokenCount(
            tokens=math.ceil(o200k * factor),
            source="estimated",
            upper_bound=request_upper_bound({"model": model, "messages": messages}),
        )
        assert count_messages(messages, model) == counted.tokens


def test_estimates_are_capped_by_the_bound() -> None:
    # Emoji: o200k_base x 1.7 would exceed the bytes for some strings; the bound wins.
    text = "a" * 3
    assert estimate_tokens(text, "claude-opus-4-7") <= upper_bound_tokens(text, "claude-opus-4-7")
    body = {"model": "claude-opus-4-7", "messages": [{"role": "user", "content": "\ufdfa" * 50}]}
    counted = count_request(body)
    assert counted.upper_bound is not None and counted.tokens <= counted.upper_bound


def test_request_upper_bound_covers_openai_counts_too() -> None:
    body = {
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": KINDS["chinese"]}],
        "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}],
    }
    counted = count_request(body)
    assert counted.source == "counted"
    assert counted.tokens <= counted.upper_bound == request_upper_bound(body)
    # The bound walks the same format with bytes instead of tokens.
    slack = sum(utf8_upper_bound(t) - count_text(t) for t in (KINDS["chinese"], "user", "f:"))
    assert request_upper_bound(body) - counted.tokens == slack


def test_internal_resolution_is_consistent() -> None:
    for model in ("gpt-4o", "claude-3-5-sonnet", "llama-3.1-8b-instant", "gemini-2.0-flash"):
        tok, exact = tokenizer_for(model)
        assert counting._resolve(model).exact == exact
        assert counting._resolve(model).tokenizer.name == tok.name
