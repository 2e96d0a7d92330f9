"""The transport's failures and request-header encoding."""

from __future__ import annotations

_DROPPED = frozenset({"host", "content-length", "transfer-encoding", "connection"})


class UpstreamClosed(ConnectionError):
    """The upstream closed the connection before the response was complete."""


class BadResponse(OSError):
    """The upstream's bytes are not an HTTP/1.x response."""


def _check(text: str) -> str:
    if "\r" in text or "\n" in text:
        raise ValueError(f"line break in an HTTP header: {text!r}")
    return text


def encode_headers(headers: dict[str, str]) -> bytes:
    """``name: value\\r\\n`` lines; framing headers (host, content-length, ...) are dropped."""
    return b"".join(
        f"{_check(k)}: {_check(v)}\r\n".encode("latin-1")
        for k, v in headers.items()
        if k.lower() not in _DROPPED
    )
