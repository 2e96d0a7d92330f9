"""``HTTPProvider``: what every HTTP adapter shares — one keep-alive connection pool per
upstream origin (``transport.Pool``), the four timeouts, and the mapping of transport failures
and error statuses to the ``UpstreamError`` tree. Adapters subclass it and only translate bodies
and events.

Timeouts (from config): ``connect_s`` (TCP/TLS connect), ``first_byte_s`` (until the response
headers), ``total_s`` (a whole non-streaming call), ``stream_idle_s`` (longest gap between two
stream reads).
"""

from __future__ import annotations

import asyncio
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Mapping
from email.utils import parsedate_to_datetime
from typing import Any, Generic, TypeVar

import httptools
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
from thrifty.providers.base import Deployment, StreamEvent
from thrifty.providers.transport import (
    BadResponse,
    Pool,
    Response,
    UpstreamClosed,
    encode_headers,
    split_url,
)


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``retry-after`` (seconds or an HTTP date)."""
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


def error_message(raw: bytes) -> tuple[str | None, str | None]:
    """(message, type) from a JSON error body in the common shapes: ``{"error": {...}}``,
    ``{"error": "..."}``, ``{"message": ...}`` (Bedrock, Cohere) and Anthropic's
    ``{"type": "error", "error": {"type", "message"}}``."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None, None
    if not isinstance(data, dict):
        return None, None
    err = data.get("error")
    if isinstance(err, dict):
        msg = err.get("message")
        return (str(msg) if msg else None), err.get("type") or err.get("status")
    if isinstance(err, str):
        return err, None
    msg = data.get("message") or data.get("Message")
    return (str(msg) if msg else None), None


class HTTPProvider:
    """Base for HTTP adapters. Subclasses set ``self.headers`` (sent on every request) and
    implement ``complete`` / ``stream`` / ``embed`` with the helpers below."""

    def __init__(self, name: str, config: ProviderConfig, *, base_url: str | None = None) -> None:
        self.name = name
        self.config = config
        self.base_url = (base_url or config.resolved_base_url() or "").rstrip("/")
        self.headers: dict[str, str] = {"content-type": "application/json", **config.headers}
        t = config.timeouts
        self.first_byte_s = t.first_byte_s
        self.total_s = t.total_s
        self.idle_s = t.stream_idle_s
        self.connect_s = t.connect_s
        self._pools: dict[str, Pool] | None = None
        self._static_headers = b""

    async def open(self) -> None:
        """Ready the provider: its fixed headers are encoded once (subclasses set them in
        ``__init__``); connections open on first use, one pool per origin."""
        if self._pools is None:
            self._static_headers = encode_headers(self.headers)
            self._pools = {}

    async def aclose(self) -> None:
        if self._pools is not None:
            for pool in self._pools.values():
                await pool.close()
            self._pools = None

    def _pool(self, origin: str) -> Pool:
        pools = self._pools
        if pools is None:
            raise RuntimeError(f"provider {self.name} is not open")
        pool = pools.get(origin)
        if pool is None:
            pool = pools[origin] = Pool(
                origin,
                limit=self.config.max_connections,
                keepalive_s=30.0,
                connect_s=self.connect_s,
            )
        return pool

    async def _send(
        self,
        url: str,
        payload: bytes,
        headers: Mapping[str, str] | None,
        params: Mapping[str, str] | None,
    ) -> Response:
        """POST ``payload``; the response once its headers arrived within ``first_byte_s``."""
        origin, target = split_url(url, dict(params) if params else None)
        if headers:
            merged = {k.lower(): v for k, v in self.headers.items()}
            merged.update((k.lower(), v) for k, v in headers.items())
            lines = encode_headers(merged)
        else:
            lines = self._static_headers
        return await self._pool(origin).request(
            "POST", target, lines, payload, timeout=self.first_byte_s
        )

    # -- errors ----------------------------------------------------------------------------
    def map_error(self, exc: BaseException, deployment: Deployment, stage: str) -> UpstreamError:
        """Map a transport exception to the ``UpstreamError`` tree."""
        where = {"provider": self.name, "deployment": deployment.id}
        if isinstance(exc, UpstreamError):
            return exc
        if isinstance(exc, TimeoutError | asyncio.TimeoutError):
            return UpstreamTimeoutError(f"upstream {self.name} timed out ({stage})", **where)
        if isinstance(exc, UpstreamClosed | ConnectionResetError | BrokenPipeError):
            return UpstreamConnectionError(
                f"upstream {self.name} closed the connection ({stage})", **where
            )
        if isinstance(exc, BadResponse | httptools.HttpParserError):
            return UpstreamProtocolError(
                f"upstream {self.name} sent a malformed HTTP response ({stage})", **where
            )
        if isinstance(exc, OSError):
            return UpstreamConnectionError(
                f"cannot reach upstream {self.name} ({stage}): {exc.__class__.__name__}", **where
            )
        return UpstreamProtocolError(f"upstream {self.name} failed ({stage}): {exc!r}", **where)

    def status_error(
        self, status: int, raw: bytes, headers: Mapping[str, str], deployment: Deployment
    ) -> UpstreamError:
        """The error for an upstream error status; override for provider-specific codes
        (e.g. Anthropic's 529 overloaded, Bedrock's ThrottlingException)."""
        message, etype = error_message(raw)
        message = message or f"upstream {self.name} returned HTTP {status}"
        where = {"provider": self.name, "deployment": deployment.id}
        if status == 429:
            return UpstreamRateLimitError(
                message, retry_after_s=parse_retry_after(headers), **where
            )
        return UpstreamStatusError(message, upstream_status=status, upstream_type=etype, **where)

    def protocol_error(self, message: str, deployment: Deployment) -> UpstreamProtocolError:
        return UpstreamProtocolError(
            f"upstream {self.name}: {message}", provider=self.name, deployment=deployment.id
        )

    async def _raise_for_status(self, resp: Response, deployment: Deployment) -> None:
        if resp.status >= 400:
            try:
                raw = await resp.read(self.total_s)
            except OSError:  # TimeoutError included: the status is what matters
                raw = b""
            raise self.status_error(resp.status, raw, resp.headers, deployment)

    # -- requests --------------------------------------------------------------------------
    async def post_json(
        self,
        deployment: Deployment,
        url: str,
        payload: bytes,
        *,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
    ) -> tuple[dict[str, Any], bytes, dict[str, str]]:
        """POST and return (parsed JSON object, raw body, response headers, lower-case)."""
        stage = "first byte"
        resp: Response | None = None
        try:
            resp = await self._send(url, payload, headers, params)
            stage = "body"
            await self._raise_for_status(resp, deployment)
            raw = await resp.read(self.total_s)
            resp_headers = resp.headers
        except Exception as exc:
            if resp is not None:
                resp.close()
            raise self.map_error(exc, deployment, stage) from exc
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise self.protocol_error("the response body is not JSON", deployment) from None
        if not isinstance(data, dict):
            raise self.protocol_error("the response body is not a JSON object", deployment)
        return data, raw, resp_headers

    async def open_stream(
        self,
        deployment: Deployment,
        url: str,
        payload: bytes,
        *,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
    ) -> Response:
        """POST and return the open response once its status is known to be 2xx."""
        try:
            resp = await self._send(url, payload, headers, params)
            try:
                await self._raise_for_status(resp, deployment)
            except BaseException:
                resp.close()
                raise
        except Exception as exc:
            raise self.map_error(exc, deployment, "first byte") from exc
        return resp

    async def iter_lines(self, resp: Response, deployment: Deployment) -> AsyncIterator[bytes]:
        """The response's lines (line endings stripped), each read within ``stream_idle_s``;
        transport failures are mapped. Releases the response at the end.

        The timeout bounds each wait for bytes only (a timer armed only when a read has to
        wait): one held open across a ``yield`` would fire into whatever the consumer is
        awaiting (e.g. a slow client's send)."""
        idle = self.idle_s
        readline = resp.readline
        try:
            while True:
                line = await readline(idle)
                if not line:
                    return
                yield line.rstrip(b"\r\n")
        except UpstreamError:
            raise
        except Exception as exc:
            raise self.map_error(exc, deployment, "stream") from exc
        finally:
            resp.release()

    async def iter_chunks(self, resp: Response, deployment: Deployment) -> AsyncIterator[bytes]:
        """Raw body chunks (for binary framings such as AWS event streams), each read within
        ``stream_idle_s``. Releases the response at the end."""
        idle = self.idle_s
        readany = resp.readany
        try:
            while True:
                chunk = await readany(idle)
                if not chunk:
                    return
                yield chunk
        except UpstreamError:
            raise
        except Exception as exc:
            raise self.map_error(exc, deployment, "stream") from exc
        finally:
            resp.release()


P = TypeVar("P", bound=HTTPProvider)


class ResponseStream(ABC, Generic[P]):
    """What every adapter's stream shares (an ``UpstreamStream``): the open response, its
    headers, ``aclose``, iteration through the subclass's ``_events`` (abstract: each adapter
    decodes its own wire events), and decoding one event's JSON object with the adapter's
    protocol errors."""

    def __init__(self, provider: P, deployment: Deployment, resp: Response) -> None:
        self._provider = provider
        self._deployment = deployment
        self._resp = resp
        self.headers = dict(resp.headers)

    async def aclose(self) -> None:
        self._resp.close()

    def _ended(self) -> None:
        """The adapter's wire protocol says the stream is over: the connection goes back to
        the pool once the HTTP body ends too (instead of being closed by ``aclose``)."""
        self._resp.release_when_complete()

    def __aiter__(self) -> AsyncIterator[StreamEvent]:
        return self._events()

    @abstractmethod
    def _events(self) -> AsyncIterator[StreamEvent]:
        """The adapter's events, decoded from ``self._resp``."""

    def _json_object(self, payload: bytes, what: str = "a stream event") -> dict[str, Any]:
        p, dep = self._provider, self._deployment
        try:
            data = orjson.loads(payload)
        except orjson.JSONDecodeError:
            raise p.protocol_error(f"{what} is not JSON", dep) from None
        if not isinstance(data, dict):
            raise p.protocol_error(f"{what} is not a JSON object", dep)
        return data
