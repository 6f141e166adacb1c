"""Time Python round trips: shmcli's API, its raw channel, or redis-py + hiredis.

Run by bench/run.py as a subprocess per measurement slice (so every client
starts from the same state and the slices can be interleaved with the C
ones); prints one JSON line in shm_bench.c's format.

  --kind api      shmcli.connect(..., shm="require") and conn.execute(...)
  --kind raw      shmcli.channel.ShmChannel.call(pre-encoded RESP): the floor
                  of the Python binding (one cffi call, no encoding, no parsing)
  --kind redispy  redis.Redis over the unix socket or TCP, with hiredis

The loop is the same for every kind: one bound call per round trip and one
perf_counter_ns per round trip (the end of one is the start of the next).
Replies are checked in full during the warm-up and once after the run.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from array import array
from collections.abc import Callable
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from stats import Histogram, thread_cpu_ns  # noqa: E402

PATTERN = b"abcdefghijklmnopqrstuvwxyz"


def value_of(size: int) -> bytes:
    """The value shm_bench.c writes: 'a'..'z' repeated."""
    return (PATTERN * (size // len(PATTERN) + 1))[:size]


def resp(*args: bytes) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


def make_api(opts: argparse.Namespace, key: bytes, value: bytes
             ) -> tuple[Callable[[], object], Callable[[object], bool], Callable[[], None]]:
    import shmcli
    from shmcli.resp import Bulk, Status

    conn = shmcli.connect(unix_socket=opts.socket, shm="require", timeout=10.0)
    assert conn.transport == "shm"
    if opts.cmd == "get":
        assert conn.execute("SET", key, value) == Status(b"OK")
    op = {"ping": partial(conn.execute, "PING"), "set": partial(conn.execute, "SET", key, value),
          "get": partial(conn.execute, "GET", key)}[opts.cmd]
    expect = {"ping": Status(b"PONG"), "set": Status(b"OK"), "get": Bulk(value)}[opts.cmd]
    return op, expect.__eq__, conn.close


def make_raw(opts: argparse.Namespace, key: bytes, value: bytes
             ) -> tuple[Callable[[], object], Callable[[object], bool], Callable[[], None]]:
    import shmcli
    from shmcli.channel import ShmChannel
    from shmcli.resp import Array

    control = shmcli.connect(unix_socket=opts.socket, shm="off", timeout=10.0)
    reply = control.execute("SHM.HANDSHAKE")
    if not isinstance(reply, Array):  # an error, or null: no session free (shm.max-sessions)
        raise SystemExit(f"SHM.HANDSHAKE: no session ({reply!r})")
    token, path, ring_size, _version = reply.items
    channel = ShmChannel(path.data.decode(), token.data.decode(), ring_size.value, 10.0)
    set_req = resp(b"SET", key, value)
    if opts.cmd == "get":
        assert channel.call(set_req) == b"+OK\r\n"
    request = {"ping": resp(b"PING"), "set": set_req, "get": resp(b"GET", key)}[opts.cmd]
    expect = {"ping": b"+PONG\r\n", "set": b"+OK\r\n",
              "get": b"$%d\r\n%s\r\n" % (len(value), value)}[opts.cmd]

    def close() -> None:
        channel.close()
        control.close()

    return partial(channel.call, request), expect.__eq__, close


def make_redispy(opts: argparse.Namespace, key: bytes, value: bytes
                 ) -> tuple[Callable[[], object], Callable[[object], bool], Callable[[], None]]:
    import redis
    from redis.utils import HIREDIS_AVAILABLE

    if not HIREDIS_AVAILABLE:
        sys.exit("py_bench: redis-py does not see hiredis (pip install hiredis)")
    if opts.transport == "unix":
        client = redis.Redis(unix_socket_path=opts.socket, socket_timeout=10.0)
    else:
        client = redis.Redis(host="127.0.0.1", port=opts.port, socket_timeout=10.0)
    if opts.cmd == "get":
        assert client.set(key, value) is True
    op = {"ping": client.ping, "set": partial(client.set, key, value),
          "get": partial(client.get, key)}[opts.cmd]
    expect: object = {"ping": True, "set": True, "get": value}[opts.cmd]
    return op, expect.__eq__, client.close


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kind", choices=("api", "raw", "redispy"), required=True)
    ap.add_argument("--transport", choices=("shm", "unix", "tcp"), default="shm")
    ap.add_argument("--socket", help="the server's unix socket")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--cmd", choices=("ping", "set", "get"), default="ping")
    ap.add_argument("--value-size", type=int, default=16)
    ap.add_argument("--duration", type=float, default=1.0)
    ap.add_argument("--warmup", type=float, default=0.2)
    ap.add_argument("--server-pid", type=int, default=0)
    opts = ap.parse_args()

    key = b"shm_bench:%d" % opts.value_size
    value = value_of(opts.value_size)
    make = {"api": make_api, "raw": make_raw, "redispy": make_redispy}[opts.kind]
    op, check, close = make(opts, key, value)

    warm_end = time.perf_counter() + opts.warmup
    while True:
        reply = op()
        if not check(reply):
            sys.exit(f"py_bench: unexpected reply {reply!r:.200}")
        if time.perf_counter() >= warm_end:
            break

    samples = array("q")
    append = samples.append
    clock = time.perf_counter_ns
    srv0 = thread_cpu_ns(opts.server_pid) if opts.server_pid else 0
    cpu0 = time.process_time_ns()
    start = t0 = clock()
    end_at = start + int(opts.duration * 1e9)
    while True:
        reply = op()
        t1 = clock()
        append(t1 - t0)
        if t1 >= end_at:
            break
        t0 = t1
    wall = t1 - start
    cpu = time.process_time_ns() - cpu0
    srv = thread_cpu_ns(opts.server_pid) - srv0 if opts.server_pid else 0
    if not check(reply):
        sys.exit(f"py_bench: unexpected reply {reply!r:.200}")
    close()

    hist = Histogram()
    hist.add_samples(samples)
    print(json.dumps({"transport": opts.transport, "kind": opts.kind, "cmd": opts.cmd,
                      "value_size": opts.value_size, "wall_ns": wall, "client_cpu_ns": cpu,
                      "server_cpu_ns": srv, **hist.record()}))


if __name__ == "__main__":
    main()
