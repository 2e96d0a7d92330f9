"""Prompt compression: a lossless lever (on by default) and a lossy one (opt-in).

Lossless — ``compress_lossless(body)``. Invariants:

- Fenced code blocks are byte-identical; inline code spans and double-quoted strings in prose are
  kept verbatim (see ``_segments``). ```json fences are code blocks too: never touched (fence
  JSON to keep it verbatim).
- JSON is minified only where it is provably JSON: a whole message content (after stripping) that
  parses as an object/array, a JSON object/array filling its own lines in prose and parsing
  exactly (strict RFC 8259), and assistant ``tool_calls[].function.arguments``. Minifying only
  removes whitespace between tokens: every string and number is copied verbatim, so the parsed
  value is equal (digits and key order included).
- Prose whitespace: ``\\r\\n`` becomes ``\\n``; spaces at the end of a line go; a run of 2+ spaces
  between two non-space characters on a line becomes one space; 3+ line breaks (blank lines with
  only spaces count) become one blank line; leading blank lines and trailing whitespace of a
  whole text go. Indentation at the start of a line and tabs are kept (Python, YAML, TSV and
  Markdown lists mean something by them). Column alignment of unfenced text is not kept.
- Exact duplicate system/developer messages (same role, name and content after the steps above)
  are dropped; the first one stays where it was.
- The request's token count (for the body's model) never goes up: should the rewrites add tokens
  in total, only the rewrites that do not add tokens to their own text are kept. The result is
  idempotent.
- Only string contents and ``text`` parts change; other parts and fields are kept as they are.

Lossy — ``compress_lossy(body)``: rewrites filler phrases and verbose constructions from seed 001
("in order to" → "to", "Could you please" → "", ...) in the prose of user/system/developer
messages (never in code, JSON or quoted strings). It can change meaning — "Can you tell me the
time?" becomes "The time?" — so it is opt-in per route and a separate call. The seed's deletion
of adverbs ("probably", "definitely", ...) is left out: it changes what a sentence claims.

Both return a new body (the input is never mutated; unchanged messages are shared with it) and a
``CompressResult``.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from typing import Any

from thrifty.tokens.optimize import _segments
from thrifty.tokens.optimize._content import INSTRUCTION_ROLES, body_messages
from thrifty.tokens.optimize._rewrite import (
    ChunkFn,
    CompressResult,
    Tally,
    rewrite_messages,
    rewrite_text,
)

__all__ = ["LOSSY_REWRITES", "CompressResult", "compress_lossless", "compress_lossy"]


# --------------------------------------------------------------------------------------------
# Lossless

_TRAILING_SPACES = re.compile(r" +\n")
_INNER_RUN = re.compile(r"(?<=\S) {2,}(?=\S)")
_BLANK_LINES = re.compile(r"\n{3,}")
#: Anything a lossless step could change: ``\r``, two spaces, a space before a line break, three
#: line breaks, a JSON bracket opening a line (where JSON blocks and whole-JSON contents start),
#: leading blank lines or trailing whitespace. A text without any is returned as it is without
#: being split into segments (most texts on the request path).
_MAYBE_LOSSLESS = re.compile(r"\r|  | \n|\n\n\n|^[ \t]*[{\[]|\A[ \t]*\n|[ \n]\Z", re.MULTILINE)
_LINE_OPENS_JSON = re.compile(r"^[ \t]*[{\[]", re.MULTILINE)


def _maybe_lossless(text: str) -> bool:
    """``_MAYBE_LOSSLESS.search(text) is not None``, with substring tests first (~5x cheaper on
    the short texts of the request path; the regex tries every alternative at every position)."""
    if "\r" in text or "  " in text or " \n" in text or "\n\n\n" in text:
        return True
    if text[-1:] in (" ", "\n") or text.lstrip(" \t")[:1] == "\n":
        return True
    return ("{" in text or "[" in text) and _LINE_OPENS_JSON.search(text) is not None


def _sentinel(char: str) -> str:
    """A stand-in for a neighbouring character, of the same class for the whitespace rules and
    never changed by them: a line break, a non-space or a tab."""
    if char in ("", "\n", "\r"):
        return "\n"
    return "\t" if char.isspace() else "x"


def _squeeze(chunk: str, before: str, after: str) -> str:
    """The lossless whitespace rules applied to one free prose chunk."""
    s = _sentinel(before) + chunk.replace("\r\n", "\n") + _sentinel(after)
    s = _TRAILING_SPACES.sub("\n", s)
    s = _INNER_RUN.sub(" ", s)
    s = _BLANK_LINES.sub("\n\n", s)
    return s[1:-1]


def _lossless_text(text: str, tally: Tally, *, whitespace: bool, minify: bool) -> str:
    if not _maybe_lossless(text):
        return text
    stripped = text.strip()
    if minify and stripped[:1] in ("{", "[") and _segments.is_json_container(stripped):
        tally.json_minified += 1
        return _segments.minify_json(stripped)
    fn = _squeeze if whitespace else None
    return rewrite_text(text, fn, tally, minify=minify, strip_ends=whitespace)


def _nothing_to_compress(body: Mapping[str, Any]) -> bool:
    """True when no step can change ``body``: string contents only, none with anything a lossless
    step acts on, no tool calls, at most one system/developer message. The request path's
    common case, answered without walking the messages through the rewrite machinery."""
    instructions = 0
    for message in body_messages(body):
        if (type(message) is not dict and not isinstance(message, Mapping)) or (
            "tool_calls" in message
        ):
            return False
        content = message.get("content")
        if type(content) is not str or _maybe_lossless(content):
            return False
        instructions += message.get("role") in INSTRUCTION_ROLES
    return instructions < 2


def compress_lossless(
    body: Mapping[str, Any],
    *,
    whitespace: bool = True,
    minify_json: bool = True,
    dedupe_system: bool = True,
) -> tuple[dict[str, Any], CompressResult]:
    """Lossless compression of a chat body; see the module docstring for what it guarantees.

    Every role's content is compressed. ``whitespace``, ``minify_json`` (contents and tool-call
    arguments) and ``dedupe_system`` switch the three steps. Returns a new body and a
    ``CompressResult`` (``tokens_after <= tokens_before`` always).
    """

    if _nothing_to_compress(body):
        return dict(body), CompressResult(0, 0, lossy=False)

    def text_fn(text: str, tally: Tally) -> str:
        return _lossless_text(text, tally, whitespace=whitespace, minify=minify_json)

    return rewrite_messages(
        body, text_fn, roles=None, arguments=minify_json, dedupe=dedupe_system, lossy=False
    )


# --------------------------------------------------------------------------------------------
# Lossy

#: (phrase, replacement) pairs, matched case-insensitively on word boundaries; the replacement
#: takes the phrase's capital, and a deleted phrase at a sentence start capitalises the next word.
#: From seed 001, with deletions that would drop the request's verb turned into that verb
#: ("Could you explain X" → "Explain X", not " X").
LOSSY_REWRITES: tuple[tuple[str, str], ...] = (
    ("I would appreciate it if you could", ""),
    ("It would be great if you could", ""),
    ("I was wondering if you could", ""),
    ("I was wondering if", ""),
    ("I would like you to", ""),
    ("I would like to know", ""),
    ("could you please", ""),
    ("can you please", ""),
    ("can you tell me", ""),
    ("could you tell me", ""),
    ("could you explain", "explain"),
    ("can you explain", "explain"),
    ("please help me understand", "explain"),
    ("I need to understand", "explain"),
    ("I want to learn about", "explain"),
    ("I'm interested in learning about", "explain"),
    ("I'm curious about", "explain"),
    ("please provide information on", "describe"),
    ("please provide information about", "describe"),
    ("it is important to note that", ""),
    ("it's important to note that", ""),
    ("please note that", ""),
    ("in order to", "to"),
    ("due to the fact that", "because"),
    ("at this point in time", "now"),
    ("a large number of", "many"),
    ("the majority of", "most"),
    ("a majority of", "most"),
    ("a sufficient amount of", "enough"),
    ("in the event that", "if"),
    ("in the near future", "soon"),
    ("in spite of the fact that", "although"),
    ("despite the fact that", "although"),
    ("with regard to", "about"),
    ("with the exception of", "except"),
    ("for the purpose of", "for"),
    ("has the ability to", "can"),
)

_CAPITALISE = "\ue000"  # private-use marker: "upper-case the next letter"
_CAPITALISE_NEXT = re.compile(_CAPITALISE + r"([^\w\n]*)(\w?)")


def _phrase_pattern(phrase: str, deleted: bool) -> str:
    words = [re.escape(w).replace("'", "['\u2019]") for w in phrase.split()]
    tail = r"[ \t]*(?:,[ \t]*)?" if deleted else ""
    return r"(?<!\w)" + r"\s+".join(words) + r"(?!\w)" + tail


_LOSSY = re.compile(
    "|".join(
        f"(?P<r{i}>{_phrase_pattern(phrase, not repl)})"
        for i, (phrase, repl) in enumerate(LOSSY_REWRITES)
    ),
    re.IGNORECASE,
)


def _lossy_chunk(tally: Tally) -> ChunkFn:
    def fn(chunk: str, before: str, _after: str) -> str:
        if _CAPITALISE in chunk:
            return chunk

        def repl(m: re.Match[str]) -> str:
            tally.rewrites += 1
            replacement = LOSSY_REWRITES[int(str(m.lastgroup)[1:])][1]
            if replacement:
                first = m.group()[0]
                return replacement[0].upper() + replacement[1:] if first.isupper() else replacement
            prefix = (("\n" if before in ("", "\n") else before) + chunk[: m.start()]).rstrip()
            return _CAPITALISE if not prefix or prefix[-1] in ".!?\n" else ""

        out = _LOSSY.sub(repl, chunk)
        return _CAPITALISE_NEXT.sub(lambda m: m.group(1) + m.group(2).upper(), out)

    return fn


def compress_lossy(
    body: Mapping[str, Any], *, roles: Collection[str] = ("system", "developer", "user")
) -> tuple[dict[str, Any], CompressResult]:
    """Lossy compression (opt-in): rewrite ``LOSSY_REWRITES`` in the prose of ``roles``' messages.

    Code (fenced or inline), JSON line blocks and double-quoted strings are never rewritten. It
    can change meaning (see the module docstring). It does not run the lossless steps: call
    ``compress_lossless`` as well when both are enabled. Returns a new body and a
    ``CompressResult`` with ``lossy=True`` and ``rewrites`` set.
    """

    def text_fn(text: str, tally: Tally) -> str:
        return rewrite_text(text, _lossy_chunk(tally), tally, minify=False, strip_ends=False)

    return rewrite_messages(
        body, text_fn, roles=frozenset(roles), arguments=False, dedupe=False, lossy=True
    )
