"""Per-deployment health: a circuit breaker plus the live figures load balancing reads.

Breaker states::

    closed ──(N consecutive failures, or failure rate ≥ r over the last W calls)──▶ open
    open ──(recovery_timeout_s elapsed)──▶ half_open (one probe call at a time)
    half_open ──probe succeeds──▶ closed        half_open ──probe fails──▶ open

An operator can force a breaker open or closed (seed 002's ``force_close``); a forced state
holds until ``reset``. Only upstream failures count: a caller's error (400, 404) is the
request's fault, not the deployment's.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from thrifty.config import BreakerConfig

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"


@dataclass(slots=True)
class CircuitBreaker:
    config: BreakerConfig
    clock: Callable[[], float] = time.monotonic
    state: str = CLOSED
    forced: str | None = None
    opened_at: float = 0.0
    consecutive_failures: int = 0
    probe_in_flight: bool = False
    window: deque[bool] = field(default_factory=deque)
    transitions: list[tuple[float, str]] = field(default_factory=list)
    on_transition: Callable[[str, str], None] | None = None

    def _set(self, state: str) -> None:
        if state != self.state:
            old, self.state = self.state, state
            self.transitions.append((self.clock(), state))
            del self.transitions[:-20]
            if self.on_transition is not None:
                self.on_transition(old, state)

    def allow(self) -> bool:
        """May a call go to this deployment now? (A half-open breaker admits one probe.)"""
        if self.forced == OPEN:
            return False
        if self.forced == CLOSED:
            return True
        if self.state == OPEN:
            if self.clock() - self.opened_at < self.config.recovery_timeout_s:
                return False
            self._set(HALF_OPEN)
        if self.state == HALF_OPEN:
            if self.probe_in_flight:
                return False
            self.probe_in_flight = True
        return True

    def record(self, ok: bool) -> None:
        self.window.append(ok)
        while len(self.window) > self.config.window:
            self.window.popleft()
        if self.state == HALF_OPEN:
            self.probe_in_flight = False
            if ok:
                self.consecutive_failures = 0
                self.window.clear()
                self._set(CLOSED)
            else:
                self._trip()
            return
        if ok:
            self.consecutive_failures = 0
            return
        self.consecutive_failures += 1
        if self.state == CLOSED and (
            self.consecutive_failures >= self.config.consecutive_failures
            or (
                len(self.window) >= self.config.min_calls
                and self.failure_rate >= self.config.failure_rate
            )
        ):
            self._trip()

    def release_probe(self) -> None:
        """A probe that ended without a verdict (cancelled, caller error) frees the slot."""
        self.probe_in_flight = False

    def _trip(self) -> None:
        self.opened_at = self.clock()
        self._set(OPEN)

    @property
    def failure_rate(self) -> float:
        return self.window.count(False) / len(self.window) if self.window else 0.0

    def force(self, state: str | None) -> None:
        """Force ``open`` or ``closed``; ``None`` resets to a fresh closed breaker."""
        if state is None:
            self.forced = None
            self.window.clear()
            self.consecutive_failures = 0
            self.probe_in_flight = False
            self._set(CLOSED)
        else:
            self.forced = state
            if state == OPEN:
                self.opened_at = self.clock()
            self._set(state)

    @property
    def effective_state(self) -> str:
        return self.forced or self.state


@dataclass(slots=True)
class DeploymentHealth:
    """Live figures for one deployment: breaker, in-flight calls, latency EWMA, counts."""

    deployment_id: str
    breaker: CircuitBreaker
    weight: float = 1.0
    in_flight: int = 0
    latency_ewma_ms: float | None = None
    calls: int = 0
    failures: int = 0
    last_error: str | None = None
    last_error_at: float | None = None

    def started(self) -> None:
        self.in_flight += 1

    def finished(self, ok: bool | None, latency_ms: float, error: str | None = None) -> None:
        """``ok=None``: the call ended without a verdict on the deployment (caller's error,
        client gone) — it frees its slot but does not move the breaker."""
        self.in_flight = max(0, self.in_flight - 1)
        if ok is None:
            self.breaker.release_probe()
            return
        self.calls += 1
        if ok:
            a = 0.2
            prev = self.latency_ewma_ms
            self.latency_ewma_ms = latency_ms if prev is None else (1 - a) * prev + a * latency_ms
        else:
            self.failures += 1
            self.last_error = error
            self.last_error_at = time.time()
        self.breaker.record(ok)

    def to_json(self) -> dict[str, Any]:
        b = self.breaker
        return {
            "deployment": self.deployment_id,
            "status": "healthy" if b.effective_state == CLOSED else "unhealthy",
            "breaker": b.effective_state,
            "forced": b.forced,
            "weight": self.weight,
            "in_flight": self.in_flight,
            "latency_ewma_ms": None
            if self.latency_ewma_ms is None
            else round(self.latency_ewma_ms, 3),
            "calls": self.calls,
            "failures": self.failures,
            "recent_failure_rate": round(b.failure_rate, 4),
            "consecutive_failures": b.consecutive_failures,
            "last_error": self.last_error,
        }
