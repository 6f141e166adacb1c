"""Connection.timed_ping: the latency probe timed in C (native/channel/shm_probe.c).

It must take the transport execute("PING") would take, leave the connection
exactly as usable as a PING would (replies in step, state kept), count a
refused PING's socket retry, and fail like execute() does.  The figures are
real round trips; how fast they are is bench/'s business, not a test's.
"""

from __future__ import annotations

import pytest
from servers import Server

from shmcli.resp import Bulk, Status


@pytest.mark.parametrize("shm", ["require", "off"])
def test_probe_rides_the_transport_execute_would(server: Server, shm: str) -> None:
    with server.connect(shm=shm) as conn:
        samples = [conn.timed_ping() for _ in range(50)]
        assert conn.last_transport == ("shm" if shm == "require" else "socket")
        assert all(0 < ns < 30_000_000_000 for ns in samples)
        # the connection is in step: the next replies are the next commands'
        assert conn.execute("SET", "k", "v") == Status(b"OK")
        assert conn.execute("GET", "k") == Bulk(b"v")


def test_probe_over_tcp(server: Server) -> None:
    with server.connect(unix_socket=None, host="127.0.0.1", port=server.port, shm="off") as conn:
        assert conn.timed_ping() > 0 and conn.last_transport == "socket"
        assert conn.execute("ECHO", "after") == Bulk(b"after")


def test_a_refused_probe_goes_over_the_socket(server: Server) -> None:
    """During a pause the module refuses everything; PING itself is allowed
    by CLIENT PAUSE WRITE, so the socket answers it."""
    with server.connect(shm="require") as conn, server.admin() as admin:
        admin.execute("CLIENT", "PAUSE", 5000, "WRITE")
        try:
            assert conn.timed_ping() > 0
            assert conn.last_transport == "socket"
        finally:
            admin.execute("CLIENT", "UNPAUSE")
        assert conn.timed_ping() > 0 and conn.last_transport == "shm"


def test_probe_in_a_transaction_stays_in_step(server: Server) -> None:
    with server.connect(shm="require") as conn:
        conn.execute("MULTI")
        assert conn.timed_ping() > 0
        reply = conn.execute("EXEC")
        assert reply.items == (Status(b"PONG"),)  # type: ignore[attr-defined]


def test_probe_against_a_dead_server(make_server) -> None:
    srv = make_server("redis", "main-thread")
    for shm in ("require", "off"):
        if not srv.alive():
            srv.start()
        conn = srv.connect(shm=shm)
        srv.kill()
        with pytest.raises(ConnectionError):
            conn.timed_ping()
        assert not conn.connected
        conn.close()
