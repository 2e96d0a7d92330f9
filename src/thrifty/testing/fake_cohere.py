"""A fake Cohere API (v2): a real aiohttp HTTP server speaking Cohere's wire format.

The ``cohere`` SDK works against it (``cohere.ClientV2(api_key=..., base_url=fake.base_url)``)::

    async with FakeCohereServer(api_key="co-test") as fake:
        ...  # POST {fake.base_url}/v2/chat with "Authorization: Bearer co-test"

Endpoints: ``POST /v2/chat`` (JSON, or SSE ``event:``/``data:`` frames with ``"stream": true``:
``message-start``, ``content-*``, ``tool-plan-delta``, ``tool-call-*``, ``message-end``),
``POST /v2/embed`` and ``GET /health``. Bearer auth is checked only when ``api_key`` is set
(401 ``no api key supplied`` / ``invalid api token``). Chat models starting with ``unknown``
and embed models used for chat (or the reverse) are 404. Validation, answers and usage:
``fake_cohere_wire``.

Control headers: ``x-fake-fault`` (a ``FaultSpec``; error statuses get Cohere's
``{"id", "message"}`` body, 429 a ``retry-after``; ``cut=N`` sends N stream frames then resets),
``x-fake-latency``, ``x-fake-answer-tokens``, ``x-fake-cached-tokens``, and
``x-fake-finish-reason: ERROR|TIMEOUT`` (the answer ends with that ``finish_reason``: in the JSON,
or in the stream's ``message-end`` after the content). Faults may also come from ``faults``
(by model, ``"*"`` for all) or ``set_fault``. ``requests`` records the last 1000 API requests.
"""

from __future__ import annotations

import base64
import struct
import uuid
from typing import Any

import orjson
from aiohttp import web

from thrifty.testing.fake_cohere_wire import (
    FAULT_MESSAGES,
    CohereError,
    embed_args,
    plan_answer,
    prompt_tokens,
    response_body,
    stream_events,
    usage_object,
    validate_chat,
)
from thrifty.testing.fake_gemini_base import FakeServerBase, header_int
from thrifty.testing.fake_openai_wire import unit_vector
from thrifty.testing.faults import FaultSpec, Latency
from thrifty.tokens import encoding_for

__all__ = ["FakeCohereServer"]

_JSON = "application/json"
_SSE = "text/event-stream"
FINISH_OVERRIDES = frozenset({"ERROR", "TIMEOUT"})
EMBED_DIMS = {"embed-v4.0": 1536, "embed-english-light-v3.0": 384}
DEFAULT_EMBED_DIM = 1024


class FakeCohereServer(FakeServerBase):
    """A real HTTP server imitating Cohere's v2 API; see the module docstring."""

    thread_name = "fake-cohere"

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        latency: Latency | None = None,
        faults: dict[str, str] | None = None,
        api_key: str | None = None,
    ) -> None:
        super().__init__(host, port, latency=latency, faults=faults)
        self.api_key = api_key

    @property
    def base_url(self) -> str:
        """``http://host:port`` (what ``cohere.ClientV2`` takes as ``base_url``)."""
        return self.root_url

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v2/chat", self._chat)
        app.router.add_post("/v2/embed", self._embed)

    def error(self, status: int, message: str, **headers: str) -> web.Response:
        body = orjson.dumps({"id": str(uuid.uuid4()), "message": message})
        hdrs = {"content-type": _JSON, **{k.replace("_", "-"): v for k, v in headers.items()}}
        return web.Response(status=status, body=body, headers=hdrs)

    def fault_response(self, fault: FaultSpec, stream: bool) -> web.Response:
        if fault.malformed:
            if stream:
                body = b'event: message-start\ndata: {"id": "x", "type": "message-st\n\n'
                return web.Response(body=body, headers={"content-type": _SSE})
            return web.Response(body=b'{"id": "x", "finish_reason": "COMP', content_type=_JSON)
        assert fault.status is not None
        message = fault.message or FAULT_MESSAGES.get(fault.status, "fake fault")
        if fault.retry_after is not None:
            return self.error(fault.status, message, retry_after=f"{fault.retry_after:g}")
        return self.error(fault.status, message)

    def _auth(self, request: web.Request) -> web.Response | None:
        if self.api_key is None:
            return None
        auth = request.headers.get("authorization", "")
        if auth == f"Bearer {self.api_key}":
            return None
        return self.error(401, "invalid api token" if auth else "no api key supplied")

    async def _prelude(
        self, request: web.Request
    ) -> tuple[Any, FaultSpec | None, web.StreamResponse | None]:
        """Read, record, authenticate and apply early faults."""
        raw = await request.read()
        try:
            body: Any = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            body = raw.decode("utf-8", "replace")
        self.record(request, body)
        denied = self._auth(request)
        if denied is not None:
            return body, None, denied
        model = body.get("model") if isinstance(body, dict) else None
        try:
            fault = self.fault_for(request, model if isinstance(model, str) else None)
        except ValueError as exc:
            return body, None, self.error(400, f"invalid x-fake-fault header: {exc}")
        if fault is not None:
            stream = isinstance(body, dict) and body.get("stream") is True
            early = await self.apply_fault(request, fault, stream)
            if early is not None:
                return body, fault, early
        return body, fault, None

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body, fault, early = await self._prelude(request)
        if early is not None:
            return early
        try:
            validate_chat(body)
            answer_tokens = header_int(request, "x-fake-answer-tokens")
            cached = header_int(request, "x-fake-cached-tokens") or 0
            latency = self.latency_for(request)
        except CohereError as exc:
            return self.error(exc.status, exc.message)
        except ValueError as exc:
            return self.error(400, str(exc))
        finish = request.headers.get("x-fake-finish-reason", "").upper() or None
        if finish is not None and finish not in FINISH_OVERRIDES:
            return self.error(400, f"invalid x-fake-finish-reason header: {finish!r}")
        enc, _ = encoding_for(body["model"])
        plan = plan_answer(body, enc, answer_tokens)
        usage = usage_object(prompt_tokens(body, enc), plan.output_tokens, cached)
        response_id = str(uuid.uuid4())
        if body.get("stream") is True:
            events = stream_events(plan, response_id, usage, finish)
            return await self.send_events(request, events, fault, latency, content_type=_SSE)
        payload = response_body(plan, response_id, usage, finish)
        delay = (latency.first_token_ms + latency.per_token_ms * plan.output_tokens) / 1000
        return await self.send_json(request, payload, fault, delay)

    async def _embed(self, request: web.Request) -> web.StreamResponse:
        body, fault, early = await self._prelude(request)
        if early is not None:
            return early
        try:
            model, texts, _, types, dim = embed_args(body)
            latency = self.latency_for(request)
        except CohereError as exc:
            return self.error(exc.status, exc.message)
        except ValueError as exc:
            return self.error(400, str(exc))
        size = dim or EMBED_DIMS.get(model, DEFAULT_EMBED_DIM)
        vectors = [unit_vector(b"s:" + t.encode("utf-8", "surrogatepass"), size) for t in texts]
        embeddings: dict[str, Any] = {}
        for kind in types:
            if kind == "float":
                embeddings[kind] = [v.tolist() for v in vectors]
            elif kind == "base64":
                embeddings[kind] = [
                    base64.b64encode(struct.pack(f"<{len(v)}f", *v)).decode() for v in vectors
                ]
            else:
                shift = 128 if kind == "uint8" else 0
                embeddings[kind] = [[round(x * 127) + shift for x in v] for v in vectors]
        enc, _ = encoding_for(model)
        tokens = sum(len(enc.encode_ordinary(t)) for t in texts)
        payload = {
            "id": str(uuid.uuid4()),
            "embeddings": embeddings,
            "texts": texts,
            "meta": {"api_version": {"version": "2"}, "billed_units": {"input_tokens": tokens}},
            "response_type": "embeddings_by_type",
        }
        return await self.send_json(request, payload, fault, latency.first_token_ms / 1000)
