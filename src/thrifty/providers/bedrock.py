"""The AWS Bedrock Runtime adapter: Converse and ConverseStream behind the OpenAI chat API.

``BedrockProvider(name, config, base_url=None)`` POSTs to
``{base_url}/model/{percent-encoded model id}/converse`` (and ``/converse-stream``), where the
base URL is ``https://bedrock-runtime.{region}.amazonaws.com`` unless ``base_url`` overrides it.
The model id is the deployment's ``upstream_model``: a model id
(``meta.llama3-3-70b-instruct-v1:0``), an inference profile (``us.amazon.nova-pro-v1:0``) or an
ARN; every ``:`` and ``/`` in it is percent-encoded, and the URL is sent exactly as built.

Auth, in this order: ``aws_access_key_id`` + ``aws_secret_access_key`` (+ ``aws_session_token``)
from the config, signed with SigV4 (service ``bedrock``, the config's region, the exact body
bytes sent); else a Bedrock API key (``api_key`` in the config, or ``AWS_BEARER_TOKEN_BEDROCK``)
as ``Authorization: Bearer``; else botocore's default credential chain (environment, profile,
SSO, container/instance roles), resolved once in ``open`` and refreshed when they expire.

Bodies are translated by ``bedrock_request`` / ``bedrock_response``; the event stream is decoded
by ``bedrock_eventstream`` (both CRCs checked). Errors map as described in ``bedrock_errors``.
``embed`` is not supported (it raises a non-retryable 400-class ``UpstreamStatusError``).
Needs the ``bedrock`` extra (``botocore``).
"""

from __future__ import annotations

import asyncio
import os
import re
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from contextlib import aclosing
from typing import Any, cast
from urllib.parse import quote, urlsplit

import orjson
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials, RefreshableCredentials

from thrifty.config import ProviderConfig
from thrifty.errors import UpstreamConnectionError, UpstreamError, UpstreamStatusError
from thrifty.providers.anthropic_wire import rejects_sampling
from thrifty.providers.base import Deployment, StreamEvent, UpstreamResponse
from thrifty.providers.bedrock_errors import bedrock_error, error_code
from thrifty.providers.bedrock_eventstream import EventStreamDecoder, EventStreamError
from thrifty.providers.bedrock_request import ConverseRequestError, to_converse
from thrifty.providers.bedrock_response import StreamTranslator, from_converse
from thrifty.providers.http import HTTPProvider, ResponseStream

__all__ = ["SIGNING_NAME", "BedrockProvider", "model_path"]

SIGNING_NAME = "bedrock"
_REGION_IN_HOST = re.compile(r"bedrock-runtime(?:-fips)?\.([a-z0-9-]+)\.amazonaws\.com")
_DEFAULT_PORTS = {"http": 80, "https": 443}


def model_path(model_id: str, operation: str) -> str:
    """``/model/{model id, percent-encoded like botocore}/{operation}``."""
    return f"/model/{quote(model_id, safe='-._~')}/{operation}"


def _host(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    if parts.port is not None and parts.port != _DEFAULT_PORTS.get(parts.scheme):
        host = f"{host}:{parts.port}"
    return host


def _default_credentials() -> Any:
    import botocore.session

    return botocore.session.get_session().get_credentials()


class BedrockProvider(HTTPProvider):
    """Adapter for AWS Bedrock Runtime (Converse / ConverseStream); see the module docstring."""

    def __init__(self, name: str, config: ProviderConfig, *, base_url: str | None = None) -> None:
        super().__init__(name, config, base_url=base_url)
        found = _REGION_IN_HOST.search(self.base_url)
        self.region = config.region or (found.group(1) if found else None) or "us-east-1"
        self._credentials: Any = None
        self._bearer: str | None = None
        if config.aws_access_key_id and config.aws_secret_access_key:
            self._credentials = Credentials(
                config.aws_access_key_id, config.aws_secret_access_key, config.aws_session_token
            )
        else:
            self._bearer = config.api_key or os.environ.get("AWS_BEARER_TOKEN_BEDROCK") or None

    async def open(self) -> None:
        await super().open()
        if self._credentials is None and self._bearer is None:
            self._credentials = await asyncio.to_thread(_default_credentials)

    # -- signing ---------------------------------------------------------------------------

    async def _frozen_credentials(self, deployment: Deployment) -> Any:
        creds = self._credentials
        if creds is None:
            raise UpstreamStatusError(
                f"no AWS credentials for provider {self.name}: set aws_access_key_id and "
                "aws_secret_access_key, api_key, or the standard AWS environment/profile",
                upstream_status=403,
                provider=self.name,
                deployment=deployment.id,
            )
        if isinstance(creds, RefreshableCredentials) and creds.refresh_needed():
            return await asyncio.to_thread(creds.get_frozen_credentials)
        return creds.get_frozen_credentials()

    async def signed_headers(
        self, deployment: Deployment, url: str, payload: bytes
    ) -> dict[str, str]:
        """The headers of one request: content type, host, extra config headers, and either
        ``Authorization: Bearer`` or the SigV4 ``Authorization`` / ``X-Amz-Date`` (and
        ``X-Amz-Security-Token``) computed over exactly ``url`` and ``payload``."""
        headers = {"Content-Type": "application/json", "Host": _host(url), **self.config.headers}
        if self._bearer is not None:
            headers["Authorization"] = f"Bearer {self._bearer}"
            return headers
        creds = await self._frozen_credentials(deployment)
        request = AWSRequest(method="POST", url=url, data=payload, headers=headers)
        SigV4Auth(creds, SIGNING_NAME, self.region).add_auth(request)
        return dict(request.headers.items())

    async def _prepare(
        self, deployment: Deployment, body: dict[str, Any], operation: str
    ) -> tuple[str, bytes, dict[str, str]]:
        if rejects_sampling(deployment.upstream_model):
            body = {k: v for k, v in body.items() if k not in ("temperature", "top_p", "top_k")}
        try:
            request = to_converse(body)
        except ConverseRequestError as exc:
            raise UpstreamStatusError(
                exc.message,
                upstream_status=400,
                upstream_type="invalid_request_error",
                param=exc.param,
                provider=self.name,
                deployment=deployment.id,
            ) from None
        url = self.base_url + model_path(deployment.upstream_model, operation)
        payload = orjson.dumps(request)
        headers = await self.signed_headers(deployment, url, payload)
        return url, payload, headers  # the transport sends the path exactly as signed

    def status_error(
        self, status: int, raw: bytes, headers: Mapping[str, str], deployment: Deployment
    ) -> UpstreamError:
        code, message = error_code(headers, raw)
        return bedrock_error(
            code, message, status, provider=self.name, deployment=deployment.id, headers=headers
        )

    # -- operations ------------------------------------------------------------------------

    async def complete(self, deployment: Deployment, body: dict[str, Any]) -> UpstreamResponse:
        url, payload, headers = await self._prepare(deployment, body, "converse")
        data, _, resp_headers = await self.post_json(deployment, url, payload, headers=headers)
        if not isinstance(data.get("output"), dict):
            raise self.protocol_error("the Converse response has no output", deployment)
        out = from_converse(
            data, deployment.upstream_model, f"chatcmpl-{uuid.uuid4().hex[:24]}", int(time.time())
        )
        return UpstreamResponse(data=out, raw=None, headers=resp_headers)

    async def stream(self, deployment: Deployment, body: dict[str, Any]) -> BedrockStream:
        url, payload, headers = await self._prepare(deployment, body, "converse-stream")
        resp = await self.open_stream(deployment, url, payload, headers=headers)
        return BedrockStream(self, deployment, resp)

    async def embed(self, deployment: Deployment, body: dict[str, Any]) -> UpstreamResponse:
        raise UpstreamStatusError(
            f"embeddings are not supported by the Bedrock provider {self.name} "
            "(only chat completions via Converse)",
            upstream_status=400,
            upstream_type="invalid_request_error",
            provider=self.name,
            deployment=deployment.id,
        )


class BedrockStream(ResponseStream["BedrockProvider"]):
    """An open ConverseStream yielding canonical chunks (see ``StreamTranslator``).

    An exception message in the stream raises the matching ``UpstreamError``; bytes that are
    not a valid event stream (bad CRC, length, header, JSON) raise ``UpstreamProtocolError``;
    a stream that ends before both ``messageStop`` and ``metadata`` raises
    ``UpstreamConnectionError``.
    """

    async def _events(self) -> AsyncIterator[StreamEvent]:
        p, dep = self._provider, self._deployment
        decoder = EventStreamDecoder()
        translator = StreamTranslator(
            dep.upstream_model, f"chatcmpl-{uuid.uuid4().hex[:24]}", int(time.time())
        )
        # iter_chunks is an async generator: close it (and release the response) on any exit
        gen = cast(AsyncGenerator[bytes, None], p.iter_chunks(self._resp, dep))
        async with aclosing(gen) as chunks:
            async for chunk in chunks:
                try:
                    for msg in decoder.feed(chunk):
                        if msg.message_type != "event":
                            raise self._stream_error(msg.message_type, msg.headers, msg.json())
                        for data in translator.translate(msg.event_type, msg.json()):
                            yield StreamEvent(data=data, raw=None)
                except EventStreamError as exc:
                    raise p.protocol_error(f"bad event stream: {exc}", dep) from None
        if not translator.complete:
            missing = "metadata" if translator.stopped else "messageStop"
            raise UpstreamConnectionError(
                f"upstream {p.name} ended the stream before {missing}",
                provider=p.name,
                deployment=dep.id,
            )

    def _stream_error(
        self, message_type: str, headers: Mapping[str, Any], payload: Any
    ) -> UpstreamError:
        p, dep = self._provider, self._deployment
        if message_type == "exception":
            code = headers.get(":exception-type")
            message = payload.get("message") if isinstance(payload, Mapping) else None
        else:  # "error": an unmodeled service error
            code = headers.get(":error-code")
            message = headers.get(":error-message")
        return bedrock_error(
            str(code) if code else None,
            str(message) if message else None,
            0,
            provider=p.name,
            deployment=dep.id,
        )
