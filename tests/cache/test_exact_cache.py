"""The exact cache through the real HTTP API: hits (JSON and streamed), what is part of the
key, when not to store, TTLs, scopes, directives, tiers, invalidation, stats."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.cache.conftest import CacheStack, cache_stack
from tests.support import ADMIN_KEY, chat_body
from thrifty.testing import FakeOpenAIServer, Latency

ADMIN = {"authorization": f"Bearer {ADMIN_KEY}"}


def sse_text(resp: httpx.Response) -> tuple[str, list[dict[str, Any]]]:
    chunks = [orjson.loads(f[6:]) for f in resp.text.split("\n\n") if f.startswith("data: {")]
    text = "".join((c["choices"][0]["delta"].get("content") or "") for c in chunks if c["choices"])
    return text, chunks


async def test_exact_hit_costs_nothing_and_saves_the_answer(stack: CacheStack) -> None:
    first = await stack.chat()
    second = await stack.chat()
    assert first.headers["x-thrifty-cache"] == "miss"
    assert second.headers["x-thrifty-cache"] == "hit"
    assert stack.upstream_calls() == 1
    assert second.json()["choices"] == first.json()["choices"]
    assert second.json()["usage"] == first.json()["usage"]
    assert float(second.headers["x-thrifty-cost-usd"]) == 0
    assert float(second.headers["x-thrifty-saved-usd"]) == pytest.approx(
        float(first.headers["x-thrifty-cost-usd"])
    )
    row = await stack.row(second)
    assert row["cache_status"] == "hit" and row["cost_usd"] == 0
    assert row["saved_cache_usd"] == pytest.approx((await stack.row(first))["cost_usd"])
    assert row["saved_semantic_cache_usd"] == 0
    assert row["baseline_cost_usd"] == pytest.approx(row["saved_usd"])
    assert row["attempts"] == 0 and "cache_tier:memory" in row["flags"]


async def test_streamed_hits_replay_identically(stack: CacheStack) -> None:
    body = chat_body("Tell me about lighthouses", stream=True)
    miss = await stack.chat(body)
    hit = await stack.chat(body)
    assert (miss.headers["x-thrifty-cache"], hit.headers["x-thrifty-cache"]) == ("miss", "hit")
    assert stack.upstream_calls() == 1
    assert sse_text(hit)[0] == sse_text(miss)[0]
    assert hit.text.rstrip().endswith("data: [DONE]")
    # the stored answer goes out in as few events as the SDKs need: role, content, finish
    deltas = [c["choices"][0]["delta"] for c in sse_text(hit)[1] if c["choices"]]
    assert len(sse_text(miss)[1]) > 3 and len(deltas) == 3
    assert deltas[0]["role"] == "assistant" and deltas[1]["content"] == sse_text(miss)[0]
    # the same question without streaming is the same entry
    plain = await stack.chat(chat_body("Tell me about lighthouses"))
    assert plain.headers["x-thrifty-cache"] == "hit"
    assert plain.json()["choices"][0]["message"]["content"] == sse_text(miss)[0]
    # a streamed hit gives usage when asked, like the upstream would
    with_usage = await stack.chat(
        chat_body("Tell me about lighthouses", stream=True, stream_options={"include_usage": True})
    )
    usage_chunk = sse_text(with_usage)[1][-1]
    assert usage_chunk["choices"] == [] and usage_chunk["usage"]["completion_tokens"] > 0


@pytest.mark.parametrize(
    "change",
    [
        {"temperature": 0.2},
        {"seed": 7},
        {"response_format": {"type": "json_object"}},
        {"model": "gpt-4o"},
        {"max_tokens": 300},
        {"some_new_param": True},
        {
            "messages": [
                {"role": "system", "content": "Be terse."},
                {"role": "user", "content": "What is the capital of France?"},
            ]
        },
    ],
)
async def test_any_parameter_change_is_a_miss(stack: CacheStack, change: dict[str, Any]) -> None:
    await stack.chat()
    changed = await stack.chat({**chat_body("What is the capital of France?"), **change})
    assert changed.headers["x-thrifty-cache"] == "miss"
    assert stack.upstream_calls() == 2


async def test_tools_change_is_a_miss_and_tool_answers_are_not_stored(stack: CacheStack) -> None:
    tools = [
        {
            "type": "function",
            "function": {"name": "f", "parameters": {"type": "object", "properties": {}}},
        }
    ]
    await stack.chat()
    with_tools = await stack.chat(chat_body("What is the capital of France?", tools=tools))
    assert with_tools.headers["x-thrifty-cache"] == "miss"
    again = await stack.chat(chat_body("What is the capital of France?", tools=tools))
    assert again.headers["x-thrifty-cache"] == "miss"  # a tool call is never served from cache


async def test_denied_fields_do_not_change_the_key(stack: CacheStack) -> None:
    await stack.chat()
    same = await stack.chat(
        {**chat_body("What is the capital of France?"), "user": "u-9", "metadata": {"a": "b"}}
    )
    assert same.headers["x-thrifty-cache"] == "hit"


async def test_not_stored(make_stack) -> None:
    async with make_stack(max_temperature=0.5) as s:
        for body in (
            chat_body("hot", temperature=0.9),
            chat_body("default temperature is 1.0"),
            chat_body("short", max_tokens=1),  # finish_reason length
            chat_body("many", n=2, temperature=0),
        ):
            await s.chat(body)
            again = await s.chat(body)
            assert again.headers["x-thrifty-cache"] == "miss", body
        cold = chat_body("cold", temperature=0.1)
        await s.chat(cold)
        assert (await s.chat(cold)).headers["x-thrifty-cache"] == "hit"


async def test_directives(stack: CacheStack) -> None:
    await stack.chat()
    refreshed = await stack.chat(headers={"x-thrifty-cache": "no-cache"})
    assert refreshed.headers["x-thrifty-cache"] == "miss" and stack.upstream_calls() == 2
    off = await stack.chat(headers={"x-thrifty-cache": "off"})
    assert off.headers["x-thrifty-cache"] == "bypass" and stack.upstream_calls() == 3
    body = chat_body("never keep this")
    await stack.chat(body, headers={"x-thrifty-cache": "no-store"})
    assert (await stack.chat(body)).headers["x-thrifty-cache"] == "miss"


async def test_ttl_expiry(make_stack) -> None:
    async with make_stack(rules=[{"model": "gpt-4o-mini", "ttl_s": 0.3}]) as s:
        await s.chat()
        assert (await s.chat()).headers["x-thrifty-cache"] == "hit"
        await asyncio.sleep(0.5)
        assert (await s.chat()).headers["x-thrifty-cache"] == "miss"


async def test_tenant_isolation_and_user_scope(make_stack) -> None:
    async with make_stack(rules=[{"use_case": "personal", "scope": "user"}]) as s:
        await s.chat(tenant="acme")
        assert (await s.chat(tenant="acme")).headers["x-thrifty-cache"] == "hit"
        other = await s.chat(tenant="globex")
        assert other.headers["x-thrifty-cache"] == "miss"  # tenant B never sees tenant A's entry
        tag = {"x-thrifty-tags": "use_case=personal"}
        await s.chat(tenant="acme", user="al", headers=tag)
        assert (await s.chat(tenant="acme", user="al", headers=tag)).headers[
            "x-thrifty-cache"
        ] == "hit"
        assert (await s.chat(tenant="acme", user="bo", headers=tag)).headers[
            "x-thrifty-cache"
        ] == "miss"


async def test_disk_tier_survives_a_restart(fake: FakeOpenAIServer, tmp_path: Path) -> None:
    async with cache_stack(fake, tmp_path) as s:
        first = await s.chat()
        await s.app.gateway.cache.flush()
    async with cache_stack(fake, tmp_path) as s:
        again = await s.chat()
        assert again.headers["x-thrifty-cache"] == "hit"
        assert "cache_tier:disk" in (await s.row(again))["flags"]
        assert again.json()["choices"] == first.json()["choices"]
        assert (await s.chat()).headers["x-thrifty-cache"] == "hit"  # promoted to memory


async def test_admin_invalidation_and_stats(stack: CacheStack) -> None:
    await stack.chat(tenant="acme", headers={"x-thrifty-tags": "feature=faq"})
    await stack.chat(tenant="globex")
    await stack.chat(chat_body("other", model="gpt-4o"), tenant="acme")
    await stack.app.gateway.cache.flush()
    post = stack.client.post
    r = await post("/admin/cache/invalidate", json={"tenant": "globex"}, headers=ADMIN)
    assert r.json()["invalidated"] >= 1
    assert (await stack.chat(tenant="globex")).headers["x-thrifty-cache"] == "miss"
    assert (await stack.chat(tenant="acme", headers={"x-thrifty-tags": "feature=faq"})).headers[
        "x-thrifty-cache"
    ] == "hit"
    await post("/admin/cache/invalidate", json={"tag": "feature=faq"}, headers=ADMIN)
    assert (await stack.chat(tenant="acme")).headers["x-thrifty-cache"] == "miss"
    await post("/admin/cache/invalidate", json={"model": "gpt-4o"}, headers=ADMIN)
    assert (await stack.chat(chat_body("other", model="gpt-4o"))).headers[
        "x-thrifty-cache"
    ] == "miss"
    await post("/admin/cache/invalidate", json={"all": True}, headers=ADMIN)
    assert (await stack.chat(tenant="acme")).headers["x-thrifty-cache"] == "miss"
    bad = await post("/admin/cache/invalidate", json={"colour": "red"}, headers=ADMIN)
    assert bad.status_code == 400
    assert (await post("/admin/cache/invalidate", json={}, headers=ADMIN)).status_code == 400
    await stack.chat(tenant="acme")
    stats = (await stack.client.get("/admin/cache/stats", headers=ADMIN)).json()
    assert stats["tiers"]["memory"]["entries"] >= 1
    assert stats["counts"]["hit:memory"] >= 1 and stats["counts"]["miss"] >= 1
    assert stats["savings_30d_usd"]["cache"] > 0
    assert (await stack.client.get("/admin/cache/stats")).status_code == 401


async def test_coalescing_makes_one_upstream_call(make_stack, fake: FakeOpenAIServer) -> None:
    fake.set_fault(None)
    async with make_stack() as s:
        fake.latency = Latency(first_token_ms=300)  # hold the leader's call open
        body = chat_body("a popular question")
        results = await asyncio.gather(
            *(s.chat(body) for _ in range(8)),
            *(s.chat({**body, "stream": True}) for _ in range(4)),
        )
        assert s.upstream_calls() == 1
        assert all(r.status_code == 200 for r in results)
        statuses = sorted(r.headers["x-thrifty-cache"] for r in results)
        assert statuses.count("miss") == 1 and statuses.count("hit") == 11
        content = results[0].json()["choices"][0]["message"]["content"]
        assert all(r.json()["choices"][0]["message"]["content"] == content for r in results[:8])
        assert all(sse_text(r)[0] == content for r in results[8:])
        rows = [await s.row(r) for r in results]
        assert sum("coalesced" in r["flags"] for r in rows) == 11


async def test_memory_evictions_are_written_back_to_disk(make_stack) -> None:
    async with make_stack(memory_max_bytes=4096) as s:
        bodies = [chat_body(f"question {i}") for i in range(12)]
        for body in bodies:
            await s.chat(body)
        assert s.app.gateway.cache.memory.evictions > 0
        await s.app.gateway.cache.flush()
        again = await s.chat(bodies[0])  # long evicted from memory
        assert again.headers["x-thrifty-cache"] == "hit"
        assert "cache_tier:disk" in (await s.row(again))["flags"]
        assert s.upstream_calls() == 12
