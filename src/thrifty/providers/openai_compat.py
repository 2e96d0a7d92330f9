"""The OpenAI-compatible adapter: OpenAI, Azure OpenAI, vLLM, Ollama, TGI, Groq, Together, and
anything else that speaks ``/v1/chat/completions``.

One ``aiohttp.ClientSession`` (a pooled connector) per upstream. Timeouts come from config:
``connect_s`` (TCP/TLS connect), ``first_byte_s`` (until the response headers), ``total_s``
(a whole non-streaming call) and ``stream_idle_s`` (the longest gap between stream lines).
Bodies are forwarded as they came, with only ``model`` rewritten to the upstream's id.
"""

from __future__ import annotations

import asyncio
import time
from email.utils import parsedate_to_datetime
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson

from thrifty.config import ProviderConfig
from thrifty.errors import (
    UpstreamConnectionError,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamRateLimitError,
    UpstreamStatusError,
    UpstreamTimeoutError,
)
from thrifty.providers.base import Deployment, StreamEvent, UpstreamResponse

_DONE = b"[DONE]"


def parse_retry_after(headers: Any) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``retry-after`` (seconds); None if absent."""
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value:
        try:
            return max(0.0, float(value))
        except ValueError:
            pass
        try:  # an HTTP date
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        return max(0.0, when.timestamp() - time.time())
    return None


class OpenAICompatProvider:
    """Adapter for upstreams that speak the OpenAI wire format."""

    def __init__(self, name: str, config: ProviderConfig, *, base_url: str | None = None) -> None:
        self.name = name
        self.config = config
        self.base_url = (base_url or config.resolved_base_url() or "").rstrip("/")
        self._session: aiohttp.ClientSession | None = None
        headers = {"content-type": "application/json", **config.headers}
        if config.api_key:
            if config.kind == "azure":
                headers["api-key"] = config.api_key
            else:
                headers["authorization"] = f"Bearer {config.api_key}"
        self._headers = headers
        self._params: dict[str, str] | None = None
        if config.kind == "azure" and config.api_version:
            self._params = {"api-version": config.api_version}
        t = config.timeouts
        self._first_byte_s = t.first_byte_s
        self._total_s = t.total_s
        self._idle_s = t.stream_idle_s
        self._connect_timeout = aiohttp.ClientTimeout(
            total=None, connect=t.connect_s, sock_connect=t.connect_s
        )

    async def open(self) -> None:
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=self.config.max_connections, ttl_dns_cache=300, keepalive_timeout=30
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=self._connect_timeout,
                headers=self._headers,
                skip_auto_headers=("User-Agent",),
                auto_decompress=True,
            )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _url(self, deployment: Deployment, path: str) -> str:
        if self.config.kind == "azure":
            return f"{self.base_url}/openai/deployments/{deployment.upstream_model}/{path}"
        return f"{self.base_url}/{path}"

    def _error(self, exc: BaseException, deployment: Deployment, stage: str) -> UpstreamError:
        where = {"provider": self.name, "deployment": deployment.id}
        if isinstance(exc, UpstreamError):
            return exc
        if isinstance(exc, TimeoutError | asyncio.TimeoutError | aiohttp.ServerTimeoutError):
            return UpstreamTimeoutError(f"upstream {self.name} timed out ({stage})", **where)
        if isinstance(exc, aiohttp.ClientPayloadError | aiohttp.ServerDisconnectedError):
            return UpstreamConnectionError(
                f"upstream {self.name} closed the connection ({stage})", **where
            )
        if isinstance(exc, aiohttp.ClientError | OSError):
            return UpstreamConnectionError(
                f"cannot reach upstream {self.name} ({stage}): {exc.__class__.__name__}", **where
            )
        return UpstreamProtocolError(f"upstream {self.name} failed ({stage}): {exc!r}", **where)

    async def _status_error(
        self, resp: aiohttp.ClientResponse, deployment: Deployment
    ) -> UpstreamError:
        try:
            raw = await resp.read()
        except aiohttp.ClientError:
            raw = b""
        message, etype = f"upstream {self.name} returned HTTP {resp.status}", None
        try:
            err = orjson.loads(raw).get("error")
            if isinstance(err, dict):
                message = str(err.get("message") or message)
                etype = err.get("type")
            elif isinstance(err, str):
                message = err
        except (orjson.JSONDecodeError, AttributeError):
            pass
        where = {"provider": self.name, "deployment": deployment.id}
        if resp.status == 429:
            return UpstreamRateLimitError(
                message, retry_after_s=parse_retry_after(resp.headers), **where
            )
        return UpstreamStatusError(
            message, upstream_status=resp.status, upstream_type=etype, **where
        )

    async def _post_json(
        self, deployment: Deployment, path: str, body: dict[str, Any]
    ) -> UpstreamResponse:
        assert self._session is not None, "provider not opened"
        payload = orjson.dumps({**body, "model": deployment.upstream_model})
        stage = "first byte"
        try:
            async with asyncio.timeout(self._first_byte_s) as deadline:
                async with self._session.post(
                    self._url(deployment, path), data=payload, params=self._params
                ) as resp:
                    stage = "body"
                    loop = asyncio.get_running_loop()
                    deadline.reschedule(loop.time() + self._total_s)
                    if resp.status >= 400:
                        raise await self._status_error(resp, deployment)
                    raw = await resp.read()
                    headers = dict(resp.headers)
        except Exception as exc:
            raise self._error(exc, deployment, stage) from exc
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise UpstreamProtocolError(
                f"upstream {self.name} returned a body that is not JSON",
                provider=self.name,
                deployment=deployment.id,
            ) from None
        if not isinstance(data, dict):
            raise UpstreamProtocolError(
                f"upstream {self.name} returned JSON that is not an object",
                provider=self.name,
                deployment=deployment.id,
            )
        return UpstreamResponse(data=data, raw=raw, headers=headers)

    async def complete(self, deployment: Deployment, body: dict[str, Any]) -> UpstreamResponse:
        return await self._post_json(deployment, "chat/completions", body)

    async def embed(self, deployment: Deployment, body: dict[str, Any]) -> UpstreamResponse:
        return await self._post_json(deployment, "embeddings", body)

    async def stream(self, deployment: Deployment, body: dict[str, Any]) -> _SSEStream:
        assert self._session is not None, "provider not opened"
        payload = orjson.dumps({**body, "model": deployment.upstream_model})
        try:
            async with asyncio.timeout(self._first_byte_s):
                resp = await self._session.post(
                    self._url(deployment, "chat/completions"), data=payload, params=self._params
                )
                if resp.status >= 400:
                    try:
                        raise await self._status_error(resp, deployment)
                    finally:
                        resp.release()
        except Exception as exc:
            raise self._error(exc, deployment, "first byte") from exc
        return _SSEStream(self, deployment, resp)


class _SSEStream:
    """OpenAI SSE (``data: {...}`` lines, ``data: [DONE]`` at the end) read line by line."""

    def __init__(
        self, provider: OpenAICompatProvider, deployment: Deployment, resp: aiohttp.ClientResponse
    ) -> None:
        self._provider = provider
        self._deployment = deployment
        self._resp = resp
        self.headers = dict(resp.headers)

    async def aclose(self) -> None:
        self._resp.close()

    def __aiter__(self) -> AsyncIterator[StreamEvent]:
        return self._events()

    async def _events(self) -> AsyncIterator[StreamEvent]:
        content = self._resp.content
        idle = self._provider._idle_s
        loop = asyncio.get_running_loop()
        done = False
        try:
            async with asyncio.timeout(idle) as deadline:
                while True:
                    line = await content.readline()
                    if not line:
                        break
                    deadline.reschedule(loop.time() + idle)
                    if not line.startswith(b"data:"):
                        continue  # blank separators, comments, `event:` lines
                    payload = line[5:].strip()
                    if payload == _DONE:
                        done = True
                        break
                    try:
                        data = orjson.loads(payload)
                    except orjson.JSONDecodeError:
                        raise UpstreamProtocolError(
                            f"upstream {self._provider.name} sent a stream chunk that is not JSON",
                            provider=self._provider.name,
                            deployment=self._deployment.id,
                        ) from None
                    if isinstance(data, dict) and "error" in data:
                        err = data["error"]
                        msg = err.get("message") if isinstance(err, dict) else str(err)
                        raise UpstreamStatusError(
                            msg or "upstream stream error",
                            upstream_status=500,
                            provider=self._provider.name,
                            deployment=self._deployment.id,
                        )
                    yield StreamEvent(data=data, raw=payload)
        except Exception as exc:
            raise self._provider._error(exc, self._deployment, "stream") from exc
        finally:
            self._resp.release()
        if not done:
            raise UpstreamConnectionError(
                f"upstream {self._provider.name} ended the stream before [DONE]",
                provider=self._provider.name,
                deployment=self._deployment.id,
            )
