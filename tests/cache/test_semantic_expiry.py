"""The in-process semantic index expires its entries and is bounded: an expired entry is never
returned, sweeps (on add, ``sweep``) remove them and drop empty partitions, save/load drop them
(and an index saved before expiries were recorded still loads), and ``max_entries`` evicts the
entries that expire soonest. Clocks are injected: nothing here sleeps."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import orjson
import pytest

from tests.cache.conftest import cache_stack
from tests.support import chat_body
from thrifty.cache.semantic.index import SWEEP_BATCH, SemanticIndex
from thrifty.testing import FakeOpenAIServer

DIM = 16


class Clock:
    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def unit(rng: np.random.Generator, n: int) -> np.ndarray:
    x = rng.standard_normal((n, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(11)


@pytest.fixture
def clock() -> Clock:
    return Clock()


def test_expired_entries_are_never_returned(rng: np.random.Generator, clock: Clock) -> None:
    index = SemanticIndex(DIM, clock=clock)
    vectors = unit(rng, 4)
    index.add("s", "short", vectors[0], {"text": "a"}, expires_at=clock.now + 10)
    index.add("s", "long", vectors[1], expires_at=clock.now + 100)
    index.add("s", "forever", vectors[2])
    assert index.search("s", vectors[0], k=1)[0].key == "short"
    clock.now += 10  # an entry expires at its expiry time
    assert index.get("s", "short") is None and index.get("s", "long") == {}
    # the expired entry was the best match: the search looks again and finds a live one
    hits = index.search("s", vectors[0], k=1)
    assert len(hits) == 1 and hits[0].key != "short"
    assert "short" not in {h.key for h in index.search("s", vectors[0], k=10)}
    assert len(index) == 2  # the search removed what it met
    clock.now += 1_000
    assert [h.key for h in index.search("s", vectors[1], k=10)] == ["forever"]


def test_sweep_removes_expired_entries_and_empty_partitions(
    rng: np.random.Generator, clock: Clock
) -> None:
    index = SemanticIndex(DIM, clock=clock)
    for c in range(20):  # one partition per conversation context
        for i, v in enumerate(unit(rng, 5)):
            index.add(f"t|ctx{c}", f"k{c}.{i}", v, expires_at=clock.now + (60 if c < 15 else 600))
    assert len(index) == 100 and len(index.scopes()) == 20
    assert index.sweep() == 0
    clock.now += 61
    assert index.sweep(batch=7) == 75  # in batches, all of them
    assert len(index) == 25 and index.stats().entries == 25
    assert sorted(index.scopes()) == sorted(f"t|ctx{c}" for c in range(15, 20))
    clock.now += 600
    assert index.sweep() == 25 and len(index) == 0 and index.scopes() == []


def test_adds_sweep_expired_entries_in_small_batches(
    rng: np.random.Generator, clock: Clock
) -> None:
    index = SemanticIndex(DIM, clock=clock)
    n = 3 * SWEEP_BATCH
    for i, v in enumerate(unit(rng, n)):
        index.add(f"ctx{i}", "k", v, expires_at=clock.now + 1)
    clock.now += 2
    index.add("live", "k0", unit(rng, 1)[0], expires_at=clock.now + 100)
    assert len(index) == n - SWEEP_BATCH + 1  # one add pops at most SWEEP_BATCH items
    for i in range(1, 3):
        index.add("live", f"k{i}", unit(rng, 1)[0], expires_at=clock.now + 100)
    assert len(index) == 3 and index.scopes() == ["live"]


def test_an_expired_add_is_not_stored_and_replacing_keeps_one_expiry(
    rng: np.random.Generator, clock: Clock
) -> None:
    index = SemanticIndex(DIM, clock=clock)
    v = unit(rng, 1)[0]
    index.add("s", "k", v, expires_at=clock.now + 10)
    index.add("s", "k", v, expires_at=clock.now + 100)  # the new expiry replaces the old one
    clock.now += 50
    assert index.sweep() == 0 and index.get("s", "k") == {}
    assert index.add("s", "k", v, expires_at=clock.now) == []  # already expired: removes it
    assert len(index) == 0 and index.scopes() == []


def test_save_drops_expired_entries_and_load_skips_them(
    rng: np.random.Generator, clock: Clock, tmp_path: Path
) -> None:
    index = SemanticIndex(DIM, clock=clock)
    vectors = unit(rng, 6)
    ttls = [5, 50, 500, 5, 50, None]
    for i, (v, ttl) in enumerate(zip(vectors, ttls, strict=True)):
        exp = None if ttl is None else clock.now + ttl
        index.add(f"s{i % 2}", f"k{i}", v, {"text": f"q{i}"}, expires_at=exp)
    clock.now += 10  # k0 and k3 have expired but were not swept
    path = tmp_path / "semantic"
    index.save(path)
    manifest = orjson.loads(path.read_bytes())
    saved = {k: e for s in manifest["scopes"] for k, e in zip(s["keys"], s["exps"], strict=True)}
    assert saved == {"k1": 1_050.0, "k2": 1_500.0, "k4": 1_050.0, "k5": None}

    later = Clock(clock.now + 100)  # k1 and k4 expire before the next start
    # a default lifetime is for files without expiries: k5 was saved as never expiring
    restored = SemanticIndex(DIM, clock=later, default_ttl_s=3600)
    assert restored.load(path) == 2
    assert {h.key for s in ("s0", "s1") for h in restored.search(s, vectors[0], k=10)} == {
        "k2",
        "k5",
    }
    later.now += 10**9
    assert restored.sweep() == 1 and restored.get("s1", "k5") == {"text": "q5"}


def test_an_index_saved_without_expiries_still_loads(
    rng: np.random.Generator, clock: Clock, tmp_path: Path
) -> None:
    """A file of the previous version has no ``exps``: its entries are kept and expire within
    ``default_ttl_s`` of the load, spread over its second half so they do not all go in one
    sweep (never, without one)."""
    path = tmp_path / "semantic"
    old = SemanticIndex(DIM)
    vectors = unit(rng, 3)
    for i, v in enumerate(vectors):
        old.add("s", f"k{i}", v, {"text": f"q{i}"})
    old.save(path)
    manifest = orjson.loads(path.read_bytes())
    for scope in manifest["scopes"]:
        del scope["exps"]
    path.write_bytes(orjson.dumps(manifest))

    index = SemanticIndex(DIM, clock=clock, default_ttl_s=3600)
    assert index.load(path) == 3
    assert index.search("s", vectors[1], k=1)[0].key == "k1"
    clock.now += 1799
    assert index.sweep() == 0
    clock.now += 601  # 1/2 + 1/2 * 1/3 of the hour: the first of three
    assert index.sweep() == 1
    clock.now += 1200  # the whole hour: the other two
    assert index.get("s", "k1") is None and index.sweep() == 2 and index.scopes() == []
    forever = SemanticIndex(DIM, clock=clock)
    assert forever.load(path) == 3
    clock.now += 10**9
    assert forever.sweep() == 0 and len(forever) == 3


def test_a_sweep_goes_in_slices(rng: np.random.Generator, clock: Clock) -> None:
    index = SemanticIndex(DIM, clock=clock)
    for i, v in enumerate(unit(rng, 10)):
        index.add("s", f"k{i}", v, expires_at=clock.now + 10)
    clock.now += 11
    assert index.sweep_some(4) == (4, True)
    assert index.sweep_some(4) == (4, True)
    assert index.sweep_some(4) == (2, False)
    assert len(index) == 0 and index.scopes() == []


def test_compaction_drops_stale_heap_items_and_keeps_what_is_pushed_meanwhile(
    rng: np.random.Generator, clock: Clock
) -> None:
    """Replacing entries leaves their old heap items behind; ``compact`` rebuilds the heap from
    the live ones, a chunk at a time, and keeps an item pushed while it runs."""
    index = SemanticIndex(DIM, clock=clock)
    vectors = unit(rng, 50)
    for rounds in range(20):  # 50 live entries, 950 stale items
        for i, v in enumerate(vectors):
            index.add("s", f"k{i}", v, expires_at=clock.now + 100 + rounds)
    assert len(index._expiry) == 1000 and len(index) == 50
    assert not index.compact()  # under the threshold (2 * live + 1,024)
    for i, v in enumerate(vectors):
        for rounds in range(20):
            index.add("s", f"k{i}", v, expires_at=clock.now + 200 + rounds)
    real_live = index._live
    pushed = []

    def live_and_add(item):  # an addition lands while the compaction runs
        if not pushed:
            index.add("t", "new", vectors[0], expires_at=clock.now + 50)
            pushed.append(True)
        return real_live(item)

    index._live = live_and_add  # type: ignore[method-assign]
    assert index.compact(chunk=100)
    index._live = real_live  # type: ignore[method-assign]
    assert len(index._expiry) == 51 and len(index) == 51
    clock.now += 60
    assert index.sweep() == 1 and index.get("t", "new") is None
    clock.now += 1000
    assert index.sweep() == 50 and len(index) == 0


def test_the_cap_evicts_what_expires_soonest_then_the_oldest(
    rng: np.random.Generator, clock: Clock, tmp_path: Path
) -> None:
    index = SemanticIndex(DIM, clock=clock, max_entries=3)
    vectors = unit(rng, 6)
    assert index.add("a", "k0", vectors[0], expires_at=clock.now + 300) == []
    assert index.add("b", "k1", vectors[1], expires_at=clock.now + 100) == []
    assert index.add("a", "k2", vectors[2]) == []
    assert index.add("c", "k3", vectors[3], expires_at=clock.now + 200) == ["k1"]
    assert sorted(index.scopes()) == ["a", "c"]  # b emptied by the eviction: dropped
    assert index.add("c", "k4", vectors[4], expires_at=clock.now + 50) == ["k4"]
    assert index.add("d", "k5", vectors[5], expires_at=clock.now + 1000) == ["k3"]
    assert len(index) == 3 and index.scopes() == ["a", "d"]
    unbounded = SemanticIndex(DIM, clock=clock)  # entries without expiry: the oldest goes
    for i, v in enumerate(vectors):
        unbounded.add("s", f"k{i}", v)
    path = tmp_path / "semantic"
    unbounded.save(path)
    capped = SemanticIndex(DIM, clock=clock, max_entries=4)
    assert capped.load(path) == 4  # the cap holds at load too
    assert {h.key for h in capped.search("s", vectors[0], k=10)} == {"k2", "k3", "k4", "k5"}


def test_expiry_with_the_hnsw_graph(rng: np.random.Generator, clock: Clock) -> None:
    pytest.importorskip("faiss")
    index = SemanticIndex(DIM, clock=clock, ann_threshold=200, background=False)
    vectors = unit(rng, 600)
    for i, v in enumerate(vectors):
        index.add("t", f"k{i}", v, expires_at=clock.now + (10 if i < 300 else 1000))
    assert index.stats().ann_scopes == 1
    clock.now += 20
    expired = {f"k{i}" for i in range(300)}
    assert all(h.key not in expired for h in index.search("t", vectors[0], k=20))
    assert index.sweep() > 0 and len(index) == 300
    assert index.stats().ann_scopes == 1  # rebuilt once tombstones piled up, still used
    found = sum(index.search("t", vectors[i], k=1)[0].key == f"k{i}" for i in range(300, 600))
    assert found >= 290
    clock.now += 1000
    assert index.search("t", vectors[400], k=5) == []
    assert index.sweep() > 0 and len(index) == 0 and index.scopes() == []


def test_a_partition_emptied_during_a_background_build_is_dropped(
    rng: np.random.Generator, clock: Clock
) -> None:
    pytest.importorskip("faiss")
    index = SemanticIndex(DIM, clock=clock, ann_threshold=256)
    for i, v in enumerate(unit(rng, 300)):
        index.add("t", f"k{i}", v, expires_at=clock.now + 10)
    clock.now += 10
    assert index.sweep() == 300 and len(index) == 0
    assert index.wait_for_builds(timeout=60)
    assert index.scopes() == [] and index.stats().ann_building == 0


async def test_the_gateway_indexes_with_the_answers_expiry(
    fake: FakeOpenAIServer, tmp_path: Path
) -> None:
    semantic = {"semantic": {"enabled": True, "threshold": 0.92, "max_entries": 10}}
    async with cache_stack(fake, tmp_path, ttl_s=120, **semantic) as s:
        stage = s.app.gateway.semantic
        assert stage.index.max_entries == 10 and stage._sweeper is not None
        resp = await s.chat(chat_body("How do I reset my password?"))
        assert resp.status_code == 200 and len(stage.index) == 1
        start = time.time()
        stage.index.clock = lambda: start + 119  # not yet
        assert await stage.sweep() == 0
        stage.index.clock = lambda: start + 121
        paraphrase = await s.chat(chat_body("What's the way to reset my password?"))
        assert paraphrase.headers["x-thrifty-cache"] == "miss"
        sweeper = stage._sweeper
    assert sweeper.done()
