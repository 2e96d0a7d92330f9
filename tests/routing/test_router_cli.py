"""``thrifty router train`` / ``eval``: the report, the refusal, the saved model, the exit codes."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.routing.routing_fakes import FakeEmbedder, synthetic, write_csv
from thrifty.cli.router import app
from thrifty.routing.learned import LearnedScorer
from thrifty.routing.scorers import LEARNED_MAX_TOKENS

runner = CliRunner()


@pytest.fixture(autouse=True)
def _fake_embedder(monkeypatch: pytest.MonkeyPatch) -> FakeEmbedder:
    fake = FakeEmbedder()
    monkeypatch.setattr("thrifty.cache.embedder.get_embedder", lambda: fake)
    monkeypatch.setenv("COLUMNS", "200")
    return fake


@pytest.fixture
def learnable_csv(tmp_path: Path) -> Path:
    return write_csv(tmp_path / "good.csv", *synthetic(1200, seed=1))


def test_train_reports_and_saves_a_router(learnable_csv: Path, tmp_path: Path) -> None:
    out = tmp_path / "router.npz"
    cache = tmp_path / "emb.npz"
    args = ["train", "--data", str(learnable_csv), "--out", str(out), "--bootstrap", "100"]
    result = runner.invoke(app, [*args, "--embeddings-cache", str(cache)])
    assert result.exit_code == 0, result.output
    for word in ("learned", "length", "random", "oracle", "APGR", "CPT(50%)", "CPT(80%)"):
        assert word in result.output
    assert "near-duplicate" in result.output
    assert "saved" in result.output
    scorer = LearnedScorer.load(out, FakeEmbedder())
    assert scorer.model.metadata["folds"] == 5
    assert cache.is_file()
    again = runner.invoke(app, [*args, "--embeddings-cache", str(cache)])
    assert again.exit_code == 0


def test_train_records_the_cap_and_eval_uses_it(
    learnable_csv: Path, tmp_path: Path, _fake_embedder: FakeEmbedder
) -> None:
    default = tmp_path / "default.npz"
    args = ["train", "--data", str(learnable_csv), "--bootstrap", "50"]
    result = runner.invoke(app, [*args, "--out", str(default)])
    assert result.exit_code == 0, result.output
    assert f"at most {LEARNED_MAX_TOKENS} word pieces" in " ".join(result.output.split())
    assert LearnedScorer.load(default).model.max_tokens == LEARNED_MAX_TOKENS
    assert set(_fake_embedder.caps) == {LEARNED_MAX_TOKENS}
    out = tmp_path / "r.npz"
    result = runner.invoke(app, [*args, "--out", str(out), "--max-tokens", "32"])
    assert result.exit_code == 0, result.output
    assert LearnedScorer.load(out).model.max_tokens == 32
    assert _fake_embedder.caps[-1] == 32
    evaluated = runner.invoke(
        app, ["eval", "--data", str(learnable_csv), "-s", f"learned:{out}", "--bootstrap", "50"]
    )
    assert evaluated.exit_code == 0, evaluated.output
    assert _fake_embedder.caps[-1] == 32  # eval embeds as the model was trained
    for bad in ("2", "257"):
        refused = runner.invoke(app, [*args, "--out", str(out), "--max-tokens", bad])
        assert refused.exit_code == 2


def test_train_refuses_a_router_no_better_than_random(tmp_path: Path) -> None:
    data = write_csv(tmp_path / "noise.csv", *synthetic(500, seed=2, learnable=False))
    out = tmp_path / "router.npz"
    result = runner.invoke(
        app, ["train", "--data", str(data), "--out", str(out), "--bootstrap", "100"]
    )
    assert result.exit_code == 1
    assert "refusing" in result.output
    assert "0.5" in result.output
    assert not out.exists()


def test_eval_prints_the_curve_for_each_scorer(learnable_csv: Path, tmp_path: Path) -> None:
    for spec in ("length", "rules"):
        result = runner.invoke(
            app, ["eval", "--data", str(learnable_csv), "--scorer", spec, "--bootstrap", "50"]
        )
        assert result.exit_code == 0, result.output
        assert "gap recovered" in result.output
        assert "oracle" in result.output
    out = tmp_path / "r.npz"
    trained = runner.invoke(
        app, ["train", "--data", str(learnable_csv), "--out", str(out), "--bootstrap", "50"]
    )
    assert trained.exit_code == 0, trained.output
    args = ["eval", "--data", str(learnable_csv), "--scorer", f"learned:{out}", "--bootstrap", "50"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "training data" in result.output  # evaluated in-sample: flagged as optimistic


def test_eval_with_a_rules_file(learnable_csv: Path, tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text("rules:\n  - name: odd\n    patterns: ['[13579]$']\n    tier: large\n")
    result = runner.invoke(
        app,
        ["eval", "--data", str(learnable_csv), "-s", "rules", "--rules", str(rules),
         "--bootstrap", "50", "--sample", "300"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output


def test_bad_input_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("prompt,cheap_correct\nhello,1\n")
    result = runner.invoke(app, ["train", "--data", str(bad)])
    assert result.exit_code == 2
    assert "strong_correct" in result.output
    result = runner.invoke(app, ["eval", "--data", str(tmp_path / "absent.csv")])
    assert result.exit_code == 2
    good = write_csv(tmp_path / "g.csv", *synthetic(50))
    result = runner.invoke(app, ["eval", "--data", str(good), "--scorer", "vibes"])
    assert result.exit_code == 2
    assert "unknown scorer" in result.output
