"""A trivial raw-ASGI JSON echo app: the same application under every ASGI server compared in
``choices.py`` (c). POST: read the body, ``orjson.loads`` it, answer ``orjson.dumps`` of it;
GET: ``{"ok":true}`` (the readiness probe)."""

from __future__ import annotations

from typing import Any

import orjson

_OK = b'{"ok":true}'
_CT = (b"content-type", b"application/json")


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    body = b""
    if scope["method"] == "POST":
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = orjson.dumps(orjson.loads(b"".join(chunks)))
    else:
        body = _OK
    headers = [_CT, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})
