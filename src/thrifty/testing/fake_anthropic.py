"""A fake Anthropic Messages API: a real HTTP server (aiohttp) speaking Anthropic's wire format.

The official ``anthropic`` SDK works against it unchanged (its ``base_url`` is the host; the SDK
adds ``/v1/...``)::

    async with FakeAnthropicServer() as fake:
        client = AsyncAnthropic(base_url=fake.base_url, api_key="x")

Endpoints: ``POST /v1/messages`` (streamed with named SSE events, or not),
``POST /v1/messages/count_tokens``, ``GET /v1/models``, ``GET /health``. Requests need an
``x-api-key`` or ``Authorization: Bearer`` (checked against ``api_key`` when set, else any value)
and an ``anthropic-version`` header, and are validated like the real API
(``fake_anthropic_requests``). Any model id is known unless it starts with ``unknown`` (404).

Answers, usage and prompt caching: see ``fake_anthropic_answers`` (``cache_min_tokens`` is the
smallest cacheable prefix; ``clear_cache`` forgets what was cached). Per-request headers as in
the OpenAI fake: ``x-fake-fault`` (a spec of ``fake_anthropic_wire``), ``x-fake-latency``,
``x-fake-answer-tokens``. Faults come from the header, else ``faults`` (by model, ``"*"``),
else ``set_fault``. ``requests`` keeps the last 1000 ``/v1`` requests.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections import deque
from typing import Any

import orjson
from aiohttp import web

from thrifty.testing.fake_anthropic_answers import (
    PromptCache,
    count_prompt,
    message_object,
    plan_answer,
    prompt_segments,
    stream_events,
)
from thrifty.testing.fake_anthropic_requests import (
    NEW_VERSION,
    AnthropicBadRequest,
    check_version,
    parse_messages_request,
)
from thrifty.testing.fake_anthropic_wire import (
    TYPE_STATUS,
    AnthropicFault,
    error_body,
    error_for,
    rate_limit_headers,
    request_id,
    send_message,
    send_stream,
)
from thrifty.testing.faults import FaultTable, Latency
from thrifty.testing.server_base import ServerLifecycle
from thrifty.tokens import encoding_for

__all__ = ["AnthropicFault", "FakeAnthropicServer"]

_JSON = "application/json"
_SSE = "text/event-stream; charset=utf-8"
MAX_RECORDED_REQUESTS = 1000
# What ``GET /v1/models`` lists; requests for any other id (older ones included) are still served.
MODELS = ("claude-opus-5-5", "claude-sonnet-5-5", "claude-haiku-5-5", "claude-haiku-4-5")
ORGANIZATION_ID = "00000000-0000-4000-8000-00000000fa4e"


class FakeAnthropicServer(ServerLifecycle):
    """A real HTTP server imitating the Anthropic API; see the module docstring.

    Start it with ``await start()`` (or ``async with``) on the running loop, or with
    ``start_in_thread()`` (or ``with``) on its own loop in a daemon thread.
    """

    thread_name = "fake-anthropic"

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        latency: Latency | None = None,
        faults: dict[str, str] | None = None,
        api_key: str | None = None,
        cache_min_tokens: int = 1024,
        strict_alternation: bool = True,
    ) -> None:
        super().__init__(host, port)
        self.latency = latency or Latency()
        self.api_key = api_key
        self.strict_alternation = strict_alternation
        self.cache = PromptCache(cache_min_tokens)
        self._faults: FaultTable[AnthropicFault] = FaultTable(
            {m: AnthropicFault.parse(s) for m, s in (faults or {}).items()}
        )
        self._lock = threading.Lock()
        self._requests: deque[dict[str, Any]] = deque(maxlen=MAX_RECORDED_REQUESTS)

    # -- lifecycle (``ServerLifecycle``; ``base_url`` is the root: the SDK adds ``/v1``) ------

    async def prepare(self) -> None:
        await asyncio.to_thread(encoding_for, "gpt-4o")  # build the tokenizer once, up front

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/messages", self._messages)
        app.router.add_post("/v1/messages/count_tokens", self._count_tokens)
        app.router.add_get("/v1/models", self._models)

    # -- test helpers ----------------------------------------------------------------------

    @property
    def requests(self) -> list[dict[str, Any]]:
        """The last 1000 ``/v1`` requests: ``{"method", "path", "headers", "body"}``."""
        with self._lock:
            return list(self._requests)

    def clear(self) -> None:
        """Forget recorded requests."""
        with self._lock:
            self._requests.clear()

    def clear_cache(self) -> None:
        """Forget the cached prompt prefixes."""
        self.cache.clear()

    def set_fault(
        self, spec: str | None, model: str | None = None, times: int | None = None
    ) -> None:
        """Inject ``spec`` into requests for ``model`` (``None``: all) for the next ``times``
        matching requests (``None``: until changed); ``spec=None`` clears it."""
        self._faults.set(AnthropicFault.parse(spec) if spec is not None else None, model, times)

    # -- plumbing --------------------------------------------------------------------------

    def _headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        return {
            "request-id": request_id(),
            "anthropic-organization-id": ORGANIZATION_ID,
            **rate_limit_headers(),
            **(extra or {}),
        }

    def _error(
        self,
        status: int,
        etype: str,
        message: str,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> web.Response:
        hdrs = self._headers(headers)
        hdrs["content-type"] = _JSON
        body = orjson.dumps(error_body(etype, message, code))
        return web.Response(status=status, body=body, headers=hdrs)

    def _bad(self, exc: AnthropicBadRequest) -> web.Response:
        return self._error(exc.status, exc.type, exc.message)

    def _check_auth(self, request: web.Request) -> web.Response | None:
        key = request.headers.get("x-api-key")
        bearer = request.headers.get("authorization", "")
        token = bearer[7:].strip() if bearer.lower().startswith("bearer ") else None
        given = [k for k in (key, token) if k]
        if not given:
            return self._error(401, "authentication_error", "x-api-key header is required")
        if self.api_key is not None and self.api_key not in given:
            return self._error(401, "authentication_error", "invalid x-api-key")
        return None

    def _fault_for(self, request: web.Request, model: str | None) -> AnthropicFault | None:
        header = request.headers.get("x-fake-fault")
        if header is not None:
            try:
                return AnthropicFault.parse(header)
            except ValueError as exc:
                raise AnthropicBadRequest(f"invalid x-fake-fault header: {exc}") from None
        return self._faults.pick(model)

    def _latency_for(self, request: web.Request) -> Latency:
        header = request.headers.get("x-fake-latency")
        try:
            return self.latency if header is None else Latency.parse(header)
        except ValueError as exc:
            raise AnthropicBadRequest(f"invalid x-fake-latency header: {exc}") from None

    async def _prelude(
        self, request: web.Request
    ) -> tuple[Any, str, AnthropicFault | None, web.StreamResponse | None]:
        """Read, record, authenticate, check the version, pick and apply the fault."""
        raw = await request.read()
        try:
            body: Any = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            body = None
        entry = {
            "method": request.method,
            "path": request.path,
            "headers": {k.lower(): v for k, v in request.headers.items()},
            "body": body,
        }
        with self._lock:
            self._requests.append(entry)
        denied = self._check_auth(request)
        if denied is not None:
            return body, "", None, denied
        version = check_version(request.headers.get("anthropic-version"))
        model = body.get("model") if isinstance(body, dict) else None
        fault = self._fault_for(request, model if isinstance(model, str) else None)
        early = None
        if fault is not None:
            stream = isinstance(body, dict) and body.get("stream") is True
            early = await self._apply_fault(request, fault, stream)
        return body, version, fault, early

    async def _apply_fault(
        self, request: web.Request, fault: AnthropicFault, stream: bool
    ) -> web.StreamResponse | None:
        spec = fault.spec
        if spec is not None and spec.timeout:
            await asyncio.sleep(spec.timeout)
        if spec is not None and spec.reset:
            if request.transport is not None:
                request.transport.abort()
            return web.Response(status=500)  # never reaches the client
        if spec is not None and spec.status is not None and spec.status >= 400:
            etype, message = error_for(spec.status)
            extra: dict[str, str] = {}
            if spec.status in (429, 529):
                wait = spec.retry_after or 0
                extra["retry-after"] = str(int(wait)) if float(wait).is_integer() else f"{wait:g}"
                extra.update(rate_limit_headers(spec.status == 429, wait))
            return self._error(
                spec.status, spec.type or etype, spec.message or message, spec.code, extra
            )
        if fault.stream_error is not None and not stream:
            status = TYPE_STATUS.get(fault.error_type, 500)
            return self._error(status, fault.error_type, fault.error_message)
        if spec is not None and spec.malformed:
            if stream:
                content_type = _SSE
                body = b'event: message_start\ndata: {"type": "message_start", "mess\n\n'
            else:
                content_type = _JSON
                body = b'{"id": "msg_broken", "type": "message", "conte'
            headers = self._headers({"content-type": content_type})
            return web.Response(status=200, body=body, headers=headers)
        return None

    # -- handlers --------------------------------------------------------------------------

    async def _models(self, request: web.Request) -> web.Response:
        data = [
            {"type": "model", "id": m, "display_name": m, "created_at": "2025-09-29T00:00:00Z"}
            for m in MODELS
        ]
        body = {"data": data, "has_more": False, "first_id": MODELS[0], "last_id": MODELS[-1]}
        return web.Response(body=orjson.dumps(body), headers=self._headers(), content_type=_JSON)

    async def _count_tokens(self, request: web.Request) -> web.StreamResponse:
        try:
            body, version, _, early = await self._prelude(request)
            if early is not None:
                return early
            req = parse_messages_request(
                body, version, count_tokens=True, strict_alternation=self.strict_alternation
            )
        except AnthropicBadRequest as exc:
            return self._bad(exc)
        payload = orjson.dumps({"input_tokens": count_prompt(req)})
        return web.Response(body=payload, headers=self._headers({"content-type": _JSON}))

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        try:
            body, version, fault, early = await self._prelude(request)
            if early is not None:
                return early
            req = parse_messages_request(body, version, strict_alternation=self.strict_alternation)
            latency = self._latency_for(request)
            header = request.headers.get("x-fake-answer-tokens")
            answer_tokens = int(header) if header and header.isdigit() else None
        except AnthropicBadRequest as exc:
            return self._bad(exc)
        plan = plan_answer(req, answer_tokens)
        prompt = self.cache.account(req.model, prompt_segments(req))
        msg_id = f"msg_01{uuid.uuid4().hex[:22]}"
        if req.stream:
            events = stream_events(
                msg_id, req.model, plan, prompt, repeat_usage=version >= NEW_VERSION
            )
            if latency.first_token_ms > 0:
                await asyncio.sleep(latency.first_token_ms / 1000)
            headers = self._headers({"content-type": _SSE, "cache-control": "no-cache"})
            return await send_stream(request, events, headers, fault, latency)
        delay = (latency.first_token_ms + latency.per_token_ms * plan.output_tokens) / 1000
        if delay > 0:
            await asyncio.sleep(delay)
        payload = orjson.dumps(message_object(msg_id, req.model, plan, prompt))
        headers = self._headers({"content-type": _JSON})
        return await send_message(request, payload, headers, fault)
