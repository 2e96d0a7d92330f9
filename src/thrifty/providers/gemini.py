"""The Google Gemini API adapter (``generativelanguage.googleapis.com``).

Endpoints, under ``{base_url}/{api_version}`` (``api_version`` from the config, default
``v1beta``; a ``base_url`` that already ends in ``/v1``, ``/v1beta`` or ``/v1alpha`` is used
as it is): ``models/{model}:generateContent``, ``models/{model}:streamGenerateContent?alt=sse``,
``models/{model}:embedContent`` (one input) and ``models/{model}:batchEmbedContents`` (a list,
sent in batches of 100). The key goes in the ``x-goog-api-key`` header.

Translation is in ``gemini_request`` (OpenAI → Gemini) and ``gemini_response`` (Gemini →
OpenAI). Errors: ``{"error": {"code", "message", "status", "details"}}``; 429 or
``RESOURCE_EXHAUSTED`` → ``UpstreamRateLimitError`` (delay from ``retry-after`` or the
``RetryInfo.retryDelay`` detail); an invalid API key (``API_KEY_INVALID``, sent as a 400) is
reported as the upstream's 401 so the client is not blamed; other statuses →
``UpstreamStatusError`` (400/404 keep Google's message and are not retried; 5xx such as
``UNAVAILABLE`` are). An error inside a 200 stream → ``UpstreamStatusError``; a stream that closes
before every candidate has a ``finishReason`` → ``UpstreamConnectionError``.
"""

from __future__ import annotations

import base64
import re
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
from thrifty.providers.gemini_request import SignatureStash, WireError, to_gemini
from thrifty.providers.gemini_response import StreamTranslator, from_gemini
from thrifty.providers.http import HTTPProvider, ResponseStream, parse_retry_after
from thrifty.providers.transport import Response
from thrifty.tokens import count_text

__all__ = ["DEFAULT_API_VERSION", "GeminiProvider"]

DEFAULT_API_VERSION = "v1beta"
EMBED_BATCH = 100
_VERSIONED = re.compile(r"/v1(?:alpha|beta)?$")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)s\s*$")


def retry_delay(details: Any) -> float | None:
    """Seconds from a ``google.rpc.RetryInfo`` detail (``"retryDelay": "13s"``), if any."""
    for detail in details if isinstance(details, list) else ():
        if isinstance(detail, Mapping) and str(detail.get("@type", "")).endswith("RetryInfo"):
            match = _DURATION.match(str(detail.get("retryDelay", "")))
            if match:
                return float(match.group(1))
    return None


def _reasons(details: Any) -> set[str]:
    return {
        str(d.get("reason"))
        for d in (details if isinstance(details, list) else ())
        if isinstance(d, Mapping) and d.get("reason")
    }


def float32_base64(vector: list[float]) -> str:
    """OpenAI's base64 embedding encoding: little-endian float32."""
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")


class GeminiProvider(HTTPProvider):
    """Adapter for the Gemini API; see the module docstring."""

    def __init__(self, name: str, config: ProviderConfig, *, base_url: str | None = None) -> None:
        super().__init__(name, config, base_url=base_url)
        if config.api_key:
            self.headers["x-goog-api-key"] = config.api_key
        version = (config.api_version or DEFAULT_API_VERSION).strip("/")
        self.root = (
            self.base_url if _VERSIONED.search(self.base_url) else f"{self.base_url}/{version}"
        )
        self.signatures = SignatureStash()

    def url(self, model: str, method: str) -> str:
        path = model if model.startswith(("models/", "tunedModels/")) else f"models/{model}"
        return f"{self.root}/{path}:{method}"

    # -- errors ----------------------------------------------------------------------------
    def error_from(
        self, status: int, body: Any, headers: Mapping[str, str], deployment: Deployment
    ) -> UpstreamError:
        """The ``UpstreamError`` for a Gemini error body (already parsed) and HTTP status;
        ``status`` 0 (an error inside a 200 stream) takes the body's ``code``."""
        if isinstance(body, list) and body:
            body = body[0]  # a streamed JSON array holds the error as its only element
        err = body.get("error") if isinstance(body, Mapping) else None
        err = err if isinstance(err, Mapping) else {}
        message = str(err.get("message") or f"upstream {self.name} returned an error ({status})")
        gstatus = err.get("status")
        if status < 400 and isinstance(err.get("code"), int):
            status = err["code"]
        where = {"provider": self.name, "deployment": deployment.id}
        if status == 429 or gstatus == "RESOURCE_EXHAUSTED":
            delay = parse_retry_after(headers)
            if delay is None:
                delay = retry_delay(err.get("details"))
            return UpstreamRateLimitError(message, retry_after_s=delay, **where)
        if "API_KEY_INVALID" in _reasons(err.get("details")):
            status = 401
        if status < 400:
            status = 502
        return UpstreamStatusError(message, upstream_status=status, **where)

    def status_error(
        self, status: int, raw: bytes, headers: Mapping[str, str], deployment: Deployment
    ) -> UpstreamError:
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            body = None
        return self.error_from(status, body, headers, deployment)

    def bad_request(self, message: str, deployment: Deployment) -> UpstreamStatusError:
        """A request Gemini cannot express: a 400 that is the caller's fault."""
        return UpstreamStatusError(
            f"{message} (provider {self.name})",
            upstream_status=400,
            provider=self.name,
            deployment=deployment.id,
        )

    def _request(self, deployment: Deployment, body: dict[str, Any]) -> bytes:
        try:
            return orjson.dumps(to_gemini(body, deployment.upstream_model, self.signatures))
        except WireError as exc:
            raise self.bad_request(str(exc), deployment) from None

    # -- chat ------------------------------------------------------------------------------
    async def complete(self, deployment: Deployment, body: dict[str, Any]) -> UpstreamResponse:
        payload = self._request(deployment, body)
        url = self.url(deployment.upstream_model, "generateContent")
        data, _, headers = await self.post_json(deployment, url, payload)
        if "error" in data:
            raise self.error_from(0, data, headers, deployment)
        out = from_gemini(data, deployment.upstream_model, self.signatures)
        return UpstreamResponse(data=out, headers=headers)

    async def stream(self, deployment: Deployment, body: dict[str, Any]) -> GeminiStream:
        payload = self._request(deployment, body)
        url = self.url(deployment.upstream_model, "streamGenerateContent")
        resp = await self.open_stream(deployment, url, payload, params={"alt": "sse"})
        options = body.get("stream_options")
        usage_null = isinstance(options, Mapping) and options.get("include_usage") is True
        translator = StreamTranslator(
            deployment.upstream_model, self.signatures, usage_null=usage_null
        )
        return GeminiStream(self, deployment, resp, translator)

    # -- embeddings ------------------------------------------------------------------------
    async def embed(self, deployment: Deployment, body: dict[str, Any]) -> UpstreamResponse:
        raw_input = body.get("input")
        texts = [raw_input] if isinstance(raw_input, str) else raw_input
        if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
            raise self.bad_request(
                "Gemini embeddings take text input: a string or a non-empty list of strings",
                deployment,
            )
        model = deployment.upstream_model
        full = model if model.startswith(("models/", "tunedModels/")) else f"models/{model}"
        extra: dict[str, Any] = {}
        if isinstance(body.get("dimensions"), int):
            extra["outputDimensionality"] = body["dimensions"]
        vectors: list[list[float]] = []
        headers: dict[str, str] = {}
        if isinstance(raw_input, str):
            request = {"model": full, "content": {"parts": [{"text": raw_input}]}, **extra}
            url = self.url(model, "embedContent")
            data, _, headers = await self.post_json(deployment, url, orjson.dumps(request))
            vectors.append(self._values(data.get("embedding"), deployment))
        else:
            url = self.url(model, "batchEmbedContents")
            for start in range(0, len(texts), EMBED_BATCH):
                batch = texts[start : start + EMBED_BATCH]
                requests = [
                    {"model": full, "content": {"parts": [{"text": t}]}, **extra} for t in batch
                ]
                payload = orjson.dumps({"requests": requests})
                data, _, headers = await self.post_json(deployment, url, payload)
                got = data.get("embeddings")
                if not isinstance(got, list) or len(got) != len(batch):
                    raise self.protocol_error(
                        "batchEmbedContents returned a wrong count", deployment
                    )
                vectors.extend(self._values(e, deployment) for e in got)
        as_base64 = body.get("encoding_format") == "base64"
        # Gemini reports no token counts for embeddings: they are estimated locally.
        tokens = sum(count_text(t, model) for t in texts)
        out = {
            "object": "list",
            "data": [
                {
                    "object": "embedding",
                    "index": i,
                    "embedding": float32_base64(v) if as_base64 else v,
                }
                for i, v in enumerate(vectors)
            ],
            "model": model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
        return UpstreamResponse(data=out, headers=headers)

    def _values(self, embedding: Any, deployment: Deployment) -> list[float]:
        values = embedding.get("values") if isinstance(embedding, Mapping) else None
        if not isinstance(values, list):
            raise self.protocol_error("an embedding has no values", deployment)
        return [float(x) for x in values]


class GeminiStream(ResponseStream["GeminiProvider"]):
    """An open ``streamGenerateContent?alt=sse`` response, yielding canonical chunks.

    Events are ``data: <json>`` lines ended by a blank line (Google frames with ``\\r\\n``); the
    stream has no end marker, so it is complete when the connection closes after every
    candidate sent its ``finishReason``. The last event is the usage-only chunk.
    """

    def __init__(
        self,
        provider: GeminiProvider,
        deployment: Deployment,
        resp: Response,
        translator: StreamTranslator,
    ) -> None:
        super().__init__(provider, deployment, resp)
        self._translator = translator

    def _decode(self, payload: bytes) -> list[dict[str, Any]]:
        data = self._json_object(payload)
        if "error" in data:
            raise self._provider.error_from(0, data, self.headers, self._deployment)
        return self._translator.feed(data)

    async def _events(self) -> AsyncIterator[StreamEvent]:
        p, dep = self._provider, self._deployment
        data_lines: list[bytes] = []
        bare: list[bytes] = []
        async for line in p.iter_lines(self._resp, dep):
            if not line:
                if data_lines:
                    for chunk in self._decode(b"\n".join(data_lines)):
                        yield StreamEvent(data=chunk)
                    data_lines = []
            elif line.startswith(b"data:"):
                value = line[5:]
                data_lines.append(value[1:] if value.startswith(b" ") else value)
            elif not line.startswith((b":", b"event:", b"id:", b"retry:")):
                bare.append(line)  # a bare JSON error object, sent without `data:`
        if data_lines:
            for chunk in self._decode(b"\n".join(data_lines)):
                yield StreamEvent(data=chunk)
        if bare:
            try:
                body = orjson.loads(b"\n".join(bare))
            except orjson.JSONDecodeError:
                raise p.protocol_error("the stream holds a non-SSE line", dep) from None
            raise p.error_from(0, body, self.headers, dep)
        if not self._translator.complete:
            raise UpstreamConnectionError(
                f"upstream {p.name} ended the stream before its finishReason",
                provider=p.name,
                deployment=dep.id,
            )
        usage = self._translator.usage_chunk()
        if usage is not None:
            yield StreamEvent(data=usage)
