"""Response bodies of the fake OpenAI server: choices, stream chunks, usage, models, vectors."""

from __future__ import annotations

import array
import base64
import functools
import hashlib
import math
import sys
from collections.abc import Iterator
from typing import Any

import tiktoken

from thrifty.testing.fake_openai_answers import ChoicePlan, stream_pieces

SYSTEM_FINGERPRINT = "fp_thrifty_fake"
MODEL_CREATED = 1_700_000_000
DEFAULT_MODELS = (
    "gpt-4o",
    "gpt-4o-mini",
    "gpt-4.1",
    "gpt-4.1-mini",
    "gpt-4.1-nano",
    "gpt-5",
    "gpt-5-mini",
    "gpt-5-nano",
    "o3",
    "o4-mini",
    "gpt-3.5-turbo",
    "text-embedding-3-small",
    "text-embedding-3-large",
    "text-embedding-ada-002",
)

RATE_LIMIT_HEADERS = {
    "x-ratelimit-limit-requests": "10000",
    "x-ratelimit-remaining-requests": "9999",
    "x-ratelimit-reset-requests": "6ms",
    "x-ratelimit-limit-tokens": "30000000",
    "x-ratelimit-remaining-tokens": "29999000",
    "x-ratelimit-reset-tokens": "2ms",
}

# status -> (type, code, message) for fault responses
FAULT_ERRORS: dict[int, tuple[str, str | None, str]] = {
    400: ("invalid_request_error", None, "Fake fault: invalid request."),
    401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided."),
    403: ("invalid_request_error", "unsupported_country_region_territory", "Forbidden."),
    404: ("invalid_request_error", "model_not_found", "The model does not exist."),
    408: ("server_error", "timeout", "Request timed out."),
    409: ("invalid_request_error", "conflict", "Conflict."),
    413: ("invalid_request_error", "request_too_large", "Request too large."),
    422: ("invalid_request_error", "unprocessable_entity", "Unprocessable entity."),
    429: ("requests", "rate_limit_exceeded", "Rate limit reached for requests."),
    500: (
        "server_error",
        "server_error",
        "The server had an error while processing your request. Sorry about that!",
    ),
    502: ("server_error", "bad_gateway", "Bad gateway."),
    503: (
        "server_error",
        "service_unavailable",
        "The engine is currently overloaded, please try again later.",
    ),
    504: ("server_error", "timeout", "Gateway timeout."),
}


def fault_error(status: int) -> tuple[str, str | None, str]:
    """The ``(type, code, message)`` OpenAI uses for an error ``status``."""
    found = FAULT_ERRORS.get(status)
    if found is not None:
        return found
    if status >= 500:
        return ("server_error", "server_error", "Fake server error.")
    return ("invalid_request_error", None, "Fake client error.")


def model_object(model_id: str) -> dict[str, Any]:
    """A ``/v1/models`` entry."""
    return {"id": model_id, "object": "model", "created": MODEL_CREATED, "owned_by": "system"}


def usage_object(prompt_tokens: int, completion_tokens: int) -> dict[str, Any]:
    """A Chat Completions ``usage`` object with every detail field OpenAI sends."""
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def choice_object(plan: ChoicePlan, logprobs: bool) -> dict[str, Any]:
    """A non-streaming ``choices[]`` entry."""
    message: dict[str, Any] = {
        "role": "assistant",
        "content": plan.content,
        "refusal": None,
        "annotations": [],
    }
    if plan.tool_calls:
        message["tool_calls"] = plan.tool_calls
    return {
        "index": plan.index,
        "message": message,
        "logprobs": {"content": plan.logprobs, "refusal": None} if logprobs else None,
        "finish_reason": plan.finish_reason,
    }


def chunk_events(plan: ChoicePlan, enc: tiktoken.Encoding) -> Iterator[tuple[dict[str, Any], int]]:
    """The stream deltas of one choice: ``(choice object, tokens it carries)``."""
    index = plan.index
    if plan.tool_calls:
        yield (
            {
                "index": index,
                "delta": {"role": "assistant", "content": None, "refusal": None},
                "logprobs": None,
                "finish_reason": None,
            },
            0,
        )
        for k, call in enumerate(plan.tool_calls):
            fn = call["function"]
            yield (
                {
                    "index": index,
                    "delta": {
                        "tool_calls": [
                            {
                                "index": k,
                                "id": call["id"],
                                "type": "function",
                                "function": {"name": fn["name"], "arguments": ""},
                            }
                        ]
                    },
                    "logprobs": None,
                    "finish_reason": None,
                },
                0,
            )
            arg_bytes = enc.decode_tokens_bytes(enc.encode_ordinary(fn["arguments"]))
            for text, start, end in stream_pieces(arg_bytes):
                yield (
                    {
                        "index": index,
                        "delta": {"tool_calls": [{"index": k, "function": {"arguments": text}}]},
                        "logprobs": None,
                        "finish_reason": None,
                    },
                    end - start,
                )
    else:
        yield (
            {
                "index": index,
                "delta": {"role": "assistant", "content": "", "refusal": None},
                "logprobs": None,
                "finish_reason": None,
            },
            0,
        )
        lp = plan.logprobs
        for text, start, end in stream_pieces(plan.token_bytes):
            yield (
                {
                    "index": index,
                    "delta": {"content": text},
                    "logprobs": {"content": lp[start:end], "refusal": None}
                    if lp is not None
                    else None,
                    "finish_reason": None,
                },
                end - start,
            )
    yield (
        {"index": index, "delta": {}, "logprobs": None, "finish_reason": plan.finish_reason},
        0,
    )


def interleave(
    streams: list[Iterator[tuple[dict[str, Any], int]]],
) -> Iterator[tuple[dict[str, Any], int]]:
    if len(streams) == 1:
        yield from streams[0]
        return
    live = list(streams)
    while live:
        for it in list(live):
            try:
                yield next(it)
            except StopIteration:
                live.remove(it)


@functools.lru_cache(maxsize=4096)
def unit_vector(key: bytes, dims: int) -> array.array[float]:
    """A deterministic unit float32 vector for ``key`` (cached: callers must not mutate it)."""
    ints = array.array("h", hashlib.shake_256(key).digest(dims * 2))
    norm = math.hypot(*ints) or 1.0
    return array.array("f", [x / norm for x in ints])


def float32_base64(vec: array.array[float]) -> str:
    """OpenAI's base64 embedding format: little-endian float32."""
    if sys.byteorder != "little":
        vec = array.array("f", vec)
        vec.byteswap()
    return base64.b64encode(vec.tobytes()).decode("ascii")
