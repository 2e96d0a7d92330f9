"""Profile ``thrifty serve`` under load with py-spy and print where its CPU goes.

    .venv/bin/python bench/profile_gateway.py                 # 15 s at 8 connections, ~25 s
    .venv/bin/python bench/profile_gateway.py --stream        # the SSE path instead
    .venv/bin/python bench/profile_gateway.py --duration 30 --connections 64 --native

Same set-up as ``overhead.py`` (mock upstream, temp config, virtual key, 1 worker; unique bodies,
so the response cache misses, unless ``--cache-hit``). While
``bench/loadgen.py`` drives the gateway, ``py-spy record --format raw --function`` samples the
``thrifty serve`` process; the summary covers the event-loop thread, where nearly all the CPU
goes (``overhead.py``'s "loop / other threads" split from /proc). The collapsed stacks
are kept in ``bench/results/profile-*.txt`` (feed them to flamegraph.pl or speedscope.app) and
summarised here: self time by function, inclusive time of ``thrifty`` functions, and inclusive
time by package (a sample counts once for every package on its stack).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from _common import PYTHON, RESULTS_DIR, markdown_table, run_loadgen
from overhead import CHAT_PATH, stack


def _package(frame: str) -> str:
    """``func (aiohttp/client.py:12)`` → ``aiohttp``; ``func (threading.py:9)`` → ``threading``."""
    loc = frame.rpartition(" (")[2].rstrip(")")
    return loc.split("/", 1)[0].split(":", 1)[0].removesuffix(".py") or "?"


def summarise(raw: Path, top: int, us_per_req: float | None) -> str:
    """Tables of the event-loop thread's samples (greenlet stacks included).

    Other threads are left out: py-spy counts aiosqlite's worker thread as busy while it waits
    in ``SimpleQueue.get`` (with or without ``--gil``), though /proc shows it uses little CPU.
    """
    self_t: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    pkgs: Counter[str] = Counter()
    total = other = 0
    for line in raw.read_text().splitlines():
        stack_s, _, count_s = line.rpartition(" ")
        if not stack_s or not count_s.isdigit():
            continue
        n = int(count_s)
        frames = [f for f in stack_s.split(";") if f]
        # Other threads start at Thread._bootstrap; SQLAlchemy's async layer runs its sync code
        # in greenlets on the loop thread, whose stacks start at the greenlet's first frame.
        if not frames or frames[0].startswith(("Thread._bootstrap", "_bootstrap ")):
            other += n
            continue
        total += n
        self_t[frames[-1]] += n
        for f in set(frames):
            if "(thrifty/" in f:
                incl[f] += n
        for p in {_package(f) for f in frames[1:]}:
            pkgs[p] += n
    if not total:
        return "no samples (is py-spy allowed to ptrace?)"

    def rows(c: Counter[str]) -> list[list[str]]:
        out = []
        for k, n in c.most_common(top):
            share = n / total
            cost = f"{share * us_per_req:.1f}" if us_per_req else "-"
            out.append([f"{100 * share:.1f}%", cost, f"`{k}`"])
        return out

    head = ["share", "~µs/req", "function"]
    return "\n\n".join(
        [
            f"{total} samples of the event-loop thread ({other} of other threads left out). "
            "~µs/req = share x the loop thread's CPU per request measured during the profile "
            f"({us_per_req or 0:.0f} µs; py-spy slows the process, so read shares first).",
            "Self time (the function on top of the stack; C code shows as its Python caller):",
            markdown_table(head, rows(self_t)),
            "Inclusive time of thrifty functions:",
            markdown_table(head, rows(incl)),
            "Inclusive time by package (a sample counts once for every package on its stack):",
            markdown_table(["share", "~µs/req", "package"], rows(pkgs)),
        ]
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--duration", type=float, default=15.0, help="seconds sampled")
    ap.add_argument("--connections", type=int, default=8)
    ap.add_argument("--rate", type=int, default=200, help="samples per second")
    ap.add_argument("--stream", action="store_true", help="profile the SSE path")
    ap.add_argument("--payload", choices=("small", "tools"), default="small")
    ap.add_argument("--native", action="store_true", help="py-spy --native (C frames too)")
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument(
        "--cache-hit", action="store_true", help="identical bodies (cache hits); default: unique"
    )
    a = ap.parse_args()
    py_spy = Path(PYTHON).with_name("py-spy")
    RESULTS_DIR.mkdir(exist_ok=True)
    raw = RESULTS_DIR / f"profile-{time.strftime('%Y%m%d-%H%M%S')}.txt"
    with (
        tempfile.TemporaryDirectory(prefix="thrifty-prof-") as d,
        stack(Path(d)) as (targets, key),
    ):
        gw = next(t for t in targets if t.name == "thrifty")
        assert gw.proc_pid is not None
        # Load for warm-up + the sampled window (+ margin); py-spy starts after the warm-up.
        load = subprocess.Popen(
            [
                PYTHON,
                str(Path(__file__).with_name("loadgen.py")),
                gw.base + CHAT_PATH,
                "-c",
                str(a.connections),
                "-d",
                str(a.duration + 2),
                "-w",
                "2",
                "-H",
                f"Authorization: Bearer {key}",
                "--payload",
                a.payload,
                "--cpu-pid",
                f"gateway={gw.proc_pid}",
                *(["--stream"] if a.stream else []),
                *([] if a.cache_hit else ["--unique"]),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        time.sleep(2.5)
        cmd = [str(py_spy), "record", "-p", str(gw.proc_pid), "-d", str(int(a.duration))]
        cmd += ["-r", str(a.rate), "-f", "raw", "-F", "-o", str(raw)]
        if a.native:
            cmd.append("--native")
        spy = subprocess.run(cmd, capture_output=True, text=True, timeout=a.duration + 60)
        out, _ = load.communicate(timeout=a.duration + 60)
        if spy.returncode != 0:
            sys.exit(f"py-spy failed: {spy.stderr[-2000:]}")
        print(f"load (under py-spy): {out.strip()}\n", file=sys.stderr)
        under = json.loads(out.strip().splitlines()[-1])
        main_ms = under["cpu_split_ms_per_req"]["gateway"]["main"]
        # A short clean run for the unprofiled numbers.
        clean = run_loadgen(
            gw.base + CHAT_PATH,
            connections=a.connections,
            duration=5,
            warmup=1,
            cpu_pids={"gateway": gw.proc_pid},
            headers=[f"Authorization: Bearer {key}"],
            payload=a.payload,
            stream=a.stream,
            unique=not a.cache_hit,
        )
    kind = ("SSE" if a.stream else "JSON") + (", cache hits" if a.cache_hit else ", cache misses")
    print(
        f"Gateway profile: {kind}, {a.connections} connections, {a.duration:g} s at {a.rate} Hz "
        f"(raw stacks: {raw.relative_to(Path.cwd()) if raw.is_relative_to(Path.cwd()) else raw})"
    )
    print(
        f"Unprofiled: {clean['rps']} rps, p50 {clean['p50_ms']} ms, "
        f"gateway CPU {clean['cpu_ms_per_req']['gateway']} ms/req\n"
    )
    print(summarise(raw, a.top, main_ms * 1000 if main_ms else None))


if __name__ == "__main__":
    main()
