"""What a chat message is made of, independent of any tokenizer.

Every counting walk (OpenAI's chat format in ``counting``, the open families' chat templates in
``chat_templates``) takes its text from here and measures it with a ``Measure``: the exact token
count of a tokenizer, or a hard upper bound (``estimate.upper_bound_tokens``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any, Protocol

import orjson

#: Counts the tokens of one piece of text (or bounds them from above).
Measure = Callable[[str], int]

#: Estimated tokens for one image part. ``detail: "low"`` is a flat 85 tokens at OpenAI; any other
#: detail is billed by tile count, which needs the image size. 765 is a 1024x1024 image at high
#: detail (85 + 4 tiles x 170): an estimate, not a count. The same estimate is used for every
#: model family (their vision encoders differ and need the image itself).
IMAGE_TOKENS_LOW = 85
IMAGE_TOKENS_HIGH = 765


class Tokenizer(Protocol):
    """What counting needs from a tokenizer: a name and ``encode_ordinary``.

    ``tiktoken.Encoding`` satisfies it; so do the non-tiktoken family tokenizers in
    ``family_loaders``. ``encode_ordinary`` encodes special-token strings found in the text as
    ordinary text.
    """

    @property
    def name(self) -> str: ...

    def encode_ordinary(self, text: str) -> list[int]: ...


def image_tokens(part: Mapping[str, Any]) -> int:
    """The documented estimate for one ``image_url`` / ``input_image`` part."""
    image = part.get("image_url")
    detail = image.get("detail") if isinstance(image, Mapping) else part.get("detail")
    return IMAGE_TOKENS_LOW if detail == "low" else IMAGE_TOKENS_HIGH


def content_pieces(content: Any) -> tuple[list[str], int]:
    """The text pieces of a message ``content`` and the estimated tokens of its images.

    ``content`` may be a string, ``None`` or a list of parts: text, ``input_text``,
    ``output_text`` and refusal parts give text; image parts add the image estimate; audio and
    file parts are not counted (their size is not knowable here).
    """
    if content is None:
        return [], 0
    if isinstance(content, str):
        return [content], 0
    if not isinstance(content, list):
        return [str(content)], 0
    pieces: list[str] = []
    images = 0
    for part in content:
        if isinstance(part, str):
            pieces.append(part)
            continue
        if not isinstance(part, Mapping):
            continue
        kind = part.get("type")
        if kind in ("text", "input_text", "output_text"):
            pieces.append(str(part.get("text") or ""))
        elif kind == "refusal":
            pieces.append(str(part.get("refusal") or ""))
        elif kind in ("image_url", "input_image"):
            images += image_tokens(part)
    return pieces, images


def message_text(message: Mapping[str, Any]) -> tuple[str, int]:
    """The content of ``message`` as one string (text parts joined by ``"\\n"``, as vLLM renders
    content lists for string-only chat templates) and its estimated image tokens."""
    pieces, images = content_pieces(message.get("content"))
    return "\n".join(pieces), images


def function_call(call: Any) -> tuple[str, str] | None:
    """``(name, arguments)`` of a tool call or legacy ``function_call``; arguments as JSON text."""
    if not isinstance(call, Mapping):
        return None
    fn = call.get("function", call)
    if not isinstance(fn, Mapping):
        return None
    out: list[str] = []
    for key in ("name", "arguments"):
        value = fn.get(key)
        if isinstance(value, str):
            out.append(value)
        elif value is None:
            out.append("")
        else:
            out.append(orjson.dumps(value).decode())
    return out[0], out[1]


def tool_calls(message: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """Every ``(name, arguments)`` an assistant message calls (``tool_calls`` and legacy
    ``function_call``)."""
    calls = message.get("tool_calls")
    if isinstance(calls, list):
        for call in calls:
            fc = function_call(call)
            if fc is not None:
                yield fc
    if message.get("function_call") is not None:
        fc = function_call(message["function_call"])
        if fc is not None:
            yield fc


def tool_definitions(tools: list[Any] | None) -> list[Mapping[str, Any]]:
    """The function definitions among ``tools`` (``{"type": "function", "function": {...}}``,
    ``{"type": "custom", "custom": {...}}`` or bare)."""
    out: list[Mapping[str, Any]] = []
    for tool in tools or ():
        if not isinstance(tool, Mapping):
            continue
        fn = tool.get(str(tool.get("type", "function")), tool)
        if isinstance(fn, Mapping):
            out.append(fn)
    return out
