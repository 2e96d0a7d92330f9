"""A fake Google Gemini API: a real aiohttp HTTP server speaking Gemini's wire format.

Used by tests and the demo; ``google-genai`` works against it::

    async with FakeGeminiServer(api_key="test") as fake:
        client = genai.Client(api_key="test", http_options={"base_url": fake.base_url})

Endpoints, under ``/v1``, ``/v1beta`` and ``/v1alpha``: ``POST models/{model}:generateContent``,
``:streamGenerateContent`` (SSE framed with ``\\r\\n\\r\\n`` with ``?alt=sse``, else one JSON
array), ``:countTokens``, ``:embedContent``, ``:batchEmbedContents``; ``GET models`` and
``GET models/{model}``; ``GET /health``. The key is ``x-goog-api-key`` or ``?key=`` (checked only
when ``api_key`` is set: missing → 403 ``PERMISSION_DENIED``, wrong → 400 ``API_KEY_INVALID``).
Models starting with ``unknown`` are 404, as are embedding models asked to generate and the
reverse. Answers and usage: ``fake_gemini_answers``; validation: ``fake_gemini_wire``.

Control headers (as for ``FakeOpenAIServer``): ``x-fake-fault`` (a ``FaultSpec``: error statuses
get Google's error body; ``retry_after=S`` adds a ``retry-after`` header and a ``RetryInfo``
detail; ``cut=N`` sends N stream events then resets), ``x-fake-latency``,
``x-fake-answer-tokens``, plus ``x-fake-cached-tokens``, ``x-fake-thoughts-tokens`` and
``x-fake-stream-error: <status>`` (a stream sends one chunk, then Google's error body as an
event). Faults may also come from ``faults`` (by model, ``"*"`` for all) or ``set_fault``.
``requests`` records the last 1000 API requests.
"""

from __future__ import annotations

import uuid
from typing import Any

import orjson
from aiohttp import web

from thrifty.testing.fake_gemini_answers import (
    count_prompt,
    plan_answer,
    response_body,
    stream_bodies,
)
from thrifty.testing.fake_gemini_base import FakeServerBase, header_int
from thrifty.testing.fake_gemini_wire import (
    FAULT_MESSAGES,
    GeminiError,
    check_model,
    embed_texts,
    error_body,
    parse_generate,
)
from thrifty.testing.fake_openai_wire import unit_vector
from thrifty.testing.faults import FaultSpec, Latency
from thrifty.tokens import encoding_for

__all__ = ["DEFAULT_MODELS", "FakeGeminiServer"]

VERSIONS = frozenset({"v1", "v1beta", "v1alpha"})
DEFAULT_MODELS = (
    "gemini-2.5-pro",
    "gemini-2.5-flash",
    "gemini-2.5-flash-lite",
    "gemini-2.0-flash",
    "gemini-3-pro-preview",
    "gemini-embedding-001",
    "text-embedding-004",
)
_JSON = "application/json; charset=UTF-8"
_SSE = "text/event-stream"
_METHODS = frozenset(
    {"generateContent", "streamGenerateContent", "countTokens"}
    | {"embedContent", "batchEmbedContents"}
)


def _model_info(model: str) -> dict[str, Any]:
    embedding = "embedding" in model
    methods = (
        ["embedContent", "batchEmbedContents"]
        if embedding
        else ["generateContent", "streamGenerateContent", "countTokens"]
    )
    return {
        "name": f"models/{model}",
        "version": "001",
        "displayName": model,
        "inputTokenLimit": 2048 if embedding else 1_048_576,
        "outputTokenLimit": 1 if embedding else 65_536,
        "supportedGenerationMethods": methods,
    }


class FakeGeminiServer(FakeServerBase):
    """A real HTTP server imitating the Gemini API; see the module docstring."""

    thread_name = "fake-gemini"

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        latency: Latency | None = None,
        faults: dict[str, str] | None = None,
        api_key: str | None = None,
        embedding_dim: int | None = None,
    ) -> None:
        super().__init__(host, port, latency=latency, faults=faults)
        self.api_key = api_key
        self.embedding_dim = embedding_dim

    @property
    def base_url(self) -> str:
        """``http://host:port`` (what ``google-genai`` takes as ``base_url``)."""
        return self.root_url

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/{version}/models/{target}", self._post)
        app.router.add_get("/{version}/models", self._list)
        app.router.add_get("/{version}/models/{model}", self._get)

    # -- plumbing --------------------------------------------------------------------------
    def error(
        self, status: int, message: str, details: list[dict[str, Any]] | None = None, **hdrs: str
    ) -> web.Response:
        body = orjson.dumps(error_body(status, message, details))
        headers = {"content-type": _JSON, **{k.replace("_", "-"): v for k, v in hdrs.items()}}
        return web.Response(status=status, body=body, headers=headers)

    def _auth(self, request: web.Request) -> web.Response | None:
        if self.api_key is None:
            return None
        given = request.headers.get("x-goog-api-key") or request.query.get("key")
        if given == self.api_key:
            return None
        if not given:
            return self.error(
                403,
                "Method doesn't allow unregistered callers (callers without established "
                "identity). Please use API Key or other form of API consumer identity to call "
                "this API.",
            )
        info = {
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": "API_KEY_INVALID",
            "domain": "googleapis.com",
            "metadata": {"service": "generativelanguage.googleapis.com"},
        }
        return self.error(400, "API key not valid. Please pass a valid API key.", [info])

    def fault_response(self, fault: FaultSpec, stream: bool) -> web.Response:
        """The early answer for a status or malformed fault."""
        if fault.malformed:
            if stream:
                body = b'data: {"candidates": [{"content": {"ro\r\n\r\n'
                return web.Response(body=body, headers={"content-type": _SSE})
            body = b'{"candidates": [{"content": {"role": "model", "pa'
            return web.Response(body=body, headers={"content-type": _JSON})
        assert fault.status is not None
        status = fault.status
        message = fault.message or FAULT_MESSAGES.get(status, "Fake fault.")
        details: list[dict[str, Any]] = []
        headers: dict[str, str] = {}
        if fault.retry_after is not None:
            headers["retry_after"] = f"{fault.retry_after:g}"
            details.append(
                {
                    "@type": "type.googleapis.com/google.rpc.RetryInfo",
                    "retryDelay": f"{fault.retry_after:g}s",
                }
            )
        return self.error(status, message, details, **headers)

    # -- handlers --------------------------------------------------------------------------
    async def _list(self, request: web.Request) -> web.StreamResponse:
        self.record(request, None)
        denied = self._auth(request)
        if denied is not None:
            return denied
        return web.json_response({"models": [_model_info(m) for m in DEFAULT_MODELS]})

    async def _get(self, request: web.Request) -> web.StreamResponse:
        self.record(request, None)
        denied = self._auth(request)
        if denied is not None:
            return denied
        model = request.match_info["model"]
        if model.startswith("unknown"):
            return self.error(404, f"models/{model} is not found for API version.")
        return web.json_response(_model_info(model))

    async def _post(self, request: web.Request) -> web.StreamResponse:
        version = request.match_info["version"]
        model, _, method = request.match_info["target"].rpartition(":")
        raw = await request.read()
        try:
            body: Any = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            body = raw.decode("utf-8", "replace")
        self.record(request, body)
        if version not in VERSIONS or method not in _METHODS or not model:
            return self.error(404, f"Method not found: {request.path}")
        denied = self._auth(request)
        if denied is not None:
            return denied
        stream = method == "streamGenerateContent"
        try:
            fault = self.fault_for(request, model)
        except ValueError as exc:
            return self.error(400, f"invalid x-fake-fault header: {exc}")
        if fault is not None:
            early = await self.apply_fault(request, fault, stream)
            if early is not None:
                return early
        try:
            check_model(model, version, method)
            if method in ("embedContent", "batchEmbedContents"):
                return await self._embed(request, body, model, method, fault)
            req = parse_generate(body if method != "countTokens" else _count_body(body), model)
            if method == "countTokens":
                text, media = count_prompt(req, encoding_for(model)[0])
                return web.json_response({"totalTokens": text + media})
            return await self._generate(request, req, fault, stream)
        except GeminiError as exc:
            return self.error(exc.status, exc.message, exc.details)
        except ValueError as exc:  # a bad control header
            return self.error(400, str(exc))

    async def _generate(
        self, request: web.Request, req: Any, fault: FaultSpec | None, stream: bool
    ) -> web.StreamResponse:
        enc, _ = encoding_for(req.model)
        answer = plan_answer(
            req,
            enc,
            answer_tokens=header_int(request, "x-fake-answer-tokens"),
            cached_tokens=header_int(request, "x-fake-cached-tokens") or 0,
            thoughts_override=header_int(request, "x-fake-thoughts-tokens"),
        )
        latency = self.latency_for(request)
        response_id = uuid.uuid4().hex[:22]
        if not stream:
            body = response_body(answer, req.model, response_id)
            output = sum(c.tokens for c in answer.candidates)
            delay = (latency.first_token_ms + latency.per_token_ms * output) / 1000
            return await self.send_json(request, body, fault, delay, content_type=_JSON)
        bodies = stream_bodies(answer, req.model, response_id)
        if request.query.get("alt") != "sse":  # without alt=sse Google streams one JSON array
            return await self.send_json(request, bodies, fault, 0.0, content_type=_JSON)
        events = [b"data: " + orjson.dumps(b) + b"\r\n\r\n" for b in bodies]
        failing = header_int(request, "x-fake-stream-error")
        if failing:  # one chunk, then an error event inside the 200 stream
            message = FAULT_MESSAGES.get(failing, "Fake stream error.")
            error = orjson.dumps(error_body(failing, message))
            events = [*events[:1], b"data: " + error + b"\r\n\r\n"]
        return await self.send_events(request, events, fault, latency, content_type=_SSE)

    async def _embed(
        self, request: web.Request, body: Any, model: str, method: str, fault: FaultSpec | None
    ) -> web.StreamResponse:
        texts, dims = embed_texts(body, model, method)
        default = self.embedding_dim or (3072 if model == "gemini-embedding-001" else 768)
        vectors = []
        for text, dim in zip(texts, dims, strict=True):
            if dim is not None and dim > default:
                raise GeminiError(f"output_dimensionality must be at most {default}")
            key = b"s:" + text.encode("utf-8", "surrogatepass")
            vectors.append({"values": unit_vector(key, dim or default).tolist()})
        payload = {"embedding": vectors[0]} if method == "embedContent" else {"embeddings": vectors}
        delay = self.latency_for(request).first_token_ms / 1000
        return await self.send_json(request, payload, fault, delay, content_type=_JSON)


def _count_body(body: Any) -> Any:
    if isinstance(body, dict):
        inner = body.get("generateContentRequest") or body.get("generate_content_request")
        if isinstance(inner, dict):
            return inner
    return body
