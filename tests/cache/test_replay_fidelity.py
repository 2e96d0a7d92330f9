"""What a cached answer looks like to the official OpenAI SDK, through the real HTTP API.

A streamed miss is stored only when it can be reassembled exactly (role and text deltas); a
stored answer replayed as a stream carries what the answer had (refusal, logprobs, service
tier, annotations, audio, moderation) the way OpenAI streams it; a stored stream served as JSON
keeps every field the SDK would have seen in the stream.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import openai
import orjson
import pytest
from aiohttp import web

from tests.cache.conftest import CacheStack, cache_stack
from tests.support import chat_body
from thrifty.testing.server_base import ServerLifecycle

QUESTION = "Describe the tower of Pharos"
USAGE = {"prompt_tokens": 12, "completion_tokens": 7, "total_tokens": 19}
HEAD: dict[str, Any] = {
    "id": "chatcmpl-scripted",
    "created": 1731000000,
    "model": "gpt-4o-mini-2024-07-18",
    "system_fingerprint": "fp_scripted",
    "service_tier": "flex",
}
MODERATION = {
    part: {
        "type": "moderation_results",
        "model": "omni-moderation-latest",
        "results": [
            {
                "type": "moderation_result",
                "model": "omni-moderation-latest",
                "flagged": False,
                "categories": {"violence": False},
                "category_scores": {"violence": 0.01},
                "category_applied_input_types": {"violence": ["text"]},
            }
        ],
    }
    for part in ("input", "output")
}


def token(text: str, logprob: float) -> dict[str, Any]:
    return {"token": text, "logprob": logprob, "bytes": list(text.encode()), "top_logprobs": []}


class ScriptedOpenAI(ServerLifecycle):
    """An OpenAI upstream that answers every chat request from a script: ``deltas`` (per-chunk
    choice deltas, or whole choice objects) streamed as OpenAI chunks when the request streams,
    else ``completion`` as JSON."""

    def __init__(self) -> None:
        super().__init__()
        self.deltas: list[dict[str, Any]] = []
        self.completion: dict[str, Any] = {}
        self.chunk_extra: dict[int, dict[str, Any]] = {}  # chunk number -> top-level fields
        self.requests: list[dict[str, Any]] = []

    @property
    def base_url(self) -> str:
        return f"{self.root_url}/v1"

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/chat/completions", self._chat)

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append({"path": request.path, "body": body})
        if not body.get("stream"):
            return web.json_response(
                {"object": "chat.completion", **HEAD, "usage": USAGE, **self.completion}
            )
        usage = bool((body.get("stream_options") or {}).get("include_usage"))
        resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await resp.prepare(request)
        base: dict[str, Any] = {"object": "chat.completion.chunk", **HEAD}
        if usage:
            base["usage"] = None
        for n, delta in enumerate(self.deltas):
            choice = delta if "delta" in delta else {"index": 0, "delta": delta}
            choice = {"logprobs": None, "finish_reason": None, **choice}
            chunk = {**base, "choices": [choice], **self.chunk_extra.get(n, {})}
            await resp.write(b"data: " + orjson.dumps(chunk) + b"\n\n")
        if usage:
            await resp.write(b"data: " + orjson.dumps({**base, "choices": [], "usage": USAGE}))
            await resp.write(b"\n\n")
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp


@asynccontextmanager
async def scripted_stack(tmp_path: Path) -> AsyncIterator[tuple[ScriptedOpenAI, CacheStack]]:
    async with ScriptedOpenAI() as upstream:
        async with cache_stack(upstream, tmp_path) as stack:  # type: ignore[arg-type]
            yield upstream, stack


async def sdk(stack: CacheStack) -> openai.AsyncOpenAI:
    key = (await stack.key())["authorization"].removeprefix("Bearer ")
    return openai.AsyncOpenAI(
        base_url="http://t/v1", api_key=key, http_client=stack.client, max_retries=0
    )


def messages(text: str = QUESTION) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


async def sdk_json(client: openai.AsyncOpenAI, **extra: Any) -> tuple[str, dict[str, Any]]:
    raw = await client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=messages(), **extra
    )
    return raw.headers["x-thrifty-cache"], view(raw.parse())


async def sdk_stream(client: openai.AsyncOpenAI, **extra: Any) -> dict[str, Any]:
    """The completion the SDK's own stream accumulator builds from the streamed answer."""
    async with client.chat.completions.stream(
        model="gpt-4o-mini",
        messages=messages(),
        stream_options={"include_usage": True},
        **extra,
    ) as stream:
        return view(await stream.get_final_completion())


def view(completion: Any) -> dict[str, Any]:
    """What the SDK exposes of a completion, less what a stream cannot carry by design."""
    d: dict[str, Any] = completion.model_dump()
    d.pop("object")
    usage = d.get("usage") or {}
    d["usage"] = {k: usage.get(k) for k in USAGE}  # the gateway adds its cost fields
    for choice in d["choices"]:
        choice["message"].pop("parsed", None)
        # OpenAI sends ``annotations: []`` in JSON only; its streams carry non-empty ones
        choice["message"]["annotations"] = choice["message"].get("annotations") or None
    return d


def sse_chunks(resp: httpx.Response) -> list[dict[str, Any]]:
    return [orjson.loads(f[6:]) for f in resp.text.split("\n\n") if f.startswith("data: {")]


# -- 1. a streamed miss is stored only when its deltas can be reassembled ----------------------

ROLE = {"role": "assistant", "content": "", "refusal": None}  # OpenAI's role chunk for text
STOP = {"index": 0, "delta": {}, "finish_reason": "stop"}  # the finish chunk's choice

NOT_TEXT_ONLY: dict[str, list[dict[str, Any]]] = {
    "refusal": [
        {"role": "assistant", "content": None, "refusal": ""},
        {"refusal": "I can't help "},
        {"refusal": "with that."},
        STOP,
    ],
    "text_then_refusal": [
        ROLE,
        {"content": "Well."},
        {"refusal": " No."},
        STOP,
    ],
    "function_call": [
        {"role": "assistant", "content": None, "function_call": {"name": "f", "arguments": ""}},
        {"function_call": {"arguments": "{}"}},
        {"index": 0, "delta": {}, "finish_reason": "function_call"},
    ],
    "audio": [
        {"role": "assistant", "content": None, "refusal": None},
        {"audio": {"id": "audio_1", "transcript": "The tower"}},
        {"audio": {"data": "UklGRg==", "transcript": " stood."}},
        {"audio": {"expires_at": 1731003600}},
        STOP,
    ],
    "annotations": [
        ROLE,
        {"content": "It stood at Alexandria."},
        {
            "annotations": [
                {
                    "type": "url_citation",
                    "url_citation": {
                        "start_index": 0,
                        "end_index": 22,
                        "title": "Pharos",
                        "url": "https://example.com/pharos",
                    },
                }
            ]
        },
        STOP,
    ],
    "reasoning": [
        ROLE,
        {"reasoning_content": "Recall the wonders."},
        {"content": "A lighthouse."},
        STOP,
    ],
}


@pytest.mark.parametrize("deltas", NOT_TEXT_ONLY.values(), ids=NOT_TEXT_ONLY.keys())
async def test_a_stream_with_more_than_text_is_not_stored(
    tmp_path: Path, deltas: list[dict[str, Any]]
) -> None:
    async with scripted_stack(tmp_path) as (upstream, stack):
        upstream.deltas = deltas
        upstream.completion = {
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "fresh", "refusal": None},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ]
        }
        miss = await stack.chat(chat_body(QUESTION, stream=True))
        assert miss.headers["x-thrifty-cache"] == "miss" and miss.status_code == 200
        again = await stack.chat(chat_body(QUESTION))
        assert again.headers["x-thrifty-cache"] == "miss"
        assert again.json()["choices"][0]["message"]["content"] == "fresh"
        assert stack.upstream_calls() == 2


async def test_a_text_stream_with_null_refusal_is_stored(tmp_path: Path) -> None:
    async with scripted_stack(tmp_path) as (upstream, stack):
        upstream.deltas = [
            ROLE,
            {"content": "A lighthouse"},
            {"content": " of Alexandria.", "refusal": None, "tool_calls": None},
            STOP,
        ]
        await stack.chat(chat_body(QUESTION, stream=True))
        hit = await stack.chat(chat_body(QUESTION))
        assert hit.headers["x-thrifty-cache"] == "hit"
        assert hit.json()["choices"][0]["message"]["content"] == "A lighthouse of Alexandria."


async def test_a_stored_stream_served_as_json_is_what_the_sdk_streamed(tmp_path: Path) -> None:
    async with scripted_stack(tmp_path) as (upstream, stack):
        upstream.deltas = [
            ROLE,
            {"content": "A lighthouse"},
            {"content": " of Alexandria."},
            STOP,
        ]
        upstream.chunk_extra = {3: {"moderation": MODERATION}}
        client = await sdk(stack)
        streamed = await sdk_stream(client)
        status, served = await sdk_json(client)
        assert status == "hit" and stack.upstream_calls() == 1
        assert served == streamed
        assert served["service_tier"] == "flex" and served["moderation"] is not None


# -- 2. a stored answer replayed as a stream carries everything it had -------------------------

REFUSAL = "I can't help with that."
STORED: dict[str, dict[str, Any]] = {
    "refusal": {
        "index": 0,
        "message": {"role": "assistant", "content": None, "refusal": REFUSAL},
        "logprobs": {"content": None, "refusal": [token("I", -0.1), token(" can't", -0.2)]},
        "finish_reason": "stop",
    },
    "text_and_refusal": {
        "index": 0,
        "message": {"role": "assistant", "content": "Well.", "refusal": " No."},
        "logprobs": {"content": [token("Well", -0.3)], "refusal": [token(" No", -0.4)]},
        "finish_reason": "stop",
    },
    "annotations": {
        "index": 0,
        "message": {
            "role": "assistant",
            "content": "It stood at Alexandria.",
            "refusal": None,
            "annotations": NOT_TEXT_ONLY["annotations"][2]["annotations"],
        },
        "logprobs": None,
        "finish_reason": "stop",
    },
    "empty_logprobs": {
        "index": 0,
        "message": {"role": "assistant", "content": "", "refusal": None},
        "logprobs": {"content": [], "refusal": None},
        "finish_reason": "stop",
    },
}

AUDIO_CHOICE = {
    "index": 0,
    "message": {
        "role": "assistant",
        "content": None,
        "refusal": None,
        "audio": {
            "id": "audio_1",
            "data": "UklGRg==",
            "transcript": "The tower stood.",
            "expires_at": 1731003600,
        },
    },
    "logprobs": None,
    "finish_reason": "stop",
}


@pytest.mark.parametrize("choice", STORED.values(), ids=STORED.keys())
async def test_a_stored_answer_streams_as_the_sdk_would_parse_it(
    tmp_path: Path, choice: dict[str, Any]
) -> None:
    async with scripted_stack(tmp_path) as (upstream, stack):
        upstream.completion = {"choices": [choice], "moderation": MODERATION}
        client = await sdk(stack)
        status, stored = await sdk_json(client)
        streamed = await sdk_stream(client)
        assert status == "miss" and stack.upstream_calls() == 1
        assert streamed == stored


async def test_a_stored_refusal_streams_in_openai_chunk_shapes(tmp_path: Path) -> None:
    async with scripted_stack(tmp_path) as (upstream, stack):
        upstream.completion = {"choices": [STORED["refusal"]]}
        await stack.chat(chat_body(QUESTION))
        hit = await stack.chat(chat_body(QUESTION, stream=True))
        assert hit.headers["x-thrifty-cache"] == "hit"
        choices = [c["choices"][0] for c in sse_chunks(hit)]
        assert [c["delta"] for c in choices] == [
            {"role": "assistant", "content": None, "refusal": ""},
            {"refusal": REFUSAL},
            {},
        ]
        assert choices[1]["logprobs"] == STORED["refusal"]["logprobs"]
        assert choices[0]["logprobs"] is None and choices[2]["finish_reason"] == "stop"
        assert all(c["service_tier"] == "flex" for c in sse_chunks(hit))


async def test_stored_logprobs_stream_on_the_content_chunk(
    make_stack: Callable[..., Any],
) -> None:
    async with make_stack() as stack:
        client = await sdk(stack)
        status, stored = await sdk_json(client, logprobs=True, top_logprobs=2)
        assert status == "miss" and stored["choices"][0]["logprobs"]["content"]
        streamed = await sdk_stream(client, logprobs=True, top_logprobs=2)
        assert streamed == stored and stack.upstream_calls() == 1
        hit = await stack.chat(chat_body(QUESTION, stream=True, logprobs=True, top_logprobs=2))
        content = [c["choices"][0] for c in sse_chunks(hit) if c["choices"]][1]
        assert content["delta"] == {"content": stored["choices"][0]["message"]["content"]}
        assert content["logprobs"] == {
            "content": stored["choices"][0]["logprobs"]["content"],
            "refusal": None,
        }


async def test_an_answer_with_audio_is_not_stored(tmp_path: Path) -> None:
    """Its ``audio.id`` is what a later turn cites, and it expires: a cached copy would hand out
    an id the provider has forgotten."""
    async with scripted_stack(tmp_path) as (upstream, stack):
        upstream.completion = {"choices": [AUDIO_CHOICE]}
        client = await sdk(stack)
        first, _ = await sdk_json(client)
        again, _ = await sdk_json(client)
        assert (first, again) == ("miss", "miss") and stack.upstream_calls() == 2
