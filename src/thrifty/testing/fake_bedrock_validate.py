"""Request validation for the fake Bedrock server: Converse's ``ValidationException`` (400).

Checked like the real API: ``messages`` present, roles ``user`` / ``assistant`` only, starting
with ``user`` and alternating, non-empty ``content`` of one-key content blocks, no blank text,
valid image formats and base64 bytes, ``toolConfig`` present whenever the history holds
``toolUse`` / ``toolResult`` blocks, every ``toolResult`` answering a ``toolUse`` of the previous
assistant turn (and every ``toolUse`` answered by the next user turn), ``inferenceConfig``
ranges, ``toolConfig`` shape and ``toolChoice``. The messages are close to Bedrock's own.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any

__all__ = ["BedrockValidationError", "validate_converse"]

CONTENT_KEYS = frozenset(
    {
        "text",
        "image",
        "document",
        "video",
        "toolUse",
        "toolResult",
        "guardContent",
        "cachePoint",
        "reasoningContent",
        "citationsContent",
    }
)
SYSTEM_KEYS = frozenset({"text", "cachePoint", "guardContent"})
IMAGE_FORMATS = frozenset({"png", "jpeg", "gif", "webp"})
_ALTERNATE = (
    "A conversation must alternate between user and assistant roles. Make sure the conversation "
    "alternates between user and assistant roles and try again."
)
_START = (
    "A conversation must start with a user message. Try again with a conversation that starts "
    "with a user message."
)


class BedrockValidationError(Exception):
    """A request the real API would refuse: ``code`` (the exception name), 400."""

    def __init__(self, message: str, code: str = "ValidationException", status: int = 400):
        super().__init__(message)
        self.message, self.code, self.status = message, code, status


def _fail(message: str) -> BedrockValidationError:
    return BedrockValidationError(message)


def _check_block(block: Any, where: str, keys: frozenset[str]) -> str:
    if not isinstance(block, Mapping) or len(block) != 1 or next(iter(block)) not in keys:
        raise _fail(
            f"The ContentBlock object at {where} must set exactly one of the following keys: "
            + ", ".join(sorted(keys))
            + "."
        )
    key = str(next(iter(block)))
    value = block[key]
    if key == "text" and (not isinstance(value, str) or not value.strip()):
        raise _fail(
            f"The text field in the ContentBlock object at {where} is blank. Add text to the "
            "text field, and try again."
        )
    if key == "image":
        _check_image(value, where)
    if key == "toolUse" and (
        not isinstance(value, Mapping)
        or not isinstance(value.get("toolUseId"), str)
        or not isinstance(value.get("name"), str)
        or "input" not in value
    ):
        raise _fail(f"The toolUse block at {where} needs toolUseId, name and input.")
    if key == "toolResult":
        if not isinstance(value, Mapping) or not isinstance(value.get("toolUseId"), str):
            raise _fail(f"The toolResult block at {where} needs a toolUseId.")
        content = value.get("content")
        if not isinstance(content, list):
            raise _fail(f"The toolResult block at {where} needs content.")
        for k, part in enumerate(content):
            _check_block(part, f"{where}.toolResult.content.{k}", CONTENT_KEYS | {"json"})
    return key


def _check_image(image: Any, where: str) -> None:
    if not isinstance(image, Mapping) or image.get("format") not in IMAGE_FORMATS:
        raise _fail(
            f"1 validation error detected: Value at '{where}.image.format' failed to satisfy "
            "constraint: Member must satisfy enum value set: [png, jpeg, gif, webp]"
        )
    source = image.get("source")
    data = source.get("bytes") if isinstance(source, Mapping) else None
    try:
        if not isinstance(data, str) or not base64.b64decode(data, validate=True):
            raise ValueError
    except (binascii.Error, ValueError):
        raise _fail(f"The image bytes at {where}.image.source are not valid base64.") from None


def _check_messages(messages: Any) -> list[list[str]]:
    """Validate the turns; returns each message's block keys."""
    if not isinstance(messages, list):
        raise _fail("The messages field is required and must be a list of Message objects.")
    if not messages:
        raise _fail(_START)
    keys: list[list[str]] = []
    previous_role = None
    for i, message in enumerate(messages):
        role = message.get("role") if isinstance(message, Mapping) else None
        if role not in ("user", "assistant"):
            raise _fail(
                f"1 validation error detected: Value '{role}' at 'messages.{i + 1}.member.role' "
                "failed to satisfy constraint: Member must satisfy enum value set: "
                "[user, assistant]"
            )
        if i == 0 and role != "user":
            raise _fail(_START)
        if role == previous_role:
            raise _fail(_ALTERNATE)
        previous_role = role
        content = message.get("content")
        if not isinstance(content, list) or not content:
            raise _fail(
                f"The content field in the Message object at messages.{i} is empty. Add a "
                "ContentBlock object to the content field and try again."
            )
        keys.append(
            [
                _check_block(b, f"messages.{i}.content.{j}", CONTENT_KEYS)
                for j, b in enumerate(content)
            ]
        )
    return keys


def _check_tool_pairs(messages: list[Any]) -> None:
    """toolResult ids answer the previous turn's toolUse ids, and vice versa."""
    pending: list[str] = []
    for i, message in enumerate(messages):
        blocks = message["content"]
        if message["role"] == "assistant":
            pending = [b["toolUse"]["toolUseId"] for b in blocks if "toolUse" in b]
            continue
        results = [b["toolResult"]["toolUseId"] for b in blocks if "toolResult" in b]
        if len(results) > len(pending):
            raise _fail(
                f"The number of toolResult blocks at messages.{i}.content exceeds the number of "
                "toolUse blocks of previous turn."
            )
        missing = [t for t in pending if t not in results]
        if missing:
            raise _fail(
                f"Expected toolResult blocks at messages.{i}.content for the following Ids: "
                + ", ".join(missing)
            )
        pending = []


def _number(config: Mapping[str, Any], key: str, lo: float, hi: float) -> None:
    value = config.get(key)
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or not lo <= value <= hi:
        raise _fail(
            f"1 validation error detected: Value '{value}' at 'inferenceConfig.{key}' failed to "
            f"satisfy constraint: Member must be between {lo:g} and {hi:g}"
        )


def _check_inference(config: Any) -> None:
    if config is None:
        return
    if not isinstance(config, Mapping):
        raise _fail("inferenceConfig must be an object.")
    _number(config, "maxTokens", 1, 1 << 31)
    if config.get("maxTokens") is not None and not isinstance(config["maxTokens"], int):
        raise _fail("inferenceConfig.maxTokens must be an integer.")
    _number(config, "temperature", 0, 1)
    _number(config, "topP", 0, 1)
    stops = config.get("stopSequences")
    if stops is not None and (
        not isinstance(stops, list) or not all(isinstance(s, str) and s for s in stops)
    ):
        raise _fail("inferenceConfig.stopSequences must be a list of non-empty strings.")


def _check_tool_config(config: Any) -> set[str]:
    """Validate ``toolConfig``; returns the tool names."""
    if not isinstance(config, Mapping) or not isinstance(config.get("tools"), list):
        raise _fail("The toolConfig field must contain a list of tools.")
    names: set[str] = set()
    for i, tool in enumerate(config["tools"]):
        if isinstance(tool, Mapping) and set(tool) == {"cachePoint"}:
            continue
        spec = tool.get("toolSpec") if isinstance(tool, Mapping) else None
        schema = spec.get("inputSchema") if isinstance(spec, Mapping) else None
        if (
            not isinstance(spec, Mapping)
            or not isinstance(spec.get("name"), str)
            or not spec["name"]
            or not isinstance(schema, Mapping)
            or not isinstance(schema.get("json"), Mapping)
        ):
            raise _fail(f"The toolSpec at toolConfig.tools.{i} needs a name and inputSchema.json.")
        if spec["name"] in names:
            raise _fail(f"The toolConfig has a duplicate tool name: {spec['name']}.")
        names.add(spec["name"])
    if not names:
        raise _fail("The toolConfig field must contain at least one toolSpec.")
    choice = config.get("toolChoice")
    if choice is not None:
        if (
            not isinstance(choice, Mapping)
            or len(choice) != 1
            or next(iter(choice))
            not in (
                "auto",
                "any",
                "tool",
            )
        ):
            raise _fail("toolConfig.toolChoice must set exactly one of auto, any or tool.")
        if "tool" in choice and (choice["tool"] or {}).get("name") not in names:
            raise _fail("The tool named in toolConfig.toolChoice.tool is not in toolConfig.tools.")
    return names


def validate_converse(body: Any) -> None:
    """Raise ``BedrockValidationError`` when the real Converse API would refuse ``body``."""
    if not isinstance(body, Mapping):
        raise BedrockValidationError(
            "Malformed input request, please reformat your input and try again.",
            code="SerializationException",
        )
    system = body.get("system")
    if system is not None:
        if not isinstance(system, list):
            raise _fail("The system field must be a list of SystemContentBlock objects.")
        for i, block in enumerate(system):
            _check_block(block, f"system.{i}", SYSTEM_KEYS)
    messages: list[Any] = body.get("messages")  # type: ignore[assignment]
    keys = _check_messages(messages)
    _check_inference(body.get("inferenceConfig"))
    uses_tools = any(k in ("toolUse", "toolResult") for ks in keys for k in ks)
    if body.get("toolConfig") is not None:
        _check_tool_config(body["toolConfig"])
    elif uses_tools:
        raise _fail(
            "The toolConfig field must be defined when using toolUse and toolResult content blocks."
        )
    if uses_tools:
        _check_tool_pairs(messages)
