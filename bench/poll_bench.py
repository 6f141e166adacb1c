"""The module's polling knobs (issue 11 item 2), on and off, side by side.

    .venv/bin/python bench/poll_bench.py            # about 8 minutes on a 2-vCPU VM
    .venv/bin/python bench/poll_bench.py --quick    # about 2 minutes
    .venv/bin/python bench/poll_bench.py --only sparse --rounds 5

Two redis-server processes with the module: main-thread and fast-path (on
Redis 8 the fast path falls back to main-thread; the run says so).  The
knobs change at run time (CONFIG SET), so every comparison is between slices
of the same server, interleaved round by round, the order of on and off
alternating:

1. sparse: probes 10 ms and 1 ms apart, shm.poll-budget 0 (off) against
   --budget (hybrid polling on, default 5), measured by the C client
   (bench/shm_bench.c with a 500 us reply spin, as shmcli's probe waits) and
   by shmcli's own probe (Connection.timed_ping, timed in C), with the C
   client over the unix socket as the yardstick.  Per slice: the server's
   CPU (all threads, schedstat), and INFO shm's poll_ns, poll_windows and
   poll_hits.
2. b2b: back to back over shm on the main thread, shm.main-poll-us 0, 20
   (the default) and 50, for the C client and for the Python API
   (Connection.execute("PING") in a loop).
3. socket: what socket clients pay for main-poll: a socket client (the C
   client over the unix socket, 1 ms apart and back to back) while an shm
   client runs back to back beside it (the C client, or the Python API in a
   process of its own), with shm.main-poll-us 0 and 20.

Each section runs twice: with every thread where the scheduler puts it
("unpinned": on 2 vCPUs it often puts the shm client on the server's CPU,
and the module then does not poll for it), and "apart": the server's
threads on the first CPU, the shm client on the second, where polling works
(and costs) the most.

It prints the tables and writes bench/results/polling.json.  Nothing here
asserts on time; it reports.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))

from run import build_client  # noqa: E402
from stats import Histogram, thread_cpu_ns  # noqa: E402

from shmcli.resp import Status  # noqa: E402
from shmcli.testing import Server  # noqa: E402

POLL_FIELDS = ("poll_ns", "poll_windows", "poll_hits", "poll_over_budget", "main_poll_ns",
               "main_poll_hits", "main_poll_misses", "wakeups")
PY_CLIENT = """
import sys, shmcli
conn = shmcli.connect(unix_socket=sys.argv[1], shm="require", timeout=30.0)
print("ready", flush=True)
while True:
    conn.execute("PING")
"""


def progress(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def poll_counters(srv: Server) -> dict[str, int]:
    info = srv.info()
    return {k: int(info[f"shm_{k}"]) for k in POLL_FIELDS}


def set_knobs(srv: Server, **knobs: int) -> None:
    with srv.admin() as admin:
        for name, value in knobs.items():
            reply = admin.execute("CONFIG", "SET", f"shm.{name.replace('_', '-')}", str(value))
            if reply != Status(b"OK"):
                raise RuntimeError(f"CONFIG SET shm.{name}: {reply!r}")


class Cell:
    """One measured configuration, merged over the rounds."""

    def __init__(self) -> None:
        self.hist = Histogram()
        self.wall_ns = 0
        self.server_cpu_ns = 0
        self.counters = dict.fromkeys(POLL_FIELDS, 0)
        self.p50s: list[float] = []

    def add(self, hist: Histogram, wall_ns: int, cpu_ns: int, counters: dict[str, int]) -> None:
        for idx, n in hist.counts.items():
            self.hist.counts[idx] += n
        self.hist.count += hist.count
        self.hist.busy_ns += hist.busy_ns
        self.hist.max_ns = max(self.hist.max_ns, hist.max_ns)
        if hist.min_ns is not None and (self.hist.min_ns is None or hist.min_ns < self.hist.min_ns):
            self.hist.min_ns = hist.min_ns
        self.wall_ns += wall_ns
        self.server_cpu_ns += cpu_ns
        for k, v in counters.items():
            self.counters[k] += v
        self.p50s.append(hist.percentile(0.5) / 1000)

    def summary(self) -> dict:
        s = self.hist.summary()
        wall = self.wall_ns or 1
        return {**s, "server_cpu_pct": round(self.server_cpu_ns * 100 / wall, 2),
                "poll_cpu_pct": round(self.counters["poll_ns"] * 100 / wall, 2),
                "main_poll_pct": round(self.counters["main_poll_ns"] * 100 / wall, 2),
                "p50_by_round_us": [round(p, 1) for p in self.p50s],
                **{k: v for k, v in self.counters.items()}}


def c_slice(binary: Path, srv: Server, transport: str, seconds: float, gap_us: int,
            spin_us: int = 500, cpu: int | None = None) -> Histogram:
    argv = [str(binary), "--transport", transport, "--socket", srv.unix_socket, "--cmd", "ping",
            "--duration", str(seconds), "--warmup", "0.2", "--server-pid", str(srv.pid),
            "--spin-us", str(spin_us)]
    if gap_us:
        argv += ["--gap-us", str(gap_us)]
    if cpu is not None:
        argv = ["taskset", "-c", str(cpu), *argv]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)
    if out.returncode:
        raise RuntimeError(f"shm_bench failed: {out.stderr.strip()}")
    hist = Histogram()
    hist.add_record(json.loads(out.stdout))
    return hist


def py_probe_slice(srv: Server, seconds: float, gap_s: float, cpu: int | None = None) -> Histogram:
    """shmcli's --latency probe: Connection.timed_ping, gap_s apart."""
    samples = []
    mask = os.sched_getaffinity(0)
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    try:
        with srv.connect(shm="require") as conn:
            for _ in range(20):  # warm-up
                conn.timed_ping()
                time.sleep(gap_s)
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                samples.append(conn.timed_ping())
                time.sleep(gap_s)
            assert conn.last_transport == "shm", conn.last_transport
    finally:
        os.sched_setaffinity(0, mask)
    hist = Histogram()
    hist.add_samples(samples)
    return hist


def py_api_slice(srv: Server, seconds: float, cpu: int | None = None) -> Histogram:
    """The Python API back to back: Connection.execute("PING") in a loop."""
    samples = []
    clock = time.perf_counter_ns
    mask = os.sched_getaffinity(0)
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    try:
        with srv.connect(shm="require") as conn:
            for _ in range(2000):
                conn.execute("PING")
            end = clock() + int(seconds * 1e9)
            while (t0 := clock()) < end:
                conn.execute("PING")
                samples.append(clock() - t0)
    finally:
        os.sched_setaffinity(0, mask)
    hist = Histogram()
    hist.add_samples(samples)
    return hist


def measured(srv: Server, work: Callable[[], Histogram]) -> tuple[Histogram, int, int, dict]:
    """Run work() and return its histogram, wall ns, server CPU ns, counter deltas."""
    c0, cpu0, t0 = poll_counters(srv), thread_cpu_ns(srv.pid), time.monotonic_ns()
    hist = work()
    wall, cpu = time.monotonic_ns() - t0, thread_cpu_ns(srv.pid) - cpu0
    c1 = poll_counters(srv)
    return hist, wall, cpu, {k: c1[k] - c0[k] for k in POLL_FIELDS}


class Background:
    """An shm client back to back beside the measurement: the C client, or
    the Python API in a process of its own."""

    def __init__(self, kind: str, binary: Path, srv: Server, seconds: float,
                 cpu: int | None) -> None:
        if kind == "C":
            argv = [str(binary), "--transport", "shm", "--socket", srv.unix_socket, "--cmd",
                    "ping", "--duration", str(seconds + 30), "--warmup", "0"]
        else:
            argv = [sys.executable, "-c", PY_CLIENT, srv.unix_socket]
        if cpu is not None:
            argv = ["taskset", "-c", str(cpu), *argv]
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     text=True, cwd=ROOT)
        if kind == "Python API":
            assert self.proc.stdout is not None and self.proc.stdout.readline() == "ready\n"
        time.sleep(0.3)

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()


@contextmanager
def server_on(srv: Server, cpu: int | None) -> Iterator[None]:
    """Every thread of the server on one CPU (None: where the scheduler puts them)."""
    if cpu is None:
        yield
        return
    threads = [int(t) for t in os.listdir(f"/proc/{srv.pid}/task")]
    mask = os.sched_getaffinity(srv.pid)
    for tid in threads:
        os.sched_setaffinity(tid, {cpu})
    try:
        yield
    finally:
        for tid in threads:
            os.sched_setaffinity(tid, mask)


class Bench:
    def __init__(self, opts: argparse.Namespace, binary: Path, servers: dict[str, Server]) -> None:
        self.opts, self.binary, self.servers = opts, binary, servers
        self.cells: dict[str, Cell] = {}
        self.sparse_s = 1.5 if opts.quick else 3.0
        self.b2b_s = 1.0 if opts.quick else 2.0
        cpus = sorted(os.sched_getaffinity(0))
        # placements: (server main thread, shm client); None = the scheduler's choice
        self.placements: dict[str, tuple[int | None, int | None]] = {"unpinned": (None, None)}
        if len(cpus) >= 2:
            self.placements["apart"] = (cpus[0], cpus[1])

    def cell(self, *key: object) -> Cell:
        return self.cells.setdefault(" | ".join(map(str, key)), Cell())

    def sparse(self, rnd: int) -> None:
        b = self.opts.budget
        for gap_us in (10000, 1000):
            for mode, srv in self.servers.items():
                for place, (server_cpu, client_cpu) in self.placements.items():
                    with server_on(srv, server_cpu):
                        for budget in ((0, b) if rnd % 2 == 0 else (b, 0)):
                            set_knobs(srv, poll_budget=budget)
                            time.sleep(0.05)
                            key = ("sparse", mode, place, gap_us, f"budget {budget}")
                            self.cell(*key, "C").add(*measured(srv, partial(
                                c_slice, self.binary, srv, "shm", self.sparse_s, gap_us, 500,
                                client_cpu)))
                            self.cell(*key, "shmcli probe").add(*measured(srv, partial(
                                py_probe_slice, srv, self.sparse_s, gap_us / 1e6, client_cpu)))
                        set_knobs(srv, poll_budget=0)
                        self.cell("sparse", mode, place, gap_us, "unix socket", "C").add(
                            *measured(srv, partial(c_slice, self.binary, srv, "unix",
                                                   self.sparse_s, gap_us, 500, client_cpu)))

    def back_to_back(self, rnd: int) -> None:
        srv = self.servers["main-thread"]
        for place, (server_cpu, client_cpu) in self.placements.items():
            with server_on(srv, server_cpu):
                for mp in ((0, 20, 50) if rnd % 2 == 0 else (50, 20, 0)):
                    set_knobs(srv, main_poll_us=mp)
                    self.cell("b2b", place, f"main-poll-us {mp}", "C").add(*measured(
                        srv, partial(c_slice, self.binary, srv, "shm", self.b2b_s, 0, 50,
                                     client_cpu)))
                    self.cell("b2b", place, f"main-poll-us {mp}", "Python API").add(*measured(
                        srv, partial(py_api_slice, srv, self.b2b_s, client_cpu)))
        set_knobs(srv, main_poll_us=20)

    def socket_beside(self, rnd: int) -> None:
        srv = self.servers["main-thread"]
        for place, (server_cpu, client_cpu) in self.placements.items():
            with server_on(srv, server_cpu):
                for kind in ("C", "Python API"):
                    for mp in ((0, 20) if rnd % 2 == 0 else (20, 0)):
                        set_knobs(srv, main_poll_us=mp)
                        bg = Background(kind, self.binary, srv, 4 * self.sparse_s, client_cpu)
                        try:
                            for gap_us in (1000, 0):
                                self.cell("socket", place, f"beside {kind}", f"main-poll-us {mp}",
                                          f"gap {gap_us}").add(*measured(srv, partial(
                                              c_slice, self.binary, srv, "unix", self.sparse_s,
                                              gap_us, 50)))
                        finally:
                            bg.stop()
        set_knobs(srv, main_poll_us=20)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--rounds", type=int, default=None)
    ap.add_argument("--server", default="redis-server")
    ap.add_argument("--budget", type=int, default=5, help="shm.poll-budget when on (percent)")
    ap.add_argument("--only", default="sparse,b2b,socket", help="sections to run")
    ap.add_argument("--out", default=str(BENCH / "results" / "polling.json"))
    opts = ap.parse_args()
    rounds = opts.rounds or (2 if opts.quick else 3)
    sections = opts.only.split(",")

    binary = build_client(Path(tempfile.mkdtemp(prefix="shmcli-pollbench-")))
    server = shutil.which(opts.server) or opts.server
    servers = {mode: Server(binary=server, exec_mode=mode).start()
               for mode in ("main-thread", "fast-path")}
    modes = {m: s.info()["shm_exec_mode"] for m, s in servers.items()}
    progress(f"servers: {modes}; load {os.getloadavg()}")
    bench = Bench(opts, binary, servers)
    loads = [os.getloadavg()[0]]
    try:
        for rnd in range(rounds):
            for name, run in (("sparse", bench.sparse), ("b2b", bench.back_to_back),
                              ("socket", bench.socket_beside)):
                if name in sections:
                    progress(f"round {rnd + 1}/{rounds}: {name}")
                    run(rnd)
                    loads.append(os.getloadavg()[0])
    finally:
        for s in servers.values():
            s.cleanup()

    results = {
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                                 text=True, cwd=ROOT).stdout.strip(),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.release()}",
        "load_1min": [round(x, 2) for x in loads],
        "server": server, "exec_modes": modes, "rounds": rounds, "budget": opts.budget,
        "cells": {k: c.summary() for k, c in bench.cells.items()},
    }
    Path(opts.out).parent.mkdir(parents=True, exist_ok=True)
    Path(opts.out).write_text(json.dumps(results, indent=1) + "\n")
    print(report(results))
    return 0


def report(results: dict) -> str:
    cells = results["cells"]
    lines = [f"# {results['when']}, {results['machine']}, commit {results['commit']}, "
             f"{results['rounds']} rounds, exec modes {results['exec_modes']}, "
             f"load (1 min) {results['load_1min']}", ""]
    lines.append("## sparse probes (p50 / mean / p99 us; server CPU %, of it polling %; "
                 "windows, hits)")
    for key, c in cells.items():
        if key.startswith("sparse"):
            lines.append(f"{key:64s} {c['p50_us']:7.1f} {c['mean_us']:7.1f} {c['p99_us']:8.1f}"
                         f"   cpu {c['server_cpu_pct']:5.2f}% poll {c['poll_cpu_pct']:5.2f}%"
                         f"   win {c['poll_windows']:5d} hits {c['poll_hits']:5d}"
                         f"   p50 by round {c['p50_by_round_us']}")
    lines += ["", "## back to back over shm, main thread (p50 / mean / p99 us; server CPU %, "
              "main-poll %; hits, misses)"]
    for key, c in cells.items():
        if key.startswith("b2b"):
            lines.append(f"{key:52s} {c['p50_us']:7.2f} {c['mean_us']:7.2f} {c['p99_us']:8.1f}"
                         f"   cpu {c['server_cpu_pct']:6.1f}% mp {c['main_poll_pct']:5.1f}%"
                         f"   hits {c['main_poll_hits']:8d} misses {c['main_poll_misses']:6d}"
                         f"   p50 by round {c['p50_by_round_us']}")
    lines += ["", "## socket client beside a back-to-back shm client (p50 / mean / p99 us)"]
    for key, c in cells.items():
        if key.startswith("socket"):
            lines.append(f"{key:64s} {c['p50_us']:7.1f} {c['mean_us']:7.1f} {c['p99_us']:8.1f}"
                         f"   cpu {c['server_cpu_pct']:6.1f}% mp {c['main_poll_pct']:5.1f}%"
                         f"   p50 by round {c['p50_by_round_us']}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
