"""A fake OpenAI API: a real HTTP server (aiohttp) speaking OpenAI's wire format.

Used by tests, the demo and benchmarks; the official ``openai`` SDK works against it unchanged::

    async with FakeOpenAIServer() as fake:
        client = AsyncOpenAI(base_url=fake.base_url, api_key="x")

    fake = FakeOpenAIServer(latency=Latency(first_token_ms=20, per_token_ms=2))
    base_url = fake.start_in_thread()     # for sync code; fake.stop_thread() when done

Endpoints: ``POST /v1/chat/completions`` (stream and not), ``POST /v1/embeddings``,
``GET /v1/models``, ``GET /v1/models/{id}``, ``GET /health``. Any model id is known unless it
starts with ``unknown`` (404 ``model_not_found``).

Answers are deterministic (see ``fake_openai_answers``); ``usage`` is counted with
``thrifty.tokens``. Per-request control headers:

- ``x-fake-fault: <spec>`` a fault (see ``faults.FaultSpec``), or ``none``;
- ``x-fake-latency: first=50,token=5`` milliseconds (see ``faults.Latency``);
- ``x-fake-answer-tokens: N`` answer length (also ``[fake:tokens=N]`` inside a message).

Faults are chosen by the header, else by the ``faults`` config (keyed by model id, ``"*"`` for all),
else by ``set_fault``. ``requests`` keeps the last 1000 ``/v1`` requests for assertions.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections import deque
from collections.abc import Mapping
from typing import Any

import orjson
import tiktoken
from aiohttp import web

from thrifty.testing.fake_openai_answers import ChatKnobs, ChoicePlan, plan_choice
from thrifty.testing.fake_openai_requests import (
    BadRequest,
    chat_knobs,
    check_model,
    embedding_args,
    model_of,
)
from thrifty.testing.fake_openai_wire import (
    DEFAULT_MODELS,
    RATE_LIMIT_HEADERS,
    SYSTEM_FINGERPRINT,
    choice_object,
    chunk_events,
    fault_error,
    float32_base64,
    interleave,
    model_object,
    unit_vector,
    usage_object,
)
from thrifty.testing.faults import FaultSpec, FaultTable, Latency
from thrifty.testing.server_base import ServerLifecycle
from thrifty.tokens import count_messages, count_text, encoding_for

__all__ = ["FakeOpenAIServer", "FaultSpec", "Latency", "run_fake_upstream"]

_JSON = "application/json"
_SSE = "text/event-stream; charset=utf-8"

MAX_RECORDED_REQUESTS = 1000


class FakeOpenAIServer(ServerLifecycle):
    """A real HTTP server imitating the OpenAI API; see the module docstring.

    Start it with ``await start()`` (or ``async with``) on the running loop, or with
    ``start_in_thread()`` on its own loop in a daemon thread. ``set_fault`` and ``requests`` may
    be used from any thread.
    """

    thread_name = "fake-openai"

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        latency: Latency | None = None,
        faults: dict[str, str] | None = None,
        embedding_dim: int = 256,
        api_key: str | None = None,
    ) -> None:
        super().__init__(host, port)
        self.latency = latency or Latency()
        self.embedding_dim = embedding_dim
        self.api_key = api_key
        self._faults: FaultTable[FaultSpec] = FaultTable(
            {model: FaultSpec.parse(spec) for model, spec in (faults or {}).items()}
        )
        self._lock = threading.Lock()
        self._requests: deque[dict[str, Any]] = deque(maxlen=MAX_RECORDED_REQUESTS)
        self._models_body = orjson.dumps(
            {"object": "list", "data": [model_object(m) for m in DEFAULT_MODELS]}
        )

    # -- lifecycle (``ServerLifecycle``) ---------------------------------------------------

    @property
    def base_url(self) -> str:
        """``http://host:port/v1``, what the OpenAI SDK takes as ``base_url``."""
        return f"{self.root_url}/v1"

    async def prepare(self) -> None:
        # Build the tokenizers now (once per process), not on the first request.
        await asyncio.to_thread(_warm_tokenizers)

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/v1/embeddings", self._embeddings)
        app.router.add_get("/v1/models", self._models)
        app.router.add_get("/v1/models/{model_id:.+}", self._model)

    # -- test helpers ----------------------------------------------------------------------

    @property
    def requests(self) -> list[dict[str, Any]]:
        """The last 1000 ``/v1`` requests, oldest first: ``{"method", "path", "headers"
        (lower-case keys), "body" (parsed JSON or None)}``."""
        with self._lock:
            return list(self._requests)

    def clear(self) -> None:
        """Forget recorded requests."""
        with self._lock:
            self._requests.clear()

    def set_fault(
        self, spec: str | None, model: str | None = None, times: int | None = None
    ) -> None:
        """Inject ``spec`` into requests for ``model`` (``None``: every request), for the next
        ``times`` matching requests (``None``: until changed). ``spec=None`` clears it."""
        self._faults.set(FaultSpec.parse(spec) if spec is not None else None, model, times)

    # -- plumbing --------------------------------------------------------------------------

    def _record(self, request: web.Request, body: Any) -> None:
        entry = {
            "method": request.method,
            "path": request.path,
            "headers": {k.lower(): v for k, v in request.headers.items()},
            "body": body,
        }
        with self._lock:
            self._requests.append(entry)

    def _headers(self, started: float, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        headers = {
            "x-request-id": f"req_{uuid.uuid4().hex}",
            "openai-version": "2020-10-01",
            "openai-processing-ms": str(int((time.monotonic() - started) * 1000)),
            **RATE_LIMIT_HEADERS,
        }
        if extra:
            headers.update(extra)
        return headers

    def _error(
        self,
        started: float,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> web.Response:
        body = {"error": {"message": message, "type": type, "param": param, "code": code}}
        hdrs = self._headers(started, headers)
        hdrs["content-type"] = _JSON
        return web.Response(status=status, body=orjson.dumps(body), headers=hdrs)

    def _check_auth(self, request: web.Request, started: float) -> web.Response | None:
        if self.api_key is None:
            return None
        auth = request.headers.get("authorization", "")
        if auth == f"Bearer {self.api_key}":
            return None
        given = auth.removeprefix("Bearer ").strip()
        message = (
            f"Incorrect API key provided: {given[:3]}***{given[-4:]}."
            if given
            else "You didn't provide an API key. Provide it as 'Authorization: Bearer YOUR_KEY'."
        )
        return self._error(started, 401, message, code="invalid_api_key")

    def _fault_for(self, request: web.Request, model: str | None) -> FaultSpec | None:
        header = request.headers.get("x-fake-fault")
        if header is not None:
            try:
                return FaultSpec.parse(header)
            except ValueError as exc:
                raise BadRequest(f"invalid x-fake-fault header: {exc}") from None
        return self._faults.pick(model)

    def _latency_for(self, request: web.Request) -> Latency:
        header = request.headers.get("x-fake-latency")
        if header is None:
            return self.latency
        try:
            return Latency.parse(header)
        except ValueError as exc:
            raise BadRequest(f"invalid x-fake-latency header: {exc}") from None

    async def _prelude(
        self, request: web.Request, *, model: str | None = None, has_body: bool = True
    ) -> tuple[float, Any, FaultSpec | None, web.StreamResponse | None]:
        """Read, record, authenticate and pick the fault; may answer early."""
        started = time.monotonic()
        body: Any = None
        parse_error = False
        if has_body:
            raw = await request.read()
            try:
                body = orjson.loads(raw) if raw else None
            except orjson.JSONDecodeError:
                parse_error = True
        self._record(request, body)
        denied = self._check_auth(request, started)
        if denied is not None:
            return started, body, None, denied
        if model is None:
            model = model_of(body)
        fault = self._fault_for(request, model)
        if fault is not None:
            stream = isinstance(body, dict) and body.get("stream") is True
            early = await self._apply_fault(request, started, fault, stream)
            if early is not None:
                return started, body, fault, early
        if parse_error or (has_body and not isinstance(body, dict)):
            raise BadRequest(
                "We could not parse the JSON body of your request. (HINT: This likely means "
                "you aren't using your HTTP library correctly. The OpenAI API expects a JSON "
                "payload, but what was sent was not valid JSON.)"
            )
        return started, body, fault, None

    async def _apply_fault(
        self, request: web.Request, started: float, fault: FaultSpec, stream: bool
    ) -> web.StreamResponse | None:
        if fault.timeout:
            await asyncio.sleep(fault.timeout)
        if fault.reset:
            if request.transport is not None:
                request.transport.abort()
            return web.Response(status=500)  # never reaches the client
        if fault.status is not None and fault.status >= 400:
            type_, code, message = fault_error(fault.status)
            extra: dict[str, str] = {}
            if fault.retry_after is not None:
                extra["retry-after"] = _seconds(fault.retry_after)
                extra["retry-after-ms"] = str(int(fault.retry_after * 1000))
            if fault.status == 429:
                extra["x-ratelimit-remaining-requests"] = "0"
                extra["x-ratelimit-reset-requests"] = f"{_seconds(fault.retry_after or 1)}s"
            return self._error(
                started,
                fault.status,
                fault.message or message,
                type=fault.type or type_,
                code=fault.code or code,
                headers=extra,
            )
        if fault.malformed:
            headers = self._headers(started)
            if stream:
                headers["content-type"] = _SSE
                body = b'data: {"id": "chatcmpl-broken", "choices": [{"ind\n\ndata: [DONE]\n\n'
            else:
                headers["content-type"] = _JSON
                body = b'{"id": "chatcmpl-broken", "object": "chat.completion", "choi'
            return web.Response(status=200, body=body, headers=headers)
        return None

    async def _send_json(
        self,
        request: web.Request,
        payload: Any,
        headers: dict[str, str],
        fault: FaultSpec | None,
        delay_s: float = 0.0,
    ) -> web.StreamResponse:
        body = orjson.dumps(payload)
        if delay_s > 0:
            await asyncio.sleep(delay_s)
        headers["content-type"] = _JSON
        if fault is None or (fault.cut is None and not fault.slow_stream):
            return web.Response(body=body, headers=headers)
        headers["content-length"] = str(len(body))
        resp = web.StreamResponse(headers=headers)
        await resp.prepare(request)
        if fault.slow_stream:
            await asyncio.sleep(fault.slow_stream)
        if fault.cut is not None:
            await resp.write(body[: max(1, len(body) // 2)])
            await asyncio.sleep(0.01)  # let the partial body leave before the reset
            if request.transport is not None:
                request.transport.abort()
            return resp
        await resp.write(body)
        await resp.write_eof()
        return resp

    # -- handlers --------------------------------------------------------------------------

    async def _models(self, request: web.Request) -> web.StreamResponse:
        try:
            started, _, fault, early = await self._prelude(request, has_body=False)
        except BadRequest as exc:
            return self._bad(exc)
        if early is not None:
            return early
        headers = self._headers(started, {"content-type": _JSON})
        if fault is not None and (fault.cut is not None or fault.slow_stream):
            return await self._send_json(request, orjson.loads(self._models_body), headers, fault)
        return web.Response(body=self._models_body, headers=headers)

    async def _model(self, request: web.Request) -> web.StreamResponse:
        model_id = request.match_info["model_id"]
        try:
            started, _, fault, early = await self._prelude(request, model=model_id, has_body=False)
            if early is not None:
                return early
            check_model(model_id)
        except BadRequest as exc:
            return self._bad(exc)
        return await self._send_json(request, model_object(model_id), self._headers(started), fault)

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        try:
            started, body, fault, early = await self._prelude(request)
            if early is not None:
                return early
            knobs, stream, include_usage = chat_knobs(
                body, request.headers.get("x-fake-answer-tokens")
            )
            latency = self._latency_for(request)
        except BadRequest as exc:
            return self._bad(exc)

        enc, _ = encoding_for(knobs.model)
        tools = body.get("tools") if isinstance(body.get("tools"), list) else None
        prompt_tokens = count_messages(body["messages"], knobs.model, tools)
        plans = [plan_choice(knobs, enc, i) for i in range(knobs.n)]
        completion_tokens = sum(p.completion_tokens for p in plans)
        usage = usage_object(prompt_tokens, completion_tokens)
        completion_id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        created = int(time.time())
        if stream:
            return await self._stream_chat(
                request,
                started,
                knobs,
                plans,
                enc,
                usage if include_usage else None,
                fault,
                latency,
                completion_id,
                created,
            )
        payload = {
            "id": completion_id,
            "object": "chat.completion",
            "created": created,
            "model": knobs.model,
            "choices": [choice_object(p, knobs.logprobs) for p in plans],
            "usage": usage,
            "service_tier": "default",
            "system_fingerprint": SYSTEM_FINGERPRINT,
        }
        delay = (latency.first_token_ms + latency.per_token_ms * completion_tokens) / 1000
        return await self._send_json(request, payload, self._headers(started), fault, delay)

    async def _stream_chat(
        self,
        request: web.Request,
        started: float,
        knobs: ChatKnobs,
        plans: list[ChoicePlan],
        enc: tiktoken.Encoding,
        usage: dict[str, Any] | None,
        fault: FaultSpec | None,
        latency: Latency,
        completion_id: str,
        created: int,
    ) -> web.StreamResponse:
        if latency.first_token_ms > 0:
            await asyncio.sleep(latency.first_token_ms / 1000)
        headers = self._headers(started, {"content-type": _SSE, "cache-control": "no-cache"})
        resp = web.StreamResponse(headers=headers)
        await resp.prepare(request)
        base: dict[str, Any] = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": knobs.model,
            "service_tier": "default",
            "system_fingerprint": SYSTEM_FINGERPRINT,
        }
        if usage is not None:
            base["usage"] = None
        per_token_s = latency.per_token_ms / 1000
        cut = fault.cut if fault is not None else None
        pause = fault.slow_stream if fault is not None else None
        dumps = orjson.dumps
        written = 0
        for choice, n_tokens in interleave([chunk_events(p, enc) for p in plans]):
            if cut is not None and written >= cut:
                return _abort(request, resp)
            if per_token_s > 0 and n_tokens:
                await asyncio.sleep(per_token_s * n_tokens)
            base["choices"] = [choice]
            await resp.write(b"data: " + dumps(base) + b"\n\n")
            written += 1
            if written == 1 and pause:
                await asyncio.sleep(pause)
        if usage is not None:
            if cut is not None and written >= cut:
                return _abort(request, resp)
            base["choices"] = []
            base["usage"] = usage
            await resp.write(b"data: " + dumps(base) + b"\n\n")
            written += 1
        if cut is not None:
            return _abort(request, resp)
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp

    async def _embeddings(self, request: web.Request) -> web.StreamResponse:
        try:
            started, body, fault, early = await self._prelude(request)
            if early is not None:
                return early
            model, inputs, dims, as_base64 = embedding_args(body, self.embedding_dim)
            latency = self._latency_for(request)
        except BadRequest as exc:
            return self._bad(exc)
        data = []
        prompt_tokens = 0
        for i, item in enumerate(inputs):
            if isinstance(item, str):
                prompt_tokens += count_text(item, model)
                key = b"s:" + item.encode("utf-8", "surrogatepass")
            else:
                prompt_tokens += len(item)
                key = b"t:" + orjson.dumps(item)
            vec = unit_vector(key, dims)
            vector: Any = float32_base64(vec) if as_base64 else vec.tolist()
            data.append({"object": "embedding", "index": i, "embedding": vector})
        payload = {
            "object": "list",
            "data": data,
            "model": model,
            "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
        }
        delay = latency.first_token_ms / 1000
        return await self._send_json(request, payload, self._headers(started), fault, delay)

    def _bad(self, exc: BadRequest) -> web.Response:
        return self._error(
            time.monotonic(), exc.status, exc.message, param=exc.param, code=exc.code
        )


def _warm_tokenizers() -> None:
    encoding_for("gpt-4o")
    encoding_for("gpt-4")


def _abort(request: web.Request, resp: web.StreamResponse) -> web.StreamResponse:
    """Reset the connection mid-response (no terminating chunk, no [DONE])."""
    if request.transport is not None:
        request.transport.abort()
    return resp


def _seconds(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


# -- CLI ----------------------------------------------------------------------------------


def run_fake_upstream(host: str, port: int, latency: Latency | None) -> None:
    """Serve a ``FakeOpenAIServer`` until Ctrl-C (uses uvloop when installed)."""

    async def serve() -> None:
        async with FakeOpenAIServer(host, port, latency=latency) as server:
            print(f"Fake OpenAI upstream listening on {server.base_url}", flush=True)
            await asyncio.Event().wait()

    loop_factory = None
    try:
        import uvloop

        loop_factory = uvloop.new_event_loop
    except ImportError:  # pragma: no cover - uvloop comes with uvicorn[standard]
        pass
    try:
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            runner.run(serve())
    except KeyboardInterrupt:
        pass
