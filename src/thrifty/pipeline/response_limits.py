"""What the response-limit lever saves, measured on a holdout.

A ``max_tokens`` cap saves what the model would have written past it, which no single request
shows: an answer that ends before the cap was not changed by it (saving 0), and an answer the cap
cut (``finish_reason: "length"``) hides its own uncapped length. So a small random share of the
requests the lever would cap (``optimize.response_limits_holdout``, 5 % by default) is left
uncapped, and their output lengths, per served model and complexity class, are the
counterfactual:

- a capped answer that ended on its own saved **0**;
- a capped answer the cap cut at ``cap`` saved ``E[L - cap | L > cap]`` output tokens, the mean
  overshoot of the held-out answers of the same model and class that ran past the same cap
  (``L`` their output tokens), costed at the served model's output price;
- until there are ``min_samples`` held-out answers for that model and class, and ``min_tail`` of
  them past the cap, the saving is unmeasured: the row says so (flag
  ``max_tokens_saving_unmeasured``) and books nothing.

Held-out requests are flagged ``max_tokens_holdout``; they cost what an uncapped request costs.
The samples are the last ``window`` per (model, class), in this process only (each replica
measures its own traffic). Cache hits and failed requests neither add samples nor book this lever.
"""

from __future__ import annotations

import random
from collections import deque

from thrifty.pipeline.context import RequestContext

__all__ = ["CapSavings"]


class CapSavings:
    """Held-out output lengths and the saving they imply for a capped answer. Also a record-stage
    sink (``record``) that collects the held-out samples."""

    def __init__(
        self,
        holdout: float,
        *,
        window: int = 1000,
        min_samples: int = 20,
        min_tail: int = 5,
        rng: random.Random | None = None,
    ) -> None:
        if not 0.0 <= holdout <= 1.0:
            raise ValueError(f"holdout must be in [0, 1], got {holdout}")
        self.holdout = holdout
        self._window = window
        self._min_samples = min_samples
        self._min_tail = min_tail
        self._rng = rng or random.Random()
        self._lengths: dict[tuple[str, str], deque[int]] = {}

    def hold_out(self) -> bool:
        """Whether this request, which the lever would cap, is left uncapped to measure it."""
        return self.holdout > 0.0 and self._rng.random() < self.holdout

    def samples(self, model: str, complexity: str) -> list[int]:
        return list(self._lengths.get((model, complexity), ()))

    def add(self, model: str, complexity: str, output_tokens: int) -> None:
        key = (model, complexity)
        lengths = self._lengths.get(key)
        if lengths is None:
            lengths = self._lengths[key] = deque(maxlen=self._window)
        lengths.append(output_tokens)

    def saved_tokens(
        self, model: str, complexity: str, cap: int, finish_reason: str | None
    ) -> float | None:
        """Output tokens the cap saved on an answer of ``model`` and class ``complexity``;
        ``None`` while the holdout has too few samples to say."""
        if finish_reason != "length":
            return 0.0  # the answer ended before the cap: the cap changed nothing
        lengths = self._lengths.get((model, complexity), ())
        if len(lengths) < self._min_samples:
            return None
        over = [n - cap for n in lengths if n > cap]
        if len(over) < self._min_tail:
            return None
        return sum(over) / len(over)

    def record(self, ctx: RequestContext) -> None:
        """Record-stage sink: keep the output length of a held-out answer."""
        limit = ctx.response_limit
        if limit is None or limit[1] is not None:
            return
        if ctx.error is not None or ctx.cache_status in ("hit", "semantic"):
            return
        usage = ctx.usage_parsed
        model = ctx.served_model
        if usage is None or model is None:
            return
        self.add(model, limit[0], usage.completion_tokens)
