"""Cache entries: a line of metadata, then the answer's JSON as it is sent; entries in the
earlier one-object format still decode; the answer is parsed only when something reads it."""

from __future__ import annotations

import orjson
import pytest

from thrifty.cache.entry import CacheEntry
from thrifty.pipeline.outcome import Completed

ANSWER = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1,
    "model": "gpt-4o-mini",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "line one\nline two"},
            "finish_reason": "stop",
        }
    ],
    "usage": {"prompt_tokens": 9, "completion_tokens": 4, "total_tokens": 13},
}


def test_round_trip_keeps_the_body_and_reads_only_the_head() -> None:
    raw = CacheEntry(ANSWER, "mini", "openai", "gpt-4o-mini", 1700.5).encode()
    head, _, body = raw.partition(b"\n")
    assert orjson.loads(head)["v"] == 2 and orjson.loads(body) == ANSWER
    entry = CacheEntry.decode(raw)
    assert entry.body == body and entry._response is None  # not parsed yet
    assert (entry.served_model, entry.provider, entry.upstream_model, entry.created) == (
        "mini",
        "openai",
        "gpt-4o-mini",
        1700.5,
    )
    assert entry.usage == ANSWER["usage"]
    assert entry.response == ANSWER  # parsed on first use


def test_the_earlier_one_object_format_still_decodes() -> None:
    legacy = orjson.dumps(
        {
            "response": ANSWER,
            "served_model": "mini",
            "provider": "openai",
            "upstream_model": "gpt-4o-mini",
            "created": 1700.5,
        }
    )
    entry = CacheEntry.decode(legacy)
    assert entry.response == ANSWER and entry.usage == ANSWER["usage"]
    assert orjson.loads(entry.body) == ANSWER
    assert CacheEntry.decode(entry.encode()).response == ANSWER  # and re-encodes in the new one


def test_a_completed_answer_from_raw_bytes_parses_on_first_use() -> None:
    body = orjson.dumps(ANSWER)
    done = Completed(ctx=None, raw=body)  # type: ignore[arg-type]
    assert done._data is None and done.raw is body
    assert done.data == ANSWER and done.data is done.data
    with pytest.raises(ValueError):
        Completed(ctx=None)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        CacheEntry(None, "m", "p", "u", 0.0)
