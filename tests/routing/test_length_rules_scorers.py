"""The ``length`` and ``rules`` scorers: signals, rule matching, the seed example, dev-data APGR."""

from __future__ import annotations

import csv
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
    huge = s.effective_tokens(_chat("a " * (w.long_context_tokens + 10)))
    assert huge > w.long_context_tokens + w.long_context


def test_length_uses_a_given_token_count_and_matches_score_text() -> None:
    s = LengthScorer()
    body = text_body("How many moons does Mars have?")
    assert s.score_text("How many moons does Mars have?") == s.score(body)
    assert s.score(body, RequestMeta(prompt_tokens=256)) == pytest.approx(0.5)
    # malformed or empty bodies score near zero (the chat format's fixed tokens) and never raise
    assert 0.0 <= s.score({"messages": "not a list"}) < 0.05
    assert 0.0 <= s.score({}) < 0.05


_SENTENCES = (  # ordinary prose: the estimate assumes the counted part is like the rest
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


def _prompt_tokens(body: dict, exact_chars: int = LengthWeights().exact_chars) -> float:
    """The length scorer's count of the prompt's tokens (its size with no structural bonus)."""
    w = LengthWeights(code_block=0, tool=0, turn=0, long_context=0, exact_chars=exact_chars)
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


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> list[dict]:
    """What the length scorer tokenizes: the bodies it passes to ``count_request``, and, for a
    plain chat, ``{"messages": …}`` of the messages whose texts it encodes directly."""
    seen: list[dict] = []
    plain_texts = length_module._plain_text_tokens

    def record(body: dict) -> Any:
        seen.append(body)
        return count_request(body)

    def record_plain(messages: list[Any]) -> int:
        seen.append({"messages": messages})
        return plain_texts(messages)

    monkeypatch.setattr(length_module, "count_request", record)
    monkeypatch.setattr(length_module, "_plain_text_tokens", record_plain)
    return seen


def test_length_counts_requests_within_the_budget_exactly() -> None:
    s = LengthScorer()
    budget = LengthWeights().exact_chars
    image = {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}
    bodies = [
        _chat("What is 2+2?"),
        _chat("hi", "hello, how can I help?", "fix this please ```x = 1```", tools=2),
        _chat(_prose(400, 1), _prose(400, 2), _prose(budget - 800, 3)),  # exactly the budget
        {
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": [{"type": "text", "text": _prose(300)}, image]},
                {"role": "assistant", "content": None},
                {"role": "user", "content": [{"type": "text", "text": "and this?"}, "plain part"]},
            ]
        },
    ]
    for body in bodies:
        assert _text_chars(body) <= budget
        exact = _exact(body)
        assert _prompt_tokens(body) == exact
        assert s.effective_tokens(body) == s.effective_tokens(
            body, RequestMeta(prompt_tokens=exact)
        )


def test_plain_chats_count_exactly_as_count_request(dev_rows: list[dict[str, str]]) -> None:
    """A plain chat's texts are encoded directly, outside ``count_request``: with no budget
    (``exact_chars=0``) that must give ``count_request``'s number, prompt for prompt."""
    prompts = [row["prompt"] for row in dev_rows[:1500]]
    bodies = [text_body(p) for p in prompts]
    bodies += [_chat(*prompts[i : i + 3]) for i in range(0, 300, 3)]
    bodies.append(
        {"messages": [{"role": "system", "content": [{"type": "text", "text": prompts[0]}]}]}
    )
    bodies.append({"messages": [{"role": "tool", "tool_call_id": "c1", "content": "42"}]})
    for body in bodies:
        assert _prompt_tokens(body, exact_chars=0) == _exact(body)


def test_length_estimates_a_long_prompt_beyond_the_budget(counted: list[dict]) -> None:
    body = text_body(_prose(20_000))
    exact = _exact(body)
    estimate = _prompt_tokens(body)
    assert estimate == pytest.approx(exact, rel=0.05)
    assert max(_text_chars(b) for b in counted) <= LengthWeights().exact_chars
    assert _prompt_tokens(body, exact_chars=0) == exact
    # the long-context bonus still applies to the estimate
    w = LengthWeights()
    huge = text_body(_prose(30_000))
    assert _exact(huge) > w.long_context_tokens
    assert LengthScorer().effective_tokens(huge) > w.long_context_tokens + w.long_context


def test_length_keeps_a_long_conversation_bounded(counted: list[dict]) -> None:
    body = _chat(*(_prose(2000, seed) for seed in range(50)))
    exact = _exact(body)
    assert _prompt_tokens(body) == pytest.approx(exact, rel=0.05)
    # a plain-text chat is counted once, on at most the budget's characters of text (the cost is
    # bounded: ~100,000 characters, 1,200 of them encoded), and all 50 messages are still there
    (reduced,) = counted
    budget = LengthWeights().exact_chars
    assert budget - 50 <= _text_chars(reduced) <= budget
    assert len(reduced["messages"]) == 50


def test_length_keeps_the_most_recent_text(counted: list[dict]) -> None:
    first, middle, last = _prose(1000, 1), _prose(1000, 2), _prose(1000, 3)
    LengthScorer().score(_chat(first, middle, last))
    (reduced,) = counted
    texts = [m["content"] for m in reduced["messages"]]
    assert len(texts) == 3  # every message is still there, for the chat format's tokens
    assert texts[2] == last
    assert texts[0] == ""
    # the text that does not fit keeps its start, cut at a word boundary
    assert 0 < len(texts[1]) <= 200
    assert middle.startswith(texts[1])
    assert middle[len(texts[1])].isspace()


def test_length_leaves_images_and_tools_untouched(counted: list[dict]) -> None:
    image = {
        "type": "image_url",
        "image_url": {"url": "https://example.com/a.png", "detail": "high"},
    }
    body = _chat(_prose(5000, 1), "ok", tools=3)
    body["messages"].append(
        {"role": "user", "content": [image, {"type": "text", "text": _prose(5000, 2)}, image]}
    )
    exact = _exact(body)
    assert _prompt_tokens(body) == pytest.approx(exact, rel=0.05)
    reduced = counted[0]
    assert reduced["tools"] == body["tools"]
    last = reduced["messages"][-1]["content"]
    assert last[0] == image and last[2] == image
    assert 0 < len(last[1]["text"]) <= LengthWeights().exact_chars
    assert reduced["messages"][0]["content"] == ""
    assert all(_text_chars(b) <= LengthWeights().exact_chars for b in counted)


def test_length_never_raises_on_odd_long_bodies() -> None:
    s = LengthScorer()
    odd: list[dict] = [
        {"messages": ["not a message", None, {"role": "user", "content": _prose(3000)}]},
        {"messages": [{"content": _prose(3000)}, {"role": 7, "content": None}]},
        {"messages": [{"role": "user", "content": [{"type": "text", "text": None}, 3]}]},
        {"messages": [{"role": "user", "content": ["x" * 5000]}], "functions": "odd"},
        {"messages": [{"role": "user", "content": 12345}], "tools": {"not": "a list"}},
    ]
    for body in odd:
        assert _prompt_tokens(body) == pytest.approx(_exact(body), rel=0.05)
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
