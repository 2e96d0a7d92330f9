"""What the pipeline hands back: a complete answer or an open stream."""

from __future__ import annotations

from typing import Any

import orjson

from thrifty.pipeline.context import RequestContext
from thrifty.pipeline.streaming import ChatStream


class Completed:
    """A complete JSON answer. ``raw`` is the exact body to send when there is one (the upstream's,
    or a cached answer's); ``data`` is the parsed answer, decoded from ``raw`` on first use when
    only ``raw`` was given."""

    __slots__ = ("_data", "ctx", "raw")

    def __init__(
        self, ctx: RequestContext, data: dict[str, Any] | None = None, raw: bytes | None = None
    ) -> None:
        if data is None and raw is None:
            raise ValueError("a completed answer needs its data or its raw body")
        self.ctx = ctx
        self._data = data
        self.raw = raw

    @property
    def data(self) -> dict[str, Any]:
        if self._data is None:
            assert self.raw is not None
            self._data = orjson.loads(self.raw)
        return self._data


Outcome = Completed | ChatStream
