"""The native Anthropic Messages adapter (``kind: anthropic``).

Requests are translated from the canonical OpenAI body by ``anthropic_wire.to_anthropic`` and
sent to ``{base_url}/v1/messages`` (a ``base_url`` already ending in ``/v1`` is honoured) with
``x-api-key`` and ``anthropic-version`` (``config.api_version``, default ``2023-06-01``; a
``config.headers`` entry for it wins). Under ``2026-10-21`` and later, ``temperature`` /
``top_p`` / ``top_k`` are dropped, since that version rejects them.

Responses become canonical ``chat.completion`` objects (``anthropic_response.from_anthropic``);
streams (Anthropic's named SSE events) become canonical ``chat.completion.chunk`` dicts: the role
chunk, content / tool-call deltas (OpenAI ``index`` counts tool calls only, not Anthropic's block
index), the finish chunk, then ALWAYS a usage-only chunk (``choices: []``) with the canonical
usage (the gateway strips it when the client did not ask). ``event: error`` mid-stream raises
``UpstreamStatusError``; a stream that ends without ``message_stop`` raises
``UpstreamConnectionError``.

Errors: Anthropic's ``{"type": "error", "error": {"type", "message"}}`` bodies; 429 →
``UpstreamRateLimitError`` (``retry-after``; a spend-limit 429 is not retryable); 529
``overloaded_error`` → retryable ``UpstreamStatusError`` (``upstream_status=529``, a 502 to the
client). ``max_tokens`` defaults to ``default_max_tokens`` (4096) when the body has none.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from typing import Any

import orjson

from thrifty.config import ProviderConfig
from thrifty.errors import (
    UpstreamConnectionError,
    UpstreamError,
    UpstreamRateLimitError,
    UpstreamStatusError,
)
from thrifty.providers.anthropic_response import canonical_usage, finish_reason, from_anthropic
from thrifty.providers.anthropic_wire import (
    DEFAULT_MAX_TOKENS,
    DEFAULT_VERSION,
    WireError,
    count_tokens_body,
    to_anthropic,
)
from thrifty.providers.base import Deployment, StreamEvent, UpstreamResponse
from thrifty.providers.http import HTTPProvider, ResponseStream, parse_retry_after
from thrifty.providers.transport import Response

__all__ = ["AnthropicProvider", "StreamTranslator"]

# Anthropic error type → the HTTP status it comes with (used for mid-stream `event: error`).
ERROR_STATUS: dict[str, int] = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}


class AnthropicProvider(HTTPProvider):
    """Adapter for the Anthropic Messages API; see the module docstring."""

    default_max_tokens: int = DEFAULT_MAX_TOKENS

    def __init__(
        self,
        name: str,
        config: ProviderConfig,
        *,
        base_url: str | None = None,
        default_max_tokens: int | None = None,
    ) -> None:
        super().__init__(name, config, base_url=base_url)
        lowered = {k.lower(): v for k, v in self.headers.items()}
        self.version = lowered.get("anthropic-version") or config.api_version or DEFAULT_VERSION
        if "anthropic-version" not in lowered:
            self.headers["anthropic-version"] = self.version
        if config.api_key and "x-api-key" not in lowered and "authorization" not in lowered:
            self.headers["x-api-key"] = config.api_key
        if default_max_tokens is not None:
            self.default_max_tokens = default_max_tokens
        root = self.base_url if self.base_url.endswith("/v1") else f"{self.base_url}/v1"
        self.messages_url = f"{root}/messages"
        self.count_tokens_url = f"{root}/messages/count_tokens"

    # -- translation -----------------------------------------------------------------------

    def _where(self, deployment: Deployment) -> dict[str, Any]:
        return {"provider": self.name, "deployment": deployment.id}

    def request_body(
        self, deployment: Deployment, body: Mapping[str, Any], *, stream: bool
    ) -> dict[str, Any]:
        """The Anthropic body for a canonical OpenAI body; a ``WireError`` becomes a 400."""
        try:
            out = to_anthropic(
                {**body, "stream": stream},
                deployment.upstream_model,
                version=self.version,
                default_max_tokens=self.default_max_tokens,
            )
        except WireError as exc:
            raise UpstreamStatusError(
                str(exc),
                upstream_status=400,
                upstream_type="invalid_request_error",
                **self._where(deployment),
            ) from None
        return out

    # -- errors ----------------------------------------------------------------------------

    def status_error(
        self, status: int, raw: bytes, headers: Mapping[str, str], deployment: Deployment
    ) -> UpstreamError:
        etype, message, code = _error_fields(raw)
        message = message or f"upstream {self.name} returned HTTP {status}"
        if status == 429:
            err: UpstreamError = UpstreamRateLimitError(
                message, retry_after_s=parse_retry_after(headers), **self._where(deployment)
            )
            if code == "enforced_spend_limit_reached":
                err.retryable = False
            return err
        return UpstreamStatusError(
            message, upstream_status=status, upstream_type=etype, **self._where(deployment)
        )

    def stream_error(self, data: Any, deployment: Deployment) -> UpstreamError:
        """The error for a mid-stream ``event: error`` (its status comes from its type)."""
        etype, message, _ = _error_fields(orjson.dumps(data))
        status = ERROR_STATUS.get(etype or "", 500)
        message = message or "upstream stream error"
        if status == 429:
            return UpstreamRateLimitError(message, **self._where(deployment))
        return UpstreamStatusError(
            message, upstream_status=status, upstream_type=etype, **self._where(deployment)
        )

    # -- Provider --------------------------------------------------------------------------

    async def complete(self, deployment: Deployment, body: dict[str, Any]) -> UpstreamResponse:
        payload = orjson.dumps(self.request_body(deployment, body, stream=False))
        data, _, headers = await self.post_json(deployment, self.messages_url, payload)
        if data.get("type") != "message" or not isinstance(data.get("content"), list):
            raise self.protocol_error("the response is not an Anthropic message", deployment)
        return UpstreamResponse(data=from_anthropic(data), raw=None, headers=headers)

    async def stream(self, deployment: Deployment, body: dict[str, Any]) -> AnthropicStream:
        anthropic_body = self.request_body(deployment, body, stream=True)
        options = body.get("stream_options")
        include_usage = isinstance(options, dict) and options.get("include_usage") is True
        resp = await self.open_stream(deployment, self.messages_url, orjson.dumps(anthropic_body))
        return AnthropicStream(self, deployment, resp, include_usage)

    async def embed(self, deployment: Deployment, body: dict[str, Any]) -> UpstreamResponse:
        raise UpstreamStatusError(
            "Anthropic has no embeddings API",
            upstream_status=400,
            upstream_type="invalid_request_error",
            **self._where(deployment),
        )

    async def count_tokens(
        self, deployment: Deployment, body: dict[str, Any], *, native: bool = False
    ) -> int:
        """Input tokens of a request, from ``/v1/messages/count_tokens``.

        ``body`` is a canonical OpenAI chat body (translated like ``complete`` does), or with
        ``native=True`` an Anthropic Messages body; either way ``model`` becomes the
        deployment's and fields count_tokens rejects (``max_tokens``, ``stream``...) are dropped.
        """
        if native:
            anthropic_body = {**body, "model": deployment.upstream_model}
        else:
            anthropic_body = self.request_body(deployment, body, stream=False)
        payload = orjson.dumps(count_tokens_body(anthropic_body))
        data, _, _ = await self.post_json(deployment, self.count_tokens_url, payload)
        tokens = data.get("input_tokens")
        if not isinstance(tokens, int) or isinstance(tokens, bool):
            raise self.protocol_error("count_tokens returned no input_tokens", deployment)
        return tokens


def _error_fields(raw: bytes) -> tuple[str | None, str | None, str | None]:
    """(type, message, details.error_code) of an Anthropic error body."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None, None, None
    err = data.get("error") if isinstance(data, dict) else None
    if not isinstance(err, dict):
        return None, None, None
    details = err.get("details")
    code = details.get("error_code") if isinstance(details, dict) else None
    etype, message = err.get("type"), err.get("message")
    return (
        etype if isinstance(etype, str) else None,
        str(message) if message else None,
        code if isinstance(code, str) else None,
    )


class StreamTranslator:
    """Anthropic stream events → canonical OpenAI chunks (pure; one per stream).

    ``feed(event, data)`` returns the chunks for one event. ``done`` turns true at
    ``message_stop``. Input usage comes from ``message_start`` and is overridden by any
    cumulative counts in ``message_delta``; output usage comes from ``message_delta``.
    """

    def __init__(self, include_usage: bool = False, created: int | None = None) -> None:
        self.include_usage = include_usage
        self.created = created if created is not None else int(time.time())
        self.id = ""
        self.model = ""
        self.usage: dict[str, Any] = {}
        self.finish: str | None = None
        self.done = False
        self._tools: dict[int, int] = {}  # Anthropic block index -> OpenAI tool-call index
        self._args_seen: set[int] = set()
        self._start_input: dict[int, Any] = {}

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        chunk: dict[str, Any] = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": None,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
        if self.include_usage:
            chunk["usage"] = None
        return chunk

    def _tool_delta(self, tool_index: int, fields: dict[str, Any]) -> dict[str, Any]:
        return self._chunk({"tool_calls": [{"index": tool_index, **fields}]})

    def feed(self, event: str, data: dict[str, Any]) -> list[dict[str, Any]]:
        if event == "message_start":
            message = data.get("message") or {}
            self.id = str(message.get("id") or "")
            self.model = str(message.get("model") or "")
            self.usage.update(message.get("usage") or {})
            return [self._chunk({"role": "assistant", "content": "", "refusal": None})]
        if event == "content_block_start":
            block = data.get("content_block") or {}
            index = data.get("index")
            if block.get("type") == "tool_use" and isinstance(index, int):
                tool_index = self._tools[index] = len(self._tools)
                self._start_input[index] = block.get("input")
                fields = {
                    "id": block.get("id"),
                    "type": "function",
                    "function": {"name": block.get("name"), "arguments": ""},
                }
                return [self._tool_delta(tool_index, fields)]
            if block.get("type") == "text" and block.get("text"):
                return [self._chunk({"content": block["text"]})]
            return []
        if event == "content_block_delta":
            delta = data.get("delta") or {}
            kind = delta.get("type")
            if kind == "text_delta" and delta.get("text"):
                return [self._chunk({"content": delta["text"]})]
            if kind == "input_json_delta" and data.get("index") in self._tools:
                self._args_seen.add(data["index"])
                piece = delta.get("partial_json")
                if piece:
                    tool_index = self._tools[data["index"]]
                    return [self._tool_delta(tool_index, {"function": {"arguments": piece}})]
            if kind == "thinking_delta" and delta.get("thinking"):
                return [self._chunk({"reasoning_content": delta["thinking"]})]
            return []
        if event == "content_block_stop":
            index = data.get("index")
            start_input = self._start_input.get(index) if isinstance(index, int) else None
            if index in self._tools and index not in self._args_seen and start_input:
                # The whole input arrived in content_block_start: send it as one fragment.
                arguments = orjson.dumps(start_input).decode()
                return [
                    self._tool_delta(self._tools[index], {"function": {"arguments": arguments}})
                ]
            return []
        if event == "message_delta":
            self.usage.update({k: v for k, v in (data.get("usage") or {}).items() if v is not None})
            self.finish = finish_reason((data.get("delta") or {}).get("stop_reason"))
            return [self._chunk({}, self.finish)]
        if event == "message_stop":
            self.done = True
            chunks = [] if self.finish is not None else [self._chunk({}, "stop")]
            final = self._chunk({})
            final["choices"] = []
            final["usage"] = canonical_usage(self.usage)
            return [*chunks, final]
        return []  # ping and event types this adapter does not know


async def _sse_events(lines: AsyncIterator[bytes]) -> AsyncGenerator[tuple[str, bytes], None]:
    """(event name, data bytes) from SSE lines; the name defaults to ``message``."""
    name: str | None = None
    data: list[bytes] = []
    async for line in lines:
        if not line:
            if data:
                yield name or "message", b"\n".join(data)
            name, data = None, []
        elif line.startswith(b":"):
            continue
        elif line.startswith(b"event:"):
            name = line[6:].strip().decode("utf-8", "replace")
        elif line.startswith(b"data:"):
            data.append(line[5:].lstrip(b" "))
    if data:
        yield name or "message", b"\n".join(data)


class AnthropicStream(ResponseStream["AnthropicProvider"]):
    """An open Anthropic stream yielding canonical chunks (see ``StreamTranslator``)."""

    def __init__(
        self,
        provider: AnthropicProvider,
        deployment: Deployment,
        resp: Response,
        include_usage: bool,
    ) -> None:
        super().__init__(provider, deployment, resp)
        self._include_usage = include_usage

    async def _events(self) -> AsyncIterator[StreamEvent]:
        p, dep = self._provider, self._deployment
        translator = StreamTranslator(self._include_usage)
        lines = p.iter_lines(self._resp, dep)
        events = _sse_events(lines)
        try:
            async for name, payload in events:
                data = self._json_object(payload)
                if name == "message":  # no `event:` line: fall back on the payload's type
                    name = str(data.get("type") or "message")
                if name == "error":
                    raise p.stream_error(data, dep)
                for chunk in translator.feed(name, data):
                    yield StreamEvent(data=chunk, raw=None)
                if translator.done:
                    self._ended()
                    return
        finally:
            await events.aclose()
            close = getattr(lines, "aclose", None)
            if close is not None:
                await close()
        raise UpstreamConnectionError(
            f"upstream {p.name} ended the stream before message_stop",
            provider=p.name,
            deployment=dep.id,
        )
