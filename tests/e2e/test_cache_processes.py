"""Two `thrifty serve` processes sharing Redis and a database: an answer cached by one is a hit
on the other, and an invalidation sent to one reaches the other's in-process tier."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.test_serve_process import _free_port
from tests.redisx import redis_prefix, redis_url

pytestmark = pytest.mark.e2e
__all__ = ["redis_prefix"]


def _wait_ready(port: int, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200:
                return
        except httpx.HTTPError:
            pass
        assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
        assert time.monotonic() < deadline, "server did not become ready"
        time.sleep(0.1)


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
    cli = [sys.executable, "-m", "thrifty"]
    key = (
        subprocess.run(
            [*cli, "keys", "create", "--tenant", "acme", "-c", str(cfg)],
            capture_output=True,
            text=True,
            check=True,
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    ports = [_free_port(), _free_port()]
    procs = [
        subprocess.Popen(
            [*cli, "serve", "-c", str(cfg), "--port", str(p)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for p in ports
    ]
    try:
        for port, proc in zip(ports, procs, strict=True):
            _wait_ready(port, proc)
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
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            proc.communicate(timeout=30)
