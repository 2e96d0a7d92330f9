"""The memory tier is bounded by the memory it really uses: key, value, meta and the per-entry
Python overhead are counted, and values that arrive as orjson output (whose bytes keep the whole
output buffer, >= 4 KB) are stored right-sized."""

from __future__ import annotations

import gc
import hashlib
import tracemalloc

import orjson
import pytest

from thrifty.cache.stores import MemoryStore

N = 5_000


def _answer(i: int) -> bytes:
    body = {"id": f"chatcmpl-{i}", "choices": [{"message": {"content": "hello world " * 60}}]}
    return orjson.dumps({"response": body, "served_model": "gpt-4o-mini"})


def _meta(i: int) -> dict[str, object]:
    return {"tenant": "acme", "model": "gpt-4o-mini", "tags": {"team": "a"}, "expires_at": i}


def test_the_byte_count_bounds_the_memory_the_entries_use() -> None:
    store = MemoryStore(10**12)
    answers = [_answer(i) for i in range(N)]  # orjson output, as the cache writer produces
    keys = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(N)]
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(N):
            store.set_now(keys[i], answers[i], 3600, _meta(i))
        answers.clear()  # only the store holds the values now (keys were allocated before)
        gc.collect()
        used = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    used += sum(len(k) + 49 for k in keys)  # the keys' str objects, allocated before tracing
    assert used <= store.bytes, (used / N, store.bytes / N)
    assert store.bytes <= used * 1.15, (used / N, store.bytes / N)  # and not far above it


def test_values_and_meta_round_trip() -> None:
    store = MemoryStore(10**9)
    store.set_now("k", _answer(1), 60, _meta(1))
    assert store.get_now("k") == _answer(1)
    live = store.live()
    assert [(k, v, m) for k, v, _, m in live] == [("k", _answer(1), _meta(1))]


async def test_eviction_hands_back_the_meta_and_keeps_the_bound() -> None:
    evicted: list[tuple[str, dict[str, object]]] = []
    one = len("k0") + len(_answer(0)) + len(orjson.dumps(_meta(0)))
    store = MemoryStore(3 * (one + 400))
    store.on_evict = lambda key, value, left, meta: evicted.append((key, meta))
    for i in range(5):
        store.set_now(f"k{i}", _answer(i), 60, _meta(i))
    assert store.bytes <= store.max_bytes
    assert [k for k, _ in evicted] == ["k0", "k1"] and evicted[0][1] == _meta(0)
    assert [key async for key, _ in store.scan()] == ["k2", "k3", "k4"]
    assert await store.get("k4") == (_answer(4), _meta(4))


@pytest.mark.parametrize("size", [10, 1_000, 30_000])
def test_a_stored_value_is_right_sized(size: int) -> None:
    raw = orjson.dumps({"x": "y" * size})
    store = MemoryStore(10**9)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        store.set_now("k", raw, 60, {})
        del raw
        gc.collect()
        kept = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert kept <= size + 600  # the value, the meta, the tuple and the LRU slot
