"""Anthropic-compatible endpoints: ``POST /v1/messages`` (JSON and SSE) and
``POST /v1/messages/count_tokens``. Requests run through the same pipeline as OpenAI ones;
errors use Anthropic's shape."""

from __future__ import annotations

from collections.abc import AsyncIterator

import orjson

from thrifty.errors import ThriftyError
from thrifty.gateway import Gateway
from thrifty.pipeline.outcome import Completed
from thrifty.pipeline.streaming import ChatStream
from thrifty.server.http import (
    RawHeaders,
    Receive,
    Scope,
    Send,
    error_headers,
    read_body,
    send_json,
    send_sse,
)
from thrifty.server.openai_routes import request_options, thrifty_headers
from thrifty.tokens import count_request
from thrifty.wire import anthropic
from thrifty.wire.anthropic_stream import AnthropicStreamEncoder, frame
from thrifty.wire.openai import chat_request_from_body, load_json_object


async def send_anthropic_error(send: Send, exc: ThriftyError, headers: RawHeaders) -> None:
    body = orjson.dumps(anthropic.error_body(exc))
    await send_json(send, exc.status, body, [*headers, *error_headers(exc)])


def _error_frame(exc: ThriftyError) -> bytes:
    return frame("error", anthropic.error_body(exc))


async def _frames(stream: ChatStream, model: str) -> AsyncIterator[bytes]:
    encoder = AnthropicStreamEncoder(model)
    for f in encoder.start():
        yield f
    async for event in stream:
        for f in encoder.chunk(event.data):
            yield f
    for f in encoder.finish(cost_usd=stream.ctx.cost_usd, saved_usd=stream.ctx.saved_usd):
        yield f


class MessagesEndpoint:
    def __init__(self, gateway: Gateway) -> None:
        self.gw = gateway

    async def __call__(self, scope: Scope, receive: Receive, send: Send, request_id: str) -> None:
        headers = scope["thrifty.headers"]
        principal = raw = None
        try:
            principal = await self.gw.authenticate(scope["thrifty.token"])
            raw = await read_body(receive, headers, self.gw.config.server.max_body_bytes)
            request = chat_request_from_body(anthropic.to_openai(load_json_object(raw)))
            tags, priority, cache = request_options(headers)
            outcome = await self.gw.chat(
                request,
                principal,
                request_id=request_id,
                tags=tags,
                priority=priority,
                cache=cache,
                endpoint="messages",
            )
        except ThriftyError as exc:
            if exc.ctx is None:
                self.gw.record_rejected(request_id, "messages", exc, principal, raw)
            await send_anthropic_error(send, exc, thrifty_headers(request_id, exc.ctx))
            return
        ctx = outcome.ctx
        model = ctx.served_model or ctx.requested_model
        if isinstance(outcome, Completed):
            body = orjson.dumps(anthropic.from_openai(outcome.data, model))
            await send_json(send, 200, body, thrifty_headers(request_id, ctx))
            return
        await send_sse(
            send,
            receive,
            thrifty_headers(request_id, ctx, stream=True),
            _frames(outcome, model),
            _error_frame,
        )


class CountTokensEndpoint:
    """Exact from the provider when its adapter can count (Anthropic), else counted locally
    (an estimate for Claude); ``x-thrifty-token-count`` says which."""

    def __init__(self, gateway: Gateway) -> None:
        self.gw = gateway

    async def __call__(self, scope: Scope, receive: Receive, send: Send, request_id: str) -> None:
        headers = scope["thrifty.headers"]
        base = [(b"x-thrifty-request-id", request_id.encode())]
        try:
            await self.gw.authenticate(scope["thrifty.token"])
            raw = await read_body(receive, headers, self.gw.config.server.max_body_bytes)
            body = load_json_object(raw)
            canonical = anthropic.to_openai({"max_tokens": 1, **body, "stream": False})
            entry = self.gw.registry.resolve(canonical["model"])
            deployment = entry.deployments[0]
            provider = self.gw.registry.provider(deployment)
            counter = getattr(provider, "count_tokens", None)
            if counter is not None:
                tokens, source = await counter(deployment, canonical), "provider"
            else:
                counted = count_request({**canonical, "model": deployment.upstream_model})
                tokens, source = counted.tokens, counted.source
        except ThriftyError as exc:
            await send_anthropic_error(send, exc, base)
            return
        payload = orjson.dumps({"input_tokens": tokens})
        await send_json(send, 200, payload, [*base, (b"x-thrifty-token-count", source.encode())])
