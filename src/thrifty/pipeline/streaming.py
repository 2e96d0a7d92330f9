"""A chat stream on its way to the client, observed as it passes.

``ChatStream`` yields the upstream's canonical chunks unchanged, except that when Thrifty asked
the upstream for usage on the client's behalf (so streamed requests are never recorded at $0)
it removes what the client did not ask for: the usage-only final chunk and ``usage: null``
fields. Whatever way the stream ends — completed, upstream failure, client gone — the
``on_finish`` callback runs exactly once, so the request is recorded exactly once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from thrifty.errors import ThriftyError, UpstreamConnectionError
from thrifty.pipeline.context import RequestContext
from thrifty.pipeline.costing import Costing, cost_fields
from thrifty.pipeline.usage import fill_missing_usage
from thrifty.providers.base import StreamEvent, UpstreamStream
from thrifty.providers.health import DeploymentHealth

CLIENT_CLOSED = 499

# What a stored answer is reassembled from: the first chunk's identity fields (and a moderation
# chunk's ``moderation``), then per delta only role and text. A delta that carries anything else
# (a refusal, tool or function calls, audio, annotations, reasoning) makes the stream unstorable.
_STREAM_META = ("id", "created", "model", "system_fingerprint", "service_tier")
_REASSEMBLED = frozenset(("role", "content"))


def _only_text(delta: dict[str, Any]) -> bool:
    """Whether a delta's other fields are all empty (``"refusal": null`` in a role chunk)."""
    return not any(value for key, value in delta.items() if key not in _REASSEMBLED)


class ChatStream:
    def __init__(
        self,
        ctx: RequestContext,
        upstream: UpstreamStream,
        *,
        strip_usage: bool,
        health: DeploymentHealth | None = None,
    ) -> None:
        self.ctx = ctx
        self._upstream = upstream
        self._strip_usage = strip_usage
        self._health = health
        self.on_finish: Callable[[RequestContext], None] | None = None
        self.costing: Costing | None = None
        self.content_parts: list[str] = []
        ctx.output_parts = self.content_parts
        self._finished = False

    def __aiter__(self) -> AsyncIterator[StreamEvent]:
        return self._events()

    async def _events(self) -> AsyncIterator[StreamEvent]:
        ctx = self.ctx
        strip = self._strip_usage
        parts = self.content_parts
        try:
            async for event in self._upstream:
                data = event.data
                if "usage" in data:
                    usage = data["usage"]
                    if usage:
                        ctx.usage = usage
                        if not strip and self.costing is not None:
                            # The client asked for usage: its final usage carries the cost,
                            # since the response headers left before the cost was known.
                            self.costing.apply(ctx)
                            data["usage"] = {**usage, **cost_fields(ctx)}
                            event = StreamEvent(data=data, raw=None)
                    if strip:
                        if not data.get("choices"):
                            continue  # the usage-only chunk the client did not ask for
                        del data["usage"]
                        event = StreamEvent(data=data, raw=None)
                meta = ctx.stream_meta
                if meta is None:
                    meta = ctx.stream_meta = {k: data[k] for k in _STREAM_META if k in data}
                if data.get("moderation") is not None:
                    meta["moderation"] = data["moderation"]
                for choice in data.get("choices") or ():
                    delta = choice.get("delta") or {}
                    text = delta.get("content")
                    if text:
                        parts.append(text)
                    if (
                        choice.get("logprobs")
                        or choice.get("index")
                        or not (delta.keys() <= _REASSEMBLED or _only_text(delta))
                    ):
                        ctx.stream_unstorable = True  # only single-choice text is reassembled
                    if choice.get("finish_reason"):
                        ctx.finish_reason = choice["finish_reason"]
                if ctx.first_byte is None:
                    ctx.first_byte = time.perf_counter()
                yield event
        except ThriftyError as exc:
            ctx.error, ctx.status = exc, exc.status
            if self._health is not None:  # the deployment failed after its first byte
                self._health.failures += 1
                self._health.breaker.record(False)
            raise
        except (asyncio.CancelledError, GeneratorExit):
            ctx.status = CLIENT_CLOSED
            ctx.error = UpstreamConnectionError("the client closed the connection mid-stream")
            ctx.error.code = "client_closed"
            raise
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        """Release the upstream and record the request (idempotent)."""
        if self._finished:
            return
        self._finished = True
        try:
            await self._upstream.aclose()
        finally:
            self.ctx.ended = time.perf_counter()
            if self.ctx.usage is None:
                fill_missing_usage(self.ctx, "".join(self.content_parts))
            if self.on_finish is not None:
                self.on_finish(self.ctx)
