"""The ``length`` and ``rules`` scorers: signals, rule matching, the seed example, dev-data APGR."""

from __future__ import annotations

import csv
import math
import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import thrifty.routing.length as length_module
from thrifty.errors import ConfigError
from thrifty.routing import metrics
from thrifty.routing.length import LengthScorer, LengthWeights
from thrifty.routing.rules import SEED_KEYWORD_RULES, RulesScorer
from thrifty.routing.scorers import RequestMeta, Scorer, make_scorer, text_body
from thrifty.tokens import count_request

DEV_DATA = Path("/work/shared/data/routing/mmlu_gpt4_vs_mixtral.csv")


def _chat(*turns: str, tools: int = 0) -> dict:
    roles = ["user", "assistant"]
    body: dict = {
        "model": "auto",
        "messages": [{"role": roles[i % 2], "content": t} for i, t in enumerate(turns)],
    }
    if tools:
        body["tools"] = [
            {"type": "function", "function": {"name": f"f{i}", "parameters": {}}}
            for i in range(tools)
        ]
    return body


@pytest.fixture(scope="module")
def dev_rows() -> list[dict[str, str]]:
    if not DEV_DATA.is_file():
        pytest.skip("development data not on this machine")
    with DEV_DATA.open(newline="") as fh:
        return list(csv.DictReader(fh))


def _labels(rows: list[dict[str, str]]) -> tuple[np.ndarray, np.ndarray]:
    return (
        np.array([float(r["cheap_correct"]) for r in rows]),
        np.array([float(r["strong_correct"]) for r in rows]),
    )


def test_length_scorer_meets_the_dev_data_bar(dev_rows: list[dict[str, str]]) -> None:
    scorer = LengthScorer()
    scores = [scorer.score_text(r["prompt"]) for r in dev_rows]
    m = metrics.evaluate(scores, *_labels(dev_rows))
    assert m.apgr >= 0.58
    assert m.cpt50 < 0.40


def test_seed_keyword_rules_are_no_better_than_a_coin(dev_rows: list[dict[str, str]]) -> None:
    scorer = RulesScorer.from_config(SEED_KEYWORD_RULES)
    scores = [scorer.score_text(r["prompt"]) for r in dev_rows]
    assert metrics.evaluate(scores, *_labels(dev_rows)).apgr == pytest.approx(0.50, abs=0.02)


def test_length_grows_with_size_and_structure() -> None:
    s = LengthScorer()
    short, long = s.score_text("What is 2+2?"), s.score_text("word " * 400)
    assert 0 < short < long < 1
    plain = s.score(_chat("fix this please"))
    assert s.score(_chat("fix this please ```x = 1``` and ```y = 2```")) > plain
    assert s.score(_chat("fix this please", tools=3)) > plain
    assert s.score(_chat("hi", "hello", "fix this please")) > s.score(_chat("fix this please"))
    w = LengthWeights()
    huge = s.effective_tokens(_chat(_prose(4 * w.long_context_tokens + 40)))
    assert huge > w.long_context_tokens + w.long_context


def test_length_uses_a_given_token_count_and_matches_score_text() -> None:
    s = LengthScorer()
    body = text_body("How many moons does Mars have?")
    assert s.score_text("How many moons does Mars have?") == s.score(body)
    assert s.score(body, RequestMeta(prompt_tokens=256)) == pytest.approx(0.5)
    # malformed or empty bodies score near zero (the chat format's fixed tokens) and never raise
    assert 0.0 <= s.score({"messages": "not a list"}) < 0.05
    assert 0.0 <= s.score({}) < 0.05


_SENTENCES = (  # ordinary prose
    "The committee reviewed the quarterly budget before approving the new research program.",
    "Photosynthesis converts light energy into chemical energy stored in glucose molecules.",
    "In 1848, revolutions spread across Europe, challenging monarchies from Paris to Vienna.",
    "She argued that the contract was void because neither party had signed the final draft.",
    "Enzymes lower the activation energy of reactions without being consumed themselves.",
    "Which of the following best describes the role of the central bank in monetary policy?",
    "The defendant's attorney objected, claiming the evidence had been obtained unlawfully.",
    "A balanced diet includes proteins, carbohydrates, fats, vitamins, minerals and water.",
    "Shakespeare's tragedies often explore ambition, jealousy, betrayal and the abuse of power.",
    "Most of the students agreed that the second experiment was harder to interpret.",
    "Glaciers carve wide valleys as they move slowly downhill over thousands of years.",
    "The new bridge will shorten the journey between the two towns by almost an hour.",
    "Critics praised the novel for its vivid characters but found the ending rushed.",
    "Before the meeting, the manager asked everyone to read the report carefully.",
)


def _prose(n_chars: int, seed: int = 0) -> str:
    """About ``n_chars`` characters of varied English sentences (reproducible)."""
    rng = random.Random(seed)
    out: list[str] = []
    size = 0
    while size < n_chars:
        out.append(rng.choice(_SENTENCES))
        size += len(out[-1]) + 1
    return " ".join(out)[:n_chars]


def _exact(body: dict) -> int:
    return count_request({**body, "model": "gpt-4o"}).tokens


def _prompt_tokens(body: dict) -> float:
    """The length scorer's count of the prompt's tokens (its size with no structural bonus)."""
    w = LengthWeights(code_block=0, tool=0, turn=0, long_context=0)
    return LengthScorer(w).effective_tokens(body)


def _text_chars(body: dict) -> int:
    total = 0
    for message in body.get("messages") or ():
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            total += len(content)
        elif isinstance(content, list):
            for part in content:
                if isinstance(part, str):
                    total += len(part)
                elif isinstance(part, dict) and part.get("type") == "text":
                    total += len(part.get("text") or "")
    return total


def _empty_texts(body: dict) -> dict:
    """``body`` with every message text emptied: what the scorer counts exactly."""
    messages = []
    for message in body.get("messages") or ():
        if isinstance(message, dict) and isinstance(message.get("content"), str):
            message = {**message, "content": ""}
        elif isinstance(message, dict) and isinstance(message.get("content"), list):
            parts = []
            for part in message["content"]:
                if isinstance(part, str):
                    part = ""
                elif isinstance(part, dict) and isinstance(part.get("text"), str):
                    part = {**part, "text": ""}
                parts.append(part)
            message = {**message, "content": parts}
        messages.append(message)
    return {**body, "messages": messages}


def _text_bytes(body: dict) -> int:
    total = 0
    for message in body.get("messages") or ():
        content = message.get("content") if isinstance(message, dict) else None
        parts = [content] if isinstance(content, str) else content or []
        for part in parts if isinstance(parts, list) else []:
            text = part if isinstance(part, str) else part.get("text")
            total += len(text.encode()) if isinstance(text, str) else 0
    return total


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> list[dict]:
    """The bodies the length scorer passes to ``count_request``."""
    seen: list[dict] = []

    def record(body: dict) -> Any:
        seen.append(body)
        return count_request(body)

    monkeypatch.setattr(length_module, "count_request", record)
    return seen


_IMAGE = {"type": "image_url", "image_url": {"url": "https://example.com/a.png", "detail": "high"}}
_BODIES = [
    _chat("What is 2+2?"),
    _chat("hi", "hello, how can I help?", "fix this please ```x = 1```", tools=2),
    _chat(_prose(5000, 1), "ok", _prose(3000, 2)),
    {
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": _prose(300)}, _IMAGE]},
            {"role": "assistant", "content": None},
            {"role": "user", "content": [{"type": "text", "text": "and this?"}, "plain part"]},
            {"role": "user", "name": "ada", "content": "Wie spät ist es in Zürich? 今何時ですか"},
        ]
    },
    {
        "messages": [
            {"role": "user", "content": "weather?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "c1",
                        "type": "function",
                        "function": {"name": "f0", "arguments": '{"city": "Paris"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "sunny, 21 °C"},
        ],
        "tools": [{"type": "function", "function": {"name": "f0", "parameters": {}}}],
    },
]


@pytest.mark.parametrize("body", _BODIES)
def test_length_estimates_text_and_counts_the_rest_exactly(body: dict, counted: list[dict]) -> None:
    expected = _exact(_empty_texts(body)) + math.ceil(_text_bytes(body) / 4)
    assert _prompt_tokens(body) == expected
    # no text is ever tokenized: a plain chat counts nothing, any other request its skeleton
    assert all(_text_chars(b) == 0 for b in counted)
    exact = LengthWeights(code_block=0, tool=0, turn=0, long_context=0, exact=True)
    assert LengthScorer(exact).effective_tokens(body) == _exact(body)
    s = LengthScorer()
    given = RequestMeta(prompt_tokens=expected)
    assert s.effective_tokens(body) == s.effective_tokens(body, given)


def test_plain_chat_format_tokens_match_count_request(dev_rows: list[dict[str, str]]) -> None:
    """A plain chat's format tokens come from a per-role table, not ``count_request``: they must
    be the number ``count_request`` gives its skeleton, for every shape of plain chat."""
    prompts = [row["prompt"] for row in dev_rows[:300]]
    bodies = [text_body(p) for p in prompts[:100]]
    bodies += [_chat(*prompts[i : i + 3]) for i in range(0, 300, 3)]
    bodies.append(
        {"messages": [{"role": "system", "content": [{"type": "text", "text": prompts[0]}]}]}
    )
    bodies.append({"messages": [{"role": "tool", "tool_call_id": "c1", "content": "42"}]})
    bodies.append({"messages": [{"role": "developer", "content": None}]})
    for body in bodies:
        assert _prompt_tokens(body) == _exact(_empty_texts(body)) + math.ceil(_text_bytes(body) / 4)


def test_length_estimate_tracks_the_exact_count(dev_rows: list[dict[str, str]]) -> None:
    ratios = []
    for row in dev_rows[:2000]:
        body = text_body(row["prompt"])
        ratios.append(_prompt_tokens(body) / _exact(body))
    assert 0.9 <= float(np.median(ratios)) <= 1.05
    # a text of long, common words has more characters per token than the estimate assumes
    prose = text_body(_prose(20_000))
    assert _prompt_tokens(prose) == pytest.approx(_exact(prose), rel=0.5)
    # more bytes per character (CJK) count as more tokens per character than English
    cjk, english = text_body("東京の天気はどうですか" * 50), text_body("What is the weather?" * 50)
    assert _prompt_tokens(cjk) / 550 > _prompt_tokens(english) / 1000
    # the long-context bonus applies to the estimate
    w = LengthWeights()
    huge = text_body(_prose(30_000))
    assert _prompt_tokens(huge) > w.long_context_tokens
    assert LengthScorer().effective_tokens(huge) > w.long_context_tokens + w.long_context


def test_length_never_raises_on_odd_long_bodies() -> None:
    s = LengthScorer()
    odd: list[dict] = [
        {"messages": ["not a message", None, {"role": "user", "content": _prose(3000)}]},
        {"messages": [{"content": _prose(3000)}, {"role": 7, "content": None}]},
        {"messages": [{"role": "user", "content": [{"type": "text", "text": None}, 3]}]},
        {"messages": [{"role": "user", "content": ["x" * 5000]}], "functions": "odd"},
        {"messages": [{"role": "user", "content": 12345}], "tools": {"not": "a list"}},
        {"messages": [{"role": "user", "content": "\ud800 lone surrogate " * 100}]},
    ]
    for body in odd:
        assert 0 < s.score(body) < 1


async def test_scorers_satisfy_the_protocol() -> None:
    for scorer in (LengthScorer(), RulesScorer.from_config(SEED_KEYWORD_RULES)):
        assert isinstance(scorer, Scorer)
        body = _chat("Design a cache")
        assert await scorer.ascore(body) == scorer.score(body)


RULES: list[dict[str, Any]] = [
    {"name": "legal", "tags": ["legal"], "tier": "large"},
    {"name": "acme-vip", "tenants": ["acme"], "user_tiers": ["premium"], "model": "gpt-4o"},
    {"name": "stack", "patterns": [r"traceback \(most recent", r"\bsegfault\b"], "tier": "medium"},
    {"name": "history", "patterns": ["ORIGINAL-TICKET"], "scope": "conversation", "score": 0.9},
]


def test_rules_match_patterns_tags_tenants_and_tiers() -> None:
    r = RulesScorer.from_config(RULES)
    plain = _chat("hello")
    assert r.decide(plain).rule is None
    assert r.decide(plain).tier == "small"
    assert r.score(plain) == 0.0
    tagged = r.decide(plain, RequestMeta(tags=("Legal",)))
    assert (tagged.rule, tagged.tier, tagged.score) == ("legal", "large", 1.0)
    vip = r.decide(plain, RequestMeta(tenant="acme", user_tier="Premium"))
    assert (vip.rule, vip.model, vip.tier) == ("acme-vip", "gpt-4o", "large")
    assert r.decide(plain, RequestMeta(tenant="acme", user_tier="basic")).rule is None
    assert r.decide(plain, RequestMeta(tenant="other", user_tier="premium")).rule is None
    crash = r.decide(_chat("got a SEGFAULT again"))
    assert (crash.rule, crash.score) == ("stack", 0.5)
    # patterns look at the last user message unless the scope is the conversation
    earlier = _chat("see TRACEBACK (most recent call last)", "ok", "thanks")
    assert r.decide(earlier).rule is None
    assert r.decide(_chat("original-ticket 12", "ok", "thanks")).rule == "history"
    # the first matching rule wins
    both = r.decide(_chat("segfault"), RequestMeta(tags=("legal",)))
    assert both.rule == "legal"


def test_seed_example_classes() -> None:
    r = RulesScorer.from_config(SEED_KEYWORD_RULES)
    assert r.decide(text_body("What is Amazon S3?")).tier == "small"
    assert r.decide(text_body("Explain the differences between EC2 and Lambda")).tier == "medium"
    design = "Design a serverless architecture for a high-traffic e-commerce site"
    assert r.decide(text_body(design)).tier == "large"


def test_keywords_start_a_word_in_any_case() -> None:
    r = RulesScorer.from_config(
        [
            {"name": "kw", "keywords": ["Design", "stack trace", "```", "c++"], "tier": "large"},
            {"name": "re", "patterns": [r"\bline \d+\b"], "keywords": ["zzz"], "tier": "medium"},
        ]
    )
    for text in ("design it", "DESIGNS matter", "a Designer's view", "my stack trace:", "(design)",
                 "x```py", "why c++?", "design_doc"):  # fmt: skip
        assert r.decide(text_body(text)).rule == "kw", text
    for text in ("redesign it", "a stack of traces", "_design", "stack\ntrace", "x2design"):
        assert r.decide(text_body(text)).rule is None, text
    # a later occurrence at a word start still counts; either keywords or patterns match a rule
    assert r.decide(text_body("redesign, then design")).rule == "kw"
    assert r.decide(text_body("see line 12")).rule == "re"
    assert r.decide(text_body("ZZZ")).rule == "re"


def test_keyword_rules_decide_as_the_same_words_as_a_regex(dev_rows: list[dict[str, str]]) -> None:
    """The seed rules as keywords decide exactly as they did as ``\\b(?:…)`` regular expressions."""
    as_regex = [
        {
            "name": rule["name"],
            "patterns": [r"\b(?:" + "|".join(re.escape(k) for k in rule["keywords"]) + ")"],
            "tier": rule["tier"],
        }
        for rule in SEED_KEYWORD_RULES
    ]
    keywords, regex = RulesScorer.from_config(SEED_KEYWORD_RULES), RulesScorer.from_config(as_regex)
    decided = [keywords.decide(text_body(row["prompt"])).rule for row in dev_rows[:3000]]
    assert decided == [regex.decide(text_body(row["prompt"])).rule for row in dev_rows[:3000]]
    assert {"seed-complex-keywords", "seed-medium-keywords", None} <= set(decided)


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"name": "x", "patterns": ["(unclosed"], "tier": "large"}, "does not compile"),
        ({"name": "x", "keywords": ["ok", " "], "tier": "large"}, "must not be empty"),
        ({"name": "x", "tags": ["a"]}, "needs a tier"),
        ({"name": "x", "tier": "huge"}, "unknown tier"),
        ({"name": "x", "tier": "large", "model": "m"}, "not both"),
        ({"name": "x", "tier": "large", "colour": "red"}, "colour"),
    ],
)
def test_bad_rules_are_config_errors(rule: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        RulesScorer.from_config([rule])


def test_make_scorer_specs(tmp_path: Path) -> None:
    assert make_scorer("length").name == "length"
    assert make_scorer("rules").name == "rules"
    custom = make_scorer("rules", rules=[{"name": "all", "patterns": ["."], "tier": "medium"}])
    assert custom.score_text("x") == 0.5
    with pytest.raises(ConfigError, match="unknown scorer"):
        make_scorer("vibes")
    with pytest.raises(ConfigError, match="not found"):
        make_scorer(f"learned:{tmp_path / 'missing.npz'}")
