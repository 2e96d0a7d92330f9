"""Request and response bodies shared by the benchmarks (stdlib only).

``SMALL_CHAT`` is a one-turn chat request (the body the peers were measured with in
/work/shared/FINDINGS.md); ``TOOLS_CHAT`` is a ~2 KB multi-turn request with tools, the shape an
agent sends; ``COMPLETION`` is a realistic ``chat.completion`` answer with ``usage``.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from typing import Any

SMALL_CHAT: dict[str, Any] = {
    "model": "gpt-4o-mini",
    "messages": [
        {"role": "system", "content": "You are a concise assistant."},
        {"role": "user", "content": "Say hello in one short sentence."},
    ],
    "max_tokens": 64,
    "temperature": 0.2,
}


def _tool(name: str, description: str, props: dict[str, Any], required: list[str]) -> dict:
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": description,
            "parameters": {
                "type": "object",
                "properties": props,
                "required": required,
                "additionalProperties": False,
            },
        },
    }


TOOLS_CHAT: dict[str, Any] = {
    "model": "gpt-4o-mini",
    "messages": [
        {
            "role": "system",
            "content": (
                "You are a support agent for an online shop. Answer briefly, call tools when "
                "you need order or stock data, and never invent order numbers."
            ),
        },
        {"role": "user", "content": "Where is my order 48213? It was due on Monday."},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_7Hq2",
                    "type": "function",
                    "function": {"name": "get_order", "arguments": '{"order_id":"48213"}'},
                }
            ],
        },
        {
            "role": "tool",
            "tool_call_id": "call_7Hq2",
            "content": json.dumps(
                {
                    "order_id": "48213",
                    "status": "in_transit",
                    "carrier": "DHL",
                    "eta": "2025-06-12",
                    "items": [{"sku": "KB-104", "qty": 1}, {"sku": "MS-22", "qty": 2}],
                }
            ),
        },
        {
            "role": "user",
            "content": "OK. Is the KB-104 keyboard also available in the German layout?",
        },
    ],
    "tools": [
        _tool(
            "get_order",
            "Look up an order by its number and return status, carrier and ETA.",
            {"order_id": {"type": "string", "description": "The order number."}},
            ["order_id"],
        ),
        _tool(
            "check_stock",
            "Check whether a product variant is in stock in a warehouse.",
            {
                "sku": {"type": "string", "description": "Product SKU, e.g. KB-104."},
                "variant": {"type": "string", "description": "Variant, e.g. a layout."},
                "warehouse": {"type": "string", "enum": ["eu-west", "eu-central", "us-east"]},
            },
            ["sku"],
        ),
        _tool(
            "create_ticket",
            "Open a support ticket for a human agent when the issue cannot be solved.",
            {
                "subject": {"type": "string"},
                "priority": {"type": "string", "enum": ["low", "normal", "high"]},
                "body": {"type": "string", "description": "What the customer needs."},
            },
            ["subject", "body"],
        ),
    ],
    "tool_choice": "auto",
    "temperature": 0.3,
    "max_tokens": 300,
    "user": "customer-48213",
    "metadata": {"channel": "web", "locale": "en-GB"},
}

ANSWER = (
    "Your order 48213 is on its way with DHL and should arrive on 12 June. The KB-104 keyboard "
    "is available in the German (QWERTZ) layout: I can check stock in the EU-central warehouse "
    "for you, or open a ticket to swap the layout if you'd prefer to exchange it."
)

COMPLETION: dict[str, Any] = {
    "id": "chatcmpl-BENCH0000000000000000000001",
    "object": "chat.completion",
    "created": 1750000000,
    "model": "gpt-4o-mini-2024-07-18",
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": ANSWER,
                "refusal": None,
                "annotations": [],
            },
            "logprobs": None,
            "finish_reason": "stop",
        }
    ],
    "usage": {
        "prompt_tokens": 412,
        "completion_tokens": 62,
        "total_tokens": 474,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    },
    "service_tier": "default",
    "system_fingerprint": "fp_bench01",
}

PAYLOADS = {"small": SMALL_CHAT, "tools": TOOLS_CHAT}


def body_bytes(name: str, *, stream: bool = False, marker: str = "") -> bytes:
    """A payload as compact JSON bytes (``stream`` adds ``stream: true``; ``marker`` is appended
    to the last message's content, for callers that make every request unique)."""
    body = dict(PAYLOADS[name])
    if stream:
        body["stream"] = True
    if marker:
        messages = [dict(m) for m in body["messages"]]
        messages[-1]["content"] = str(messages[-1]["content"]) + marker
        body["messages"] = messages
    return json.dumps(body, separators=(",", ":")).encode()


def unique_bodies(name: str, *, stream: bool = False, tag: str = "") -> Callable[[], bytes]:
    """A factory of bodies that differ only by a counter at the end of the last message (so
    every request misses a response cache); ``tag`` keeps separate runs apart."""
    head, _, tail = body_bytes(name, stream=stream, marker=" @@N@@").partition(b"@@N@@")
    head += f"[{tag}".encode()
    count = itertools.count()
    return lambda: b"%s-%d]%s" % (head, next(count), tail)
