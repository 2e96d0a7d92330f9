"""Deterministic answers and response bodies of the fake Gemini server (pure, no I/O).

The answer is seeded from the model, the system instruction and contents, ``seed`` and
``temperature`` (see ``fake_openai_answers.choice_rng``): the same request always gets the same
answer. Length: 8-60 tokens, or ``[fake:tokens=N]`` in a message / header
``x-fake-answer-tokens``. Tokens are counted with o200k_base (an estimate, as Gemini's own
tokenizer is not public); each inline or file part counts ``MEDIA_TOKENS``.

- Function declarations (mode not ``NONE``, and the last turn not a function response): the
  model calls the first allowed function, or the first two in mode ``ANY``; arguments are a
  valid instance of ``parametersJsonSchema`` (or of the OpenAPI ``parameters``).
- Thinking models (Gemini 2.5 Pro/Flash, Gemini 3+) spend ``thoughtsTokenCount`` thinking tokens
  (default ``DEFAULT_THOUGHTS``; ``thinkingBudget`` caps it and 0 turns thinking off;
  ``thinkingLevel`` low/high: 16/64; header ``x-fake-thoughts-tokens`` sets it). As on the real
  API, thinking counts against ``maxOutputTokens``: a limit below the thoughts leaves an empty
  candidate (no ``parts``) with ``MAX_TOKENS``. Their first function call carries a
  ``thoughtSignature``; ``includeThoughts`` adds a ``thought: true`` summary part.
- ``x-fake-cached-tokens: N`` reports N (at most the prompt) as ``cachedContentTokenCount``.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
from dataclasses import dataclass, field
from typing import Any

import orjson
import tiktoken

from thrifty.testing.fake_gemini_wire import GenRequest, is_thinking_model, lower_types
from thrifty.testing.fake_openai_answers import (
    MAX_ANSWER_TOKENS,
    MIN_ANSWER_TOKENS,
    ChatKnobs,
    answer_tokens_marker,
    choice_rng,
    json_object_text,
    messages_blob,
    prose_of_tokens,
    schema_instance,
    stream_pieces,
)

DEFAULT_THOUGHTS = 32
LEVEL_THOUGHTS = {"minimal": 8, "low": 16, "medium": 32, "high": 64}
MEDIA_TOKENS = 258
PIECES_PER_CHUNK = 3


@dataclass(slots=True)
class Candidate:
    """One generated candidate: its parts, stream pieces, finish reason and output tokens."""

    index: int
    parts: list[dict[str, Any]]
    finish: str
    tokens: int
    steps: list[list[dict[str, Any]]] = field(default_factory=list)


@dataclass(slots=True)
class Answer:
    candidates: list[Candidate]
    usage: dict[str, Any]


def count_prompt(req: GenRequest, enc: tiktoken.Encoding) -> tuple[int, int]:
    """(text tokens, media tokens) of the system instruction, contents and declarations."""
    text = media = 0
    parts = list(req.system) + [p for c in req.contents for p in c["parts"]]
    for part in parts:
        if "text" in part:
            text += len(enc.encode_ordinary(str(part["text"])))
        elif "inlineData" in part or "fileData" in part:
            media += MEDIA_TOKENS
        for key in ("functionCall", "functionResponse"):
            if key in part:
                text += len(enc.encode_ordinary(orjson.dumps(part[key]).decode()))
    if req.functions:
        text += len(enc.encode_ordinary(orjson.dumps(req.functions).decode()))
    return text, media


def thoughts_for(req: GenRequest, override: int | None) -> int:
    """Thinking tokens per candidate (see the module docstring)."""
    if override is not None:
        return override
    if not is_thinking_model(req.model):
        return 0
    thinking = req.config.get("thinkingConfig") or {}
    budget = thinking.get("thinkingBudget")
    if budget == 0:
        return 0
    level = thinking.get("thinkingLevel")
    base = LEVEL_THOUGHTS.get(str(level).lower(), DEFAULT_THOUGHTS) if level else DEFAULT_THOUGHTS
    return min(budget, base) if isinstance(budget, int) and budget > 0 else base


def called_functions(req: GenRequest) -> list[dict[str, Any]]:
    """The declarations the fake model calls (see the module docstring)."""
    if not req.functions or req.mode == "NONE":
        return []
    last = req.contents[-1]
    if last.get("role", "user") != "model" and all("functionResponse" in p for p in last["parts"]):
        return []
    allowed = [f for f in req.functions if not req.allowed or f["name"] in req.allowed]
    return allowed[:2] if req.mode == "ANY" else allowed[:1]


def _signature(seed: bytes) -> str:
    return base64.b64encode(hashlib.blake2b(seed, digest_size=48).digest()).decode()


def _text(req: GenRequest, knobs: ChatKnobs, enc: tiktoken.Encoding, index: int) -> str:
    rng = choice_rng(knobs, index)
    target = knobs.answer_tokens or rng.randint(MIN_ANSWER_TOKENS, MAX_ANSWER_TOKENS)
    config = req.config
    if config.get("responseMimeType") == "application/json":
        schema = config.get("responseJsonSchema") or lower_types(config.get("responseSchema"))
        if schema:
            return orjson.dumps(schema_instance(schema, rng)).decode()
        return json_object_text(rng, max(1, target - 8))
    return prose_of_tokens(enc, rng, target)


def _candidate(
    req: GenRequest, knobs: ChatKnobs, enc: tiktoken.Encoding, index: int, thoughts: int
) -> Candidate:
    head: list[dict[str, Any]] = []
    if thoughts and (req.config.get("thinkingConfig") or {}).get("includeThoughts"):
        summary = prose_of_tokens(enc, choice_rng(knobs, index, b"thought"), min(thoughts, 12))
        head.append({"text": f"**Thinking**\n\n{summary}", "thought": True})
    functions = called_functions(req)
    if functions:
        rng = choice_rng(knobs, index, b"args")
        calls: list[dict[str, Any]] = []
        tokens = 0
        for k, fn in enumerate(functions):
            schema = fn.get("parametersJsonSchema") or lower_types(fn.get("parameters"))
            args = schema_instance(schema, rng) if schema else {}
            part: dict[str, Any] = {
                "functionCall": {"name": fn["name"], "args": args if isinstance(args, dict) else {}}
            }
            if k == 0 and thoughts:
                part["thoughtSignature"] = _signature(knobs.messages_blob + bytes([index]))
            tokens += len(enc.encode_ordinary(orjson.dumps(part["functionCall"]).decode()))
            calls.append(part)
        return Candidate(index, head + calls, "STOP", tokens, [head + calls])
    text = _text(req, knobs, enc, index)
    finish = "STOP"
    stops = [s for s in req.config.get("stopSequences") or () if isinstance(s, str) and s]
    cut = min((i for s in stops if (i := text.find(s)) >= 0), default=-1)
    if cut >= 0:
        text = text[:cut]
    ids = enc.encode_ordinary(text)
    limit = req.config.get("maxOutputTokens")
    if isinstance(limit, int) and len(ids) > limit - thoughts:
        ids = ids[: max(0, limit - thoughts)]
        finish = "MAX_TOKENS"
    pieces = [p for p, _, _ in stream_pieces(enc.decode_tokens_bytes(ids))]
    size = PIECES_PER_CHUNK
    grouped = ["".join(pieces[i : i + size]) for i in range(0, len(pieces), size)]
    steps: list[list[dict[str, Any]]] = [[{"text": g}] for g in grouped if g]
    if head:
        steps.insert(0, head)
    parts = head + ([{"text": enc.decode(ids)}] if ids else [])
    return Candidate(index, parts, finish, len(ids), steps or [[]])


def plan_answer(
    req: GenRequest,
    enc: tiktoken.Encoding,
    *,
    answer_tokens: int | None = None,
    cached_tokens: int = 0,
    thoughts_override: int | None = None,
) -> Answer:
    """The candidates and ``usageMetadata`` for a validated request."""
    blob = messages_blob([req.system, req.contents])
    config = req.config
    knobs = ChatKnobs(
        model=req.model,
        messages_blob=blob,
        seed=config.get("seed"),
        temperature=config.get("temperature"),
        answer_tokens=answer_tokens or answer_tokens_marker(blob),
    )
    thoughts = thoughts_for(req, thoughts_override)
    count = int(config.get("candidateCount") or 1)
    candidates = [_candidate(req, knobs, enc, i, thoughts) for i in range(count)]
    text, media = count_prompt(req, enc)
    prompt = text + media
    output = sum(c.tokens for c in candidates)
    thinking = thoughts * count
    usage: dict[str, Any] = {"promptTokenCount": prompt}
    if output:
        usage["candidatesTokenCount"] = output
    usage["totalTokenCount"] = prompt + output + thinking
    details = [{"modality": "TEXT", "tokenCount": text}]
    if media:
        details.append({"modality": "IMAGE", "tokenCount": media})
    usage["promptTokensDetails"] = details
    cached = min(cached_tokens, prompt)
    if cached:
        usage["cachedContentTokenCount"] = cached
        usage["cacheTokensDetails"] = [{"modality": "TEXT", "tokenCount": cached}]
    if thinking:
        usage["thoughtsTokenCount"] = thinking
    return Answer(candidates, usage)


def _candidate_body(index: int, parts: list[dict[str, Any]], finish: str | None) -> dict[str, Any]:
    content: dict[str, Any] = {"role": "model"}
    if parts:
        content["parts"] = parts
    body: dict[str, Any] = {"content": content}
    if finish is not None:
        body["finishReason"] = finish
    body["index"] = index
    return body


def response_body(answer: Answer, model: str, response_id: str) -> dict[str, Any]:
    """A complete ``GenerateContentResponse``."""
    return {
        "candidates": [_candidate_body(c.index, c.parts, c.finish) for c in answer.candidates],
        "usageMetadata": answer.usage,
        "modelVersion": model,
        "responseId": response_id,
    }


def stream_bodies(answer: Answer, model: str, response_id: str) -> list[dict[str, Any]]:
    """The ``streamGenerateContent`` chunks: candidates advance together; each carries its
    ``finishReason`` on its last step, and the last chunk has the full ``usageMetadata``."""
    prompt = answer.usage["promptTokenCount"]
    partial = {"promptTokenCount": prompt, "totalTokenCount": prompt}
    bodies: list[dict[str, Any]] = []
    steps = [c.steps for c in answer.candidates]
    for k, column in enumerate(itertools.zip_longest(*steps)):
        cands = []
        for cand, step in zip(answer.candidates, column, strict=True):
            if step is not None:
                last = k == len(cand.steps) - 1
                cands.append(_candidate_body(cand.index, step, cand.finish if last else None))
        bodies.append(
            {
                "candidates": cands,
                "usageMetadata": partial,
                "modelVersion": model,
                "responseId": response_id,
            }
        )
    bodies[-1]["usageMetadata"] = answer.usage
    return bodies
