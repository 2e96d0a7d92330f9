"""Shared test doubles for the routing tests: a deterministic embedder and learnable data."""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import numpy as np
import numpy.typing as npt

DIM = 16


class FakeEmbedder:
    """Deterministic unit vectors per text (seeded by the text's hash); counts its calls and
    records each call's ``max_tokens`` and ``truncation``. A "word piece" is a space-separated
    word: a cap keeps ``max_tokens - 2`` of them ([CLS] and [SEP] count, as in the real
    embedder), the first ones or (``head_tail``) the first and last halves."""

    model_id = "fake-embedder-16"

    def __init__(self) -> None:
        self.calls = 0
        self.caps: list[int | None] = []
        self.truncations: list[str] = []

    def vector(self, text: str) -> npt.NDArray[np.float32]:
        seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
        v = np.random.default_rng(seed).standard_normal(DIM)
        return (v / np.linalg.norm(v)).astype(np.float32)

    def embed(
        self, texts: list[str], max_tokens: int | None = None, truncation: str = "head"
    ) -> npt.NDArray[np.float32]:
        self.calls += 1
        self.caps.append(max_tokens)
        self.truncations.append(truncation)
        out = np.empty((len(texts), DIM), dtype=np.float32)
        for i, text in enumerate(texts):
            words = text.split(" ")
            keep = (max_tokens or 256) - 2
            if len(words) > keep:
                head = (keep + 1) // 2 if truncation == "head_tail" else keep
                text = " ".join(words[:head] + words[len(words) - (keep - head) :])
            out[i] = self.vector(text)
        return out

    async def aembed(
        self, texts: list[str], max_tokens: int | None = None, truncation: str = "head"
    ) -> npt.NDArray[np.float32]:
        return self.embed(texts, max_tokens, truncation)


def synthetic(
    n: int, *, seed: int = 0, learnable: bool = True
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """``(prompts, cheap, strong)``: with ``learnable``, the cheap model fails and the strong one
    succeeds along one direction of the fake embedding; otherwise labels are coin flips."""
    emb = FakeEmbedder()
    rng = np.random.default_rng(seed)
    prompts = [f"synthetic prompt {seed}-{i}" for i in range(n)]
    x = emb.embed(prompts).astype(np.float64)
    if learnable:
        hard = x[:, 0] * 6.0
        cheap = (rng.random(n) < 1 / (1 + np.exp(hard - 0.8))).astype(float)
        strong = (rng.random(n) < 1 / (1 + np.exp(-hard * 0.3 - 1.5))).astype(float)
    else:
        cheap = (rng.random(n) < 0.65).astype(float)
        strong = (rng.random(n) < 0.8).astype(float)
    return prompts, cheap, strong


def write_csv(path: Path, prompts: list[str], cheap: np.ndarray, strong: np.ndarray) -> Path:
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["prompt", "cheap_correct", "strong_correct"])
        for p, c, s in zip(prompts, cheap, strong, strict=True):
            w.writerow([p, int(c), int(s)])
    return path
