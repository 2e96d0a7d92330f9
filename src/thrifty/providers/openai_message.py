"""The OpenAI ``chat.completion`` assistant message every non-OpenAI adapter answers with."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["assistant_message", "completion_object", "usage_object"]


def assistant_message(
    texts: Sequence[str], tool_calls: list[dict[str, Any]], reasoning: Sequence[str] = ()
) -> dict[str, Any]:
    """``{"role": "assistant", "content", "refusal": None}`` plus ``tool_calls`` when there are
    any and ``reasoning_content`` when the model reported its thinking. ``content`` is the joined
    text, or ``None`` for an answer that is only tool calls (as OpenAI sends it)."""
    text = "".join(texts)
    message: dict[str, Any] = {
        "role": "assistant",
        "content": text if text or not tool_calls else None,
        "refusal": None,
    }
    if tool_calls:
        message["tool_calls"] = tool_calls
    if reasoning:
        message["reasoning_content"] = "".join(reasoning)
    return message


def usage_object(prompt: int, completion: int, cached: int, cache_write: int) -> dict[str, Any]:
    """An OpenAI ``usage`` object; ``prompt`` counts every input token, cache reads
    (``cached``) and writes (``cache_write``) included."""
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached, "cache_write_tokens": cache_write},
        "completion_tokens_details": {"reasoning_tokens": 0},
    }


def completion_object(
    completion_id: Any,
    created: int,
    model: Any,
    message: dict[str, Any],
    finish_reason: str,
    usage: dict[str, Any],
) -> dict[str, Any]:
    """A one-choice OpenAI ``chat.completion`` around ``message``."""
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {"index": 0, "message": message, "logprobs": None, "finish_reason": finish_reason}
        ],
        "usage": usage,
    }
