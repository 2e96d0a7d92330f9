"""A response and the connection that feeds it: ``httptools`` parses, ``Response`` buffers."""

from __future__ import annotations

import asyncio
import time
import zlib
from collections import deque
from typing import TYPE_CHECKING, Any

import httptools

from thrifty.providers.transport.errors import BadResponse, UpstreamClosed

if TYPE_CHECKING:
    from thrifty.providers.transport.pool import Pool

_HIGH_WATER = 1 << 20
END_GRACE_S = 2.0
"""How long a stream whose events have ended may wait for the end of its HTTP body (the final
chunk of a chunked body) before its connection is dropped instead of reused."""


class Response:
    """An upstream response: ``status`` and lower-case ``headers`` once returned by
    ``Pool.request``, the body through ``read`` / ``readany`` / ``readline``. Call ``release``
    (or ``close``) when done with it; ``read`` to the end releases by itself."""

    def __init__(self, conn: _Connection) -> None:
        self._conn = conn
        self.status = 0
        self.headers: dict[str, str] = {}
        self._head: asyncio.Future[None] = conn.loop.create_future()
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self._line = b""
        self._waiter: asyncio.Future[None] | None = None
        self._done = False
        self._exc: BaseException | None = None
        self._decoder: Any = None
        self._released = False
        self._whole = False  # ``read`` wants everything: never pause the socket
        self._settling: asyncio.TimerHandle | None = None  # see ``release_when_complete``

    # -- fed by the connection ---------------------------------------------------------------
    def _feed(self, data: bytes) -> None:
        if self._settling is not None:
            return  # the reader is gone: the rest of the body is read and dropped
        if self._decoder is not None:
            try:
                data = self._decoder.decompress(data)
            except zlib.error as exc:
                self._fail(BadResponse(f"undecodable response body: {exc}"))
                return
        if data:
            self._chunks.append(data)
            self._buffered += len(data)
            if self._buffered > _HIGH_WATER and not self._whole:
                self._conn.pause()
            self._wake()

    def _finish(self) -> None:
        if self._decoder is not None:
            tail = self._decoder.flush()
            if tail:
                self._chunks.append(tail)
        self._done = True
        self._wake()
        if self._settling is not None:
            # not from inside the parser's callback: reusing the connection replaces its parser
            self._conn.loop.call_soon(self._settle, True)

    def _fail(self, exc: BaseException) -> None:
        if self._done:
            return
        self._exc = exc
        self._done = True
        if not self._head.done():
            self._head.set_exception(exc)
        self._wake()
        if self._settling is not None:
            self._settle(False)

    def _settle(self, reuse: bool) -> None:
        """End ``release_when_complete``'s wait: reuse the connection if its body ended."""
        timer = self._settling
        if timer is None:
            return
        timer.cancel()
        self._conn.pool.settling.discard(self._conn)
        self._conn.done_with(self, reuse=reuse and self._done and self._exc is None)

    def _wake(self) -> None:
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    async def _wait(self, timeout: float | None = None) -> None:  # noqa: ASYNC109
        """Until more of the body arrived; ``TimeoutError`` after ``timeout`` seconds. The timer
        is armed only when a read has to wait (buffered data is returned without one)."""
        loop = self._conn.loop
        waiter = self._waiter = loop.create_future()
        timer = None if timeout is None else loop.call_later(timeout, _expire, waiter)
        try:
            await waiter
        finally:
            self._waiter = None
            if timer is not None:
                timer.cancel()

    # -- the body ----------------------------------------------------------------------------
    async def readany(self, timeout: float | None = None) -> bytes:  # noqa: ASYNC109
        """The next body bytes; ``b""`` at the end. ``timeout`` bounds the wait for them."""
        while not self._chunks:
            if self._done:
                if self._exc is not None:
                    raise self._exc
                self.release()
                return b""
            await self._wait(timeout)
        data = self._chunks.popleft()
        self._buffered -= len(data)
        if self._buffered <= _HIGH_WATER // 2:
            self._conn.resume()
        return data

    async def read(self, timeout: float | None = None) -> bytes:  # noqa: ASYNC109
        """The whole (rest of the) body, within ``timeout`` seconds; releases the connection."""
        self._whole = True
        self._conn.resume()
        if not self._done and timeout is not None:
            loop = self._conn.loop
            deadline = loop.time() + timeout
            while not self._done:
                await self._wait(max(0.0, deadline - loop.time()))
        while not self._done:
            await self._wait()
        if self._exc is not None:
            raise self._exc
        data = b"".join(self._chunks) if len(self._chunks) != 1 else self._chunks[0]
        self._chunks.clear()
        self._buffered = 0
        self.release()
        return data

    async def readline(self, timeout: float | None = None) -> bytes:  # noqa: ASYNC109
        """The next line with its ``\\n``; the last line may lack it; ``b""`` at the end.
        ``timeout`` bounds each wait for more bytes."""
        line = self._line
        while True:
            end = line.find(b"\n")
            if end >= 0:
                self._line = line[end + 1 :]
                return line[: end + 1]
            chunk = await self.readany(timeout)
            if not chunk:
                self._line = b""
                return line
            line += chunk

    # -- the connection ----------------------------------------------------------------------
    def release(self) -> None:
        """Give the connection back: to the pool when the response is complete and the
        connection may be kept alive, else it is closed."""
        if self._released:
            return
        self._released = True
        self._conn.done_with(self, reuse=self._done and self._exc is None)

    def release_when_complete(self, grace_s: float | None = None) -> None:
        """Give the connection back once its body has ended, without waiting for that here:
        for a stream whose own protocol has said it is over (``data: [DONE]``,
        ``message_stop``) while the final chunk of the HTTP body may still be on its way.
        Whatever else arrives is dropped; if the body has not ended within ``grace_s`` the
        connection is closed (``END_GRACE_S`` by default). Later ``release`` and ``close``
        calls change nothing."""
        if self._released:
            return
        if self._done:
            self.release()
            return
        self._released = True
        self._chunks.clear()
        self._buffered = 0
        self._line = b""
        grace = END_GRACE_S if grace_s is None else grace_s
        self._settling = self._conn.loop.call_later(grace, self._settle, False)
        self._conn.pool.settling.add(self._conn)
        self._conn.resume()

    def close(self) -> None:
        """Drop the connection whatever state the response is in."""
        if not self._released:
            self._released = True
            self._conn.done_with(self, reuse=False)


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError("the upstream did not answer in time"))


class _Connection(asyncio.Protocol):
    """One upstream connection; ``httptools`` calls the ``on_*`` methods while parsing."""

    def __init__(self, pool: Pool) -> None:
        self.pool = pool
        self.loop = pool.loop
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.response: Response | None = None
        self.closed = False
        self.keep_alive = True
        self.idle_since = 0.0
        self._paused = False
        self._header_list: list[tuple[bytes, bytes]] = []

    # -- asyncio -----------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self.keep_alive = False
            if self.response is not None:
                self.response._fail(BadResponse(f"malformed HTTP response: {exc}"))
            self.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        r = self.response
        if r is None or r._done:
            return
        if exc is None and r._head.done() and not self._framed():
            r._finish()  # a body delimited by the (clean) end of the connection
        else:
            r._fail(UpstreamClosed(f"the upstream closed the connection ({exc or 'EOF'})"))

    def _framed(self) -> bool:
        h = self.response.headers if self.response is not None else {}
        return "content-length" in h or "chunked" in h.get("transfer-encoding", "")

    # -- httptools ---------------------------------------------------------------------------
    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_list.append((name, value))

    def on_headers_complete(self) -> None:
        r = self.response
        status = self.parser.get_status_code()
        if r is None or status < 200:  # unsolicited, or an interim 1xx: the answer follows
            self._header_list = []
            return
        headers: dict[str, str] = {}
        for name, value in self._header_list:
            key = name.decode("latin-1").lower()
            text = value.decode("latin-1")
            headers[key] = f"{headers[key]}, {text}" if key in headers else text
        self._header_list = []
        r.status = status
        r.headers = headers
        coding = headers.get("content-encoding", "").strip().lower()
        if coding in ("gzip", "x-gzip"):
            r._decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif coding == "deflate":
            r._decoder = zlib.decompressobj()
        if not r._head.done():
            r._head.set_result(None)

    def on_body(self, body: bytes) -> None:
        if self.response is not None:
            self.response._feed(body)

    def on_message_complete(self) -> None:
        if self.parser.get_status_code() < 200:
            return
        self.keep_alive = self.parser.should_keep_alive()
        if self.response is not None:
            self.response._finish()

    # -- the pool's side ---------------------------------------------------------------------
    def send(self, data: bytes, response: Response) -> None:
        assert self.transport is not None
        self.response = response
        self._header_list = []
        self.transport.write(data)

    def pause(self) -> None:
        if not self._paused and self.transport is not None and not self.closed:
            self._paused = True
            self.transport.pause_reading()

    def resume(self) -> None:
        if self._paused and self.transport is not None and not self.closed:
            self._paused = False
            self.transport.resume_reading()

    def done_with(self, response: Response, *, reuse: bool) -> None:
        if self.response is not response:
            return
        self.response = None
        if reuse and self.keep_alive and not self.closed:
            self.resume()
            self.parser = httptools.HttpResponseParser(self)
            self.idle_since = time.monotonic()
            self.pool._put_back(self)
        else:
            self.abort()
            self.pool._dropped(self)

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()
