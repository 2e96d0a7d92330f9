"""What the non-OpenAI fake servers share (Gemini, Cohere): lifecycle, request recording, fault
and latency selection, and sending bodies or event streams with faults applied.

Provider-neutral despite the file name (it sits with the Gemini fake for ownership reasons).
Subclasses add their routes in ``routes`` and shape error bodies in ``fault_response``.
Fault specs are ``faults.FaultSpec`` strings, chosen by the ``x-fake-fault`` header, else by the
``faults`` config (keyed by model, ``"*"`` for all), else by ``set_fault``.
"""

from __future__ import annotations

import asyncio
import threading
from abc import abstractmethod
from collections import deque
from typing import Any

import orjson
from aiohttp import web

from thrifty.testing.faults import FaultSpec, FaultTable, Latency
from thrifty.testing.server_base import ServerLifecycle

MAX_RECORDED_REQUESTS = 1000


def header_int(request: web.Request, name: str) -> int | None:
    """A non-negative integer control header, or None; raises ``ValueError`` when malformed."""
    value = request.headers.get(name)
    if value is None:
        return None
    try:
        number = int(value)
    except ValueError:
        raise ValueError(f"invalid {name} header: {value!r}") from None
    if number < 0:
        raise ValueError(f"invalid {name} header: {value!r}")
    return number


class FakeServerBase(ServerLifecycle):
    """A loopback aiohttp server started with ``await start()`` / ``async with``, or on its own
    loop in a daemon thread with ``start_in_thread()`` / ``with``. ``set_fault``, ``requests``
    and ``clear`` may be used from any thread."""

    thread_name = "fake-upstream"

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        latency: Latency | None = None,
        faults: dict[str, str] | None = None,
    ) -> None:
        super().__init__(host, port)
        self.latency = latency or Latency()
        self._faults: FaultTable[FaultSpec] = FaultTable(
            {m: FaultSpec.parse(s) for m, s in (faults or {}).items()}
        )
        self._lock = threading.Lock()
        self._requests: deque[dict[str, Any]] = deque(maxlen=MAX_RECORDED_REQUESTS)

    # -- to override -----------------------------------------------------------------------
    @abstractmethod
    def fault_response(self, fault: FaultSpec, stream: bool) -> web.Response:
        """The provider-shaped answer to a ``status=`` or ``malformed`` fault."""

    # -- test helpers ----------------------------------------------------------------------
    @property
    def requests(self) -> list[dict[str, Any]]:
        """The last 1000 requests, oldest first: ``{"method", "path", "query", "headers"
        (lower-case keys), "body" (parsed JSON, else the text, else None)}``."""
        with self._lock:
            return list(self._requests)

    def clear(self) -> None:
        with self._lock:
            self._requests.clear()

    def set_fault(
        self, spec: str | None, model: str | None = None, times: int | None = None
    ) -> None:
        """Inject ``spec`` into requests for ``model`` (None: every request) for the next
        ``times`` of them (None: until changed); ``spec=None`` clears it."""
        self._faults.set(FaultSpec.parse(spec) if spec is not None else None, model, times)

    # -- request plumbing ------------------------------------------------------------------
    def record(self, request: web.Request, body: Any) -> None:
        entry = {
            "method": request.method,
            "path": request.path,
            "query": dict(request.query),
            "headers": {k.lower(): v for k, v in request.headers.items()},
            "body": body,
        }
        with self._lock:
            self._requests.append(entry)

    def fault_for(self, request: web.Request, model: str | None) -> FaultSpec | None:
        """The fault for this request; raises ``ValueError`` for a bad header."""
        header = request.headers.get("x-fake-fault")
        if header is not None:
            return FaultSpec.parse(header)
        return self._faults.pick(model)

    def latency_for(self, request: web.Request) -> Latency:
        header = request.headers.get("x-fake-latency")
        return self.latency if header is None else Latency.parse(header)

    async def apply_fault(
        self, request: web.Request, fault: FaultSpec, stream: bool
    ) -> web.StreamResponse | None:
        """Apply the faults that act before the body: ``timeout``, ``reset``, ``status``,
        ``malformed``; returns the early response, or None to answer normally."""
        if fault.timeout:
            await asyncio.sleep(fault.timeout)
        if fault.reset:
            if request.transport is not None:
                request.transport.abort()
            return web.Response(status=500)  # never reaches the client
        if (fault.status is not None and fault.status >= 400) or fault.malformed:
            return self.fault_response(fault, stream)
        return None

    async def send_json(
        self,
        request: web.Request,
        payload: Any,
        fault: FaultSpec | None,
        delay_s: float = 0.0,
        *,
        content_type: str = "application/json",
        status: int = 200,
    ) -> web.StreamResponse:
        """A JSON body; ``cut`` sends half of it then resets, ``slow_stream`` pauses first."""
        body = orjson.dumps(payload)
        if delay_s > 0:
            await asyncio.sleep(delay_s)
        headers = {"content-type": content_type}
        if fault is None or (fault.cut is None and not fault.slow_stream):
            return web.Response(status=status, body=body, headers=headers)
        headers["content-length"] = str(len(body))
        resp = web.StreamResponse(status=status, headers=headers)
        await resp.prepare(request)
        if fault.slow_stream:
            await asyncio.sleep(fault.slow_stream)
        if fault.cut is not None:
            await resp.write(body[: max(1, len(body) // 2)])
            await asyncio.sleep(0.01)
            return abort(request, resp)
        await resp.write(body)
        await resp.write_eof()
        return resp

    async def send_events(
        self,
        request: web.Request,
        events: list[bytes],
        fault: FaultSpec | None,
        latency: Latency,
        *,
        content_type: str = "text/event-stream",
    ) -> web.StreamResponse:
        """Framed stream events; ``cut=N`` sends N of them then resets the connection."""
        if latency.first_token_ms > 0:
            await asyncio.sleep(latency.first_token_ms / 1000)
        resp = web.StreamResponse(
            headers={"content-type": content_type, "cache-control": "no-cache"}
        )
        await resp.prepare(request)
        cut = fault.cut if fault is not None else None
        pause = fault.slow_stream if fault is not None else None
        for n, event in enumerate(events):
            if cut is not None and n >= cut:
                await asyncio.sleep(0.01)
                return abort(request, resp)
            if n and latency.per_token_ms > 0:
                await asyncio.sleep(latency.per_token_ms / 1000)
            await resp.write(event)
            if n == 0 and pause:
                await asyncio.sleep(pause)
        if cut is not None:
            await asyncio.sleep(0.01)
            return abort(request, resp)
        await resp.write_eof()
        return resp


def abort(request: web.Request, resp: web.StreamResponse) -> web.StreamResponse:
    """Reset the connection mid-response."""
    if request.transport is not None:
        request.transport.abort()
    return resp
