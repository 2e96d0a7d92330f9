"""Building blocks of the semantic cache (the ``semantic`` extra).

- ``index``: exact cosine search per scope (numpy / faiss flat), faiss HNSW above ~100k entries,
  atomic persistence.
- ``guard``: the second check after the cosine threshold: rejects near-misses that differ in a
  number, a negation or polarity, a WordNet antonym (``wordnet``), an entity, a quoted string, a
  code identifier or a direction.
- ``calibrate``: precision/recall over thresholds from labelled pairs, the threshold that meets a
  target precision, and a confidence interval on the false-hit rate.
- ``devset``: labelled pairs with constructed hard negatives, for calibration and benchmarks.

The embedder they use lives in ``thrifty.cache.embedder`` (shared with the router).

Measured on the 2-core development machine (384-d unit vectors, top-1, one thread, median):
``SemanticIndex`` flat search 0.03 ms at 1k entries, 0.25 ms at 10k, 5.2 ms at 100k (numpy and
faiss flat are alike, memory-bound; faiss is used above 512 entries as it never spawns BLAS
threads, whose p99 reached 12 ms at 10k); HNSW (faiss, M=32) 0.67 ms at 100k, built in 39 s on a
background thread. hnswlib measured 0.17 / 0.51 ms at 10k / 100k, 133 s to build, and ships as
a source distribution only, so it is not used.
"""

from __future__ import annotations

from thrifty.cache.semantic.guard import REASONS, Guard, Verdict
from thrifty.cache.semantic.index import Hit, IndexStats, SemanticIndex

__all__ = ["REASONS", "Guard", "Hit", "IndexStats", "SemanticIndex", "Verdict"]
