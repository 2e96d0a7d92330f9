"""The record-stage sink that turns each finished request into a queued ledger row."""

from __future__ import annotations

import logging

from thrifty.ledger.row import build_row
from thrifty.ledger.writer import LedgerWriter
from thrifty.pipeline.context import RequestContext

log = logging.getLogger("thrifty.ledger")


class LedgerRecorder:
    def __init__(self, writer: LedgerWriter, *, store_content: bool = False) -> None:
        self._writer = writer
        self._store_content = store_content

    def record(self, ctx: RequestContext) -> None:
        try:
            self._writer.append(build_row(ctx, store_content=self._store_content))
        except Exception:  # the record stage must never fail a request
            log.exception("could not build the ledger row for %s", ctx.request_id)
