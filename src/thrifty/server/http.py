"""Raw-ASGI helpers for the hot path: read a bounded body, send JSON, errors and SSE."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import orjson

from thrifty.errors import PayloadTooLargeError, ThriftyError

Send = Any
Receive = Any
Scope = dict[str, Any]
RawHeaders = list[tuple[bytes, bytes]]

JSON_CT = (b"content-type", b"application/json")
SSE_HEADERS: RawHeaders = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]


def request_headers(scope: Scope) -> dict[str, str]:
    """Request headers as a dict of lower-case names (ASGI already lower-cases them)."""
    return {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}


async def read_body(receive: Receive, headers: dict[str, str], limit: int) -> bytes:
    """The whole request body, refusing more than ``limit`` bytes with a 413."""
    declared = headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLargeError(
            f"The request body is {declared} bytes; the limit is {limit} bytes."
        )
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > limit:
                raise PayloadTooLargeError(f"The request body exceeds the limit of {limit} bytes.")
            chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def send_bytes(
    send: Send, status: int, body: bytes, headers: RawHeaders, content_type: tuple[bytes, bytes]
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [content_type, (b"content-length", str(len(body)).encode()), *headers],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def send_json(send: Send, status: int, body: bytes, headers: RawHeaders) -> None:
    await send_bytes(send, status, body, headers, JSON_CT)


def error_headers(exc: ThriftyError) -> RawHeaders:
    return [(k.encode("latin-1"), v.encode("latin-1")) for k, v in exc.headers.items()]


async def send_error(send: Send, exc: ThriftyError, headers: RawHeaders) -> None:
    await send_json(send, exc.status, orjson.dumps(exc.body()), [*headers, *error_headers(exc)])


async def _cancel_on_disconnect(
    receive: Receive, task: asyncio.Task[Any], gone: list[bool]
) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            gone.append(True)
            task.cancel()
            return


async def send_sse(
    send: Send,
    receive: Receive,
    headers: RawHeaders,
    events: AsyncIterator[bytes],
    on_error: Any,
) -> None:
    """Send an SSE response from ``events`` (each already framed), in the calling task.

    If the client goes away, the task is cancelled inside ``events`` (the stream records itself
    as client-closed) and this returns quietly; if ``events`` raises a ``ThriftyError`` the last
    frame is ``on_error(exc)`` — a stream never ends silently as if it were complete.
    """
    await send({"type": "http.response.start", "status": 200, "headers": [*SSE_HEADERS, *headers]})
    task = asyncio.current_task()
    assert task is not None
    gone: list[bool] = []
    watcher = asyncio.ensure_future(_cancel_on_disconnect(receive, task, gone))
    try:
        try:
            async for frame in events:
                await send({"type": "http.response.body", "body": frame, "more_body": True})
            final = b""
        except ThriftyError as exc:
            final = on_error(exc)
        finally:
            watcher.cancel()
        await send({"type": "http.response.body", "body": final, "more_body": False})
    except asyncio.CancelledError:
        if not gone:
            raise
        task.uncancel()  # the client left: nothing more to send
