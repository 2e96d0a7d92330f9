"""The provider seam: what every upstream adapter implements.

A ``Provider`` owns one pooled HTTP client for one upstream endpoint and translates between the
canonical OpenAI shape and its upstream's wire format. Adapters raise only ``UpstreamError``
subclasses (``thrifty.errors``); foreign exceptions are mapped inside the adapter.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True, slots=True)
class Deployment:
    """One place a public model is served: a provider and the upstream's model id."""

    provider: str
    upstream_model: str
    public_model: str

    @property
    def id(self) -> str:
        return f"{self.provider}/{self.upstream_model}"


@dataclass(slots=True)
class UpstreamResponse:
    """A complete upstream answer in the canonical shape.

    ``raw`` is the exact body bytes when they are already canonical OpenAI JSON (so the server
    can forward them untouched); ``data`` is the parsed body.
    """

    data: dict[str, Any]
    raw: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class StreamEvent:
    """One canonical ``chat.completion.chunk``. ``raw`` holds the exact JSON bytes when they
    can be forwarded unchanged."""

    data: dict[str, Any]
    raw: bytes | None = None


class UpstreamStream(Protocol):
    """An open upstream stream: the status was 2xx and headers arrived.

    Iterating yields ``StreamEvent``s until the upstream's end marker; a failure mid-stream
    raises an ``UpstreamError``. ``aclose`` releases the connection and is idempotent.
    """

    headers: dict[str, str]

    def __aiter__(self) -> AsyncIterator[StreamEvent]: ...

    async def aclose(self) -> None: ...


@runtime_checkable
class Provider(Protocol):
    """An upstream adapter. ``open``/``aclose`` bracket its lifetime (the HTTP pool)."""

    name: str

    async def open(self) -> None: ...

    async def aclose(self) -> None: ...

    async def complete(self, deployment: Deployment, body: dict[str, Any]) -> UpstreamResponse:
        """Non-streaming chat completion for a canonical OpenAI body."""
        ...

    async def stream(self, deployment: Deployment, body: dict[str, Any]) -> UpstreamStream:
        """Open a streaming chat completion; returns once the upstream accepted it."""
        ...

    async def embed(self, deployment: Deployment, body: dict[str, Any]) -> UpstreamResponse:
        """Embeddings for a canonical OpenAI embeddings body."""
        ...
