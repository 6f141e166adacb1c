"""One-shot shmcli commands against the real redis-cli: same stdout, same exit code.

The groundwork of issue #3's differential suite: each case runs redis-cli and
shmcli with the same arguments against the same server (stdout a pipe, so
redis-cli prints raw), over shared memory and with --shm off.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from servers import Server

# Read-only or idempotent commands, so both tools see the same data.
CASES = [
    ("GET", "s"), ("GET", "missing"), ("STRLEN", "s"), ("LRANGE", "l", "0", "-1"),
    ("HGETALL", "h"), ("SMEMBERS", "one"), ("ZRANGE", "z", "0", "-1", "WITHSCORES"),
    ("EXISTS", "s", "l"), ("TYPE", "h"), ("NOSUCHCOMMAND",), ("GET",), ("LPOP", "h"),
    ("INFO", "keyspace"), ("CLIENT", "GETNAME"), ("PING",), ("ECHO", "a\tb \"q\""),
    ("OBJECT", "ENCODING", "l"), ("SET", "s", "hello world"),
]


@pytest.fixture
def data(server: Server) -> Server:
    with server.admin() as conn:
        conn.execute_many([("SET", "s", "hello world"), ("RPUSH", "l", "a", "", "c d"),
                           ("HSET", "h", "f", "v", "g", "w"), ("SADD", "one", "x"),
                           ("ZADD", "z", "1.5", "m", "2", "n")])
    return server


def run(argv: list[str]) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(argv, capture_output=True, timeout=60)


@pytest.mark.parametrize("shm", ["auto", "off"])
def test_one_shot_output_matches_redis_cli(data: Server, shm: str) -> None:
    differ = []
    for case in CASES:
        theirs = run(["redis-cli", "-s", data.unix_socket, *case])
        ours = run([sys.executable, "-m", "shmcli", "--shm", shm, "-s", data.unix_socket, *case])
        if (ours.stdout, ours.returncode) != (theirs.stdout, theirs.returncode):
            differ.append(f"{case}: shmcli {ours.stdout!r} rc={ours.returncode}, "
                          f"redis-cli {theirs.stdout!r} rc={theirs.returncode}")
    assert not differ, "\n".join(differ)
