"""The Cohere adapter (Chat v2 and Embed v2, ``https://api.cohere.com``).

``POST {base_url}/v2/chat`` (JSON, or SSE with ``"stream": true``) and ``POST
{base_url}/v2/embed`` (sent in batches of 96 texts); ``Authorization: Bearer <api_key>``.
Translation is in ``cohere_wire`` (requests, responses) and ``cohere_stream`` (events).

Errors: Cohere's body is ``{"id", "message"}``. 429 → ``UpstreamRateLimitError`` (with
``retry-after`` when sent); 498 (invalid token) is reported as the upstream's 401 (the gateway's
key is wrong, not the client's request); 400/404/422 keep Cohere's message and are not retried;
5xx are. ``finish_reason`` ``ERROR`` → ``UpstreamStatusError`` (500, retryable), ``TIMEOUT`` →
``UpstreamStatusError`` (504), in a response or at the end of a stream; a stream that closes
before ``message-end`` → ``UpstreamConnectionError``.

Embeddings: ``input_type`` (required by Cohere's v3+ models) comes from the body's
``input_type`` extension, default ``search_document``; ``dimensions`` → ``output_dimension``.
``usage.prompt_tokens`` is ``meta.billed_units.input_tokens``.
"""

from __future__ import annotations

import base64
import struct
from collections.abc import AsyncIterator, Mapping
from typing import Any

import orjson

from thrifty.config import ProviderConfig
from thrifty.errors import (
    UpstreamConnectionError,
    UpstreamError,
    UpstreamRateLimitError,
    UpstreamStatusError,
)
from thrifty.providers.base import Deployment, StreamEvent, UpstreamResponse
from thrifty.providers.cohere_stream import StreamTranslator
from thrifty.providers.cohere_wire import CohereFailure, WireError, from_cohere, to_cohere
from thrifty.providers.http import HTTPProvider, ResponseStream, error_message, parse_retry_after
from thrifty.providers.transport import Response

__all__ = ["CohereProvider"]

EMBED_BATCH = 96
DEFAULT_INPUT_TYPE = "search_document"
_DONE = b"[DONE]"


class CohereProvider(HTTPProvider):
    """Adapter for Cohere's v2 API; see the module docstring."""

    def __init__(self, name: str, config: ProviderConfig, *, base_url: str | None = None) -> None:
        super().__init__(name, config, base_url=base_url)
        if config.api_key:
            self.headers["authorization"] = f"Bearer {config.api_key}"
        root = self.base_url
        for suffix in ("/v2", "/v1"):
            root = root.removesuffix(suffix)
        self.root = root

    # -- errors ----------------------------------------------------------------------------
    def status_error(
        self, status: int, raw: bytes, headers: Mapping[str, str], deployment: Deployment
    ) -> UpstreamError:
        message = error_message(raw)[0] or f"upstream {self.name} returned HTTP {status}"
        where = {"provider": self.name, "deployment": deployment.id}
        if status == 429:
            return UpstreamRateLimitError(
                message, retry_after_s=parse_retry_after(headers), **where
            )
        if status == 498:
            status = 401
        return UpstreamStatusError(message, upstream_status=status, **where)

    def failure(self, exc: CohereFailure, deployment: Deployment) -> UpstreamStatusError:
        """The error for ``finish_reason`` ``ERROR`` / ``TIMEOUT``."""
        return UpstreamStatusError(
            f"upstream {self.name} failed the generation ({exc.reason}): {exc.message}",
            upstream_status=504 if exc.reason == "TIMEOUT" else 500,
            provider=self.name,
            deployment=deployment.id,
        )

    def bad_request(self, message: str, deployment: Deployment) -> UpstreamStatusError:
        """A request Cohere cannot express: a 400 that is the caller's fault."""
        return UpstreamStatusError(
            f"{message} (provider {self.name})",
            upstream_status=400,
            provider=self.name,
            deployment=deployment.id,
        )

    def _payload(self, deployment: Deployment, body: dict[str, Any], stream: bool) -> bytes:
        try:
            request = to_cohere(body, deployment.upstream_model)
        except WireError as exc:
            raise self.bad_request(str(exc), deployment) from None
        request["stream"] = stream
        return orjson.dumps(request)

    # -- chat ------------------------------------------------------------------------------
    async def complete(self, deployment: Deployment, body: dict[str, Any]) -> UpstreamResponse:
        payload = self._payload(deployment, body, False)
        data, _, headers = await self.post_json(deployment, f"{self.root}/v2/chat", payload)
        try:
            out = from_cohere(data, deployment.upstream_model)
        except CohereFailure as exc:
            raise self.failure(exc, deployment) from None
        return UpstreamResponse(data=out, headers=headers)

    async def stream(self, deployment: Deployment, body: dict[str, Any]) -> CohereStream:
        payload = self._payload(deployment, body, True)
        resp = await self.open_stream(deployment, f"{self.root}/v2/chat", payload)
        options = body.get("stream_options")
        usage_null = isinstance(options, Mapping) and options.get("include_usage") is True
        translator = StreamTranslator(deployment.upstream_model, usage_null=usage_null)
        return CohereStream(self, deployment, resp, translator)

    # -- embeddings ------------------------------------------------------------------------
    async def embed(self, deployment: Deployment, body: dict[str, Any]) -> UpstreamResponse:
        raw_input = body.get("input")
        texts = [raw_input] if isinstance(raw_input, str) else raw_input
        if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
            raise self.bad_request(
                "Cohere embeddings take text input: a string or a non-empty list of strings",
                deployment,
            )
        request: dict[str, Any] = {
            "model": deployment.upstream_model,
            "input_type": body.get("input_type") or DEFAULT_INPUT_TYPE,
            "embedding_types": ["float"],
        }
        if isinstance(body.get("dimensions"), int):
            request["output_dimension"] = body["dimensions"]
        if body.get("truncate") in ("NONE", "START", "END"):
            request["truncate"] = body["truncate"]
        vectors: list[list[float]] = []
        tokens = 0
        headers: dict[str, str] = {}
        for start in range(0, len(texts), EMBED_BATCH):
            batch = texts[start : start + EMBED_BATCH]
            payload = orjson.dumps({**request, "texts": batch})
            data, _, headers = await self.post_json(deployment, f"{self.root}/v2/embed", payload)
            embeddings = data.get("embeddings")
            floats = embeddings.get("float") if isinstance(embeddings, Mapping) else embeddings
            if not isinstance(floats, list) or len(floats) != len(batch):
                raise self.protocol_error("the embed response has a wrong count", deployment)
            vectors.extend([float(x) for x in v] for v in floats)
            billed = ((data.get("meta") or {}).get("billed_units") or {}).get("input_tokens")
            tokens += int(billed) if isinstance(billed, int | float) else 0
        as_base64 = body.get("encoding_format") == "base64"
        out = {
            "object": "list",
            "data": [
                {
                    "object": "embedding",
                    "index": i,
                    "embedding": _b64(v) if as_base64 else v,
                }
                for i, v in enumerate(vectors)
            ],
            "model": deployment.upstream_model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
        return UpstreamResponse(data=out, headers=headers)


def _b64(vector: list[float]) -> str:
    """OpenAI's base64 embedding encoding: little-endian float32."""
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")


class CohereStream(ResponseStream["CohereProvider"]):
    """An open ``/v2/chat`` SSE response, yielding canonical chunks until ``message-end``."""

    def __init__(
        self,
        provider: CohereProvider,
        deployment: Deployment,
        resp: Response,
        translator: StreamTranslator,
    ) -> None:
        super().__init__(provider, deployment, resp)
        self._translator = translator

    def _decode(self, payload: bytes) -> list[dict[str, Any]]:
        p, dep = self._provider, self._deployment
        event = self._json_object(payload)
        if "type" not in event and event.get("message"):
            raise UpstreamStatusError(
                str(event["message"]), upstream_status=500, provider=p.name, deployment=dep.id
            )
        try:
            return self._translator.feed(event)
        except CohereFailure as exc:
            raise p.failure(exc, dep) from None

    async def _events(self) -> AsyncIterator[StreamEvent]:
        p, dep, tr = self._provider, self._deployment, self._translator
        data: list[bytes] = []
        lines = p.iter_lines(self._resp, dep)
        try:
            async for line in lines:
                if line.startswith(b"data:"):
                    value = line[5:]
                    data.append(value[1:] if value.startswith(b" ") else value)
                    continue
                if line or not data:
                    continue  # `event:` lines, comments, stray blank lines
                payload, data = b"\n".join(data), []
                if payload.strip() == _DONE:
                    self._ended()
                    break
                if payload.strip():
                    for chunk in self._decode(payload):
                        yield StreamEvent(data=chunk)
                if tr.done:
                    self._ended()
                    break
            else:
                if data and data != [_DONE]:
                    for chunk in self._decode(b"\n".join(data)):
                        yield StreamEvent(data=chunk)
        finally:
            close = getattr(lines, "aclose", None)
            if close is not None:
                await close()
        if not tr.done:
            raise UpstreamConnectionError(
                f"upstream {p.name} ended the stream before message-end",
                provider=p.name,
                deployment=dep.id,
            )
        usage = tr.usage_chunk()
        if usage is not None:
            yield StreamEvent(data=usage)
