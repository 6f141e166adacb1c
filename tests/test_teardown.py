"""Sessions end with their clients, and leave nothing behind.

A session holds a mapping, an eventfd and a socket in the server, so every
way a client can go away must release them: a client process killed with
SIGKILL at any moment (mid-handshake, mid-command, mid-fragment), CLIENT KILL
of its control connection, ACL DELUSER of its user, closing the Python
connection, QUIT, or closing only the session's socket.  After each, the
session count drops, the server answers, its data is consistent and its
descriptor count is back at its baseline.  shm.max-sessions bounds the table:
a session over the limit is refused clearly and "auto" falls back to the
socket.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import random
import signal
import time
from collections.abc import Callable

import pytest
from servers import EXEC_MODES, FLAVOURS, Server, fd_count, settled_fd_count, shm_stat, wait_until

import shmcli
from shmcli.channel import ShmChannel
from shmcli.connection import Connection
from shmcli.resp import Array, Bulk, Integer, Nil, Status

SERVERS = [(f, m) for f in FLAVOURS for m in EXEC_MODES]
SERVER_IDS = [f"{f}-{m}" for f, m in SERVERS]


def warm_up(srv: Server) -> None:
    """Open and close one session, so lazily created descriptors exist
    before the baseline is taken."""
    with srv.connect(shm="require") as conn:
        assert conn.execute("PING") == Status(b"PONG")
    wait_until(lambda: shm_stat(srv, "sessions") == 0, "the warm-up session to end")


# ---- clients killed with SIGKILL ----

def traffic(unix_socket: str, index: int, ready: ctypes.Array[ctypes.c_byte],
            stop_at: float) -> None:
    """A client process: a shm session in a tight SET/GET/INCR loop."""
    conn = shmcli.connect(unix_socket=unix_socket, shm="require", timeout=30.0)
    conn.execute("INCR", "counter")
    ready[index] = 1  # a lock-free flag: a killed child cannot leave a lock held
    big = b"x" * 300_000  # over one record: the kill may land mid-fragment
    n = 0
    while time.monotonic() < stop_at:  # a safety net only: the test kills us first
        n += 1
        conn.execute("SET", f"k:{index}", n)
        conn.execute("GET", f"k:{index}")
        conn.execute("INCR", "counter")
        if n % 8 == 0:
            conn.execute_many([("SET", f"p:{index}", n), ("INCR", "counter"),
                               ("GET", f"p:{index}")])
        if n % 32 == 0:
            conn.execute("SET", f"big:{index}", big)
    os._exit(0)


WAVES, PER_WAVE, EARLY_KILLS = 4, 25, 5


@pytest.mark.parametrize(("flavour", "mode"), SERVERS, ids=SERVER_IDS)
def test_killed_client_processes_leave_nothing_behind(
        make_server: Callable[..., Server], flavour: str, mode: str) -> None:
    srv = make_server(flavour, mode)
    warm_up(srv)
    baseline = settled_fd_count(srv)
    ctx = multiprocessing.get_context("fork")
    ready = ctx.RawArray(ctypes.c_byte, WAVES * PER_WAVE)
    rng = random.Random(f"{flavour}-{mode}")
    procs: list[multiprocessing.process.BaseProcess] = []
    try:
        for wave in range(WAVES):
            stop_at = time.monotonic() + 60
            first = wave * PER_WAVE
            wave_procs = [ctx.Process(target=traffic, daemon=True,
                                      args=(srv.unix_socket, first + i, ready, stop_at))
                          for i in range(PER_WAVE)]
            procs += wave_procs
            for p in wave_procs:
                p.start()
            # some die at once: during connect, handshake or their first command
            early = set(rng.sample(range(PER_WAVE), EARLY_KILLS))
            for i in early:
                time.sleep(rng.uniform(0, 0.02))
                os.kill(wave_procs[i].pid, signal.SIGKILL)
            # the others once their traffic runs, in random order at random moments
            rest = [i for i in range(PER_WAVE) if i not in early]
            wait_until(lambda first=first, rest=rest: all(ready[first + i] for i in rest),
                       "the clients' sessions", timeout=60)
            rng.shuffle(rest)
            for i in rest:
                time.sleep(rng.uniform(0, 0.02))
                os.kill(wave_procs[i].pid, signal.SIGKILL)
            for p in wave_procs:
                p.join(10)
                assert p.exitcode == -signal.SIGKILL, "a client ended before it was killed"
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()
                p.join(5)
    became_ready = [i for i in range(WAVES * PER_WAVE) if ready[i]]
    assert len(became_ready) >= WAVES * (PER_WAVE - EARLY_KILLS)

    wait_until(lambda: shm_stat(srv, "sessions") == 0, "every session to end")
    wait_until(lambda: fd_count(srv) == baseline,
               f"the server's descriptors to return to {baseline}")
    assert srv.alive()
    assert shm_stat(srv, "sessions_opened") >= len(became_ready) + 1
    with srv.connect(shm="require") as conn:
        assert conn.execute("PING") == Status(b"PONG")
        counter = conn.execute("GET", "counter")
        assert isinstance(counter, Bulk) and int(counter.data) >= len(became_ready)
        for index in became_ready:
            value = conn.execute("GET", f"k:{index}")
            assert value == Nil("bulk") or isinstance(value, Bulk) and value.data.isdigit(), \
                value
            big = conn.execute("STRLEN", f"big:{index}")
            assert big in (Integer(0), Integer(300_000)), big


# ---- the ways a session ends ----

def open_session(srv: Server, **kw: object) -> tuple[Connection, int]:
    sessions = shm_stat(srv, "sessions")
    conn = srv.connect(shm="require", **kw)
    assert conn.transport == "shm"
    assert conn.execute("SET", "alive", "1") == Status(b"OK")
    assert shm_stat(srv, "sessions") == sessions + 1
    return conn, sessions


def assert_session_gone(srv: Server, sessions: int, fds: int, conn: Connection | None) -> None:
    wait_until(lambda: shm_stat(srv, "sessions") == sessions, "the session to end")
    if conn is not None:
        with pytest.raises(ConnectionError):
            conn.execute("PING")
    wait_until(lambda: fd_count(srv) == fds, f"the server's descriptors to return to {fds}")
    with srv.connect(shm="require") as other:
        assert other.execute("GET", "alive") == Bulk(b"1")


def test_client_kill_of_the_control_connection_ends_the_session(server: Server) -> None:
    warm_up(server)
    fds = settled_fd_count(server)
    conn, sessions = open_session(server)
    client_id = conn.execute("CLIENT", "ID")
    assert isinstance(client_id, Integer)
    with server.admin() as admin:
        listing = admin.execute("CLIENT", "LIST")
        assert isinstance(listing, Bulk) and f"id={client_id.value} ".encode() in listing.data
        assert admin.execute("CLIENT", "KILL", "ID", client_id.value) == Integer(1)
    assert_session_gone(server, sessions, fds, conn)
    conn.close()


def test_acl_deluser_ends_the_session(server: Server) -> None:
    warm_up(server)
    fds = settled_fd_count(server)
    with server.admin() as admin:
        admin.execute("ACL", "SETUSER", "doomed", "on", ">pw", "~*", "&*", "+@all")
    try:
        conn, sessions = open_session(server, username="doomed", password="pw")
        with server.admin() as admin:
            assert admin.execute("ACL", "DELUSER", "doomed") == Integer(1)
        assert_session_gone(server, sessions, fds, conn)
        conn.close()
    finally:
        with server.admin() as admin:
            admin.execute("ACL", "DELUSER", "doomed")


def test_closing_the_connection_ends_the_session(server: Server) -> None:
    warm_up(server)
    fds = settled_fd_count(server)
    conn, sessions = open_session(server)
    conn.close()
    assert_session_gone(server, sessions, fds, None)


def test_quit_over_shm_ends_the_session_and_the_connection(server: Server) -> None:
    warm_up(server)
    fds = settled_fd_count(server)
    conn, sessions = open_session(server)
    client_id = conn.execute("CLIENT", "ID")
    assert isinstance(client_id, Integer)
    assert conn.execute("QUIT") == Status(b"OK")
    assert_session_gone(server, sessions, fds, conn)
    with server.admin() as admin:
        listing = admin.execute("CLIENT", "LIST")
    assert isinstance(listing, Bulk) and f"id={client_id.value} ".encode() not in listing.data


def test_closing_the_session_socket_ends_only_the_session(server: Server) -> None:
    warm_up(server)
    fds = settled_fd_count(server)
    sessions = shm_stat(server, "sessions")
    with server.connect(shm="off") as ctl:
        reply = ctl.execute("SHM.HANDSHAKE")
        assert isinstance(reply, Array)
        token, path, ring, _ = reply.items
        assert isinstance(token, Bulk) and isinstance(path, Bulk) and isinstance(ring, Integer)
        channel = ShmChannel(path.data.decode(), token.data.decode(), ring.value, 10.0)
        assert channel.call(b"*1\r\n$4\r\nPING\r\n") == b"+PONG\r\n"
        assert shm_stat(server, "sessions") == sessions + 1
        channel.close()
        wait_until(lambda: shm_stat(server, "sessions") == sessions, "the session to end")
        # the control connection lives on and may ask for a new session
        assert ctl.execute("PING") == Status(b"PONG")
        again = ctl.execute("SHM.HANDSHAKE")
        assert isinstance(again, Array)
    wait_until(lambda: fd_count(server) == fds, f"the server's descriptors to return to {fds}")


# ---- the session limit ----

def test_max_sessions(flavour: str, make_server: Callable[..., Server]) -> None:
    srv = make_server(flavour, config={"shm.max-sessions": "2"})
    first, second = srv.connect(shm="require"), srv.connect(shm="require")
    try:
        errors = srv.info("errorstats")
        with pytest.raises(shmcli.ShmUnavailable, match="max number of sessions"):
            srv.connect(shm="require")
        with srv.connect(shm="auto") as fallback:
            assert fallback.transport == "socket"
            assert fallback.shm_error and "max number of sessions" in fallback.shm_error
            assert fallback.execute("SET", "k", "v") == Status(b"OK")
            assert fallback.execute("GET", "k") == Bulk(b"v")
        assert srv.info("errorstats") == errors  # a full table is no error of the client's
        assert shm_stat(srv, "handshakes_refused") == 2
        assert first.execute("GET", "k") == Bulk(b"v")
        assert second.execute("PING") == Status(b"PONG")
        assert shm_stat(srv, "sessions") == 2
        first.close()
        wait_until(lambda: shm_stat(srv, "sessions") == 1, "the freed slot")
        with srv.connect(shm="require") as third:
            assert third.execute("GET", "k") == Bulk(b"v")
    finally:
        first.close()
        second.close()
