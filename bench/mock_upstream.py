"""A minimal, fast mock OpenAI upstream (raw asyncio protocol, uvloop when importable).

Kept small on purpose: on a 2-core machine the upstream shares the CPU with the gateway and the
load generator, so it must cost as little as possible (~20-40 µs per request).

    python bench/mock_upstream.py --port 18080 [--delay-ms 0] [--chunks 20] [--chunk-delay-ms 0]

Endpoints (any path prefix):
  POST …/chat/completions  a realistic ``chat.completion`` with ``usage``; with ``"stream": true``
                           SSE ``chat.completion.chunk`` frames (a role chunk, ``--chunks`` content
                           chunks, a finish chunk, a usage-only chunk when
                           ``stream_options.include_usage``), then ``data: [DONE]``.
  GET  …/models            a model list
  GET  /health             ``{"status":"ok"}``
Loopback only: it binds 127.0.0.1 unless ``--host`` says otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import sys
from collections import deque
from typing import Any

from payloads import ANSWER, COMPLETION

try:
    import orjson

    _loads = orjson.loads
except ImportError:  # pragma: no cover - stdlib fallback
    _loads = json.loads

_ID = b"@@ID@@"
_ids = itertools.count(1)
_tasks: set[asyncio.Future] = set()  # strong references to the running stream writers


def _compact(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def _head(status: int, ctype: bytes, length: int | None, keep: bool) -> bytes:
    reason = {200: b"OK", 400: b"Bad Request", 404: b"Not Found"}.get(status, b"OK")
    lines = [b"HTTP/1.1 %d %s" % (status, reason), b"content-type: " + ctype]
    if length is None:
        lines += [b"transfer-encoding: chunked", b"cache-control: no-cache"]
    else:
        lines.append(b"content-length: %d" % length)
    if not keep:
        lines.append(b"connection: close")
    return b"\r\n".join(lines) + b"\r\n\r\n"


def _response(status: int, body: bytes, keep: bool) -> bytes:
    return _head(status, b"application/json", len(body), keep) + body


class Templates:
    """Pre-rendered bodies per model name; only the id changes per request."""

    def __init__(self, chunks: int) -> None:
        words = ANSWER.split(" ")
        n = max(1, chunks)
        # n content pieces that join back to a prefix of ANSWER (cycled when n > words).
        self.pieces = [(" " if i else "") + words[i % len(words)] for i in range(n)]
        self._cache: dict[str, tuple[bytes, list[bytes], list[bytes]]] = {}

    def get(self, model: str) -> tuple[bytes, list[bytes], list[bytes]]:
        hit = self._cache.get(model)
        if hit is None:
            hit = self._build(model)
            if len(self._cache) < 100:
                self._cache[model] = hit
        return hit

    def _build(self, model: str) -> tuple[bytes, list[bytes], list[bytes]]:
        full = dict(COMPLETION, id="@@ID@@", model=model)
        completion = _compact(full)
        base = {
            "id": "@@ID@@",
            "object": "chat.completion.chunk",
            "created": COMPLETION["created"],
            "model": model,
            "service_tier": "default",
            "system_fingerprint": COMPLETION["system_fingerprint"],
        }

        def chunk(delta: dict[str, Any], finish: str | None, with_usage: bool) -> bytes:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
            c = dict(base, choices=[choice])
            if with_usage:
                c["usage"] = None
            return b"data: " + _compact(c) + b"\n\n"

        usage = {
            "prompt_tokens": COMPLETION["usage"]["prompt_tokens"],
            "completion_tokens": len(self.pieces),
            "total_tokens": COMPLETION["usage"]["prompt_tokens"] + len(self.pieces),
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
        }
        frames: dict[bool, list[bytes]] = {}
        for with_usage in (False, True):
            f = [chunk({"role": "assistant", "content": "", "refusal": None}, None, with_usage)]
            f += [chunk({"content": p}, None, with_usage) for p in self.pieces]
            f.append(chunk({}, "stop", with_usage))
            if with_usage:
                f.append(b"data: " + _compact(dict(base, choices=[], usage=usage)) + b"\n\n")
            f.append(b"data: [DONE]\n\n")
            frames[with_usage] = f
        return completion, frames[False], frames[True]


def _chunked(frame: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(frame), frame)


class MockProtocol(asyncio.Protocol):
    templates: Templates
    delay_s = 0.0
    chunk_delay_s = 0.0

    def __init__(self) -> None:
        self.buf = bytearray()
        self.queue: deque[tuple[bytes, bytes, bool, bytes]] = deque()
        self.busy = False
        self.closed = False
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while True:
            req = self._parse_one()
            if req is None:
                break
            self.queue.append(req)
        if not self.busy:
            self._drain()

    def _parse_one(self) -> tuple[bytes, bytes, bool, bytes] | None:
        buf = self.buf
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            return None
        lines = bytes(buf[:end]).split(b"\r\n")
        parts = lines[0].split(b" ")
        method, path = parts[0], parts[1] if len(parts) > 1 else b"/"
        length, keep, chunked = 0, True, False
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value.strip() or b"0")
            elif name == b"connection":
                keep = value.strip().lower() != b"close"
            elif name == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
        pos = end + 4
        if chunked:  # rare (httpx/aiohttp send content-length for bytes bodies)
            body = bytearray()
            while True:
                le = buf.find(b"\r\n", pos)
                if le < 0:
                    return None
                size = int(bytes(buf[pos:le]).split(b";")[0], 16)
                if size == 0:
                    if len(buf) < le + 4:
                        return None
                    pos = le + 4
                    break
                if len(buf) < le + 2 + size + 2:
                    return None
                body += buf[le + 2 : le + 2 + size]
                pos = le + 2 + size + 2
            payload = bytes(body)
        else:
            if len(buf) < pos + length:
                return None
            payload = bytes(buf[pos : pos + length])
            pos += length
        del buf[:pos]
        return method, path.split(b"?", 1)[0].rstrip(b"/"), keep, payload

    def _drain(self) -> None:
        t = self.transport
        assert t is not None
        while self.queue and not self.closed:
            method, path, keep, payload = self.queue.popleft()
            if method == b"POST" and path.endswith(b"/chat/completions"):
                try:
                    req = _loads(payload or b"{}")
                except ValueError:
                    t.write(_response(400, b'{"error":{"message":"invalid json"}}', keep))
                    continue
                model = str(req.get("model") or "gpt-4o-mini")
                stream = bool(req.get("stream"))
                if stream or self.delay_s > 0:
                    opts = req.get("stream_options") or {}
                    self.busy = True
                    task = asyncio.ensure_future(
                        self._slow(model, stream, bool(opts.get("include_usage")), keep)
                    )
                    _tasks.add(task)
                    task.add_done_callback(_tasks.discard)
                    return
                t.write(_response(200, self._completion(model), keep))
            elif method == b"GET" and path.endswith(b"/models"):
                t.write(_response(200, MODELS, keep))
            elif method == b"GET" and path in (b"/health", b"/healthz", b""):
                t.write(_response(200, b'{"status":"ok"}', keep))
            else:
                t.write(_response(404, b'{"error":{"message":"not found"}}', keep))
            if not keep:
                t.close()
                return

    def _completion(self, model: str) -> bytes:
        body = self.templates.get(model)[0]
        return body.replace(_ID, b"chatcmpl-mock%020d" % next(_ids), 1)

    async def _slow(self, model: str, stream: bool, include_usage: bool, keep: bool) -> None:
        t = self.transport
        assert t is not None
        try:
            if self.delay_s > 0:
                await asyncio.sleep(self.delay_s)
            if self.closed:
                return
            if not stream:
                t.write(_response(200, self._completion(model), keep))
            else:
                _, plain, with_usage = self.templates.get(model)
                cid = b"chatcmpl-mock%020d" % next(_ids)
                frames = with_usage if include_usage else plain
                t.write(_head(200, b"text/event-stream; charset=utf-8", None, keep))
                if self.chunk_delay_s > 0:
                    for f in frames:
                        if self.closed:
                            return
                        t.write(_chunked(f.replace(_ID, cid, 1)))
                        await asyncio.sleep(self.chunk_delay_s)
                    t.write(b"0\r\n\r\n")
                else:
                    t.write(b"".join(_chunked(f.replace(_ID, cid, 1)) for f in frames))
                    t.write(b"0\r\n\r\n")
            if not keep:
                t.close()
                return
        finally:
            self.busy = False
        if self.queue:
            self._drain()


MODELS = _compact(
    {
        "object": "list",
        "data": [
            {"id": m, "object": "model", "created": 1700000000, "owned_by": "mock"}
            for m in ("gpt-4o-mini", "gpt-4o")
        ],
    }
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=18080)
    ap.add_argument("--delay-ms", type=float, default=0.0, help="latency before the answer")
    ap.add_argument("--chunks", type=int, default=20, help="content chunks per stream")
    ap.add_argument("--chunk-delay-ms", type=float, default=0.0, help="gap between chunks")
    a = ap.parse_args()
    MockProtocol.templates = Templates(a.chunks)
    MockProtocol.delay_s = a.delay_ms / 1000
    MockProtocol.chunk_delay_s = a.chunk_delay_ms / 1000
    try:
        import uvloop

        loop = uvloop.new_event_loop()
    except ImportError:  # pragma: no cover
        loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    server = loop.run_until_complete(
        loop.create_server(MockProtocol, a.host, a.port, reuse_address=True, backlog=4096)
    )
    print(f"mock upstream on http://{a.host}:{a.port}/v1", file=sys.stderr, flush=True)
    try:
        loop.run_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()


if __name__ == "__main__":
    main()
