"""Request validation for the fake Anthropic server: the real API's 400 ``invalid_request_error``s.

Checked: the ``anthropic-version`` header (``2023-06-01`` / ``2023-01-01`` / ``2026-10-21``),
``model``, ``max_tokens`` (required on ``/v1/messages``, not accepted on ``count_tokens``),
``messages`` (roles, non-empty content, block types and where they may appear, images,
``tool_use`` / ``tool_result`` pairing: every ``tool_use`` needs a ``tool_result`` first in the
next user turn and every ``tool_result`` a ``tool_use`` in the previous assistant turn),
alternation (the real API now merges consecutive same-role turns; the fake rejects them when
``strict_alternation`` is on, its default, so adapters that do not merge are caught), ``system``,
``tools``, ``tool_choice``, ``stop_sequences``, ``metadata``, ``output_config.format``, at most 4
``cache_control`` breakpoints, and ``temperature`` / ``top_p`` / ``top_k`` (0-1 ranges under
``2023-06-01``; rejected outright under ``2026-10-21`` and by ``NO_SAMPLING_MODELS``). Unknown
top-level fields are ignored.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

VERSIONS = frozenset({"2023-01-01", "2023-06-01", "2026-10-21"})
NEW_VERSION = "2026-10-21"
IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,128}$")
MAX_CACHE_BREAKPOINTS = 4
COUNT_TOKENS_REJECTS = ("max_tokens", "stream", "stop_sequences", "metadata")
SAMPLING = ("temperature", "top_p", "top_k")
NO_SAMPLING_MODELS = (
    "claude-opus-4-7",
    "claude-opus-4-8",
    "claude-opus-5",
    "claude-sonnet-5",
    "claude-haiku-5",
    "claude-fable",
    "claude-mythos",
)
"""Models that reject ``temperature`` / ``top_p`` / ``top_k`` under every API version (a 400,
"`temperature` is deprecated for this model.")."""

_USER_BLOCKS = frozenset({"text", "image", "document", "tool_result", "search_result"})
_ASSISTANT_BLOCKS = frozenset({"text", "tool_use", "thinking", "redacted_thinking", "document"})


class AnthropicBadRequest(Exception):
    """A request the real API would refuse: an Anthropic error body with ``status``."""

    def __init__(
        self, message: str, status: int = 400, type: str = "invalid_request_error"
    ) -> None:
        super().__init__(message)
        self.message, self.status, self.type = message, status, type


@dataclass(slots=True)
class MessagesRequest:
    """A validated request. ``messages`` content is always a list of blocks; ``system`` is a
    list of text blocks (``role: system`` messages of ``2026-10-21`` are moved there)."""

    model: str
    version: str
    max_tokens: int | None
    system: list[dict[str, Any]]
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]] = field(default_factory=list)
    tool_choice: dict[str, Any] | None = None
    stop_sequences: tuple[str, ...] = ()
    stream: bool = False
    output_schema: dict[str, Any] | None = None


def check_version(version: str | None) -> str:
    if not version:
        raise AnthropicBadRequest("anthropic-version: header is required")
    if version not in VERSIONS:
        raise AnthropicBadRequest(f"anthropic-version: invalid version {version!r}")
    return version


def _fail(message: str) -> AnthropicBadRequest:
    return AnthropicBadRequest(message)


def _blocks(content: Any, where: str) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if not isinstance(content, list):
        raise _fail(f"{where}: Input should be a valid string or list")
    for j, block in enumerate(content):
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            raise _fail(f"{where}.{j}: Input should be a valid content block")
    return content


def _check_image(block: Mapping[str, Any], where: str) -> None:
    source = block.get("source")
    kind = source.get("type") if isinstance(source, dict) else None
    if kind == "base64":
        assert isinstance(source, dict)
        if source.get("media_type") not in IMAGE_TYPES:
            raise _fail(
                f"{where}.source.media_type: Input should be 'image/jpeg', 'image/png', "
                "'image/gif' or 'image/webp'"
            )
        try:
            if not source.get("data"):
                raise ValueError
            base64.b64decode(str(source["data"]), validate=True)
        except (ValueError, binascii.Error):
            raise _fail(f"{where}.source.data: The image data is not valid base64") from None
    elif kind == "url":
        assert isinstance(source, dict)
        url = source.get("url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise _fail(f"{where}.source.url: Input should be a valid URL")
    elif kind != "file":
        raise _fail(f"{where}.source: Input tag {kind!r} does not match any of the expected tags")


def _check_block(block: dict[str, Any], role: str, version: str, where: str) -> None:
    kind = block["type"]
    allowed = _USER_BLOCKS if role == "user" else _ASSISTANT_BLOCKS
    if kind not in allowed:
        raise _fail(f"{where}.type: {kind!r} blocks are not allowed in {role} messages")
    if kind == "text":
        if not isinstance(block.get("text"), str) or not block["text"]:
            raise _fail(f"{where}.text: text content blocks must be non-empty")
        if role == "user" and block.get("citations") and version >= NEW_VERSION:
            raise _fail(f"{where}.citations: citations are not allowed in user text blocks")
    elif kind == "image":
        _check_image(block, where)
    elif kind == "document" and role == "assistant" and version >= NEW_VERSION:
        raise _fail(f"{where}: document blocks are not allowed in assistant messages")
    elif kind == "tool_use":
        if not isinstance(block.get("id"), str) or not isinstance(block.get("name"), str):
            raise _fail(f"{where}: tool_use blocks need an id and a name")
        if not isinstance(block.get("input"), dict):
            raise _fail(f"{where}.input: Input should be a valid dictionary")
    elif kind == "tool_result":
        if not isinstance(block.get("tool_use_id"), str):
            raise _fail(f"{where}.tool_use_id: Field required")
        inner = block.get("content")
        if isinstance(inner, list):
            for k, sub in enumerate(_blocks(inner, f"{where}.content")):
                if sub["type"] not in ("text", "image", "document", "search_result"):
                    raise _fail(f"{where}.content.{k}.type: not allowed in a tool_result")
                if sub["type"] == "image":
                    _check_image(sub, f"{where}.content.{k}")
        elif inner is not None and not isinstance(inner, str):
            raise _fail(f"{where}.content: Input should be a valid string or list")


def _check_pairing(messages: list[dict[str, Any]]) -> None:
    for i, turn in enumerate(messages):
        content = turn["content"]
        if turn["role"] == "user":
            prev = messages[i - 1] if i > 0 and messages[i - 1]["role"] == "assistant" else None
            used = (
                {b.get("id") for b in prev["content"] if b["type"] == "tool_use"} if prev else set()
            )
            seen_other = False
            for j, block in enumerate(content):
                if block["type"] != "tool_result":
                    seen_other = True
                    continue
                if block["tool_use_id"] not in used:
                    raise _fail(
                        f"messages.{i}.content.{j}: unexpected `tool_use_id` found in "
                        f"`tool_result` blocks: {block['tool_use_id']}. Each `tool_result` block "
                        "must have a corresponding `tool_use` block in the previous message."
                    )
                if seen_other:
                    raise _fail(
                        f"messages.{i}.content.{j}: `tool_result` blocks must come before any "
                        "other content in a user message"
                    )
        else:
            ids = [b["id"] for b in content if b["type"] == "tool_use"]
            if not ids or i == len(messages) - 1:
                continue
            nxt = messages[i + 1]
            answered = {b.get("tool_use_id") for b in nxt["content"] if b["type"] == "tool_result"}
            missing = [x for x in ids if x not in answered]
            if missing:
                raise _fail(
                    f"messages.{i}: `tool_use` ids were found without `tool_result` blocks "
                    f"immediately after: {', '.join(missing)}. Each `tool_use` block must have a "
                    "corresponding `tool_result` block in the next message."
                )


def _messages(
    raw: Any, version: str, strict: bool
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(turns with block lists, extra system blocks from ``role: system`` messages)."""
    if raw is None:
        raise _fail("messages: Field required")
    if not isinstance(raw, list) or not raw:
        raise _fail("messages: at least one message is required")
    turns: list[dict[str, Any]] = []
    system: list[dict[str, Any]] = []
    for i, m in enumerate(raw):
        role = m.get("role") if isinstance(m, dict) else None
        if role == "system" and version >= NEW_VERSION:
            system.extend(_blocks(m.get("content"), f"messages.{i}.content"))
            continue
        if role not in ("user", "assistant"):
            raise _fail(f"messages.{i}.role: Input should be 'user' or 'assistant'")
        assert isinstance(m, dict)
        blocks = _blocks(m.get("content"), f"messages.{i}.content")
        last = i == len(raw) - 1
        if not blocks or (len(blocks) == 1 and blocks[0] == {"type": "text", "text": ""}):
            if last and role == "assistant":
                continue  # an empty final assistant turn is allowed (and ignored)
            raise _fail(
                f"messages.{i}: all messages must have non-empty content except for the "
                "optional final assistant message"
            )
        for j, block in enumerate(blocks):
            _check_block(block, role, version, f"messages.{i}.content.{j}")
        if turns and turns[-1]["role"] == role:
            if strict:
                raise _fail(
                    f'messages: roles must alternate between "user" and "assistant", but found '
                    f'multiple "{role}" roles in a row'
                )
            turns[-1]["content"] = [*turns[-1]["content"], *blocks]
        else:
            turns.append({"role": role, "content": list(blocks)})
    if strict and turns and turns[0]["role"] != "user":
        raise _fail('messages: first message must use the "user" role')
    _check_pairing(turns)
    return turns, system


def _tools(raw: Any) -> list[dict[str, Any]]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise _fail("tools: Input should be a valid list")
    names: set[str] = set()
    for i, tool in enumerate(raw):
        if not isinstance(tool, dict) or not isinstance(tool.get("name"), str):
            raise _fail(f"tools.{i}.name: Field required")
        if not TOOL_NAME.match(tool["name"]):
            raise _fail(f"tools.{i}.name: String should match pattern '^[a-zA-Z0-9_-]{{1,128}}$'")
        if tool["name"] in names:
            raise _fail("tools: Tool names must be unique.")
        names.add(tool["name"])
        if tool.get("type") in (None, "custom"):
            schema = tool.get("input_schema")
            if not isinstance(schema, dict):
                raise _fail(f"tools.{i}.input_schema: Field required")
            if schema.get("type") != "object":
                raise _fail(f"tools.{i}.input_schema.type: Input should be 'object'")
    return raw


def _tool_choice(raw: Any, tools: list[dict[str, Any]]) -> dict[str, Any] | None:
    if raw is None:
        return None
    kind = raw.get("type") if isinstance(raw, dict) else None
    if kind not in ("auto", "any", "tool", "none"):
        raise _fail(
            "tool_choice: Input tag does not match any of the expected tags: "
            "'auto', 'any', 'tool', 'none'"
        )
    assert isinstance(raw, dict)
    if kind in ("any", "tool") and not tools:
        raise _fail("tool_choice: tool_choice may only be specified while providing tools")
    if kind == "tool" and raw.get("name") not in {t["name"] for t in tools}:
        raise _fail(f"tool_choice.name: Tool '{raw.get('name')}' not found in provided tools")
    return raw


def count_breakpoints(body: Mapping[str, Any]) -> int:
    """``cache_control`` markers on tools, system blocks and message blocks."""
    n = sum(1 for t in body.get("tools") or () if isinstance(t, dict) and "cache_control" in t)
    system = body.get("system")
    if isinstance(system, list):
        n += sum(1 for b in system if isinstance(b, dict) and b.get("cache_control"))
    for m in body.get("messages") or ():
        content = m.get("content") if isinstance(m, dict) else None
        if isinstance(content, list):
            n += sum(1 for b in content if isinstance(b, dict) and b.get("cache_control"))
    return n


def _sampling(body: Mapping[str, Any], version: str, model: str) -> None:
    for name in SAMPLING:
        value = body.get(name)
        if value is None:
            continue
        if version >= NEW_VERSION:
            raise _fail(f"{name}: This field is not supported in API version {version}.")
        if model.startswith(NO_SAMPLING_MODELS):
            raise _fail(f"`{name}` is deprecated for this model.")
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _fail(f"{name}: Input should be a valid number")
        if name != "top_k" and not 0 <= value <= 1:
            raise _fail(f"{name}: Input should be less than or equal to 1")


def parse_messages_request(
    body: Any, version: str, *, count_tokens: bool = False, strict_alternation: bool = True
) -> MessagesRequest:
    """Validate a ``/v1/messages`` (or ``count_tokens``) body; raises ``AnthropicBadRequest``."""
    if not isinstance(body, dict):
        raise _fail("There was an error parsing the body of your request as JSON.")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise _fail("model: Field required")
    if model.startswith("unknown"):
        raise AnthropicBadRequest(f"model: {model}", status=404, type="not_found_error")
    max_tokens = body.get("max_tokens")
    if count_tokens:
        for name in COUNT_TOKENS_REJECTS:
            if name in body:
                raise _fail(f"{name}: Extra inputs are not permitted")
    elif max_tokens is None:
        raise _fail("max_tokens: Field required")
    elif isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise _fail("max_tokens: Input should be a valid integer greater than or equal to 1")
    _sampling(body, version, model)
    turns, extra_system = _messages(body.get("messages"), version, strict_alternation)
    raw_system = body.get("system")
    if raw_system is None or raw_system == "":
        system: list[dict[str, Any]] = []
    else:
        system = _blocks(raw_system, "system")
        for j, block in enumerate(system):
            if block["type"] != "text" or not block.get("text"):
                raise _fail(f"system.{j}: system blocks must be non-empty text blocks")
    tools = _tools(body.get("tools"))
    tool_choice = _tool_choice(body.get("tool_choice"), tools)
    stops = body.get("stop_sequences") or []
    if not isinstance(stops, list) or not all(isinstance(s, str) and s for s in stops):
        raise _fail("stop_sequences: Input should be a list of non-empty strings")
    metadata = body.get("metadata")
    if metadata is not None and (not isinstance(metadata, dict) or set(metadata) - {"user_id"}):
        raise _fail("metadata: only user_id is allowed")
    breakpoints = count_breakpoints(body)
    if breakpoints > MAX_CACHE_BREAKPOINTS:
        raise _fail(
            f"A maximum of {MAX_CACHE_BREAKPOINTS} blocks with cache_control may be provided. "
            f"Found {breakpoints}."
        )
    schema: dict[str, Any] | None = None
    output_config = body.get("output_config")
    fmt = output_config.get("format") if isinstance(output_config, dict) else None
    if fmt is not None:
        if not isinstance(fmt, dict) or fmt.get("type") != "json_schema":
            raise _fail("output_config.format.type: Input should be 'json_schema'")
        if not isinstance(fmt.get("schema"), dict):
            raise _fail("output_config.format.schema: Field required")
        schema = fmt["schema"]
    return MessagesRequest(
        model=model,
        version=version,
        max_tokens=max_tokens if not count_tokens else None,
        system=[*system, *extra_system],
        messages=turns,
        tools=tools,
        tool_choice=tool_choice,
        stop_sequences=tuple(stops),
        stream=body.get("stream") is True,
        output_schema=schema,
    )
