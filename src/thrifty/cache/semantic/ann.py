"""Approximate nearest-neighbour search for large scopes: faiss HNSW over inner product.

faiss ships as a wheel (``faiss-cpu``, in the ``semantic`` extra); hnswlib, the other candidate, is
a source distribution that needs a C++ compiler at install time and measured slower to build and
to query (numbers in the semantic package's docstring). HNSW cannot delete: a removed
entry becomes a tombstone that searches skip, and the owner rebuilds when tombstones pile up.

Not thread-safe on its own: :class:`~thrifty.cache.semantic.index.SemanticIndex` holds its lock
around every call except :func:`build`, which works on a private snapshot.
"""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["HnswIndex", "faiss_module"]

Matrix = npt.NDArray[np.float32]

_faiss: Any = None
_faiss_checked = False


def faiss_module() -> Any:
    """faiss if installed (imported on first call, set to one OpenMP thread), else ``None``."""
    global _faiss, _faiss_checked
    if not _faiss_checked:
        faiss: Any
        try:
            faiss = importlib.import_module("faiss")
        except ImportError:  # pragma: no cover - the semantic extra brings it
            faiss = None
        else:
            # Builds and searches stay on one core: the gateway serves requests on the others.
            faiss.omp_set_num_threads(1)
        _faiss, _faiss_checked = faiss, True
    return _faiss


class HnswIndex:
    """An HNSW graph whose labels map to cache keys; deletions are tombstones.

    ``labels[i]`` is the key stored under faiss label ``i``, or ``None`` once removed.
    """

    def __init__(self, dim: int, *, m: int = 32, ef_construction: int = 64, ef_search: int = 128):
        faiss = faiss_module()
        if faiss is None:
            raise RuntimeError("faiss is not installed")
        self._index = faiss.IndexHNSWFlat(dim, m, faiss.METRIC_INNER_PRODUCT)
        self._index.hnsw.efConstruction = ef_construction
        self._index.hnsw.efSearch = ef_search
        self.labels: list[str | None] = []
        self.label_of: dict[str, int] = {}
        self.dead = 0

    @classmethod
    def build(cls, dim: int, keys: list[str], vectors: Matrix, **params: int) -> HnswIndex:
        """A new graph over ``vectors`` (row ``i`` stored under ``keys[i]``); slow: ~1 ms/entry."""
        ann = cls(dim, **params)
        ann.add(keys, vectors)
        return ann

    def __len__(self) -> int:
        return len(self.labels) - self.dead

    @property
    def dead_fraction(self) -> float:
        return self.dead / len(self.labels) if self.labels else 0.0

    def add(self, keys: list[str], vectors: Matrix) -> None:
        """Add rows; a key already present is tombstoned first (the new vector wins)."""
        for key in keys:
            self.remove(key)
        start = len(self.labels)
        self._index.add(np.ascontiguousarray(vectors, dtype=np.float32))
        self.labels.extend(keys)
        for offset, key in enumerate(keys):
            self.label_of[key] = start + offset

    def remove(self, key: str) -> None:
        label = self.label_of.pop(key, None)
        if label is not None:
            self.labels[label] = None
            self.dead += 1

    def search(self, vector: Matrix, k: int) -> list[tuple[str, float]]:
        """Up to ``k`` live ``(key, inner product)`` pairs, best first (approximate)."""
        want = k + min(self.dead, 16)
        while True:
            fetch = min(len(self.labels), want)
            if fetch <= 0:
                return []
            scores, ids = self._index.search(vector.reshape(1, -1), fetch)
            hits = [
                (key, float(score))
                for score, label in zip(scores[0], ids[0], strict=True)
                if label >= 0 and (key := self.labels[label]) is not None
            ]
            if len(hits) >= k or fetch >= len(self.labels):
                return hits[:k]
            want *= 4
