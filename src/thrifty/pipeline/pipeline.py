"""Runs the ordered stages for one request and makes sure the record stage always runs."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from thrifty.errors import ThriftyError
from thrifty.pipeline.context import RequestContext
from thrifty.pipeline.costing import Costing
from thrifty.pipeline.outcome import Outcome
from thrifty.pipeline.stage import Recorder, Stage
from thrifty.pipeline.streaming import ChatStream

log = logging.getLogger("thrifty.pipeline")


class Pipeline:
    """``recorders`` is held by reference: sinks opened at start-up (the ledger) join it."""

    def __init__(
        self, stages: Sequence[Stage], costing: Costing, recorders: Sequence[Recorder]
    ) -> None:
        self.stages = tuple(stages)
        self.costing = costing
        self.recorders = recorders

    def record(self, ctx: RequestContext) -> None:
        """Cost the request, then hand it to every recorder. Never raises."""
        try:
            self.costing.apply(ctx)
        except Exception:
            log.exception("costing failed for %s", ctx.request_id)
            ctx.flags.append("costing_failed")
        # One failing sink must not cost the others their record (the cache writer lands the
        # request's single flight, which coalesced followers wait on).
        for recorder in self.recorders:
            try:
                recorder.record(ctx)
            except Exception:
                log.exception("%s failed for %s", type(recorder).__name__, ctx.request_id)

    async def run(self, ctx: RequestContext) -> Outcome:
        """Run the stages until one answers. Errors propagate after being recorded; a stream
        is recorded when it ends (see ``ChatStream``)."""
        try:
            answered = -1
            for i, stage in enumerate(self.stages):
                outcome = await stage.run(ctx)
                if outcome is not None:
                    answered = i
                    break
            else:
                raise ThriftyError(f"no stage answered {ctx.endpoint}")
            # Stages before the one that answered may finish the answer (in reverse order).
            for stage in reversed(self.stages[:answered]):
                after = getattr(stage, "after", None)
                if after is not None:
                    outcome = await after(ctx, outcome)
        except ThriftyError as exc:
            ctx.error, ctx.status = exc, exc.status
            exc.ctx = ctx
            self._finish(ctx)
            raise
        except BaseException as exc:
            # A bug or a cancellation: still leave exactly one record behind.
            ctx.error = ThriftyError(f"internal error: {exc.__class__.__name__}")
            ctx.status = 500
            self._finish(ctx)
            raise
        if isinstance(outcome, ChatStream):
            outcome.on_finish = self.record
            outcome.costing = self.costing
        else:
            self._finish(ctx)
        return outcome

    def _finish(self, ctx: RequestContext) -> None:
        ctx.ended = time.perf_counter()
        self.record(ctx)
