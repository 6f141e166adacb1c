"""Benchmark the shm channel against socket clients, side by side, in one run.

    python bench/run.py            # about 2.5 minutes on a 2-vCPU VM
    python bench/run.py --quick    # about 30 s, for a smoke check

What it does (docs/performance.md explains the method and the results):
  1. builds bench/shm_bench.c with the project's channel library (gcc, temp dir);
  2. starts redis-server with the module twice (shm.exec-mode main-thread and
     fast-path) plus one without the module, each on a temp unix socket and a
     free port;
  3. measures the servers' idle CPU with no session and with 10 idle sessions;
  4. times PING / SET / GET round trips, back to back, for every client:
     C over shm (both paths), C over the unix socket and TCP, shmcli's Python
     API and raw channel over shm (both paths), redis-py + hiredis over the
     unix socket and TCP.  Every (client, command) pair runs in several short
     slices interleaved round-robin with all the others, so slow drift of the
     shared machine spreads over all of them; the slices are merged;
  5. times GET of a 10 MiB value (shm vs unix socket), and PING sent once per
     millisecond (sparse traffic, where spinning budgets expire);
  6. prints the tables and the ratios against the targets of DESIGN.md §6,
     and writes everything to bench/results/latest.json.

Nothing here asserts on time: it reports what it measured.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))

from stats import CLK_TCK, Histogram, stat_cpu_ticks, thread_cpu_ns  # noqa: E402

from shmcli.testing import Server  # noqa: E402

CHANNEL = ROOT / "native" / "channel"
C_SOURCES = [BENCH / "shm_bench.c", CHANNEL / "shm_client.c", CHANNEL / "shm_ring.c",
             CHANNEL / "shm_wait.c"]
C_FLAGS = ["-std=c11", "-O2", "-D_GNU_SOURCE", "-Wall", "-Wextra", "-Werror"]
CMDS = ("ping", "set", "get")
SMALL_VALUE = 16
BIG_VALUE = 10 * 1024 * 1024
IDLE_SESSIONS = 10


@dataclass(frozen=True)
class Row:
    """One client/transport/server combination."""

    key: str
    label: str
    client: str          # "c" (shm_bench) or "py" (py_bench.py)
    server: str          # "main" or "fast": which server it talks to
    transport: str       # shm, unix, tcp
    extra: tuple[str, ...] = ()
    cmds: tuple[str, ...] = CMDS


LATENCY_ROWS = [
    Row("c-shm-fast", "C  shm, fast-path", "c", "fast", "shm"),
    Row("c-shm-main", "C  shm, main-thread", "c", "main", "shm"),
    Row("c-shm-main-spin", "C  shm, main-thread, client spins (adapt off)", "c", "main", "shm",
        ("--spin-us", "50", "--adapt-us", "0"), ("ping",)),
    Row("c-unix", "C  unix socket", "c", "main", "unix"),
    Row("c-tcp", "C  TCP loopback", "c", "main", "tcp", (), ("ping",)),
    Row("py-api-fast", "Py shmcli API, shm, fast-path", "py", "fast", "shm", ("--kind", "api")),
    Row("py-api-main", "Py shmcli API, shm, main-thread", "py", "main", "shm", ("--kind", "api")),
    Row("py-raw-fast", "Py raw ShmChannel.call, fast-path", "py", "fast", "shm",
        ("--kind", "raw")),
    Row("py-raw-main", "Py raw ShmChannel.call, main-thread", "py", "main", "shm",
        ("--kind", "raw")),
    Row("redispy-unix", "Py redis-py+hiredis, unix socket", "py", "main", "unix",
        ("--kind", "redispy")),
    Row("redispy-tcp", "Py redis-py+hiredis, TCP", "py", "main", "tcp", ("--kind", "redispy")),
]
BIG_ROWS = [r for r in LATENCY_ROWS if r.key in (
    "c-shm-fast", "c-shm-main", "c-unix", "py-api-fast", "py-api-main", "redispy-unix")]
SPARSE_ROWS = [r for r in LATENCY_ROWS if r.key in ("c-shm-fast", "c-shm-main", "c-unix")]
SPARSE_GAP_US = 1000


@dataclass(frozen=True)
class Plan:
    rounds: int
    slice_s: float
    warmup_s: float
    big_rounds: int
    big_slice_s: float
    sparse_s: float
    idle_s: float


FULL = Plan(rounds=3, slice_s=0.8, warmup_s=0.2, big_rounds=2, big_slice_s=1.0, sparse_s=2.0,
            idle_s=5.0)
QUICK = Plan(rounds=1, slice_s=0.25, warmup_s=0.1, big_rounds=1, big_slice_s=0.5,
             sparse_s=0.5, idle_s=2.0)


# ---- machine facts ----

def machine_ticks() -> tuple[int, int]:
    """(busy, steal) jiffies of the whole machine, from /proc/stat."""
    f = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, idle, iowait, irq, softirq, steal = f[:8]
    return user + nice + system + irq + softirq + steal, steal


def children_cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def command_output(*argv: str) -> str:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""


def environment(server_binary: str) -> dict:
    cpu_model = next((line.split(":", 1)[1].strip() for line in
                      Path("/proc/cpuinfo").read_text().splitlines()
                      if line.startswith("model name")), "?")
    versions = {}
    for mod in ("redis", "hiredis"):
        try:
            versions[mod] = __import__(mod).__version__
        except ImportError:
            versions[mod] = None
    commit = command_output("git", "-C", str(ROOT), "rev-parse", "--short", "HEAD")
    dirty = command_output("git", "-C", str(ROOT), "status", "--porcelain", "--", "native",
                           "shmcli")
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "cpus": os.cpu_count(), "cpu_model": cpu_model, "kernel": platform.release(),
        "server": command_output(server_binary, "--version"),
        "python": platform.python_version(), "redis_py": versions["redis"],
        "hiredis": versions["hiredis"], "gcc": command_output("gcc", "-dumpfullversion"),
        "commit": commit + ("+dirty" if dirty else ""),
        "loadavg_start": Path("/proc/loadavg").read_text().split()[:3],
    }


# ---- build ----

def build_client(workdir: Path) -> Path:
    out = workdir / "shm_bench"
    cmd = ["gcc", *C_FLAGS, f"-I{CHANNEL}", *map(str, C_SOURCES), "-o", str(out)]
    subprocess.run(cmd, check=True)
    return out


# ---- one measurement slice ----

class Runner:
    def __init__(self, c_binary: Path, servers: dict[str, Server]) -> None:
        self.c_binary = c_binary
        self.servers = servers
        self.errors: list[str] = []

    def argv(self, row: Row, cmd: str, value_size: int, duration: float, warmup: float,
             gap_us: int = 0) -> list[str]:
        srv = self.servers[row.server]
        common = ["--transport", row.transport, "--socket", srv.unix_socket,
                  "--port", str(srv.port), "--cmd", cmd, "--value-size", str(value_size),
                  "--duration", str(duration), "--warmup", str(warmup),
                  "--server-pid", str(srv.pid)]
        if row.client == "c":
            gap = ["--gap-us", str(gap_us)] if gap_us else []
            return [str(self.c_binary), *common, *gap, *row.extra]
        assert not gap_us
        return [sys.executable, str(BENCH / "py_bench.py"), *common, *row.extra]

    def run(self, row: Row, cmd: str, value_size: int, duration: float, warmup: float,
            gap_us: int = 0) -> dict | None:
        argv = self.argv(row, cmd, value_size, duration, warmup, gap_us)
        srv = self.servers[row.server]
        busy0, steal0 = machine_ticks()
        srv0, kids0, t0 = thread_cpu_ns(srv.pid), children_cpu_s(), time.monotonic()
        try:
            proc = subprocess.run(argv, capture_output=True, text=True,
                                  timeout=duration + warmup + 120)
        except subprocess.TimeoutExpired:
            self.fail(f"{row.key} {cmd}: no answer within {duration + warmup + 120:.0f} s")
            return None
        elapsed = time.monotonic() - t0
        busy1, steal1 = machine_ticks()
        srv_all = (thread_cpu_ns(srv.pid) - srv0) / 1e9 if srv.alive() else 0.0
        kids = children_cpu_s() - kids0
        if not srv.alive():
            raise RuntimeError(f"the {srv.name} server died during {row.key} {cmd}:\n"
                               f"{proc.stderr}\n{srv.log()}")
        if proc.returncode != 0:
            self.fail(f"{row.key} {cmd} (exit {proc.returncode}): {proc.stderr.strip()[-2000:]}")
            return None
        rec = json.loads(proc.stdout.strip().splitlines()[-1])
        # What the rest of the machine did meanwhile: a noise indicator.
        machine = (busy1 - busy0) / CLK_TCK
        rec["foreign_cores"] = max(0.0, machine - srv_all - kids) / elapsed
        rec["steal_cores"] = (steal1 - steal0) / CLK_TCK / elapsed
        return rec

    def fail(self, message: str) -> None:
        self.errors.append(message)
        print(f"\n  ERROR {message}", file=sys.stderr)


class Merged:
    """The slices of one (row, command) measurement."""

    def __init__(self) -> None:
        self.hist = Histogram()
        self.wall_ns = self.server_cpu_ns = self.client_cpu_ns = 0
        self.round_p50_us: list[float] = []
        self.foreign: list[float] = []

    def add(self, rec: dict) -> None:
        self.hist.add_record(rec)
        self.wall_ns += rec["wall_ns"]
        self.server_cpu_ns += rec["server_cpu_ns"]
        self.client_cpu_ns += rec["client_cpu_ns"]
        self.round_p50_us.append(round(rec["p50_ns"] / 1000 if "p50_ns" in rec
                                       else rec["p50_us"], 3))
        self.foreign.append(rec["foreign_cores"])

    def summary(self) -> dict:
        out = self.hist.summary()
        if self.wall_ns:
            out["server_cpu_pct"] = round(100 * self.server_cpu_ns / self.wall_ns, 1)
            out["client_cpu_pct"] = round(100 * self.client_cpu_ns / self.wall_ns, 1)
        out["round_p50_us"] = self.round_p50_us
        out["foreign_load_cores"] = round(sum(self.foreign) / len(self.foreign), 2)
        return out


def progress(text: str) -> None:
    if sys.stderr.isatty():
        print(f"\r  {text:<78}", end="", flush=True, file=sys.stderr)


def rotated(rows: list, offset: int) -> list:
    offset %= len(rows)
    return rows[offset:] + rows[:offset]


def measure_latency(runner: Runner, plan: Plan) -> dict:
    slices = [(row, cmd) for cmd in CMDS for row in LATENCY_ROWS if cmd in row.cmds]
    merged = {(row.key, cmd): Merged() for row, cmd in slices}
    for rnd in range(plan.rounds):
        for i, (row, cmd) in enumerate(rotated(slices, rnd * 7)):
            progress(f"round {rnd + 1}/{plan.rounds}  {i + 1}/{len(slices)}  {row.key} {cmd}")
            rec = runner.run(row, cmd, SMALL_VALUE, plan.slice_s, plan.warmup_s)
            if rec:
                merged[(row.key, cmd)].add(rec)
    out: dict[str, dict] = {}
    for (key, cmd), m in merged.items():
        if m.hist.count:
            out.setdefault(key, {})[cmd] = m.summary()
    return out


def measure_big_get(runner: Runner, plan: Plan) -> dict:
    merged = {row.key: Merged() for row in BIG_ROWS}
    for rnd in range(plan.big_rounds):
        for row in rotated(BIG_ROWS, rnd * 3):
            progress(f"10 MiB GET, round {rnd + 1}/{plan.big_rounds}  {row.key}")
            rec = runner.run(row, "get", BIG_VALUE, plan.big_slice_s, 0.3)
            if rec:
                merged[row.key].add(rec)
    return {key: m.summary() for key, m in merged.items() if m.hist.count}


def measure_sparse(runner: Runner, plan: Plan) -> dict:
    out = {}
    for row in SPARSE_ROWS:
        progress(f"sparse PING (one per {SPARSE_GAP_US} us)  {row.key}")
        rec = runner.run(row, "ping", SMALL_VALUE, plan.sparse_s, 0.2, gap_us=SPARSE_GAP_US)
        if rec:
            m = Merged()
            m.add(rec)
            out[row.key] = m.summary()
    return out


def measure_idle(servers: dict[str, Server], seconds: float) -> dict:
    """Server CPU over `seconds` of silence, from utime+stime and from schedstat."""
    import shmcli

    def window() -> dict[str, dict]:
        time.sleep(1.0)  # let spinning budgets and the last replies settle
        t0 = time.monotonic()
        ticks0 = {n: stat_cpu_ticks(s.pid) for n, s in servers.items()}
        ns0 = {n: thread_cpu_ns(s.pid) for n, s in servers.items()}
        busy0, _ = machine_ticks()
        time.sleep(seconds)
        elapsed = time.monotonic() - t0
        busy1, _ = machine_ticks()
        res = {}
        for n, s in servers.items():
            res[n] = {
                "cpu_pct_stat": round(100 * (stat_cpu_ticks(s.pid) - ticks0[n]) / CLK_TCK
                                      / elapsed, 2),
                "cpu_pct_schedstat": round(100 * (thread_cpu_ns(s.pid) - ns0[n]) / 1e9
                                           / elapsed, 3),
            }
        res["_machine_busy_cores"] = round((busy1 - busy0) / CLK_TCK / elapsed, 2)
        return res

    progress(f"idle CPU, no session ({seconds:.0f} s)")
    quiet = window()
    progress(f"idle CPU, {IDLE_SESSIONS} idle sessions ({seconds:.0f} s)")
    conns = []
    try:
        for name, srv in servers.items():
            shm = "require" if srv.load_module else "off"
            for _ in range(IDLE_SESSIONS):
                conns.append(shmcli.connect(unix_socket=srv.unix_socket, shm=shm, timeout=10.0))
            if srv.load_module:
                # over a socket: INFO shm sent through a session deadlocks the
                # module (see docs/performance.md, "Problems found")
                with shmcli.connect(unix_socket=srv.unix_socket, shm="off",
                                    timeout=10.0) as admin:
                    info = admin.execute("INFO", "shm").data.decode()  # type: ignore[union-attr]
                sessions = dict(line.split(":", 1) for line in info.splitlines()
                                if ":" in line).get("shm_sessions", "?")
                if sessions.strip() != str(IDLE_SESSIONS):
                    print(f"\n  note: {name} reports shm_sessions={sessions.strip()}",
                          file=sys.stderr)
        with_sessions = window()
    finally:
        for conn in conns:
            conn.close()
    return {"no_session": quiet, f"{IDLE_SESSIONS}_idle_sessions": with_sessions,
            "seconds": seconds}


# ---- report ----

def fmt_num(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:.2f}" if v < 10 else f"{v:.1f}" if v < 1000 else f"{v:.0f}"


def fmt_time(us: float | None) -> str:
    if us is None:
        return "-"
    return f"{fmt_num(us / 1000)} ms" if us >= 1000 else f"{fmt_num(us)} us"


def latency_table(title: str, rows: dict[str, dict], labels: dict[str, str],
                  unit: str = "us") -> list[str]:
    scale = 1000.0 if unit == "ms" else 1.0
    lines = [f"{title} ({unit})",
             f"  {'client':<48}{'p50':>8}{'p99':>8}{'p99.9':>8}{'max':>8}"
             f"{'ops/s':>10}{'srv CPU':>8}{'bg load':>8}"]
    for key, s in rows.items():
        cpu = s.get("server_cpu_pct")
        cells = [fmt_num(s[k] / scale) for k in ("p50_us", "p99_us", "p999_us", "max_us")]
        lines.append(f"  {labels[key]:<48}" + "".join(f"{c:>8}" for c in cells)
                     + f"{s['ops_per_s']:>10,.0f}{'' if cpu is None else f'{cpu:.0f}%':>8}"
                     + f"{s['foreign_load_cores']:>8.2f}")
    return lines


def targets(res: dict) -> list[dict]:
    lat, big, idle = res["latency"], res["big_get"], res["idle_cpu"]

    def p50(key: str, cmd: str = "ping", table: dict | None = None) -> float | None:
        t = lat if table is None else table
        if table is None:
            return t.get(key, {}).get(cmd, {}).get("p50_us")
        return t.get(key, {}).get("p50_us")

    out = []

    def add(name: str, measured: float | None, target: str, met: bool | None, note: str) -> None:
        out.append({"measure": name, "measured": measured, "target": target, "met": met,
                    "note": note})

    unix = p50("c-unix")
    for key, limit, path in (("c-shm-fast", 1.0, "fast path"),
                             ("c-shm-main", 15.0, "main-thread path")):
        v = p50(key)
        add(f"C PING p50, {path} (us)", v, f"<= {limit:g} us",
            None if v is None else v <= limit,
            f"{unix / v:.1f}x lower than C unix socket ({fmt_time(unix)})" if v and unix
            else "")
    base = p50("redispy-unix")
    for key, path in (("py-api-fast", "fast path"), ("py-api-main", "main-thread path")):
        v = p50(key)
        ratio = base / v if v and base else None
        add(f"Python API PING p50 vs redis-py+hiredis unix, {path}",
            None if ratio is None else round(ratio, 2), ">= 8x lower",
            None if ratio is None else ratio >= 8,
            f"{fmt_time(v)} vs {fmt_time(base)}")
    for phase in ("no_session", f"{IDLE_SESSIONS}_idle_sessions"):
        for name in ("main", "fast"):
            v = idle.get(phase, {}).get(name, {}).get("cpu_pct_stat")
            fine = idle.get(phase, {}).get(name, {}).get("cpu_pct_schedstat")
            add(f"server CPU idle, {name}, {phase.replace('_', ' ')} (% of a core)", v,
                "<= 1%", None if v is None else v <= 1.0, f"schedstat: {fine}%")
    pairs = (("c-shm-fast", "c-unix"), ("c-shm-main", "c-unix"),
             ("py-api-fast", "redispy-unix"), ("py-api-main", "redispy-unix"))
    for shm, sock in pairs:
        a, b = p50(shm, table=big), p50(sock, table=big)
        ratio = a / b if a and b else None
        add(f"10 MiB GET p50, {shm} / {sock}", None if ratio is None else round(ratio, 2),
            "<= 1.0 (no slower)", None if ratio is None else ratio <= 1.0,
            f"{fmt_time(a)} vs {fmt_time(b)}")
    return out


def report(res: dict) -> str:
    labels = {r.key: r.label for r in LATENCY_ROWS}
    lines = [f"shm bench, {res['env']['date']}, {res['env']['cpus']} CPUs "
             f"({res['env']['cpu_model']}), {res['env']['server']}",
             f"plan: {res['plan']}",
             "srv CPU = server process CPU while measuring, % of one core; bg load = CPU used",
             "by everything else on the machine meanwhile, in cores (the noise we ran in)", ""]
    for cmd in CMDS:
        rows = {k: v[cmd] for k, v in res["latency"].items() if cmd in v}
        value = f", {SMALL_VALUE}-byte value" if cmd != "ping" else ""
        lines += latency_table(f"{cmd.upper()} round trip, back to back{value}", rows, labels)
        lines.append("")
    lines += latency_table("GET of a 10 MiB value", res["big_get"], labels, unit="ms")
    lines.append("")
    lines += latency_table(f"PING once every {SPARSE_GAP_US} us (sparse traffic)",
                           res["sparse"], labels)
    lines.append("")
    idle = res["idle_cpu"]
    lines.append(f"server CPU while idle, % of one core over {idle['seconds']:g} s "
                 "(utime+stime / schedstat)")
    for phase in ("no_session", f"{IDLE_SESSIONS}_idle_sessions"):
        cells = [f"{n}: {v['cpu_pct_stat']:.2f} / {v['cpu_pct_schedstat']:.3f}"
                 for n, v in idle[phase].items() if not n.startswith("_")]
        lines.append(f"  {phase.replace('_', ' '):<18} " + "   ".join(cells)
                     + f"   (machine busy: {idle[phase]['_machine_busy_cores']} cores)")
    lines += ["", "targets (DESIGN.md section 6)"]
    for t in res["targets"]:
        mark = {True: "met ", False: "MISS", None: "n/a "}[t["met"]]
        lines.append(f"  [{mark}] {t['measure']}: {t['measured']} (target {t['target']})"
                     f"  {t['note']}")
    if res["errors"]:
        lines += ["", "errors:"] + [f"  {e}" for e in res["errors"]]
    return "\n".join(lines)


# ---- main ----

def main() -> int:
    ap = argparse.ArgumentParser(description="shm channel vs socket clients, side by side")
    ap.add_argument("--quick", action="store_true", help="about 30 s instead of 2.5 min")
    ap.add_argument("--rounds", type=int, help="interleaved rounds of the latency slices")
    ap.add_argument("--server", default="redis-server", help="server binary (redis-server)")
    ap.add_argument("--out", type=Path, default=BENCH / "results" / "latest.json")
    opts = ap.parse_args()


    plan = QUICK if opts.quick else FULL
    if opts.rounds:
        plan = Plan(**{**plan.__dict__, "rounds": opts.rounds})
    binary = shutil.which(opts.server)
    if binary is None:
        sys.exit(f"{opts.server} is not installed")
    started = time.monotonic()
    res: dict = {"env": environment(binary), "plan": plan.__dict__,
                 "command": " ".join(["python", "bench/run.py", *sys.argv[1:]])}
    workdir = Path(tempfile.mkdtemp(prefix="shm-bench-build-"))
    servers: dict[str, Server] = {}
    try:
        c_binary = build_client(workdir)
        servers = {"main": Server(binary=binary, exec_mode="main-thread", name="main"),
                   "fast": Server(binary=binary, exec_mode="fast-path", name="fast"),
                   "nomodule": Server(binary=binary, load_module=False, name="nomodule")}
        for srv in servers.values():
            srv.start()
        runner = Runner(c_binary, servers)
        res["idle_cpu"] = measure_idle(servers, plan.idle_s)
        servers.pop("nomodule").cleanup()  # only the idle baseline needs it
        res["latency"] = measure_latency(runner, plan)
        res["big_get"] = measure_big_get(runner, plan)
        res["sparse"] = measure_sparse(runner, plan)
        res["errors"] = runner.errors
    finally:
        for srv in servers.values():
            srv.cleanup()
        shutil.rmtree(workdir, ignore_errors=True)
        if sys.stderr.isatty():
            print(file=sys.stderr)
    res["env"]["loadavg_end"] = Path("/proc/loadavg").read_text().split()[:3]
    res["env"]["run_seconds"] = round(time.monotonic() - started, 1)
    res["rows"] = {r.key: {"label": r.label, "client": r.client, "transport": r.transport,
                           "exec_mode": {"main": "main-thread", "fast": "fast-path"}[r.server]
                           if r.transport == "shm" else None}
                   for r in LATENCY_ROWS}
    res["targets"] = targets(res)
    print(report(res))
    print(f"\n{res['env']['run_seconds']} s; results in {opts.out}")
    opts.out.parent.mkdir(parents=True, exist_ok=True)
    opts.out.write_text(json.dumps(res, indent=1) + "\n")
    return 1 if res["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
