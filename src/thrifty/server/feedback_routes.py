"""``POST /v1/feedback``: a client rates an answer it received.

Body: ``{"request_id", "score": 0..1}`` and/or ``{"needed_clarification": true}``, optional
``comment``. Only the tenant whose key made the request may rate it (another tenant's request
id is a 404, never a confirmation that it exists). Ratings feed the trade-off analysis (a
request's success) and, later, router training from the ledger.
"""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
from sqlalchemy import delete, insert, select

from thrifty.db.schema import feedback, ledger
from thrifty.errors import InvalidRequestError, NotFoundError, ThriftyError
from thrifty.gateway import Gateway
from thrifty.server.http import Receive, Scope, Send, read_body, send_error, send_json
from thrifty.wire.openai import load_json_object
from thrifty.wire.validate import expect_range, expect_type


class FeedbackEndpoint:
    def __init__(self, gateway: Gateway) -> None:
        self.gw = gateway

    async def __call__(self, scope: Scope, receive: Receive, send: Send, request_id: str) -> None:
        headers = [(b"x-thrifty-request-id", request_id.encode())]
        try:
            principal = await self.gw.authenticate(scope["thrifty.token"])
            body = load_json_object(await read_body(receive, scope["thrifty.headers"], 16384))
            rid = body.get("request_id")
            expect_type("request_id", rid, "string")
            score = body.get("score")
            if score is not None:
                expect_type("score", score, "number")
                expect_range("score", score, 0, 1)
            clarification = body.get("needed_clarification")
            if clarification is not None:
                expect_type("needed_clarification", clarification, "boolean")
            if score is None and clarification is None:
                raise InvalidRequestError(
                    "give a score (0..1) and/or needed_clarification", param="score"
                )
            comment = body.get("comment")
            if comment is not None:
                expect_type("comment", comment, "string")
            if self.gw.ledger is not None:
                await self.gw.ledger.flush()
            async with self.gw.engine.begin() as conn:
                row = (
                    await conn.execute(select(ledger.c.tenant).where(ledger.c.request_id == rid))
                ).first()
                if row is None or row.tenant != principal.tenant:
                    raise NotFoundError(f"no request {rid!r} for this key", param="request_id")
                await conn.execute(delete(feedback).where(feedback.c.request_id == rid))
                await conn.execute(
                    insert(feedback).values(
                        request_id=rid,
                        tenant=principal.tenant,
                        score=score,
                        needed_clarification=clarification,
                        comment=(comment or None) and comment[:2000],
                        at=datetime.now(UTC),
                    )
                )
        except ThriftyError as exc:
            await send_error(send, exc, headers)
            return
        await send_json(send, 200, orjson.dumps({"ok": True, "request_id": rid}), headers)
