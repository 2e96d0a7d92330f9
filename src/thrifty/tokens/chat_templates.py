"""Chat templates: how each open-weight family renders a chat request into the text pieces and
special tokens its tokenizer sees (``render_request``), and the request's token count from them
(``measure_request``). ``families`` maps model ids to a tokenizer and one of these templates."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from thrifty.tokens import _parts
from thrifty.tokens._parts import Measure

__all__ = ["ChatTemplate", "Piece", "measure_request", "render_request"]


@dataclass(frozen=True, slots=True)
class ChatTemplate:
    """How a family renders a chat request. ``kind`` picks the renderer:

    ``llama3``
        ``<|begin_of_text|>``, then per message ``<|start_header_id|>{role}<|end_header_id|>``
        ``"\\n\\n" + content.strip()`` ``<|eot_id|>``; the reply primer is the assistant header.
        With ``date_preamble`` (Llama 3.1+, whose Hugging Face template always opens with a system
        block) the first system message is prefixed with ``"Cutting Knowledge Date: December
        2023\\nToday Date: 26 Jul 2024\\n\\n"`` (a system block is emitted without one), and tools
        are listed in the first user message as the template does. Tool results use the
        ``ipython`` role; tool calls are ``{"name": ..., "parameters": ...}``.
    ``llama4``
        Like ``llama3`` without the preamble (``<|header_start|>``/``<|header_end|>``/``<|eot|>``).
    ``chatml`` (Qwen)
        ``<|im_start|>{role}\\n{content}<|im_end|>\\n`` per message, primer
        ``<|im_start|>assistant\\n``. ``default_system`` is emitted when the request has no system
        message (Qwen2: "You are a helpful assistant.", Qwen2.5: "You are Qwen, created by Alibaba
        Cloud. ..."). Tools follow the Qwen2.5/3 template's ``# Tools`` system section.
    ``deepseek`` (DeepSeek writes these tokens with full-width bars and ``▁``)
        ``<|begin_of_sentence|>`` + system prompts (joined by ``"\\n\\n"``), user turns
        ``<|User|>{content}``, assistant turns ``<|Assistant|>{content}<|end_of_sentence|>``, tool
        results inside ``<|tool_output_begin|>...<|tool_output_end|>``; primer ``<|Assistant|>``.
    ``mistral`` (mistral-common's instruct format for Tekken)
        ``<s>``, user turns ``[INST]{content}[/INST]``, assistant turns ``{content}</s>``, tool
        definitions as ``[AVAILABLE_TOOLS]{json}[/AVAILABLE_TOOLS]`` before the last user turn,
        tool results ``[TOOL_RESULTS]{json}[/TOOL_RESULTS]``, no primer. System prompts: with
        ``system_in_last_user`` (tokenizer v3: NeMo, Pixtral 12B, Ministral 8B) they are joined by
        ``"\\n\\n"`` and prepended to the last user turn; otherwise (v7+: Small 3.x, Magistral,
        Devstral) they are ``[SYSTEM_PROMPT]{content}[/SYSTEM_PROMPT]`` in place.
    """

    kind: Literal["llama3", "llama4", "chatml", "deepseek", "mistral"]
    date_preamble: bool = False
    default_system: str | None = None
    system_in_last_user: bool = False


# --------------------------------------------------------------------------------------------
# Rendering: a request becomes text pieces (str, measured) and known token counts (int: special
# tokens count 1 each, images their estimate).

Piece = str | int


def _dumps(obj: Any, indent: int | None = None) -> str:
    return json.dumps(obj, ensure_ascii=False, indent=indent)


def _tool_json(fn: Mapping[str, Any]) -> dict[str, Any]:
    return {"type": "function", "function": dict(fn)}


def _tool_result_text(message: Mapping[str, Any]) -> tuple[str, int]:
    return _parts.message_text(message)


def _messages(messages: list[Any]) -> list[Mapping[str, Any]]:
    return [m for m in messages if isinstance(m, Mapping)]


def _role(message: Mapping[str, Any]) -> str:
    role = message.get("role")
    return role if isinstance(role, str) else "user"


_LLAMA31_PREAMBLE = "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n"
_LLAMA31_TOOLS_INTRO = (
    "Given the following functions, please respond with a JSON for a function call with its "
    "proper arguments that best answers the given prompt.\n\n"
    'Respond in the format {"name": function name, "parameters": dictionary of argument name '
    "and its value}.Do not use variables.\n\n"
)


def _render_llama(
    template: ChatTemplate, messages: list[Mapping[str, Any]], tools: list[Mapping[str, Any]]
) -> Iterator[Piece]:
    yield 1  # <|begin_of_text|>
    rest = messages
    tools_text = ""
    if tools:
        tools_text = "".join(_dumps(_tool_json(fn), indent=4) + "\n\n" for fn in tools)
    if template.date_preamble:
        system = ""
        if rest and _role(rest[0]) == "system":
            system = _parts.message_text(rest[0])[0].strip()
            rest = rest[1:]
        env = "Environment: ipython\n" if tools else ""
        yield from (1, "system", 1, "\n\n" + env + _LLAMA31_PREAMBLE + system, 1)
        if tools_text:
            tools_text = _LLAMA31_TOOLS_INTRO + tools_text
    elif tools_text:
        yield from (1, "system", 1, "\n\n" + tools_text.strip(), 1)
        tools_text = ""
    for message in rest:
        role = _role(message)
        text, images = _parts.message_text(message)
        calls = list(_parts.tool_calls(message))
        if role in ("tool", "function", "ipython"):
            role = "ipython"
        if role == "user" and tools_text:
            text = tools_text + text.strip()
            tools_text = ""
        if calls:
            body = "".join(f'{{"name": "{name}", "parameters": {args}}}' for name, args in calls)
        else:
            body = text.strip()
        yield from (1, role, 1, "\n\n" + body, 1)
        if images:
            yield images
    yield from (1, "assistant", 1, "\n\n")


_QWEN_TOOLS_INTRO = (
    "\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
    "You are provided with function signatures within <tools></tools> XML tags:\n<tools>"
)
_QWEN_TOOLS_OUTRO = (
    "\n</tools>\n\nFor each function call, return a json object with function name and arguments "
    "within <tool_call></tool_call> XML tags:\n<tool_call>\n"
    '{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call>'
)


def _render_chatml(
    template: ChatTemplate, messages: list[Mapping[str, Any]], tools: list[Mapping[str, Any]]
) -> Iterator[Piece]:
    tools_text = ""
    if tools:
        listing = "".join("\n" + _dumps(_tool_json(fn)) for fn in tools)
        tools_text = _QWEN_TOOLS_INTRO + listing + _QWEN_TOOLS_OUTRO
    rest = messages
    if rest and _role(rest[0]) == "system":
        system = _parts.message_text(rest[0])[0]
        rest = rest[1:]
        yield from (1, "system\n" + system + tools_text, 1, "\n")
    elif template.default_system is not None or tools_text:
        system = template.default_system or ""
        yield from (1, "system\n" + (system + tools_text).lstrip("\n"), 1, "\n")
    for message in rest:
        role = _role(message)
        text, images = _parts.message_text(message)
        if role in ("tool", "function"):
            role, text = "user", "<tool_response>\n" + text + "\n</tool_response>"
        for name, args in _parts.tool_calls(message):
            text += f'\n<tool_call>\n{{"name": "{name}", "arguments": {args}}}\n</tool_call>'
        yield from (1, role + "\n" + text, 1, "\n")
        if images:
            yield images
    yield from (1, "assistant\n")


def _render_deepseek(
    template: ChatTemplate, messages: list[Mapping[str, Any]], tools: list[Mapping[str, Any]]
) -> Iterator[Piece]:
    systems = [_parts.message_text(m)[0] for m in messages if _role(m) == "system"]
    if tools:
        systems.append("\n\n".join(_dumps(_tool_json(fn)) for fn in tools))
    yield 1  # <|begin_of_sentence|>
    if systems:
        yield "\n\n".join(systems)
    for message in messages:
        role = _role(message)
        if role == "system":
            continue
        text, images = _parts.message_text(message)
        if images:
            yield images
        if role in ("tool", "function"):
            yield from (1, text, 1)  # <|tool_output_begin|> ... <|tool_output_end|>
            continue
        if role != "assistant":
            yield from (1, text)  # <|User|>
            continue
        yield 1  # <|Assistant|>
        if text:
            yield text
        calls = list(_parts.tool_calls(message))
        if calls:
            yield 1  # <|tool_calls_begin|>
            for name, args in calls:
                # <|tool_call_begin|>function<|tool_sep|>{name}...```<|tool_call_end|>
                yield from (1, "function", 1, f"{name}\n```json\n{args}\n```", 1)
            yield 1  # <|tool_calls_end|>
        yield 1  # <|end_of_sentence|>
    yield 1  # <|Assistant|>


def _json_or_text(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def _mistral_calls(message: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Tool calls as mistral-common serialises them (arguments as JSON, with the call id)."""
    ids = [c.get("id") if isinstance(c, Mapping) else None for c in message.get("tool_calls") or ()]
    calls: list[dict[str, Any]] = []
    for i, (name, args) in enumerate(_parts.tool_calls(message)):
        call: dict[str, Any] = {"name": name, "arguments": _json_or_text(args)}
        if i < len(ids) and isinstance(ids[i], str):
            call["id"] = ids[i]
        calls.append(call)
    return calls


def _render_mistral(
    template: ChatTemplate, messages: list[Mapping[str, Any]], tools: list[Mapping[str, Any]]
) -> Iterator[Piece]:
    systems = [_parts.message_text(m)[0] for m in messages if _role(m) == "system"]
    last_user = max((i for i, m in enumerate(messages) if _role(m) == "user"), default=-1)
    yield 1  # <s>
    for i, message in enumerate(messages):
        role = _role(message)
        text, images = _parts.message_text(message)
        if images:
            yield images
        if role == "system":
            if not template.system_in_last_user:
                yield from (1, text, 1)  # [SYSTEM_PROMPT] ... [/SYSTEM_PROMPT]
            continue
        if role == "user":
            if i == last_user and tools:
                yield from (1, _dumps([_tool_json(fn) for fn in tools]), 1)  # [AVAILABLE_TOOLS]
            if i == last_user and template.system_in_last_user and systems:
                text = "\n\n".join([*systems, text])
            yield from (1, text, 1)  # [INST] ... [/INST]
        elif role in ("tool", "function"):
            call_id = message.get("tool_call_id")
            result = {"content": text, "call_id": call_id} if call_id else {"content": text}
            yield from (1, _dumps(result), 1)  # [TOOL_RESULTS] ... [/TOOL_RESULTS]
        else:
            if text:
                yield text
            calls = _mistral_calls(message)
            if calls:
                yield from (1, _dumps(calls))  # [TOOL_CALLS]
            yield 1  # </s>


_RENDERERS: dict[str, Callable[..., Iterator[Piece]]] = {
    "llama3": _render_llama,
    "llama4": _render_llama,
    "chatml": _render_chatml,
    "deepseek": _render_deepseek,
    "mistral": _render_mistral,
}


def render_request(
    template: ChatTemplate, messages: list[Any], tools: list[Any] | None = None
) -> list[Piece]:
    """The request as the template renders it: text pieces and known token counts."""
    return list(
        _RENDERERS[template.kind](template, _messages(messages), _parts.tool_definitions(tools))
    )


def measure_request(
    template: ChatTemplate, messages: list[Any], tools: list[Any] | None, measure: Measure
) -> int:
    """Tokens of the rendered request, each text piece measured with ``measure``."""
    return sum(
        piece if isinstance(piece, int) else measure(piece)
        for piece in render_request(template, messages, tools)
    )
