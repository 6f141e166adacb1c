"""A stdout nobody reads (`shmcli ... | head -1`), against the real redis-cli.

redis-cli dies of SIGPIPE at its first write in every mode but its shell,
silently (-13 from subprocess, 141 in a shell); the stdin mode ignores the
signal, runs every remaining command and exits 0.  Each run here gets a pipe
whose read end is closed before it starts, so the first write always finds
no reader: no timing, no race with a `head` that has not exited yet.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence

import pytest
from cli_diff import REDIS_CLI, SHMCLI
from servers import Server


def run_unread(tool: Sequence[str], argv: Sequence[str], stdin: bytes = b""
               ) -> tuple[int, bytes]:
    """(exit status, stderr) of a run whose stdout has no reader."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        run = subprocess.run([*tool, *argv], input=stdin, stdout=write_end,
                             stderr=subprocess.PIPE, timeout=120)
    finally:
        os.close(write_end)
    return run.returncode, run.stderr


# --stat -i 0.01: redis-cli's stdout is fully buffered in a pipe, and its
# first write comes when 4 KiB of lines are there (50 s at the default -i).
CASES = [
    (["-r", "1000", "GET", "k"], b""), (["--scan"], b""), (["--scan", "--pattern", "key:1*"], b""),
    (["--bigkeys"], b""), (["--memkeys"], b""), (["--stat", "-i", "0.01"], b""),
    (["--pipe"], b"SET a 1\r\nGET a\r\n"), (["--eval", "/dev/null"], b""),
    (["SUBSCRIBE", "channel"], b""), (["ECHO", "x"], b""), (["-x", "ECHO"], b"in"),
]


@pytest.mark.parametrize("shm", ["auto", "off"])
def test_closed_stdout_ends_every_mode_as_redis_cli(server: Server, shm: str) -> None:
    with server.admin() as conn:
        conn.execute_many([("SET", f"key:{i}", "v" * i) for i in range(200)])
        conn.execute("SET", "k", "v")
    target = ["-s", server.unix_socket]
    differ = []
    for argv, stdin in CASES:
        theirs = run_unread(REDIS_CLI, [*target, *argv], stdin)
        ours = run_unread([*SHMCLI, "--shm", shm], [*target, *argv], stdin)
        if ours != theirs:
            differ.append(f"{argv}: shmcli {ours!r}, redis-cli {theirs!r}")
    assert not differ, "\n".join(differ)


@pytest.mark.parametrize("shm", ["auto", "off"])
def test_stdin_mode_runs_every_command_into_a_closed_stdout(server: Server, shm: str) -> None:
    """The issue's `shmcli < 10k-commands.txt | head -1`: redis-cli prints
    nothing more, still runs the 10,000 commands and exits 0."""
    commands = b"INCR n\n" * 10_000
    target = ["-s", server.unix_socket]
    results = []
    for tool in (REDIS_CLI, [*SHMCLI, "--shm", shm]):
        with server.admin() as conn:
            conn.execute("DEL", "n")
        status, err = run_unread(tool, target, commands)
        with server.admin() as conn:
            results.append((status, err, conn.execute("GET", "n")))
    assert results[1] == results[0]
    assert results[0][:2] == (0, b"")


@pytest.mark.parametrize("argv", [["--latency"], ["--latency-history", "-i", "0.2"],
                                  ["--latency-dist", "-i", "0.2"],
                                  ["--intrinsic-latency", "1"]])
def test_closed_stdout_ends_the_latency_modes_as_redis_cli(make_server, argv: list[str]
                                                           ) -> None:
    srv = make_server("redis")
    target = ["-s", srv.unix_socket]
    theirs = run_unread(REDIS_CLI, [*target, *argv])
    ours = run_unread(SHMCLI, [*target, *argv])
    assert ours == theirs == (-13, b"")
