"""The stage seam: one async entry point that may answer early by setting ``ctx`` fields."""

from __future__ import annotations

from typing import Protocol

from thrifty.pipeline.context import RequestContext
from thrifty.pipeline.outcome import Outcome


class Stage(Protocol):
    """A pipeline stage. ``run`` returns an ``Outcome`` to answer now (later stages are
    skipped; the record stage still runs) or ``None`` to continue. A stage may also define
    ``async after(ctx, outcome) -> outcome`` to finish an answer a later stage produced."""

    name: str

    async def run(self, ctx: RequestContext) -> Outcome | None: ...


class Recorder(Protocol):
    """Receives every finished request exactly once (answered, failed or refused).

    ``record`` runs on the request path: it must be cheap and must not raise; slow work (the
    ledger database) is queued behind the request.
    """

    def record(self, ctx: RequestContext) -> None: ...
