"""Vector index of the semantic cache: exact cosine search per scope, HNSW for very large scopes.

A *scope* is an opaque string and a hard partition: a search in scope A only ever sees entries
added to scope A. The caller composes into it everything a hit must share — tenant (or user),
the hash of the conversation context, the model class, the output-affecting parameters — so
isolation holds by construction, not by filtering.

Search is exact (flat inner product over unit vectors = cosine) until a scope holds
``ann_threshold`` entries; then an HNSW graph (faiss) is built on a background thread while the
flat search keeps serving, and used from then on. An ANN miss only costs recall (a cache miss),
never precision: the threshold and the guard still decide every hit.

Expiry: an entry may carry its expiry time (``expires_at``, on the index's ``clock``; the
semantic cache gives it its answer's). ``search`` and ``get`` never return an expired entry, and
expired entries are removed without a per-request scan: a min-heap (``expiry.py``) orders every
entry by expiry, each ``add`` removes up to ``SWEEP_BATCH`` expired ones from its top,
``sweep_some`` removes a slice (the semantic stage sweeps every ``SWEEP_INTERVAL_S`` in slices on
the event loop), and a search that meets one removes it. A scope left empty is dropped. Items
of entries replaced or removed before they expire stay in the heap until their time;
``compact`` (a worker thread, the lock held per chunk) rebuilds it once they outnumber the live
ones. With ``max_entries`` the whole index is bounded: over it, the entries that expire soonest
(then the oldest) are evicted.

Persistence (``save`` / ``load``, see ``persist``): a JSON manifest at ``path`` plus one ``.npy``
of float32 vectors beside it; the manifest is replaced last, atomically. Expired entries are
neither saved nor loaded; the entries of a file written before expiries were saved are loaded
with up to ``default_ttl_s`` from ``clock()`` (never expiring when that is ``None``).
"""

from __future__ import annotations

import itertools
import math
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
import orjson

from thrifty.cache.embedder import MODEL_ID
from thrifty.cache.semantic.ann import HnswIndex, faiss_module
from thrifty.cache.semantic.expiry import ExpiryHeap, HeapItem
from thrifty.cache.semantic.persist import SavedScope, read_index, write_index

__all__ = ["SWEEP_BATCH", "Hit", "IndexStats", "SemanticIndex"]

Matrix = npt.NDArray[np.float32]
Meta = dict[str, Any]
SWEEP_BATCH = 32
"""Most expiry-heap items an ``add`` pops (amortised sweep; ``sweep`` pops them all)."""


class Hit(NamedTuple):
    """One search result: the entry's key, its cosine to the query, and its metadata."""

    key: str
    score: float
    meta: Meta


class IndexStats(NamedTuple):
    entries: int
    scopes: int
    vector_bytes: int
    meta_bytes: int
    ann_scopes: int
    ann_building: int


class _Scope:
    """One partition: rows ``0..n-1`` of ``vectors`` are live; ``rows`` keeps insertion order.

    ``exps[row]`` is the row's expiry (``inf``: never) and ``seqs[row]`` its sequence number, which
    tells the row's item in the expiry heap from the stale items of a replaced or removed entry.
    """

    __slots__ = (
        "ann",
        "building",
        "exps",
        "keys",
        "log",
        "meta_bytes",
        "metas",
        "rows",
        "seqs",
        "sizes",
        "vectors",
    )

    def __init__(self, dim: int) -> None:
        self.vectors: Matrix = np.empty((8, dim), dtype=np.float32)
        self.keys: list[str] = []
        self.metas: list[Meta] = []
        self.sizes: list[int] = []
        self.exps: list[float] = []
        self.seqs: list[int] = []
        self.rows: dict[str, int] = {}
        self.meta_bytes = 0
        self.ann: HnswIndex | None = None
        self.building = False
        self.log: set[str] = set()

    @property
    def n(self) -> int:
        return len(self.keys)


def _unit(vector: Any, dim: int) -> Matrix:
    v = np.asarray(vector, dtype=np.float32).reshape(-1)
    if v.shape[0] != dim:
        raise ValueError(f"expected a vector of {dim} floats, got {v.shape[0]}")
    norm = float(np.linalg.norm(v))
    if not np.isfinite(norm) or norm == 0.0:
        raise ValueError("vector must be finite and non-zero")
    return v / norm


def _flat_top(vectors: Matrix, query: Matrix, k: int) -> list[tuple[int, float]]:
    n = vectors.shape[0]
    k = min(k, n)
    if k <= 0:
        return []
    faiss = faiss_module()
    if faiss is not None and n >= 512:
        # Same speed as numpy (memory-bound), but one thread and steady tails.
        scores, ids = faiss.knn(query.reshape(1, -1), vectors, k, faiss.METRIC_INNER_PRODUCT)
        return [(int(i), float(s)) for s, i in zip(scores[0], ids[0], strict=True) if i >= 0]
    all_scores = vectors @ query
    top = np.argpartition(-all_scores, k - 1)[:k] if k < n else np.arange(n)
    top = top[np.argsort(-all_scores[top], kind="stable")]
    return [(int(i), float(all_scores[i])) for i in top]


class SemanticIndex:
    """Cosine search over unit vectors, partitioned by scope; thread-safe.

    ``add`` normalises the vector and replaces an entry with the same key in that scope; the
    metadata must be JSON-serialisable (it is persisted). With ``max_entries_per_scope`` the
    oldest entry of a full scope is evicted; with ``max_entries`` the entries of the whole index
    that expire soonest (then the oldest). ``search`` is exact below ``ann_threshold`` entries
    per scope and approximate (HNSW) above, and never returns an expired entry. Calls block:
    ~0.2 ms at 10k entries, ~6 ms at 100k flat; call them off the event loop for large scopes.

    ``clock`` (Unix seconds by default) is what ``expires_at`` is compared with;
    ``default_ttl_s`` is the lifetime ``load`` gives an entry saved without an expiry.
    """

    def __init__(
        self,
        dim: int = 384,
        *,
        model_id: str = MODEL_ID,
        ann_threshold: int | None = 100_000,
        max_entries_per_scope: int | None = None,
        max_entries: int | None = None,
        default_ttl_s: float | None = None,
        clock: Callable[[], float] = time.time,
        background: bool = True,
        hnsw_m: int = 32,
        hnsw_ef_construction: int = 64,
        hnsw_ef_search: int = 128,
    ) -> None:
        self.dim = dim
        self.model_id = model_id
        self.ann_threshold = ann_threshold if faiss_module() is not None else None
        self.max_entries_per_scope = max_entries_per_scope
        self.max_entries = max_entries
        self.default_ttl_s = default_ttl_s
        self.clock = clock
        self._background = background
        self._hnsw = {"m": hnsw_m, "ef_construction": hnsw_ef_construction}
        self._ef_search = hnsw_ef_search
        self._scopes: dict[str, _Scope] = {}
        self._lock = threading.RLock()
        self._builders: set[threading.Thread] = set()
        self._expiry = ExpiryHeap()
        self._count = 0  # live entries, over all scopes

    # --- entries ------------------------------------------------------------------------------

    def add(
        self,
        scope: str,
        key: str,
        vector: Any,
        meta: Meta | None = None,
        *,
        expires_at: float | None = None,
    ) -> list[str]:
        """Store ``vector`` under ``(scope, key)`` until ``expires_at`` (``None``: no expiry);
        returns the keys evicted to make room. An entry already expired is not stored (and
        removes the entry it would replace)."""
        v = _unit(vector, self.dim)
        meta = dict(meta or {})
        size = len(orjson.dumps(meta))  # fails fast on what cannot be persisted
        exp = math.inf if expires_at is None else float(expires_at)
        with self._lock:
            now = self.clock()
            self._expire(now, SWEEP_BATCH)
            if exp <= now:
                self.remove(scope, key)
                return []
            s = self._scopes.get(scope)
            if s is None:
                s = self._scopes[scope] = _Scope(self.dim)
            if key in s.rows:
                self._remove_row(s, key)
            if s.n == s.vectors.shape[0]:
                grown = np.empty((s.n * 2, self.dim), dtype=np.float32)
                grown[: s.n] = s.vectors[: s.n]
                s.vectors = grown
            seq = self._expiry.next_seq()
            s.vectors[s.n] = v
            s.rows[key] = s.n
            s.keys.append(key)
            s.metas.append(meta)
            s.sizes.append(size)
            s.exps.append(exp)
            s.seqs.append(seq)
            s.meta_bytes += size
            self._count += 1
            self._expiry.push((exp, seq, scope, key))
            if s.ann is not None:
                s.ann.add([key], v.reshape(1, -1))
            if s.building:
                s.log.add(key)
            evicted: list[str] = []
            limit = self.max_entries_per_scope
            while limit is not None and s.n > limit:
                oldest = next(iter(s.rows))
                self._remove_row(s, oldest)
                evicted.append(oldest)
            self._maybe_build(scope, s)
            evicted += self._pop_heap(lambda _: self._over_cap(), None)
            return evicted

    def get(self, scope: str, key: str) -> Meta | None:
        """The metadata of ``(scope, key)``, or ``None`` (also once it has expired)."""
        now = self.clock()
        with self._lock:
            s = self._scopes.get(scope)
            row = s.rows.get(key) if s is not None else None
            if s is None or row is None or s.exps[row] <= now:
                return None
            return s.metas[row]

    def remove(self, scope: str, key: str) -> bool:
        """Delete ``(scope, key)``; ``False`` if it was not there."""
        with self._lock:
            s = self._scopes.get(scope)
            if s is None or key not in s.rows:
                return False
            self._remove_row(s, key)
            self._after_removal(scope, s)
            return True

    def drop(self, scope: str) -> int:
        """Delete a whole scope; returns how many entries it held."""
        with self._lock:
            s = self._scopes.pop(scope, None)
            if s is None:
                return 0
            self._count -= s.n
            return s.n

    def drop_where(self, predicate: Callable[[str], bool]) -> int:
        """Delete every scope whose name satisfies ``predicate`` (e.g. a tenant prefix)."""
        with self._lock:
            return sum(self.drop(name) for name in [n for n in self._scopes if predicate(n)])

    def clear(self) -> None:
        with self._lock:
            self._scopes.clear()
            self._expiry.clear()
            self._count = 0

    def sweep(self, *, batch: int = 1024) -> int:
        """Remove every expired entry (dropping the scopes left empty); returns how many.
        Blocking, in one go: the semantic stage sweeps in slices instead (``sweep_some``)."""
        removed = 0
        while True:
            n, more = self.sweep_some(batch)
            removed += n
            if not more:
                return removed

    def sweep_some(self, limit: int) -> tuple[int, bool]:
        """Remove up to ``limit`` expired entries; returns how many, and whether expired ones
        remain. Cheap enough per call (~1 ms for 256) to run on the event loop between
        requests, where it never contends for the lock with searches."""
        with self._lock:
            now = self.clock()
            removed = self._expire(now, limit)
            top = self._expiry.top()
            return removed, top is not None and top[0] <= now

    def _remove_row(self, s: _Scope, key: str) -> None:
        row = s.rows.pop(key)
        last = s.n - 1
        s.meta_bytes -= s.sizes[row]
        if row != last:  # move the last row into the hole
            moved = s.keys[last]
            s.vectors[row] = s.vectors[last]
            s.keys[row], s.metas[row], s.sizes[row] = moved, s.metas[last], s.sizes[last]
            s.exps[row], s.seqs[row] = s.exps[last], s.seqs[last]
            s.rows[moved] = row
        for column in (s.keys, s.metas, s.sizes, s.exps, s.seqs):
            column.pop()
        self._count -= 1
        if s.ann is not None:
            s.ann.remove(key)
        if s.building:
            s.log.add(key)

    def _after_removal(self, name: str, s: _Scope) -> None:
        """Drop a scope left empty (a building one when its build ends), shrink an emptied
        buffer, or switch between flat and HNSW search."""
        if s.n == 0 and not s.building:
            if self._scopes.get(name) is s:
                del self._scopes[name]
            return
        capacity = s.vectors.shape[0]
        if capacity > 64 and s.n < capacity // 4:
            s.vectors = s.vectors[: max(8, s.n * 2)].copy()
        self._maybe_build(name, s)

    # --- expiry and the global bound ----------------------------------------------------------

    def _live(self, item: HeapItem) -> _Scope | None:
        """The scope of the entry a heap item stands for, or ``None`` if the item is stale."""
        _, seq, name, key = item
        s = self._scopes.get(name)
        row = s.rows.get(key) if s is not None else None
        return s if s is not None and row is not None and s.seqs[row] == seq else None

    def _pop_heap(self, more: Callable[[HeapItem], bool], limit: int | None) -> list[str]:
        """Pop heap items while ``more(top)`` (at most ``limit``), removing their live entries;
        returns the removed keys."""
        removed: list[str] = []
        touched: dict[str, _Scope] = {}
        popped = 0
        heap = self._expiry
        while (top := heap.top()) is not None and (limit is None or popped < limit) and more(top):
            item = heap.pop()
            popped += 1
            s = self._live(item)
            if s is not None:
                self._remove_row(s, item[3])
                removed.append(item[3])
                touched[item[2]] = s
        for name, s in touched.items():
            self._after_removal(name, s)
        return removed

    def _expire(self, now: float, limit: int | None) -> int:
        return len(self._pop_heap(lambda top: top[0] <= now, limit))

    def _over_cap(self) -> bool:
        return self.max_entries is not None and self._count > self.max_entries

    def compact(self, *, chunk: int = 2_000) -> bool:
        """Rebuild the expiry heap once stale items (of entries replaced or removed before they
        expired) outnumber the live ones; returns whether it did. Blocking: run it in a worker
        thread; it holds the lock a chunk at a time (``ExpiryHeap.compact``)."""
        return self._expiry.compact(
            self._lock, lambda item: self._live(item) is not None, lambda: self._count, chunk=chunk
        )

    # --- search -------------------------------------------------------------------------------

    def search(
        self, scope: str, vector: Any, k: int = 1, *, min_score: float | None = None
    ) -> list[Hit]:
        """The ``k`` entries of ``scope`` most similar to ``vector``, best first.

        Only entries of ``scope`` are ever considered, and never an expired one (an expired
        entry met here is removed, and the search repeated). ``min_score`` drops weaker hits.
        """
        q = _unit(vector, self.dim)
        now = self.clock()
        with self._lock:
            for attempt in range(4):
                s = self._scopes.get(scope)
                if s is None or s.n == 0 or k <= 0:
                    return []
                if s.ann is not None:
                    found = [(s.rows[key], score) for key, score in s.ann.search(q, k)]
                else:
                    found = _flat_top(s.vectors[: s.n], q, k)
                expired = [s.keys[row] for row, _ in found if s.exps[row] <= now]
                hits = [
                    Hit(s.keys[row], min(score, 1.0), s.metas[row])  # float noise can exceed 1
                    for row, score in found
                    if s.exps[row] > now and (min_score is None or score >= min_score)
                ]
                for key in expired:
                    self._remove_row(s, key)
                if expired:
                    self._after_removal(scope, s)
                if not expired or len(found) - len(expired) >= k or attempt == 3:
                    return hits
            raise AssertionError("unreachable")

    # --- accounting ---------------------------------------------------------------------------

    def __len__(self) -> int:
        with self._lock:
            return self._count

    def size(self, scope: str) -> int:
        with self._lock:
            s = self._scopes.get(scope)
            return 0 if s is None else s.n

    def scopes(self) -> list[str]:
        with self._lock:
            return list(self._scopes)

    def stats(self) -> IndexStats:
        """Entries, scopes, bytes of vectors (allocated) and of metadata (as JSON), ANN state."""
        with self._lock:
            ss = list(self._scopes.values())
            return IndexStats(
                entries=sum(s.n for s in ss),
                scopes=len(ss),
                vector_bytes=sum(s.vectors.nbytes for s in ss),
                meta_bytes=sum(s.meta_bytes for s in ss),
                ann_scopes=sum(s.ann is not None for s in ss),
                ann_building=sum(s.building for s in ss),
            )

    # --- ANN ----------------------------------------------------------------------------------

    def _maybe_build(self, name: str, s: _Scope) -> None:
        threshold = self.ann_threshold
        if threshold is None or s.building:
            return
        if s.ann is None and s.n >= threshold:
            self._start_build(name, s)
        elif s.ann is not None and s.n < threshold // 2:
            s.ann = None  # flat is faster again
        elif s.ann is not None and s.ann.dead_fraction > 0.25:
            self._start_build(name, s)

    def _start_build(self, name: str, s: _Scope) -> None:
        keys, vectors = list(s.keys), s.vectors[: s.n].copy()
        s.building, s.log = True, set()
        if not self._background:
            self._build(name, s, keys, vectors)
            return
        thread = threading.Thread(
            target=self._build, args=(name, s, keys, vectors), name="thrifty-hnsw", daemon=True
        )
        self._builders.add(thread)
        thread.start()

    def _build(self, name: str, s: _Scope, keys: list[str], vectors: Matrix) -> None:
        try:
            ann = HnswIndex.build(self.dim, keys, vectors, ef_search=self._ef_search, **self._hnsw)
        except Exception:
            with self._lock:
                s.building = False
            raise
        with self._lock:
            # Replay what changed during the build; a dropped scope's graph is discarded.
            for key in s.log:
                ann.remove(key)
                row = s.rows.get(key)
                if row is not None:
                    ann.add([key], s.vectors[row : row + 1])
            s.building, s.log = False, set()
            if self._scopes.get(name) is s:
                s.ann = ann
                if s.n == 0:  # emptied (removed, expired, evicted) while building
                    del self._scopes[name]
            self._builders.discard(threading.current_thread())

    def wait_for_builds(self, timeout: float | None = None) -> bool:
        """Block until background HNSW builds finish; ``False`` if ``timeout`` ran out."""
        for thread in list(self._builders):
            thread.join(timeout)
        return not any(t.is_alive() for t in self._builders)

    # --- persistence --------------------------------------------------------------------------

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the unexpired entries to ``path`` (``persist``: manifest + ``.npy``, atomic)."""
        now = self.clock()
        scopes = []
        with self._lock:
            for name, s in self._scopes.items():
                # Rows in insertion order, so eviction order survives a round trip.
                rows = [row for row in s.rows.values() if s.exps[row] > now]
                if rows:
                    exps = [None if math.isinf(s.exps[r]) else s.exps[r] for r in rows]
                    keys, metas = [s.keys[r] for r in rows], [s.metas[r] for r in rows]
                    scopes.append(SavedScope(name, keys, metas, s.vectors[rows], exps))
        write_index(Path(path), dim=self.dim, model_id=self.model_id, scopes=scopes)

    def _expiries(self, saved: SavedScope, now: float) -> list[float]:
        """The expiry of each saved entry (``null``: saved as never expiring). The entries of a
        file written before expiries were saved get up to ``default_ttl_s`` from ``now`` —
        spread over the second half of it, in the file's order, so that a whole old index does
        not expire (and get swept) in one instant — or none when that is ``None``."""
        if saved.exps is not None:
            return [math.inf if exp is None else float(exp) for exp in saved.exps]
        ttl, n = self.default_ttl_s, len(saved.keys)
        if ttl is None:
            return [math.inf] * n
        return [now + ttl * (0.5 + 0.5 * (i + 1) / n) for i in range(n)]

    def reembed(
        self,
        path: str | os.PathLike[str],
        embed: Callable[[list[str]], npt.NDArray[np.float32]],
        *,
        stop: threading.Event | None = None,
        chunk: int = 64,
    ) -> int:
        """Add the unexpired entries of an index saved by another embedder, embedding their
        stored texts with ``embed`` (``chunk`` texts per call, checking ``stop`` between calls);
        entries with no text are skipped. Returns how many were added. Blocking: run it off the
        loop."""
        added = 0
        now = self.clock()
        for saved in read_index(Path(path), dim=self.dim, model_id=None):
            rows = [
                (key, meta, exp)
                for key, meta, exp in zip(
                    saved.keys, saved.metas, self._expiries(saved, now), strict=True
                )
                if isinstance(meta, dict) and isinstance(meta.get("text"), str) and exp > now
            ]
            for start in range(0, len(rows), chunk):
                if stop is not None and stop.is_set():
                    return added
                part = rows[start : start + chunk]
                vectors = embed([meta["text"] for _, meta, _ in part])
                for (key, meta, exp), vector in zip(part, vectors, strict=True):
                    self.add(saved.name, key, vector, meta, expires_at=exp)
                added += len(part)
        return added

    def load(self, path: str | os.PathLike[str]) -> int:
        """Replace this index's entries with the unexpired ones saved at ``path`` (within
        ``max_entries``); returns how many it holds then.

        Raises ``ValueError`` if the file is not an index of this dimension and model id.
        """
        saved = read_index(Path(path), dim=self.dim, model_id=self.model_id)
        now = self.clock()
        items: list[HeapItem] = []
        with self._lock:
            self.clear()
            for item in saved:
                exps = self._expiries(item, now)
                keep = [row for row, exp in enumerate(exps) if exp > now]
                if not keep:
                    continue
                s = self._scopes[item.name] = _Scope(self.dim)
                s.vectors = item.vectors if len(keep) == len(exps) else item.vectors[keep]
                s.keys = [item.keys[row] for row in keep]
                s.metas = [item.metas[row] for row in keep]
                s.exps = [exps[row] for row in keep]
                s.seqs = [self._expiry.next_seq() for _ in keep]
                s.sizes = [len(orjson.dumps(m)) for m in s.metas]
                s.meta_bytes = sum(s.sizes)
                s.rows = {key: row for row, key in enumerate(s.keys)}
                self._count += s.n
                items.extend(zip(s.exps, s.seqs, itertools.repeat(item.name), s.keys))
            self._expiry.load(items)
            self._pop_heap(lambda _: self._over_cap(), None)
            for name, s in list(self._scopes.items()):
                self._maybe_build(name, s)
            return self._count
