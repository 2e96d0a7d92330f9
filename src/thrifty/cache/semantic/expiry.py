"""The semantic index's expiry order: a min-heap of ``(expiry, sequence, scope, key)`` items.

Every entry of the index has one item here, pushed when it is added. An entry replaced or removed
before it expires leaves its item behind (stale: the index tells it apart by its sequence
number) until its time comes, when popping it costs nothing; ``compact`` rebuilds the heap from
the live items once stale ones outnumber them. The heap itself takes no lock: the index calls it
under its own, except ``compact``, which takes that lock a chunk at a time.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable, Iterable

__all__ = ["ExpiryHeap", "HeapItem"]

HeapItem = tuple[float, int, str, str]  # (expiry, sequence number, scope, key)


class ExpiryHeap:
    def __init__(self) -> None:
        self.items: list[HeapItem] = []  # one live item per entry, plus stale ones
        self._pushed: list[HeapItem] | None = None  # items pushed while ``compact`` runs
        self._cleared = 0  # bumped by ``clear``: a compaction that saw one is discarded
        self._seq = itertools.count()

    def next_seq(self) -> int:
        return next(self._seq)

    def push(self, item: HeapItem) -> None:
        heapq.heappush(self.items, item)
        if self._pushed is not None:
            self._pushed.append(item)

    def load(self, items: Iterable[HeapItem]) -> None:
        """Add many items at once (an index read from disk)."""
        items = list(items)
        self.items.extend(items)
        heapq.heapify(self.items)
        if self._pushed is not None:
            self._pushed.extend(items)

    def top(self) -> HeapItem | None:
        return self.items[0] if self.items else None

    def pop(self) -> HeapItem:
        return heapq.heappop(self.items)

    def clear(self) -> None:
        self.items = []
        self._cleared += 1

    def compact(
        self,
        lock: threading.RLock,
        live: Callable[[HeapItem], bool],
        live_count: Callable[[], int],
        *,
        chunk: int = 2_000,
    ) -> bool:
        """Rebuild the heap from its live items once stale ones outnumber them; returns whether
        it did. Blocking: run it in a worker thread. ``lock`` (the index's) is held only per
        ``chunk`` of items and let go between chunks, so searches and additions on the event
        loop wait at most one chunk; items pushed meanwhile are merged in at the end."""
        with lock:
            if self._pushed is not None or len(self.items) <= 2 * live_count() + 1024:
                return False
            snapshot, self._pushed, cleared = list(self.items), [], self._cleared
        try:
            kept: list[HeapItem] = []
            for start in range(0, len(snapshot), chunk):
                with lock:
                    kept += [it for it in snapshot[start : start + chunk] if live(it)]
                time.sleep(0.0005)  # the lock is not fair: let a waiting thread take it
            heap: list[HeapItem] = []
            for item in kept:  # pushed one by one: heapify would hold the GIL for all of them
                heapq.heappush(heap, item)
            with lock:
                if cleared != self._cleared:
                    return False
                for item in self._pushed or ():
                    heapq.heappush(heap, item)
                self.items = heap
                return True
        finally:
            with lock:
                self._pushed = None

    def __len__(self) -> int:
        return len(self.items)
