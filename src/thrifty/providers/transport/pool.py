"""The keep-alive pool of connections to one origin, and URL splitting."""

from __future__ import annotations

import asyncio
import ssl
import time
from collections import deque
from urllib.parse import urlencode, urlsplit

from thrifty.providers.transport.connection import Response, _Connection, _expire


class Pool:
    """Keep-alive connections to one origin (``scheme://host:port``)."""

    def __init__(
        self,
        origin: str,
        *,
        limit: int = 100,
        keepalive_s: float = 30.0,
        connect_s: float = 10.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        u = urlsplit(origin)
        if u.scheme not in ("http", "https") or not u.hostname:
            raise ValueError(f"not an http(s) origin: {origin!r}")
        self.loop = asyncio.get_running_loop()
        self.host = u.hostname
        self.port = u.port or (443 if u.scheme == "https" else 80)
        default_port = self.port == (443 if u.scheme == "https" else 80)
        name = f"[{self.host}]" if ":" in self.host else self.host  # an IPv6 literal
        self.host_header = name if default_port else f"{name}:{self.port}"
        self._ssl = (ssl_context or ssl.create_default_context()) if u.scheme == "https" else None
        self.limit = max(1, limit)
        self.keepalive_s = keepalive_s
        self.connect_s = connect_s
        self._idle: list[_Connection] = []
        # Connections reading the rest of a finished stream's body (``release_when_complete``).
        self.settling: set[_Connection] = set()
        self._open = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._closed = False

    async def request(
        self,
        method: str,
        target: str,
        headers: bytes,
        body: bytes = b"",
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> Response:
        """Send ``method target`` with ``headers`` (encoded lines, see ``encode_headers``) and
        ``body``; return once the response's status and headers have arrived. ``timeout``
        bounds all of it (waiting for a connection, connecting, the first byte) with one timer
        (``TimeoutError``)."""
        loop = self.loop
        deadline = None if timeout is None else loop.time() + timeout
        conn = self._reuse()
        if conn is None:
            if deadline is None:
                conn = await self._acquire()
            else:
                async with asyncio.timeout_at(deadline):
                    conn = await self._acquire()
        response = Response(conn)
        head = (
            f"{method} {target} HTTP/1.1\r\nhost: {self.host_header}\r\n"
            f"content-length: {len(body)}\r\n"
        ).encode("latin-1")
        timer = None if deadline is None else loop.call_at(deadline, _expire, response._head)
        try:
            conn.send(b"".join((head, headers, b"\r\n", body)), response)
            await response._head
        except BaseException:
            response.close()
            raise
        finally:
            if timer is not None:
                timer.cancel()
        return response

    def _reuse(self) -> _Connection | None:
        """A live idle connection, or None (expired or dropped ones are closed on the way)."""
        while self._idle:
            conn = self._idle.pop()
            if conn.closed or time.monotonic() - conn.idle_since > self.keepalive_s:
                conn.abort()
                self._open -= 1
                continue
            return conn
        return None

    async def _acquire(self) -> _Connection:
        if self._closed:
            raise RuntimeError("the connection pool is closed")
        while True:
            conn = self._reuse()
            if conn is not None:
                return conn
            if self._open < self.limit:
                self._open += 1
                try:
                    return await self._connect()
                except BaseException:
                    self._open -= 1
                    self._wake_one()
                    raise
            waiter = self.loop.create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except BaseException:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
                elif waiter.done() and not waiter.cancelled():
                    self._wake_one()  # pass the wake-up on
                raise

    async def _connect(self) -> _Connection:
        async with asyncio.timeout(self.connect_s):
            _, conn = await self.loop.create_connection(
                lambda: _Connection(self),
                self.host,
                self.port,
                ssl=self._ssl,
                server_hostname=self.host if self._ssl is not None else None,
            )
        return conn

    def _put_back(self, conn: _Connection) -> None:
        if self._closed:
            conn.abort()
            self._open -= 1
            return
        self._idle.append(conn)
        self._wake_one()

    def _dropped(self, conn: _Connection) -> None:
        self._open -= 1
        self._wake_one()

    def _wake_one(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    async def close(self) -> None:
        self._closed = True
        for conn in list(self.settling):  # ends their wait: each is dropped on the way
            conn.abort()
        for conn in self._idle:
            conn.abort()
        self._open -= len(self._idle)
        self._idle.clear()
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_exception(RuntimeError("the connection pool is closed"))
        self._waiters.clear()


def split_url(url: str, params: dict[str, str] | None = None) -> tuple[str, str]:
    """``(origin, request target)`` of an absolute URL, ``params`` added to its query."""
    u = urlsplit(url)
    target = u.path or "/"
    query = u.query
    if params:
        query = f"{query}&{urlencode(params)}" if query else urlencode(params)
    if query:
        target = f"{target}?{query}"
    return f"{u.scheme}://{u.netloc}", target
