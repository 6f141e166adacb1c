"""One-shot shmcli commands against the real redis-cli: same stdout, same exit code.

The groundwork of issue #3's differential suite: each case runs redis-cli and
shmcli with the same arguments against the same server (stdout a pipe, so
redis-cli prints raw), over shared memory and with --shm off.
"""

from __future__ import annotations

import os
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


SAMPLE = [("SET", "s", "hello world"), ("RPUSH", "l", "a", "", "c d"),
          ("HSET", "h", "f", "v", "g", "w"), ("SADD", "one", "x"),
          ("ZADD", "z", "1.5", "m", "2", "n")]


@pytest.fixture
def data(server: Server) -> Server:
    with server.admin() as conn:
        conn.execute_many(SAMPLE)
    return server


def run(argv: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
    environ = {k: v for k, v in os.environ.items() if k != "FAKETTY"}
    return subprocess.run(argv, capture_output=True, timeout=60, env={**environ, **(env or {})})


def compare(server: Server, argvs: list[list[str]], shm: str) -> list[str]:
    differ = []
    for argv in argvs:
        theirs = run(["redis-cli", "-s", server.unix_socket, *argv])
        ours = run([sys.executable, "-m", "shmcli", "--shm", shm, "-s", server.unix_socket, *argv])
        if (ours.stdout, ours.returncode) != (theirs.stdout, theirs.returncode):
            differ.append(f"{argv}: shmcli {ours.stdout!r} rc={ours.returncode}, "
                          f"redis-cli {theirs.stdout!r} rc={theirs.returncode}")
    return differ


@pytest.mark.parametrize("shm", ["auto", "off"])
def test_one_shot_output_matches_redis_cli(data: Server, shm: str) -> None:
    differ = compare(data, [list(case) for case in CASES], shm)
    assert not differ, "\n".join(differ)


OUTPUT_FLAGS = [["--raw"], ["--no-raw"], ["--csv"], ["--json"], ["--quoted-json"],
                ["--csv", "--raw"], ["--raw", "--no-raw"], ["-3"], ["-3", "--no-raw"],
                ["--json", "-2"], ["-d", ","], ["-D", "|"]]
FLAG_CASES = [("LRANGE", "l", "0", "-1"), ("HGETALL", "h"), ("GET", "missing"),
              ("NOSUCHCOMMAND",), ("ZRANGE", "z", "0", "-1", "WITHSCORES")]


def test_output_flags_match_redis_cli(make_server) -> None:
    """Every output flag, and the last one winning, on one server (the
    formats themselves are covered reply type by reply type in test_output)."""
    srv = make_server("redis")
    with srv.admin() as conn:
        conn.execute_many(SAMPLE)
    differ = compare(srv, [[*flags, *case] for flags in OUTPUT_FLAGS for case in FLAG_CASES],
                     "auto")
    assert not differ, "\n".join(differ)


def test_faketty_selects_the_human_format(data: Server) -> None:
    for case in (("LRANGE", "l", "0", "-1"), ("GET", "missing"), ("HGETALL", "h")):
        theirs = run(["redis-cli", "-s", data.unix_socket, *case], env={"FAKETTY": "1"})
        ours = run([sys.executable, "-m", "shmcli", "-s", data.unix_socket, *case],
                   env={"FAKETTY": "1"})
        assert ours.stdout == theirs.stdout, case
        assert b")" in ours.stdout or b"(nil)" in ours.stdout  # really the human format


def run_both(server: Server, argv: list[str], stdin: bytes = b"",
             ) -> tuple[subprocess.CompletedProcess[bytes], subprocess.CompletedProcess[bytes]]:
    def one(tool: list[str]) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run([*tool, "-s", server.unix_socket, *argv], input=stdin,
                              capture_output=True, timeout=60)
    return one(["redis-cli"]), one([sys.executable, "-m", "shmcli"])


@pytest.mark.parametrize("argv", [["-r", "3", "ECHO", "x"], ["-r", "2", "-i", "0.01", "PING"],
                                  ["-r", "0", "PING"], ["-a", "nopass", "PING"],
                                  ["--no-auth-warning", "-a", "nopass", "PING"]])
def test_repeat_and_auth_warnings_match_redis_cli(make_server, argv: list[str]) -> None:
    srv = make_server("redis")
    theirs, ours = run_both(srv, argv)
    assert (ours.stdout, ours.stderr, ours.returncode) == \
        (theirs.stdout, theirs.stderr, theirs.returncode)


def test_x_reads_the_last_argument_from_stdin(make_server) -> None:
    srv = make_server("redis")
    value = b"line one\nline two\n\x00binary"
    for tool, key in ((["redis-cli"], "theirs"), ([sys.executable, "-m", "shmcli"], "ours")):
        run = subprocess.run([*tool, "-s", srv.unix_socket, "-x", "SET", key], input=value,
                             capture_output=True, timeout=60)
        assert run.stdout == b"OK\n"
    with srv.admin() as conn:
        assert conn.execute("GET", "theirs") == conn.execute("GET", "ours")
        assert conn.execute("GET", "ours").data == value


def test_uris_match_redis_cli(make_server) -> None:
    srv = make_server("redis", config={"requirepass": "s3cret"})
    with srv.admin() as conn:
        conn.execute_many([("SELECT", "2"), ("SET", "in-db-2", "v")])
    base = f"127.0.0.1:{srv.port}"
    cases = [[f"redis://:s3cret@{base}/2", "DBSIZE"], [f"redis://default:s3cret@{base}", "PING"],
             [f"redis://:s%33cret@{base}/2", "GET", "in-db-2"], [f"redis://{base}", "PING"],
             ["http://x", "PING"], [f"redis://%zz@{base}", "PING"], [f"redis://%4@{base}", "PING"],
             [f"redis://:wrong@{base}/2", "DBSIZE"]]
    differ = []
    for uri, *command in cases:
        for extra in ([], ["--no-auth-warning"]):
            argv = [*extra, "-u", uri, *command]
            theirs = run(["redis-cli", *argv])
            ours = run([sys.executable, "-m", "shmcli", *argv])
            if (ours.stdout, ours.stderr, ours.returncode) != \
                    (theirs.stdout, theirs.stderr, theirs.returncode):
                differ.append(f"{argv}:\n  shmcli    {ours!r}\n  redis-cli {theirs!r}")
    assert not differ, "\n".join(differ)


@pytest.mark.parametrize("argv", [["--bogus", "PING"], ["-p"], ["-n"], ["-r"],
                                  ["-p", "abc", "PING"], ["-p", "1", "PING"]])
def test_bad_flags_and_unreachable_servers_match_redis_cli(argv: list[str]) -> None:
    theirs = run(["redis-cli", *argv])
    ours = run([sys.executable, "-m", "shmcli", *argv])
    assert (ours.stdout, ours.stderr, ours.returncode) == \
        (theirs.stdout, theirs.stderr, theirs.returncode)
    assert ours.returncode == 1
