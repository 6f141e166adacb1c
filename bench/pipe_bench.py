"""Mass insertion: `shmcli --pipe` against `redis-cli --pipe`, side by side.

    python bench/pipe_bench.py              # 1 M SETs, 3 rounds, ~1 minute
    python bench/pipe_bench.py --sets 200000 --rounds 1

Issue #3 asks for 1 M SETs at >= 1.5x the throughput of redis-cli --pipe over
the unix socket.  What this does:
  1. writes a RESP file of N `SET key:<i> value:<i>` once, in a temp dir (the
     classic mass-insertion input);
  2. starts a throwaway redis-server with the module per execution path
     (main-thread, the default, and fast-path), persistence off;
  3. per round, and in a different order each round, runs the same file
     through `redis-cli --pipe -s <sock>`, `shmcli --pipe` (shared memory)
     and `shmcli --pipe --shm off`, with FLUSHALL before each run;
  4. checks each run (its summary line says N replies and no error, DBSIZE
     is N) and records the wall time, the client's CPU (rusage of the child)
     and the server's CPU (schedstat of every thread) during the run;
  5. prints throughput per tool, the ratio to redis-cli, and writes all the
     runs to bench/results/pipe.json.

Wall times include each tool's start-up (Python's is about 0.1 s; measured
separately as an empty input and reported).  Nothing here asserts on time.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))

from stats import thread_cpu_ns  # noqa: E402

from shmcli.resp import Integer  # noqa: E402
from shmcli.testing import Server  # noqa: E402

TOOLS = {
    "redis-cli": ["redis-cli"],
    "shmcli shm": [sys.executable, "-m", "shmcli", "--shm", "require"],
    "shmcli --shm off": [sys.executable, "-m", "shmcli", "--shm", "off"],  # --pipe's default
}
EXEC_MODES = ("main-thread", "fast-path")


def write_input(path: Path, sets: int) -> None:
    with open(path, "wb") as out:
        batch = []
        for i in range(sets):
            key, value = b"key:%d" % i, b"value:%d" % i
            batch.append(b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n"
                         % (len(key), key, len(value), value))
            if len(batch) == 10000:
                out.write(b"".join(batch))
                batch.clear()
        out.write(b"".join(batch))


def run_once(tool: str, server: Server, input_path: Path, expect: int) -> dict:
    """One run: wall time, client and server CPU; raises when it went wrong."""
    with server.admin() as conn:
        conn.execute("FLUSHALL")
    argv = [*TOOLS[tool], "-s", server.unix_socket, "--pipe"]
    server_before = thread_cpu_ns(server.pid)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    with open(input_path, "rb") as stdin:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, stdin=stdin, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, cwd=ROOT)
        out, err = proc.communicate(timeout=600)
        wall = time.perf_counter() - start
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    client_cpu = (usage.ru_utime - children.ru_utime) + (usage.ru_stime - children.ru_stime)
    server_cpu = (thread_cpu_ns(server.pid) - server_before) / 1e9
    summary = f"errors: 0, replies: {expect}".encode()
    if proc.returncode != 0 or not out.rstrip().endswith(summary):
        raise RuntimeError(f"{tool} failed (exit {proc.returncode}): {out!r} {err!r}")
    if expect:
        with server.admin() as conn:
            size = conn.execute("DBSIZE")
        if size != Integer(expect):
            raise RuntimeError(f"{tool}: DBSIZE is {size!r}, not {expect}")
    return {"tool": tool, "wall_s": wall, "sets_per_s": expect / wall if expect else None,
            "client_cpu_s": client_cpu, "server_cpu_s": server_cpu}


def summarize(runs: list[dict]) -> dict:
    by_tool: dict[str, dict] = {}
    for tool in TOOLS:
        walls = [r["wall_s"] for r in runs if r["tool"] == tool]
        if not walls:
            continue
        mine = [r for r in runs if r["tool"] == tool]
        by_tool[tool] = {
            "wall_s_median": statistics.median(walls), "wall_s_min": min(walls),
            "wall_s_max": max(walls),
            "client_cpu_s_median": statistics.median(r["client_cpu_s"] for r in mine),
            "server_cpu_s_median": statistics.median(r["server_cpu_s"] for r in mine),
        }
    base = by_tool.get("redis-cli", {}).get("wall_s_median")
    for stats in by_tool.values():
        stats["throughput_ratio_vs_redis_cli"] = base / stats["wall_s_median"] if base else None
    return by_tool


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sets", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", default=str(BENCH / "results" / "pipe.json"))
    args = parser.parse_args()

    result: dict = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"), "sets": args.sets,
        "rounds": args.rounds, "cpus": os.cpu_count(), "kernel": platform.release(),
        "server": subprocess.run(["redis-server", "--version"], capture_output=True,
                                 text=True).stdout.strip(),
        "commit": subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                                 capture_output=True, text=True).stdout.strip(),
        "loadavg_start": Path("/proc/loadavg").read_text().split()[:3],
        "modes": {},
    }
    with tempfile.TemporaryDirectory(prefix="pipe-bench-") as tmp:
        input_path = Path(tmp) / "sets.resp"
        empty_path = Path(tmp) / "empty.resp"
        write_input(input_path, args.sets)
        empty_path.write_bytes(b"")
        print(f"{args.sets} SETs, {input_path.stat().st_size / 1e6:.1f} MB of RESP, "
              f"{args.rounds} rounds per execution path")
        for mode in EXEC_MODES:
            server = Server("redis", mode, name=f"pipe-bench-{mode}").start()
            try:
                runs: list[dict] = []
                startup = {tool: run_once(tool, server, empty_path, 0)["wall_s"]
                           for tool in TOOLS}
                order = list(TOOLS)
                for round_no in range(args.rounds):
                    shift = round_no % len(order)
                    for tool in order[shift:] + order[:shift]:
                        run = run_once(tool, server, input_path, args.sets)
                        run["round"] = round_no
                        runs.append(run)
                        print(f"  {mode:11} round {round_no + 1}  {tool:17} "
                              f"{run['wall_s']:6.3f} s  {run['sets_per_s']:>10,.0f} SETs/s  "
                              f"client CPU {run['client_cpu_s']:5.2f} s  "
                              f"server CPU {run['server_cpu_s']:5.2f} s", flush=True)
            finally:
                server.cleanup()
            summary = summarize(runs)
            result["modes"][mode] = {"runs": runs, "summary": summary,
                                     "startup_wall_s": startup}
            print(f"{mode}: median of {args.rounds}")
            for tool, stats in summary.items():
                print(f"  {tool:17} {args.sets / stats['wall_s_median']:>10,.0f} SETs/s  "
                      f"ratio vs redis-cli {stats['throughput_ratio_vs_redis_cli']:.2f}  "
                      f"(server CPU {stats['server_cpu_s_median']:.2f} s, "
                      f"client CPU {stats['client_cpu_s_median']:.2f} s, "
                      f"start-up {startup[tool]:.2f} s)")
    result["loadavg_end"] = Path("/proc/loadavg").read_text().split()[:3]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
