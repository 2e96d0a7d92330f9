"""Thresholds from a target: send about a stated share of live traffic to the strong model.

The operator states the share of strong calls they will pay for (or a cost per 1,000 requests,
turned into a share with :func:`share_for_cost`); :class:`TargetShareThreshold` keeps the scores of
the last ``window`` requests and sets the threshold at their ``1 - target`` quantile, so that about
``target`` of requests like the recent ones score at or above it (RouteLLM calibrates its
thresholds the same way, on a sample of prompts). ``realised_share`` is what actually went strong
over the last ``window`` decisions: export it as a metric next to the target.

Pure and synchronous: no clock, no I/O. Not thread-safe: use one instance per event loop.
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from typing import Any

__all__ = ["TargetShareThreshold", "share_for_cost"]


class TargetShareThreshold:
    """Running-quantile threshold for a target share of strong calls.

    Invariants: ``threshold`` is the ``1 - target`` quantile (nearest rank, from above) of the last
    ``window`` observed scores once ``min_samples`` were seen, ``initial_threshold`` before; a
    score routes strong when ``score >= threshold``. Memory and time per observation are
    ``O(window)`` at worst (a sorted list; ~µs for 10k).
    """

    def __init__(
        self,
        target_strong_share: float,
        *,
        window: int = 10_000,
        min_samples: int = 100,
        initial_threshold: float = math.inf,
    ) -> None:
        if not 0.0 <= target_strong_share <= 1.0:
            raise ValueError("target_strong_share must be in [0, 1]")
        if window < 1 or min_samples < 1:
            raise ValueError("window and min_samples must be positive")
        self.target = target_strong_share
        self.window = window
        self.min_samples = min_samples
        self.initial_threshold = initial_threshold
        self._recent: deque[float] = deque()
        self._sorted: list[float] = []
        self._decisions: deque[bool] = deque()
        self._strong = 0

    @property
    def samples(self) -> int:
        """Scores currently in the window."""
        return len(self._recent)

    def observe(self, score: float) -> None:
        """Add a live score to the window (the oldest one leaves when it is full)."""
        if math.isnan(score):
            return
        self._recent.append(score)
        bisect.insort(self._sorted, score)
        if len(self._recent) > self.window:
            old = self._recent.popleft()
            del self._sorted[bisect.bisect_left(self._sorted, old)]

    @property
    def threshold(self) -> float:
        """The score at or above which a request goes strong (``inf`` = none, ``-inf`` = all)."""
        n = len(self._sorted)
        if n < self.min_samples:
            return self.initial_threshold
        k = math.ceil(self.target * n - 1e-9)  # how many of the window should go strong
        if k <= 0:
            return math.inf
        if k >= n:
            return -math.inf
        return self._sorted[n - k]

    def record(self, strong: bool) -> None:
        """Count a routing outcome in ``realised_share`` (when a policy overrode the score)."""
        self._decisions.append(strong)
        self._strong += strong
        if len(self._decisions) > self.window:
            self._strong -= self._decisions.popleft()

    def decide(self, score: float) -> bool:
        """Route one request: ``True`` = strong. Compares with the current threshold, then
        observes the score and records the decision."""
        strong = score >= self.threshold
        self.observe(score)
        self.record(strong)
        return strong

    @property
    def realised_share(self) -> float:
        """Share of the last ``window`` recorded decisions that went strong (NaN before any)."""
        if not self._decisions:
            return math.nan
        return self._strong / len(self._decisions)

    @classmethod
    def for_cost(
        cls,
        cost_per_1k_requests: float,
        cheap_cost_per_request: float,
        strong_cost_per_request: float,
        **kwargs: Any,
    ) -> TargetShareThreshold:
        """A calibrator whose target share meets a cost per 1,000 requests (see
        :func:`share_for_cost`)."""
        share = share_for_cost(
            cost_per_1k_requests, cheap_cost_per_request, strong_cost_per_request
        )
        return cls(share, **kwargs)


def share_for_cost(
    cost_per_1k_requests: float, cheap_cost_per_request: float, strong_cost_per_request: float
) -> float:
    """The strong-call share whose expected cost is ``cost_per_1k_requests`` per 1,000 requests.

    Per-request costs are the two models' average cost for this route's traffic (prices times
    typical prompt and completion tokens). ``share = (target/1000 - cheap) / (strong - cheap)``,
    clipped to [0, 1]: a budget below all-cheap gives 0, one above all-strong gives 1.
    """
    per_request = cost_per_1k_requests / 1000.0
    spread = strong_cost_per_request - cheap_cost_per_request
    if spread <= 0:
        return 1.0 if per_request >= strong_cost_per_request else 0.0
    return min(1.0, max(0.0, (per_request - cheap_cost_per_request) / spread))
