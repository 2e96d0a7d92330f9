"""Two `thrifty serve` processes sharing Redis and a database: an answer cached by one is a hit
on the other, and an invalidation sent to one reaches the other's in-process tier."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from tests.processes import create_key, serve_processes
from tests.redisx import redis_prefix, redis_url

pytestmark = pytest.mark.e2e
__all__ = ["redis_prefix"]


def test_invalidation_across_two_processes(tmp_path: Path, redis_prefix: str) -> None:
    cfg = tmp_path / "thrifty.yaml"
    cfg.write_text(
        f"server: {{admin_key: adm}}\n"
        f"database: {{url: 'sqlite:///{tmp_path / 'thrifty.db'}'}}\n"
        f"ledger: {{spill_path: '{tmp_path / 'spill.jsonl'}'}}\n"
        f"redis: {{url: '{redis_url()}', prefix: '{redis_prefix}'}}\n"
        "keys: {cache_ttl_s: 0}\n"
        "providers: {fake: {kind: fake}}\n"
        "models: [{name: gpt-4o-mini, provider: fake}]\n"
    )
    key = create_key(cfg)
    with serve_processes(cfg, 2) as ports:
        a, b = (httpx.Client(base_url=f"http://127.0.0.1:{p}") for p in ports)
        auth = {"authorization": f"Bearer {key}"}
        body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "shared?"}]}
        assert (
            a.post("/v1/chat/completions", json=body, headers=auth).headers["x-thrifty-cache"]
            == "miss"
        )
        time.sleep(0.3)  # the Redis write happens behind the request
        assert (
            b.post("/v1/chat/completions", json=body, headers=auth).headers["x-thrifty-cache"]
            == "hit"
        )
        inv = a.post(
            "/admin/cache/invalidate", json={"all": True}, headers={"authorization": "Bearer adm"}
        )
        assert inv.status_code == 200 and inv.json()["invalidated"] >= 1
        time.sleep(0.3)  # pub/sub reaches process b
        assert (
            b.post("/v1/chat/completions", json=body, headers=auth).headers["x-thrifty-cache"]
            == "miss"
        )
