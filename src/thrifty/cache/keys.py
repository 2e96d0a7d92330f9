"""Cache keys: a hash of the whole canonical request minus a short deny-list, under a
server-side scope. Never an allow-list: a parameter Thrifty has never heard of still changes the
key, so it can never make two different requests share an answer."""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from thrifty.keys.principal import Principal

# Fields that do not change the answer. Everything else — model, messages, tools, sampling,
# response_format, seed, n, logprobs, unknown fields — is part of the key.
DENY = frozenset(
    {
        "stream",
        "stream_options",
        "user",
        "metadata",
        "safety_identifier",
        "prompt_cache_key",
        "store",
    }
)


def scope_of(principal: Principal, scope: str) -> str:
    """``t:<tenant>`` (default), ``u:<tenant>:<user>`` or ``g`` (global). The separators ``:``
    and ``|`` (and ``%``) inside a name are escaped, so no two principals share a scope: tenant
    "acme:bob" with user "x" is not tenant "acme" with user "bob:x"."""
    if scope == "global":
        return "g"
    if scope == "user":
        return (
            f"u:{_escaped(principal.tenant)}:{_escaped(principal.user or principal.key_id or '-')}"
        )
    return f"t:{_escaped(principal.tenant)}"


def _escaped(name: str) -> str:
    if "%" in name or ":" in name or "|" in name:
        return name.replace("%", "%25").replace(":", "%3A").replace("|", "%7C")
    return name


def digest(value: Any) -> str:
    return hashlib.blake2b(
        orjson.dumps(value, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS),
        digest_size=20,
    ).hexdigest()


def request_key(endpoint: str, body: dict[str, Any], scope: str) -> str:
    canonical = {k: v for k, v in body.items() if k not in DENY}
    return f"{scope}|{endpoint}|{digest(canonical)}"


def embedding_item_key(body: dict[str, Any], item: Any, scope: str) -> str:
    """One embeddings input item: model, dimensions and the item (not the encoding, which is
    applied when answering)."""
    params = {
        k: v for k, v in body.items() if k not in DENY and k not in ("input", "encoding_format")
    }
    return f"{scope}|embedding|{digest([params, item])}"
