"""Faults, error bodies, headers and response writers of the fake Anthropic server.

Fault specs are those of ``thrifty.testing.faults.FaultSpec`` plus one Anthropic-only item::

    stream_error=3                     stream: send 3 events, then ``event: error`` with an
                                       ``overloaded_error`` (``type=api_error`` picks another
                                       type, ``message=...`` the text) and end the stream;
                                       non-stream: answer with that error's HTTP status

Error bodies are Anthropic's ``{"type": "error", "error": {"type", "message"}, "request_id"}``
(``code=X`` adds ``error.details.error_code``); a 429 or 529 carries ``retry-after`` (``0``
unless ``retry_after`` is given).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from thrifty.testing.faults import FaultSpec, Latency

# status -> (error type, default message)
ERRORS: dict[int, tuple[str, str]] = {
    400: ("invalid_request_error", "Fake fault: invalid request."),
    401: ("authentication_error", "invalid x-api-key"),
    402: ("billing_error", "Your credit balance is too low to access the Anthropic API."),
    403: (
        "permission_error",
        "Your API key does not have permission to use the specified resource.",
    ),
    404: ("not_found_error", "The requested resource could not be found."),
    409: ("conflict_error", "Conflict."),
    413: ("request_too_large", "Request exceeds the maximum allowed number of bytes."),
    429: ("rate_limit_error", "Number of requests has exceeded your per-minute rate limit."),
    500: ("api_error", "Internal server error"),
    504: ("timeout_error", "Request timed out"),
    529: ("overloaded_error", "Overloaded"),
}
# error type -> status (for `stream_error` on a non-streaming request)
TYPE_STATUS: dict[str, int] = {etype: status for status, (etype, _) in ERRORS.items()}


def error_for(status: int) -> tuple[str, str]:
    """The ``(type, message)`` Anthropic uses for an error ``status``."""
    found = ERRORS.get(status)
    if found is not None:
        return found
    return ("api_error", "Internal server error") if status >= 500 else ERRORS[400]


def error_body(etype: str, message: str, code: str | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"type": etype, "message": message}
    if code:
        error["details"] = {"error_code": code}
    return {"type": "error", "error": error, "request_id": request_id()}


def request_id() -> str:
    return f"req_011{uuid.uuid4().hex[:21]}"


def rate_limit_headers(exhausted: bool = False, retry_after: float | None = None) -> dict[str, str]:
    """``anthropic-ratelimit-*`` headers; ``reset`` is an RFC 3339 timestamp."""
    reset = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=retry_after or 1)
    stamp = reset.replace(microsecond=0).isoformat().replace("+00:00", "Z")
    headers: dict[str, str] = {}
    for kind, limit in (
        ("requests", 4000),
        ("tokens", 2_000_000),
        ("input-tokens", 1_600_000),
        ("output-tokens", 400_000),
    ):
        prefix = f"anthropic-ratelimit-{kind}"
        headers[f"{prefix}-limit"] = str(limit)
        headers[f"{prefix}-remaining"] = "0" if exhausted and kind == "requests" else str(limit - 1)
        headers[f"{prefix}-reset"] = stamp
    return headers


@dataclass(frozen=True, slots=True)
class AnthropicFault:
    """A shared ``FaultSpec`` plus ``stream_error`` (events before an ``event: error``)."""

    spec: FaultSpec | None = None
    stream_error: int | None = None

    @property
    def error_type(self) -> str:
        return (self.spec.type if self.spec else None) or "overloaded_error"

    @property
    def error_message(self) -> str:
        message = self.spec.message if self.spec else None
        return message or error_for(TYPE_STATUS.get(self.error_type, 500))[1]

    @classmethod
    def parse(cls, spec: str) -> AnthropicFault | None:
        """Parse a spec string (``""`` / ``"none"``: ``None``); raises ``ValueError``."""
        items = spec.split(";")
        rest: list[str] = []
        stream_error: int | None = None
        for i, item in enumerate(items):
            key, eq, value = item.strip().partition("=")
            if key.strip().lower() == "message":
                rest.extend(items[i:])
                break
            if key.strip().lower().replace("-", "_") == "stream_error":
                try:
                    stream_error = int(value) if eq else 0
                except ValueError:
                    raise ValueError(f"stream_error must be an integer, got {value!r}") from None
                if stream_error < 0:
                    raise ValueError("stream_error must not be negative")
            else:
                rest.append(item)
        parsed = FaultSpec.parse(";".join(rest))
        if parsed is None and stream_error is None:
            return None
        return cls(parsed, stream_error)


async def send_message(
    request: web.Request, payload: bytes, headers: dict[str, str], fault: AnthropicFault | None
) -> web.StreamResponse:
    """A JSON body, honouring ``cut`` (half the body, then a reset) and ``slow_stream``."""
    spec = fault.spec if fault is not None else None
    if spec is None or (spec.cut is None and not spec.slow_stream):
        return web.Response(body=payload, headers=headers)
    headers["content-length"] = str(len(payload))
    resp = web.StreamResponse(headers=headers)
    await resp.prepare(request)
    if spec.slow_stream:
        await asyncio.sleep(spec.slow_stream)
    if spec.cut is not None:
        await resp.write(payload[: max(1, len(payload) // 2)])
        await asyncio.sleep(0.01)  # let the partial body leave before the reset
        return abort(request, resp)
    await resp.write(payload)
    await resp.write_eof()
    return resp


async def send_stream(
    request: web.Request,
    events: Iterable[tuple[str, dict[str, Any], int]],
    headers: dict[str, str],
    fault: AnthropicFault | None,
    latency: Latency,
) -> web.StreamResponse:
    """Named SSE events (``event: X\\ndata: {...}\\n\\n``), honouring ``stream_error``,
    ``cut`` (a reset after N events, so no ``message_stop``), ``slow_stream`` and latency."""
    resp = web.StreamResponse(headers=headers)
    await resp.prepare(request)
    spec = fault.spec if fault is not None else None
    cut = spec.cut if spec is not None else None
    pause = spec.slow_stream if spec is not None else None
    error_after = fault.stream_error if fault is not None else None
    per_token_s = latency.per_token_ms / 1000
    for written, (name, data, n_tokens) in enumerate(events):
        if fault is not None and error_after is not None and written >= error_after:
            error = error_body(fault.error_type, fault.error_message)
            await resp.write(b"event: error\ndata: " + orjson.dumps(error) + b"\n\n")
            await resp.write_eof()
            return resp
        if cut is not None and written >= cut:
            return abort(request, resp)
        if per_token_s > 0 and n_tokens:
            await asyncio.sleep(per_token_s * n_tokens)
        await resp.write(f"event: {name}\ndata: ".encode() + orjson.dumps(data) + b"\n\n")
        if written == 0 and pause:
            await asyncio.sleep(pause)
    if cut is not None:
        return abort(request, resp)
    await resp.write_eof()
    return resp


def abort(request: web.Request, resp: web.StreamResponse) -> web.StreamResponse:
    """Reset the connection mid-response."""
    if request.transport is not None:
        request.transport.abort()
    return resp
