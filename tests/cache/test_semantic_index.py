"""The semantic index: exact search, scope isolation, eviction, persistence, the HNSW path."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest

from thrifty.cache.semantic.index import Hit, SemanticIndex

DIM = 16


def unit(rng: np.random.Generator, n: int, dim: int = DIM) -> np.ndarray:
    x = rng.standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(7)


def filled(rng: np.random.Generator, n: int, **kwargs: object) -> tuple[SemanticIndex, np.ndarray]:
    index = SemanticIndex(DIM, **kwargs)  # type: ignore[arg-type]
    vectors = unit(rng, n)
    for i, v in enumerate(vectors):
        index.add("t1", f"k{i}", v, {"i": i})
    return index, vectors


@pytest.mark.parametrize("n", [5, 600, 3000])  # numpy below 512 entries, faiss above
def test_search_matches_brute_force(rng: np.random.Generator, n: int) -> None:
    index, vectors = filled(rng, n)
    for q in unit(rng, 10):
        hits = index.search("t1", q, k=4)
        expected = np.argsort(-(vectors @ q))[:4]
        assert [h.key for h in hits] == [f"k{i}" for i in expected]
        np.testing.assert_allclose([h.score for h in hits], (vectors @ q)[expected], atol=1e-5)
        assert hits[0].meta == {"i": int(expected[0])}
        assert isinstance(hits[0], Hit) and hits[0] == (hits[0].key, hits[0].score, hits[0].meta)


def test_self_similarity_and_min_score(rng: np.random.Generator) -> None:
    index, vectors = filled(rng, 50)
    (best,) = index.search("t1", vectors[3] * 5.0, k=1)  # queries are normalised
    assert best.key == "k3" and best.score == pytest.approx(1.0, abs=1e-5)
    assert [h.key for h in index.search("t1", vectors[3], k=10, min_score=0.99)] == ["k3"]


def test_scopes_are_isolated(rng: np.random.Generator) -> None:
    index = SemanticIndex(DIM)
    v = unit(rng, 1)[0]
    index.add("tenant-a", "secret", v, {"owner": "a"})
    assert index.search("tenant-b", v, k=5) == []
    index.add("tenant-b", "other", unit(rng, 1)[0], {"owner": "b"})
    hits = index.search("tenant-b", v, k=5)
    assert [h.key for h in hits] == ["other"]
    assert all(h.meta["owner"] == "b" for h in hits)
    assert index.get("tenant-b", "secret") is None
    assert index.size("tenant-a") == 1 and index.size("tenant-b") == 1 and len(index) == 2


def test_replace_remove_and_swap_with_last(rng: np.random.Generator) -> None:
    index, vectors = filled(rng, 20)
    index.add("t1", "k5", vectors[9], {"replaced": True})
    assert len(index) == 20 and index.get("t1", "k5") == {"replaced": True}
    assert index.remove("t1", "k0") and not index.remove("t1", "k0")
    assert not index.remove("nope", "k1")
    for i in range(1, 20):  # every survivor still finds itself after the row moves
        target = vectors[9] if i == 5 else vectors[i]
        hits = index.search("t1", target, k=2)
        assert f"k{i}" in [h.key for h in hits]
    assert all(h.key != "k0" for h in index.search("t1", vectors[0], k=20))


def test_eviction_keeps_the_newest(rng: np.random.Generator) -> None:
    index = SemanticIndex(DIM, max_entries_per_scope=3)
    vectors = unit(rng, 5)
    evicted = [index.add("s", f"k{i}", v) for i, v in enumerate(vectors)]
    assert evicted == [[], [], [], ["k0"], ["k1"]]
    assert {h.key for h in index.search("s", vectors[0], k=10)} == {"k2", "k3", "k4"}


def test_stats_and_drop(rng: np.random.Generator) -> None:
    index = SemanticIndex(DIM)
    for scope in ("a|ctx1", "a|ctx2", "b|ctx1"):
        index.add(scope, "k", unit(rng, 1)[0], {"answer": "x" * 10})
    stats = index.stats()
    assert stats.entries == 3 and stats.scopes == 3
    assert stats.meta_bytes == 3 * len(json.dumps({"answer": "x" * 10}, separators=(",", ":")))
    assert stats.vector_bytes >= 3 * DIM * 4
    assert index.drop_where(lambda s: s.startswith("a|")) == 2
    assert index.scopes() == ["b|ctx1"]
    assert index.drop("b|ctx1") == 1 and len(index) == 0


def test_bad_inputs(rng: np.random.Generator) -> None:
    index = SemanticIndex(DIM)
    with pytest.raises(ValueError, match="16 floats"):
        index.add("s", "k", np.ones(DIM + 1))
    with pytest.raises(ValueError, match="non-zero"):
        index.add("s", "k", np.zeros(DIM))
    with pytest.raises(TypeError):
        index.add("s", "k", unit(rng, 1)[0], {"not json": object()})
    assert len(index) == 0


def test_persistence_round_trip(rng: np.random.Generator, tmp_path: Path) -> None:
    index = SemanticIndex(DIM, max_entries_per_scope=10)
    vectors = unit(rng, 30)
    for i, v in enumerate(vectors):
        index.add(f"scope{i % 3}", f"k{i}", v, {"i": i, "text": f"answer {i}"})
    index.remove("scope0", "k3")
    path = tmp_path / "semantic" / "index.json"
    index.save(path)
    index.save(path)  # a second save replaces the first, leaving one vector file
    assert [p.name for p in path.parent.iterdir() if p.suffix == ".npy"] == [
        json.loads(path.read_text())["vectors"]
    ]
    restored = SemanticIndex(DIM, max_entries_per_scope=10)
    assert restored.load(path) == len(index) == 29
    assert sorted(restored.scopes()) == sorted(index.scopes())
    for q in unit(rng, 5):
        for scope in index.scopes():
            assert restored.search(scope, q, k=3) == index.search(scope, q, k=3)
    # insertion order survives: the next add to a full scope evicts the same entry
    assert restored.add("scope1", "new", vectors[0]) == index.add("scope1", "new", vectors[0])


def test_reembed_takes_the_texts_of_another_embedders_index(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    path = tmp_path / "index.json"
    old = SemanticIndex(DIM, model_id="older-embedder")
    for i in range(10):
        old.add(f"s{i % 2}", f"k{i}", unit(rng, 1)[0], {"text": f"question {i}"})
    old.add("s0", "no-text", unit(rng, 1)[0], {"other": 1})  # nothing to embed: skipped
    old.save(path)
    fresh = {f"question {i}": unit(rng, 1)[0] for i in range(10)}
    calls: list[list[str]] = []

    def embed(texts: list[str]) -> np.ndarray:
        calls.append(texts)
        return np.stack([fresh[t] for t in texts])

    index = SemanticIndex(DIM)
    with pytest.raises(ValueError):
        index.load(path)
    assert index.reembed(path, embed, chunk=3) == 10
    assert max(len(c) for c in calls) == 3 and len(index) == 10
    hit = index.search("s1", fresh["question 3"], k=1)[0]
    assert (hit.key, hit.meta["text"]) == ("k3", "question 3")
    assert hit.score == pytest.approx(1.0, abs=1e-5)
    stop = threading.Event()
    stop.set()
    assert SemanticIndex(DIM).reembed(path, embed, stop=stop) == 0


def test_load_refuses_other_vectors(tmp_path: Path, rng: np.random.Generator) -> None:
    path = tmp_path / "index.json"
    index = SemanticIndex(DIM)
    index.add("s", "k", unit(rng, 1)[0])
    index.save(path)
    with pytest.raises(ValueError, match="re-embed"):
        SemanticIndex(DIM * 2).load(path)
    with pytest.raises(ValueError, match="re-embed"):
        SemanticIndex(DIM, model_id="another-model").load(path)
    path.write_text('{"format": "something else"}')
    with pytest.raises(ValueError, match="not a thrifty semantic index"):
        SemanticIndex(DIM).load(path)


def test_hnsw_above_the_threshold(rng: np.random.Generator) -> None:
    pytest.importorskip("faiss")
    index, vectors = filled(rng, 400, ann_threshold=200, background=False)
    assert index.stats().ann_scopes == 1
    found = sum(index.search("t1", v, k=1)[0].key == f"k{i}" for i, v in enumerate(vectors))
    assert found >= 390  # approximate, but self-queries on 16-d data are easy
    for i in range(150):  # tombstones are skipped, then the graph is rebuilt
        index.remove("t1", f"k{i}")
    for i in range(150, 400):
        assert index.search("t1", vectors[i], k=1)[0].key == f"k{i}"
    assert all(
        h.key not in {f"k{i}" for i in range(150)} for h in index.search("t1", vectors[0], k=50)
    )
    index.add("t1", "k200", vectors[0], {"moved": True})
    assert index.search("t1", vectors[0], k=1)[0].meta == {"moved": True}


def test_hnsw_builds_in_the_background(rng: np.random.Generator) -> None:
    pytest.importorskip("faiss")
    index, vectors = filled(rng, 300, ann_threshold=256)
    extra = unit(rng, 20)
    for i, v in enumerate(extra):  # added while the graph may still be building
        index.add("t1", f"late{i}", v)
    index.remove("t1", "k0")
    assert index.wait_for_builds(timeout=60)
    assert index.stats().ann_scopes == 1 and index.stats().ann_building == 0
    assert index.search("t1", extra[7], k=1)[0].key == "late7"
    assert all(h.key != "k0" for h in index.search("t1", vectors[0], k=10))
