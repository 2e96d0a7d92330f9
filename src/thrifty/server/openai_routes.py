"""OpenAI-compatible endpoints: HTTP ⇄ ``Gateway`` calls, nothing more."""

from __future__ import annotations

from collections.abc import AsyncIterator

import orjson

from thrifty.errors import InvalidRequestError, NotFoundError, ThriftyError
from thrifty.gateway import PRIORITIES, Gateway
from thrifty.pipeline.context import RequestContext
from thrifty.pipeline.costing import format_usd
from thrifty.pipeline.outcome import Completed
from thrifty.pipeline.streaming import ChatStream
from thrifty.server.http import (
    RawHeaders,
    Receive,
    Scope,
    Send,
    read_body,
    send_error,
    send_json,
    send_sse,
)
from thrifty.wire.openai import parse_chat_request, parse_embeddings_request

CACHE_DIRECTIVES = frozenset({"no-cache", "no-store", "no-semantic", "off"})
_DONE_FRAME = b"data: [DONE]\n\n"


def parse_tags(value: str | None) -> dict[str, str]:
    """``x-thrifty-tags: k=v,k=v`` → dict; a malformed pair is a 400."""
    if not value:
        return {}
    tags: dict[str, str] = {}
    for pair in value.split(","):
        key, sep, val = pair.strip().partition("=")
        if not sep or not key.strip():
            raise InvalidRequestError(
                f"Invalid x-thrifty-tags header: {pair.strip()!r} is not key=value.",
                param="x-thrifty-tags",
            )
        tags[key.strip()] = val.strip()
    return tags


def request_options(headers: dict[str, str]) -> tuple[dict[str, str], str, str | None]:
    tags = parse_tags(headers.get("x-thrifty-tags"))
    priority = headers.get("x-thrifty-priority", "normal").strip().lower() or "normal"
    if priority not in PRIORITIES:
        raise InvalidRequestError(
            f"Invalid x-thrifty-priority {priority!r}; expected critical, normal or low.",
            param="x-thrifty-priority",
        )
    cache = headers.get("x-thrifty-cache")
    if cache is not None:
        cache = cache.strip().lower()
        if cache not in CACHE_DIRECTIVES:
            raise InvalidRequestError(
                f"Invalid x-thrifty-cache {cache!r}; "
                "expected no-cache, no-store, no-semantic or off.",
                param="x-thrifty-cache",
            )
    return tags, priority, cache


def thrifty_headers(
    request_id: str, ctx: RequestContext | None, *, stream: bool = False
) -> RawHeaders:
    """The ``x-thrifty-*`` headers every response carries. A stream's cost is not known when
    its headers leave: they say ``pending`` and the final SSE event carries the figures."""
    headers = [(b"x-thrifty-request-id", request_id.encode())]
    if ctx is None:
        headers.append((b"x-thrifty-cache", b"bypass"))
        headers.append((b"x-thrifty-cost-usd", b"0.0000000000"))
        headers.append((b"x-thrifty-saved-usd", b"0.0000000000"))
        return headers
    headers.append((b"x-thrifty-cache", ctx.cache_status.encode()))
    attempts = ctx.attempts
    if attempts:
        tried = sum(1 for a in attempts if not a.skipped)
        headers.append((b"x-thrifty-attempts", str(tried).encode()))
        if len(attempts) > 1:
            path = ">".join(
                f"{a.deployment}({a.error})" if a.error else a.deployment for a in attempts
            )
            headers.append((b"x-thrifty-fallback", path.encode("latin-1", "replace")))
    if ctx.served_model:
        headers.append((b"x-thrifty-model", ctx.served_model.encode("latin-1", "replace")))
    if ctx.budget_max_tokens is not None:
        headers.append((b"x-thrifty-max-tokens", str(ctx.budget_max_tokens).encode()))
    if ctx.route_header is not None:
        headers.append((b"x-thrifty-route", ctx.route_header.encode("latin-1", "replace")))
    if ctx.degraded_from is not None:
        headers.append((b"x-thrifty-degraded-from", ctx.degraded_from.encode("latin-1", "replace")))
    if stream:
        headers.append((b"x-thrifty-cost-usd", b"pending"))
        headers.append((b"x-thrifty-saved-usd", b"pending"))
    else:
        headers.append((b"x-thrifty-cost-usd", format_usd(ctx.cost_usd).encode()))
        headers.append((b"x-thrifty-saved-usd", format_usd(ctx.saved_usd).encode()))
    return headers


def sse_error_frame(exc: ThriftyError) -> bytes:
    return b"data: " + orjson.dumps(exc.body()) + b"\n\n"


async def _sse_frames(stream: ChatStream) -> AsyncIterator[bytes]:
    async for event in stream:
        yield b"data: " + (event.raw or orjson.dumps(event.data)) + b"\n\n"
    # The stream is over and costed. SDKs ignore SSE comments, so this reaches tools that
    # read the raw stream without changing what the client's SDK parses.
    ctx = stream.ctx
    yield (
        b": thrifty "
        + orjson.dumps(
            {"cost_usd": ctx.cost_usd, "saved_usd": ctx.saved_usd, "request_id": ctx.request_id}
        )
        + b"\n\n"
    )
    yield _DONE_FRAME


class ChatCompletionsEndpoint:
    """``POST /v1/chat/completions`` (JSON and SSE)."""

    def __init__(self, gateway: Gateway) -> None:
        self.gw = gateway

    async def __call__(self, scope: Scope, receive: Receive, send: Send, request_id: str) -> None:
        headers = scope["thrifty.headers"]
        principal = body = None
        try:
            principal = await self.gw.authenticate(scope["thrifty.token"])
            body = await read_body(receive, headers, self.gw.config.server.max_body_bytes)
            request = parse_chat_request(body)
            tags, priority, cache = request_options(headers)
            outcome = await self.gw.chat(
                request,
                principal,
                request_id=request_id,
                tags=tags,
                priority=priority,
                cache=cache,
            )
        except ThriftyError as exc:
            if exc.ctx is None:
                self.gw.record_rejected(request_id, "chat.completions", exc, principal, body)
            await send_error(send, exc, thrifty_headers(request_id, exc.ctx))
            return
        if isinstance(outcome, Completed):
            payload = outcome.raw or orjson.dumps(outcome.data)
            await send_json(send, 200, payload, thrifty_headers(request_id, outcome.ctx))
            return
        await send_sse(
            send,
            receive,
            thrifty_headers(request_id, outcome.ctx, stream=True),
            _sse_frames(outcome),
            sse_error_frame,
        )


class EmbeddingsEndpoint:
    """``POST /v1/embeddings``."""

    def __init__(self, gateway: Gateway) -> None:
        self.gw = gateway

    async def __call__(self, scope: Scope, receive: Receive, send: Send, request_id: str) -> None:
        headers = scope["thrifty.headers"]
        principal = body = None
        try:
            principal = await self.gw.authenticate(scope["thrifty.token"])
            body = await read_body(receive, headers, self.gw.config.server.max_body_bytes)
            request = parse_embeddings_request(body)
            tags, priority, cache = request_options(headers)
            outcome = await self.gw.embeddings(
                request, principal, request_id=request_id, tags=tags, priority=priority, cache=cache
            )
        except ThriftyError as exc:
            if exc.ctx is None:
                self.gw.record_rejected(request_id, "embeddings", exc, principal, body)
            await send_error(send, exc, thrifty_headers(request_id, exc.ctx))
            return
        payload = outcome.raw or orjson.dumps(outcome.data)
        await send_json(send, 200, payload, thrifty_headers(request_id, outcome.ctx))


class ModelsEndpoint:
    """``GET /v1/models`` and ``GET /v1/models/{id}``."""

    def __init__(self, gateway: Gateway) -> None:
        self.gw = gateway

    async def __call__(self, scope: Scope, receive: Receive, send: Send, request_id: str) -> None:
        headers = thrifty_headers(request_id, None)
        try:
            await self.gw.authenticate(scope["thrifty.token"])
        except ThriftyError as exc:
            await send_error(send, exc, headers)
            return
        models = self.gw.list_models()
        model_id = scope.get("thrifty.path_param")
        if model_id:
            for m in models:
                if m["id"] == model_id:
                    await send_json(send, 200, orjson.dumps(m), headers)
                    return
            await send_error(
                send,
                NotFoundError(
                    f"The model `{model_id}` does not exist.", param="model", code="model_not_found"
                ),
                headers,
            )
            return
        await send_json(send, 200, orjson.dumps({"object": "list", "data": models}), headers)
