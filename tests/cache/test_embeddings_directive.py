"""``x-thrifty-cache`` on ``POST /v1/embeddings`` acts exactly as on chat completions:
``off`` neither looks up nor stores, ``no-cache`` skips the lookup but stores the fresh answer,
``no-store`` looks up but never stores; the response header says what happened."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.cache.conftest import CacheStack


def embed_calls(stack: CacheStack) -> int:
    return sum(1 for r in stack.fake.requests if r["path"].endswith("/embeddings"))


async def embed(
    stack: CacheStack, inputs: Any = "alpha", directive: str | None = None
) -> httpx.Response:
    headers = await stack.key()
    if directive is not None:
        headers["x-thrifty-cache"] = directive
    body = {"model": "text-embedding-3-small", "input": inputs, "encoding_format": "float"}
    resp = await stack.client.post("/v1/embeddings", json=body, headers=headers)
    assert resp.status_code == 200, resp.text
    return resp


async def test_off_neither_looks_up_nor_stores(stack: CacheStack) -> None:
    await embed(stack, "alpha")  # cached
    off = await embed(stack, "alpha", "off")
    assert off.headers["x-thrifty-cache"] == "bypass"
    assert embed_calls(stack) == 2  # the cached entry was not used
    fresh = await embed(stack, "beta", "off")
    assert fresh.headers["x-thrifty-cache"] == "bypass"
    assert (await embed(stack, "beta")).headers["x-thrifty-cache"] == "miss"  # nothing stored
    assert embed_calls(stack) == 4
    row = await stack.row(off)
    assert row["cache_status"] == "bypass" and row["saved_cache_usd"] == 0


async def test_no_cache_skips_the_lookup_and_stores(stack: CacheStack) -> None:
    await embed(stack, "alpha")
    refreshed = await embed(stack, "alpha", "no-cache")
    assert refreshed.headers["x-thrifty-cache"] == "miss"
    assert embed_calls(stack) == 2
    fresh = await embed(stack, "beta", "no-cache")
    assert fresh.headers["x-thrifty-cache"] == "miss"
    assert embed_calls(stack) == 3
    again = await embed(stack, "beta")  # the no-cache answer was stored
    assert again.headers["x-thrifty-cache"] == "hit"
    assert again.json()["data"][0]["embedding"] == pytest.approx(
        fresh.json()["data"][0]["embedding"]
    )
    assert embed_calls(stack) == 3


async def test_no_store_looks_up_but_never_stores(stack: CacheStack) -> None:
    await embed(stack, "alpha")
    cached = await embed(stack, "alpha", "no-store")
    assert cached.headers["x-thrifty-cache"] == "hit"
    assert embed_calls(stack) == 1
    partial = await embed(stack, ["alpha", "beta"], "no-store")
    assert partial.headers["x-thrifty-cache"] == "miss"
    assert [r["body"]["input"] for r in stack.fake.requests][-1] == ["beta"]
    assert embed_calls(stack) == 2
    assert (await embed(stack, "beta")).headers["x-thrifty-cache"] == "miss"  # not stored
    assert embed_calls(stack) == 3


async def test_no_semantic_uses_the_exact_cache(stack: CacheStack) -> None:
    await embed(stack, "alpha")
    assert (await embed(stack, "alpha", "no-semantic")).headers["x-thrifty-cache"] == "hit"
    assert embed_calls(stack) == 1


async def test_invalid_directive_is_a_400(stack: CacheStack) -> None:
    headers = {**(await stack.key()), "x-thrifty-cache": "sometimes"}
    body = {"model": "text-embedding-3-small", "input": "alpha"}
    resp = await stack.client.post("/v1/embeddings", json=body, headers=headers)
    assert resp.status_code == 400
    assert resp.json()["error"]["param"] == "x-thrifty-cache"
    assert embed_calls(stack) == 0


@pytest.mark.parametrize("directive", ["off", "no-cache", "no-store", "no-semantic"])
async def test_same_headers_and_upstream_calls_as_chat(stack: CacheStack, directive: str) -> None:
    """plain, directive, plain: chat and embeddings answer alike and call upstream alike."""
    chat_seen: list[str] = []
    embed_seen: list[str] = []
    for d in (None, directive, None):
        headers = {} if d is None else {"x-thrifty-cache": d}
        chat_seen.append((await stack.chat(headers=headers)).headers["x-thrifty-cache"])
        embed_seen.append((await embed(stack, "alpha", d)).headers["x-thrifty-cache"])
        assert stack.upstream_calls() == embed_calls(stack)
    assert embed_seen == chat_seen
