"""The Python API as a script uses it (issue 12): plain values, errors as
exceptions on request, a clear error for a missing command, and reconnection
after a server restart when asked for, with the db and protocol restored and
a new shared-memory session."""

from __future__ import annotations

import logging
import threading
import time

import pytest
from servers import Server

import shmcli
from shmcli.resp import Bulk, Error, Integer, Nil, Status


def test_plain_values_and_raised_errors(server: Server) -> None:
    with shmcli.connect(unix_socket=server.unix_socket, protocol=3) as conn:
        conn.execute("HSET", "h", "f", "v")
        assert shmcli.to_python(conn.execute("HGETALL", "h")) == {b"f": b"v"}
        assert shmcli.to_python(conn.execute("HGETALL", "h"), encoding="utf-8") == {"f": "v"}
        assert isinstance(conn.execute("LPUSH", "h", "x"), Error)  # a value by default
    with shmcli.connect(unix_socket=server.unix_socket, raise_errors=True) as conn:
        with pytest.raises(shmcli.ReplyError) as raised:
            conn.execute("LPUSH", "h", "x")
        assert raised.value.code == "WRONGTYPE" and "WRONGTYPE" in str(raised.value)
        with pytest.raises(shmcli.ReplyError):  # the first error, after every reply
            conn.execute_many([("SET", "a", "1"), ("INCR", "h"), ("SET", "b", "2")])
        assert conn.execute("MGET", "a", "b").items == (Bulk(b"1"), Bulk(b"2"))  # type: ignore[attr-defined]


def test_a_missing_command_is_a_clear_error(server: Server) -> None:
    with shmcli.connect(unix_socket=server.unix_socket) as conn:
        with pytest.raises(ValueError, match="needs a command"):
            conn.execute()
        with pytest.raises(ValueError, match="needs a command"):
            conn.execute_many([("PING",), ()])
        assert conn.execute("PING") == Status(b"PONG")


def test_without_retries_a_restart_leaves_the_connection_closed(make_server) -> None:
    srv = make_server("redis", "main-thread")
    conn = srv.connect(shm="require")
    srv.restart()
    for _ in range(2):
        with pytest.raises(ConnectionError):
            conn.execute("PING")
    assert not conn.connected
    conn.close()


def test_retries_reopen_the_connection_after_a_restart(
        make_server, caplog: pytest.LogCaptureFixture) -> None:
    srv = make_server("redis", "main-thread")
    conn = srv.connect(shm="require", protocol=3, db=3, retries=5)
    conn.execute("SELECT", 5)
    conn.execute("SET", "k", "before")
    srv.restart()  # no persistence: the data is gone, the connection's state is not
    with caplog.at_level(logging.WARNING, logger="shmcli"):
        assert conn.execute("SET", "k", "after") == Status(b"OK")
    assert conn.reconnects == 1 and "reconnected" in caplog.text
    assert (conn.db, conn.protocol, conn.transport) == (5, 3, "shm")
    assert conn.execute("HELLO").pairs[2][1] == Integer(3)  # type: ignore[attr-defined]
    with srv.admin() as admin:
        admin.execute("SELECT", 5)
        assert admin.execute("GET", "k") == Bulk(b"after")
    conn.close()


def test_retries_wait_for_a_server_that_comes_back(make_server) -> None:
    srv = make_server("redis", "main-thread")
    conn = srv.connect(shm="require", retries=8)
    srv.kill()
    back = threading.Timer(0.5, srv.start)
    back.start()
    try:
        assert conn.execute("PING") == Status(b"PONG")  # backs off until it is back
    finally:
        back.join()
    assert conn.reconnects == 1 and conn.transport == "shm"
    conn.close()


def test_retries_give_up_and_never_replay_a_transaction(make_server) -> None:
    srv = make_server("redis", "main-thread")
    conn = srv.connect(shm="require", retries=2)
    srv.kill()
    started = time.monotonic()
    with pytest.raises(ConnectionError):
        conn.execute("PING")
    assert time.monotonic() - started < 5
    srv.start()
    conn.execute("MULTI")
    conn.execute("INCR", "n")
    srv.restart()
    with pytest.raises(ConnectionError):  # the transaction died with the connection
        conn.execute("EXEC")
    assert isinstance(conn.execute("GET", "n"), Nil)  # then it reconnects
    conn.close()
