"""Small helpers shared by the levers: reading and rewriting message content without mutation."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from thrifty.tokens import count_request

#: Roles whose messages instruct the model; pruning always keeps them.
INSTRUCTION_ROLES = frozenset({"system", "developer"})

#: Content-part types whose text the levers may rewrite (only ``text`` parts, per the contract).
TEXT_PART_TYPES = frozenset({"text"})


def body_model(body: Mapping[str, Any]) -> str:
    """The body's ``model`` as counting sees it (``""`` when missing)."""
    model = body.get("model")
    return model if isinstance(model, str) else ""


def body_messages(body: Mapping[str, Any]) -> list[Any]:
    """The body's ``messages`` (``[]`` when missing or not a list)."""
    messages = body.get("messages")
    return messages if isinstance(messages, list) else []


def prompt_tokens(body: Mapping[str, Any]) -> int:
    """Prompt tokens of ``body`` for its own model (``thrifty.tokens.count_request``)."""
    return count_request(body).tokens


def with_messages(body: Mapping[str, Any], messages: list[Any]) -> dict[str, Any]:
    """A new body: a shallow copy of ``body`` with ``messages`` replaced."""
    new = dict(body)
    new["messages"] = messages
    return new


def map_text(content: Any, fn: Callable[[str], str]) -> tuple[Any, int]:
    """Apply ``fn`` to the text of ``content``; return ``(new_content, pieces_changed)``.

    ``content`` may be a string or a list of parts; only ``text`` parts are rewritten, every other
    part (images, audio, files, ...) is kept as the same object. When nothing changes the
    original ``content`` object is returned, so callers can test identity.
    """
    if isinstance(content, str):
        new = fn(content)
        return (content, 0) if new == content else (new, 1)
    if not isinstance(content, list):
        return content, 0
    parts: list[Any] = []
    changed = 0
    for part in content:
        text = part.get("text") if isinstance(part, Mapping) else None
        if isinstance(text, str) and part.get("type") in TEXT_PART_TYPES:
            new = fn(text)
            if new != text:
                changed += 1
                part = {**part, "text": new}
        parts.append(part)
    return (parts, changed) if changed else (content, 0)


def has_tool_calls(message: Mapping[str, Any]) -> bool:
    """Whether ``message`` is an assistant message that calls tools (or a legacy function)."""
    if message.get("role") != "assistant":
        return False
    calls = message.get("tool_calls")
    return bool(calls) or message.get("function_call") is not None


def is_tool_result(message: Mapping[str, Any]) -> bool:
    """Whether ``message`` carries a tool (or legacy function) result."""
    return message.get("role") in ("tool", "function")
