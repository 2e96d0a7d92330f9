"""Real `thrifty serve` processes for end-to-end tests (importable as ``tests.processes``)."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

CLI = [sys.executable, "-m", "thrifty"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def create_key(config: Path, tenant: str = "acme") -> str:
    done = subprocess.run(
        [*CLI, "keys", "create", "--tenant", tenant, "-c", str(config)],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip().splitlines()[-1]


def wait_ready(port: int, proc: subprocess.Popen[str], timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200:
                return
        except httpx.HTTPError:
            pass
        assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
        assert time.monotonic() < deadline, "server did not become ready"
        time.sleep(0.1)


@contextmanager
def serve_processes(config: Path, n: int) -> Iterator[list[int]]:
    """``n`` gateway processes on the same config; yields their ports; SIGTERM at the end
    (uvicorn's graceful shutdown flushes the ledger)."""
    ports = [free_port() for _ in range(n)]
    procs = [
        subprocess.Popen(
            [*CLI, "serve", "-c", str(config), "--port", str(p)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for p in ports
    ]
    try:
        for port, proc in zip(ports, procs, strict=True):
            wait_ready(port, proc)
        yield ports
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            proc.communicate(timeout=30)
