"""Provider quotas learned from upstream rate-limit headers, per deployment.

OpenAI-style (OpenAI, Azure, Groq, Together, vLLM …)::

    x-ratelimit-limit-requests: 10000      x-ratelimit-limit-tokens: 2000000
    x-ratelimit-remaining-requests: 9999   x-ratelimit-remaining-tokens: 1999000
    x-ratelimit-reset-requests: 6ms        x-ratelimit-reset-tokens: 6m0s   (Go durations)

Anthropic::

    anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-{limit,remaining,reset}
    (reset is an RFC 3339 instant)

A header set without a limit (Azure sends only ``remaining`` at times) reuses the last limit seen
for that deployment and kind. ``QuotaTracker.observe`` records the latest window per deployment
and kind and returns *crossing events*: ``warning`` when utilisation (``1 - remaining/limit``)
reaches ``warning`` (0.9) and ``critical`` at ``critical`` (0.95). Each level fires once per
quota window: it re-arms only after utilisation falls back below ``warning`` (the provider's
window reset). A window whose reset time has passed reads as unused.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

QuotaKind = Literal["requests", "tokens", "input_tokens", "output_tokens"]
Level = Literal["warning", "critical"]

_GO_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_UNIT_S = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_OPENAI: dict[str, QuotaKind] = {"requests": "requests", "tokens": "tokens"}
_ANTHROPIC: dict[str, QuotaKind] = {
    "requests": "requests",
    "tokens": "tokens",
    "input-tokens": "input_tokens",
    "output-tokens": "output_tokens",
}


def parse_go_duration(text: str) -> float | None:
    """Seconds in a Go duration (``1s``, ``6m0s``, ``12ms``, ``1h2m3.5s``, ``0``) or a plain
    number of seconds; ``None`` when it is neither."""
    s = text.strip()
    if not s:
        return None
    try:
        return max(0.0, float(s))
    except ValueError:
        pass
    sign = -1.0 if s.startswith("-") else 1.0
    s = s.lstrip("+-")
    pos, total = 0, 0.0
    for m in _GO_PART.finditer(s):
        if m.start() != pos:
            return None
        total += float(m.group(1)) * _UNIT_S[m.group(2)]
        pos = m.end()
    if pos != len(s) or pos == 0:
        return None
    return max(0.0, sign * total)


def _rfc3339(text: str) -> float | None:
    try:
        dt = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return dt.timestamp() if dt.tzinfo is not None else None


def _int(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        return int(float(text.strip()))
    except ValueError:
        return None


def parse_rate_limit_headers(
    headers: Mapping[str, str] | Iterable[tuple[str, str]], now: float | None = None
) -> dict[QuotaKind, tuple[int | None, int | None, float | None]]:
    """``{kind: (limit, remaining, reset_at)}`` from response headers (any case);
    ``reset_at`` is a Unix time (``now`` + a duration, or an RFC 3339 instant)."""
    items = headers.items() if isinstance(headers, Mapping) else headers
    h = {lk: v for k, v in items if "ratelimit-" in (lk := k.lower())}
    out: dict[QuotaKind, tuple[int | None, int | None, float | None]] = {}
    if not h:
        return out
    now = time.time() if now is None else now
    for suffix, kind in _OPENAI.items():
        limit = _int(h.get(f"x-ratelimit-limit-{suffix}"))
        remaining = _int(h.get(f"x-ratelimit-remaining-{suffix}"))
        reset_raw = h.get(f"x-ratelimit-reset-{suffix}")
        if limit is None and remaining is None:
            continue
        d = parse_go_duration(reset_raw) if reset_raw else None
        out[kind] = (limit, remaining, None if d is None else now + d)
    for part, kind in _ANTHROPIC.items():
        p = f"anthropic-ratelimit-{part}-"
        limit, remaining = _int(h.get(p + "limit")), _int(h.get(p + "remaining"))
        if limit is None and remaining is None:
            continue
        reset_raw = h.get(p + "reset")
        out[kind] = (limit, remaining, _rfc3339(reset_raw) if reset_raw else None)
    return out


@dataclass(frozen=True, slots=True)
class QuotaWindow:
    """The latest known state of one provider quota (``reset_at``: Unix time or ``None``)."""

    kind: QuotaKind
    limit: int
    remaining: int
    reset_at: float | None
    observed_at: float

    @property
    def utilisation(self) -> float:
        if self.limit <= 0:
            return 0.0
        return min(1.0, max(0.0, 1.0 - self.remaining / self.limit))


@dataclass(frozen=True, slots=True)
class QuotaEvent:
    """A deployment's quota crossed ``level`` (once per quota window)."""

    deployment: str
    kind: QuotaKind
    level: Level
    utilisation: float
    limit: int
    remaining: int
    reset_at: float | None


class QuotaTracker:
    """Per-deployment provider quotas, learned from every response's headers. ``clock`` is
    wall time (Unix seconds), since Anthropic reports reset instants."""

    def __init__(
        self,
        *,
        warning: float = 0.9,
        critical: float = 0.95,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not 0 < warning <= critical <= 1:
            raise ValueError("need 0 < warning <= critical <= 1")
        self.warning, self.critical = warning, critical
        self._clock = clock
        self._windows: dict[tuple[str, QuotaKind], QuotaWindow] = {}
        self._fired: dict[tuple[str, QuotaKind], Level] = {}

    def observe(
        self, deployment: str, headers: Mapping[str, str] | Iterable[tuple[str, str]]
    ) -> list[QuotaEvent]:
        """Record ``deployment``'s quota headers; the crossing events this response caused."""
        now = self._clock()
        events: list[QuotaEvent] = []
        for kind, (limit, remaining, reset_at) in parse_rate_limit_headers(headers, now).items():
            key = (deployment, kind)
            prev = self._windows.get(key)
            limit = limit if limit is not None else (prev.limit if prev else None)
            if limit is None or remaining is None:
                continue
            w = QuotaWindow(kind, limit, remaining, reset_at, now)
            self._windows[key] = w
            u = w.utilisation
            level: Level | None = (
                "critical" if u >= self.critical else "warning" if u >= self.warning else None
            )
            fired = self._fired.get(key)
            if level is None:
                self._fired.pop(key, None)  # the window reset: re-arm
            elif fired is None or (fired == "warning" and level == "critical"):
                self._fired[key] = level
                events.append(QuotaEvent(deployment, kind, level, u, limit, remaining, reset_at))
        return events

    def window(self, deployment: str, kind: QuotaKind) -> QuotaWindow | None:
        """The latest window, shown unused once its reset time has passed."""
        w = self._windows.get((deployment, kind))
        if w is not None and w.reset_at is not None and self._clock() >= w.reset_at:
            return QuotaWindow(kind, w.limit, w.limit, None, w.observed_at)
        return w

    def snapshot(self, deployment: str) -> dict[QuotaKind, QuotaWindow]:
        kinds = [k for d, k in self._windows if d == deployment]
        out = {k: self.window(deployment, k) for k in kinds}
        return {k: w for k, w in out.items() if w is not None}

    def utilisation(self, deployment: str) -> dict[QuotaKind, float]:
        """Utilisation (0..1) of each known quota of ``deployment``."""
        return {k: w.utilisation for k, w in self.snapshot(deployment).items()}

    def max_utilisation(self, deployment: str) -> float:
        return max(self.utilisation(deployment).values(), default=0.0)

    def deployments(self) -> list[str]:
        return sorted({d for d, _ in self._windows})
