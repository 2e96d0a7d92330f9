"""Labelled pairs for calibrating and benchmarking the semantic cache.

Paraphrase sets (such as GPTCache's ``{"origin", "similar"}`` pairs) hold positives only; precision
needs negatives. :func:`build_devset` adds three kinds, each pair tagged with its ``kind``:

``random``     the origin against another item's paraphrase (easy)
``nearest``    the origin against the most similar *other* origin by cosine (natural, hard; a
               few may be true duplicates, so this slightly understates precision)
``number`` ``negation`` ``antonym`` ``entity`` ``identifier``
               the origin against its own paraphrase edited to change the meaning: a number
               changed, a negation added or removed, a word swapped for its antonym, a proper
               noun or code identifier swapped for one from another item

The antonym list here is written independently of the guard's lexicon and includes pairs the guard
does not know (load/save, local/remote, row/column, ...), so the guard's recall on them is honest.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["LabelledPair", "build_devset", "near_misses"]


@dataclass(frozen=True, slots=True)
class LabelledPair:
    """Two texts and whether a cached answer for one may serve the other."""

    a: str
    b: str
    label: bool
    kind: str = ""


_SWAPS = {
    "add": "remove", "before": "after", "first": "last", "enable": "disable", "load": "save",
    "local": "remote", "include": "exclude", "increase": "decrease", "minimum": "maximum",
    "upload": "download", "input": "output", "train": "test", "row": "column",
    "rows": "columns", "true": "false", "start": "end", "open": "close", "read": "write",
    "import": "export", "small": "large", "smaller": "larger", "more": "fewer", "less": "more",
    "private": "public", "encode": "decode", "source": "target", "key": "value",
    "keys": "values", "lower": "upper", "allow": "prevent", "faster": "slower", "can": "cannot",
    "easy": "hard", "same": "different", "inside": "outside", "with": "without",
    "create": "delete", "push": "pull", "show": "hide", "online": "offline", "text": "image",
    "audio": "video", "images": "texts", "batch": "single",
}  # fmt: skip
_SWAPS.update({v: k for k, v in list(_SWAPS.items()) if v not in _SWAPS})
_AUX = re.compile(r"\b(is|are|was|were|does|do|did|should|will|could|would|has|have|must|may)\b")
_NEG = re.compile(r"\s+not\b|n't\b|\bcannot\b")
_DIGITS = re.compile(r"(?<![\w.])\d+(?:\.\d+)?(?![\w.]\d)")
_ENTITY = re.compile(r"(?<=[a-z,;] )[A-Z][a-zA-Z]+\b")
_IDENT = re.compile(r"`([^`\n]+)`")

Edit = Callable[[str, random.Random, dict[str, list[str]]], str | None]


def _number(text: str, rng: random.Random, _: dict[str, list[str]]) -> str | None:
    found = list(_DIGITS.finditer(text))
    if not found:
        return None
    m = rng.choice(found)
    raw = m.group()
    new = (
        str(int(raw) + rng.choice([1, 2, 10]))
        if raw.isdigit()
        else raw[:-1] + str((int(raw[-1]) + 1) % 10)
    )
    return text[: m.start()] + new + text[m.end() :]


def _negation(text: str, _rng: random.Random, _: dict[str, list[str]]) -> str | None:
    if m := _NEG.search(text):
        repl = "can" if m.group() == "cannot" else ""
        return text[: m.start()] + repl + text[m.end() :]
    if m := _AUX.search(text):
        return text[: m.end()] + " not" + text[m.end() :]
    if m := re.search(r"\bcan\b", text):
        return text[: m.start()] + "cannot" + text[m.end() :]
    return None


def _antonym(text: str, rng: random.Random, _: dict[str, list[str]]) -> str | None:
    found = [m for m in re.finditer(r"\b[a-z]+\b", text) if m.group() in _SWAPS]
    if not found:
        return None
    m = rng.choice(found)
    return text[: m.start()] + _SWAPS[m.group()] + text[m.end() :]


def _swap_from(pattern: re.Pattern[str], pool_name: str, group: int = 0) -> Edit:
    def edit(text: str, rng: random.Random, pools: dict[str, list[str]]) -> str | None:
        found = list(pattern.finditer(text))
        if not found:
            return None
        m = rng.choice(found)
        choices = [p for p in pools[pool_name] if p.lower() not in text.lower()]
        if not choices:
            return None
        return text[: m.start(group)] + rng.choice(choices) + text[m.end(group) :]

    return edit


_EDITS: dict[str, Edit] = {
    "number": _number,
    "negation": _negation,
    "antonym": _antonym,
    "entity": _swap_from(_ENTITY, "entities"),
    "identifier": _swap_from(_IDENT, "identifiers", 1),
}


def near_misses(
    pairs: Sequence[tuple[str, str]], *, seed: int = 0, kinds: Sequence[str] | None = None
) -> list[LabelledPair]:
    """Constructed negatives: ``(origin, edited paraphrase)`` for each pair an edit applies to."""
    rng = random.Random(seed)
    texts = [t for pair in pairs for t in pair]
    pools = {
        "entities": sorted({m.group() for t in texts for m in _ENTITY.finditer(t)}),
        "identifiers": sorted({m.group(1) for t in texts for m in _IDENT.finditer(t)}),
    }
    out = []
    for kind in kinds or list(_EDITS):
        edit = _EDITS[kind]
        for origin, similar in pairs:
            changed = edit(similar, rng, pools)
            if changed is not None and changed != similar:
                out.append(LabelledPair(origin, changed, False, kind))
    return out


def build_devset(
    pairs: Sequence[tuple[str, str]],
    *,
    embed: Callable[[list[str]], np.ndarray] | None = None,
    seed: int = 0,
) -> list[LabelledPair]:
    """Positives, random negatives, nearest-neighbour negatives (needs ``embed``) and near-misses.

    Pairs whose two texts are identical are dropped; so are "negatives" whose texts are equal.
    """
    pairs = [(a, b) for a, b in pairs if a.strip() != b.strip()]
    rng = random.Random(seed)
    out = [LabelledPair(a, b, True, "paraphrase") for a, b in pairs]
    n = len(pairs)
    for i, (origin, _) in enumerate(pairs):
        j = (i + rng.randrange(1, n)) % n if n > 1 else i
        if j != i and pairs[j][1] != origin:
            out.append(LabelledPair(origin, pairs[j][1], False, "random"))
    if embed is not None and n > 1:
        origins = [a for a, _ in pairs]
        vectors = embed(origins)
        sims = vectors @ vectors.T
        np.fill_diagonal(sims, -2.0)
        for i, j in enumerate(np.argmax(sims, axis=1)):
            if origins[i].strip().lower() != origins[int(j)].strip().lower():
                out.append(LabelledPair(origins[i], origins[int(j)], False, "nearest"))
    out.extend(near_misses(pairs, seed=seed))
    return out
