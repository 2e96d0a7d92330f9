"""Cut message text into what compression may touch and what it must not.

``split(text)`` returns segments whose texts concatenate back to ``text`` exactly:

- ``FENCE``: a fenced code block, from the opening line's first character to the closing line's
  last character (its line terminator excluded). An opening fence is a line that starts, after
  optional spaces/tabs, with 3+ backticks or 3+ tildes (a backtick fence's info string has no
  backtick, as in CommonMark); it closes at a line holding only 3+ of the same character, at
  least as many, or runs to the end of the text. Indentation is not limited, which protects
  fences nested in lists too. Never changed.
- ``JSON``: a JSON object or array that starts a line (after optional spaces/tabs), ends a line
  (only whitespace after it on its line) and parses exactly (strict RFC 8259, via orjson).
  Compression minifies it with ``minify_json`` (whitespace between tokens only).
- ``PROSE``: everything else. Inside prose, ``protected_spans`` marks inline code (a backtick
  run closed by a run of the same length on the same line) and double-quoted strings (closed on
  the same line, backslash escapes honoured): compression keeps them verbatim, which keeps the
  string values of JSON written inline in prose too.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass
from typing import Literal

import orjson

SegmentKind = Literal["prose", "fence", "json"]

_LINE = re.compile(r"[^\n]*\n|[^\n]+")
_FENCE_OPEN = re.compile(r"[ \t]*(`{3,}|~{3,})([^\n]*)")
_JSON_START = re.compile(r"(?m)^[ \t]*([\[{])")
_BRACKET_OR_QUOTE = re.compile(r'[\[\]{}"]')
_STRING_TAIL = re.compile(r'(?:[^"\\]|\\.)*"', re.DOTALL)
_LINE_REST = re.compile(r"[ \t\r]*(?:\n|$)")
_JSON_TOKENS = re.compile(r'("(?:[^"\\]|\\.)*")|[ \t\n\r]+', re.DOTALL)
_QUOTE_OR_TICKS = re.compile(r'"|`+')
_QUOTE_TAIL = re.compile(r'(?:[^"\\\n]|\\[^\n])*"')


@dataclass(frozen=True, slots=True)
class Segment:
    """One piece of a text: ``kind`` says what compression may do with ``text``."""

    kind: SegmentKind
    text: str


def split(text: str) -> list[Segment]:
    """Segments of ``text`` (see the module docstring); their texts join back to ``text``."""
    out: list[Segment] = []
    pos = 0
    for start, end in _fences(text):
        _split_unfenced(text, pos, start, out)
        out.append(Segment("fence", text[start:end]))
        pos = end
    _split_unfenced(text, pos, len(text), out)
    return out


def _fences(text: str) -> list[tuple[int, int]]:
    """``(start, end)`` of each fenced code block, in order."""
    if "```" not in text and "~~~" not in text:
        return []
    fences: list[tuple[int, int]] = []
    lines = [(m.start(), m.group()) for m in _LINE.finditer(text)]
    i = 0
    while i < len(lines):
        start, line = lines[i]
        m = _FENCE_OPEN.match(line)
        if m is None or (m.group(1)[0] == "`" and "`" in m.group(2)):
            i += 1
            continue
        char, width = m.group(1)[0], len(m.group(1))
        end = len(text)
        for j in range(i + 1, len(lines)):
            body = lines[j][1].strip(" \t\r\n")
            if len(body) >= width and body == char * len(body):
                end = lines[j][0] + len(lines[j][1].rstrip("\r\n"))
                i = j
                break
        else:
            i = len(lines)
        fences.append((start, end))
        i += 1
    return fences


def _split_unfenced(text: str, start: int, end: int, out: list[Segment]) -> None:
    """Append the JSON and prose segments of ``text[start:end]`` (a region without fences)."""
    pos = start
    for j_start, j_end in _json_blocks(text, start, end):
        if j_start > pos:
            out.append(Segment("prose", text[pos:j_start]))
        out.append(Segment("json", text[j_start:j_end]))
        pos = j_end
    if end > pos:
        out.append(Segment("prose", text[pos:end]))


def _json_blocks(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """JSON objects/arrays in ``text[start:end]`` that fill their lines and parse exactly.

    Linear: a balanced but invalid candidate is skipped as a whole, and the search stops at the
    first candidate whose brackets never close.
    """
    blocks: list[tuple[int, int]] = []
    region = text[start:end]
    if "{" not in region and "[" not in region:
        return blocks
    scan_from = 0
    while True:
        m = _JSON_START.search(region, scan_from)
        if m is None:
            return blocks
        open_at = m.start(1)
        close_at = _match_brackets(region, open_at)
        if close_at < 0:
            return blocks
        rest = _LINE_REST.match(region, close_at)
        if rest is not None and is_json_container(region[open_at:close_at]):
            blocks.append((start + open_at, start + close_at))
        scan_from = close_at


def _match_brackets(text: str, open_at: int) -> int:
    """Index just past the bracket closing the one at ``open_at``, or -1 if it never closes.

    Brackets inside JSON strings are skipped; bracket kinds are not checked (parsing does that).
    """
    depth = 0
    pos = open_at
    while True:
        m = _BRACKET_OR_QUOTE.search(text, pos)
        if m is None:
            return -1
        char = m.group()
        if char == '"':
            tail = _STRING_TAIL.match(text, m.end())
            if tail is None:
                return -1
            pos = tail.end()
            continue
        depth += 1 if char in "[{" else -1
        pos = m.end()
        if depth == 0:
            return pos


def is_json_container(text: str) -> bool:
    """Whether ``text`` is exactly one JSON object or array (strict: no NaN, no comments)."""
    try:
        value = orjson.loads(text)
    except (orjson.JSONDecodeError, TypeError, ValueError):
        return False
    return isinstance(value, dict | list)


def minify_json(text: str) -> str:
    """``text`` (valid JSON) without whitespace between tokens; strings and numbers are copied
    verbatim, so the parsed value (and every number's digits) stays the same."""
    return _JSON_TOKENS.sub(lambda m: m.group(1) or "", text)


def protected_spans(prose: str) -> list[tuple[int, int]]:
    """``(start, end)`` of inline code spans and double-quoted strings in ``prose``, in order.

    Scanned left to right; whichever opens first wins. A backtick run closes at the next run of
    exactly the same length on the same line; a quote at the next unescaped quote on the same
    line. Unclosed openers are ordinary text.
    """
    if '"' not in prose and "`" not in prose:
        return []
    runs: dict[int, list[int]] = {}
    for m in re.finditer(r"`+", prose):
        runs.setdefault(m.end() - m.start(), []).append(m.start())
    spans: list[tuple[int, int]] = []
    cursor = 0
    for m in _QUOTE_OR_TICKS.finditer(prose):
        if m.start() < cursor:
            continue
        if m.group() == '"':
            tail = _QUOTE_TAIL.match(prose, m.end())
            if tail is not None:
                spans.append((m.start(), tail.end()))
                cursor = tail.end()
            continue
        width = m.end() - m.start()
        starts = runs[width]
        k = bisect.bisect_right(starts, m.start())
        line_end = prose.find("\n", m.end())
        if k < len(starts) and (line_end < 0 or starts[k] < line_end):
            spans.append((m.start(), starts[k] + width))
            cursor = starts[k] + width
    return spans
