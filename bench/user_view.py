"""What a user sees, in one run: every row of issue 11's table, side by side.

    python bench/user_view.py                  # about 3 minutes
    python bench/user_view.py --quick          # about 1 minute, fewer pairs
    python bench/user_view.py --server /path/to/redis-server --json out.json

Each row runs shmcli (or shmcli's Python API, or the C client over shared
memory) and its baseline against the same throwaway server with the module
(main-thread mode, the default), in turns (A B, then B A, ...), and prints
both medians and the speed-up, baseline time / shmcli time (above 1: shmcli
is faster):

  --latency avg         shmcli --latency (over shm) / redis-cli --latency (unix),
                        10 ms sampling, 3 s a run
  GET k, one-shot       a whole process each, shmcli / redis-cli (start-up)
  200 x GET k, shell    a bash loop of 200 one-shot commands
  shell to prompt       start until the prompt is on a pseudo-terminal
  API PING p50          shmcli.connect(shm="require") / redis-py + hiredis (unix)
  GET 10 MiB p50        C client over shm / C client over the unix socket
  LRANGE 500k, piped    the whole command into a pipe, shmcli / redis-cli

Nothing here asserts a time; the figures go to docs/performance.md.  The
machine's load average is printed with them: on a busy machine, compare
ratios, not times.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from latency_bench import cli_latency  # noqa: E402
from run import build_client  # noqa: E402
from startup_bench import child_env, paired, run_to_exit, run_to_prompt, shmcli_command  # noqa: E402

from shmcli.testing import Server  # noqa: E402

BIG = 10 << 20
LIST_ITEMS = 500_000


def progress(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def load_data(srv: Server) -> None:
    with srv.admin() as conn:
        conn.execute("SET", "k", "v")
        for start in range(0, LIST_ITEMS, 10_000):
            conn.execute("RPUSH", "big", *(f"item:{i}" for i in range(start, start + 10_000)))


def row(name: str, what: str, unit: str, ours: float, theirs: float) -> dict:
    return {"row": name, "baseline": what, "unit": unit, "shmcli": round(ours, 4),
            "baseline_value": round(theirs, 4), "speedup": round(theirs / ours, 3)}


def paired_row(name: str, what: str, a: Callable[[], tuple[float, float | None]],
               b: Callable[[], tuple[float, float | None]], pairs: int) -> dict:
    got = paired(a, b, pairs)
    out = row(name, what, "ms", got["a_median_ms"], got["b_median_ms"])  # type: ignore[arg-type]
    out["speedup"] = round(1 / got["ratio_median"], 3)  # type: ignore[operator]
    return out


def latency_row(srv: Server, rounds: int) -> dict:
    ours, theirs = [], []
    for i in range(rounds):
        order = [(ours, shmcli_command()), (theirs, ["redis-cli"])]
        for sink, tool in order if i % 2 == 0 else reversed(order):
            result = cli_latency(tool, srv, [])
            if result is None:
                raise RuntimeError(f"{tool} --latency failed")
            sink.append(result["avg_ms"])
    return row("--latency avg (10 ms sampling)", "redis-cli, unix", "ms",
               statistics.median(ours), statistics.median(theirs))


def shell_loop(tool: list[str], srv: Server, count: int) -> Callable[[], tuple[float, None]]:
    command = " ".join(tool + ["-s", srv.unix_socket, "GET", "k", ">/dev/null"])
    script = f"for i in $(seq {count}); do {command}; done"

    def run() -> tuple[float, None]:
        start = time.perf_counter()
        subprocess.run(["bash", "-c", script], check=True, env=child_env())
        return time.perf_counter() - start, None
    return run


def p50_ns(argv: list[str]) -> float:
    """The p50 a bench client prints (shm_bench.c: p50_ns; py_bench.py: p50_us)."""
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=True)
    record = json.loads(done.stdout.strip().splitlines()[-1])
    return record["p50_ns"] if "p50_ns" in record else record["p50_us"] * 1e3


def p50_row(name: str, what: str, ours: list[str], theirs: list[str], rounds: int,
            unit: str, scale: float) -> dict:
    a, b = [], []
    for i in range(rounds):
        for sink, argv in ([(a, ours), (b, theirs)] if i % 2 == 0 else [(b, theirs), (a, ours)]):
            sink.append(p50_ns(argv) / scale)
    return row(name, what, unit, statistics.median(a), statistics.median(b))


def measure(srv: Server, c_client: Path, quick: bool) -> list[dict]:
    env = child_env()
    ours = shmcli_command()
    target = ["-s", srv.unix_socket]
    pairs = 10 if quick else 30
    rows = []
    progress("--latency")
    rows.append(latency_row(srv, 2 if quick else 4))
    progress("GET k, one-shot")
    rows.append(paired_row("GET k, one-shot (wall)", "redis-cli", lambda: run_to_exit(
        [*ours, *target, "GET", "k"], env), lambda: run_to_exit(
        ["redis-cli", *target, "GET", "k"], env), pairs))
    progress("a shell loop of 200 GET k")
    rows.append(paired_row("200 x GET k in a shell loop", "redis-cli",
                           shell_loop(ours, srv, 200), shell_loop(["redis-cli"], srv, 200),
                           2 if quick else 3))
    progress("shell to prompt")
    prompt = f"redis {srv.unix_socket}>".encode()
    rows.append(paired_row("shell, start to prompt", "redis-cli",
                           lambda: run_to_prompt([*ours, *target], env, prompt),
                           lambda: run_to_prompt(["redis-cli", *target], env, prompt), pairs))
    progress("Python API PING")
    py = [sys.executable, str(BENCH / "py_bench.py"), "--socket", srv.unix_socket,
          "--cmd", "ping", "--duration", "1" if quick else "2"]
    rows.append(p50_row("Python API PING p50", "redis-py + hiredis, unix",
                        [*py, "--kind", "api"], [*py, "--kind", "redispy", "--transport", "unix"],
                        2 if quick else 4, "us", 1e3))
    progress("GET 10 MiB")
    c = [str(c_client), "--socket", srv.unix_socket, "--cmd", "get", "--value-size", str(BIG),
         "--duration", "2", "--warmup", "0.3"]
    rows.append(p50_row("GET 10 MiB p50 (C client)", "C client, unix",
                        [*c, "--transport", "shm"], [*c, "--transport", "unix"],
                        2 if quick else 4, "ms", 1e6))
    progress("LRANGE 500k, piped")
    rows.append(paired_row(f"LRANGE of {LIST_ITEMS // 1000}k items, piped", "redis-cli",
                           lambda: run_to_exit([*ours, *target, "LRANGE", "big", "0", "-1"], env),
                           lambda: run_to_exit(["redis-cli", *target, "LRANGE", "big", "0", "-1"],
                                               env), 4 if quick else 8))
    return rows


def report(rows: list[dict], facts: dict) -> str:
    lines = [f"server {facts['server']}, load average before {facts['load_before']}, "
             f"after {facts['load_after']}",
             "", f"{'what a user runs':38} {'shmcli':>12} {'baseline':>12}  "
             f"{'speed-up':>8}  baseline",
             "-" * 100]
    for r in rows:
        lines.append(f"{r['row']:38} {r['shmcli']:>9.3f} {r['unit']:2} "
                     f"{r['baseline_value']:>9.3f} {r['unit']:2}  {r['speedup']:>7.2f}x  "
                     f"{r['baseline']}")
    lines.append("speed-up: baseline time / shmcli time (above 1: shmcli is faster)")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--server", help="a redis-server or valkey-server binary")
    ap.add_argument("--json", type=Path, default=BENCH / "results" / "user_view.json")
    opts = ap.parse_args()
    srv = Server("redis", "main-thread", binary=opts.server).start()
    try:
        load_data(srv)
        workdir = Path(srv.dir)
        facts = {"server": f"{srv.flavour} {srv.version}",
                 "load_before": round(os.getloadavg()[0], 2),
                 "date": time.strftime("%Y-%m-%d %H:%M")}
        rows = measure(srv, build_client(workdir), opts.quick)
        facts["load_after"] = round(os.getloadavg()[0], 2)
    finally:
        srv.cleanup()
    print(report(rows, facts))
    opts.json.write_text(json.dumps({"facts": facts, "rows": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
