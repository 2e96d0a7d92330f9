"""The AWS event-stream binary framing (``application/vnd.amazon.eventstream``), both ways.

Used by the Bedrock adapter to read ConverseStream and by the fake Bedrock server to write it.
Pure standard library, no botocore. A message is::

    [total_length:u32][headers_length:u32][prelude_crc:u32 = crc32(first 8 bytes)]
    [headers: headers_length bytes][payload: total_length - headers_length - 16 bytes]
    [message_crc:u32 = crc32(every byte before it)]

Integers are big-endian; the CRC is CRC-32 (IEEE). A header is ``[name_len:u8][name][type:u8]
[value]``; the value types are 0/1 true/false, 2-5 int8/16/32/64, 6 bytes and 7 string (both
``u16`` length + data), 8 timestamp (int64 ms) and 9 uuid (16 bytes).

``EventStreamDecoder`` takes the bytes in chunks of any size (a frame may be split across chunks,
or several frames may share one) and checks both CRCs; any violation raises
``EventStreamError``.
"""

from __future__ import annotations

import struct
import uuid
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

__all__ = [
    "MAX_HEADERS_LENGTH",
    "MAX_PAYLOAD_LENGTH",
    "EventStreamDecoder",
    "EventStreamError",
    "EventStreamMessage",
    "encode_event",
    "encode_exception",
    "encode_message",
]

MAX_HEADERS_LENGTH = 128 * 1024
MAX_PAYLOAD_LENGTH = 24 * 1024 * 1024
_PRELUDE = struct.Struct("!III")
_U32 = struct.Struct("!I")
_MIN_LENGTH = 16  # prelude (12) + message CRC (4)

HeaderValue = str | bytes | bool | int | datetime | uuid.UUID


class EventStreamError(ValueError):
    """The bytes are not a valid event stream (bad length, CRC or header)."""


@dataclass(frozen=True, slots=True)
class EventStreamMessage:
    """One decoded message: its headers and raw payload bytes."""

    headers: dict[str, Any]
    payload: bytes

    @property
    def message_type(self) -> str:
        """``event``, ``exception`` or ``error`` (``event`` when the header is absent)."""
        value = self.headers.get(":message-type", "event")
        return value if isinstance(value, str) else "event"

    @property
    def event_type(self) -> str | None:
        value = self.headers.get(":event-type")
        return value if isinstance(value, str) else None

    @property
    def exception_type(self) -> str | None:
        value = self.headers.get(":exception-type")
        return value if isinstance(value, str) else None

    def json(self) -> Any:
        """The payload parsed as JSON (``{}`` when empty). Raises ``EventStreamError``."""
        if not self.payload:
            return {}
        try:
            return orjson.loads(self.payload)
        except orjson.JSONDecodeError:
            raise EventStreamError("an event-stream payload is not JSON") from None


def _crc(data: bytes | bytearray | memoryview, start: int = 0) -> int:
    return zlib.crc32(data, start) & 0xFFFFFFFF


# -- encoding -------------------------------------------------------------------------------


def _encode_header(name: str, value: HeaderValue) -> bytes:
    raw_name = name.encode("utf-8")
    if not 0 < len(raw_name) < 256:
        raise ValueError(f"invalid header name {name!r}")
    head = bytes([len(raw_name)]) + raw_name
    if isinstance(value, bool):
        return head + (b"\x00" if value else b"\x01")
    if isinstance(value, int):
        if -(1 << 31) <= value < (1 << 31):
            return head + b"\x04" + struct.pack("!i", value)
        return head + b"\x05" + struct.pack("!q", value)
    if isinstance(value, datetime):
        return head + b"\x08" + struct.pack("!q", int(value.timestamp() * 1000))
    if isinstance(value, uuid.UUID):
        return head + b"\x09" + value.bytes
    data = value.encode("utf-8") if isinstance(value, str) else bytes(value)
    if len(data) > 0xFFFF:
        raise ValueError(f"header {name!r} is too long")
    kind = b"\x07" if isinstance(value, str) else b"\x06"
    return head + kind + struct.pack("!H", len(data)) + data


def encode_message(headers: Mapping[str, HeaderValue], payload: bytes = b"") -> bytes:
    """One framed message with correct prelude and message CRCs."""
    hb = b"".join(_encode_header(k, v) for k, v in headers.items())
    prelude = struct.pack("!II", _MIN_LENGTH + len(hb) + len(payload), len(hb))
    msg = prelude + _U32.pack(_crc(prelude)) + hb + payload
    return msg + _U32.pack(_crc(msg))


def encode_event(event_type: str, payload: Any) -> bytes:
    """A Bedrock event message: ``:event-type``, JSON content type, ``:message-type: event``."""
    return encode_message(
        {
            ":event-type": event_type,
            ":content-type": "application/json",
            ":message-type": "event",
        },
        orjson.dumps(payload),
    )


def encode_exception(exception_type: str, message: str) -> bytes:
    """A modeled exception message (``:message-type: exception``), payload ``{"message"}``."""
    return encode_message(
        {
            ":exception-type": exception_type,
            ":content-type": "application/json",
            ":message-type": "exception",
        },
        orjson.dumps({"message": message}),
    )


# -- decoding -------------------------------------------------------------------------------


def _decode_headers(data: memoryview) -> dict[str, Any]:
    headers: dict[str, Any] = {}
    pos, end = 0, len(data)
    try:
        while pos < end:
            name_len = data[pos]
            pos += 1
            name = bytes(data[pos : pos + name_len]).decode("utf-8")
            if len(name) == 0 or pos + name_len > end:
                raise EventStreamError("truncated event-stream header name")
            pos += name_len
            kind = data[pos]
            pos += 1
            value: Any
            if kind in (0, 1):
                value = kind == 0
            elif kind in (2, 3, 4, 5, 8):
                fmt = {2: "!b", 3: "!h", 4: "!i", 5: "!q", 8: "!q"}[kind]
                size = struct.calcsize(fmt)
                if pos + size > end:
                    raise EventStreamError("truncated event-stream header value")
                (value,) = struct.unpack_from(fmt, data, pos)
                pos += size
                if kind == 8:
                    value = datetime.fromtimestamp(value / 1000, tz=UTC)
            elif kind in (6, 7):
                if pos + 2 > end:
                    raise EventStreamError("truncated event-stream header value")
                (length,) = struct.unpack_from("!H", data, pos)
                pos += 2
                if pos + length > end:
                    raise EventStreamError("truncated event-stream header value")
                raw = bytes(data[pos : pos + length])
                pos += length
                value = raw.decode("utf-8") if kind == 7 else raw
            elif kind == 9:
                if pos + 16 > end:
                    raise EventStreamError("truncated event-stream header value")
                value = uuid.UUID(bytes=bytes(data[pos : pos + 16]))
                pos += 16
            else:
                raise EventStreamError(f"unknown event-stream header type {kind}")
            if name in headers:
                raise EventStreamError(f"duplicate event-stream header {name!r}")
            headers[name] = value
    except IndexError:
        raise EventStreamError("truncated event-stream header") from None
    except UnicodeDecodeError:
        raise EventStreamError("an event-stream header is not UTF-8") from None
    return headers


class EventStreamDecoder:
    """Incremental decoder: ``feed`` bytes, iterate complete messages.

    ``pending`` is the number of buffered bytes of an incomplete message; a stream that ends
    with ``pending > 0`` was truncated.
    """

    def __init__(self) -> None:
        self._buf = bytearray()

    @property
    def pending(self) -> int:
        return len(self._buf)

    def feed(self, data: bytes) -> Iterator[EventStreamMessage]:
        """Add ``data`` and yield every message it completes. Raises ``EventStreamError``."""
        self._buf += data
        while True:
            msg = self._next()
            if msg is None:
                return
            yield msg

    def _next(self) -> EventStreamMessage | None:
        buf = self._buf
        if len(buf) < _PRELUDE.size:
            return None
        total, headers_len, prelude_crc = _PRELUDE.unpack_from(buf, 0)
        if _crc(buf[:8]) != prelude_crc:
            raise EventStreamError("event-stream prelude CRC mismatch")
        if total < _MIN_LENGTH or headers_len > total - _MIN_LENGTH:
            raise EventStreamError(f"invalid event-stream lengths ({total}, {headers_len})")
        if headers_len > MAX_HEADERS_LENGTH:
            raise EventStreamError(f"event-stream headers too long ({headers_len})")
        if total - headers_len - _MIN_LENGTH > MAX_PAYLOAD_LENGTH:
            raise EventStreamError(f"event-stream payload too long ({total})")
        if len(buf) < total:
            return None
        view = memoryview(buf)
        try:
            (message_crc,) = _U32.unpack_from(view, total - 4)
            if _crc(view[: total - 4]) != message_crc:
                raise EventStreamError("event-stream message CRC mismatch")
            headers = _decode_headers(view[12 : 12 + headers_len])
            payload = bytes(view[12 + headers_len : total - 4])
        finally:
            view.release()
        del buf[:total]
        return EventStreamMessage(headers=headers, payload=payload)
