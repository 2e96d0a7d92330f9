"""Request ids: ``req_`` + 24 hex digits, unique, and ordered by the millisecond they were drawn
(so the ledger's primary-key index appends instead of inserting at random pages)."""

from __future__ import annotations

import re
import time

from thrifty.pipeline.context import new_request_id

ID = re.compile(r"req_[0-9a-f]{24}")


def test_format_and_uniqueness() -> None:
    ids = [new_request_id() for _ in range(20_000)]  # several refills of the random pool
    assert all(ID.fullmatch(i) for i in ids)
    assert len(set(ids)) == len(ids)


def test_the_prefix_is_the_epoch_millisecond_so_ids_sort_by_time() -> None:
    before = time.time_ns() // 1_000_000
    first = new_request_id()
    after = time.time_ns() // 1_000_000
    assert before <= int(first[4:16], 16) <= after
    later = []
    for _ in range(5):
        time.sleep(0.002)
        later.append(new_request_id())
    assert [first, *later] == sorted([first, *later])
