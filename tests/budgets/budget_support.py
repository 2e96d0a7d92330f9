"""Helpers for the budget tests (importable as ``tests.budgets.budget_support``): backend
factories and a TCP proxy in front of the real Redis that a test can cut (an outage) and
restore."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlparse

from tests.redisx import redis_url
from thrifty.budgets import BudgetSpec, InProcessBudgetBackend, RedisBudgetBackend
from thrifty.budgets.redis_backend import blocking_client


def spec(id: str = "b", **kw: Any) -> BudgetSpec:
    kw.setdefault("scope", "org")
    if kw["scope"] != "org":
        kw.setdefault("subject", "acme")
    if "limit_tokens" not in kw:
        kw.setdefault("limit_usd", 1.0)
    return BudgetSpec(id=id, **kw)


@contextlib.asynccontextmanager
async def open_backend(kind: str, prefix: str, **kw: Any) -> AsyncIterator[Any]:
    """An in-process backend, or a Redis one on ``prefix`` (closed afterwards)."""
    if kind == "memory":
        yield InProcessBudgetBackend()
        return
    kw.setdefault("timeout_s", 2.0)  # correctness tests; latency is the benchmark's business
    client = blocking_client(redis_url(), 64, kw["timeout_s"])
    try:
        yield RedisBudgetBackend(client, prefix, **kw)
    finally:
        await client.aclose()


class CuttableProxy:
    """Forwards loopback TCP to Redis. ``cut()``: drop every connection and leave new ones
    hanging (accepted, never answered: requests can only time out); ``restore()``: forward."""

    def __init__(self) -> None:
        target = urlparse(redis_url())
        self.target = (target.hostname or "127.0.0.1", target.port or 6379)
        self.up = True
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        if not self.up:
            await asyncio.sleep(3600)  # a black hole
            return
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        self._writers.add(up_writer)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(Exception):
                while data := await src.read(65536):
                    if not self.up:
                        break
                    dst.write(data)
                    await dst.drain()
            with contextlib.suppress(Exception):
                dst.close()

        tasks = [
            asyncio.create_task(pipe(reader, up_writer)),
            asyncio.create_task(pipe(up_reader, writer)),
        ]
        self._tasks.update(tasks)
        await asyncio.gather(*tasks, return_exceptions=True)

    def cut(self) -> None:
        self.up = False
        for w in list(self._writers):
            w.close()
        self._writers.clear()

    def restore(self) -> None:
        self.up = True

    async def stop(self) -> None:
        self.cut()
        for t in self._tasks:
            t.cancel()
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 1)
