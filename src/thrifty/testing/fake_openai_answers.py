"""Deterministic answers for the fake OpenAI server (pure functions, no I/O).

Every choice is generated from a ``random.Random`` seeded with a blake2b digest of the model, the
messages (serialised with sorted keys), ``seed``, ``temperature`` (when > 0) and the choice index:
the same request always gets the same answer, a different prompt a different one. Whether the
request streams, or asks for logprobs, does not change the answer.

An answer is 8-60 tokens long unless the request asks for a length: header
``x-fake-answer-tokens: N`` or the marker ``[fake:tokens=N]`` anywhere in the messages.
"""

from __future__ import annotations

import hashlib
import math
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import tiktoken

MIN_ANSWER_TOKENS = 8
MAX_ANSWER_TOKENS = 60
ANSWER_TOKENS_LIMIT = 200_000

_MARKER = re.compile(rb"\[fake:tokens=(\d{1,7})\]")

# Common words; each is one token (with a leading space) in o200k_base and cl100k_base.
_WORD_TEXT = """
    the of and to in is that for it as was with be by on not he this are or his from at which but
    have an they you were her she there one all we their been has when who will more if no out so
    said what up its about into than them can only other new some could time these two may then do
    first any my now such like our over man me even most made after also did many before must
    through back years where much your way well down should because each just those people how too
    little state good very make world still own see men work long get here between both life being
    under never day same another know while last might us great old year off come since against go
    came right used take three small place system water number light part point group line form
    order story house answer model token cache price route budget request stream value result plan
    data field table query index server client market river garden window simple clear quick
    """
_WORDS: tuple[str, ...] = tuple(_WORD_TEXT.split())
_FIRST_WORDS: tuple[str, ...] = (
    "The",
    "This",
    "It",
    "We",
    "You",
    "There",
    "Some",
    "Each",
    "Our",
    "That",
)

_FORMATS: dict[str, str] = {
    "date-time": "2024-01-01T12:00:00Z",
    "date": "2024-01-01",
    "time": "12:00:00",
    "email": "user@example.com",
    "uri": "https://example.com/resource",
    "url": "https://example.com/resource",
    "uuid": "123e4567-e89b-12d3-a456-426614174000",
    "hostname": "example.com",
    "ipv4": "192.0.2.1",
}


@dataclass(frozen=True, slots=True)
class ChatKnobs:
    """The request fields that shape the answers (already validated)."""

    model: str
    messages_blob: bytes
    n: int = 1
    max_tokens: int | None = None
    stop: tuple[str, ...] = ()
    seed: int | None = None
    temperature: float | None = None
    call_functions: tuple[Mapping[str, Any], ...] = ()  # chosen by ``select_functions``
    response_format: Mapping[str, Any] | None = None
    logprobs: bool = False
    top_logprobs: int = 0
    answer_tokens: int | None = None


@dataclass(slots=True)
class ChoicePlan:
    """One generated choice. ``token_bytes`` are the content tokens (for streams and logprobs)."""

    index: int
    content: str | None
    token_bytes: list[bytes]
    tool_calls: list[dict[str, Any]] | None
    finish_reason: str
    completion_tokens: int
    logprobs: list[dict[str, Any]] | None


def messages_blob(messages: Any) -> bytes:
    """Canonical bytes of the messages (sorted keys), for hashing and marker lookup."""
    return orjson.dumps(messages, option=orjson.OPT_SORT_KEYS)


def answer_tokens_marker(blob: bytes) -> int | None:
    """The N of the last ``[fake:tokens=N]`` marker in the messages, if any."""
    found = _MARKER.findall(blob)
    return min(int(found[-1]), ANSWER_TOKENS_LIMIT) if found else None


def choice_rng(knobs: ChatKnobs, index: int, salt: bytes = b"") -> random.Random:
    h = hashlib.blake2b(digest_size=16)
    h.update(knobs.model.encode())
    h.update(b"\0")
    h.update(knobs.messages_blob)
    h.update(f"\0{knobs.seed}\0{index}".encode())
    if knobs.temperature is not None and knobs.temperature > 0:
        h.update(f"\0t={knobs.temperature!r}".encode())
    h.update(salt)
    return random.Random(h.digest())


# ---------------------------------------------------------------------------------------------
# Text and JSON


def prose(rng: random.Random, n_words: int) -> str:
    """Sentences of 5-12 common words."""
    parts: list[str] = []
    choice = rng.choice
    while n_words > 0:
        length = min(n_words, rng.randint(5, 12))
        words = [choice(_FIRST_WORDS)]
        words.extend(choice(_WORDS) for _ in range(length - 1))
        parts.append(" ".join(words) + ".")
        n_words -= length
    return " ".join(parts)


def prose_of_tokens(enc: tiktoken.Encoding, rng: random.Random, n_tokens: int) -> str:
    """Prose that is exactly ``n_tokens`` tokens long in ``enc``."""
    ids = enc.encode_ordinary(prose(rng, n_tokens))
    return enc.decode(ids[:n_tokens])


def schema_instance(schema: Any, rng: random.Random, *, root: Any = None, depth: int = 0) -> Any:
    """A JSON value valid for ``schema`` (types, enum, const, required, $ref, anyOf/oneOf/allOf,
    min/max bounds, string formats; ``pattern`` and ``multipleOf`` are not honoured)."""
    if root is None:
        root = schema
    if not isinstance(schema, Mapping) or depth > 16:
        return None
    ref = schema.get("$ref")
    if isinstance(ref, str):
        return schema_instance(_resolve_ref(root, ref), rng, root=root, depth=depth + 1)
    if "const" in schema:
        return schema["const"]
    enum = schema.get("enum")
    if isinstance(enum, list) and enum:
        return rng.choice(enum)
    for key in ("anyOf", "oneOf"):
        options = schema.get(key)
        if isinstance(options, list) and options:
            non_null = [
                o for o in options if not (isinstance(o, Mapping) and o.get("type") == "null")
            ]
            return schema_instance((non_null or options)[0], rng, root=root, depth=depth + 1)
    all_of = schema.get("allOf")
    if isinstance(all_of, list) and all_of:
        return schema_instance(_merge_all_of(schema, all_of, root), rng, root=root, depth=depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind is None:
        kind = "object" if "properties" in schema else "array" if "items" in schema else "string"
    if kind == "object":
        return _object_instance(schema, rng, root, depth)
    if kind == "array":
        return _array_instance(schema, rng, root, depth)
    if kind == "integer":
        lo, hi = _bounds(schema, integer=True)
        return rng.randint(int(lo), int(hi))
    if kind == "number":
        lo, hi = _bounds(schema, integer=False)
        return round(rng.uniform(lo, hi), 2) if hi - lo >= 0.01 else lo
    if kind == "boolean":
        return rng.random() < 0.5
    if kind == "null":
        return None
    return _string_instance(schema, rng)


def _resolve_ref(root: Any, ref: str) -> Any:
    if not ref.startswith("#"):
        return {}
    node = root
    for part in ref[1:].split("/"):
        if not part:
            continue
        part = part.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, Mapping) or part not in node:
            return {}
        node = node[part]
    return node


def _merge_all_of(schema: Mapping[str, Any], parts: list[Any], root: Any) -> dict[str, Any]:
    merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
    props: dict[str, Any] = dict(merged.get("properties") or {})
    required: list[str] = list(merged.get("required") or [])
    for part in parts:
        if isinstance(part, Mapping) and isinstance(part.get("$ref"), str):
            part = _resolve_ref(root, part["$ref"])
        if not isinstance(part, Mapping):
            continue
        for k, v in part.items():
            if k == "properties" and isinstance(v, Mapping):
                props.update(v)
            elif k == "required" and isinstance(v, list):
                required.extend(v)
            else:
                merged.setdefault(k, v)
    if props:
        merged["properties"] = props
        merged.setdefault("type", "object")
    if required:
        merged["required"] = required
    return merged


def _object_instance(
    schema: Mapping[str, Any], rng: random.Random, root: Any, depth: int
) -> dict[str, Any]:
    props = schema.get("properties")
    result: dict[str, Any] = {}
    if isinstance(props, Mapping):
        for key, sub in props.items():
            result[str(key)] = schema_instance(sub, rng, root=root, depth=depth + 1)
    required = schema.get("required")
    if isinstance(required, list):
        for key in required:
            if isinstance(key, str) and key not in result:
                result[key] = _string_instance({}, rng)
    extra = schema.get("additionalProperties")
    if not result and isinstance(extra, Mapping):
        result["key"] = schema_instance(extra, rng, root=root, depth=depth + 1)
    return result


def _array_instance(
    schema: Mapping[str, Any], rng: random.Random, root: Any, depth: int
) -> list[Any]:
    prefix = schema.get("prefixItems")
    items: list[Any] = []
    if isinstance(prefix, list):
        items = [schema_instance(s, rng, root=root, depth=depth + 1) for s in prefix]
    lo = int(schema.get("minItems", 1 if not items else len(items)))
    hi = int(schema.get("maxItems", max(lo, 3)))
    count = max(len(items), rng.randint(lo, max(lo, hi)))
    item_schema = schema.get("items")
    if not isinstance(item_schema, Mapping):
        item_schema = {}
    unique = bool(schema.get("uniqueItems"))
    attempts = 0
    while len(items) < count and attempts < count * 10:
        attempts += 1
        value = schema_instance(item_schema, rng, root=root, depth=depth + 1)
        if unique and value in items:
            continue
        items.append(value)
    return items


def _bounds(schema: Mapping[str, Any], *, integer: bool) -> tuple[float, float]:
    step = 1 if integer else 0.01
    lo = schema.get("minimum")
    if not isinstance(lo, int | float) and isinstance(schema.get("exclusiveMinimum"), int | float):
        lo = schema["exclusiveMinimum"] + step
    hi = schema.get("maximum")
    if not isinstance(hi, int | float) and isinstance(schema.get("exclusiveMaximum"), int | float):
        hi = schema["exclusiveMaximum"] - step
    if not isinstance(lo, int | float):
        lo = 0 if not isinstance(hi, int | float) or hi >= 0 else hi - 100
    if not isinstance(hi, int | float):
        hi = lo + 100
    if integer:
        lo, hi = math.ceil(lo), math.floor(hi)
    return float(lo), float(max(lo, hi))


def _string_instance(schema: Mapping[str, Any], rng: random.Random) -> str:
    fmt = schema.get("format")
    if isinstance(fmt, str) and fmt in _FORMATS:
        return _FORMATS[fmt]
    value = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(1, 3)))
    min_len = schema.get("minLength")
    if isinstance(min_len, int) and len(value) < min_len:
        value = (value + " " + "x" * min_len)[:min_len]
    max_len = schema.get("maxLength")
    if isinstance(max_len, int) and len(value) > max_len:
        value = value[:max_len]
    return value


def json_object_text(rng: random.Random, n_words: int) -> str:
    """A JSON object string for ``response_format: json_object``."""
    return orjson.dumps(
        {"answer": prose(rng, max(1, n_words)), "confidence": round(rng.random(), 2)}
    ).decode()


def tool_arguments(function: Mapping[str, Any], rng: random.Random) -> str:
    """JSON arguments for a function tool, valid for its ``parameters`` schema."""
    params = function.get("parameters")
    if not isinstance(params, Mapping):
        return "{}"
    value = schema_instance(params, rng)
    return orjson.dumps(value if value is not None else {}).decode()


# ---------------------------------------------------------------------------------------------
# Choices


def select_functions(
    tools: Any, tool_choice: Any, parallel_tool_calls: Any, messages: Sequence[Any]
) -> tuple[Mapping[str, Any], ...]:
    """The functions the fake model calls.

    None when there are no function tools, ``tool_choice`` is ``"none"``, or the last message is
    a ``tool`` result (the model then answers in prose). A named ``tool_choice`` calls that
    function; ``allowed_tools`` restricts the candidates; otherwise the first function is called,
    and the first two when ``parallel_tool_calls`` is explicitly ``true``.
    """
    if not isinstance(tools, list) or not tools or tool_choice == "none":
        return ()
    if messages and isinstance(messages[-1], Mapping) and messages[-1].get("role") == "tool":
        return ()
    functions = [
        t["function"]
        for t in tools
        if isinstance(t, Mapping)
        and t.get("type", "function") == "function"
        and isinstance(t.get("function"), Mapping)
        and isinstance(t["function"].get("name"), str)
    ]
    if isinstance(tool_choice, Mapping):
        if tool_choice.get("type") == "function":
            wanted = (tool_choice.get("function") or {}).get("name")
            return tuple(f for f in functions if f["name"] == wanted)[:1]
        if tool_choice.get("type") == "allowed_tools":
            allowed = tool_choice.get("allowed_tools") or {}
            names = {
                (t.get("function") or {}).get("name") or t.get("name")
                for t in allowed.get("tools") or []
                if isinstance(t, Mapping)
            }
            functions = [f for f in functions if f["name"] in names]
    if parallel_tool_calls is True and len(functions) >= 2:
        return tuple(functions[:2])
    return tuple(functions[:1])


def plan_choice(knobs: ChatKnobs, enc: tiktoken.Encoding, index: int) -> ChoicePlan:
    """Generate choice ``index``: tool calls when ``knobs.call_functions`` is non-empty, else
    content (prose, a JSON object, or a JSON-schema instance), cut at ``stop`` and truncated to
    ``max_tokens`` (``finish_reason`` ``"length"``). Tool-call arguments are never truncated."""
    rng = choice_rng(knobs, index)
    if knobs.call_functions:
        calls: list[dict[str, Any]] = []
        completion = 0
        for fn in knobs.call_functions:
            arguments = tool_arguments(fn, rng)
            completion += len(enc.encode_ordinary(arguments))
            calls.append(
                {
                    "id": f"call_{rng.getrandbits(96):024x}",
                    "type": "function",
                    "function": {"name": fn["name"], "arguments": arguments},
                }
            )
        return ChoicePlan(index, None, [], calls, "tool_calls", completion, None)

    target = knobs.answer_tokens or rng.randint(MIN_ANSWER_TOKENS, MAX_ANSWER_TOKENS)
    rf_type = knobs.response_format.get("type") if knobs.response_format else None
    if rf_type == "json_schema":
        spec = knobs.response_format.get("json_schema") if knobs.response_format else None
        schema = spec.get("schema") if isinstance(spec, Mapping) else None
        text = orjson.dumps(schema_instance(schema or {"type": "object"}, rng)).decode()
    elif rf_type == "json_object":
        text = json_object_text(rng, target - 8)
    else:
        text = prose_of_tokens(enc, rng, target)

    finish = "stop"
    if knobs.stop:
        cut = min((i for s in knobs.stop if s and (i := text.find(s)) >= 0), default=-1)
        if cut >= 0:
            text = text[:cut]
    ids = enc.encode_ordinary(text)
    if knobs.max_tokens is not None and len(ids) > knobs.max_tokens:
        ids = ids[: knobs.max_tokens]
        text = enc.decode(ids)
        finish = "length"
        completion = len(enc.encode_ordinary(text))
    else:
        completion = len(ids)
    token_bytes = enc.decode_tokens_bytes(ids)
    logprobs = None
    if knobs.logprobs:
        logprobs = logprob_entries(
            token_bytes, choice_rng(knobs, index, b"logprobs"), knobs.top_logprobs
        )
    return ChoicePlan(index, text, token_bytes, None, finish, completion, logprobs)


def logprob_entries(
    token_bytes: Sequence[bytes], rng: random.Random, top: int
) -> list[dict[str, Any]]:
    """``logprobs.content`` entries: the token, its logprob and ``top`` alternatives (the token
    itself first, then other words with strictly lower logprobs)."""
    out: list[dict[str, Any]] = []
    for raw in token_bytes:
        token = raw.decode("utf-8", "backslashreplace")
        logprob = -round(rng.random() ** 3 * 2.5, 6)
        alternatives: list[dict[str, Any]] = []
        if top > 0:
            alternatives.append({"token": token, "logprob": logprob, "bytes": list(raw)})
            current = logprob
            for word in rng.sample(_WORDS, min(top, len(_WORDS))):
                if len(alternatives) >= top:
                    break
                alt = " " + word
                if alt == token:
                    continue
                current = round(current - 0.25 - rng.random() * 2.0, 6)
                alternatives.append({"token": alt, "logprob": current, "bytes": list(alt.encode())})
        out.append(
            {"token": token, "logprob": logprob, "bytes": list(raw), "top_logprobs": alternatives}
        )
    return out


def stream_pieces(token_bytes: Sequence[bytes]) -> list[tuple[str, int, int]]:
    """Split tokens into stream deltas of one or two tokens: ``(text, start, end)`` token ranges.

    A delta never ends inside a UTF-8 character (it grows until its bytes decode).
    """
    pieces: list[tuple[str, int, int]] = []
    buf = b""
    start = 0
    want = 1
    for i, raw in enumerate(token_bytes):
        buf += raw
        if i + 1 - start < want:
            continue
        try:
            text = buf.decode("utf-8")
        except UnicodeDecodeError:
            continue
        pieces.append((text, start, i + 1))
        buf = b""
        start = i + 1
        want = 3 - want  # alternate 1, 2, 1, 2 tokens per delta
    if start < len(token_bytes):
        pieces.append((buf.decode("utf-8", "replace"), start, len(token_bytes)))
    return pieces
