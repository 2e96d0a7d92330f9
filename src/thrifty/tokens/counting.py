"""Token counting, offline: exact where a local tokenizer exists, a calibrated estimate elsewhere.

OpenAI models (exact): counted with tiktoken's o200k_base / cl100k_base encodings, built offline
from bundled rank files verified against tiktoken's pins (``encodings``, which raises
``TokenizerDataError`` if they are not), once per process; importing this module does nothing.
Counts for OpenAI models are exact for text. Chat overhead follows the OpenAI Cookbook ("How to
count tokens with tiktoken"); images and tool schemas are documented estimates.

Open families (exact, with ``thrifty[tokenizers]``): Llama 3/4, Qwen, Mistral Tekken models and
DeepSeek V3/R1/V4 are counted with their own tokenizers and chat templates; see ``families`` for
the model ids, the files and what is exact.

Everything else (Claude, Gemini, ..., and open families whose package is not installed) gets a
calibrated estimate: the o200k_base count times a documented safety factor, never above the hard
upper bound; see ``estimate``. ``TokenCount.source`` says which one a count is.

The hard upper bound (``upper_bound_tokens``, ``TokenCount.upper_bound``,
``request_upper_bound``) is what budgets should use when they must never under-count.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import orjson
import tiktoken

from thrifty.tokens import _parts, chat_templates, estimate, families, family_loaders
from thrifty.tokens._parts import IMAGE_TOKENS_HIGH as IMAGE_TOKENS_HIGH  # re-exported
from thrifty.tokens._parts import IMAGE_TOKENS_LOW as IMAGE_TOKENS_LOW  # re-exported
from thrifty.tokens._parts import Measure, Tokenizer
from thrifty.tokens.encodings import CL100K_BASE, O200K_BASE, get_encoding

# Chat overhead (OpenAI Cookbook): every message is wrapped as <|start|>{role}<|message|>...<|end|>.
TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
REPLY_PRIMER_TOKENS = 3

# Tool-definition overhead, fitted by the OpenAI Cookbook against the API
# (func_init, prop_init, prop_key, enum_init, enum_item, func_end).
_TOOL_OVERHEAD: dict[str, tuple[int, int, int, int, int, int]] = {
    O200K_BASE: (7, 3, 3, -3, 3, 12),
    CL100K_BASE: (10, 3, 3, -3, 3, 12),
}

_O200K_MODELS = re.compile(r"^(?:gpt-4o|gpt-4\.1|gpt-4\.5|gpt-5|chatgpt-4o|gpt-oss|o[134](?:-|$))")
_CL100K_MODELS = re.compile(
    r"^(?:gpt-4(?:-|$)|gpt-3\.5|gpt-35|text-embedding-|davinci-002|babbage-002)"
)


@dataclass(frozen=True, slots=True)
class TokenCount:
    """Prompt tokens of a request.

    ``source`` is ``"counted"`` when the model's own tokenizer and chat format were used (exact
    for text; images and tool schemas follow documented estimates), and ``"estimated"`` when the
    model has no local tokenizer: then ``tokens`` is the calibrated estimate (the o200k_base count
    times the model's safety factor, see ``estimate``).

    ``upper_bound`` is a hard bound for budgets: every text piece of the request is bounded by its
    UTF-8 bytes (after the tokenizer's normalisation, see ``upper_bound_tokens``), chat-format
    tokens are as counted and images are their documented estimate. ``upper_bound >= tokens``.
    ``count_request`` always sets it; it is ``None`` only in counts built elsewhere.
    """

    tokens: int
    source: Literal["counted", "estimated"]
    upper_bound: int | None = None


# --------------------------------------------------------------------------------------------
# Models


def normalise_model(model: str) -> str:
    """The bare model name: lower-case, without provider prefix, fine-tune or version tags.

    ``"openai/gpt-4o"`` → ``"gpt-4o"``, ``"ft:gpt-4o-mini:org::abc"`` → ``"gpt-4o-mini"``,
    ``"azure/gpt-35-turbo"`` → ``"gpt-35-turbo"``, ``"claude-3@20240229"`` → ``"claude-3"``,
    ``"us.openai.gpt-oss-120b-1:0"`` → ``"gpt-oss-120b-1:0"``.
    Date suffixes (``gpt-4o-2024-08-06``) are kept: families are matched by prefix.
    """
    m = model.strip().lower()
    if m.startswith("ft:"):
        m = m[3:].split(":", 1)[0]
    m = m.rsplit("/", 1)[-1]
    m = re.sub(r"^(?:[a-z]{2}\.)?openai\.", "", m)  # Bedrock: "openai.gpt-oss-20b-1:0"
    return m.split("@", 1)[0]


def _encoding_name_for(model: str) -> tuple[str, bool]:
    m = normalise_model(model)
    if _O200K_MODELS.match(m):
        return O200K_BASE, True
    if _CL100K_MODELS.match(m):
        return CL100K_BASE, True
    return O200K_BASE, False


@dataclass(frozen=True, slots=True)
class _Resolved:
    """How a model is counted."""

    tokenizer: Tokenizer  # the model's own, or o200k_base standing in for an estimate
    exact: bool
    template: chat_templates.ChatTemplate | None  # None: OpenAI's chat format
    factor: float  # safety factor of the estimate (1.0 when exact)
    bound: Measure  # hard upper bound for one text piece
    surcharge: bool = False  # estimates add estimate.digit_surcharge


def _utf8(text: str) -> int:
    return estimate.utf8_bytes(text)


def estimate_factor(model: str) -> float:
    """The safety factor applied to the o200k_base count when ``model`` cannot be counted exactly:
    ``CLAUDE_LEGACY_FACTOR`` (1.40) for Claude up to 4.6, ``CLAUDE_FACTOR`` (1.70) for Claude Opus
    4.7+ and unparseable Claude ids, ``UNKNOWN_FACTOR`` (1.50) for everything else (whose
    estimates also add ``estimate.digit_surcharge``). The calibration is documented in
    ``thrifty.tokens.estimate``."""
    m = families.normalise_id(model)
    return estimate.claude_factor(m) if estimate.is_claude(m) else estimate.UNKNOWN_FACTOR


def _resolve(model: str) -> _Resolved:
    name, exact = _encoding_name_for(model)
    if exact:
        return _Resolved(get_encoding(name), True, None, 1.0, _utf8)
    found = family_loaders.tokenizer_for(model)
    if found is not None:
        tok, template = found
        bound = estimate.nfc_bound if isinstance(tok, family_loaders.QwenEncoding) else _utf8
        return _Resolved(tok, True, template, 1.0, bound)
    surcharge = estimate.has_digit_surcharge(families.normalise_id(model))
    return _Resolved(
        get_encoding(O200K_BASE),
        False,
        None,
        estimate_factor(model),
        estimate.unknown_bound,
        surcharge,
    )


def tokenizer_for(model: str) -> tuple[Tokenizer, bool]:
    """The tokenizer that counts ``model`` and whether its counts are exact.

    Exact: OpenAI models (o200k_base / cl100k_base, see ``encoding_for``) and the open families in
    ``families`` when ``thrifty[tokenizers]`` is installed (Llama 3/4, Qwen, Mistral Tekken models,
    DeepSeek V3+). Otherwise o200k_base with ``exact=False``: counts with it are multiplied by
    ``estimate_factor(model)``.
    """
    r = _resolve(model)
    return r.tokenizer, r.exact


def encoding_for(model: str) -> tuple[tiktoken.Encoding, bool]:
    """The tiktoken encoding for ``model`` and whether counts with it are exact for that model.

    o200k_base: gpt-4o*, gpt-4.1*, gpt-4.5*, gpt-5*, o1*/o3*/o4*, chatgpt-4o*, gpt-oss*.
    cl100k_base: gpt-4, gpt-4-turbo, gpt-4-32k, gpt-3.5* (and Azure's gpt-35*), text-embedding-*.
    Llama 3/4, Qwen and Mistral Tekken models: their own tiktoken-format encodings (exact) when
    ``thrifty[tokenizers]`` is installed. DeepSeek's tokenizer is not tiktoken-format: use
    ``tokenizer_for``, which also covers it; here it gets o200k_base with ``exact=False``.
    Anything else (Claude, Gemini, ...): o200k_base with ``exact=False``, the base of an estimate.
    """
    r = _resolve(model)
    if isinstance(r.tokenizer, tiktoken.Encoding):
        return r.tokenizer, r.exact
    return get_encoding(O200K_BASE), False


# --------------------------------------------------------------------------------------------
# Counting


def utf8_upper_bound(text: str) -> int:
    """UTF-8 byte length of ``text``: never below any byte-level BPE count of unnormalised text.

    See ``upper_bound_tokens`` for a bound that accounts for the model's normalisation.
    """
    return estimate.utf8_bytes(text)


def upper_bound_tokens(text: str, model: str = "") -> int:
    """A hard upper bound on the tokens of ``text`` for ``model`` (the bound budgets should use).

    The UTF-8 byte length for byte-level BPEs that do not normalise (OpenAI, Llama, Mistral
    Tekken, DeepSeek); of the NFC form for Qwen; for models without a local tokenizer (Claude,
    unknown, or ``model`` omitted) the larger of the raw and NFKC byte lengths plus one, which
    also covers NFKC-normalising and SentencePiece tokenizers (see ``estimate``).
    """
    return _resolve(model).bound(text)


def estimate_tokens(text: str, model: str = "") -> int:
    """The calibrated estimate for ``text``: ``ceil(o200k_count * estimate_factor(model))``, plus
    ``estimate.digit_surcharge(text)`` unless the model is Claude, capped at the model's
    ``upper_bound_tokens``. Never below the o200k_base count.

    This is what ``count_text`` returns for models without a local tokenizer; it ignores any
    local tokenizer the model may have.
    """
    o200k = len(get_encoding(O200K_BASE).encode_ordinary(text))
    tokens = estimate.apply_factor(o200k, estimate_factor(model))
    if estimate.has_digit_surcharge(families.normalise_id(model)):
        tokens += estimate.digit_surcharge(text)
    return min(tokens, max(o200k, upper_bound_tokens(text, model)))


def count_text(text: str, model: str = "gpt-4o") -> int:
    """Tokens in ``text`` for ``model``. Special-token strings count as ordinary text.

    Exact when ``tokenizer_for(model)`` is exact, otherwise ``estimate_tokens(text, model)``.
    """
    r = _resolve(model)
    if not r.exact:
        return estimate_tokens(text, model)
    return len(r.tokenizer.encode_ordinary(text))


def _content_tokens(n: Measure, content: Any) -> int:
    pieces, images = _parts.content_pieces(content)
    return sum(n(p) for p in pieces) + images


def _message_tokens(n: Measure, message: Mapping[str, Any]) -> int:
    tokens = TOKENS_PER_MESSAGE
    role = message.get("role")
    if isinstance(role, str):
        tokens += n(role)
    name = message.get("name")
    if isinstance(name, str) and name:
        tokens += n(name) + TOKENS_PER_NAME
    tokens += _content_tokens(n, message.get("content"))
    refusal = message.get("refusal")
    if isinstance(refusal, str):
        tokens += n(refusal)
    for fn_name, arguments in _parts.tool_calls(message):
        tokens += n(fn_name) + n(arguments)
    return tokens


def _strip_period(text: str) -> str:
    return text[:-1] if text.endswith(".") else text


def _tools_tokens(n: Measure, tools: Iterable[Any], encoding_name: str) -> int:
    func_init, prop_init, prop_key, enum_init, enum_item, func_end = _TOOL_OVERHEAD.get(
        encoding_name, _TOOL_OVERHEAD[O200K_BASE]
    )
    fns = _parts.tool_definitions(list(tools))
    tokens = 0
    for fn in fns:
        tokens += func_init
        name = str(fn.get("name") or "")
        desc = _strip_period(str(fn.get("description") or ""))
        tokens += n(f"{name}:{desc}")
        params = fn.get("parameters")
        props = params.get("properties") if isinstance(params, Mapping) else None
        if not isinstance(props, Mapping) or not props:
            continue
        tokens += prop_init
        for key, schema in props.items():
            tokens += prop_key
            if not isinstance(schema, Mapping):
                tokens += n(str(key))
                continue
            p_type = schema.get("type", "")
            if isinstance(p_type, list):
                p_type = " | ".join(map(str, p_type))
            enum = schema.get("enum")
            if isinstance(enum, list):
                tokens += enum_init
                for item in enum:
                    tokens += enum_item + n(str(item))
            p_desc = _strip_period(str(schema.get("description") or ""))
            tokens += n(f"{key}:{p_type}:{p_desc}")
            rest = {k: v for k, v in schema.items() if k not in ("type", "description", "enum")}
            if rest:  # nested objects, arrays, formats...: approximated by their JSON
                tokens += n(orjson.dumps(rest).decode())
    return tokens + func_end if fns else tokens


def _openai_format(
    n: Measure, messages: list[Any], tools: list[Any] | None, encoding_name: str
) -> int:
    tokens = REPLY_PRIMER_TOKENS
    for message in messages:
        if isinstance(message, Mapping):
            tokens += _message_tokens(n, message)
    if tools:
        tokens += _tools_tokens(n, tools, encoding_name)
    return tokens


def _walk(r: _Resolved, messages: list[Any], tools: list[Any] | None, n: Measure) -> int:
    if r.template is not None:
        return chat_templates.measure_request(r.template, messages, tools, n)
    return _openai_format(n, messages, tools, r.tokenizer.name)


def _nothing(text: str) -> int:
    return 0


def _count(r: _Resolved, messages: list[Any], tools: list[Any] | None) -> tuple[int, int]:
    """``(tokens, upper_bound)`` of a request for a resolved model."""
    encode = r.tokenizer.encode_ordinary

    def n(text: str) -> int:
        return len(encode(text))

    counted = _walk(r, messages, tools, n)
    bound = max(counted, _walk(r, messages, tools, r.bound))
    if r.exact:
        return counted, bound
    tokens = estimate.apply_factor(counted, r.factor)
    if r.surcharge:  # the surcharges of the text pieces: a walk minus its fixed tokens
        tokens += _walk(r, messages, tools, estimate.digit_surcharge)
        tokens -= _walk(r, messages, tools, _nothing)
    return min(tokens, bound), bound


def count_messages(
    messages: list[dict[str, Any]],
    model: str = "gpt-4o",
    tools: list[dict[str, Any]] | None = None,
) -> int:
    """Prompt tokens of a Chat Completions request.

    OpenAI models, per the OpenAI Cookbook: each message costs 3 tokens plus its role and content,
    +1 (plus the name's tokens) with ``name``; the reply primer adds 3. Content may be a string,
    ``None`` or a list of parts: text and refusal parts are counted; each image part is an
    *estimate* (``IMAGE_TOKENS_LOW`` = 85 at ``detail: "low"``, ``IMAGE_TOKENS_HIGH`` = 765
    otherwise); audio and file parts are not counted. Assistant ``tool_calls`` (and legacy
    ``function_call``) add their function name and arguments; ``tool`` messages count like any
    other message (ids are not counted). ``tools`` are approximated with the Cookbook's fitted
    formula (matches the API for flat schemas): per function a fixed overhead plus
    ``"name:description"``, per property ``"key:type:description"`` and its enum values, plus 12
    at the end; nested schema keywords (``properties``, ``items``, ``format``, ...) add the
    tokens of their JSON.

    Open families (Llama, Qwen, Mistral Tekken, DeepSeek): the request is rendered with the
    family's chat template (``chat_templates.ChatTemplate``) and counted with its tokenizer;
    images as above, tools approximately.

    Other models: the OpenAI-format count with o200k_base, times ``estimate_factor(model)`` (plus
    the digit surcharge of the text for non-Claude models), capped at the request's upper bound
    (see ``count_request``).
    """
    tokens, _ = _count(_resolve(model), messages, tools)
    return tokens


def _request_parts(body: Mapping[str, Any]) -> tuple[str, list[Any], list[Any] | None]:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        model = ""
    messages = body.get("messages")
    tools = body.get("tools")
    if not tools and isinstance(body.get("functions"), list):
        tools = [{"type": "function", "function": f} for f in body["functions"]]
    return (
        model,
        messages if isinstance(messages, list) else [],
        tools if isinstance(tools, list) else None,
    )


def count_request(body: Mapping[str, Any]) -> TokenCount:
    """Prompt tokens of a Chat Completions request body (``messages`` + ``tools``).

    Legacy ``functions`` are counted like ``tools``. The model is ``body["model"]``. Exact models
    (OpenAI, and the open families when installed) give ``source="counted"``; Claude, unknown
    models and a missing model give ``source="estimated"``: the o200k_base count times
    ``estimate_factor(model)``. ``upper_bound`` is the request's hard bound
    (``request_upper_bound``).
    """
    model, messages, tools = _request_parts(body)
    r = _resolve(model)
    tokens, bound = _count(r, messages, tools)
    return TokenCount(
        tokens=tokens, source="counted" if r.exact else "estimated", upper_bound=bound
    )


def request_upper_bound(body: Mapping[str, Any]) -> int:
    """A hard upper bound on the prompt tokens of a Chat Completions request, without tokenizing.

    The request is rendered in the model's chat format (OpenAI's, or the family's template) and
    every text piece is bounded by ``upper_bound_tokens``; chat-format tokens count as in
    ``count_request``, images as their documented estimate, tools as in the count. Budgets that
    must never under-count should reserve this; it is never below ``count_request(body).tokens``.
    Costs one UTF-8 encoding pass instead of a tokenization.
    """
    model, messages, tools = _request_parts(body)
    r = _resolve(model)
    return _walk(r, messages, tools, r.bound)
