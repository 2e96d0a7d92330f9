"""The semantic cache through the real HTTP API: paraphrases hit, near-misses that embeddings
cannot separate (a number, a negation, an entity) miss, context and scope partition the index,
clients can refuse, the index survives a restart and follows replicas through Redis."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import orjson
import pytest

from tests.cache.conftest import CacheStack, cache_stack
from tests.redisx import redis_prefix, redis_url
from tests.support import ADMIN_KEY, chat_body
from thrifty.testing import FakeOpenAIServer

__all__ = ["redis_prefix"]
SEMANTIC = {"semantic": {"enabled": True, "threshold": 0.92}}


async def ask(s: CacheStack, text: str, **kw) -> str:
    resp = await s.chat(chat_body(text), **kw)
    assert resp.status_code == 200, resp.text
    return resp.headers["x-thrifty-cache"]


async def test_paraphrase_hits_and_is_accounted(make_stack) -> None:
    async with make_stack(**SEMANTIC) as s:
        first = await s.chat(chat_body("How do I reset my password?"))
        second = await s.chat(chat_body("What's the way to reset my password?"))
        assert second.headers["x-thrifty-cache"] == "semantic"
        assert second.json()["choices"] == first.json()["choices"]
        assert s.upstream_calls() == 1
        row = await s.row(second)
        assert row["cache_status"] == "semantic" and 0.92 <= row["cache_similarity"] <= 1
        assert row["cost_usd"] == 0 and row["saved_semantic_cache_usd"] > 0
        assert row["saved_cache_usd"] == 0  # reported apart from the exact lever
        streamed = await s.chat(chat_body("How can I reset my password?", stream=True))
        assert streamed.headers["x-thrifty-cache"] == "semantic"
        assert "data: [DONE]" in streamed.text
        # stats: each semantic hit counts as one, apart from exact hits; its exact lookup missed
        stats = (
            await s.client.get(
                "/admin/cache/stats", headers={"authorization": f"Bearer {ADMIN_KEY}"}
            )
        ).json()["counts"]
        assert stats["semantic_hit:memory"] == 2 and "hit:memory" not in stats
        assert stats["miss"] == 3


@pytest.mark.parametrize(
    ("first", "second", "reason"),
    [
        (
            "Give me 3 examples of renewable energy.",
            "Give me 5 examples of renewable energy.",
            "number",
        ),
        ("How do I turn on dark mode?", "How do I turn off dark mode?", "polarity"),
        ("How do I install Django on Ubuntu?", "How do I install Django on Debian?", "entity"),
    ],
)
async def test_near_misses_are_rejected(make_stack, first: str, second: str, reason: str) -> None:
    """Each pair is over the shipped threshold (0.85): the guard, not cosine, turns it away."""
    async with make_stack(semantic={"enabled": True}) as s:
        await ask(s, first)
        resp = await s.chat(chat_body(second))
        assert resp.headers["x-thrifty-cache"] == "miss"
        flags = (await s.row(resp))["flags"]
        assert f"semantic_rejected:{reason}" in flags
        assert s.upstream_calls() == 2


async def test_partitions_context_scope_and_refusal(make_stack) -> None:
    async with make_stack(**SEMANTIC) as s:
        await ask(s, "How do I reset my password?")
        other_context = {
            "model": "gpt-4o-mini",
            "messages": [
                {"role": "system", "content": "You are a pirate."},
                {"role": "user", "content": "What's the way to reset my password?"},
            ],
        }
        assert (await s.chat(other_context)).headers["x-thrifty-cache"] == "miss"
        assert await ask(s, "What's the way to reset my password?", tenant="globex") == "miss"
        refused = await ask(
            s, "What's the way to reset my password?", headers={"x-thrifty-cache": "no-semantic"}
        )
        assert refused == "miss"
        warmer = await s.chat(
            {**chat_body("What's the way to reset my password?"), "temperature": 0.3}
        )
        assert warmer.headers["x-thrifty-cache"] == "miss"  # other parameters, other partition


async def test_a_route_sets_its_own_threshold(make_stack) -> None:
    """A use case whose rule asks for 0.995 misses the paraphrase the default threshold serves,
    and the similarity it was served at is at least the route's threshold."""
    strict = {"x-thrifty-tags": "use_case=legal"}
    rules = [{"use_case": "legal", "semantic_threshold": 0.995}]
    async with make_stack(**SEMANTIC, rules=rules) as s:
        await ask(s, "How do I reset my password?")
        assert await ask(s, "What's the way to reset my password?", headers=strict) == "miss"
        resp = await s.chat(chat_body("How can I reset my password?"))
        assert resp.headers["x-thrifty-cache"] == "semantic"
        assert 0.92 <= (await s.row(resp))["cache_similarity"] < 0.995


def test_a_route_threshold_out_of_range_is_refused() -> None:
    from pydantic import ValidationError

    from thrifty.cache.config import CacheRule

    with pytest.raises(ValidationError, match="semantic_threshold"):
        CacheRule(use_case="legal", semantic_threshold=1.5)


async def test_index_survives_a_restart(fake: FakeOpenAIServer, tmp_path: Path) -> None:
    async with cache_stack(fake, tmp_path, **SEMANTIC) as s:
        await ask(s, "How do I cancel my subscription?")
    async with cache_stack(fake, tmp_path, **SEMANTIC) as s:
        assert await ask(s, "What do I do to cancel my subscription?") == "semantic"


async def test_an_index_of_another_embedder_is_re_embedded_at_start(
    fake: FakeOpenAIServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """After an upgrade that changes the vectors (MODEL_ID), the saved vectors are not mixed in:
    the stored questions are embedded again in the background, paraphrases hit again, and the
    index is saved with the new vectors at stop."""
    async with cache_stack(fake, tmp_path, **SEMANTIC) as s:
        await ask(s, "How do I cancel my subscription?")
        manifest = Path(s.app.gateway.semantic._path)
    saved = orjson.loads(manifest.read_bytes())
    vectors = manifest.parent / saved["vectors"]
    np.save(vectors, np.full_like(np.load(vectors), 0.1))  # another embedder's vectors
    manifest.write_bytes(orjson.dumps({**saved, "model_id": "some-older-embedder"}))
    async with cache_stack(fake, tmp_path, **SEMANTIC) as s:
        stage = s.app.gateway.semantic
        assert stage._reembedding is not None
        await stage._reembedding
        assert "re-embedding its questions" in caplog.text and "some-older-embedder" in caplog.text
        assert len(stage.index) == 1
        assert await ask(s, "What do I do to cancel my subscription?") == "semantic"
    assert orjson.loads(manifest.read_bytes())["model_id"] == saved["model_id"]


async def test_replicas_share_the_index_through_redis(
    fake: FakeOpenAIServer, tmp_path: Path, redis_prefix: str
) -> None:
    redis = {"url": redis_url(), "prefix": redis_prefix}
    async with (
        cache_stack(fake, tmp_path / "a", redis=redis, **SEMANTIC) as a,
        cache_stack(fake, tmp_path / "b", redis=redis, **SEMANTIC) as b,
    ):
        await asyncio.sleep(0.2)  # both replicas subscribed
        await ask(a, "How do I reset my password?")
        for _ in range(50):
            if len(b.app.gateway.semantic.index):
                break
            await asyncio.sleep(0.02)
        assert await ask(b, "What's the way to reset my password?") == "semantic"
    async with cache_stack(fake, tmp_path / "c", redis=redis, **SEMANTIC) as c:
        assert await ask(c, "How can I reset my password?") == "semantic"  # bootstrapped


async def test_rated_semantic_hits_become_calibration_pairs(
    fake: FakeOpenAIServer, tmp_path: Path
) -> None:
    import orjson
    from typer.testing import CliRunner

    from thrifty.cli.main import app as cli

    async with cache_stack(
        fake,
        tmp_path,
        semantic={"enabled": True, "threshold": 0.92},
        ledger={"store_content": True},
    ) as s:
        await ask(s, "How do I reset my password?")
        hit = await s.chat(chat_body("What's the way to reset my password?"))
        assert hit.headers["x-thrifty-cache"] == "semantic"
        rid = hit.headers["x-thrifty-request-id"]
        r = await s.client.post(
            "/v1/feedback", json={"request_id": rid, "score": 0.0}, headers=await s.key()
        )
        assert r.status_code == 200
    cfg = tmp_path / "cli.yaml"
    cfg.write_text(f"database: {{url: 'sqlite:///{tmp_path / 'thrifty.db'}'}}\n")
    out = tmp_path / "pairs.jsonl"
    result = await asyncio.to_thread(
        CliRunner().invoke,
        cli,
        ["cache", "pairs-from-ledger", "--out", str(out), "--period", "1h", "-c", str(cfg)],
    )
    assert result.exit_code == 0, result.output
    pairs = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert pairs == [
        {
            "a": "What's the way to reset my password?",
            "b": "How do I reset my password?",
            "label": False,
        }
    ]


async def test_expired_answers_leave_the_shared_records(
    fake: FakeOpenAIServer, tmp_path: Path, redis_prefix: str
) -> None:
    """Pub/sub mode: each shared record carries its answer's expiry; replicas prune expired
    records from the Redis hash, and a starting replica neither loads nor keeps them."""
    redis = {"url": redis_url(), "prefix": redis_prefix}

    async def shared_records(s: CacheStack, n: int) -> None:
        stage = s.app.gateway.semantic
        for _ in range(100):
            if await s.app.gateway.redis.hlen(stage._hash) == n:
                return
            await asyncio.sleep(0.02)
        raise AssertionError(f"the shared hash never held {n} records")

    async with cache_stack(fake, tmp_path / "a", redis=redis, ttl_s=0.3, **SEMANTIC) as a:
        stage = a.app.gateway.semantic
        await ask(a, "How do I reset my password?")
        await shared_records(a, 1)
        assert await stage.prune() == 0  # not expired yet
        await asyncio.sleep(0.4)
        assert await stage.prune() == 1
        await shared_records(a, 0)
        await ask(a, "How do I cancel my subscription?")
        await shared_records(a, 1)
        await asyncio.sleep(0.4)
    # A replica stopped right after it started once hung: redis-py swallowed the cancellation of
    # its sync task while it was still subscribing.
    async with asyncio.timeout(20):
        async with cache_stack(fake, tmp_path / "b", redis=redis, **SEMANTIC) as b:
            assert len(b.app.gateway.semantic.index) == 0  # the expired record was not loaded
            await shared_records(b, 0)  # and the start dropped it from Redis
