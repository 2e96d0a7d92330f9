"""Building blocks of the semantic cache (the ``semantic`` extra).

- ``index``: exact cosine search per scope (numpy / faiss flat), faiss HNSW above ~100k entries,
  atomic persistence.
- ``guard``: the second check after the cosine threshold: rejects near-misses that differ in a
  number, a negation or polarity, an entity, a quoted string, a code identifier or a direction.
- ``calibrate``: precision/recall over thresholds from labelled pairs, the threshold that meets a
  target precision, and a confidence interval on the false-hit rate.
- ``devset``: labelled pairs with constructed hard negatives, for calibration and benchmarks.

The embedder they use lives in ``thrifty.cache.embedder`` (shared with the router).

Measured on the 2-core development machine (384-d unit vectors, top-4, one thread, median):
flat search 0.02 ms at 1k entries, 0.2 ms at 10k, 5.3-6 ms at 100k, numpy and faiss alike
(memory-bound; faiss has steadier tails as it never spawns BLAS threads); faiss HNSW (M=32) 0.13 ms
at 10k and 0.4 ms at 100k, built in 90 s at 100k; hnswlib 0.17 / 0.51 ms, 133 s.
"""

from __future__ import annotations

from thrifty.cache.semantic.guard import REASONS, Guard, Verdict
from thrifty.cache.semantic.index import Hit, IndexStats, SemanticIndex

__all__ = ["REASONS", "Guard", "Hit", "IndexStats", "SemanticIndex", "Verdict"]
