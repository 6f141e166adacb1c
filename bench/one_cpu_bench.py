"""redis-py over its unix socket against redis-py over shared memory, with the
client and every server thread pinned to one CPU: a one-CPU machine or
container, or both placed there with taskset.

On one CPU a round trip cannot be saved by spinning: whoever spins keeps the
other off the CPU, and every request costs a switch to the server and back,
over shm as over the socket.  What is left to shm is redis-py's cheaper
transport on the client, against RedisModule_Call's higher cost per command
on the server.  Measured per exec mode: GET back to back (p50 of every
sample, the two clients taking turns in blocks) and non-transactional
pipelines of 10 to 1,000 INCRs (median), with the server's CPU time per
operation (/proc).  The ratio is socket / shm (above 1: shm is faster).

    .venv/bin/python bench/one_cpu_bench.py [--out FILE] [--rounds N]
writes bench/results/one_cpu.json (docs/latency.md, "One CPU").  With
SHMCLI_TEST_MODULE=<build>.so the servers load another build of the module
(an A/B of two builds); with PYTHONPATH at another redis-py, that one runs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from redis_py_bench import transport  # noqa: E402
from stats import thread_cpu_ns  # noqa: E402

from shmcli import redis_py  # noqa: E402
from shmcli.testing import Server  # noqa: E402

MODES = ("main-thread", "fast-path")
PIPELINES = (10, 100, 300, 1000)


def pin(server: Server, cpu: int) -> None:
    for tid in os.listdir(f"/proc/{server.pid}/task"):
        os.sched_setaffinity(int(tid), {cpu})
    os.sched_setaffinity(0, {cpu})


def get_p50(client: redis.Redis, count: int) -> float:
    samples = []
    clock = time.perf_counter_ns
    for _ in range(count):
        start = clock()
        client.get("k")
        samples.append(clock() - start)
    samples.sort()
    return samples[len(samples) // 2] / 1000


def pipeline_us(client: redis.Redis, length: int) -> float:
    pipe = client.pipeline(transaction=False)
    for _ in range(length):
        pipe.incr("n")
    start = time.perf_counter_ns()
    pipe.execute()
    return (time.perf_counter_ns() - start) / 1000


def measure_mode(mode: str, rounds: int) -> dict:
    server = Server("redis", mode).start()
    everywhere = os.sched_getaffinity(0)
    try:
        pin(server, min(everywhere))
        clients = {"socket": redis.Redis(unix_socket_path=server.unix_socket),
                   "shm": redis_py.Redis(unix_socket_path=server.unix_socket)}
        clients["socket"].set("k", "v" * 32)
        rows: dict[str, dict] = {}
        jobs = [("get", lambda c: get_p50(c, 2000), 1)]
        jobs += [(f"pipeline {n}", lambda c, n=n: statistics.median(
            pipeline_us(c, n) for _ in range(30)), 30) for n in PIPELINES]
        for name, job, ops in jobs:
            times: dict[str, list[float]] = {k: [] for k in clients}
            cpu_ns = dict.fromkeys(clients, 0)
            for client in clients.values():  # warm up
                job(client)
            for _ in range(rounds):
                for key, client in clients.items():
                    before = thread_cpu_ns(server.pid)
                    times[key].append(job(client))
                    cpu_ns[key] += thread_cpu_ns(server.pid) - before
            runs = 2000 if name == "get" else ops
            row = {key: {"us": statistics.median(t),
                         "server_cpu_us_per_run": round(cpu_ns[key] / 1000 / (rounds * runs), 1)}
                   for key, t in times.items()}
            row["speedup"] = row["socket"]["us"] / row["shm"]["us"]
            rows[name] = row
            print(f"{mode:<12} {name:<14} socket {row['socket']['us']:8.1f} µs"
                  f"  shm {row['shm']['us']:8.1f} µs  ({row['speedup']:.2f}x)"
                  f"  server CPU per run {row['socket']['server_cpu_us_per_run']}"
                  f" / {row['shm']['server_cpu_us_per_run']} µs", flush=True)
        assert transport(clients["shm"]) == "shm", "the shm client fell back to the socket"
        return rows
    finally:
        os.sched_setaffinity(0, everywhere)
        server.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "one_cpu.json"))
    args = parser.parse_args()
    results = {"redis_py": redis.__version__, "rounds": args.rounds,
               "module": os.environ.get("SHMCLI_TEST_MODULE", "built"),
               "modes": {mode: measure_mode(mode, args.rounds) for mode in MODES}}
    Path(args.out).write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
