"""Lifecycle of every fake upstream HTTP server (OpenAI, Anthropic, Bedrock, Gemini, Cohere):
start on the running loop or on its own loop in a daemon thread; ``/health`` included."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from abc import ABC, abstractmethod
from typing import Self

from aiohttp import web
from aiohttp.typedefs import Handler

__all__ = ["ServerLifecycle"]


class ServerLifecycle(ABC):
    """Base for fake servers: subclasses add their handlers in ``routes``.

    ``await start()`` / ``async with`` run it on the current loop; ``start_in_thread()`` /
    ``with`` on a fresh loop in a daemon thread (for synchronous clients such as boto3).
    """

    thread_name = "fake-upstream"

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self._port = port
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._peers: set[object] = set()

    @property
    def connections(self) -> int:
        """How many client connections have sent requests (a kept-alive one counts once)."""
        return len(self._peers)

    @web.middleware
    async def _count_connection(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        transport = request.transport
        if transport is not None:
            self._peers.add(transport.get_extra_info("peername"))
        return await handler(request)

    @abstractmethod
    def routes(self, app: web.Application) -> None:
        """Register the provider's endpoints on ``app``."""

    @property
    def port(self) -> int:
        """The bound port (the requested one until started)."""
        return self._port

    @property
    def root_url(self) -> str:
        """``http://host:port`` with no path."""
        host = "127.0.0.1" if self.host in ("0.0.0.0", "", "::") else self.host
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self._port}"

    @property
    def base_url(self) -> str:
        """What the provider's SDK takes as its base URL (the root URL unless overridden)."""
        return self.root_url

    async def prepare(self) -> None:  # noqa: B027 - an optional hook, not an abstract one
        """Work to do once before listening (e.g. warm tokenizers); nothing by default."""

    async def start(self) -> str:
        """Start listening on the running loop; returns ``base_url``."""
        if self._runner is not None:
            return self.base_url
        await self.prepare()
        app = web.Application(
            client_max_size=64 * 1024 * 1024, middlewares=[self._count_connection]
        )
        self.routes(app)
        app.router.add_get("/health", self._health)
        runner = web.AppRunner(
            app, access_log=None, handler_cancellation=True, shutdown_timeout=1.0
        )
        await runner.setup()
        site = web.TCPSite(runner, self.host, self._port)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self._port = int(runner.addresses[0][1])
        return self.base_url

    async def stop(self) -> None:
        """Stop listening and close connections (in-flight handlers get up to 1 s)."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def start_in_thread(self) -> str:
        """Start on a fresh event loop in a daemon thread; returns ``base_url``."""
        if self._thread is not None:
            return self.base_url
        loop = asyncio.new_event_loop()
        ready: concurrent.futures.Future[str] = concurrent.futures.Future()

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                ready.set_result(loop.run_until_complete(self.start()))
            except BaseException as exc:
                ready.set_exception(exc)
                loop.close()
                return
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()

        thread = threading.Thread(target=run, name=self.thread_name, daemon=True)
        thread.start()
        try:
            url = ready.result(timeout=30)
        except BaseException:
            thread.join(timeout=5)
            raise
        self._loop, self._thread = loop, thread
        return url

    async def _health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    def stop_thread(self) -> None:
        """Stop a server started with ``start_in_thread`` and join its thread."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        asyncio.run_coroutine_threadsafe(self.stop(), loop).result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=30)
        self._loop = self._thread = None

    def __enter__(self) -> Self:
        self.start_in_thread()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_thread()
