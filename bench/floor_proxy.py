"""The Python floor: a bare raw-ASGI pass-through chat proxy, for scale next to Thrifty.

What any Python gateway must do at least, and nothing else: read the body, ``orjson.loads`` it,
rewrite ``model``, ``orjson.dumps`` it, POST it upstream through one keep-alive pool — the same
client Thrifty uses (``thrifty.providers.transport``), so the floor is the same stack minus
Thrifty's work — ``orjson.loads`` the answer (a gateway reads ``usage``) and forward the
upstream's bytes; SSE is relayed chunk by chunk. No auth, no metrics, no validation.

    FLOOR_UPSTREAM=http://127.0.0.1:18080/v1 uvicorn floor_proxy:app --app-dir bench \
        --loop uvloop --http httptools --no-access-log
"""

from __future__ import annotations

import os
from typing import Any

import orjson

from thrifty.providers.transport import Pool, encode_headers, split_url

UPSTREAM = os.environ.get("FLOOR_UPSTREAM", "http://127.0.0.1:18080/v1").rstrip("/")
_ORIGIN, _TARGET = split_url(UPSTREAM + "/chat/completions")
_HEADERS = encode_headers({"content-type": "application/json"})
_session: Pool | None = None
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
                _session = Pool(_ORIGIN, limit=256)
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
    resp = await _session.request("POST", _TARGET, _HEADERS, payload, timeout=60)
    if body.get("stream"):
        await send({"type": "http.response.start", "status": resp.status, "headers": _SSE})
        while chunk := await resp.readany(60):
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        return
    raw = await resp.read(60)
    orjson.loads(raw)  # a real gateway reads usage from the answer
    headers = [*_JSON, (b"content-length", str(len(raw)).encode())]
    await send({"type": "http.response.start", "status": resp.status, "headers": headers})
    await send({"type": "http.response.body", "body": raw})
