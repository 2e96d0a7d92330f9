"""A fake AWS Bedrock Runtime: a real HTTP server (aiohttp) speaking Converse and ConverseStream.

``boto3`` works against it unchanged (it is the judge of the framing and both CRCs); boto3 is
synchronous, so run the fake in its own thread::

    with FakeBedrockServer() as fake:           # or: async with, for aiohttp clients
        client = boto3.client("bedrock-runtime", region_name=fake.region,
                              endpoint_url=fake.base_url, aws_access_key_id=FAKE_ACCESS_KEY,
                              aws_secret_access_key=FAKE_SECRET_KEY,
                              config=Config(retries={"total_max_attempts": 1}))

Endpoints: ``POST /model/{modelId}/converse`` and ``/converse-stream`` (the id is
percent-decoded; ``requests`` keeps both forms), ``GET /health``. Every request must be signed
(see ``fake_bedrock_auth``): the signature is recomputed for the known ``credentials``
(default ``{FAKE_ACCESS_KEY: FAKE_SECRET_KEY}``); ``Authorization: Bearer`` needs one of
``api_keys``. Bodies are validated like the real API
(``fake_bedrock_validate``); a model id starting with ``unknown`` is invalid. Answers, usage and
prompt caching are described in ``fake_bedrock_answers`` (header ``x-fake-answer-tokens: N`` sets
the answer length); ``latency`` delays answers like the fake OpenAI server's.

Faults: the ``FaultSpec`` strings of the other fakes (header ``x-fake-fault``, the ``faults``
config keyed by model id or ``"*"``, or ``set_fault``), with Bedrock's error shapes:
``status=429`` → ThrottlingException, ``500`` → InternalServerException, ``503`` →
ServiceUnavailableException, ``400`` ValidationException, ``403`` AccessDeniedException,
``404`` ResourceNotFoundException, ``408`` ModelTimeoutException, ``424`` ModelErrorException
(``code=`` picks another exception name, ``message=`` the message); ``timeout=S``, ``reset``,
``malformed`` (a truncated JSON body, or an event with a bad message CRC), ``cut=N`` (N frames,
then the connection is aborted), ``slow_stream=S``, and ``stream_error=N``: after N frames an
exception message (``throttlingException`` unless ``code=`` names another), then the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
import threading
import time
import uuid
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

import orjson
from aiohttp import web

from thrifty.providers.bedrock_eventstream import encode_event, encode_exception
from thrifty.testing.fake_bedrock_answers import PromptCache, plan_answer, stream_events
from thrifty.testing.fake_bedrock_auth import check_auth
from thrifty.testing.fake_bedrock_validate import BedrockValidationError, validate_converse
from thrifty.testing.faults import FaultSpec, FaultTable, Latency
from thrifty.testing.server_base import ServerLifecycle

__all__ = ["FAKE_ACCESS_KEY", "FAKE_SECRET_KEY", "BedrockFault", "FakeBedrockServer"]

FAKE_ACCESS_KEY = "AKIDTHRIFTYFAKE"
FAKE_SECRET_KEY = "thrifty-fake-secret"
MAX_RECORDED_REQUESTS = 1000
_JSON = "application/json"
_EVENT_STREAM = "application/vnd.amazon.eventstream"
_ERRORS: dict[int, tuple[str, str]] = {
    400: ("ValidationException", "Fake fault: invalid request."),
    403: ("AccessDeniedException", "You don't have access to the model with the specified ID."),
    404: ("ResourceNotFoundException", "Could not resolve the foundation model."),
    408: ("ModelTimeoutException", "Model has timed out in processing the request."),
    424: ("ModelErrorException", "The model returned an error."),
    429: ("ThrottlingException", "Too many requests, please wait before trying again."),
    500: ("InternalServerException", "The server encountered an error processing your request."),
    503: ("ServiceUnavailableException", "Bedrock is unable to process your request."),
}

_STREAM_ERRORS = {
    "throttlingException": "Too many requests, please wait before trying again.",
    "modelStreamErrorException": "The model stream failed while generating the response.",
    "internalServerException": "The server encountered an error processing your request.",
    "serviceUnavailableException": "Bedrock is unable to process your request.",
    "validationException": "The request is invalid.",
}


@dataclass(frozen=True, slots=True)
class BedrockFault:
    """A ``FaultSpec`` plus the Bedrock-only ``stream_error=N`` (an exception frame after N
    frames); parse with ``BedrockFault.parse`` (``None`` for ``""`` / ``none``)."""

    spec: FaultSpec
    stream_error: int | None = None

    @classmethod
    def parse(cls, text: str) -> BedrockFault | None:
        items, rest, stream_error = [], text, None
        while rest:
            item, _, rest = rest.partition(";")
            key, eq, value = item.strip().partition("=")
            if key.strip().lower().replace("-", "_") == "stream_error" and eq:
                stream_error = int(value)
                if stream_error < 0:
                    raise ValueError("stream_error must be >= 0")
                continue
            items.append(item)
            if key.strip().lower() == "message":
                items.append(rest)  # the message takes the rest of the spec
                break
        spec = FaultSpec.parse(";".join(items))
        if spec is None and stream_error is None:
            return None
        return cls(spec or FaultSpec(), stream_error)


class _Refused(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class FakeBedrockServer(ServerLifecycle):
    """A real HTTP server imitating Bedrock Runtime; see the module docstring. Start it with
    ``await start()`` / ``async with`` or ``start_in_thread()`` / ``with``."""

    thread_name = "fake-bedrock"

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        region: str = "us-east-1",
        credentials: Mapping[str, str] | None = None,
        api_keys: frozenset[str] | set[str] = frozenset(),
        strict_credentials: bool = False,
        faults: dict[str, str] | None = None,
        latency: Latency | None = None,
    ) -> None:
        super().__init__(host, port)
        self.region = region
        self.credentials = dict(credentials or {FAKE_ACCESS_KEY: FAKE_SECRET_KEY})
        self.api_keys = frozenset(api_keys)
        self.strict_credentials = strict_credentials
        self.latency = latency or Latency()
        self.cache = PromptCache()
        self._faults: FaultTable[BedrockFault] = FaultTable(
            {m: BedrockFault.parse(s) for m, s in (faults or {}).items()}
        )
        self._lock = threading.Lock()
        self._requests: deque[dict[str, Any]] = deque(maxlen=MAX_RECORDED_REQUESTS)

    def routes(self, app: web.Application) -> None:
        app.router.add_route("*", "/{tail:.*}", self._handle)

    # -- test helpers ----------------------------------------------------------------------

    @property
    def requests(self) -> list[dict[str, Any]]:
        """The last 1000 requests, oldest first: ``{"method", "raw_path", "model" (decoded),
        "operation", "headers" (lower-case keys), "body", "access_key"}``."""
        with self._lock:
            return list(self._requests)

    def clear(self) -> None:
        """Forget recorded requests and the prompt cache."""
        with self._lock:
            self._requests.clear()
        self.cache.clear()

    def set_fault(
        self, spec: str | None, model: str | None = None, times: int | None = None
    ) -> None:
        """Inject ``spec`` into requests for ``model`` (``None``: every request), for the next
        ``times`` matching requests (``None``: until changed). ``spec=None`` clears it."""
        self._faults.set(BedrockFault.parse(spec) if spec is not None else None, model, times)

    def _fault_for(self, request: web.Request, model: str) -> BedrockFault | None:
        header = request.headers.get("x-fake-fault")
        if header is not None:
            try:
                return BedrockFault.parse(header)
            except ValueError as exc:
                raise _Refused(400, "ValidationException", f"invalid x-fake-fault: {exc}") from None
        return self._faults.pick(model)

    # -- plumbing --------------------------------------------------------------------------

    @staticmethod
    def _headers(content_type: str = _JSON) -> dict[str, str]:
        return {"x-amzn-RequestId": str(uuid.uuid4()), "content-type": content_type}

    def _error(self, status: int, code: str, message: str, **extra: str) -> web.Response:
        headers = self._headers()
        headers["x-amzn-ErrorType"] = f"{code}:http://internal.amazon.com/coral/com.amazon.bedrock/"
        headers.update(extra)
        return web.Response(status=status, body=orjson.dumps({"message": message}), headers=headers)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        started = time.monotonic()
        raw = await request.read()
        raw_path = request.raw_path
        path = raw_path.split("?", 1)[0]
        segments = path.split("/")
        entry: dict[str, Any] = {
            "method": request.method,
            "raw_path": raw_path,
            "model": None,
            "operation": None,
            "headers": {k.lower(): v for k, v in request.headers.items()},
            "body": None,
        }
        with contextlib.suppress(orjson.JSONDecodeError):
            entry["body"] = orjson.loads(raw) if raw else None
        ok_path = len(segments) == 4 and segments[1] == "model" and segments[2]
        if ok_path and request.method == "POST" and segments[3] in ("converse", "converse-stream"):
            entry["model"], entry["operation"] = unquote(segments[2]), segments[3]
        failure, entry["access_key"] = check_auth(
            header=lambda n: ",".join(request.headers.getall(n, [])) or None,
            raw_path=raw_path,
            body=raw,
            region=self.region,
            credentials=self.credentials,
            api_keys=self.api_keys,
            strict=self.strict_credentials,
        )
        with self._lock:
            self._requests.append(entry)
        if failure is not None:
            return self._error(failure.status, failure.code, failure.message)
        if entry["operation"] is None:
            return self._error(404, "UnknownOperationException", "Unknown operation")
        model: str = entry["model"]
        stream = entry["operation"] == "converse-stream"
        try:
            fault = self._fault_for(request, model)
            early = await self._apply_fault(request, fault, stream)
            if early is not None:
                return early
            if model.startswith("unknown"):
                raise _Refused(
                    400, "ValidationException", "The provided model identifier is invalid."
                )
            try:
                validate_converse(entry["body"])
            except BedrockValidationError as exc:
                raise _Refused(exc.status, exc.code, exc.message) from None
            header_tokens = request.headers.get("x-fake-answer-tokens")
            tokens = int(header_tokens) if header_tokens and header_tokens.isdigit() else None
            plan = plan_answer(model, entry["body"], self.cache, tokens)
        except _Refused as exc:
            return self._error(exc.status, exc.code, exc.message)
        latency = self.latency
        if stream:
            return await self._stream(request, plan, fault, latency)
        delay = (latency.first_token_ms + latency.per_token_ms * plan.usage["outputTokens"]) / 1000
        if delay > 0:
            await asyncio.sleep(delay)
        elapsed = int((time.monotonic() - started) * 1000)
        return await self._send_json(request, orjson.dumps(plan.response(elapsed)), fault)

    async def _apply_fault(
        self, request: web.Request, fault: BedrockFault | None, stream: bool
    ) -> web.StreamResponse | None:
        spec = fault.spec if fault is not None else None
        if spec is None:
            return None
        if spec.timeout:
            await asyncio.sleep(spec.timeout)
        if spec.reset:
            if request.transport is not None:
                request.transport.abort()
            return web.Response(status=500)  # never reaches the client
        if spec.status is not None and spec.status >= 400:
            default = "InternalServerException" if spec.status >= 500 else "ValidationException"
            code, message = _ERRORS.get(spec.status, (default, "Fake fault."))
            extra = {"retry-after": f"{spec.retry_after:g}"} if spec.retry_after is not None else {}
            return self._error(spec.status, spec.code or code, spec.message or message, **extra)
        if spec.malformed and not stream:
            body = b'{"output": {"message": {"role": "assistant", "content": [{"te'
            return web.Response(status=200, body=body, headers=self._headers())
        return None

    async def _send_json(
        self, request: web.Request, body: bytes, fault: BedrockFault | None
    ) -> web.StreamResponse:
        spec = fault.spec if fault is not None else None
        headers = self._headers()
        if spec is None or (spec.cut is None and not spec.slow_stream):
            return web.Response(body=body, headers=headers)
        headers["content-length"] = str(len(body))
        resp = web.StreamResponse(headers=headers)
        await resp.prepare(request)
        if spec.slow_stream:
            await asyncio.sleep(spec.slow_stream)
        if spec.cut is not None:
            await resp.write(body[: max(1, len(body) // 2)])
            return await _abort(request, resp)
        await resp.write(body)
        await resp.write_eof()
        return resp

    async def _stream(
        self, request: web.Request, plan: Any, fault: BedrockFault | None, latency: Latency
    ) -> web.StreamResponse:
        spec = fault.spec if fault is not None else FaultSpec()
        stream_error = fault.stream_error if fault is not None else None
        if latency.first_token_ms > 0:
            await asyncio.sleep(latency.first_token_ms / 1000)
        resp = web.StreamResponse(headers=self._headers(_EVENT_STREAM))
        await resp.prepare(request)
        per_token_s = latency.per_token_ms / 1000
        events = stream_events(plan, int(latency.first_token_ms))
        for written, (event_type, payload) in enumerate(events):
            if spec.cut is not None and written >= spec.cut:
                return await _abort(request, resp)
            if stream_error is not None and written >= stream_error:
                code = spec.code or "throttlingException"
                code = code[:1].lower() + code[1:]
                message = spec.message or _STREAM_ERRORS.get(code, "The stream failed.")
                await resp.write(encode_exception(code, message))
                await resp.write_eof()
                return resp
            frame = encode_event(event_type, payload)
            if spec.malformed and written == 1:
                frame = frame[:-4] + struct.pack(
                    "!I", ~struct.unpack("!I", frame[-4:])[0] & 0xFFFFFFFF
                )
            if per_token_s > 0 and event_type == "contentBlockDelta":
                await asyncio.sleep(per_token_s)
            await resp.write(frame)
            if written == 0 and spec.slow_stream:
                await asyncio.sleep(spec.slow_stream)
        if spec.cut is not None:
            return await _abort(request, resp)
        await resp.write_eof()
        return resp


async def _abort(request: web.Request, resp: web.StreamResponse) -> web.StreamResponse:
    """Reset the connection mid-response (after letting what was written leave)."""
    await asyncio.sleep(0.01)
    if request.transport is not None:
        request.transport.abort()
    return resp
