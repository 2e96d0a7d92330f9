"""The walk shared by the compression levers: over a body's messages and over one text.

``rewrite_text`` applies a chunk function to the free prose of a text (fenced code, inline code,
double-quoted strings are copied verbatim; JSON line blocks are minified or copied), and
``rewrite_messages`` applies a text function to every text piece of a body, guaranteeing that the
body's prompt-token count does not rise.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from thrifty.tokens import count_text
from thrifty.tokens.optimize import _segments
from thrifty.tokens.optimize._content import (
    INSTRUCTION_ROLES,
    body_messages,
    body_model,
    map_text,
    prompt_tokens,
    with_messages,
)

_LEADING_BLANK_LINES = re.compile(r"^(?:[ \t]*\n)+")


@dataclass(frozen=True, slots=True)
class CompressResult:
    """What a compression call did. Token counts are prompt tokens for the body's model."""

    tokens_before: int
    tokens_after: int
    lossy: bool
    texts_changed: int = 0
    """Text pieces (string contents, ``text`` parts, tool-call arguments) rewritten."""
    json_minified: int = 0
    """JSON documents minified (whole contents, line blocks, tool-call arguments)."""
    duplicates_dropped: int = 0
    """Exact duplicate system/developer messages removed."""
    rewrites: int = 0
    """Lossy phrase rewrites applied (always 0 for lossless)."""

    @property
    def tokens_saved(self) -> int:
        return self.tokens_before - self.tokens_after


#: ``fn(chunk, before, after)`` rewrites one free prose chunk; ``before``/``after`` are the
#: characters next to it in the text (``""`` at either end).
ChunkFn = Callable[[str, str, str], str]


@dataclass(slots=True)
class Tally:
    json_minified: int = 0
    rewrites: int = 0

    def add(self, other: Tally) -> None:
        self.json_minified += other.json_minified
        self.rewrites += other.rewrites


def _map_chunks(prose: str, before: str, after: str, fn: ChunkFn) -> str:
    """Apply ``fn`` to the chunks of ``prose`` outside inline code and quoted strings."""
    pieces: list[str] = []
    pos = 0
    end_of = len(prose)
    for start, end in [*_segments.protected_spans(prose), (end_of, end_of)]:
        if start > pos:
            left = prose[pos - 1] if pos else before
            right = prose[start] if start < end_of else after
            pieces.append(fn(prose[pos:start], left, right))
        pieces.append(prose[start:end])
        pos = end
    return "".join(pieces)


def rewrite_text(
    text: str, fn: ChunkFn | None, tally: Tally, *, minify: bool, strip_ends: bool
) -> str:
    """``text`` with ``fn`` applied to free prose and JSON line blocks minified (``minify``);
    fenced code and protected spans are copied verbatim. ``strip_ends`` drops leading blank lines
    and trailing whitespace where the text begins/ends with prose."""
    segments = _segments.split(text)
    out: list[str] = []
    for i, seg in enumerate(segments):
        if seg.kind == "fence" or (seg.kind == "json" and not minify):
            out.append(seg.text)
        elif seg.kind == "json":
            new = _segments.minify_json(seg.text)
            tally.json_minified += new != seg.text
            out.append(new)
        elif fn is None:
            out.append(seg.text)
        else:
            before = segments[i - 1].text[-1] if i else ""
            after = segments[i + 1].text[0] if i + 1 < len(segments) else ""
            out.append(_map_chunks(seg.text, before, after, fn))
    if strip_ends and out:
        if segments[0].kind == "prose":
            out[0] = _LEADING_BLANK_LINES.sub("", out[0], count=1)
        if segments[-1].kind == "prose":
            out[-1] = out[-1].rstrip(" \r\n")
    return "".join(out)


#: Whether a rewrite of a text (old, new) is kept.
Keep = Callable[[str, str], bool]


def _changed(old: str, new: str) -> bool:
    return new != old


def _no_worse(model: str) -> Keep:
    """Keep a rewrite only if it is not more tokens for ``model`` than the original text."""
    return lambda old, new: new != old and count_text(new, model) <= count_text(old, model)


@dataclass(slots=True)
class _Pass:
    messages: list[Any]
    tally: Tally
    texts_changed: int = 0
    duplicates: int = 0


def _rewrite_pass(
    messages: list[Any],
    text_fn: Callable[[str, Tally], str],
    keep: Keep,
    *,
    roles: Collection[str] | None,
    arguments: bool,
    dedupe: bool,
) -> _Pass:
    """One walk over ``messages``: ``text_fn`` on each text piece of the messages whose role is
    in ``roles`` (all when ``None``), kept where ``keep`` says; tool-call arguments minified
    (``arguments``); later duplicates of system/developer messages dropped (``dedupe``)."""
    done = _Pass([], Tally())
    seen: set[bytes] = set()

    def rewrite(text: str) -> str:
        local = Tally()
        new = text_fn(text, local)
        if not keep(text, new):
            return text
        done.tally.add(local)
        return new

    for message in messages:
        if not isinstance(message, Mapping):
            done.messages.append(message)
            continue
        new_message: Mapping[str, Any] = message
        if roles is None or message.get("role") in roles:
            content, changed = map_text(message.get("content"), rewrite)
            if changed:
                done.texts_changed += changed
                new_message = {**message, "content": content}
        if arguments and message.get("role") == "assistant":
            calls, changed = _minify_arguments(message.get("tool_calls"), keep, done.tally)
            if changed:
                done.texts_changed += changed
                new_message = {**new_message, "tool_calls": calls}
        if dedupe and new_message.get("role") in INSTRUCTION_ROLES:
            key = _message_key(new_message)
            if key in seen:
                done.duplicates += 1
                continue
            seen.add(key)
        done.messages.append(new_message)
    return done


def rewrite_messages(
    body: Mapping[str, Any],
    text_fn: Callable[[str, Tally], str],
    *,
    roles: Collection[str] | None,
    arguments: bool,
    dedupe: bool,
    lossy: bool,
) -> tuple[dict[str, Any], CompressResult]:
    """Rewrite the body's messages (see ``_rewrite_pass``) so that its token count never rises.

    The fast path counts the body before and after. Only if the total went up (no case is known:
    whitespace and filler removal have not been seen to add tokens) is the walk redone keeping
    each text's rewrite only where that text's own count does not rise.
    """
    messages = body_messages(body)
    options: dict[str, Any] = {"roles": roles, "arguments": arguments, "dedupe": dedupe}
    done = _rewrite_pass(messages, text_fn, _changed, **options)
    if not (done.texts_changed or done.duplicates):
        # Nothing to rewrite (the common case on the request path): no token counting at all;
        # the result reports 0 before and after.
        return dict(body), CompressResult(0, 0, lossy=lossy)
    before = prompt_tokens(body)
    new_body = with_messages(body, done.messages)
    after = prompt_tokens(new_body)
    if after > before:
        done = _rewrite_pass(messages, text_fn, _no_worse(body_model(body)), **options)
        new_body = with_messages(body, done.messages)
        after = prompt_tokens(new_body)
    if after > before or not (done.texts_changed or done.duplicates):
        return with_messages(body, list(messages)), CompressResult(before, before, lossy=lossy)
    return new_body, CompressResult(
        before,
        after,
        lossy=lossy,
        texts_changed=done.texts_changed,
        json_minified=done.tally.json_minified,
        duplicates_dropped=done.duplicates,
        rewrites=done.tally.rewrites,
    )


def _minify_arguments(calls: Any, keep: Keep, tally: Tally) -> tuple[Any, int]:
    """``tool_calls`` with their JSON ``arguments`` minified, and how many changed."""
    if not isinstance(calls, list):
        return calls, 0
    new_calls: list[Any] = []
    changed = 0
    for call in calls:
        fn = call.get("function") if isinstance(call, Mapping) else None
        args = fn.get("arguments") if isinstance(fn, Mapping) else None
        if isinstance(fn, Mapping) and isinstance(args, str) and _segments.is_json_container(args):
            new_args = _segments.minify_json(args.strip())
            if keep(args, new_args):
                tally.json_minified += 1
                changed += 1
                call = {**call, "function": {**fn, "arguments": new_args}}
        new_calls.append(call)
    return (new_calls, changed) if changed else (calls, 0)


def _message_key(message: Mapping[str, Any]) -> bytes:
    """Identity of an instruction message for duplicate detection (role, name, content)."""
    content = message.get("content")
    try:
        encoded = orjson.dumps(content, option=orjson.OPT_SORT_KEYS)
    except TypeError:  # not JSON-shaped: only identical objects are duplicates
        encoded = str(id(content)).encode()
    return orjson.dumps([message.get("role"), message.get("name")]) + encoded
