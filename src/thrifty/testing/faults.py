"""Fault and latency specs for the fake upstream servers.

A fault is a short spec string, parsed by ``FaultSpec.parse``; ``;`` separates options::

    status=500                     an OpenAI error body with that status (any code)
    status=503;message=overloaded  ... with this message (``message`` takes the rest of the spec)
    status=429;retry_after=2       a 429 with ``retry-after: 2`` and a rate_limit_exceeded body
    status=429;code=insufficient_quota;type=insufficient_quota
    timeout=5                      sleep 5 s before sending headers, then answer normally
    reset                          abort the TCP connection without any response
    malformed                      200 with a body that does not parse
    cut=3                          stream: send 3 chunks, then abort without [DONE];
                                   non-stream: send half the body, then abort
    slow_stream=2                  stream: pause 2 s after the first chunk;
                                   non-stream: pause 2 s between headers and body
    none                           no fault (overrides a configured one)

Latency is ``first=50,token=5`` (milliseconds): see ``Latency.parse``.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

F = TypeVar("F")

_FLOAT_KEYS = ("retry_after", "timeout", "slow_stream")
_STR_KEYS = ("code", "type")


@dataclass(frozen=True, slots=True)
class FaultSpec:
    """One parsed fault. Several may combine, e.g. ``timeout=1;status=500``: delay, then fail."""

    status: int | None = None
    message: str | None = None
    code: str | None = None
    type: str | None = None
    retry_after: float | None = None
    timeout: float | None = None
    reset: bool = False
    malformed: bool = False
    cut: int | None = None
    slow_stream: float | None = None

    @classmethod
    def parse(cls, spec: str) -> FaultSpec | None:
        """Parse a spec string; ``""`` and ``"none"`` give ``None``. Raises ``ValueError``."""
        spec = spec.strip()
        if not spec or spec.lower() == "none":
            return None
        fields: dict[str, Any] = {}
        rest = spec
        while rest:
            item, _, rest = rest.partition(";")
            item = item.strip()
            if not item:
                continue
            key, eq, value = item.partition("=")
            key = key.strip().lower().replace("-", "_")
            value = value.strip()
            if key == "message":
                # the message may contain ';': it takes the rest of the spec
                fields["message"] = value + (";" + rest if rest else "")
                break
            if key in ("reset", "malformed") and not eq:
                fields[key] = True
            elif key in ("status", "cut") and eq:
                fields[key] = _int(key, value)
            elif key in _FLOAT_KEYS and eq:
                fields[key] = _float(key, value)
            elif key in _STR_KEYS and eq:
                fields[key] = value
            else:
                raise ValueError(f"invalid fault spec item {item!r} in {spec!r}")
        status = fields.get("status")
        if isinstance(status, int) and not 100 <= status <= 599:
            raise ValueError(f"invalid status in fault spec {spec!r}")
        return cls(**fields)


@dataclass(frozen=True, slots=True)
class Latency:
    """Simulated model latency in milliseconds.

    Non-streaming responses wait ``first_token_ms + per_token_ms * completion_tokens`` before
    answering; streams wait ``first_token_ms`` before the first chunk and ``per_token_ms`` per
    token between chunks.
    """

    first_token_ms: float = 0
    per_token_ms: float = 0

    @classmethod
    def parse(cls, spec: str) -> Latency:
        """Parse ``"first=50,token=5"`` (``ttft`` / ``first_token`` and ``per_token`` too)."""
        first = 0.0
        token = 0.0
        for item in spec.split(","):
            item = item.strip()
            if not item:
                continue
            key, eq, value = item.partition("=")
            key = key.strip().lower()
            if not eq:
                raise ValueError(f"invalid latency spec item {item!r}")
            if key in ("first", "first_token", "first_token_ms", "ttft"):
                first = _float(key, value)
            elif key in ("token", "per_token", "per_token_ms"):
                token = _float(key, value)
            else:
                raise ValueError(f"invalid latency spec item {item!r}")
        return cls(first_token_ms=first, per_token_ms=token)

    def __bool__(self) -> bool:
        return self.first_token_ms > 0 or self.per_token_ms > 0


def _int(key: str, value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"{key} must be an integer, got {value!r}") from None


def _float(key: str, value: str) -> float:
    try:
        result = float(value)
    except ValueError:
        raise ValueError(f"{key} must be a number, got {value!r}") from None
    if result < 0:
        raise ValueError(f"{key} must not be negative, got {value!r}")
    return result


class FaultTable(Generic[F]):
    """Which fault a fake applies to a request for a model: the config's (by model, ``"*"``
    for all) first, then the one set at runtime (``set``), which may count down ``times``
    requests. Thread-safe: tests set faults from another thread than the server's."""

    def __init__(self, configured: Mapping[str, F | None] | None = None) -> None:
        self._configured = dict(configured or {})
        self._runtime: dict[str | None, tuple[F, int | None]] = {}
        self._lock = threading.Lock()

    def set(self, fault: F | None, model: str | None = None, times: int | None = None) -> None:
        """Apply ``fault`` to requests for ``model`` (None: every request) for the next
        ``times`` of them (None: until changed); ``fault=None`` clears it."""
        with self._lock:
            if fault is None:
                self._runtime.pop(model, None)
            else:
                self._runtime[model] = (fault, times)

    def pick(self, model: str | None) -> F | None:
        configured = self._configured
        if configured:
            if model is not None and model in configured:
                return configured[model]
            if "*" in configured:
                return configured["*"]
        if not self._runtime:
            return None
        with self._lock:
            key: str | None = model if model in self._runtime else None
            entry = self._runtime.get(key)
            if entry is None:
                return None
            fault, remaining = entry
            if remaining is not None:
                if remaining <= 1:
                    del self._runtime[key]
                else:
                    self._runtime[key] = (fault, remaining - 1)
            return fault
