"""The upstream HTTP/1.1 client against a raw socket server that answers with canned bytes."""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest

from thrifty.providers.transport import (
    BadResponse,
    Pool,
    UpstreamClosed,
    encode_headers,
    split_url,
)

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, int], "asyncio.Future[None]"]


async def read_request(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    return head, await reader.readexactly(length)


def ok(body: bytes, extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n%s\r\n%s" % (len(body), extra, body)


Answer = bytes | list[bytes | float] | None


@asynccontextmanager
async def server(
    answer: Callable[[int, bytes, bytes], Answer], ssl: Any = None
) -> AsyncIterator[dict]:
    """Answers each request with ``answer(nth request on the connection, head, body)``: bytes,
    or a list of bytes to write with pauses (a float, in seconds) between them; ``None`` closes
    the connection. Counts connections. ``ssl``: a server TLS context (``https`` origin)."""
    state: dict = {"connections": 0, "heads": []}

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        state["connections"] += 1
        n = 0
        try:
            while True:
                head, body = await read_request(reader)
                state["heads"].append(head)
                out = answer(n, head, body)
                n += 1
                if out is None:
                    break
                for part in [out] if isinstance(out, bytes) else out:
                    if isinstance(part, float):
                        await asyncio.sleep(part)
                        continue
                    writer.write(part)
                    await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    srv = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=ssl)
    scheme, host = ("https", "localhost") if ssl is not None else ("http", "127.0.0.1")
    state["origin"] = f"{scheme}://{host}:{srv.sockets[0].getsockname()[1]}"
    async with srv:
        yield state


@asynccontextmanager
async def one_shot(raw: bytes, *, then_wait_s: float = 0.0) -> AsyncIterator[str]:
    """A server that reads one request, writes ``raw``, waits ``then_wait_s`` and closes;
    yields its origin."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        if raw:
            writer.write(raw)
            await writer.drain()
        await asyncio.sleep(then_wait_s)
        writer.close()

    srv = await asyncio.start_server(handle, "127.0.0.1", 0)
    async with srv:
        yield f"http://127.0.0.1:{srv.sockets[0].getsockname()[1]}"


async def test_keep_alive_reuses_one_connection_and_sends_exact_headers() -> None:
    async with server(lambda n, h, b: ok(b"echo:" + b)) as s:
        pool = Pool(s["origin"])
        for i in range(3):
            resp = await pool.request("POST", "/v1/x?q=1", encode_headers({"A-B": "c"}), b"%d" % i)
            assert resp.status == 200 and await resp.read() == b"echo:%d" % i
        await pool.close()
    assert s["connections"] == 1
    head = s["heads"][0].decode()
    assert head.startswith("POST /v1/x?q=1 HTTP/1.1\r\n")
    assert f"host: {s['origin'][7:]}\r\n" in head and "A-B: c\r\n" in head
    assert "content-length: 1\r\n" in head


async def test_chunked_gzip_and_eof_delimited_bodies() -> None:
    payload = b'{"answer": "' + b"x" * 5000 + b'"}'
    packed = gzip.compress(payload)
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in (packed[:100], packed[100:])) + (
        b"0\r\n\r\n"
    )
    answers = {
        "chunked": b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-encoding: gzip\r\n"
        b"\r\n" + chunked,
        "eof": b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n" + payload,
    }
    for kind, raw in answers.items():
        async with one_shot(raw) as origin:
            pool = Pool(origin)
            resp = await pool.request("GET", "/", b"")
            assert await resp.read() == payload, kind
            await pool.close()


async def test_lines_and_chunks_of_a_stream() -> None:
    events = b"data: 1\n\ndata: 2\r\n\ndata: [DONE]\n\n"
    raw = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n" + b"".join(
        b"%x\r\n%s\r\n" % (len(events[i : i + 5]), events[i : i + 5])
        for i in range(0, len(events), 5)
    )
    async with server(lambda n, h, b: raw + b"0\r\n\r\n") as s:
        pool = Pool(s["origin"])
        resp = await pool.request("POST", "/", b"", b"{}")
        lines = []
        while line := await resp.readline():
            lines.append(line)
        assert lines == [b"data: 1\n", b"\n", b"data: 2\r\n", b"\n", b"data: [DONE]\n", b"\n"]
        resp2 = await pool.request("POST", "/", b"", b"{}")  # the connection was given back
        assert b"".join([c async for c in _chunks(resp2)]) == events
        await pool.close()
    assert s["connections"] == 1


async def _chunks(resp) -> AsyncIterator[bytes]:  # type: ignore[no-untyped-def]
    while chunk := await resp.readany():
        yield chunk


async def test_a_response_cut_mid_body_fails_and_an_idle_close_is_survived() -> None:
    def answer(n: int, head: bytes, body: bytes) -> bytes | None:
        if body == b"cut":
            return b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\npartial"
        if body == b"bye":
            return None  # closes the connection without answering
        return ok(b"fine")

    async with server(answer) as s:
        pool = Pool(s["origin"])
        resp = await pool.request("POST", "/", b"", b"cut")
        task = asyncio.ensure_future(resp.read())
        await asyncio.sleep(0.05)
        assert not task.done()  # waiting for the 93 bytes still due
        resp.close()
        with pytest.raises(asyncio.InvalidStateError):
            task.result()
        task.cancel()
        with pytest.raises(UpstreamClosed):
            await pool.request("POST", "/", b"", b"bye")
        resp = await pool.request("POST", "/", b"", b"ok")  # a fresh connection
        assert await resp.read() == b"fine"
        await pool.close()


async def test_server_closing_after_a_partial_body() -> None:
    async with one_shot(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\npartial") as origin:
        pool = Pool(origin)
        resp = await pool.request("GET", "/", b"")
        with pytest.raises(UpstreamClosed):
            await resp.read()
        await pool.close()


async def test_not_http_is_a_bad_response() -> None:
    async with server(lambda n, h, b: b"SSH-2.0-OpenSSH\r\n\r\n") as s:
        pool = Pool(s["origin"])
        with pytest.raises(BadResponse):
            await pool.request("GET", "/", b"")
        await pool.close()


async def test_the_limit_queues_callers_and_a_slow_reader_pauses_the_socket() -> None:
    big = b"y" * (3 << 20)
    async with server(lambda n, h, b: ok(big if b == b"big" else b"small")) as s:
        pool = Pool(s["origin"], limit=1)
        first = await pool.request("POST", "/", b"", b"big")
        second = asyncio.ensure_future(pool.request("POST", "/", b"", b"small"))
        await asyncio.sleep(0.1)
        assert not second.done()  # the only connection is still busy
        assert first._conn._paused  # more than 1 MiB waits unread: reading stopped
        assert await first.read() == big
        assert await (await second).read() == b"small"
        await pool.close()
    assert s["connections"] == 1


def test_header_values_cannot_inject_lines_and_urls_split() -> None:
    with pytest.raises(ValueError):
        encode_headers({"x": "a\r\nevil: 1"})
    assert encode_headers({"Host": "h", "Content-Length": "9", "X": "y"}) == b"X: y\r\n"
    assert split_url("https://api.example.com/v1/chat?x=1", {"api-version": "2024-10-21"}) == (
        "https://api.example.com",
        "/v1/chat?x=1&api-version=2024-10-21",
    )
    assert split_url("http://h:8080") == ("http://h:8080", "/")


async def test_an_interim_response_is_skipped() -> None:
    async with server(lambda n, h, b: b"HTTP/1.1 100 Continue\r\n\r\n" + ok(b"final")) as s:
        pool = Pool(s["origin"])
        resp = await pool.request("POST", "/", b"", b"{}")
        assert resp.status == 200 and await resp.read() == b"final"
        await pool.close()


async def test_a_read_that_waits_too_long_times_out() -> None:
    head = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n6\r\nline1\n\r\n"
    async with one_shot(head, then_wait_s=5) as origin:  # then nothing
        pool = Pool(origin)
        resp = await pool.request("GET", "/", b"")
        assert await resp.readline(0.2) == b"line1\n"
        with pytest.raises(TimeoutError):
            await resp.readline(0.2)
        resp.close()
        await pool.close()


async def test_the_first_byte_timeout_covers_a_silent_upstream() -> None:
    async with one_shot(b"", then_wait_s=5) as origin:
        pool = Pool(origin, limit=1)
        with pytest.raises(TimeoutError):
            await pool.request("GET", "/", b"", timeout=0.2)
        # the timed-out connection was dropped, not given back: the limit is free again
        with pytest.raises(TimeoutError):
            await pool.request("GET", "/", b"", timeout=0.2)
        await pool.close()


def self_signed(tmp_path) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return str(cert_path), str(key_path)


async def test_https_verifies_the_certificate_and_reuses_the_tls_connection(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import ssl

    cert, key = self_signed(tmp_path)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    connections = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        try:
            while True:
                await read_request(reader)
                writer.write(ok(b"over tls"))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    srv = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=server_ctx)
    async with srv:
        port = srv.sockets[0].getsockname()[1]
        trusting = ssl.create_default_context(cafile=cert)
        pool = Pool(f"https://localhost:{port}", ssl_context=trusting)
        for _ in range(2):
            resp = await pool.request("POST", "/v1/chat/completions", b"", b"{}")
            assert await resp.read() == b"over tls"
        await pool.close()
        # the default trust store does not know this certificate: the handshake fails
        strict = Pool(f"https://localhost:{port}")
        with pytest.raises(ssl.SSLCertVerificationError):
            await strict.request("GET", "/", b"")
        await strict.close()
    assert connections == 1  # two requests, one TLS connection (the refused one never got in)


async def test_a_reset_never_passes_for_the_end_of_an_eof_framed_body() -> None:
    import socket
    import struct

    async def reset(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\npartial")
        await writer.drain()
        await asyncio.sleep(0.05)
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()  # RST, not FIN

    srv = await asyncio.start_server(reset, "127.0.0.1", 0)
    async with srv:
        pool = Pool(f"http://127.0.0.1:{srv.sockets[0].getsockname()[1]}")
        resp = await pool.request("GET", "/", b"")
        with pytest.raises(UpstreamClosed):
            await resp.read()
        await pool.close()
