"""What the pipeline hands back: a complete answer or an open stream."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from thrifty.pipeline.context import RequestContext
from thrifty.pipeline.streaming import ChatStream


@dataclass(slots=True)
class Completed:
    """A complete JSON answer. ``raw`` is the exact upstream body when it can be forwarded."""

    ctx: RequestContext
    data: dict[str, Any]
    raw: bytes | None = None


Outcome = Completed | ChatStream
