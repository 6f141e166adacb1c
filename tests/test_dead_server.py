"""A dead or frozen server is reported, never waited on forever.

Every wait of the shared-memory client is bounded and re-checks the server's
liveness, so killing the server (kill -9) in the middle of a session turns
into "Server closed the connection", as redis-cli reports a lost connection,
and a server that stops answering hits the caller's timeout.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading

import pytest
from servers import wait_until

from shmcli.channel import ChannelTimeout


def test_killed_server_is_a_lost_connection(make_server, flavour: str) -> None:
    srv = make_server(flavour)
    conn = srv.connect(shm="require", timeout=None)  # no deadline: only liveness ends the wait
    assert conn.execute("PING").text == b"PONG"
    srv.kill()
    with pytest.raises(ConnectionError, match="Server closed the connection"):
        conn.execute("PING")
    assert not conn.connected


def test_server_killed_while_a_reply_is_awaited(make_server) -> None:
    srv = make_server("redis", config={"enable-debug-command": "yes"})
    conn = srv.connect(shm="require", timeout=None)
    conn.execute("SET", "k", "v")
    # Freeze the server so the next request waits, then kill it mid-wait.
    srv.freeze()
    errors: list[BaseException] = []

    def request() -> None:
        try:
            conn.execute("GET", "k")
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    waiter = threading.Thread(target=request)
    waiter.start()
    waiter.join(0.5)
    assert waiter.is_alive()  # really waiting on the frozen server
    srv.kill()
    waiter.join(30)
    assert not waiter.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], ConnectionError)


def test_frozen_server_hits_the_timeout(make_server) -> None:
    srv = make_server("redis")
    conn = srv.connect(shm="require", timeout=0.5)
    assert conn.execute("PING").text == b"PONG"
    srv.freeze()
    try:
        with pytest.raises(ChannelTimeout):
            conn.execute("PING")
        assert not conn.connected  # a late reply must not be taken for the next one
    finally:
        srv.thaw()


def test_cli_reports_an_unreachable_server(make_server) -> None:
    srv = make_server("redis")
    srv.kill()
    run = subprocess.run([sys.executable, "-m", "shmcli", "-s", srv.unix_socket, "PING"],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 1
    assert run.stderr.startswith(f"Could not connect to Redis at {srv.unix_socket}: ")


def children(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return [int(child) for child in f.read().split()]


def socket_inodes(pid: int) -> set[str]:
    links = (os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd"))
    return {link[8:-1] for link in links if link.startswith("socket:[")}


def test_a_fork_child_lets_go_of_the_module_sockets(make_server) -> None:
    """A BGSAVE child inherits the server's descriptors; if it kept the
    module's sockets, a client would see the server's death only when the
    child exits, and the child would hold the session's doorbell."""
    srv = make_server("redis", config={"rdb-key-save-delay": "1000000"})  # 1 s per key
    conn = srv.connect(shm="require", timeout=None)
    conn.execute_many([("SET", f"k{i}", "v") for i in range(30)])
    before = socket_inodes(srv.pid)
    assert conn.execute("BGSAVE").text.startswith(b"Background saving started")
    child = children(srv.pid)
    assert len(child) == 1  # the slow BGSAVE child, alive for ~30 s
    try:
        with open("/proc/net/unix") as f:  # the module's listening socket, by its path
            listening = {line.split()[6] for line in f if line.rstrip().endswith(srv.shm_socket)}
        assert listening and listening <= before
        # the child closes them in its atfork handler, which runs once the
        # child is first scheduled: a moment after the fork, not at once
        wait_until(lambda: not listening & socket_inodes(child[0]),
                   "the fork child to close the module's sockets")
        srv.kill()
        with pytest.raises(ConnectionError, match="Server closed the connection"):
            conn.execute("PING")
    finally:
        try:
            os.kill(child[0], signal.SIGKILL)
        except ProcessLookupError:
            pass
