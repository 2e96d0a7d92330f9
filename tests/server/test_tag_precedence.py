"""Tags set on the virtual key win over request tags of the same name (``x-thrifty-tags``):
a client cannot escape a server-side cache rule or move its spend to another team by sending
a different tag. Request tags of other names are still added."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.cache.conftest import CacheStack, cache_stack
from tests.support import chat_body
from thrifty.testing import FakeOpenAIServer

SPOOF = {"x-thrifty-tags": "use_case=general,agent=bot"}
PERSONAL_RULE = {"rules": [{"use_case": "personal", "scope": "user"}]}


async def personal_key(stack: CacheStack, user: str) -> dict[str, str]:
    key, _ = await stack.app.gateway.keys.create("acme", user=user, tags={"use_case": "personal"})
    return {"authorization": f"Bearer {key}"}


def embed_calls(stack: CacheStack) -> int:
    return sum(1 for r in stack.fake.requests if r["path"].endswith("/embeddings"))


async def test_key_tag_keeps_chat_cache_scoped_per_user(
    fake: FakeOpenAIServer, tmp_path: Path
) -> None:
    async with cache_stack(fake, tmp_path, **PERSONAL_RULE) as s:
        alice, bob = await personal_key(s, "alice"), await personal_key(s, "bob")
        body = chat_body("What did I tell you yesterday?")

        async def chat(auth: dict[str, str]) -> httpx.Response:
            return await s.client.post("/v1/chat/completions", json=body, headers={**auth, **SPOOF})

        assert (await chat(alice)).headers["x-thrifty-cache"] == "miss"
        assert (await chat(alice)).headers["x-thrifty-cache"] == "hit"
        other = await chat(bob)  # use_case=general must not make the entry tenant-wide
        assert other.headers["x-thrifty-cache"] == "miss"
        assert s.upstream_calls() == 2
        row = await s.row(other)
        assert row["tags"] == {"use_case": "personal", "agent": "bot"}


async def test_key_tag_keeps_embeddings_cache_scoped_per_user(
    fake: FakeOpenAIServer, tmp_path: Path
) -> None:
    async with cache_stack(fake, tmp_path, **PERSONAL_RULE) as s:
        alice, bob = await personal_key(s, "alice"), await personal_key(s, "bob")
        body = {"model": "text-embedding-3-small", "input": "my diary", "encoding_format": "float"}

        async def embed(auth: dict[str, str]) -> httpx.Response:
            return await s.client.post("/v1/embeddings", json=body, headers={**auth, **SPOOF})

        assert (await embed(alice)).headers["x-thrifty-cache"] == "miss"
        assert (await embed(alice)).headers["x-thrifty-cache"] == "hit"
        other = await embed(bob)
        assert other.headers["x-thrifty-cache"] == "miss"
        assert embed_calls(s) == 2
        row = await s.row(other)
        assert row["tags"] == {"use_case": "personal", "agent": "bot"}


async def test_spend_is_attributed_to_the_key_tag(fake: FakeOpenAIServer, tmp_path: Path) -> None:
    async with cache_stack(fake, tmp_path, enabled=False) as s:
        key, _ = await s.app.gateway.keys.create("acme", user="al", tags={"team": "search"})
        auth = {"authorization": f"Bearer {key}"}
        resp = await s.client.post(
            "/v1/chat/completions",
            json=chat_body("Hello"),
            headers={**auth, "x-thrifty-tags": "team=ads,feature=autocomplete"},
        )
        assert resp.status_code == 200
        row = await s.row(resp)
        assert row["tags"] == {"team": "search", "feature": "autocomplete"}
        rows, total = await s.app.gateway.usage("1d", group_by=["tag:team"])
        assert [r.group for r in rows] == [{"tag:team": "search"}]
        assert rows[0].requests == total.requests == 1


async def test_request_tags_of_other_names_still_apply(
    fake: FakeOpenAIServer, tmp_path: Path
) -> None:
    async with cache_stack(fake, tmp_path, **PERSONAL_RULE) as s:
        auth = await s.key("acme", "carol")  # a key without tags: the request's tags apply
        body = chat_body("What did I tell you yesterday?")
        tags = {"x-thrifty-tags": "use_case=personal"}
        await s.client.post("/v1/chat/completions", json=body, headers={**auth, **tags})
        dave = await s.key("acme", "dave")
        other = await s.client.post("/v1/chat/completions", json=body, headers={**dave, **tags})
        assert other.headers["x-thrifty-cache"] == "miss"  # the request's rule scoped it
        assert (await s.row(other))["tags"] == {"use_case": "personal"}
