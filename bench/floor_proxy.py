"""The Python floor: a bare raw-ASGI pass-through chat proxy, for scale next to Thrifty.

What any Python gateway must do at least, and nothing else: read the body, ``orjson.loads`` it,
rewrite ``model``, ``orjson.dumps`` it, POST it upstream with one pooled ``aiohttp`` session,
``orjson.loads`` the answer (a gateway reads ``usage``) and forward the upstream's bytes; SSE is
relayed chunk by chunk. No auth, no metrics, no validation.

    FLOOR_UPSTREAM=http://127.0.0.1:18080/v1 uvicorn floor_proxy:app --app-dir bench \
        --loop uvloop --http httptools --no-access-log
"""

from __future__ import annotations

import os
from typing import Any

import aiohttp
import orjson

UPSTREAM = os.environ.get("FLOOR_UPSTREAM", "http://127.0.0.1:18080/v1").rstrip("/")
_session: aiohttp.ClientSession | None = None
_JSON = [(b"content-type", b"application/json")]
_SSE = [(b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-cache")]


async def _read_body(receive: Any) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    global _session
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                _session = aiohttp.ClientSession(
                    connector=aiohttp.TCPConnector(limit=256),
                    headers={"content-type": "application/json"},
                    skip_auto_headers=("User-Agent",),
                )
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if _session is not None:
                    await _session.close()
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    assert _session is not None
    if scope["method"] == "GET":  # readiness probe
        await send({"type": "http.response.start", "status": 200, "headers": _JSON})
        await send({"type": "http.response.body", "body": b'{"status":"ok"}'})
        return
    body = orjson.loads(await _read_body(receive))
    body["model"] = body.get("model") or "gpt-4o-mini"
    payload = orjson.dumps(body)
    async with _session.post(UPSTREAM + "/chat/completions", data=payload) as resp:
        if body.get("stream"):
            await send({"type": "http.response.start", "status": resp.status, "headers": _SSE})
            async for chunk in resp.content.iter_any():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
            return
        raw = await resp.read()
        orjson.loads(raw)  # a real gateway reads usage from the answer
        headers = [*_JSON, (b"content-length", str(len(raw)).encode())]
        await send({"type": "http.response.start", "status": resp.status, "headers": headers})
        await send({"type": "http.response.body", "body": raw})
