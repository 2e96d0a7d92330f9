"""The OpenAI-compatible adapter: OpenAI, Azure OpenAI, vLLM, Ollama, TGI, Groq, Together, and
anything else that speaks ``/v1/chat/completions``. Bodies are forwarded as they came, with
only ``model`` rewritten to the upstream's id; responses are already canonical."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson

from thrifty.config import ProviderConfig
from thrifty.errors import UpstreamConnectionError, UpstreamStatusError
from thrifty.providers.base import Deployment, StreamEvent, UpstreamResponse
from thrifty.providers.http import HTTPProvider, ResponseStream, parse_retry_after

__all__ = ["OpenAICompatProvider", "parse_retry_after"]

_DONE = b"[DONE]"


class OpenAICompatProvider(HTTPProvider):
    """Adapter for upstreams that speak the OpenAI wire format."""

    def __init__(self, name: str, config: ProviderConfig, *, base_url: str | None = None) -> None:
        super().__init__(name, config, base_url=base_url)
        if config.api_key:
            if config.kind == "azure":
                self.headers["api-key"] = config.api_key
            else:
                self.headers["authorization"] = f"Bearer {config.api_key}"
        self._params: dict[str, str] | None = None
        if config.kind == "azure" and config.api_version:
            self._params = {"api-version": config.api_version}

    def _url(self, deployment: Deployment, path: str) -> str:
        if self.config.kind == "azure":
            return f"{self.base_url}/openai/deployments/{deployment.upstream_model}/{path}"
        return f"{self.base_url}/{path}"

    async def _post(
        self, deployment: Deployment, path: str, body: dict[str, Any]
    ) -> UpstreamResponse:
        payload = orjson.dumps({**body, "model": deployment.upstream_model})
        data, raw, headers = await self.post_json(
            deployment, self._url(deployment, path), payload, params=self._params
        )
        return UpstreamResponse(data=data, raw=raw, headers=headers)

    async def complete(self, deployment: Deployment, body: dict[str, Any]) -> UpstreamResponse:
        return await self._post(deployment, "chat/completions", body)

    async def embed(self, deployment: Deployment, body: dict[str, Any]) -> UpstreamResponse:
        return await self._post(deployment, "embeddings", body)

    async def stream(self, deployment: Deployment, body: dict[str, Any]) -> _SSEStream:
        payload = orjson.dumps({**body, "model": deployment.upstream_model})
        resp = await self.open_stream(
            deployment, self._url(deployment, "chat/completions"), payload, params=self._params
        )
        return _SSEStream(self, deployment, resp)


class _SSEStream(ResponseStream["OpenAICompatProvider"]):
    """OpenAI SSE (``data: {...}`` lines, ``data: [DONE]`` at the end)."""

    async def _events(self) -> AsyncIterator[StreamEvent]:
        p, dep = self._provider, self._deployment
        async for line in p.iter_lines(self._resp, dep):
            if not line.startswith(b"data:"):
                continue  # blank separators, comments, `event:` lines
            payload = line[5:].strip()
            if payload == _DONE:
                self._ended()
                return
            data = self._json_object(payload, "a stream chunk")
            if "error" in data:
                err = data["error"]
                msg = err.get("message") if isinstance(err, dict) else str(err)
                raise UpstreamStatusError(
                    msg or "upstream stream error",
                    upstream_status=500,
                    provider=p.name,
                    deployment=dep.id,
                )
            yield StreamEvent(data=data, raw=payload)
        raise UpstreamConnectionError(
            f"upstream {p.name} ended the stream before [DONE]", provider=p.name, deployment=dep.id
        )
