"""Validation, deterministic answers and bodies of the fake Cohere server (pure, no I/O).

Answers are seeded like the fake OpenAI server's (model, messages, ``seed``, ``temperature``);
8-60 tokens unless ``[fake:tokens=N]`` / ``x-fake-answer-tokens`` asks for N. With ``tools``
(``tool_choice`` not ``NONE``, and the last message not a tool result) the model plans and calls
the first tool, or the first two with ``REQUIRED``; arguments are valid for the tool's schema.
Usage: ``billed_units`` count the message text and tool definitions (o200k_base, an estimate),
``tokens.input_tokens`` adds ``TEMPLATE_TOKENS`` of prompt template; ``cached_tokens`` is 0, or
``x-fake-cached-tokens``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson
import tiktoken

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

TEMPLATE_TOKENS = 200
ROLES = frozenset({"system", "user", "assistant", "tool"})
INPUT_TYPES = frozenset({"search_document", "search_query", "classification", "clustering"})
EMBEDDING_TYPES = frozenset({"float", "int8", "uint8", "base64"})
MAX_EMBED_TEXTS = 96
FAULT_MESSAGES = {
    400: "invalid request: fake fault",
    401: "invalid api token",
    404: "model not found",
    429: "You are past the per minute request limit, please wait and try again later.",
    500: "internal server error, this has been reported to our developers",
    503: "service unavailable, please try again later",
}


class CohereError(Exception):
    """A request failure, answered with Cohere's ``{"id", "message"}`` body."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message, self.status = message, status


def _bad(message: str) -> CohereError:
    return CohereError(f"invalid request: {message}")


def check_model(model: Any, embed: bool = False) -> str:
    if not isinstance(model, str) or not model:
        raise _bad("model must be specified")
    if model.startswith("unknown") or embed != model.startswith("embed"):
        raise CohereError(
            f"model '{model}' not found, make sure the correct model ID was used and that you "
            "have access to the model.",
            404,
        )
    return model


def _check_messages(messages: Any, model: str) -> None:
    if not isinstance(messages, list) or not messages:
        raise _bad("messages must not be empty")
    call_ids: set[str] = set()
    for i, msg in enumerate(messages):
        role = msg.get("role") if isinstance(msg, dict) else None
        if role not in ROLES:
            raise _bad(f"messages[{i}].role: unknown role {role!r}")
        assert isinstance(msg, dict)
        content = msg.get("content")
        if isinstance(content, list):
            for part in content:
                kind = part.get("type") if isinstance(part, dict) else None
                if kind == "image_url" and "vision" not in model:
                    raise _bad(f"model '{model}' does not support image inputs")
                if kind not in ("text", "image_url", "document", "thinking"):
                    raise _bad(f"messages[{i}].content: unknown content type {kind!r}")
        for call in msg.get("tool_calls") or ():
            fn = call.get("function") or {}
            if not isinstance(fn.get("arguments", ""), str):
                raise _bad(f"messages[{i}].tool_calls: function.arguments must be a string")
            call_ids.add(str(call.get("id")))
        if role == "tool" and msg.get("tool_call_id") not in call_ids:
            raise _bad(
                f"messages[{i}]: tool_call_id {msg.get('tool_call_id')!r} does not match any "
                "tool call of a previous assistant message"
            )


def validate_chat(body: Any) -> dict[str, Any]:
    """Check a ``/v2/chat`` body like Cohere does; returns it; raises ``CohereError``."""
    if not isinstance(body, dict):
        raise _bad("the body must be a JSON object")
    model = check_model(body.get("model"))
    _check_messages(body.get("messages"), model)
    temperature = body.get("temperature")
    if temperature is not None and not (isinstance(temperature, int | float) and temperature >= 0):
        raise _bad("temperature must be a non-negative number")
    p = body.get("p")
    if p is not None and not (isinstance(p, int | float) and 0.01 <= p <= 0.99):
        raise _bad("p must be between 0.01 and 0.99")
    max_tokens = body.get("max_tokens")
    if max_tokens is not None and not (isinstance(max_tokens, int) and max_tokens >= 1):
        raise _bad("max_tokens must be a positive integer")
    stops = body.get("stop_sequences")
    if stops is not None and (not isinstance(stops, list) or len(stops) > 5):
        raise _bad("stop_sequences can contain at most 5 sequences")
    choice = body.get("tool_choice")
    if choice is not None:
        if choice not in ("REQUIRED", "NONE"):
            raise _bad("tool_choice must be one of REQUIRED, NONE")
        if not body.get("tools"):
            raise _bad("tool_choice requires tools to be specified")
    fmt = body.get("response_format")
    if fmt is not None and (
        not isinstance(fmt, dict) or fmt.get("type") not in ("text", "json_object")
    ):
        raise _bad("response_format.type must be one of text, json_object")
    for i, tool in enumerate(body.get("tools") or ()):
        fn = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            raise _bad(f"tools[{i}]: a function tool needs function.name")
    return body


@dataclass(slots=True)
class Plan:
    """One generated answer."""

    text: str | None
    tool_plan: str | None
    tool_calls: list[dict[str, Any]]
    finish: str
    output_tokens: int
    pieces: list[str]


def _calls(body: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    tools = [t["function"] for t in body.get("tools") or ()]
    messages = body["messages"]
    if not tools or body.get("tool_choice") == "NONE" or messages[-1].get("role") == "tool":
        return []
    return tools[:2] if body.get("tool_choice") == "REQUIRED" else tools[:1]


def plan_answer(body: Mapping[str, Any], enc: tiktoken.Encoding, answer_tokens: int | None) -> Plan:
    """The deterministic answer for a validated chat body."""
    blob = messages_blob(body["messages"])
    knobs = ChatKnobs(
        model=body["model"],
        messages_blob=blob,
        seed=body.get("seed"),
        temperature=body.get("temperature"),
        answer_tokens=answer_tokens or answer_tokens_marker(blob),
    )
    rng = choice_rng(knobs, 0)
    functions = _calls(body)
    if functions:
        calls: list[dict[str, Any]] = []
        for fn in functions:
            schema = fn.get("parameters")
            args = schema_instance(schema, rng) if isinstance(schema, Mapping) else {}
            suffix = hashlib.blake2b(blob + fn["name"].encode(), digest_size=4).hexdigest()
            calls.append(
                {
                    "id": f"{fn['name']}_{suffix}{len(calls)}",
                    "type": "function",
                    "function": {"name": fn["name"], "arguments": orjson.dumps(args).decode()},
                }
            )
        names = " and ".join(c["function"]["name"] for c in calls)
        plan = f"I will use the {names} tool to answer the question."
        tokens = sum(len(enc.encode_ordinary(c["function"]["arguments"])) for c in calls)
        tokens += len(enc.encode_ordinary(plan))
        return Plan(None, plan, calls, "TOOL_CALL", tokens, [])
    target = knobs.answer_tokens or rng.randint(MIN_ANSWER_TOKENS, MAX_ANSWER_TOKENS)
    fmt = body.get("response_format") or {}
    if fmt.get("type") == "json_object":
        schema = fmt.get("json_schema")
        text = (
            orjson.dumps(schema_instance(schema, rng)).decode()
            if isinstance(schema, Mapping)
            else json_object_text(rng, max(1, target - 8))
        )
    else:
        text = prose_of_tokens(enc, rng, target)
    finish = "COMPLETE"
    stops = [s for s in body.get("stop_sequences") or () if isinstance(s, str) and s]
    cut = min((i for s in stops if (i := text.find(s)) >= 0), default=-1)
    if cut >= 0:
        text, finish = text[:cut], "STOP_SEQUENCE"
    ids = enc.encode_ordinary(text)
    limit = body.get("max_tokens")
    if isinstance(limit, int) and len(ids) > limit:
        ids, finish = ids[:limit], "MAX_TOKENS"
        text = enc.decode(ids)
    pieces = [p for p, _, _ in stream_pieces(enc.decode_tokens_bytes(ids))]
    return Plan(text, None, [], finish, len(ids), pieces)


def prompt_tokens(body: Mapping[str, Any], enc: tiktoken.Encoding) -> int:
    """Billed input tokens: message text, tool calls and results, tool definitions."""
    n = 0
    for msg in body["messages"]:
        content = msg.get("content")
        if isinstance(content, str):
            n += len(enc.encode_ordinary(content))
        elif isinstance(content, list):
            for part in content:
                text = part.get("text") or part.get("thinking")
                n += len(enc.encode_ordinary(text)) if isinstance(text, str) else 0
                n += 256 if part.get("type") == "image_url" else 0
        for key in ("tool_plan",):
            if isinstance(msg.get(key), str):
                n += len(enc.encode_ordinary(msg[key]))
        for call in msg.get("tool_calls") or ():
            n += len(enc.encode_ordinary(orjson.dumps(call).decode()))
    if body.get("tools"):
        n += len(enc.encode_ordinary(orjson.dumps(body["tools"]).decode()))
    return n


def usage_object(prompt: int, output: int, cached: int) -> dict[str, Any]:
    return {
        "billed_units": {"input_tokens": prompt, "output_tokens": output},
        "tokens": {"input_tokens": prompt + TEMPLATE_TOKENS, "output_tokens": output},
        "cached_tokens": min(cached, prompt),
    }


def response_body(
    plan: Plan, response_id: str, usage: dict[str, Any], finish: str | None = None
) -> dict[str, Any]:
    """A ``/v2/chat`` JSON response; ``finish`` overrides the finish reason (``ERROR``...)."""
    message: dict[str, Any] = {"role": "assistant"}
    if plan.tool_calls:
        message["tool_plan"] = plan.tool_plan
        message["tool_calls"] = plan.tool_calls
    else:
        message["content"] = [{"type": "text", "text": plan.text or ""}]
    return {
        "id": response_id,
        "finish_reason": finish or plan.finish,
        "message": message,
        "usage": usage,
    }


def _frame(event: dict[str, Any]) -> bytes:
    return b"event: " + event["type"].encode() + b"\ndata: " + orjson.dumps(event) + b"\n\n"


def stream_events(
    plan: Plan, response_id: str, usage: dict[str, Any], finish: str | None = None
) -> list[bytes]:
    """The SSE frames of a streamed answer, ``message-start`` to ``message-end``."""
    start = {"role": "assistant", "content": [], "tool_plan": "", "tool_calls": [], "citations": []}
    events: list[dict[str, Any]] = [
        {"id": response_id, "type": "message-start", "delta": {"message": start}}
    ]
    if plan.tool_calls:
        words = (plan.tool_plan or "").split(" ")
        for piece in [words[0], *(" " + w for w in words[1:])]:
            events.append({"type": "tool-plan-delta", "delta": {"message": {"tool_plan": piece}}})
        for k, call in enumerate(plan.tool_calls):
            head: dict[str, Any] = {**call, "function": {**call["function"], "arguments": ""}}
            events.append(
                {"type": "tool-call-start", "index": k, "delta": {"message": {"tool_calls": head}}}
            )
            args = call["function"]["arguments"]
            for i in range(0, len(args), 8):
                chunk: dict[str, Any] = {"function": {"arguments": args[i : i + 8]}}
                events.append(
                    {
                        "type": "tool-call-delta",
                        "index": k,
                        "delta": {"message": {"tool_calls": chunk}},
                    }
                )
            events.append({"type": "tool-call-end", "index": k})
    else:
        text_start = {"message": {"content": {"type": "text", "text": ""}}}
        events.append({"type": "content-start", "index": 0, "delta": text_start})
        for piece in plan.pieces:
            events.append(
                {
                    "type": "content-delta",
                    "index": 0,
                    "delta": {"message": {"content": {"text": piece}}},
                }
            )
        events.append({"type": "content-end", "index": 0})
    end: dict[str, Any] = {"finish_reason": finish or plan.finish, "usage": usage}
    if finish == "ERROR":
        end["error"] = "internal server error"
    events.append({"type": "message-end", "delta": end})
    return [_frame(e) for e in events]


def embed_args(body: Any) -> tuple[str, list[str], str | None, list[str], int | None]:
    """(model, texts, input_type, embedding_types, output_dimension) of a valid ``/v2/embed``."""
    if not isinstance(body, dict):
        raise _bad("the body must be a JSON object")
    model = check_model(body.get("model"), embed=True)
    texts = body.get("texts")
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        raise _bad("texts must be a non-empty list of strings")
    if len(texts) > MAX_EMBED_TEXTS:
        raise _bad(f"too many texts - max is {MAX_EMBED_TEXTS}, got {len(texts)}")
    input_type = body.get("input_type")
    if input_type is None and ("v3" in model or "v4" in model):
        raise _bad("valid input_type must be provided with the provided model")
    if input_type is not None and input_type not in INPUT_TYPES:
        raise _bad(f"input_type must be one of {sorted(INPUT_TYPES)}")
    types = body.get("embedding_types") or ["float"]
    if not isinstance(types, list) or not set(types) <= EMBEDDING_TYPES:
        raise _bad(f"embedding_types must be a subset of {sorted(EMBEDDING_TYPES)}")
    dim = body.get("output_dimension")
    if dim is not None and (model != "embed-v4.0" or dim not in (256, 512, 1024, 1536)):
        raise _bad("output_dimension must be one of 256, 512, 1024, 1536 and needs embed-v4.0")
    return model, texts, input_type, types, dim
