"""Real PostgreSQL for tests (importable as ``tests.pg``): a fresh database per test, and a TCP
proxy that can cut and restore the connection to it.

The server comes from ``THRIFTY_TEST_PG_URL`` (default: trust auth on loopback). When it cannot
be reached, tests that need it are skipped with the reason, except under CI (``CI`` set to
1/true/yes), where they fail loudly: CI must exercise the real server.

    from tests.pg import pg_url_fixture
    pg_url = pg_url_fixture()          # in a conftest.py: each test gets a fresh empty database

    async with pg_database() as url:   # the same, as an async context manager inside a test
        ...
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any, NoReturn

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from thrifty.db.engine import normalize_url

DEFAULT_PG_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
CONNECT_TIMEOUT_S = 5.0

# Remembered per admin URL, so a missing server costs one connect timeout, not one per test.
_unreachable: dict[str, str] = {}


class PgUnavailable(RuntimeError):
    """The admin database could not be reached (the message says why)."""


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def pg_admin_url() -> str:
    """The SQLAlchemy URL (``postgresql+asyncpg://``) of the admin database used to create and
    drop the per-test databases."""
    return normalize_url(os.environ.get("THRIFTY_TEST_PG_URL") or DEFAULT_PG_URL)


def asyncpg_dsn(url: str) -> str:
    """A plain libpq-style DSN for asyncpg from a SQLAlchemy URL."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def with_database(url: str, database: str) -> str:
    return make_url(url).set(database=database).render_as_string(hide_password=False)


def with_host_port(url: str, host: str, port: int) -> str:
    return make_url(url).set(host=host, port=port).render_as_string(hide_password=False)


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


async def _admin_connect(admin_url: str) -> asyncpg.Connection:
    if admin_url in _unreachable:
        raise PgUnavailable(_unreachable[admin_url])
    safe = make_url(admin_url).render_as_string(hide_password=True)
    try:
        return await asyncpg.connect(asyncpg_dsn(admin_url), timeout=CONNECT_TIMEOUT_S)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        reason = f"PostgreSQL at {safe} is unreachable: {exc.__class__.__name__}: {exc}"
        _unreachable[admin_url] = reason
        raise PgUnavailable(reason) from exc


async def _drop(admin: asyncpg.Connection, name: str) -> None:
    await admin.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
        " WHERE datname = $1 AND pid <> pg_backend_pid()",
        name,
    )
    force = " WITH (FORCE)" if admin.get_server_version().major >= 13 else ""
    await admin.execute(f"DROP DATABASE IF EXISTS {_quote(name)}{force}")


@contextlib.asynccontextmanager
async def temp_database(
    admin_url: str | None = None, prefix: str = "thrifty_t"
) -> AsyncIterator[str]:
    """Create a uniquely named empty database, yield its SQLAlchemy URL, drop it afterwards.

    Raises ``PgUnavailable`` when the server cannot be reached (no pytest involved: the bench
    scripts use this too)."""
    admin_url = admin_url or pg_admin_url()
    name = f"{prefix}_{uuid.uuid4().hex[:16]}"
    admin = await _admin_connect(admin_url)
    try:
        await admin.execute(f"CREATE DATABASE {_quote(name)}")
    finally:
        await admin.close()
    try:
        yield with_database(admin_url, name)
    finally:
        admin = await asyncpg.connect(asyncpg_dsn(admin_url), timeout=CONNECT_TIMEOUT_S)
        try:
            await _drop(admin, name)
        finally:
            await admin.close()


def unavailable(reason: str) -> NoReturn:
    """Skip the test, or fail it under CI, because PostgreSQL is not there."""
    if in_ci():
        pytest.fail(f"{reason} (CI requires the real PostgreSQL; set THRIFTY_TEST_PG_URL)")
    pytest.skip(reason)


@contextlib.asynccontextmanager
async def pg_database(admin_url: str | None = None) -> AsyncIterator[str]:
    """``temp_database`` for tests: skip (or fail under CI) when the server is unreachable."""
    async with contextlib.AsyncExitStack() as stack:
        try:
            url = await stack.enter_async_context(temp_database(admin_url))
        except PgUnavailable as exc:
            unavailable(str(exc))
        yield url


def pg_url_fixture(name: str = "pg_url") -> Callable[..., Any]:
    """A function-scoped pytest fixture yielding the URL of a fresh database, for a conftest:
    ``pg_url = pg_url_fixture()``."""

    @pytest.fixture(name=name)
    async def _fixture() -> AsyncIterator[str]:
        async with pg_database() as url:
            yield url

    return _fixture


class TcpProxy:
    """A loopback TCP proxy to ``target`` that can be cut (listener closed, every open connection
    aborted: clients see resets and refused connects) and restored on the same port."""

    def __init__(self, target_host: str, target_port: int, host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.host = host
        self.port = 0
        self.accepted = 0  # connections accepted while up, over the proxy's life
        self._server: asyncio.Server | None = None
        self._pairs: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self._handlers: set[asyncio.Task[Any]] = set()

    @classmethod
    def for_url(cls, url: str) -> TcpProxy:
        u = make_url(url)
        return cls(u.host or "127.0.0.1", u.port or 5432)

    def url(self, url: str) -> str:
        """``url`` with its host and port pointing at this proxy."""
        return with_host_port(url, self.host, self.port)

    @property
    def up(self) -> bool:
        return self._server is not None

    @property
    def open_connections(self) -> int:
        return len(self._pairs)

    async def start(self) -> None:
        if self._server is None:
            self._server = await asyncio.start_server(
                self._handle, self.host, self.port, reuse_address=True
            )
            self.port = self._server.sockets[0].getsockname()[1]

    restore = start

    async def cut(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
            await server.wait_closed()
        for client, upstream in list(self._pairs):
            client.transport.abort()
            upstream.transport.abort()
        if self._handlers:
            await asyncio.gather(*self._handlers, return_exceptions=True)

    stop = cut

    async def __aenter__(self) -> TcpProxy:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            if self._server is None:
                writer.transport.abort()
                return
            try:
                up_reader, up_writer = await asyncio.open_connection(*self.target)
            except OSError:
                writer.transport.abort()
                return
            if self._server is None:  # cut while connecting
                writer.transport.abort()
                up_writer.transport.abort()
                return
            self.accepted += 1
            pair = (writer, up_writer)
            self._pairs.add(pair)
            pipes = [
                asyncio.ensure_future(_pipe(reader, up_writer)),
                asyncio.ensure_future(_pipe(up_reader, writer)),
            ]
            try:
                await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
            finally:
                self._pairs.discard(pair)
                writer.transport.abort()
                up_writer.transport.abort()
                for p in pipes:
                    p.cancel()
                await asyncio.gather(*pipes, return_exceptions=True)
        finally:
            self._handlers.discard(task)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError, OSError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
