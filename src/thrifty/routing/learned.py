"""The ``learned`` scorer: two calibrated heads on the sentence embedding, routing on their gap.

``P(strong right)`` and ``P(cheap right)`` are two logistic heads on the all-MiniLM-L6-v2
embedding of the last user message (the embedder the semantic cache ships, shared); the score is
their difference, the **escalation gain**: it is high only where the strong model is likely to
succeed *and* the cheap one to fail. (Trained on "cheap failed" alone, a router also escalates
prompts neither model answers; that measured 0.07 APGR worse.) Each head is L2-regularised
logistic regression plus Platt scaling fitted on held-out logits (``routing.logistic``).

The prompt is embedded at most ``max_tokens`` word pieces long (by default 64: its first 31 and
last 31, ``truncation="head_tail"``): the embedding's cost grows with its length (~2 ms plus
~0.2 ms per word piece on one core), and on RouteLLM's MMLU outcomes 64 word pieces from both ends
route as well as 256 (see ``docs/decisions.md``). The cap and the cut are part of the model:
training embeds with them, the file records them and scoring uses them, so train and serve see
the same vectors.

A model is one ``.npz`` file (a few KB): the heads' arrays and a JSON metadata record (format,
version = a hash of the weights, embedder id, word-piece cap and cut, training-data hash,
cross-validated metrics). A file without a cap (written before it existed) was trained on the
first 256 word pieces and loads so. It loads only with the embedder it was trained with: an
index of vectors from another model would score nonsense. Loading with ``allow_pickle=False``: a
model file cannot execute code.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, cast

import numpy as np
import numpy.typing as npt

from thrifty.errors import ConfigError
from thrifty.routing.logistic import LogisticHead
from thrifty.routing.scorers import (
    LEARNED_MAX_TOKENS,
    LEARNED_TRUNCATION,
    RequestMeta,
    last_user_text,
)

if TYPE_CHECKING:
    from thrifty.cache.embedder import Truncation

__all__ = [
    "DEFAULT_MAX_TOKENS",
    "DEFAULT_TRUNCATION",
    "FORMAT",
    "LEGACY_MAX_TOKENS",
    "LEGACY_TRUNCATION",
    "LearnedModel",
    "LearnedScorer",
    "TextEmbedder",
]

FORMAT = "thrifty-router-learned/1"
DEFAULT_MAX_TOKENS = LEARNED_MAX_TOKENS
"""Word pieces per prompt a router is trained on unless told otherwise (``thrifty router train
--max-tokens``): the measured knee of latency against quality (``docs/decisions.md``)."""
DEFAULT_TRUNCATION: Truncation = cast("Truncation", LEARNED_TRUNCATION)
LEGACY_MAX_TOKENS = 256
"""The cap of a model file that records none: the embedder's own limit, all there was before."""
LEGACY_TRUNCATION: Truncation = "head"
_TRUNCATIONS = ("head", "head_tail")
FloatArray = npt.NDArray[np.float64]


class TextEmbedder(Protocol):
    """What the learned scorer needs from an embedder (``thrifty.cache.embedder.Embedder``)."""

    @property
    def model_id(self) -> str: ...

    def embed(
        self, texts: list[str], max_tokens: int | None = None, truncation: Truncation = "head"
    ) -> npt.NDArray[np.float32]: ...

    async def aembed(
        self, texts: list[str], max_tokens: int | None = None, truncation: Truncation = "head"
    ) -> npt.NDArray[np.float32]: ...


def _default_embedder() -> TextEmbedder:
    from thrifty.cache.embedder import get_embedder

    return get_embedder()


@dataclass(frozen=True)
class LearnedModel:
    """The two heads and their metadata. ``gain(x)`` = P(strong) - P(cheap) per embedding row.

    ``max_tokens``, ``truncation``: the word pieces per prompt the heads were trained on (and
    scoring embeds), and which of a longer prompt's are kept.
    """

    strong: LogisticHead
    cheap: LogisticHead
    embedder_id: str
    metadata: Mapping[str, Any] = field(default_factory=dict)
    max_tokens: int = LEGACY_MAX_TOKENS
    truncation: Truncation = LEGACY_TRUNCATION

    @property
    def dim(self) -> int:
        return len(self.strong.weights)

    @property
    def version(self) -> str:
        """A short hash of the weights (and of the cap and cut, unless the first 256 word pieces):
        names this exact model in logs and route reasons."""
        digest = hashlib.sha256()
        for head in (self.strong, self.cheap):
            digest.update(np.ascontiguousarray(head.weights, dtype="<f8").tobytes())
            digest.update(np.array([head.bias, head.platt_a, head.platt_b], "<f8").tobytes())
        if (self.max_tokens, self.truncation) != (LEGACY_MAX_TOKENS, LEGACY_TRUNCATION):
            # (a model of the first 256 word pieces keeps the version it always had)
            digest.update(f"max_tokens={self.max_tokens},{self.truncation}".encode())
        return digest.hexdigest()[:12]

    def probabilities(self, x: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
        """``(P(strong right), P(cheap right))`` for embedding rows ``x``."""
        return self.strong.predict(x), self.cheap.predict(x)

    def gain(self, x: npt.ArrayLike) -> FloatArray:
        p_strong, p_cheap = self.probabilities(x)
        return p_strong - p_cheap

    def save(self, path: Path | str) -> Path:
        """Write the model to ``path`` (``.npz``); returns the path written."""
        path = Path(path)
        meta = {
            **self.metadata,
            "format": FORMAT,
            "version": self.version,
            "embedder_id": self.embedder_id,
            "dim": self.dim,
            "max_tokens": self.max_tokens,
            "truncation": self.truncation,
        }
        arrays: dict[str, Any] = {
            "meta_json": np.frombuffer(json.dumps(meta, sort_keys=True).encode(), dtype=np.uint8),
        }
        for name, head in (("strong", self.strong), ("cheap", self.cheap)):
            arrays[f"{name}_weights"] = np.asarray(head.weights, dtype=np.float64)
            arrays[f"{name}_params"] = np.array([head.bias, head.platt_a, head.platt_b])
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as fh:
            np.savez(fh, **arrays)
        return path

    @classmethod
    def load(cls, path: Path | str) -> LearnedModel:
        """Read a model written by :meth:`save`; ``ConfigError`` if missing or not one."""
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as data:
                meta = json.loads(bytes(data["meta_json"]).decode())
                heads = {}
                for name in ("strong", "cheap"):
                    bias, a, b = (float(v) for v in data[f"{name}_params"])
                    heads[name] = LogisticHead(np.array(data[f"{name}_weights"]), bias, a, b)
        except FileNotFoundError:
            raise ConfigError(f"router model not found: {path}") from None
        except (OSError, KeyError, ValueError) as exc:
            raise ConfigError(f"{path} is not a thrifty router model ({exc})") from None
        if meta.get("format") != FORMAT:
            raise ConfigError(f"{path}: unsupported router model format {meta.get('format')!r}")
        max_tokens = meta.get("max_tokens", LEGACY_MAX_TOKENS)
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 3:
            raise ConfigError(f"{path}: bad max_tokens {max_tokens!r} in the router model")
        truncation = meta.get("truncation", LEGACY_TRUNCATION)
        if truncation not in _TRUNCATIONS:
            raise ConfigError(f"{path}: bad truncation {truncation!r} in the router model")
        fixed = ("format", "embedder_id", "dim", "max_tokens", "truncation")
        extra = {k: v for k, v in meta.items() if k not in fixed}
        return cls(
            heads["strong"],
            heads["cheap"],
            str(meta["embedder_id"]),
            extra,
            max_tokens,
            cast("Truncation", truncation),
        )


class LearnedScorer:
    """Scores a request by the escalation gain of its last user message (see module docstring).

    Thread-safe (the model is immutable; the embedder is shared). ``score`` blocks for one
    embedding of at most ``model.max_tokens`` word pieces (a few ms on one core); ``ascore`` runs
    it on the embedder's worker thread.
    """

    name = "learned"
    tag_conditions: frozenset[str] = frozenset()  # reads the body only

    def __init__(self, model: LearnedModel, embedder: TextEmbedder | None = None) -> None:
        self.model = model
        self._embedder = embedder

    @classmethod
    def load(cls, path: Path | str, embedder: TextEmbedder | None = None) -> LearnedScorer:
        return cls(LearnedModel.load(path), embedder)

    def save(self, path: Path | str) -> Path:
        return self.model.save(path)

    @property
    def embedder(self) -> TextEmbedder:
        """The embedder (the shared one unless injected), checked against the model's id."""
        if self._embedder is None:
            self._embedder = _default_embedder()
        if self._embedder.model_id != self.model.embedder_id:
            raise ConfigError(
                f"router model was trained on {self.model.embedder_id} embeddings; "
                f"this embedder is {self._embedder.model_id}: retrain it"
            )
        return self._embedder

    def score_embeddings(self, x: npt.ArrayLike) -> FloatArray:
        """Scores of precomputed embedding rows (the training and evaluation path)."""
        return self.model.gain(np.atleast_2d(np.asarray(x, dtype=np.float64)))

    def score_texts(self, texts: list[str]) -> FloatArray:
        m = self.model
        return self.score_embeddings(self.embedder.embed(texts, m.max_tokens, m.truncation))

    def score_text(self, text: str) -> float:
        return float(self.score_texts([text])[0])

    def score(self, body: Mapping[str, Any], meta: RequestMeta | None = None) -> float:
        return self.score_text(last_user_text(body))

    async def ascore(self, body: Mapping[str, Any], meta: RequestMeta | None = None) -> float:
        text = last_user_text(body)
        vectors = await self.embedder.aembed([text], self.model.max_tokens, self.model.truncation)
        return float(self.score_embeddings(vectors)[0])
