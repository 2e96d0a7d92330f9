"""What the near-miss guard compares, extracted from one text: numbers, units, negations,
antonym poles, content words, entities, quoted strings, code identifiers and directions.

Code (fenced blocks, back-ticked spans, identifiers) is kept as written; negation, polarity,
entities and directions are read from the prose around it only, so ``from_pandas`` neither names
the entity "pandas" nor says "from".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import NamedTuple

from thrifty.cache.semantic.lexicon import (
    AXES,
    COMMON_STARTERS,
    FORMAT_WORDS,
    IMPLICIT_NEGATORS,
    NEGATORS,
    NUMBER_WORDS,
    ORDINAL_WORDS,
    PHRASAL_VERBS,
    SCALE_WORDS,
    SOFT_NUMBER_WORDS,
    STOPWORDS,
    TIME_DEICTICS,
    TIME_DIRECTIONS,
    TIME_UNITS,
    UNITS,
)

__all__ = ["POLE_OF", "TextFacts", "code_present", "facts", "stems", "word_present"]

_QUOTED = [
    re.compile(r"`([^`\n]{1,200})`"),
    re.compile(r'"([^"\n]{1,200})"'),
    re.compile(r"\u201c([^\u201d\n]{1,200})\u201d"),
    re.compile(r"(?<![\w])'([^'\n]{1,200})'(?![\w])"),
    re.compile(r"(?<![\w])\u2018([^\u2019\n]{1,200})\u2019(?![\w])"),
]
_IDENTIFIERS = re.compile(
    r"""(?x)
    \b[A-Za-z_][A-Za-z0-9]*_[A-Za-z0-9_]+\b             # snake_case
    | \b[a-z]+[A-Z][A-Za-z0-9]*\b                        # camelCase, iPhone
    | \b[A-Z][a-z0-9]+[A-Z][A-Za-z0-9]*\b                # PascalCase with two humps
    | \b[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+                  # dotted.name
    | \b[A-Za-z_]\w*\(\)                                 # call()
    | (?<![\w-])--?[A-Za-z][\w-]*                        # --flag, -v
    | (?<![\w/])(?:~|\.{1,2})?/[\w.-]+(?:/[\w.-]+)*      # /a/path
    | \b(?!v\d+\b)[A-Za-z]+\d\w*                          # gpt4, h100 (not v2: a version)
    """
)
_TOKEN = re.compile(
    r"[$€£¥%]|°[CcFf]\b|\bv?\d+(?:\.\d+){2,}\b|\b[A-Za-z]+\d\w*"
    r"|(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?[A-Za-z%]*|[A-Za-z]+(?:['\u2019][A-Za-z]+)?"
)
_VERSION = re.compile(r"v?(\d+(?:\.\d+)+)|v(\d+)")
_ALNUM = re.compile(r"[a-z]+\d\w*")
_ANSWER_PREFIX = re.compile(r"^\s*(?:yes|no|sure|ok|okay)\s*[,.!:]\s*", re.IGNORECASE)
_FENCE = re.compile(r"```.*?(?:```|$)", re.DOTALL)
_BACKTICKED = re.compile(r"`[^`\n]*`")
_NUMERIC = re.compile(r"((?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?)([A-Za-z%]*)")
_SENTENCE_END = re.compile(r"[.!?:;\n(\[\"\u201c*#>•-]\s*$")
_ORDINAL_SUFFIX = {"st", "nd", "rd", "th"}
_PARTICLES = {"on", "off", "in", "out", "up", "down"}
_CURRENCY = {"$": "usd", "€": "eur", "£": "gbp", "¥": "jpy"}
_DIRECTION = {"to", "into", "than", "vs", "versus"}
_NOT_NEGATED = {"a", "an", "the", "be", "is", "are", "was", "were", "been", "being", "to", "of"}
NEGATED_WORDS = 3

POLE_OF: dict[str, list[tuple[str, int]]] = {}
for _axis, _a, _b in AXES:
    for _pole, _words in ((0, _a), (1, _b)):
        for _word in _words:
            POLE_OF.setdefault(_word, []).append((_axis, _pole))


@dataclass(frozen=True, slots=True)
class TextFacts:
    """What the guard compares, extracted once per text (``facts`` is memoised)."""

    norm: str
    words: frozenset[str]
    plain_stems: frozenset[str]
    initials: str
    quoted: frozenset[str]
    identifiers: frozenset[str]
    numbers: frozenset[str]
    soft_numbers: frozenset[str]
    measures: frozenset[tuple[str, str]]
    bounds: frozenset[tuple[str, str]]
    units: frozenset[str]
    negations: int
    negated: frozenset[str]
    poles: frozenset[tuple[str, int]]
    content: frozenset[str]
    entities: frozenset[str]
    directions: frozenset[tuple[str, str]]
    times: frozenset[tuple[str, str]]


def _canon_number(raw: str) -> str:
    try:
        value = Decimal(raw.replace(",", ""))
    except InvalidOperation:
        return raw
    text = format(value.normalize(), "f")
    return text


@lru_cache(maxsize=65536)
def stems(word: str) -> tuple[str, ...]:
    out = [word]
    if len(word) > 4 and word.endswith("ing"):
        out += [word[:-3], word[:-3] + "e"]
        if word[-4] == word[-5]:
            out.append(word[:-4])
    if len(word) > 3 and word.endswith("ed"):
        out += [word[:-2], word[:-1]]
        if word[-3] == word[-4]:
            out.append(word[:-3])
    if len(word) > 3 and word.endswith("es"):
        out.append(word[:-2])
    if len(word) > 2 and word.endswith("s"):
        out.append(word[:-1])
    return tuple(out)


# Words before a number that make it a bound: "under $1000", "at least 5", "no more than 3".
_BOUND_BEFORE = {
    ("no", "more", "than"): "<=", ("not", "more", "than"): "<=", ("no", "fewer", "than"): ">=",
    ("no", "less", "than"): ">=", ("not", "less", "than"): ">=", ("more", "than"): ">",
    ("greater", "than"): ">", ("higher", "than"): ">", ("larger", "than"): ">",
    ("less", "than"): "<", ("fewer", "than"): "<", ("lower", "than"): "<",
    ("smaller", "than"): "<", ("at", "least"): ">=", ("at", "most"): "<=", ("up", "to"): "<=",
    ("upwards", "of"): ">", ("over",): ">", ("above",): ">", ("exceeding",): ">",
    ("under",): "<", ("below",): "<", ("min",): ">=", ("minimum",): ">=", ("max",): "<=",
    ("maximum",): "<=", ("within",): "<=",
}  # fmt: skip
# ... and after it: "5 or more", "18 and over", "10 or fewer".
_BOUND_AFTER = {
    "more": ">=", "greater": ">=", "higher": ">=", "above": ">=", "over": ">=", "up": ">=",
    "older": ">=", "less": "<=", "fewer": "<=", "lower": "<=", "below": "<=", "under": "<=",
    "younger": "<=",
}  # fmt: skip


_COMPARATIVES = {"more", "less", "fewer", "greater", "higher", "lower", "later", "earlier"}


def _bound(lower: list[str], start: int, end: int) -> str | None:
    """The direction of a bound on the number spanning ``lower[start:end + 1]``: ``>`` / ``>=``
    for a lower bound, ``<`` / ``<=`` for an upper one, ``None`` for a plain number."""
    before = [
        w for w in lower[max(0, start - 4) : start] if w not in ("a", "an", "$", "€", "£", "¥")
    ]
    for n in (3, 2, 1):
        if len(before) >= n and (found := _BOUND_BEFORE.get(tuple(before[-n:]))):
            return found
    after = lower[end + 1 : end + 3]
    if len(after) == 2 and after[0] in ("or", "and") and after[1] in _BOUND_AFTER:
        return _BOUND_AFTER[after[1]]
    return None


class _Numbers(NamedTuple):
    strong: set[str]
    soft: set[str]
    measures: set[tuple[str, str]]
    units: set[str]
    bounds: set[tuple[str, str]]  # (value, "<" | "<=" | ">" | ">=")


def _numbers(tokens: list[str]) -> _Numbers:
    strong: set[str] = set()
    soft: set[str] = set()
    measures: set[tuple[str, str]] = set()
    units: set[str] = set()
    bounds: set[tuple[str, str]] = set()
    lower = [t.lower() for t in tokens]
    i = 0
    while i < len(lower):
        start = i
        tok = lower[i]
        nxt = lower[i + 1] if i + 1 < len(lower) else ""
        unit: str | None = None
        value: str | None = None
        weak = False
        if tok in _CURRENCY and i + 1 < len(lower) and _NUMERIC.fullmatch(nxt):
            unit, i = _CURRENCY[tok], i + 1
            tok = nxt
            nxt = lower[i + 1] if i + 1 < len(lower) else ""
        if v := _VERSION.fullmatch(tok):
            value = _canon_number(v.group(1) or v.group(2))
        elif _ALNUM.fullmatch(tok):
            value = tok  # gpt4, h100: compare as written
        elif m := _NUMERIC.fullmatch(tok):
            number, suffix = m.groups()
            value = _canon_number(number)
            if suffix in SCALE_WORDS:
                value = _canon_number(str(Decimal(number.replace(",", "")) * SCALE_WORDS[suffix]))
            elif suffix and suffix not in _ORDINAL_SUFFIX:
                if suffix in UNITS:
                    unit = UNITS[suffix]
                else:
                    value = tok  # 3d, 4o: compare as written
        elif tok in NUMBER_WORDS or tok in ORDINAL_WORDS or tok in SOFT_NUMBER_WORDS:
            total = {**SOFT_NUMBER_WORDS, **ORDINAL_WORDS, **NUMBER_WORDS}[tok]
            weak = tok in SOFT_NUMBER_WORDS
            while nxt in NUMBER_WORDS and total % 10 == 0 and NUMBER_WORDS[nxt] < 10:
                total, weak, i = total + NUMBER_WORDS[nxt], False, i + 1  # twenty five
                nxt = lower[i + 1] if i + 1 < len(lower) else ""
            value = str(total)
        elif tok in ("hundred", "thousand", "million", "billion") and i > 0 and lower[i - 1] == "a":
            value = str(SCALE_WORDS[tok])
        if value is None:
            if tok in UNITS and (len(tok) > 3 or tok in {"°c", "°f"}) and tok != "second":
                units.add(UNITS[tok])
            i += 1
            continue
        if nxt in ("hundred", "thousand", "million", "billion", "trillion"):
            try:
                value = _canon_number(str(Decimal(value) * SCALE_WORDS[nxt]))
                weak, i = False, i + 1
                nxt = lower[i + 1] if i + 1 < len(lower) else ""
            except InvalidOperation:
                pass
        if unit is None and nxt in UNITS:
            unit, i = UNITS[nxt], i + 1
        (soft if weak and unit is None else strong).add(value)
        if unit is not None:
            measures.add((value, unit))
            units.add(unit)
        if direction := _bound(lower, start, i):
            bounds.add((value, direction))
        i += 1
    return _Numbers(strong, soft, measures, units, bounds)


def _times(words: list[str]) -> set[tuple[str, str]]:
    """Time references relative to now, as ``(direction, unit)``: "last week" and "the past
    week" → ("last", "week"), "tomorrow" → ("next", "day"), "this morning" → ("this",
    "morning"), a bare "morning" → ("", "morning")."""
    found: set[tuple[str, str]] = set()
    anchored: set[int] = set()
    for i, word in enumerate(words):
        direction = TIME_DIRECTIONS.get(word)
        if direction is None:
            continue
        for j in range(i + 1, min(i + 3, len(words))):
            unit = words[j].removesuffix("s") if words[j] not in TIME_UNITS else words[j]
            if unit in TIME_UNITS:
                found.add((direction, unit))
                anchored.add(j)
                break
    for i, word in enumerate(words):
        if word in TIME_DEICTICS and i not in anchored:
            found.add(TIME_DEICTICS[word])
    return found


def _poles(words: list[str]) -> set[tuple[str, int]]:
    poles: set[tuple[str, int]] = set()
    for i, word in enumerate(words):
        candidates = list(stems(word))
        if any(c in PHRASAL_VERBS for c in candidates):
            verb = next(c for c in candidates if c in PHRASAL_VERBS)
            for particle in words[i + 1 : i + 4]:
                if particle in _PARTICLES:
                    candidates.append(f"{verb}_{particle}")
                    break
        for cand in candidates:
            poles.update(POLE_OF.get(cand, ()))
    return poles


def _is_negator(word: str) -> bool:
    return word in NEGATORS or word in IMPLICIT_NEGATORS or word.endswith("n't")


def _alternative(words: list[str], i: int) -> bool:
    """ "or not" at ``i - 1, i`` offers the alternative ("whether or not", "... valid or not?")
    rather than negating what follows ("True or not specified")."""
    nxt = words[i + 1] if i + 1 < len(words) else ""
    return "whether" in words[max(0, i - 8) : i] or not nxt or nxt in STOPWORDS


def _negations(words: list[str]) -> tuple[int, set[str]]:
    """How many negations, and the stems of the words they negate: the next ``NEGATED_WORDS``
    words after each negator, articles and forms of "be" skipped ("is not *the same*").

    Negators include words that negate by meaning (``IMPLICIT_NEGATORS``: avoid, prevent,
    -agnostic) and "too <adjective> to <verb>", which negates the verb."""
    count = 0
    negated: set[str] = set()
    for i, word in enumerate(words):
        prev = words[i - 1] if i else ""
        nxt = words[i + 1] if i + 1 < len(words) else ""
        if word == "not" and (nxt == "only" or (prev == "or" and _alternative(words, i))):
            continue  # not only; whether or not, ... or not (but "True or not specified" counts)
        if word == "no" and nxt in ("matter", "doubt"):
            continue  # an answer's leading "No," is stripped before
        if word in ("no", "not") and nxt in _COMPARATIVES and words[i + 2 : i + 3] == ["than"]:
            continue  # "no more than 3" bounds a number (= "at most 3"); see _bound
        too_to = word == "too" and "to" in words[i + 2 : i + 4]  # too large to fit = won't fit
        if too_to or _is_negator(word):
            count += 1
            start = words.index("to", i + 2) + 1 if too_to else i + 1
            scope = [w for w in words[start : start + 7] if w not in _NOT_NEGATED]
            for w in scope[:NEGATED_WORDS]:
                if _is_negator(w):
                    break
                negated.update(stems(w))
    return count, negated


def _entities(text: str) -> set[str]:
    """Proper nouns and acronyms: capitalised words that do not start a sentence or a list item.

    A sentence-initial word counts only as an acronym ("NASA"): without a dictionary, "Users"
    and "Paris" look alike there, and a false entity would reject a true paraphrase.
    """
    found: set[str] = set()
    for m in re.finditer(r"(?<![\w'\u2019-])[A-Za-z][A-Za-z'\u2019]*", text):
        word = m.group().replace("\u2019", "'")
        if not word[0].isupper() or len(word) < 2:
            continue
        acronym = word.isupper()
        before = text[: m.start()]
        initial = not before.strip() or bool(_SENTENCE_END.search(before))
        lower = word.lower()
        base = lower.split("'")[0]
        if (initial and not acronym) or base in COMMON_STARTERS or lower in NEGATORS:
            continue
        found.add(base)
    return found


def _directions(words: list[str], anchors: set[str]) -> set[tuple[str, str]]:
    pairs: set[tuple[str, str]] = set()
    for i, word in enumerate(words):
        if word not in _DIRECTION and word != "from":
            continue
        left = next((w for w in reversed(words[max(0, i - 4) : i]) if w in anchors), None)
        right = next((w for w in words[i + 1 : i + 4] if w in anchors), None)
        if left and right and left != right:
            pairs.add((right, left) if word == "from" else (left, right))
    return pairs


def _norm_item(raw: str) -> str:
    item = " ".join(re.sub(r"[`\"\u201c\u201d\u2018\u2019]", " ", raw.lower()).split())
    return item.strip(" .,;:!?").removesuffix("()")


@lru_cache(maxsize=8192)
def facts(text: str) -> TextFacts:
    """Extract everything the guard compares from one text (memoised).

    Code (fenced blocks, back-ticked spans, identifiers) is compared as written; negation,
    polarity, entities and directions are read from the prose around it only.
    """
    body = _ANSWER_PREFIX.sub("", text, count=1)
    prose = _FENCE.sub(" ", body)
    quoted = {_norm_item(m.group(1)) for p in _QUOTED for m in p.finditer(prose)} - {""}
    identifiers = {
        m.group().lower().removesuffix("()").rstrip(".") for m in _IDENTIFIERS.finditer(body)
    }
    identifiers = {i for i in identifiers if not re.fullmatch(r"(?:\w\.)+\w?|-+\w", i)}
    plain = _IDENTIFIERS.sub(" ", _BACKTICKED.sub(" ", prose))
    strong, soft, measures, units, bounds = _numbers(_TOKEN.findall(body))
    words = [t.lower().replace("\u2019", "'") for t in _TOKEN.findall(body) if t[0].isalpha()]
    plain_words = [
        t.lower().replace("\u2019", "'") for t in _TOKEN.findall(plain) if t[0].isalpha()
    ]
    entities = _entities(plain)
    negations, negated = _negations(plain_words)
    anchors = entities | identifiers | set(UNITS) | FORMAT_WORDS
    return TextFacts(
        norm=_norm_item(body),
        words=frozenset(w for t in words for w in {t, *t.split("'")}),
        plain_stems=frozenset(
            stem for t in plain_words for w in {t, *t.split("'")} for stem in stems(w)
        ),
        initials="".join(w[0] for w in plain_words),
        quoted=frozenset(quoted),
        identifiers=frozenset(identifiers),
        numbers=frozenset(strong),
        soft_numbers=frozenset(soft - strong),
        measures=frozenset(measures),
        bounds=frozenset(bounds),
        units=frozenset(units),
        negations=negations,
        negated=frozenset(negated),
        poles=frozenset(_poles(plain_words)),
        content=frozenset(
            w for w in plain_words if len(w) > 1 and w.isalpha() and w not in STOPWORDS
        ),
        entities=frozenset(entities),
        directions=frozenset(_directions(plain_words, anchors)),
        times=frozenset(_times(plain_words)),
    )


def code_present(item: str, other: TextFacts) -> bool:
    """A quoted string or identifier of one text, found in the other (as code or prose)."""
    if item in other.identifiers or item in other.quoted or item in other.words:
        return True
    variants = {item, item + "s", item.removesuffix("s")}
    if any(re.search(rf"(?<![\w]){re.escape(v)}(?![\w])", other.norm) for v in variants if v):
        return True
    parts = [p for p in re.split(r"[.\s]+", item) if p]
    return len(parts) > 1 and all(code_present(p, other) for p in parts)


def word_present(item: str, other: TextFacts) -> bool:
    """An entity of one text, named in the other's prose (any inflection, or as an acronym)."""
    if any(stem in other.plain_stems for stem in stems(item)) or item in other.identifiers:
        return True
    return 1 < len(item) <= 6 and item.isalpha() and item in other.initials
