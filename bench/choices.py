"""The measurements behind the hot-path stack choices, each side by side in one run.

    .venv/bin/python bench/choices.py                  # all three, ~2 min
    .venv/bin/python bench/choices.py --only json      # json | client | server
    .venv/bin/python bench/choices.py --duration 10 --rounds 5 --connections "1 8 64"

(a) JSON codec: orjson vs stdlib ``json`` vs msgspec (untyped ``msgspec.json``), loads + dumps
    of a realistic ~2 KB chat request with tools and of a ``chat.completion`` answer, µs per
    op (best of several repeats: a CPU-bound micro-benchmark, so the minimum is the signal).
(b) Upstream HTTP client: aiohttp ``ClientSession`` vs ``httpx.AsyncClient`` vs Thrifty's own
    keep-alive pool (``thrifty.providers.transport``, asyncio + httptools) POSTing the chat
    body to the mock upstream (``bench/loadgen.py --client``, uvloop, keep-alive, N concurrent),
    the client process's CPU µs per request (``time.process_time`` over the window) and rps.
(c) ASGI server: the same raw-ASGI JSON echo app (``bench/echo_app.py``) under uvicorn with
    uvloop + httptools, uvicorn with uvloop + h11, and granian (``--interface asgi``, 1 worker,
    uvloop), driven by ``bench/loadgen.py``: rps, latency and server CPU per request (/proc,
    the server and its worker processes).
Networked measurements interleave the candidates over ``--rounds`` rounds (order alternating)
and report medians. Results are appended to ``bench/results/choices.jsonl``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec
import orjson
from _common import (
    BENCH_DIR,
    PYTHON,
    fmt,
    free_port,
    machine,
    markdown_table,
    med,
    run_loadgen,
    save_results,
    started,
    versions,
)
from payloads import COMPLETION, TOOLS_CHAT, body_bytes


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# -- (a) JSON codecs ---------------------------------------------------------------------------
def _best_us(fn: Callable[[], Any], budget_s: float, repeats: int = 7) -> float:
    """Best per-call time in µs over ``repeats`` timed loops sized to ~budget_s/repeats each."""
    n, t = 1, 0.0
    while t < 0.01:  # calibrate
        n *= 2
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        t = time.perf_counter() - t0
    loops = max(1, int(n * (budget_s / repeats) / t))
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(loops):
            fn()
        best = min(best, (time.perf_counter() - t0) / loops)
    return best * 1e6


def bench_json(budget_s: float) -> list[dict[str, Any]]:
    dec, enc = msgspec.json.Decoder(), msgspec.json.Encoder()
    codecs: dict[str, tuple[Callable[[bytes], Any], Callable[[Any], bytes]]] = {
        "orjson": (orjson.loads, orjson.dumps),
        "json (stdlib)": (json.loads, lambda o: json.dumps(o, separators=(",", ":")).encode()),
        "msgspec.json": (dec.decode, enc.encode),
    }
    docs = {
        "request (tools)": json.dumps(TOOLS_CHAT, separators=(",", ":")).encode(),
        "response": json.dumps(COMPLETION, separators=(",", ":")).encode(),
    }
    out = []
    for doc_name, raw in docs.items():
        obj = json.loads(raw)
        for name, (loads, dumps) in codecs.items():
            assert loads(raw) == obj and json.loads(dumps(obj)) == obj, name
            out.append(
                {
                    "section": "json",
                    "codec": name,
                    "doc": doc_name,
                    "bytes": len(raw),
                    "loads_us": _best_us(lambda r=raw, f=loads: f(r), budget_s),
                    "dumps_us": _best_us(lambda o=obj, f=dumps: f(o), budget_s),
                }
            )
            log(f"json {doc_name:16s} {name:14s} {out[-1]['loads_us']:.2f} / "
                f"{out[-1]['dumps_us']:.2f} µs")  # fmt: skip
    return out


def report_json(rows: list[dict[str, Any]]) -> str:
    docs = list(dict.fromkeys(r["doc"] for r in rows))
    table = []
    for codec in dict.fromkeys(r["codec"] for r in rows):
        cells: list[Any] = [codec]
        total = 0.0
        for d in docs:
            r = next(x for x in rows if x["codec"] == codec and x["doc"] == d)
            cells += [fmt(r["loads_us"], 2), fmt(r["dumps_us"], 2)]
            total += r["loads_us"] + r["dumps_us"]
        cells.append(fmt(total, 2))
        table.append(cells)
    sizes = ", ".join(f"{d} {next(r['bytes'] for r in rows if r['doc'] == d)} B" for d in docs)
    head = ["codec"]
    for d in docs:
        head += [f"{d} loads µs", f"{d} dumps µs"]
    head.append("sum µs (one request + one answer)")
    return f"(a) JSON codecs ({sizes}; best of 7):\n\n" + markdown_table(head, table)


# -- (b) upstream HTTP clients -----------------------------------------------------------------
def bench_clients(a: argparse.Namespace, tmp: Path) -> list[dict[str, Any]]:
    port = free_port()
    out = []
    clients = ["aiohttp", "httpx", "thrifty"]
    with started(
        [PYTHON, str(BENCH_DIR / "mock_upstream.py"), "--port", str(port)],
        log=tmp / "mock.log",
        ready_url=f"http://127.0.0.1:{port}/health",
    ) as mock:
        for rnd in range(1, a.rounds + 1):
            for c in a.connections:
                for client in clients if rnd % 2 else clients[::-1]:
                    r = run_loadgen(
                        f"http://127.0.0.1:{port}/v1/chat/completions",
                        connections=c,
                        duration=a.duration,
                        warmup=a.warmup,
                        cpu_pids={"upstream": mock.pid},
                        payload="tools",
                        client=client,
                        drain_max=5,
                    )
                    out.append({"section": "client", "round": rnd, **r})
                    log(f"client round {rnd} {client:8s} c={c:<3d} rps={r['rps']:8.1f} "
                        f"client CPU {r['client_cpu_us_per_req']} µs/req")  # fmt: skip
    return out


def background(rows: list[dict[str, Any]]) -> str:
    bg = [r["background_cores"] for r in rows if "background_cores" in r]
    if not bg:
        return ""
    return (
        f"\n\nOther processes used {fmt(med(bg), 2)} cores (median; max {max(bg):.2f}) "
        "during these windows."
    )


def report_clients(rows: list[dict[str, Any]], a: argparse.Namespace) -> str:
    table = []
    for c in a.connections:
        for client in dict.fromkeys(r["client"] for r in rows):
            rs = [r for r in rows if r["client"] == client and r["connections"] == c]
            table.append(
                [
                    c,
                    client,
                    fmt(med([r["client_cpu_us_per_req"] for r in rs]), 1),
                    fmt(med([r["rps"] for r in rs]), 0),
                    fmt(med([r["p50_ms"] for r in rs]), 3),
                    fmt(med([r["p99_ms"] for r in rs]), 3),
                    sum(r["errors"] for r in rs),
                ]
            )
    return (
        f"(b) Upstream HTTP client, POST of the ~2 KB tools request to the mock upstream, "
        f"median of {a.rounds} rounds of {a.duration:g} s:\n\n"
        + markdown_table(
            ["conns", "client", "client CPU µs/req", "rps", "p50 ms", "p99 ms", "errors"], table
        )
        + background(rows)
    )


# -- (c) ASGI servers --------------------------------------------------------------------------
def server_cmds(port: int) -> dict[str, list[str]]:
    uvicorn = [PYTHON, "-m", "uvicorn", "echo_app:app", "--app-dir", str(BENCH_DIR)]
    uvicorn += ["--port", str(port), "--loop", "uvloop", "--no-access-log", "--log-level"]
    uvicorn += ["warning"]
    granian = [str(Path(PYTHON).with_name("granian")), "--interface", "asgi", "--workers", "1"]
    granian += ["--loop", "uvloop", "--no-ws", "--http", "1", "--log-level", "warning"]
    granian += ["--no-access-log", "--host", "127.0.0.1", "--port", str(port)]
    granian += ["--working-dir", str(BENCH_DIR), "echo_app:app"]
    return {
        "uvicorn (uvloop + httptools)": [*uvicorn, "--http", "httptools"],
        "uvicorn (uvloop + h11)": [*uvicorn, "--http", "h11"],
        "granian (asgi, 1 worker)": granian,
    }


@contextlib.contextmanager
def servers(tmp: Path) -> Iterator[dict[str, tuple[str, int]]]:
    """Start every server at once on its own port; yield name -> (url, pid)."""
    with contextlib.ExitStack() as es:
        out = {}
        for i, name in enumerate(server_cmds(0)):
            port = free_port()
            proc = es.enter_context(
                started(
                    server_cmds(port)[name],
                    log=tmp / f"server{i}.log",
                    ready_url=f"http://127.0.0.1:{port}/",
                )
            )
            out[name] = (f"http://127.0.0.1:{port}/", proc.pid)
        yield out


def bench_servers(a: argparse.Namespace, tmp: Path) -> list[dict[str, Any]]:
    out = []
    with servers(tmp) as srv:
        names = list(srv)
        for rnd in range(1, a.rounds + 1):
            for c in a.connections:
                for name in names if rnd % 2 else names[::-1]:
                    url, pid = srv[name]
                    r = run_loadgen(
                        url,
                        connections=c,
                        duration=a.duration,
                        warmup=a.warmup,
                        cpu_pids={"server": pid},
                        payload="tools",
                        drain_max=5,
                    )
                    out.append({"section": "server", "server": name, "round": rnd, **r})
                    log(f"server round {rnd} {name:30s} c={c:<3d} rps={r['rps']:8.1f} "
                        f"cpu={r['cpu_ms_per_req']['server']} ms/req")  # fmt: skip
    return out


def report_servers(rows: list[dict[str, Any]], a: argparse.Namespace) -> str:
    table = []
    for c in a.connections:
        for name in dict.fromkeys(r["server"] for r in rows):
            rs = [r for r in rows if r["server"] == name and r["connections"] == c]
            cpu = [r["cpu_ms_per_req"]["server"] for r in rs]
            table.append(
                [
                    c,
                    name,
                    fmt(med(cpu), 3) + f" ({min(cpu):.3f}-{max(cpu):.3f})",
                    fmt(med([r["rps"] for r in rs]), 0),
                    fmt(med([r["p50_ms"] for r in rs]), 3),
                    fmt(med([r["p99_ms"] for r in rs]), 3),
                    sum(r["errors"] for r in rs),
                ]
            )
    return (
        f"(c) ASGI server, raw-ASGI JSON echo of the ~2 KB tools request, median of "
        f"{a.rounds} rounds of {a.duration:g} s (CPU: median (min-max)):\n\n"
        + markdown_table(
            ["conns", "server", "server CPU ms/req", "rps", "p50 ms", "p99 ms", "errors"], table
        )
        + background(rows)
    )


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--only", choices=("json", "client", "server"), action="append")
    ap.add_argument("--duration", type=float, default=4.0, help="measured seconds per run")
    ap.add_argument("--warmup", type=float, default=1.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--connections", default="8", help='e.g. "1 8 64"')
    ap.add_argument("--json-budget", type=float, default=0.7, help="seconds per JSON timing")
    ap.add_argument("--no-save", action="store_true")
    a = ap.parse_args()
    a.connections = [int(c) for c in a.connections.split()]
    a.rounds = max(2, a.rounds)
    parts = a.only or ["json", "client", "server"]
    info = {
        **machine(),
        **versions("orjson", "msgspec", "aiohttp", "httpx", "uvicorn", "httptools", "h11"),
        **versions("uvloop", "granian"),
    }
    log(f"machine: {info}; tools request {len(body_bytes('tools'))} B")
    records: list[dict[str, Any]] = []
    reports = []
    with tempfile.TemporaryDirectory(prefix="thrifty-choices-") as d:
        tmp = Path(d)
        if "json" in parts:
            rows = bench_json(a.json_budget)
            records += rows
            reports.append(report_json(rows))
        if "client" in parts:
            rows = bench_clients(a, tmp)
            records += rows
            reports.append(report_clients(rows, a))
        if "server" in parts:
            rows = bench_servers(a, tmp)
            records += rows
            reports.append(report_servers(rows, a))
    print("\n\n".join(reports))
    print(f"\nMachine: {info}")
    if not a.no_save:
        log(f"raw results appended to {save_results('choices', records)}")


if __name__ == "__main__":
    main()
