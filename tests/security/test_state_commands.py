"""Connection-state commands over shared memory: refused, or exactly the socket's error.

AUTH, HELLO (any form) and RESET change who the connection is; the module
must not emulate them from the shared region (issue 9: the user name was read
twice), so over a raw session they are refused with -SHMFALLBACK and the
session keeps its user, protocol and database.  SELECT and CLIENT SETNAME
with bad arguments answer the socket's error byte for byte, and leave the
database and the name as they were.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sec_raw import (
    PASSWORD,
    RawSession,
    client_line,
    del_users,
    is_refusal,
    set_user,
    socket_reply,
)
from servers import Server

from shmcli.resp import Bulk, Integer, Status, parse_one

USER = "stateful"

REFUSED_FORMS: list[tuple[str, ...]] = [
    ("AUTH", PASSWORD), ("AUTH", USER, PASSWORD), ("AUTH", "default", "wrong"),
    ("AUTH", "nobody", "x"), ("auth", USER, PASSWORD), ("HELLO",), ("HELLO", "2"),
    ("HELLO", "3"), ("hello", "3"), ("HELLO", "4"), ("HELLO", "2", "AUTH", USER, PASSWORD),
    ("HELLO", "3", "AUTH", "default", "x"), ("HELLO", "2", "SETNAME", "evil"),
    ("HELLO", "2", "SETNAME", "a\r\nb"), ("HELLO", "2", "AUTH", USER),
    ("RESET",), ("reset",),
]

SOCKET_ERRORS: list[tuple[str, ...]] = [
    ("SELECT", "99999"), ("SELECT", "-1"), ("SELECT", "abc"), ("SELECT", ""),
    ("SELECT", "16"), ("SELECT", "1.5"), ("SELECT", "99999999999999999999"),
    ("CLIENT", "SETNAME", "a b"), ("CLIENT", "SETNAME", "a\nb"),
    ("client", "setname", "tab\there"),
]


@pytest.fixture
def user(server: Server) -> Iterator[Server]:
    set_user(server, USER, "on", f">{PASSWORD}", "~*", "&*", "+@all")
    yield server
    del_users(server, USER)


def state_of(session: RawSession, srv: Server) -> tuple[bytes, bytes, str, str, str]:
    """What the session and its control connection are: protocol, database, user, name."""
    return (session.call("PING"), session.call("ECHO", "x"),
            *(client_line(srv, session.client_id).get(k, "?") for k in ("user", "db", "name")))


@pytest.mark.parametrize("cmd", REFUSED_FORMS, ids=[" ".join(c) for c in REFUSED_FORMS])
def test_identity_commands_are_refused(user: Server, cmd: tuple[str, ...]) -> None:
    srv = user
    with RawSession(srv, USER, PASSWORD) as session:
        assert session.call("SELECT", "3") == b"+OK\r\n"
        before = state_of(session, srv)
        reply = session.call(*cmd)
        assert is_refusal(reply), f"{cmd} over shm answered {reply!r}"
        assert state_of(session, srv) == before
        assert session.call("SET", "where", "3") == b"+OK\r\n"
    with srv.admin() as admin:
        admin.execute("SELECT", "3")
        assert admin.execute("EXISTS", "where") == Integer(1)


@pytest.mark.parametrize("cmd", SOCKET_ERRORS, ids=[" ".join(c) for c in SOCKET_ERRORS])
def test_bad_select_and_setname_get_the_sockets_error(user: Server, cmd: tuple[str, ...]) -> None:
    srv = user
    expected = socket_reply(srv, USER, PASSWORD, *cmd)
    assert expected.startswith(b"-ERR"), expected
    with RawSession(srv, USER, PASSWORD) as session:
        assert session.call("CLIENT", "SETNAME", "before") == b"+OK\r\n"
        before = state_of(session, srv)
        reply = session.call(*cmd)
        assert srv.alive(), f"{cmd} killed the server:\n{srv.log()[-3000:]}"
        assert reply == expected, f"{cmd}: shm {reply!r} != socket {expected!r}"
        assert state_of(session, srv) == before


HELLO_ERRORS: list[tuple[str, ...]] = [
    ("HELLO", "4"), ("HELLO", "2", "SETNAME", "a\r\nb"), ("HELLO", "2", "SETNAME", "a b"),
    ("HELLO", "2", "AUTH", USER), ("HELLO", "2", "AUTH", USER, "wrong"),
    ("HELLO", "2", "BOGUS\r\nOPTION"), ("AUTH", USER, "wrong"), ("AUTH", "nobody", "x"),
]


@pytest.mark.parametrize("cmd", HELLO_ERRORS, ids=[repr(" ".join(c)) for c in HELLO_ERRORS])
def test_failing_identity_commands_through_a_connection(user: Server,
                                                        cmd: tuple[str, ...]) -> None:
    """shmcli sends them over its socket: the socket's exact error (issue 9
    saw CR/LF of a HELLO option come back in an error line), and the user
    stays."""
    srv = user
    expected = socket_reply(srv, USER, PASSWORD, *cmd)
    assert expected.startswith(b"-") and b"\n" not in expected[:-2], expected
    with srv.connect(shm="require", username=USER, password=PASSWORD) as conn:
        assert conn.execute(*cmd) == parse_one(expected), cmd
        assert conn.execute("ACL", "WHOAMI") == Bulk(USER.encode())
        assert conn.execute("PING") == Status(b"PONG")
        assert conn.transport == "shm"
