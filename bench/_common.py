"""Helpers shared by the benchmark scripts: processes, ports, CPU from /proc, tables, results.

Stdlib only, so the load generator can import it without pulling anything heavy.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
PYTHON = sys.executable
HZ = os.sysconf("SC_CLK_TCK")


# -- ports and processes ---------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 30.0, proc: subprocess.Popen | None = None) -> None:
    """Poll ``url`` until it answers 200; raise with the process's exit code if it died."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode} before {url}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
                last = resp.status
        except (urllib.error.URLError, OSError) as exc:
            last = exc
        time.sleep(0.1)
    raise TimeoutError(f"{url} not ready after {timeout}s (last: {last!r})")


@contextlib.contextmanager
def started(
    args: Sequence[str],
    *,
    log: Path,
    ready_url: str | None = None,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 60.0,
) -> Iterator[subprocess.Popen]:
    """Start a server process (output to ``log``), wait for ``ready_url``, stop it on exit."""
    fh = open(log, "ab")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        list(args),
        stdout=fh,
        stderr=subprocess.STDOUT,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        start_new_session=True,
    )
    try:
        if ready_url:
            try:
                wait_http(ready_url, timeout, proc)
            except Exception:
                fh.flush()
                sys.stderr.write(log.read_text(errors="replace")[-3000:])
                raise
        yield proc
    finally:
        stop(proc)
        fh.close()


def stop(proc: subprocess.Popen, grace: float = 5.0) -> None:
    """SIGTERM the process group we started (the server and its workers), then SIGKILL."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(grace)


# -- CPU from /proc ----------------------------------------------------------------------------
def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may contain spaces; everything after the last ')' is safe.
    return raw[raw.rindex(")") + 2 :].split()


def descendants(pid: int) -> list[int]:
    """``pid`` and every live descendant (scans /proc once)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        f = _stat_fields(int(entry))
        if f is not None:
            children.setdefault(int(f[1]), []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, ()))
    return out


def cpu_seconds(pid: int) -> float:
    """utime+stime of ``pid`` and its live descendants (plus children it has reaped)."""
    ticks = 0
    for p in descendants(pid):
        f = _stat_fields(p)
        if f is not None:
            # after the ')' : state(0) ppid(1) … utime(11) stime(12) cutime(13) cstime(14)
            ticks += int(f[11]) + int(f[12]) + int(f[13]) + int(f[14])
    return ticks / HZ


def cpu_split(pid: int) -> dict[str, float]:
    """CPU seconds of ``pid`` split into its main thread (the event loop), its other threads
    (e.g. a database driver's worker thread) and its descendants."""
    f = _stat_fields(pid)
    if f is None:
        return {"main": 0.0, "threads": 0.0, "children": 0.0}
    proc = int(f[11]) + int(f[12])  # all threads of the process, live and exited
    m = None
    with contextlib.suppress(OSError):
        raw = Path(f"/proc/{pid}/task/{pid}/stat").read_text()
        m = raw[raw.rindex(")") + 2 :].split()
    main = int(m[11]) + int(m[12]) if m else proc
    return {
        "main": main / HZ,
        "threads": (proc - main) / HZ,
        "children": cpu_seconds(pid) - proc / HZ,
    }


def system_cpu() -> tuple[float, float]:
    """Machine-wide busy and steal CPU seconds since boot (first line of /proc/stat)."""
    with open("/proc/stat") as fh:
        v = [int(x) for x in fh.readline().split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = v
    return (user + nice + system + irq + softirq) / HZ, steal / HZ


def rss_mb(pid: int) -> float:
    total = 0
    for p in descendants(pid):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total / 1024


# -- load generator ----------------------------------------------------------------------------
def run_loadgen(
    url: str,
    *,
    connections: int,
    duration: float,
    warmup: float,
    cpu_pids: dict[str, int] | None = None,
    headers: Sequence[str] = (),
    payload: str = "small",
    stream: bool = False,
    client: str = "aiohttp",
    timeout: float | None = None,
    drain_max: float = 30.0,
    unique: bool = False,
) -> dict[str, Any]:
    """Run ``bench/loadgen.py`` in its own process; return its JSON result."""
    args = [
        PYTHON,
        str(BENCH_DIR / "loadgen.py"),
        url,
        "-c",
        str(connections),
        "-d",
        str(duration),
        "-w",
        str(warmup),
        "--payload",
        payload,
        "--client",
        client,
        "--drain-max",
        str(drain_max),
    ]
    for name, pid in (cpu_pids or {}).items():
        args += ["--cpu-pid", f"{name}={pid}"]
    for h in headers:
        args += ["-H", h]
    if stream:
        args.append("--stream")
    if unique:
        args.append("--unique")
    limit = timeout or (duration + warmup + 2 * drain_max + 60)
    out = subprocess.run(args, capture_output=True, text=True, timeout=limit, check=False)
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
    if out.returncode != 0 or not lines:
        raise RuntimeError(f"loadgen failed ({out.returncode}): {out.stderr[-2000:]}")
    return json.loads(lines[-1])


# -- numbers and tables ------------------------------------------------------------------------
def pct(sorted_vals: Sequence[float], p: float) -> float:
    if not sorted_vals:
        return float("nan")
    k = (len(sorted_vals) - 1) * p / 100.0
    f = int(k)
    c = min(f + 1, len(sorted_vals) - 1)
    return sorted_vals[f] + (sorted_vals[c] - sorted_vals[f]) * (k - f)


def med(values: Sequence[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return statistics.median(vals) if vals else None


def fmt(value: float | None, digits: int = 2, signed: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


def machine() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "kernel": platform.release(),
    }


def git_commit() -> str:
    """The checkout measured: short commit id, ``+dirty`` when src/ has local changes."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "src"], cwd=REPO, capture_output=True, text=True
        ).stdout.strip()
    except OSError:
        return "unknown"
    return (head or "unknown") + ("+dirty" if dirty else "")


def versions(*names: str) -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for n in names:
        try:
            out[n] = version(n)
        except PackageNotFoundError:
            out[n] = "missing"
    return out


def save_results(name: str, records: Sequence[dict[str, Any]]) -> Path:
    """Append records as JSON lines to ``bench/results/<name>.jsonl`` (gitignored)."""
    RESULTS_DIR.mkdir(exist_ok=True)
    path = RESULTS_DIR / f"{name}.jsonl"
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
    with path.open("a") as fh:
        for r in records:
            fh.write(json.dumps({"at": stamp, **r}) + "\n")
    return path
