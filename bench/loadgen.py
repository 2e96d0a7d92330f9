"""Closed-loop HTTP load generator: N keep-alive connections, fixed duration, one JSON line out.

    python bench/loadgen.py URL -c 8 -d 5 -w 1 [--stream] [--client aiohttp|httpx|thrifty]
                            [--payload small|tools] [--cpu-pid gateway=1234 ...] [-H 'K: V']

Each connection POSTs the chat body back to back (a new request as soon as the previous answer
has been read completely). Nothing is recorded during the warm-up; after it (and after the
servers went quiet again, see below) the same connections start the measured window. The CPU of
every ``--cpu-pid`` (utime+stime from /proc, the process and its descendants) is sampled at the
start and the end of the measured window, so ``cpu_ms_per_req`` covers exactly the requests
counted. After the load the servers' CPU is watched until they are quiet again
(``cpu_ms_per_req_drained``: includes write-behind work such as a ledger queue that was still
being flushed, at most ``--drain-max`` s). The load generator's own CPU per request
(``client_cpu_us_per_req``, ``time.process_time``) is what section (b) of ``choices.py``
compares between HTTP clients. ``background_cores`` is the CPU the rest of the machine used
during the window (busy time from /proc/stat minus the sampled servers and this process): a
noisy neighbour shows there.

``--unique`` appends a counter to the last message of every request so that a response cache
in front of the upstream misses (the cache-miss path); without it every request is identical.

With ``--stream``: ``ttfb`` is when the response headers arrived, ``ttft`` the first chunk
carrying non-empty ``content``, and a response counts only if it ends with ``data: [DONE]``.
Only loopback targets are allowed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
import time
from typing import Any
from urllib.parse import urlsplit

from _common import cpu_seconds, cpu_split, pct, system_cpu
from payloads import body_bytes, unique_bodies

_CONTENT = re.compile(rb'"content":"[^"]')


class State:
    def __init__(self) -> None:
        self.measure_from = float("inf")
        self.stop = False
        self.lat: list[float] = []
        self.ttfb: list[float] = []
        self.ttft: list[float] = []
        self.done_in_window = 0
        self.errors = 0
        self.samples: list[str] = []

    def error(self, what: str) -> None:
        self.errors += 1
        if len(self.samples) < 3:
            self.samples.append(what[:300])

    def ok(self, t0: float, t1: float, ttfb: float | None = None, ttft: float | None = None):
        if t1 >= self.measure_from:
            self.done_in_window += 1
        if t0 >= self.measure_from:
            self.lat.append(t1 - t0)
            if ttfb is not None:
                self.ttfb.append(ttfb - t0)
            if ttft is not None:
                self.ttft.append(ttft - t0)


async def aiohttp_worker(session: Any, url: str, body: Any, headers: dict, st: State, stream):
    while not st.stop:
        payload = body()
        t0 = time.perf_counter()
        try:
            async with session.post(url, data=payload, headers=headers) as resp:
                if stream:
                    ttfb = time.perf_counter()
                    ttft = None
                    buf = bytearray()
                    async for chunk in resp.content.iter_any():
                        if ttft is None and _CONTENT.search(chunk):
                            ttft = time.perf_counter()
                        buf += chunk
                    data = bytes(buf)
                else:
                    ttfb = ttft = None
                    data = await resp.read()
                status = resp.status
        except Exception as exc:
            st.error(repr(exc))
            await asyncio.sleep(0.01)
            continue
        t1 = time.perf_counter()
        if status != 200 or (stream and not data.rstrip().endswith(b"data: [DONE]")):
            st.error(f"{status} {data[:200]!r}")
            continue
        st.ok(t0, t1, ttfb, ttft)


async def _closed_loop(post: Any, body: Any, st: State) -> None:
    """Send ``body()`` with ``post(payload) -> (status, data)`` until told to stop (JSON only)."""
    while not st.stop:
        payload = body()
        t0 = time.perf_counter()
        try:
            status, data = await post(payload)
        except Exception as exc:
            st.error(repr(exc))
            await asyncio.sleep(0.01)
            continue
        t1 = time.perf_counter()
        if status != 200:
            st.error(f"{status} {data[:200]!r}")
            continue
        st.ok(t0, t1)


async def httpx_worker(client: Any, url: str, body: Any, headers: dict, st: State, stream):
    async def post(payload: bytes) -> tuple[int, bytes]:
        resp = await client.post(url, content=payload, headers=headers)
        return resp.status_code, resp.content

    await _closed_loop(post, body, st)


async def thrifty_worker(pool: Any, url: str, body: Any, headers: dict, st: State, stream):
    """Thrifty's own upstream client (``thrifty.providers.transport``), non-streaming."""
    from thrifty.providers.transport import encode_headers, split_url

    _, target = split_url(url)
    lines = encode_headers(headers)

    async def post(payload: bytes) -> tuple[int, bytes]:
        resp = await pool.request("POST", target, lines, payload)
        return resp.status, await resp.read()

    await _closed_loop(post, body, st)


async def drain(pids: dict[str, str], limit: float) -> tuple[dict[str, float], float]:
    """After the load: wait until every server is quiet (< 2% of a core over 0.25 s, i.e. its
    write-behind work is done) or ``limit`` seconds passed; return their CPU totals then."""
    t0 = time.perf_counter()
    last = {name: cpu_seconds(int(pid)) for name, pid in pids.items()}
    while pids and time.perf_counter() - t0 < limit:
        await asyncio.sleep(0.25)
        now = {name: cpu_seconds(int(pid)) for name, pid in pids.items()}
        busy = any(now[k] - last[k] > 0.005 for k in now)
        last = now
        if not busy:
            break
    return last, time.perf_counter() - t0


async def run(a: argparse.Namespace) -> dict[str, Any]:
    if a.unique:
        body = unique_bodies(a.payload, stream=a.stream, tag=os.urandom(4).hex())
    else:
        fixed = body_bytes(a.payload, stream=a.stream)
        body = lambda: fixed  # noqa: E731
    headers = {"content-type": "application/json", "authorization": f"Bearer {a.api_key}"}
    for h in a.header:
        k, _, v = h.partition(":")
        headers[k.strip().lower()] = v.strip()
    st = State()
    if a.client == "aiohttp":
        import aiohttp

        connector = aiohttp.TCPConnector(limit=a.connections, force_close=False)
        session: Any = aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=60)
        )
        worker: Any = aiohttp_worker
    elif a.client == "thrifty":
        from thrifty.providers.transport import Pool, split_url

        session = Pool(split_url(a.url)[0], limit=a.connections)
        worker = thrifty_worker
    else:
        import httpx

        limits = httpx.Limits(
            max_connections=a.connections, max_keepalive_connections=a.connections
        )
        session = httpx.AsyncClient(limits=limits, timeout=60)
        worker = httpx_worker
    pids = dict(p.split("=", 1) for p in a.cpu_pid)
    try:
        if a.warmup > 0:  # warm up, then let the servers finish their deferred work
            warm = State()
            tasks = [
                asyncio.ensure_future(worker(session, a.url, body, headers, warm, a.stream))
                for _ in range(a.connections)
            ]
            await asyncio.sleep(a.warmup)
            warm.stop = True
            await asyncio.gather(*tasks)
            await drain(pids, a.drain_max)
        cpu0 = {name: cpu_split(int(pid)) for name, pid in pids.items()}
        pt0 = time.process_time()
        sys0 = system_cpu()
        st.measure_from = t_start = time.perf_counter()
        tasks = [
            asyncio.ensure_future(worker(session, a.url, body, headers, st, a.stream))
            for _ in range(a.connections)
        ]
        await asyncio.sleep(a.duration)
        st.stop = True
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - t_start
        pt1 = time.process_time()
        sys1 = system_cpu()
        cpu1 = {name: cpu_split(int(pid)) for name, pid in pids.items()}
        drained, drain_s = await drain(pids, a.drain_max)
    finally:
        if a.client in ("aiohttp", "thrifty"):
            await session.close()
        else:
            await session.aclose()
    n = st.done_in_window
    lat = sorted(x * 1000 for x in st.lat)
    out: dict[str, Any] = {
        "url": a.url,
        "client": a.client,
        "connections": a.connections,
        "stream": a.stream,
        "payload": a.payload,
        "duration_s": round(elapsed, 3),
        "requests": n,
        "errors": st.errors,
        "rps": round(n / elapsed, 1),
        "p50_ms": round(pct(lat, 50), 3),
        "p90_ms": round(pct(lat, 90), 3),
        "p99_ms": round(pct(lat, 99), 3),
        "mean_ms": round(sum(lat) / len(lat), 3) if lat else None,
        "max_ms": round(lat[-1], 3) if lat else None,
        "client_cpu_us_per_req": round((pt1 - pt0) * 1e6 / n, 1) if n else None,
    }
    used = {name: {k: cpu1[name][k] - cpu0[name][k] for k in cpu0[name]} for name in pids}
    out["cpu_ms_per_req"] = {
        name: round(sum(u.values()) * 1000 / n, 4) if n else None for name, u in used.items()
    }
    out["cpu_split_ms_per_req"] = {
        name: {k: round(v * 1000 / n, 4) if n else None for k, v in u.items()}
        for name, u in used.items()
    }
    out["cpu_util"] = {name: round(sum(u.values()) / elapsed, 3) for name, u in used.items()}
    # CPU used on the machine by anything else (other processes: a noisy neighbour shows here).
    ours = sum(sum(u.values()) for u in used.values()) + (pt1 - pt0)
    out["background_cores"] = round(max(0.0, sys1[0] - sys0[0] - ours) / elapsed, 3)
    out["steal_cores"] = round((sys1[1] - sys0[1]) / elapsed, 3)
    # Work the servers finished after the load stopped (write-behind queues), per request.
    out["cpu_ms_per_req_drained"] = {
        name: round((drained[name] - sum(cpu0[name].values())) * 1000 / n, 4) if n else None
        for name in pids
    }
    out["drain_s"] = round(drain_s, 2)
    if a.stream:
        for key, vals in (("ttfb", st.ttfb), ("ttft", st.ttft)):
            v = sorted(x * 1000 for x in vals)
            out[f"{key}_p50_ms"] = round(pct(v, 50), 3)
            out[f"{key}_p99_ms"] = round(pct(v, 99), 3)
    if st.samples:
        out["error_samples"] = st.samples
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("url", help="full URL, e.g. http://127.0.0.1:4000/v1/chat/completions")
    ap.add_argument("-c", "--connections", type=int, default=8)
    ap.add_argument("-d", "--duration", type=float, default=5.0, help="measured seconds")
    ap.add_argument("-w", "--warmup", type=float, default=1.0, help="unmeasured seconds first")
    ap.add_argument("-H", "--header", action="append", default=[], help="extra header 'K: V'")
    ap.add_argument("--api-key", default="sk-bench")
    ap.add_argument("--payload", choices=("small", "tools"), default="small")
    ap.add_argument("--client", choices=("aiohttp", "httpx", "thrifty"), default="aiohttp")
    ap.add_argument("--stream", action="store_true")
    ap.add_argument(
        "--unique",
        action="store_true",
        help="make every body unique (a counter in the last message): response caches miss",
    )
    ap.add_argument("--cpu-pid", action="append", default=[], help="name=pid to sample")
    ap.add_argument(
        "--drain-max",
        type=float,
        default=30.0,
        help="max seconds to wait for the servers to go quiet after the load (0: don't wait)",
    )
    a = ap.parse_args()
    a.duration = min(max(a.duration, 0.5), 600.0)
    host = urlsplit(a.url).hostname or ""
    if not (host.startswith("127.") or host in ("localhost", "::1")):
        sys.exit(f"refusing non-loopback target {host}")
    if a.stream and a.client != "aiohttp":
        sys.exit("--stream needs --client aiohttp")
    try:
        import uvloop

        runner: Any = asyncio.Runner(loop_factory=uvloop.new_event_loop)
    except ImportError:  # pragma: no cover
        runner = asyncio.Runner()
    with runner:
        print(json.dumps(runner.run(run(a))), flush=True)


if __name__ == "__main__":
    main()
