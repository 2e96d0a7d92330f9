"""Run the gateway on a real loopback socket inside the current event loop (demo, benches, e2e)."""

from __future__ import annotations

import asyncio
import socket

import uvicorn

from thrifty.config import Config
from thrifty.gateway import Gateway
from thrifty.server.app import create_app


class LocalServer:
    """``async with LocalServer(config) as s:`` serves ``s.base_url`` until the block ends."""

    def __init__(self, config: Config | Gateway, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.app = create_app(config)
        self.gateway = self.app.gateway
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # Accepted sockets inherit this. Without it, asyncio's default loop leaves Nagle on for
        # a pre-bound socket, and a response written as headers + body waits ~40 ms for the
        # client's delayed ACK on every keep-alive request.
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock.bind((host, port))
        self.host, self.port = self._sock.getsockname()[:2]
        self._server = uvicorn.Server(
            uvicorn.Config(
                self.app,
                log_level="warning",
                access_log=False,
                lifespan="on",
                http="httptools",
                loop="none",
            )
        )
        self._task: asyncio.Task[None] | None = None

    @property
    def root_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.root_url}/v1"

    async def __aenter__(self) -> LocalServer:
        self._task = asyncio.create_task(self._server.serve(sockets=[self._sock]))
        while not self._server.started:
            if self._task.done():
                self._task.result()  # raise the start-up error
                raise RuntimeError("the gateway did not start")
            await asyncio.sleep(0.01)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._server.should_exit = True
        if self._task is not None:
            await self._task
        self._sock.close()
