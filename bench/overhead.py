"""What Thrifty adds to a request: direct-to-upstream vs through the gateway, side by side.

    .venv/bin/python bench/overhead.py                      # ~3 min: 3 rounds of (1, 8, 64) + SSE
    .venv/bin/python bench/overhead.py --duration 15 --rounds 5 --floor   # longer, + the floor
    .venv/bin/python bench/overhead.py --cache-hit --config-variant "cache: {disk_path: null}"

Set-up (all by the script, in a temp dir, loopback only): the mock upstream
(``bench/mock_upstream.py``), a config with one ``openai`` provider pointing at it and the model
``gpt-4o-mini``, a SQLite database, a virtual key from ``thrifty keys create`` (auth on, the
default), and ``thrifty serve`` (1 worker) once ``/readyz`` answers. ``--floor`` adds a bare
raw-ASGI pass-through proxy (``bench/floor_proxy.py``) as a third target: the Python floor.
``--echo-floor`` adds ``bench/echo_app.py`` under the same uvicorn: it parses the JSON body and
answers it back, with no upstream, so its CPU is what the server alone costs per request on this
host: the floor under an exact cache hit. With it, the report also prints each gateway target's
CPU per request over the floor (paired by round): Thrifty's own work, comparable across hosts.

Every request body is unique (a counter in the last message), so Thrifty's response cache
misses: the table is the cache-miss path (lookup, upstream call, storing the answer).
``--cache-hit`` adds, for Thrifty and each variant, a target with identical bodies, answered from
its cache;
``--config-variant YAML`` adds a Thrifty whose config has that YAML too (its own directory and
database), e.g. ``"cache: {disk_path: null}"``; ``--variant=--gc-freeze`` adds a Thrifty started
by ``bench/serve_variant.py`` with that process tweak; ``--baseline-src DIR`` adds a Thrifty
running another checkout's code (``git worktree add DIR <commit>``; its ``src`` first on
``PYTHONPATH``, named ``thrifty@<commit>``), to compare a change with the code before it in one
run. All targets share the rounds.

Measurement: ``bench/loadgen.py`` in a separate process (aiohttp, keep-alive, closed loop,
warm-up then a fixed window). Targets are interleaved within each round (their order alternates
between rounds) and the table shows the median across rounds; "added" is the median of the
per-round differences to ``direct``. Gateway CPU per request is utime+stime of the
``thrifty serve`` process and its children from /proc over exactly the measured window.
Results are printed as markdown and appended to ``bench/results/overhead.jsonl``.
"""

from __future__ import annotations

import argparse
import contextlib
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _common import (
    BENCH_DIR,
    PYTHON,
    fmt,
    free_port,
    git_commit,
    machine,
    markdown_table,
    med,
    rss_mb,
    run_loadgen,
    save_results,
    started,
    versions,
)

CHAT_PATH = "/v1/chat/completions"
UVICORN = [PYTHON, "-m", "uvicorn", "--loop", "uvloop", "--http", "httptools", "--no-access-log"]
UVICORN += ["--log-level", "warning"]


def thrifty_cmd() -> list[str]:
    exe = Path(PYTHON).with_name("thrifty")
    if exe.exists():
        return [str(exe)]
    return [PYTHON, "-c", "from thrifty.cli.main import app; app()"]


def write_config(tmp: Path, upstream_port: int, port: int, extra: str = "") -> Path:
    cfg = tmp / "thrifty.yaml"
    cfg.write_text(
        f"""\
server:
  host: 127.0.0.1
  port: {port}
database:
  url: sqlite+aiosqlite:///{tmp}/thrifty.db
pricing:
  catalog_file: null
providers:
  mock:
    kind: openai
    base_url: http://127.0.0.1:{upstream_port}/v1
    api_key: sk-mock-upstream
models:
  - name: gpt-4o-mini
    provider: mock
    model: gpt-4o-mini
"""
        + (extra.strip() + "\n" if extra else "")
    )
    return cfg


def create_key(cfg: Path, cwd: Path) -> str:
    import subprocess

    out = subprocess.run(
        [*thrifty_cmd(), "keys", "create", "--tenant", "bench", "--config", str(cfg)],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
        check=False,
    )
    keys = [ln.strip() for ln in out.stdout.splitlines() if ln.strip().startswith("tk-")]
    if out.returncode != 0 or not keys:
        raise RuntimeError(f"thrifty keys create failed: {out.stdout}\n{out.stderr}")
    return keys[-1]


@dataclass
class Target:
    name: str
    base: str
    pids: dict[str, int]
    proc_pid: int | None = None  # the process whose CPU is "the gateway's"
    key: str = "sk-direct"
    unique: bool = True  # every body unique: response caches miss


def _gateway(
    es: contextlib.ExitStack,
    tmp: Path,
    mport: int,
    extra_config: str,
    variant: str | None,
    src: Path | None = None,
) -> tuple[int, int, str]:
    """Config, key and a running gateway in ``tmp``: ``thrifty serve``, or for a variant
    ``bench/serve_variant.py <variant flags>``; ``src`` runs the ``thrifty`` package of another
    checkout (its ``src`` first on ``PYTHONPATH``). Returns (pid, port, key)."""
    tmp.mkdir(parents=True, exist_ok=True)
    port = free_port()
    cfg = write_config(tmp, mport, port, extra_config)
    key = create_key(cfg, tmp)
    if variant is None:
        cmd = [*thrifty_cmd(), "serve", "--config", str(cfg), "--port", str(port)]
    else:
        cmd = [PYTHON, str(BENCH_DIR / "serve_variant.py"), "--port", str(port), *variant.split()]
    env = {"THRIFTY_CONFIG": str(cfg)}
    if src is not None:
        env["PYTHONPATH"] = str(src / "src")
    proc = es.enter_context(
        started(
            cmd,
            log=tmp / "thrifty.log",
            ready_url=f"http://127.0.0.1:{port}/readyz",
            cwd=tmp,
            env=env,
        )
    )
    return proc.pid, port, key


def _checkout_name(src: Path) -> str:
    """``thrifty@<short commit>`` of another checkout (its directory name if not a git one)."""
    out = subprocess.run(
        ["git", "-C", str(src), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    )
    return f"thrifty@{out.stdout.strip() or src.name}"


@contextlib.contextmanager
def stack(
    tmp: Path,
    *,
    floor: bool = False,
    mock_args: tuple[str, ...] = (),
    extra_config: str = "",
    variants: tuple[str, ...] = (),
    config_variants: tuple[str, ...] = (),
    baselines: tuple[Path, ...] = (),
    cache_hit: bool = False,
    echo_floor: bool = False,
) -> Iterator[tuple[list[Target], str]]:
    """Start the mock upstream, Thrifty (its variants, the floor proxy); yield the targets and
    Thrifty's key. Each gateway gets its own directory, config and SQLite database."""
    mport = free_port()
    with contextlib.ExitStack() as es:
        mock = es.enter_context(
            started(
                [PYTHON, str(BENCH_DIR / "mock_upstream.py"), "--port", str(mport), *mock_args],
                log=tmp / "mock.log",
                ready_url=f"http://127.0.0.1:{mport}/health",
            )
        )
        up = {"upstream": mock.pid}
        pid, port, key = _gateway(es, tmp / "thrifty", mport, extra_config, None)
        targets = [
            Target("direct", f"http://127.0.0.1:{mport}", up),
            Target("thrifty", f"http://127.0.0.1:{port}", {"gateway": pid, **up}, pid, key),
        ]
        for i, variant in enumerate(variants):
            vpid, vport, vkey = _gateway(es, tmp / f"variant{i}", mport, extra_config, variant)
            name = "thrifty " + variant.replace("--", "").replace(" ", "=")
            targets.append(
                Target(name, f"http://127.0.0.1:{vport}", {"gateway": vpid, **up}, vpid, vkey)
            )
        for i, cfg in enumerate(config_variants):
            merged = f"{extra_config.strip()}\n{cfg.strip()}"
            vpid, vport, vkey = _gateway(es, tmp / f"config{i}", mport, merged, None)
            name = "thrifty `" + " ".join(cfg.split()) + "`"
            targets.append(
                Target(name, f"http://127.0.0.1:{vport}", {"gateway": vpid, **up}, vpid, vkey)
            )
        for i, src in enumerate(baselines):
            bpid, bport, bkey = _gateway(es, tmp / f"baseline{i}", mport, extra_config, None, src)
            targets.append(
                Target(
                    _checkout_name(src),
                    f"http://127.0.0.1:{bport}",
                    {"gateway": bpid, **up},
                    bpid,
                    bkey,
                )
            )
        if cache_hit:  # the same gateways, identical bodies: answered from their response cache
            for t in list(targets[1:]):
                targets.append(
                    Target(f"{t.name} cache-hit", t.base, t.pids, t.proc_pid, t.key, False)
                )
        floors = [("floor", "floor_proxy:app")] if floor else []
        floors += [("uvicorn echo", "echo_app:app")] if echo_floor else []
        for name, app in floors:
            fport = free_port()
            fl = es.enter_context(
                started(
                    [*UVICORN, app, "--app-dir", str(BENCH_DIR), "--port", str(fport)],
                    log=tmp / f"{app.split(':')[0]}.log",
                    ready_url=f"http://127.0.0.1:{fport}/",
                    env={"FLOOR_UPSTREAM": f"http://127.0.0.1:{mport}/v1"},
                )
            )
            pids = {"gateway": fl.pid, **up} if app.startswith("floor") else {"gateway": fl.pid}
            targets.append(Target(name, f"http://127.0.0.1:{fport}", pids, fl.pid))
        yield targets, key


def measure(a: argparse.Namespace) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    mock_args = ("--chunks", str(a.chunks), "--chunk-delay-ms", str(a.chunk_delay_ms))
    with tempfile.TemporaryDirectory(prefix="thrifty-bench-") as d:
        tmp = Path(d)
        t_setup = time.monotonic()
        with stack(
            tmp,
            floor=a.floor,
            mock_args=mock_args,
            extra_config=a.config_extra,
            variants=tuple(a.variant),
            config_variants=tuple(a.config_variant),
            baselines=tuple(Path(p).resolve() for p in a.baseline_src),
            cache_hit=a.cache_hit,
            echo_floor=a.echo_floor,
        ) as (targets, _):
            names = ", ".join(f"{t.name}={t.base}" for t in targets)
            log(f"set-up {time.monotonic() - t_setup:.1f}s; targets: {names}")
            plan = [(c, False) for c in a.connections]
            if a.stream_connections:
                plan.append((a.stream_connections, True))
            for rnd in range(1, a.rounds + 1):
                order = targets if rnd % 2 else targets[::-1]
                for c, stream in plan:
                    for t in order:
                        if stream and t.name == "uvicorn echo":
                            continue  # it answers JSON, not SSE
                        r = run_loadgen(
                            t.base + CHAT_PATH,
                            connections=c,
                            duration=a.duration,
                            warmup=a.warmup,
                            cpu_pids=t.pids,
                            headers=[f"Authorization: Bearer {t.key}"],
                            payload=a.payload,
                            stream=stream,
                            unique=t.unique,
                        )
                        rec = {"target": t.name, "round": rnd, **r}
                        if t.proc_pid:
                            rec["rss_mb"] = round(rss_mb(t.proc_pid), 1)
                        records.append(rec)
                        log(
                            f"round {rnd} {t.name:8s} c={c:<3d} {'SSE ' if stream else ''}"
                            f"rps={r['rps']:8.1f} p50={r['p50_ms']:.3f} p99={r['p99_ms']:.3f} "
                            f"gwcpu={r['cpu_ms_per_req'].get('gateway')} "
                            f"(+deferred {r['cpu_ms_per_req_drained'].get('gateway')}, "
                            f"drain {r['drain_s']}s) errors={r['errors']}"
                        )
                        if r["errors"]:
                            log(f"  errors: {r.get('error_samples')}")
    return records


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _by(records: list[dict[str, Any]], target: str, c: int, stream: bool) -> list[dict]:
    return [
        r
        for r in records
        if r["target"] == target and r["connections"] == c and r["stream"] == stream
    ]


def _paired_delta(records: list[dict], target: str, c: int, stream: bool, key: str):
    """Median over rounds of (target - direct) measured in the same round."""
    base = {r["round"]: r[key] for r in _by(records, "direct", c, stream)}
    rs = _by(records, target, c, stream)
    return med([r[key] - base[r["round"]] for r in rs if r["round"] in base])


def _cpu_values(rs: list[dict], field: str = "cpu_ms_per_req", name: str = "gateway"):
    return [r[field].get(name) for r in rs if r.get(field, {}).get(name) is not None]


def _cpu(rs: list[dict], field: str = "cpu_ms_per_req") -> str:
    """``median (min to max)`` of the gateway's CPU ms per request across rounds."""
    vals = _cpu_values(rs, field)
    if not vals:
        return "-"
    m = med(vals)
    return f"{m:.3f} ({min(vals):.3f}-{max(vals):.3f})" if len(vals) > 1 else f"{m:.3f}"


def _split(rs: list[dict]) -> str:
    """Median gateway CPU ms/req on the event-loop thread / on other threads."""
    split = [r["cpu_split_ms_per_req"].get("gateway") for r in rs]
    split = [x for x in split if x]
    if not split:
        return "-"
    loop = med([x["main"] for x in split])
    other = max(0.0, med([x["threads"] + x["children"] for x in split]) or 0.0)
    return f"{fmt(loop, 3)} / {fmt(other, 3)}"


def _row(records: list[dict], n: str, c: int, stream: bool) -> list[Any]:
    rs = _by(records, n, c, stream)
    direct = n == "direct"

    def added(key: str) -> str:
        return "" if direct else fmt(_paired_delta(records, n, c, stream, key), 3, True)

    cells: list[Any] = [c, n, fmt(med([r["rps"] for r in rs]), 0)]
    if stream:
        cells += [
            fmt(med([r["ttfb_p50_ms"] for r in rs]), 3),
            fmt(med([r["ttft_p50_ms"] for r in rs]), 3),
            fmt(med([r["p50_ms"] for r in rs]), 3),
            added("ttfb_p50_ms"),
            added("p50_ms"),
        ]
    else:
        cells += [
            fmt(med([r["p50_ms"] for r in rs]), 3),
            fmt(med([r["p99_ms"] for r in rs]), 3),
            added("p50_ms"),
            added("p99_ms"),
        ]
    cells += [
        "" if direct else _cpu(rs),
        "" if direct else _split(rs),
        "" if direct else _cpu(rs, "cpu_ms_per_req_drained"),
        sum(r["errors"] for r in rs),
    ]
    return cells


def _over_floor(records: list[dict], names: list[str], c: int) -> str:
    """``c conns: thrifty +0.300, thrifty cache-hit +0.140 ms``: each gateway target's CPU per
    request minus the echo floor's, paired by round (empty without ``--echo-floor``)."""
    floor = {r["round"]: _cpu_values([r]) for r in _by(records, "uvicorn echo", c, False)}
    parts = []
    for n in names:
        if n in ("direct", "uvicorn echo", "floor"):
            continue
        deltas = [
            v[0] - floor[r["round"]][0]
            for r in _by(records, n, c, False)
            if (v := _cpu_values([r])) and floor.get(r["round"])
        ]
        if deltas:
            parts.append(f"{n} {fmt(med(deltas), 3, True)}")
    return f"{c} conns: " + ", ".join(parts) + " ms" if parts else ""


JSON_HEADERS = ["conns", "target", "rps", "p50 ms", "p99 ms", "added p50 ms", "added p99 ms"]
SSE_HEADERS = ["conns", "target", "rps", "TTFB p50 ms", "TTFT p50 ms", "total p50 ms"]
SSE_HEADERS += ["added TTFB p50", "added total p50"]
CPU_HEADERS = [
    "gateway CPU ms/req",
    "loop / other threads",
    "incl. deferred work",
    "errors",
]


def report(records: list[dict[str, Any]], a: argparse.Namespace) -> str:
    names = list(dict.fromkeys(r["target"] for r in records))
    rows = [
        _row(records, n, c, False)
        for c in a.connections
        for n in names
        if _by(records, n, c, False)
    ]
    out = [
        f"Non-streaming, payload `{a.payload}`, {a.rounds} rounds of {a.duration:g} s "
        f"(+{a.warmup:g} s warm-up); medians across rounds; added = median of the per-round "
        "differences to `direct`; CPU = median (min-max) over rounds.",
        "",
        markdown_table(
            [*JSON_HEADERS, *CPU_HEADERS],
            rows,
        ),
    ]
    floor = [_over_floor(records, names, c) for c in a.connections]
    if any(floor):
        out += [
            "",
            "Gateway CPU over the bare server (`uvicorn echo`, median of the per-round "
            "differences): what Thrifty's own work costs per request on this host.",
            "",
            *(f"- {line}" for line in floor if line),
        ]
    sc = a.stream_connections
    if sc:
        srows = [_row(records, n, sc, True) for n in names if _by(records, n, sc, True)]
        out += [
            "",
            f"Streaming (SSE, {a.chunks} content chunks, {a.chunk_delay_ms:g} ms apart), "
            f"{sc} connections:",
            "",
            markdown_table(
                [*SSE_HEADERS, *CPU_HEADERS],
                srows,
            ),
        ]
    up = med([v for r in records for v in _cpu_values([r], name="upstream")])
    rss = [r["rss_mb"] for r in records if r["target"] == "thrifty" and "rss_mb" in r]
    drain = max((r.get("drain_s", 0) for r in records if r["target"] == "thrifty"), default=0)
    bg = [r["background_cores"] for r in records if "background_cores" in r]
    out += [
        "",
        f"Other processes on the machine used {fmt(med(bg), 2)} cores (median; max "
        f"{max(bg, default=0):.2f}) during the measured windows. "
        f"Mock upstream CPU: {fmt(up, 3)} ms/req (median). Thrifty RSS after the runs: "
        f"{max(rss, default=0):.0f} MB. Longest wait for Thrifty to go quiet after a run: "
        f"{drain:.1f} s.",
    ]
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--duration", type=float, default=5.0, help="measured seconds per run")
    ap.add_argument("--warmup", type=float, default=1.0, help="warm-up seconds per run")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds (>= 2)")
    ap.add_argument("--connections", default="1 8 64", help='e.g. "1 8 64"')
    ap.add_argument("--stream-connections", type=int, default=8, help="0 skips the SSE run")
    ap.add_argument("--chunks", type=int, default=20, help="SSE content chunks per answer")
    ap.add_argument("--chunk-delay-ms", type=float, default=0.0)
    ap.add_argument("--payload", choices=("small", "tools"), default="small")
    ap.add_argument("--floor", action="store_true", help="also measure the bare ASGI proxy")
    ap.add_argument(
        "--echo-floor",
        action="store_true",
        help="also measure uvicorn answering with no app work (bench/echo_app.py)",
    )
    ap.add_argument(
        "--cache-hit",
        action="store_true",
        help="also run Thrifty with identical bodies (answered from its response cache)",
    )
    ap.add_argument(
        "--config-extra",
        default="",
        help='YAML appended to the generated config, e.g. "ledger: {batch_size: 50}"',
    )
    ap.add_argument(
        "--variant",
        action="append",
        default=[],
        help='extra gateway target run by bench/serve_variant.py, e.g. "--gc-freeze" (repeatable)',
    )
    ap.add_argument(
        "--config-variant",
        action="append",
        default=[],
        help="extra Thrifty target with this YAML added to its config, e.g. "
        '"cache: {disk_path: null}" (repeatable)',
    )
    ap.add_argument(
        "--baseline-src",
        action="append",
        default=[],
        help="extra Thrifty target running another checkout's code, e.g. one made by "
        '"git worktree add /tmp/base HEAD~1" (repeatable; named thrifty@<commit>)',
    )
    ap.add_argument("--no-save", action="store_true", help="don't append to bench/results/")
    a = ap.parse_args()
    a.connections = [int(c) for c in a.connections.split()]
    a.rounds = max(2, a.rounds)
    info = {**machine(), **versions("thrifty", "uvicorn", "uvloop", "httptools", "aiohttp")}
    info["commit"] = git_commit()
    log(f"machine: {info}")
    records = measure(a)
    print(report(records, a))
    print(f"\nMachine: {info}")
    if not a.no_save:
        path = save_results("overhead", [{"machine": info, **r} for r in records])
        log(f"raw results appended to {path}")


if __name__ == "__main__":
    main()
