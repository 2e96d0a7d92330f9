"""`thrifty serve` as a real process: CLI-created key, the OpenAI SDK over loopback, and a
graceful shutdown (SIGTERM) that flushes every ledger row."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import openai
import pytest

from tests.processes import free_port

pytestmark = pytest.mark.e2e


def test_serve_process_end_to_end(tmp_path: Path) -> None:
    db = tmp_path / "thrifty.db"
    cfg = tmp_path / "thrifty.yaml"
    cfg.write_text(
        f"database: {{url: 'sqlite:///{db}'}}\n"
        f"ledger: {{spill_path: '{tmp_path / 'spill.jsonl'}'}}\n"
        f"cache: {{disk_path: '{tmp_path / 'cache'}'}}\n"
        "providers: {fake: {kind: fake}}\n"
        "models: [{name: gpt-4o-mini, provider: fake}, {name: gpt-4o, provider: fake}]\n"
    )
    cli = [sys.executable, "-m", "thrifty"]
    created = subprocess.run(
        [*cli, "keys", "create", "--tenant", "acme", "-c", str(cfg)],
        capture_output=True,
        text=True,
        check=True,
    )
    key = created.stdout.strip().splitlines()[-1]
    port = free_port()
    proc = subprocess.Popen(
        [*cli, "serve", "-c", str(cfg), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            assert time.monotonic() < deadline, "server did not become ready"
            time.sleep(0.1)
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=key, max_retries=0)
        n = 25
        for i in range(n):
            raw = client.chat.completions.with_raw_response.create(
                model="gpt-4o-mini" if i % 2 else "gpt-4o",
                messages=[{"role": "user", "content": f"question {i}"}],
                stream=i % 5 == 0,
            )
            assert raw.headers["x-thrifty-request-id"].startswith("req_")
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    # uvicorn re-raises the signal after its graceful shutdown
    assert proc.returncode in (0, -signal.SIGTERM), out
    assert "FAKE" in out  # it says loudly that it runs on the fake providers
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT COUNT(*), COUNT(DISTINCT request_id) FROM ledger").fetchone()
        costs = conn.execute("SELECT COUNT(*) FROM ledger WHERE cost_usd > 0").fetchone()[0]
    assert rows == (n, n)
    assert costs == n
