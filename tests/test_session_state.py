"""Per-connection state over shared memory behaves as it does on a socket.

RedisModule_Call runs every command on a temporary client, so the module
emulates the state a connection carries where it can: the selected db
(SELECT), the name (CLIENT SETNAME/GETNAME), CLIENT ID and QUIT.  Who the
connection is (its ACL user and its protocol) is fixed for a session: the
module takes user, db and protocol from the control connection at
SHM.HANDSHAKE, refuses AUTH, HELLO and RESET (every form), and ends the
session when the control connection's user changes.  The connection layer
runs those three on its socket and opens a new session after them.

Two kinds of checks:

* raw ShmChannel sessions prove what the module itself does (the Python
  connection is not involved): data lands in the selected db, the session
  has the control connection's protocol, AUTH/HELLO/RESET get -SHMFALLBACK
  and change nothing, a user change on the control connection ends the
  session;
* differential runs through the connection layer: the same sequence once with
  shm="require" and once with shm="off", replies compared (HELLO's `id` is
  checked against CLIENT ID of the same connection, then masked), with the
  session back on shared memory afterwards.

Most tests use the `server` fixture (Redis 7.0, Valkey 8, both executors);
requirepass and `timeout` need servers of their own.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence

import pytest
from servers import RawSocket, shm_stat, wait_until

from shmcli.channel import ChannelClosed, ShmChannel
from shmcli.connection import Connection
from shmcli.resp import (
    Array,
    Bulk,
    Error,
    Integer,
    Map,
    Nil,
    Push,
    Reply,
    Status,
    encode_command,
)

Command = Sequence[bytes | str | int]
REFUSAL = b"-SHMFALLBACK "


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------


class RawSession:
    """A raw ShmChannel plus the socket connection it is bound to."""

    def __init__(self, server, protocol: int = 2, **connect_kw: object) -> None:
        self.control = server.connect(shm="off", protocol=protocol, **connect_kw)
        hs = self.control.execute("SHM.HANDSHAKE")
        assert isinstance(hs, Array), hs
        token, path, ring = hs.items[0], hs.items[1], hs.items[2]
        self.channel = ShmChannel(path.data.decode(), token.data.decode(), ring.value, 30)
        client_id = self.control.execute("CLIENT", "ID")
        assert isinstance(client_id, Integer)
        self.client_id = client_id.value

    def call(self, *args: bytes | str | int) -> bytes:
        return self.channel.call(encode_command(*args))

    def close(self) -> None:
        self.channel.close()
        self.control.close()


@contextlib.contextmanager
def raw_pair(server, protocol: int = 2) -> Iterator[tuple[RawSession, RawSocket]]:
    session, sock = RawSession(server, protocol), RawSocket(server.unix_socket, protocol)
    try:
        yield session, sock
    finally:
        session.close()
        sock.close()


@contextlib.contextmanager
def acl_user(server, name: str, *rules: str) -> Iterator[None]:
    """An ACL user with password "pw" and `rules`, deleted afterwards."""
    with server.admin() as admin:
        assert admin.execute("ACL", "SETUSER", name, "reset", "on", ">pw",
                             *rules) == Status(b"OK")
    try:
        yield
    finally:
        with server.admin() as admin:
            admin.execute("ACL", "DELUSER", name)


def alice(server) -> contextlib.AbstractContextManager[None]:
    """An ACL user limited to keys a:*, with password "pw"."""
    return acl_user(server, "alice", "~a:*", "+@all")


def bob(server) -> contextlib.AbstractContextManager[None]:
    """An ACL user limited to keys b:* who may not run FLUSHALL, password "pw"."""
    return acl_user(server, "bob", "~b:*", "+@all", "-flushall")


def admin_get(server, db: int, key: str) -> Reply:
    with server.admin() as admin:
        admin.execute("SELECT", db)
        return admin.execute("GET", key)


def client_fields(server, client_id: int) -> dict[str, str]:
    with server.admin() as admin:
        line = admin.execute("CLIENT", "LIST", "ID", client_id)
    assert isinstance(line, Bulk) and line.data, f"client {client_id} is not connected"
    return dict(f.split("=", 1) for f in line.data.decode().split() if "=" in f)


def client_connected(server, client_id: int) -> bool:
    with server.admin() as admin:
        line = admin.execute("CLIENT", "LIST", "ID", client_id)
    assert isinstance(line, Bulk), line
    return bool(line.data)


def own_client_id(conn: Connection) -> int:
    reply = conn.execute("CLIENT", "ID")
    assert isinstance(reply, Integer), reply
    return reply.value


def assert_refused(session: RawSession, *cmd: bytes | str | int) -> None:
    """`cmd` over the raw session gets the refusal; the session goes on."""
    reply = session.call(*cmd)
    assert reply.startswith(REFUSAL), (cmd, reply)
    session.channel.resume()


def shm_counters(server) -> tuple[int, int]:
    info = server.info("shm")
    return int(info["shm_commands"]), int(info["shm_refused"])


def wait_for_sessions(server, count: int) -> None:
    wait_until(lambda: shm_stat(server, "sessions") == count, f"shm_sessions == {count}")


def mask_hello_id(reply: Reply, expected_id: int) -> Reply:
    """HELLO's reply with its `id` checked against `expected_id`, then zeroed."""
    if isinstance(reply, Map):
        pairs = list(reply.pairs)
        keys = [k for k, _ in pairs]
        at = keys.index(Bulk(b"id"))
        assert pairs[at][1] == Integer(expected_id), reply
        pairs[at] = (pairs[at][0], Integer(0))
        return Map(pairs)
    if isinstance(reply, Array):
        items = list(reply.items)
        at = items.index(Bulk(b"id")) + 1
        assert items[at] == Integer(expected_id), reply
        items[at] = Integer(0)
        return Array(items)
    return reply  # an error


def run_both(server, commands: Sequence[Command], protocol: int = 2, pipelined: bool = False,
             **connect_kw: object) -> tuple[list[Reply], list[Reply]]:
    """The sequence over shm (required) and over the socket, HELLO ids masked;
    the shm connection must end on shared memory, with one session."""
    results = []
    for shm in ("require", "off"):
        with server.connect(shm=shm, protocol=protocol, **connect_kw) as conn:
            if pipelined:
                replies = conn.execute_many(commands)
            else:
                replies = [conn.execute(*cmd) for cmd in commands]
            for at, cmd in enumerate(commands):
                if str(cmd[0]).upper() == "HELLO":
                    replies[at] = mask_hello_id(replies[at], own_client_id(conn))
            if shm == "require":
                assert conn.transport == "shm", conn.shm_error
                wait_for_sessions(server, 1)  # the replaced sessions are gone
            results.append(replies)
    return results[0], results[1]


def diff(commands: Sequence[Command], left: Sequence[Reply], right: Sequence[Reply]) -> str:
    return "\n".join(f"{cmd!r}: shm={a!r} socket={b!r}"
                     for cmd, a, b in zip(commands, left, right, strict=True) if a != b)


# ---------------------------------------------------------------------------
# SELECT
# ---------------------------------------------------------------------------


def test_select_over_raw_channel_lands_in_that_db(server) -> None:
    session = RawSession(server)
    try:
        assert session.call("SELECT", "5") == b"+OK\r\n"
        assert session.call("SET", "k", "in-five") == b"+OK\r\n"
        assert session.call("GET", "k") == b"$7\r\nin-five\r\n"
        assert admin_get(server, 5, "k") == Bulk(b"in-five")
        assert admin_get(server, 0, "k") == Nil("bulk")
        assert session.call("SELECT", "0") == b"+OK\r\n"
        assert session.call("GET", "k") == b"$-1\r\n"
        assert session.call("SET", "k", "in-zero") == b"+OK\r\n"
        assert admin_get(server, 0, "k") == Bulk(b"in-zero")
        assert admin_get(server, 5, "k") == Bulk(b"in-five")
    finally:
        session.close()


def test_select_errors_are_the_sockets_and_keep_the_db(server) -> None:
    bad = [("SELECT", "16"), ("SELECT", "-1"), ("SELECT", "abc"), ("SELECT", "1.5"),
           ("SELECT", ""), ("SELECT", "99999999999999999999")]
    # wrong arities are refused, so that the socket answers (its error statistics)
    wrong_arity = [("SELECT",), ("SELECT", "1", "2")]
    with raw_pair(server) as (session, sock):
        assert session.call("SELECT", "3") == sock.call("SELECT", "3") == b"+OK\r\n"
        for cmd in bad:
            via_shm, via_socket = session.call(*cmd), sock.call(*cmd)
            assert not via_shm.startswith(REFUSAL), (cmd, via_shm)
            assert via_shm == via_socket, cmd
            assert via_shm.startswith(b"-"), (cmd, via_shm)
        for cmd in wrong_arity:
            assert_refused(session, *cmd)
        assert session.call("SET", "probe", "shm") == b"+OK\r\n"
    assert admin_get(server, 3, "probe") == Bulk(b"shm")
    assert admin_get(server, 0, "probe") == Nil("bulk")


def test_select_differential(server) -> None:
    seq: list[Command] = [
        ("SELECT", "3"), ("SET", "a", "1"), ("GET", "a"), ("DBSIZE",), ("SELECT", "0"),
        ("GET", "a"), ("DBSIZE",), ("SELECT", "3"), ("INCR", "a"), ("SELECT", "16"),
        ("GET", "a"), ("SELECT", "x"), ("MOVE", "a", "7"), ("SELECT", "7"), ("GET", "a"),
        ("SWAPDB", "7", "8"), ("GET", "a"), ("FLUSHDB",),
    ]
    before = shm_counters(server)
    with server.connect(shm="require") as conn:
        via_shm = [conn.execute(*cmd) for cmd in seq]
        assert conn.transport == "shm"
    after = shm_counters(server)
    with server.admin() as admin:
        admin.execute("FLUSHALL")
    with server.connect(shm="off") as conn:
        via_socket = [conn.execute(*cmd) for cmd in seq]
    assert via_shm == via_socket, diff(seq, via_shm, via_socket)
    assert after == (before[0] + len(seq), before[1])  # all of it over shm


def test_connection_db_option_reaches_the_session(server) -> None:
    with server.connect(shm="require", db=9) as conn:
        assert conn.execute("SET", "k", "nine") == Status(b"OK")
        assert conn.transport == "shm"
    assert admin_get(server, 9, "k") == Bulk(b"nine")
    assert admin_get(server, 0, "k") == Nil("bulk")


@pytest.mark.parametrize("protocol", [2, 3])
def test_raw_session_takes_db_and_protocol_from_the_control_connection(server,
                                                                       protocol: int) -> None:
    with server.admin() as admin:
        admin.execute("SELECT", "6")
        admin.execute("HSET", "h", "f", "v")
    session = RawSession(server, protocol=protocol, db=6)
    try:
        if protocol == 3:
            assert session.call("HGETALL", "h") == b"%1\r\n$1\r\nf\r\n$1\r\nv\r\n"
            assert session.call("GET", "missing") == b"_\r\n"
        else:
            assert session.call("HGETALL", "h") == b"*2\r\n$1\r\nf\r\n$1\r\nv\r\n"
            assert session.call("GET", "missing") == b"$-1\r\n"
        assert session.call("SET", "k", "six") == b"+OK\r\n"
    finally:
        session.close()
    assert admin_get(server, 6, "k") == Bulk(b"six")
    assert admin_get(server, 0, "k") == Nil("bulk")


# ---------------------------------------------------------------------------
# HELLO
# ---------------------------------------------------------------------------


HELLOS: list[Command] = [
    ("HELLO",), ("HELLO", "2"), ("HELLO", "3"), ("HELLO", "3", "AUTH", "alice", "pw"),
    ("HELLO", "2", "AUTH", "default", "x"), ("HELLO", "3", "SETNAME", "n"),
    ("HELLO", "3", "AUTH", "alice", "pw", "SETNAME", "n"), ("HELLO", "4"), ("HELLO", "1"),
    ("HELLO", "abc"), ("HELLO", "3", "AUTH", "alice"), ("HELLO", "3", "AUTH", "alice", "wrong"),
    ("HELLO", "3", "SETNAME", "bad name"), ("HELLO", "3", "NOPE"),
    ("HELLO", "3", "AUTH", "alice", "pw", "SETNAME", "bad name"),
    ("HELLO", "4", "AUTH", "alice", "pw", "SETNAME", "ok"),
]


def assert_session_unchanged(server, session: RawSession) -> None:
    """Still RESP2, still the default user (alice could not write b:*), no name."""
    assert session.call("GET", "missing") == b"$-1\r\n"
    assert session.call("CLIENT", "GETNAME") == b"$-1\r\n"
    assert session.call("SET", "b:still-default", "x") == b"+OK\r\n"
    fields = client_fields(server, session.client_id)
    assert (fields["user"], fields["name"], fields["resp"]) == ("default", "", "2")


def test_hello_errors_through_the_connection(server) -> None:
    seq: list[Command] = [
        ("HELLO", "4"), ("HELLO", "1"), ("HELLO", "abc"), ("HELLO", "3", "AUTH", "alice"),
        ("HELLO", "3", "AUTH", "alice", "wrong"), ("HELLO", "3", "NOPE"),
        ("ACL", "WHOAMI"), ("CLIENT", "GETNAME"), ("GET", "missing"), ("SET", "b:1", "x"),
        ("HELLO",),
    ]
    with alice(server):
        via_shm, via_socket = run_both(server, seq)
    assert via_shm == via_socket, diff(seq, via_shm, via_socket)
    assert all(isinstance(reply, Error) for reply in via_shm[:6]), via_shm
    assert via_shm[6:10] == [Bulk(b"default"), Nil("bulk"), Nil("bulk"), Status(b"OK")]


def test_hello_auth_and_setname_through_the_connection(server) -> None:
    """HELLO 3 AUTH ... SETNAME runs on the socket; the new session is alice's,
    in RESP3, and CLIENT LIST shows all of it."""
    with alice(server), server.connect(shm="require") as conn:
        before = shm_counters(server)
        reply = conn.execute("HELLO", "3", "AUTH", "alice", "pw", "SETNAME", "app1")
        assert shm_counters(server) == before  # the module was not asked
        assert isinstance(reply, Map), reply
        own_id = own_client_id(conn)
        mask_hello_id(reply, own_id)  # asserts the id
        assert (conn.transport, conn.protocol, conn.username) == ("shm", 3, "alice")
        fields = client_fields(server, own_id)
        assert (fields["user"], fields["name"], fields["resp"]) == ("alice", "app1", "3")
        assert conn.execute("CLIENT", "GETNAME") == Bulk(b"app1")
        ran = shm_stat(server, "commands")
        assert conn.execute("SET", "a:1", "x") == Status(b"OK")
        assert conn.execute("GET", "a:missing") == Nil("null")  # RESP3, over shm
        assert shm_stat(server, "commands") == ran + 2
        denied = conn.execute("SET", "b:1", "x")  # alice's keys are a:*
        assert isinstance(denied, Error) and denied.code == "NOPERM", denied
        assert conn.transport == "shm"
        wait_for_sessions(server, 1)
    with server.admin() as admin:
        assert admin.execute("EXISTS", "b:1") == Integer(0)


def test_hello_differential(server) -> None:
    with server.admin() as admin:
        admin.execute("HSET", "h", "f", "v")
        admin.execute("ZADD", "z", "1.5", "m")
    seq: list[Command] = [
        ("HELLO", "3"), ("HGETALL", "h"), ("ZSCORE", "z", "m"), ("GET", "missing"),
        ("SMEMBERS", "missing"), ("HELLO",), ("HELLO", "2"), ("HGETALL", "h"),
        ("ZSCORE", "z", "m"), ("GET", "missing"), ("HELLO", "4"), ("HELLO", "x"),
        ("HELLO", "3", "SETNAME", "n3"), ("CLIENT", "GETNAME"), ("HELLO", "2"),
        ("CLIENT", "GETNAME"),
    ]
    via_shm, via_socket = run_both(server, seq)
    assert via_shm == via_socket, diff(seq, via_shm, via_socket)
    assert isinstance(via_shm[0], Map) and isinstance(via_shm[1], Map)


@pytest.mark.parametrize("protocol", [2, 3])
def test_hello_id_is_the_connections_client_id(server, protocol: int) -> None:
    with server.connect(shm="require", protocol=protocol) as conn:
        reply = conn.execute("HELLO", str(protocol))
        own_id = conn.execute("CLIENT", "ID")
        assert conn.transport == "shm"
    assert isinstance(own_id, Integer)
    mask_hello_id(reply, own_id.value)  # asserts the id


# ---------------------------------------------------------------------------
# AUTH
# ---------------------------------------------------------------------------

AUTHS: list[Command] = [
    ("AUTH", "alice", "pw"), ("AUTH", "default", "x"), ("AUTH", "x"), ("AUTH", "wrong"),
    ("AUTH", "alice", "wrong"), ("AUTH", "nobody", "pw"), ("AUTH",), ("AUTH", "a", "b", "c"),
    ("AUTH", "alice", ""),
]


@pytest.mark.parametrize("name", ["HELLO", "AUTH"])
def test_identity_commands_are_refused_over_a_raw_session(server, name: str) -> None:
    """Every HELLO and AUTH, valid or not, is refused and changes nothing: the
    protocol and the user of a session are the control connection's at the
    handshake."""
    with alice(server):
        session = RawSession(server)
        try:
            for cmd in {"HELLO": HELLOS, "AUTH": AUTHS}[name]:
                assert_refused(session, *cmd)
            assert_session_unchanged(server, session)
        finally:
            session.close()


@pytest.mark.parametrize("change", [("AUTH", "alice", "pw"), ("HELLO", "2", "AUTH", "alice", "pw"),
                                    ("RESET",)], ids=["AUTH", "HELLO-AUTH", "RESET"])
def test_a_user_change_on_the_control_connection_ends_a_raw_session(server, change) -> None:
    """The session is bound to the user of the handshake: AUTH, HELLO AUTH or
    RESET on the control connection (bob before a RESET) ends it."""
    with alice(server), bob(server):
        session = RawSession(server, username="bob" if change == ("RESET",) else None,
                             password="pw" if change == ("RESET",) else None)
        try:
            assert session.call("PING") == b"+PONG\r\n"
            assert not isinstance(session.control.execute(*change), Error)
            with pytest.raises(ChannelClosed):
                session.call("PING")
            wait_for_sessions(server, 0)
        finally:
            session.close()


def test_auth_differential(server) -> None:
    seq: list[Command] = [
        ("ACL", "WHOAMI"), ("AUTH", "alice", "wrong"), ("ACL", "WHOAMI"), ("AUTH", "alice", "pw"),
        ("ACL", "WHOAMI"), ("SET", "a:1", "x"), ("SET", "b:1", "x"), ("GET", "b:1"),
        ("GET", "a:1"), ("AUTH", "default", "x"), ("ACL", "WHOAMI"), ("GET", "b:1"),
        ("AUTH", "wrong"), ("AUTH", "nobody", "pw"), ("AUTH",), ("AUTH", "a", "b", "c"),
        ("AUTH", "alice", ""), ("ACL", "WHOAMI"), ("SET", "b:2", "y"),
    ]
    with alice(server):
        via_shm, via_socket = run_both(server, seq)
    assert via_shm == via_socket, diff(seq, via_shm, via_socket)
    assert via_shm[4] == Bulk(b"alice")
    assert isinstance(via_shm[6], Error) and via_shm[6].code == "NOPERM"
    assert via_shm[-2:] == [Bulk(b"default"), Status(b"OK")]


def test_after_auth_the_session_runs_as_the_new_user(server) -> None:
    """AUTH goes to the socket, never to the module; the session that follows
    is bob's: what bob may do runs over shared memory, what he may not is
    denied (the key's and the command's NOPERM) and changes nothing."""
    with server.admin() as admin:
        admin.execute("SET", "a:1", "untouched")
    with bob(server), server.connect(shm="require") as conn, \
            server.connect(shm="off") as sock:
        assert conn.execute("SET", "a:1", "as-default") == Status(b"OK")
        before = shm_counters(server)
        assert conn.execute("AUTH", "bob", "pw") == sock.execute("AUTH", "bob", "pw") \
            == Status(b"OK")
        assert shm_counters(server) == before  # the module was not asked
        assert (conn.transport, conn.username) == ("shm", "bob")
        assert client_fields(server, own_client_id(conn))["user"] == "bob"
        ran = shm_stat(server, "commands")
        assert conn.execute("SET", "b:1", "x") == Status(b"OK")
        assert conn.last_transport == "shm"
        assert shm_stat(server, "commands") == ran + 1
        for cmd in [("SET", "a:1", "as-bob"), ("GET", "a:1"), ("FLUSHALL",)]:
            denied = conn.execute(*cmd)
            assert isinstance(denied, Error) and denied.code == "NOPERM", (cmd, denied)
            assert denied == sock.execute(*cmd), cmd
        assert conn.execute("ACL", "WHOAMI") == Bulk(b"bob")
        assert conn.transport == "shm"
        wait_for_sessions(server, 1)
    with server.admin() as admin:
        assert admin.execute("GET", "a:1") == Bulk(b"as-default")
        assert admin.execute("GET", "b:1") == Bulk(b"x")


@pytest.mark.parametrize("change", [[("AUTH", "alice", "pw")],
                                    [("HELLO", "3", "AUTH", "alice", "pw")],
                                    [("AUTH", "alice", "pw"), ("RESET",)]],
                         ids=["AUTH", "HELLO-AUTH", "RESET"])
def test_a_user_change_applies_to_the_commands_pipelined_after_it(server, change) -> None:
    """In one pipeline: the commands after AUTH/HELLO/RESET run as the new
    user, over the new session."""
    seq: list[Command] = [*change, ("ACL", "WHOAMI"), ("SET", "b:1", "x"), ("SET", "a:1", "y"),
                          ("GET", "a:1"), ("GET", "a:missing")]
    with alice(server):
        before = shm_stat(server, "commands")
        via_shm, via_socket = run_both(server, seq, pipelined=True)
        assert shm_stat(server, "commands") >= before + 3  # SET a:1, GET a:1, GET a:missing
    assert via_shm == via_socket, diff(seq, via_shm, via_socket)
    user = "default" if change[-1] == ("RESET",) else "alice"
    at = len(change)
    assert via_shm[at] == Bulk(user.encode())
    if user == "alice":
        assert isinstance(via_shm[at + 1], Error) and via_shm[at + 1].code == "NOPERM"
    else:
        assert via_shm[at + 1] == Status(b"OK")


def test_a_user_without_shm_handshake_stays_on_the_socket(server) -> None:
    """After AUTH as a user who may not run SHM.HANDSHAKE, no session: the
    connection carries on over the socket, quietly, and gets a session again
    after AUTH as a user who may."""
    seq: list[Command] = [("AUTH", "carol", "pw"), ("SET", "k", "carol"), ("GET", "k"),
                          ("AUTH", "default", "x"), ("GET", "k")]
    with acl_user(server, "carol", "~*", "+@all", "-shm.handshake"):
        via_shm, via_socket = run_both(server, seq)
        with server.connect(shm="require") as conn:
            assert conn.execute("AUTH", "carol", "pw") == Status(b"OK")
            assert conn.transport == "socket" and conn.shm_error, conn.shm_error
            wait_for_sessions(server, 0)
            assert conn.execute("INCR", "n") == Integer(1)
            assert conn.last_transport == "socket"
            assert conn.execute("AUTH", "default", "x") == Status(b"OK")
            assert (conn.transport, conn.shm_error) == ("shm", None)
            assert conn.execute("INCR", "n") == Integer(2)
            assert conn.last_transport == "shm"
    assert via_shm == via_socket, diff(seq, via_shm, via_socket)
    assert via_shm[2] == Bulk(b"carol")


@pytest.mark.parametrize("protocol", [2, 3])
def test_hello_while_subscribed_gets_a_session_after_unsubscribe(server, protocol: int) -> None:
    """In subscriber mode the socket cannot always take a handshake (RESP2
    allows only (un)subscribe, PING, QUIT and RESET there): the new session is
    opened once the subscriptions are gone."""
    for shm in ("require", "off"):
        with server.connect(shm=shm, protocol=protocol) as conn:
            assert isinstance(conn.execute("SUBSCRIBE", "ch"), (Array, Push))
            hello = conn.execute("HELLO", str(protocol))
            if protocol == 2:
                assert isinstance(hello, Error), hello  # not allowed in this context
            else:
                mask_hello_id(hello, own_client_id(conn))
            assert isinstance(conn.execute("UNSUBSCRIBE", "ch"), (Array, Push))
            assert conn.execute("SET", "k", shm) == Status(b"OK")
            assert conn.last_transport == ("shm" if shm == "require" else "socket")
            assert conn.protocol == protocol
    wait_for_sessions(server, 0)


@pytest.mark.parametrize("shm", ["require", "off"])
def test_client_kill_user_after_auth_ends_the_connection(server, shm: str) -> None:
    """CLIENT LIST and CLIENT KILL USER see the user a connection authenticated
    as; after the kill the next command fails as on a socket."""
    with bob(server):
        conn = server.connect(shm=shm)
        try:
            assert conn.execute("AUTH", "bob", "pw") == Status(b"OK")
            assert conn.transport == ("shm" if shm == "require" else "socket")
            assert conn.execute("SET", "b:1", "x") == Status(b"OK")
            assert client_fields(server, own_client_id(conn))["user"] == "bob"
            with server.admin() as admin:
                assert admin.execute("CLIENT", "KILL", "USER", "bob") == Integer(1)
            with pytest.raises(ConnectionError):
                conn.execute("PING")
            assert not conn.connected
        finally:
            conn.close()
    wait_for_sessions(server, 0)


# ---------------------------------------------------------------------------
# AUTH, HELLO and RESET inside MULTI
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("ending", ["EXEC", "DISCARD"])
@pytest.mark.parametrize("pipelined", [False, True], ids=["one-by-one", "pipelined"])
def test_auth_and_hello_queued_in_a_transaction(server, ending: str, pipelined: bool) -> None:
    """Queued, they take effect at EXEC (a new session follows), not at all
    after DISCARD."""
    seq: list[Command] = [("MULTI",), ("AUTH", "alice", "pw"), ("HELLO", "3"),
                          ("ACL", "WHOAMI"), (ending,), ("ACL", "WHOAMI"),
                          ("SET", "b:1", "x"), ("GET", "a:missing")]
    expected = ("alice", 3) if ending == "EXEC" else ("default", 2)
    results = {}
    with alice(server):
        for shm in ("require", "off"):
            with server.connect(shm=shm) as conn:
                replies = conn.execute_many(seq) if pipelined else [
                    conn.execute(*cmd) for cmd in seq]
                own_id = own_client_id(conn)
                if ending == "EXEC":  # HELLO's reply, inside EXEC's, has the client id
                    assert isinstance(replies[4], Array), replies[4]
                    items = list(replies[4].items)
                    items[1] = mask_hello_id(items[1], own_id)
                    replies[4] = Array(items)
                results[shm] = replies
                assert (conn.username, conn.protocol) == expected
                assert conn.transport == ("shm" if shm == "require" else "socket")
                fields = client_fields(server, own_id)
                assert (fields["user"], fields["resp"]) == (expected[0], str(expected[1]))
                if shm == "require":
                    assert conn.last_transport == "shm"  # GET a:missing
                    wait_for_sessions(server, 1)
    via_shm, via_socket = results["require"], results["off"]
    assert via_shm == via_socket, diff(seq, via_shm, via_socket)
    assert via_shm[5] == Bulk(expected[0].encode())
    assert via_shm[7] == (Nil("null") if ending == "EXEC" else Nil("bulk"))
    if ending == "EXEC":
        assert isinstance(via_shm[6], Error) and via_shm[6].code == "NOPERM"
    else:
        assert via_shm[6] == Status(b"OK")


# ---------------------------------------------------------------------------
# CLIENT ID / SETNAME / GETNAME / LIST
# ---------------------------------------------------------------------------


def test_client_name_and_id_in_the_module(server) -> None:
    with raw_pair(server) as (session, sock):
        assert session.call("CLIENT", "ID") == b":%d\r\n" % session.client_id
        assert session.call("CLIENT", "GETNAME") == b"$-1\r\n"
        assert session.call("CLIENT", "SETNAME", "worker-1") == b"+OK\r\n"
        assert session.call("CLIENT", "GETNAME") == b"$8\r\nworker-1\r\n"
        assert client_fields(server, session.client_id)["name"] == "worker-1"
        assert session.control.execute("CLIENT", "GETNAME") == Bulk(b"worker-1")
        bad = [("CLIENT", "SETNAME", "bad name"), ("CLIENT", "SETNAME", "a\nb")]
        # wrong arities are refused, so that the socket answers (its error statistics)
        wrong_arity = [("CLIENT", "SETNAME"), ("CLIENT", "SETNAME", "a", "b"),
                       ("CLIENT", "GETNAME", "x"), ("CLIENT", "ID", "x")]
        differ = []
        for cmd in bad:
            via_shm, via_socket = session.call(*cmd), sock.call(*cmd)
            if via_shm != via_socket:
                differ.append(f"{cmd}: shm={via_shm!r} socket={via_socket!r}")
        assert not differ, "\n".join(differ)
        for cmd in wrong_arity:
            assert_refused(session, *cmd)
        assert session.call("CLIENT", "GETNAME") == b"$8\r\nworker-1\r\n"  # unchanged
        assert session.call("CLIENT", "SETNAME", "") == b"+OK\r\n"
        assert session.call("CLIENT", "GETNAME") == b"$-1\r\n"
        assert client_fields(server, session.client_id)["name"] == ""


@pytest.mark.parametrize("protocol", [2, 3])
def test_client_name_differential(server, protocol: int) -> None:
    seq: list[Command] = [
        ("CLIENT", "GETNAME"), ("CLIENT", "SETNAME", "n1"), ("CLIENT", "GETNAME"),
        ("CLIENT", "SETNAME", "a b"), ("CLIENT", "GETNAME"), ("CLIENT", "SETNAME", ""),
        ("CLIENT", "GETNAME"), ("CLIENT", "SETNAME", "n2"), ("CLIENT", "GETNAME"),
    ]
    before = shm_counters(server)
    via_shm, via_socket = run_both(server, seq, protocol=protocol)
    assert via_shm == via_socket, diff(seq, via_shm, via_socket)
    assert shm_counters(server) == (before[0] + len(seq), before[1])  # all over shm


def test_client_list_shows_the_connection_state(server) -> None:
    """State changed through the connection is its client's state, as CLIENT
    LIST shows it, and the session after AUTH/HELLO is on shared memory."""
    with alice(server):
        fields = {}
        for shm in ("require", "off"):
            with server.connect(shm=shm) as conn:
                for cmd in [("SELECT", "5"), ("CLIENT", "SETNAME", "lister"),
                            ("AUTH", "alice", "pw")]:
                    assert conn.execute(*cmd) == Status(b"OK"), cmd
                assert isinstance(conn.execute("HELLO", "3"), Map)
                assert conn.execute("SET", "a:in-five", "x") == Status(b"OK")
                assert conn.last_transport == ("shm" if shm == "require" else "socket")
                got = client_fields(server, own_client_id(conn))
                fields[shm] = {k: got[k] for k in ("db", "name", "user", "resp")}
                assert (conn.db, conn.username, conn.protocol) == (5, "alice", 3)
        assert fields["off"] == {"db": "5", "name": "lister", "user": "alice", "resp": "3"}
        assert fields["require"] == fields["off"]
    assert admin_get(server, 5, "a:in-five") == Bulk(b"x")


# ---------------------------------------------------------------------------
# QUIT
# ---------------------------------------------------------------------------


def test_quit_over_raw_channel_ends_the_session(server) -> None:
    wait_for_sessions(server, 0)
    session = RawSession(server)
    try:
        assert session.call("PING") == b"+PONG\r\n"
        wait_for_sessions(server, 1)
        assert session.call("QUIT") == b"+OK\r\n"
        with pytest.raises(ChannelClosed):
            session.call("PING")
        wait_for_sessions(server, 0)
    finally:
        session.close()
    with server.admin() as admin:
        assert admin.execute("PING") == Status(b"PONG")


def test_quit_through_the_connection(server) -> None:
    wait_for_sessions(server, 0)
    replies = {}
    for shm in ("require", "off"):
        conn = server.connect(shm=shm)
        assert conn.execute("SET", "k", shm) == Status(b"OK")
        replies[shm] = conn.execute("QUIT")
        assert not conn.connected
        with pytest.raises(ConnectionError):
            conn.execute("PING")
        conn.close()
    assert replies["require"] == replies["off"] == Status(b"OK")
    wait_for_sessions(server, 0)
    assert admin_get(server, 0, "k") == Bulk(b"off")


# ---------------------------------------------------------------------------
# RESET
# ---------------------------------------------------------------------------


def test_reset_is_refused_over_a_raw_session(server) -> None:
    session = RawSession(server, protocol=3)
    try:
        for cmd in [("SELECT", "4"), ("CLIENT", "SETNAME", "before-reset")]:
            assert session.call(*cmd) == b"+OK\r\n", cmd
        assert_refused(session, "RESET")
        assert_refused(session, "RESET", "extra")
        # nothing was reset: RESP3, db 4, the name
        assert session.call("GET", "missing") == b"_\r\n"
        assert session.call("CLIENT", "GETNAME") == b"$12\r\nbefore-reset\r\n"
        assert session.call("SET", "k", "still-in-four") == b"+OK\r\n"
        fields = client_fields(server, session.client_id)
        assert (fields["name"], fields["resp"]) == ("before-reset", "3")
    finally:
        session.close()
    assert admin_get(server, 4, "k") == Bulk(b"still-in-four")


def test_reset_through_the_connection(server) -> None:
    """RESET runs on the socket; the new session is the reset client's: the
    default user, RESP2, db 0, no name."""
    with alice(server), server.connect(shm="require", protocol=3) as conn:
        for cmd in [("SELECT", "4"), ("CLIENT", "SETNAME", "before-reset"),
                    ("AUTH", "alice", "pw")]:
            assert conn.execute(*cmd) == Status(b"OK"), cmd
        assert conn.execute("GET", "a:missing") == Nil("null")  # RESP3 so far
        before = shm_counters(server)
        assert conn.execute("RESET") == Status(b"RESET")
        assert shm_counters(server) == before  # the module was not asked
        assert (conn.transport, conn.db, conn.protocol, conn.username) == \
            ("shm", 0, 2, "default")
        fields = client_fields(server, own_client_id(conn))
        assert (fields["user"], fields["name"], fields["resp"], fields["db"]) == \
            ("default", "", "2", "0")
        assert conn.execute("CLIENT", "GETNAME") == Nil("bulk")  # RESP2 nil: name gone
        assert conn.execute("SET", "k", "after-reset") == Status(b"OK")  # not alice's key
        assert conn.last_transport == "shm"
        assert shm_counters(server)[0] == before[0] + 3  # CLIENT ID, GETNAME, SET
        wait_for_sessions(server, 1)
    assert admin_get(server, 0, "k") == Bulk(b"after-reset")
    assert admin_get(server, 4, "k") == Nil("bulk")


@pytest.mark.parametrize("protocol", [2, 3])
def test_reset_differential(server, protocol: int) -> None:
    seq: list[Command] = [
        ("SELECT", "4"), ("SET", "k4", "v"), ("CLIENT", "SETNAME", "foo"),
        ("AUTH", "alice", "pw"), ("ACL", "WHOAMI"), ("GET", "a:missing"), ("RESET",),
        ("ACL", "WHOAMI"), ("CLIENT", "GETNAME"), ("GET", "k4"), ("GET", "missing"),
        ("DBSIZE",), ("SELECT", "4"), ("GET", "k4"), ("RESET",), ("DBSIZE",),
    ]
    with alice(server):
        via_shm, via_socket = run_both(server, seq, protocol=protocol)
    assert via_shm == via_socket, diff(seq, via_shm, via_socket)
    assert via_shm[6] == Status(b"RESET")
    assert via_shm[10] == Nil("bulk")  # RESP2 after RESET


@pytest.mark.parametrize("exec_mode", ["main-thread", "fast-path"])
def test_reset_requires_authentication_again(make_server, flavour: str, exec_mode: str) -> None:
    srv = make_server(flavour, exec_mode, config={"requirepass": "secret"})
    with srv.admin() as admin:
        admin.execute("SET", "k", "v")
    seq: list[Command] = [("GET", "k"), ("RESET",), ("GET", "k"), ("ACL", "WHOAMI"),
                          ("AUTH", "wrong"), ("GET", "k"), ("AUTH", "secret"), ("GET", "k")]
    via_shm, via_socket = run_both(srv, seq, password="secret")
    assert via_shm == via_socket, diff(seq, via_shm, via_socket)
    assert isinstance(via_shm[2], Error) and via_shm[2].code == "NOAUTH"
    assert via_shm[7] == Bulk(b"v")
    # unauthenticated after RESET: no session can be had, the socket carries on
    with srv.connect(shm="require", password="secret") as conn:
        assert conn.execute("RESET") == Status(b"RESET")
        assert conn.transport == "socket" and conn.shm_error, conn.shm_error
        wait_for_sessions(srv, 0)
        reply = conn.execute("GET", "k")
        assert isinstance(reply, Error) and reply.code == "NOAUTH"
        assert conn.last_transport == "socket"
        assert conn.execute("AUTH", "secret") == Status(b"OK")
        assert (conn.transport, conn.shm_error) == ("shm", None)
        assert conn.execute("GET", "k") == Bulk(b"v")
        assert conn.last_transport == "shm"


# ---------------------------------------------------------------------------
# state set over shm holds for commands that fall back to the socket
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("pipelined", [False, True], ids=["one-by-one", "pipelined"])
def test_state_holds_for_commands_refused_to_the_socket(server, pipelined: bool) -> None:
    """SELECT, HELLO, AUTH and SETNAME run over shm; BLPOP, MULTI and DEBUG are
    refused and go over the socket: they must see the same db, protocol, user
    and name."""
    with server.admin() as admin:
        admin.execute("SELECT", "6")
        admin.execute("RPUSH", "a:q", "in-six")
    seq: list[Command] = [
        ("SELECT", "6"), ("HELLO", "3"), ("CLIENT", "SETNAME", "follower"),
        ("AUTH", "alice", "pw"), ("BLPOP", "a:q", "1"), ("BLPOP", "a:q", "0.01"),
        ("BLPOP", "b:q", "0.01"), ("MULTI",), ("CLIENT", "GETNAME"), ("ACL", "WHOAMI"),
        ("GET", "a:missing"), ("EXEC",), ("DEBUG", "SLEEP", "0"),
    ]
    results = []
    with alice(server):
        for shm in ("require", "off"):
            with server.admin() as admin:
                admin.execute("SELECT", "6")
                admin.execute("DEL", "a:q")
                admin.execute("RPUSH", "a:q", "in-six")
            with server.connect(shm=shm) as conn:
                replies = conn.execute_many(seq) if pipelined else [
                    conn.execute(*cmd) for cmd in seq]
                own_id = conn.execute("CLIENT", "ID")
                assert isinstance(own_id, Integer)
                replies[1] = mask_hello_id(replies[1], own_id.value)
                results.append(replies)
    assert results[0] == results[1], diff(seq, results[0], results[1])
    got = results[0]
    assert got[4] == Array([Bulk(b"a:q"), Bulk(b"in-six")])  # db 6, over the socket
    assert got[5] == Nil("null")  # RESP3 on the socket too
    assert isinstance(got[6], Error) and got[6].code == "NOPERM"  # alice on the socket too
    assert got[11] == Array([Bulk(b"follower"), Bulk(b"alice"), Nil("null")])


# ---------------------------------------------------------------------------
# HELLO options that fail half-way: exactly the socket's partial effects
# ---------------------------------------------------------------------------

# A HELLO whose options partly succeed.  Each server applies them in its own
# order (Redis 7.0 sets the name and authenticates option by option; Valkey
# checks more before applying), so the state afterwards is compared with the
# socket's, not with a rule of our own.
PARTIAL_HELLOS: list[list[Command]] = [
    [("HELLO", "3", "AUTH", "alice", "pw", "SETNAME", "bad name")],
    [("HELLO", "3", "SETNAME", "ok", "AUTH", "alice", "wrong")],
    [("HELLO", "3", "SETNAME", "ok", "SETNAME", "bad name")],
    [("HELLO", "3", "AUTH", "alice", "pw", "AUTH", "alice", "wrong")],
    [("HELLO", "3", "AUTH", "alice", "pw", "NOPE")],
    [("HELLO", "4", "AUTH", "alice", "pw", "SETNAME", "ok")],
]
AFTER_HELLO: list[Command] = [("ACL", "WHOAMI"), ("CLIENT", "GETNAME"), ("GET", "a:missing")]


@pytest.mark.parametrize("hello", PARTIAL_HELLOS, ids=lambda h: " ".join(map(str, h[0][2:])))
def test_failing_hello_leaves_the_sockets_state(server, hello: list[Command]) -> None:
    """Whatever part of a failed HELLO the server applied, the session opened
    after it has too: commands over shm see the socket's user, name and
    protocol (b:* is not alice's)."""
    seq = hello + AFTER_HELLO + [("SET", "b:probe", "x"), ("GET", "a:missing")]
    with alice(server):
        ran = shm_stat(server, "commands")
        via_shm, via_socket = run_both(server, seq)
        assert shm_stat(server, "commands") > ran
    assert via_shm == via_socket, diff(seq, via_shm, via_socket)


@pytest.mark.parametrize("hello", PARTIAL_HELLOS, ids=lambda h: " ".join(map(str, h[0][2:])))
def test_failing_hello_keeps_both_transports_in_step(server, hello: list[Command]) -> None:
    """Through the connection, the shm session and the socket must agree after
    a HELLO that failed half-way: a refused command (BLPOP, over the socket)
    and a normal one (over shm) see the same user and name."""
    seq = hello + [("ACL", "WHOAMI"), ("BLPOP", "b:q", "0.01"), ("CLIENT", "GETNAME"),
                   ("MULTI",), ("ACL", "WHOAMI"), ("CLIENT", "GETNAME"), ("EXEC",)]
    with alice(server):
        via_shm, via_socket = run_both(server, seq)
    assert via_shm == via_socket, diff(seq, via_shm, via_socket)


def where_x_landed(srv) -> dict[int, object]:
    with srv.admin() as admin:
        found = {}
        for db in (0, 1, 2, 3):
            admin.execute("SELECT", db)
            found[db] = admin.execute("GET", "x")
        return found


@pytest.mark.parametrize("pinning", [
    [("MULTI",), ("SELECT", "2"), ("EXEC",)],
    [("WATCH", "w"), ("SELECT", "2"), ("UNWATCH",)],
    [("CLIENT", "TRACKING", "ON"), ("SELECT", "2"), ("CLIENT", "TRACKING", "OFF")],
])
def test_state_changed_on_the_socket_reaches_the_session(server, pinning) -> None:
    """A SELECT that ran on the socket (transaction, WATCH, tracking) moves the
    shared-memory session too: the next command over shm lands in db 2."""
    with server.connect() as conn:
        assert conn.transport == "shm"
        conn.execute_many(pinning)
        assert conn.db == 2
        assert conn.execute("SET", "x", "1") == Status(b"OK")
        assert conn.last_transport == "shm"
    nil = Nil("bulk")
    assert where_x_landed(server) == {0: nil, 1: nil, 2: Bulk(b"1"), 3: nil}


@pytest.mark.parametrize("ending", [("DISCARD",), ("EXEC",)])
def test_a_select_queued_in_a_failed_or_discarded_transaction_changes_nothing(server,
                                                                              ending) -> None:
    with server.connect() as conn:
        conn.execute_many([("SET", "watched", "a"), ("WATCH", "watched"), ("MULTI",),
                           ("SELECT", "2")])
        assert conn.db == 0  # queued, not done
        with server.admin() as admin:
            admin.execute("SET", "watched", "b")  # makes EXEC fail (nil)
        conn.execute(*ending)
        assert conn.db == 0
        conn.execute("SET", "x", "1")
    assert where_x_landed(server)[0] == Bulk(b"1")


# ---------------------------------------------------------------------------
# the server's idle `timeout` sees only the socket
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("exec_mode", ["main-thread", "fast-path"])
def test_a_busy_shm_connection_outlives_the_idle_timeout(make_server, flavour: str,
                                                         exec_mode: str) -> None:
    """All the traffic goes over shared memory, where `timeout 1` cannot see
    it; the connection must live as long as the same traffic on a socket."""
    srv = make_server(flavour, exec_mode, config={"timeout": "1"})
    with srv.connect(shm="require") as conn:
        own_id = own_client_id(conn)
        count = 0
        end = time.monotonic() + 3.0
        while time.monotonic() < end:
            count += 1
            assert conn.execute("INCR", "n") == Integer(count)
            assert (conn.last_transport, conn.transport) == ("shm", "shm")
            assert shm_stat(srv, "sessions") == 1
            time.sleep(0.2)  # the pace of the traffic, not a measurement
        assert client_connected(srv, own_id)
        assert conn.execute("GET", "n") == Bulk(str(count).encode())
        assert conn.last_transport == "shm"
        assert shm_stat(srv, "sessions") == 1
        assert shm_stat(srv, "sessions_opened") == 1


def test_the_keep_alive_is_never_denied_by_an_acl(make_server, flavour: str) -> None:
    """A user who may not PING still keeps a busy connection alive, and the
    keep-alive leaves nothing in the ACL LOG."""
    srv = make_server(flavour, config={"timeout": "1"})
    with srv.admin() as admin:
        assert admin.execute("ACL", "SETUSER", "noping", "on", ">pw", "~*", "+@all",
                             "-ping") == Status(b"OK")
        admin.execute("ACL", "LOG", "RESET")
    with srv.connect(shm="require", username="noping", password="pw") as conn:
        end = time.monotonic() + 2.5
        while time.monotonic() < end:
            assert isinstance(conn.execute("INCR", "n"), Integer)
            assert conn.last_transport == "shm"
            time.sleep(0.2)  # the pace of the traffic, not a measurement
        assert isinstance(conn.execute("GET", "n"), Bulk)
        assert shm_stat(srv, "sessions_opened") == 1
    with srv.admin() as admin:
        assert admin.execute("ACL", "LOG") == Array([])


def test_an_idle_connection_is_closed_by_the_timeout_as_a_socket_is(make_server,
                                                                   flavour: str) -> None:
    srv = make_server(flavour, config={"timeout": "1"})
    conns = {shm: srv.connect(shm=shm) for shm in ("require", "off")}
    try:
        ids = {}
        for shm, conn in conns.items():
            assert conn.execute("SET", f"k-{shm}", "v") == Status(b"OK")
            ids[shm] = own_client_id(conn)
        assert conns["require"].last_transport == "shm"
        wait_until(lambda: not any(client_connected(srv, i) for i in ids.values()),
                   "the server's timeout to close both idle clients")
        wait_for_sessions(srv, 0)
        for shm, conn in conns.items():
            with pytest.raises(ConnectionError):
                conn.execute("GET", f"k-{shm}")
            assert not conn.connected, shm
    finally:
        for conn in conns.values():
            conn.close()
