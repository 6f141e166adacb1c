"""--scan, --bigkeys, --memkeys and --stat against the real redis-cli.

SCAN's order is the server's, so both tools see the same keys in the same
order on the same data: stdout must match byte for byte, over shared memory
and with --shm off, on Redis and Valkey.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time

import pexpect
import pytest
from cli_diff import Case, differences, run_pair, run_tool
from servers import Server

DATA = [("RPUSH", "list", "a", "b", "c"), ("SADD", "set", "x", "y"), ("HSET", "hash", "f", "v"),
        ("ZADD", "zset", "1", "a"), ("SET", "str", "hello"), ("XADD", "stream", "1-1", "f", "v"),
        ("SET", b"bin\x00key\xff", "v"), ("SET", "key:2", "two"), ("SET", "key:22", "x" * 300),
        ("RPUSH", "list2", *"abcdefgh"), ("SET", "quote\"key", "q")]

CASES = [["--scan"], ["--scan", "--pattern", "key:*"], ["--scan", "--pattern", "nomatch*"],
         ["--scan", "--quoted-pattern", '"bin\\x00*"'], ["--scan", "--quoted-pattern", '"*:\\x32"'],
         ["--scan", "--no-raw"], ["--scan", "--csv"], ["--scan", "-i", "0.01"],
         ["--bigkeys"], ["--bigkeys", "--pattern", "key:*"],
         ["--memkeys"], ["--memkeys-samples", "2"], ["--bigkeys", "-n", "5"],
         ["--bigkeys", "--memkeys"], ["--scan", "-n", "5"], ["--bigkeys", "--pattern", "str"],
         ["--bigkeys", "--pattern", "*list*"]]  # 0, 1 and more keys: see SUMMARY_ORDER


@pytest.fixture
def data(server: Server) -> Server:
    with server.admin() as conn:
        conn.execute_many(DATA)
        # The inserts leave the keyspace's hash table mid-rehash, and the
        # server's cron would finish it between the redis-cli run and ours,
        # reordering SCAN.  Every key lookup moves the rehash one bucket on:
        # these finish it now, so both runs see one stable order.
        conn.execute_many([("EXISTS", "no-such-key")] * 256)
    return server


@pytest.mark.parametrize("shm", ["auto", "off"])
def test_keyspace_tools_match_redis_cli(data: Server, shm: str) -> None:
    if data.flavour == "valkey":  # its SCAN order changes from run to run (rehashing)
        for argv in CASES:
            theirs, ours = run_pair(argv, target=["-s", data.unix_socket], shm=shm)
            assert ours.returncode == theirs.returncode == 0
            assert sorted(ours.stdout.split(b"\n")) == sorted(theirs.stdout.split(b"\n")) \
                or "--bigkeys" in argv or "--memkeys" in argv or "--memkeys-samples" in argv
            assert summary(ours.stdout) == summary(theirs.stdout), argv
        return
    differ = differences([Case(argv) for argv in CASES], target=["-s", data.unix_socket],
                         shm=shm)
    assert not differ, "\n".join(differ)


def summary(out: bytes) -> bytes:
    """The bigkeys summary (everything for --scan)."""
    return out.partition(b"-------- summary -------")[2] or b"\n".join(sorted(out.split(b"\n")))


def scan_calls(srv: Server) -> int:
    stats = srv.info("commandstats").get("cmdstat_scan", "calls=0")
    return int(stats.split(",")[0].split("=")[1])


def scan_steps(srv: Server, count: int | None) -> int:
    """How many SCAN calls the server needs for the whole keyspace (its
    hashtable decides: Valkey 8.1+ returns whole buckets per step)."""
    with srv.admin() as conn:
        cursor, steps = b"0", 0
        while True:
            args = ["SCAN", cursor] + (["COUNT", count] if count is not None else [])
            reply = conn.execute(*args)
            steps += 1
            cursor = reply.items[0].data  # type: ignore[attr-defined]
            if cursor == b"0":
                return steps


def test_count_is_passed_to_scan(data: Server) -> None:
    """--count is redis-cli 7.2's: the same keys, in the SCAN steps the
    server takes for that COUNT (more of them for COUNT 1 on most servers)."""
    before = scan_calls(data)
    every = run_tool([sys.executable, "-m", "shmcli"], ["-s", data.unix_socket, "--scan"])
    default_calls = scan_calls(data) - before
    small = run_tool([sys.executable, "-m", "shmcli"],
                     ["-s", data.unix_socket, "--scan", "--count", "1"])
    count_one_calls = scan_calls(data) - before - default_calls
    assert sorted(small.stdout.split(b"\n")) == sorted(every.stdout.split(b"\n"))
    assert len(every.stdout.split(b"\n")) == len(DATA) + 1
    assert (default_calls, count_one_calls) == (scan_steps(data, None), scan_steps(data, 1))


def test_errors_match_redis_cli(make_server) -> None:
    srv = make_server("redis", config={"requirepass": "pw"})
    cases = [Case(["--scan"]), Case(["--bigkeys"]), Case(["-a", "wrong", "--scan"]),
             Case(["-a", "pw", "-n", "99", "--memkeys"]), Case(["-a", "pw", "--stat", "-3", "-2"])]
    differ = differences(cases, target=["-s", srv.unix_socket])
    assert not differ, "\n".join(differ)


def test_ctrl_c_prints_the_partial_summary(make_server) -> None:
    srv = make_server("redis")
    with srv.admin() as conn:
        conn.execute_many([("SET", f"k{i}", "v") for i in range(5000)])
    outputs = []
    for tool in (["stdbuf", "-oL", "redis-cli"], [sys.executable, "-m", "shmcli"]):
        proc = subprocess.Popen([*tool, "-s", srv.unix_socket, "--bigkeys", "-i", "0.5"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(1.5)  # past the first 100 SCAN calls, asleep in -i
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
        outputs.append((proc.returncode, out))
    for returncode, out in outputs:
        assert returncode == 0
        assert re.search(rb"-------- summary -------\n\n\[\d\d\.\d\d%\] Sampled \d+ keys", out)
        assert b"strings with" in out


def test_stat_prints_redis_clis_columns(data: Server) -> None:
    lines = []  # stdbuf: redis-cli's lines would die in its buffer at SIGINT
    for tool in (["stdbuf", "-oL", "redis-cli"], [sys.executable, "-m", "shmcli"]):
        proc = subprocess.Popen([*tool, "-s", data.unix_socket, "--stat", "-i", "0.3"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(1.2)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
        assert b"Traceback" not in err
        lines.append(out.decode().splitlines())
    theirs, ours = lines
    assert ours[:2] == theirs[:2] and ours[0].startswith("------- data ------")
    row = re.compile(r"(\d+) +(\d+(\.\d\d)?[BKMG]) +(\d+) +(\d+) +(\d+) \(\+(\d+)\) +(\d+) *$")
    for line in ours[2:]:
        match = row.fullmatch(line)
        assert match, line
        assert match.group(1) == str(len(DATA))  # keys: the sum over the dbs
        assert re.fullmatch(r"\d+ +\S+ +", line[:19]) and len(line) >= 19 + 8 + 8 + 19
    assert len(ours) >= 4


def stat_through_a_restart(srv: Server, argv: list[str], env: dict[str, str] | None = None
                           ) -> tuple[bytes, bytes, int]:
    """--stat on `srv`, which is stopped and started again with 5 keys
    (the lines before show 0): stdout up to a line that shows them, stderr
    and the status after Ctrl-C."""
    with srv.admin() as conn:
        conn.execute("FLUSHALL")
    proc = subprocess.Popen([*argv, "--stat", "-i", "0.1"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env={**os.environ, **(env or {})})
    assert proc.stdout is not None
    watchdog = threading.Timer(60, proc.kill)  # a run that stops short fails, never hangs
    watchdog.start()
    try:
        out = b"".join(proc.stdout.readline() for _ in range(3))
        srv.stop()
        srv.start()
        with srv.admin() as conn:
            conn.execute("MSET", *[f"k{i}" for i in range(10)])
        while not re.search(rb"(^|\r)5 +\S+ ", line := proc.stdout.readline()):
            out += line
            assert line, out
        out += line
        proc.send_signal(signal.SIGINT)
        rest, err = proc.communicate(timeout=30)
    finally:
        watchdog.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return out + rest, err, proc.returncode


def test_stat_goes_on_after_a_restart(make_server) -> None:
    """As redis-cli: `Reconnecting... N` once a second while the server is
    away, then the lines go on.  redis-cli reconnects over TCP only (even
    after -s) and writes the notice on stdout whatever it is; shmcli
    reconnects the way it connected, and writes the notice on stdout with
    redis-cli's bytes on a terminal (FAKETTY here), on stderr otherwise."""
    srv = make_server("redis")
    tcp = ["-p", str(srv.port)]
    out, err, _ = stat_through_a_restart(srv, ["stdbuf", "-oL", "redis-cli", *tcp])
    assert b"\r\x1b[0KReconnecting... 1\r" in out and b"Error" not in err
    for shm, target in (("auto", ["-s", srv.unix_socket]), ("off", tcp)):
        ours = [sys.executable, "-m", "shmcli", "--shm", shm, *target]
        out, err, status = stat_through_a_restart(srv, ours, {"FAKETTY": "1"})
        assert b"\r\x1b[0KReconnecting... 1\r" in out and err == b"", (out, err)
        assert re.search(rb"\r\x1b\[0K5 +\S+ ", out), out  # the notice cleared, the line next
        assert status == 130  # Ctrl-C, as ever
        out, err, status = stat_through_a_restart(srv, ours)
        assert b"Reconnecting" not in out and err.startswith(b"Reconnecting... 1\n"), err
        assert re.fullmatch(rb"(Reconnecting\.\.\. \d+\n)+", err), err


def test_scan_shows_progress_on_a_terminal_stderr_only(data: Server, tmp_path) -> None:
    """stdout to a file stays redis-cli's bytes; the terminal on stderr sees
    how far the scan got."""
    out = tmp_path / "keys"
    child = pexpect.spawn("/bin/sh", ["-c", f"{sys.executable} -m shmcli -s "
                                            f"{data.unix_socket} --scan > {out}"], timeout=30)
    child.expect(pexpect.EOF)
    assert b"scanned 11 keys of 11" in child.before
    plain = run_tool([sys.executable, "-m", "shmcli"], ["-s", data.unix_socket, "--scan"])
    assert sorted(out.read_bytes().split()) == sorted(plain.stdout.split())  # Valkey's order moves
    assert plain.stderr == b""
