"""Token usage when the upstream reported none: counted locally, and marked as such."""

from __future__ import annotations

from typing import Any

from thrifty.pipeline.context import RequestContext
from thrifty.tokens import count_request, count_text


def completion_text(data: dict[str, Any]) -> str:
    """All generated text of a chat completion (content and tool-call arguments)."""
    parts: list[str] = []
    for choice in data.get("choices") or ():
        message = choice.get("message") or {}
        if isinstance(message.get("content"), str):
            parts.append(message["content"])
        for call in message.get("tool_calls") or ():
            fn = call.get("function") or {}
            parts.append(str(fn.get("name", "")) + str(fn.get("arguments", "")))
    return "".join(parts)


def fill_missing_usage(ctx: RequestContext, completion: str) -> None:
    """Set ``ctx.usage`` from local counts when the provider gave none (chat only)."""
    if ctx.endpoint == "embeddings" or ctx.deployment is None:
        return
    if ctx.error is not None and not completion:
        return
    prompt = count_request(ctx.body)
    completion_tokens = count_text(completion, ctx.deployment.upstream_model) if completion else 0
    ctx.usage = {
        "prompt_tokens": prompt.tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt.tokens + completion_tokens,
    }
    ctx.usage_source = prompt.source
