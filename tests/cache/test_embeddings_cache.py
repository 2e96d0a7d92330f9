"""Embeddings are cached per input item, in the client's encoding, with the usage and costs
the upstream would have produced."""

from __future__ import annotations

import base64
import struct

import pytest

from tests.cache.conftest import CacheStack


def floats(item: dict) -> list[float]:
    value = item["embedding"]
    if isinstance(value, str):
        raw = base64.b64decode(value)
        return list(struct.unpack(f"<{len(raw) // 4}f", raw))
    return value


async def embed(stack: CacheStack, inputs, fmt: str | None = "float", **extra):
    body = {"model": "text-embedding-3-small", "input": inputs, **extra}
    if fmt:
        body["encoding_format"] = fmt
    return await stack.client.post("/v1/embeddings", json=body, headers=await stack.key())


def upstream_inputs(stack: CacheStack) -> list:
    return [r["body"]["input"] for r in stack.fake.requests if r["path"].endswith("/embeddings")]


async def test_per_item_cache(stack: CacheStack) -> None:
    first = await embed(stack, ["alpha", "beta"])
    assert first.headers["x-thrifty-cache"] == "miss"
    second = await embed(stack, ["beta", "gamma", "alpha"])
    assert upstream_inputs(stack) == [["alpha", "beta"], ["gamma"]]  # only the new item went up
    by_text = {t: floats(d) for t, d in zip(["alpha", "beta"], first.json()["data"], strict=True)}
    data = second.json()["data"]
    assert [d["index"] for d in data] == [0, 1, 2]
    assert floats(data[0]) == pytest.approx(by_text["beta"])
    assert floats(data[2]) == pytest.approx(by_text["alpha"])
    assert second.json()["usage"]["prompt_tokens"] == 3  # what the upstream would have said
    row = await stack.row(second)
    assert row["prompt_tokens"] == 1 and row["saved_cache_usd"] > 0 and row["cost_usd"] > 0
    assert "cache_items:2/3" in row["flags"]
    third = await embed(stack, ["gamma", "alpha"], fmt="base64")  # all cached, SDK's encoding
    assert third.headers["x-thrifty-cache"] == "hit"
    assert len(upstream_inputs(stack)) == 2
    assert floats(third.json()["data"][1]) == pytest.approx(by_text["alpha"], abs=1e-6)
    row = await stack.row(third)
    assert row["cost_usd"] == 0 and row["saved_cache_usd"] > 0


async def test_dimensions_are_part_of_the_key(stack: CacheStack) -> None:
    await embed(stack, "alpha")
    other = await embed(stack, "alpha", dimensions=64)
    assert other.headers["x-thrifty-cache"] == "miss"
    assert len(floats(other.json()["data"][0])) == 64
