"""The AWS event-stream codec: framing, both CRCs, split frames, header types."""

from __future__ import annotations

import struct
import uuid
import zlib
from datetime import UTC, datetime

import pytest

from thrifty.providers.bedrock_eventstream import (
    EventStreamDecoder,
    EventStreamError,
    encode_event,
    encode_exception,
    encode_message,
)


def crc(data: bytes) -> int:
    return zlib.crc32(data) & 0xFFFFFFFF


def test_known_layout() -> None:
    msg = encode_message({":event-type": "messageStart"}, b'{"role":"assistant"}')
    name = b":event-type"
    value = b"messageStart"
    headers = bytes([len(name)]) + name + b"\x07" + struct.pack("!H", len(value)) + value
    payload = b'{"role":"assistant"}'
    total = 16 + len(headers) + len(payload)
    assert struct.unpack("!II", msg[:8]) == (total, len(headers))
    assert struct.unpack("!I", msg[8:12])[0] == crc(msg[:8])
    assert msg[12 : 12 + len(headers)] == headers
    assert msg[12 + len(headers) : -4] == payload
    assert struct.unpack("!I", msg[-4:])[0] == crc(msg[:-4])
    assert len(msg) == total


def test_botocore_accepts_our_frames() -> None:
    eventstream = pytest.importorskip("botocore.eventstream")
    buf = eventstream.EventStreamBuffer()
    buf.add_data(encode_event("contentBlockDelta", {"delta": {"text": "Hi"}}))
    buf.add_data(encode_exception("throttlingException", "slow down"))
    first, second = list(buf)
    assert first.headers[":event-type"] == "contentBlockDelta"
    assert first.headers[":message-type"] == "event"
    assert first.payload == b'{"delta":{"text":"Hi"}}'
    assert second.headers[":exception-type"] == "throttlingException"
    assert second.headers[":message-type"] == "exception"


def test_round_trip_every_header_type() -> None:
    when = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    ident = uuid.uuid4()
    headers = {
        "yes": True,
        "no": False,
        "small": 7,
        "big": 1 << 40,
        "neg": -5,
        "blob": b"\x00\x01",
        "text": "héllo",
        "when": when,
        "id": ident,
    }
    (msg,) = EventStreamDecoder().feed(encode_message(headers, b"payload"))
    assert msg.headers == headers
    assert msg.payload == b"payload"


def test_i8_and_i16_headers_decode() -> None:
    hb = b"\x01a\x02\xff" + b"\x01b\x03\x01\x00"
    prelude = struct.pack("!II", 16 + len(hb), len(hb))
    raw = prelude + struct.pack("!I", crc(prelude)) + hb
    raw += struct.pack("!I", crc(raw))
    (msg,) = EventStreamDecoder().feed(raw)
    assert msg.headers == {"a": -1, "b": 256}


def test_frames_split_anywhere_and_batched() -> None:
    frames = [encode_event("contentBlockDelta", {"i": i, "text": "x" * i}) for i in range(5)]
    stream = b"".join(frames)
    for step in (1, 3, 7, 64, len(stream)):
        decoder = EventStreamDecoder()
        got = []
        for k in range(0, len(stream), step):
            got.extend(decoder.feed(stream[k : k + step]))
        assert [m.json()["i"] for m in got] == [0, 1, 2, 3, 4]
        assert decoder.pending == 0
    decoder = EventStreamDecoder()
    assert list(decoder.feed(stream[:-3])) and decoder.pending == len(frames[-1]) - 3


def test_event_accessors() -> None:
    (event,) = EventStreamDecoder().feed(encode_event("metadata", {"usage": {}}))
    assert (event.message_type, event.event_type, event.exception_type) == (
        "event",
        "metadata",
        None,
    )
    (exc,) = EventStreamDecoder().feed(encode_exception("validationException", "bad"))
    assert exc.message_type == "exception" and exc.exception_type == "validationException"
    assert exc.json() == {"message": "bad"}


def test_bad_prelude_crc() -> None:
    msg = bytearray(encode_event("messageStart", {}))
    msg[8] ^= 0xFF
    with pytest.raises(EventStreamError, match="prelude CRC"):
        list(EventStreamDecoder().feed(bytes(msg)))


def test_bad_message_crc() -> None:
    msg = bytearray(encode_event("messageStart", {"role": "assistant"}))
    msg[-6] ^= 0x01  # a payload byte
    with pytest.raises(EventStreamError, match="message CRC"):
        list(EventStreamDecoder().feed(bytes(msg)))


def test_bad_crc_after_good_frames_yields_the_good_ones_first() -> None:
    good = encode_event("messageStart", {})
    bad = bytearray(encode_event("messageStop", {}))
    bad[-1] ^= 0xFF
    decoder = EventStreamDecoder()
    it = decoder.feed(good + bytes(bad))
    assert next(it).event_type == "messageStart"
    with pytest.raises(EventStreamError):
        next(it)


def _framed(total: int, headers_len: int, body: bytes) -> bytes:
    prelude = struct.pack("!II", total, headers_len)
    raw = prelude + struct.pack("!I", crc(prelude)) + body
    return raw + struct.pack("!I", crc(raw))


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        (_framed(15, 0, b""), "invalid event-stream lengths"),
        (_framed(20, 8, b"abcd"), "invalid event-stream lengths"),
        (_framed(16 + 4, 4, b"\x01a\x63\x00"), "unknown event-stream header type"),
        (_framed(16 + 5, 5, b"\x01a\x07\x00\x09"), "truncated"),
        (_framed(16 + 4, 4, b"\x05abc"), "truncated"),
        (_framed(16 + 6, 6, b"\x01a\x00\x01a\x01"), "duplicate"),
    ],
)
def test_malformed_frames(raw: bytes, match: str) -> None:
    with pytest.raises(EventStreamError, match=match):
        list(EventStreamDecoder().feed(raw))


def test_oversized_lengths_are_refused_before_buffering() -> None:
    prelude = struct.pack("!II", 64 * 1024 * 1024, 0)
    with pytest.raises(EventStreamError, match="payload too long"):
        list(EventStreamDecoder().feed(prelude + struct.pack("!I", crc(prelude))))


def test_payload_that_is_not_json() -> None:
    (msg,) = EventStreamDecoder().feed(encode_message({":event-type": "x"}, b"{nope"))
    with pytest.raises(EventStreamError, match="not JSON"):
        msg.json()
