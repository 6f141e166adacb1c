"""redis-py over its unix socket (with hiredis) against redis-py over shared
memory (shmcli.redis_py), side by side, on one server per exec mode.

Workloads, each timed per operation (p50 and p99 of every sample):
  get, set    one command back to back
  pipeline    a non-transactional pipeline of 100 INCRs
  web         one "request" of a small web app: HGETALL + INCR + EXPIRE
  asyncio get GET back to back with redis.asyncio (shmcli.redis_py_asyncio)
  asyncio pipeline  the pipeline of 100 INCRs with redis.asyncio
and, on the module's defaults, pipelines of 1 to 1,000 INCRs (where the one
wake-up shared memory saves stops paying for its per-command cost); and the
floors: a GET with a free transport, through redis-py over a socket that
answers at once and through shmcli.redis_py over a session that answers at
once.

For the sync workloads it also notes, per operation, how the server picked
the shm client's requests up (INFO shm: main-thread wake-ups, main-poll's
catches and misses, fast-path worker passes), and the client's own CPU time
per operation (its rise, with the same pick-ups, marks a slow turn of the
VM rather than of the channel).

The two clients take turns in short blocks (ROUNDS x BLOCK operations each),
so a load change on the machine hits both alike; the ratio is socket p50 /
shm p50 (above 1: shm is faster).

    .venv/bin/python bench/redis_py_bench.py [--quick] [--chart]
writes bench/results/redis_py.json (and docs/img/redis_py.png with --chart).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from shmcli import redis_py  # noqa: E402
from shmcli.testing import Server  # noqa: E402

WORKLOADS = ("get", "set", "pipeline", "web", "asyncio get", "asyncio pipeline")
# (label, shm.exec-mode, other module configs): the defaults; the main thread
# polling 100 µs after each request instead of 20 (redis-py's gap between a
# reply and its next request is longer than 20 µs); the fast path.
MODES = (("main-thread", "main-thread", {}),
         ("main-poll-100", "main-thread", {"shm.main-poll-us": "100"}),
         ("fast-path", "fast-path", {}))


def operation(client: redis.Redis, workload: str):
    if workload == "get":
        client.set("k", "v" * 32)
        return lambda: client.get("k")
    if workload == "set":
        return lambda: client.set("k", "v" * 32)
    if workload == "pipeline":
        def pipeline():
            with client.pipeline(transaction=False) as pipe:
                for _ in range(100):
                    pipe.incr("n")
                return pipe.execute()
        return pipeline
    client.hset("session:1", mapping={"user": "ann", "cart": "3", "seen": "12"})

    def web():
        client.hgetall("session:1")
        client.incr("hits:page")
        client.expire("session:1", 1800)
    return web


def pipeline_lengths(rounds: int) -> dict:
    """Pipelines of 1 to 1,000 INCRs on the module's defaults: where shared
    memory's one wake-up stops paying for its per-command cost."""
    server = Server("redis", "main-thread").start()
    out = {}
    try:
        clients = {"socket": redis.Redis(unix_socket_path=server.unix_socket),
                   "shm": redis_py.Redis(unix_socket_path=server.unix_socket)}
        for length in (1, 10, 30, 60, 100, 300, 1000):
            samples: dict[str, list[int]] = {name: [] for name in clients}
            for _ in range(rounds):
                for name, client in clients.items():
                    for _ in range(max(20, 3000 // length)):
                        start = time.perf_counter_ns()
                        with client.pipeline(transaction=False) as pipe:
                            for _ in range(length):
                                pipe.incr("n")
                            pipe.execute()
                        samples[name].append(time.perf_counter_ns() - start)
            row = {name: percentile(s, 0.5) for name, s in samples.items()}
            out[length] = {**row, "speedup_p50": row["socket"] / row["shm"]}
            print(f"pipeline of {length:>3}: unix p50 {row['socket']:8.1f} µs  shm p50 "
                  f"{row['shm']:8.1f} µs  ({out[length]['speedup_p50']:.2f}x)", flush=True)
    finally:
        server.cleanup()
    return out


class InstantSocket:
    """A connected socket that answers every request at once with a short
    bulk string: redis-py's own path (pool, parser, callbacks) and no wire.
    Whatever else redis-py does with its socket (timeouts, the pool's
    readiness checks) goes to the real one, which never has anything to read."""

    def __init__(self, real) -> None:
        self._real, self._owed = real, 0

    def sendall(self, data, *flags) -> None:
        self._owed += 1

    def _answer(self) -> bytes:
        data, self._owed = b"$1\r\nv\r\n" * self._owed, 0
        return data

    def recv(self, size, *flags) -> bytes:
        return self._answer() if self._owed else self._real.recv(size, *flags)

    def recv_into(self, buffer, *args) -> int:
        if not self._owed:
            return self._real.recv_into(buffer, *args)
        data = self._answer()
        buffer[:len(data)] = data
        return len(data)

    def __getattr__(self, name):
        return getattr(self._real, name)


class InstantSession:
    """A shared-memory session that answers every request at once."""

    def send(self, request):
        pass

    def recv(self):
        return b"$1\r\nv\r\n"

    def recv_many(self, count, stop):
        return b"$1\r\nv\r\n" * count, count, False

    def close(self):
        pass


def floors(rounds: int) -> dict:
    """What is left with a free transport, measured as the workloads run
    (through the pool, redis-py's parser and callbacks): redis-py's GET over
    a socket that answers at once, and shmcli.redis_py's over a session that
    answers at once.  The first bounds any transport's gain: the socket's
    p50 over it is the most a free transport could give."""
    server = Server("redis", "main-thread").start()
    try:
        plain = redis.Redis(unix_socket_path=server.unix_socket)
        shm = redis_py.Redis(unix_socket_path=server.unix_socket)
        for client in (plain, shm):
            client.set("k", "v")
        connection = plain.connection_pool._available_connections[0]
        connection._sock = InstantSocket(connection._sock)
        connection._parser._sock = connection._sock
        connection = shm.connection_pool._available_connections[0]
        connection._shm = InstantSession()
        connection._socket_used = float("inf")  # no keep-alive HELLO to a real socket
        out = {}
        for name, client in (("redis-py, a socket that answers at once", plain),
                             ("shmcli.redis_py, a session that answers at once", shm)):
            samples = []
            for _ in range(rounds * 2000):
                start = time.perf_counter_ns()
                client.get("k")
                samples.append(time.perf_counter_ns() - start)
            out[name] = percentile(samples, 0.5)
            print(f"GET floor, {name}: p50 {out[name]:.1f} µs", flush=True)
    finally:
        server.cleanup()
    return out


def percentile(samples: list[int], share: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))] / 1000


def transport(client: redis.Redis) -> str:
    """What the client's pool hands out carries commands over."""
    pool = client.connection_pool
    try:
        connection = pool.get_connection()
    except TypeError:  # redis-py < 5.3 needs a command name
        connection = pool.get_connection("PING")
    pool.release(connection)
    return connection.transport


def measure(server: Server, workload: str, rounds: int, block: int) -> dict:
    clients = {"socket": redis.Redis(unix_socket_path=server.unix_socket),
               "shm": redis_py.Redis(unix_socket_path=server.unix_socket)}
    ops = {name: operation(client, workload) for name, client in clients.items()}
    samples: dict[str, list[int]] = {name: [] for name in clients}
    for op in ops.values():  # warm up: connections, sessions, caches
        for _ in range(block):
            op()
    before = server_counters(server)
    clock = time.perf_counter_ns
    cpu = dict.fromkeys(clients, 0.0)
    for _ in range(rounds):
        for name, op in ops.items():
            out = samples[name]
            cpu_before = time.process_time()
            for _ in range(block):
                start = clock()
                op()
                out.append(clock() - start)
            cpu[name] += time.process_time() - cpu_before
    counters = server_counters(server, since=before)
    assert transport(clients["shm"]) == "shm", "the shm client fell back to the socket"
    # The client's own CPU per operation: in a slow turn of the VM it rises
    # with the time (redis-py's Python is most of a shm operation).
    result = {name: {"p50_us": percentile(s, 0.5), "p99_us": percentile(s, 0.99),
                     "samples": len(s),
                     "client_cpu_us_per_op": round(cpu[name] * 1e6 / len(s), 2)}
              for name, s in samples.items()}
    result["speedup_p50"] = result["socket"]["p50_us"] / result["shm"]["p50_us"]
    result["shm"]["server_per_op"] = {name: round(count / (rounds * block), 3)
                                      for name, count in counters.items()}
    for client in clients.values():
        client.close()
    return result


# INFO shm counters that say how the server picked the shm client's requests
# up: main-thread wake-ups (the doorbell rang while it slept), main-poll's
# catches and misses, and the fast path's worker passes.
PICKUP_COUNTERS = ("shm_wakeups", "shm_main_poll_hits", "shm_main_poll_misses",
                   "shm_worker_batches")


def server_counters(server: Server, since: dict | None = None) -> dict:
    """The pickup counters now (over a plain socket: no session), or their
    growth since `since`.  Only shared-memory traffic moves them."""
    with redis.Redis(unix_socket_path=server.unix_socket) as admin:
        info = admin.info("shm")
    now = {name: info[name] for name in PICKUP_COUNTERS}
    return {name: now[name] - since[name] for name in now} if since else now


def asyncio_operation(client, workload: str):
    """An async callable doing one operation of `workload`."""
    if workload == "asyncio get":
        return lambda: client.get("k")

    async def pipeline():
        async with client.pipeline(transaction=False) as pipe:
            for _ in range(100):
                pipe.incr("n")
            return await pipe.execute()
    return pipeline


def measure_asyncio(server: Server, workload: str, rounds: int, block: int) -> dict:
    """An asyncio workload with redis.asyncio over its socket and with
    shmcli.redis_py_asyncio, in turns within one event loop."""
    import asyncio

    import redis.asyncio

    from shmcli import redis_py_asyncio

    async def run() -> dict[str, list[int]]:
        clients = {"socket": redis.asyncio.Redis(unix_socket_path=server.unix_socket),
                   "shm": redis_py_asyncio.Redis(unix_socket_path=server.unix_socket)}
        samples: dict[str, list[int]] = {name: [] for name in clients}
        await clients["shm"].set("k", "v" * 32)
        operations = {name: asyncio_operation(client, workload)
                      for name, client in clients.items()}
        clock = time.perf_counter_ns
        for turn in range(rounds + 1):  # the first turn warms up
            for name, op in operations.items():
                out = samples[name] if turn else []
                for _ in range(block):
                    start = clock()
                    await op()
                    out.append(clock() - start)
        pool = clients["shm"].connection_pool
        try:
            connection = await pool.get_connection()
        except TypeError:  # redis-py < 5.3 needs a command name
            connection = await pool.get_connection("GET")
        assert connection.transport == "shm", "the shm client fell back to the socket"
        await pool.release(connection)
        for client in clients.values():
            await client.aclose()
        return samples

    samples = asyncio.run(run())
    result = {name: {"p50_us": percentile(s, 0.5), "p99_us": percentile(s, 0.99),
                     "samples": len(s)} for name, s in samples.items()}
    result["speedup_p50"] = result["socket"]["p50_us"] / result["shm"]["p50_us"]
    return result


def chart(results: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    modes = list(results["modes"])
    fig, axes = plt.subplots(1, len(WORKLOADS), figsize=(15, 3.4))
    for ax, workload in zip(axes, WORKLOADS, strict=True):
        for offset, (transport, colour, label) in enumerate(
                (("socket", "#999999", "redis-py (redis.asyncio), unix socket + hiredis"),
                 ("shm", "#2a7ab0", "redis-py, shmcli.redis_py (redis_py_asyncio)"))):
            values = [results["modes"][mode][workload][transport]["p50_us"] for mode in modes]
            ax.bar([i + (offset - 0.5) * 0.4 for i in range(len(modes))], values, width=0.4,
                   color=colour, label=label)
        ax.set_xticks(range(len(modes)), modes, fontsize=7, rotation=20)
        ax.set_title(workload, fontsize=9)
        if workload == WORKLOADS[0]:
            ax.set_ylabel("p50 per operation, µs")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=7, loc="lower center", ncol=2)
    fig.suptitle(f"redis-py {results['redis_py']} on {results['server']}, by the module's "
                 "exec mode (lower is better)", fontsize=9)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--chart", action="store_true")
    parser.add_argument("--chart-only", action="store_true",
                        help="redraw the chart from --out's results, measuring nothing")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "redis_py.json"))
    args = parser.parse_args()
    if args.chart_only:
        chart(json.loads(Path(args.out).read_text()), ROOT / "docs" / "img" / "redis_py.png")
        return
    rounds, block = (3, 300) if args.quick else (10, 1000)
    results = {"redis_py": redis.__version__, "hiredis": _hiredis(), "rounds": rounds,
               "block": block, "modes": {}}
    for mode, exec_mode, config in MODES:
        server = Server("redis", exec_mode, config).start()
        try:
            results["server"] = server.key
            rows = results["modes"][mode] = {}
            for workload in WORKLOADS:
                blocks = block // 20 if workload.endswith("pipeline") else block
                if workload.startswith("asyncio"):
                    rows[workload] = measure_asyncio(server, workload, rounds, blocks)
                else:
                    rows[workload] = measure(server, workload, rounds, blocks)
                row = rows[workload]
                print(f"{mode:<13} {workload:<16} unix p50 {row['socket']['p50_us']:8.1f} µs"
                      f"  shm p50 {row['shm']['p50_us']:8.1f} µs"
                      f"  ({row['speedup_p50']:.2f}x)   p99 {row['socket']['p99_us']:.1f}"
                      f" / {row['shm']['p99_us']:.1f} µs", flush=True)
                per_op = row["shm"].get("server_per_op", {})
                if per_op:
                    print(" " * 30 + "shm, per operation on the server: " + ", ".join(
                        f"{name[4:]} {count}" for name, count in per_op.items())
                        + "; client CPU per operation: unix "
                        f"{row['socket']['client_cpu_us_per_op']}, shm "
                        f"{row['shm']['client_cpu_us_per_op']} µs")
        finally:
            server.cleanup()
    results["pipeline_lengths"] = pipeline_lengths(rounds)
    results["floors_p50_us"] = floors(rounds)
    Path(args.out).write_text(json.dumps(results, indent=1) + "\n")
    if args.chart:
        chart(results, ROOT / "docs" / "img" / "redis_py.png")


def _hiredis() -> str | None:
    try:
        import hiredis
    except ImportError:
        return None
    return hiredis.__version__


if __name__ == "__main__":
    main()
