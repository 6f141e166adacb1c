"""Per-connection state over shared memory behaves as it does on a socket.

RedisModule_Call runs every command on a temporary client, so the module
emulates the state a connection carries: the selected db (SELECT), the
protocol (HELLO 2/3), the ACL user (AUTH, HELLO ... AUTH), the name (CLIENT
SETNAME/GETNAME, HELLO ... SETNAME), CLIENT ID, RESET and QUIT.

Two kinds of checks:

* raw ShmChannel sessions prove that the module itself applies the state
  (the Python connection, which replays state commands on its socket, is not
  involved): data lands in the selected db, replies switch to RESP3, the user
  changes and its permissions follow; errors are the socket's exact bytes;
* differential runs through the connection layer: the same sequence once with
  shm="require" and once with shm="off", replies compared (HELLO's `id` is
  checked against CLIENT ID of the same connection, then masked).

All tests use the `server` fixture (Redis 7.0, Valkey 8, both executors)
except the requirepass case, which needs its own servers.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence

import pytest
from servers import RawSocket

from shmcli.channel import ChannelClosed, ShmChannel
from shmcli.resp import (
    Array,
    Bulk,
    Error,
    Integer,
    Map,
    Nil,
    Reply,
    Status,
    encode_command,
    parse_one,
)

Command = Sequence[bytes | str | int]
REFUSAL = b"-SHMFALLBACK "


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------


class RawSession:
    """A raw ShmChannel plus the socket connection it is bound to."""

    def __init__(self, server, protocol: int = 2) -> None:
        self.control = server.connect(shm="off", protocol=protocol)
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
def alice(server) -> Iterator[None]:
    """An ACL user limited to keys a:*, with password "pw"."""
    with server.admin() as admin:
        assert admin.execute("ACL", "SETUSER", "alice", "reset", "on", ">pw", "~a:*",
                             "+@all") == Status(b"OK")
    try:
        yield
    finally:
        with server.admin() as admin:
            admin.execute("ACL", "DELUSER", "alice")


def admin_get(server, db: int, key: str) -> Reply:
    with server.admin() as admin:
        admin.execute("SELECT", db)
        return admin.execute("GET", key)


def client_fields(server, client_id: int) -> dict[str, str]:
    with server.admin() as admin:
        line = admin.execute("CLIENT", "LIST", "ID", client_id)
    assert isinstance(line, Bulk) and line.data, f"client {client_id} is not connected"
    return dict(f.split("=", 1) for f in line.data.decode().split() if "=" in f)


def shm_counters(server) -> tuple[int, int]:
    info = server.info("shm")
    return int(info["shm_commands"]), int(info["shm_refused"])


def wait_for_sessions(server, count: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while int(server.info("shm")["shm_sessions"]) != count:
        assert time.monotonic() < deadline, f"shm_sessions never reached {count}"
        time.sleep(0.02)


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


def run_both(server, commands: Sequence[Command], protocol: int = 2,
             **connect_kw: object) -> tuple[list[Reply], list[Reply]]:
    """The sequence over shm (required) and over the socket, HELLO ids masked."""
    results = []
    for shm in ("require", "off"):
        with server.connect(shm=shm, protocol=protocol, **connect_kw) as conn:
            replies = []
            for cmd in commands:
                reply = conn.execute(*cmd)
                if str(cmd[0]).upper() == "HELLO":
                    own_id = conn.execute("CLIENT", "ID")
                    assert isinstance(own_id, Integer)
                    reply = mask_hello_id(reply, own_id.value)
                replies.append(reply)
            if shm == "require":
                assert conn.transport == "shm"
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
           ("SELECT", ""), ("SELECT",), ("SELECT", "1", "2"),
           ("SELECT", "99999999999999999999")]
    with raw_pair(server) as (session, sock):
        assert session.call("SELECT", "3") == sock.call("SELECT", "3") == b"+OK\r\n"
        for cmd in bad:
            via_shm, via_socket = session.call(*cmd), sock.call(*cmd)
            assert not via_shm.startswith(REFUSAL), (cmd, via_shm)
            assert via_shm == via_socket, cmd
            assert via_shm.startswith(b"-"), (cmd, via_shm)
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


# ---------------------------------------------------------------------------
# HELLO
# ---------------------------------------------------------------------------


def test_hello_switches_protocol_in_the_module(server) -> None:
    with server.admin() as admin:
        admin.execute("HSET", "h", "f", "v")
    with raw_pair(server) as (session, sock):
        for version in ("3", "2", "3"):
            via_shm = parse_one(session.call("HELLO", version))
            via_socket = parse_one(sock.call("HELLO", version))
            sock_id = parse_one(sock.call("CLIENT", "ID"))
            assert isinstance(sock_id, Integer)
            assert mask_hello_id(via_shm, session.client_id) == mask_hello_id(via_socket,
                                                                               sock_id.value)
            expected_type = Map if version == "3" else Array
            assert isinstance(via_shm, expected_type), via_shm
            proto = dict(via_shm.pairs) if isinstance(via_shm, Map) else dict(
                zip(via_shm.items[::2], via_shm.items[1::2], strict=True))
            assert proto[Bulk(b"proto")] == Integer(int(version))
            for cmd in [("HGETALL", "h"), ("GET", "missing"), ("HGETALL", "missing"),
                        ("ZSCORE", "missing", "m"), ("CLIENT", "GETNAME")]:
                assert session.call(*cmd) == sock.call(*cmd), (version, cmd)
        assert session.call("HGETALL", "h") == b"%1\r\n$1\r\nf\r\n$1\r\nv\r\n"
        assert session.call("HELLO", "2").startswith(b"*")
        assert session.call("GET", "missing") == b"$-1\r\n"


def test_hello_without_version_and_errors(server) -> None:
    with alice(server), raw_pair(server) as (session, sock):
        bad = [("HELLO", "4"), ("HELLO", "1"), ("HELLO", "abc"), ("HELLO", "3", "AUTH", "alice"),
               ("HELLO", "3", "AUTH", "alice", "wrong"), ("HELLO", "3", "SETNAME", "bad name"),
               ("HELLO", "3", "NOPE")]
        for cmd in bad:
            via_shm, via_socket = session.call(*cmd), sock.call(*cmd)
            assert not via_shm.startswith(REFUSAL), (cmd, via_shm)
            assert via_shm == via_socket, cmd
        # the failures changed nothing: still RESP2, still the default user, no name
        assert session.call("GET", "missing") == b"$-1\r\n"
        assert session.call("ACL", "WHOAMI") == b"$7\r\ndefault\r\n"
        assert session.call("CLIENT", "GETNAME") == b"$-1\r\n"
        # HELLO with no version answers in the current protocol
        sock_id = parse_one(sock.call("CLIENT", "ID"))
        assert mask_hello_id(parse_one(session.call("HELLO")), session.client_id) == \
            mask_hello_id(parse_one(sock.call("HELLO")), sock_id.value)  # type: ignore[union-attr]


def test_hello_auth_and_setname_in_the_module(server) -> None:
    with alice(server), raw_pair(server) as (session, sock):
        reply = parse_one(session.call("HELLO", "3", "AUTH", "alice", "pw", "SETNAME", "app1"))
        assert isinstance(reply, Map), reply
        fields = dict(reply.pairs)
        assert fields[Bulk(b"proto")] == Integer(3)
        assert fields[Bulk(b"id")] == Integer(session.client_id)
        assert session.call("ACL", "WHOAMI") == b"$5\r\nalice\r\n"
        assert session.call("CLIENT", "GETNAME") == b"$4\r\napp1\r\n"
        assert client_fields(server, session.client_id)["name"] == "app1"
        # alice's permissions apply: keys outside a:* are refused for the socket to report
        assert session.call("SET", "a:1", "x") == b"+OK\r\n"
        assert session.call("SET", "b:1", "x").startswith(REFUSAL)
        session.channel.resume()
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


def test_auth_errors_are_the_sockets(server) -> None:
    with alice(server), raw_pair(server) as (session, sock):
        for cmd in [("AUTH", "wrong"), ("AUTH", "alice", "wrong"), ("AUTH", "nobody", "pw"),
                    ("AUTH",), ("AUTH", "a", "b", "c"), ("AUTH", "alice", "")]:
            via_shm, via_socket = session.call(*cmd), sock.call(*cmd)
            assert not via_shm.startswith(REFUSAL), (cmd, via_shm)
            assert via_shm == via_socket, cmd
        assert session.call("ACL", "WHOAMI") == b"$7\r\ndefault\r\n"
        assert session.call("SET", "b:1", "still-default") == b"+OK\r\n"


def test_auth_switches_the_user_in_the_module(server) -> None:
    with alice(server):
        session = RawSession(server)
        try:
            assert session.call("AUTH", "alice", "pw") == b"+OK\r\n"
            assert session.call("ACL", "WHOAMI") == b"$5\r\nalice\r\n"
            assert session.call("SET", "a:1", "x") == b"+OK\r\n"
            denied = session.call("SET", "b:1", "x")
            assert denied.startswith(REFUSAL), denied  # the socket reports NOPERM
            session.channel.resume()
            assert session.call("GET", "a:1") == b"$1\r\nx\r\n"
            # back to default (which has no password: any password is accepted)
            assert session.call("AUTH", "default", "anything") == b"+OK\r\n"
            assert session.call("ACL", "WHOAMI") == b"$7\r\ndefault\r\n"
            assert session.call("SET", "b:1", "y") == b"+OK\r\n"
        finally:
            session.close()
    assert admin_get(server, 0, "b:1") == Bulk(b"y")


@pytest.mark.parametrize("auth", [("AUTH", "alice", "pw"),
                                  ("HELLO", "2", "AUTH", "alice", "pw")],
                         ids=["AUTH", "HELLO-AUTH"])
def test_user_change_applies_to_the_commands_pipelined_after_it(server, auth) -> None:
    """Requests already in the ring when AUTH runs must run as the new user."""
    with alice(server):
        session = RawSession(server)
        try:
            for cmd in [auth, ("ACL", "WHOAMI"), ("SET", "b:1", "x")]:
                session.channel.send(encode_command(*cmd))
            replies = [session.channel.recv() for _ in range(3)]
            assert not replies[0].startswith(b"-"), replies
            assert replies[1] == b"$5\r\nalice\r\n", replies
            assert replies[2].startswith(REFUSAL), replies  # alice may not write b:1
            session.channel.resume()
        finally:
            session.close()
    with server.admin() as admin:
        assert admin.execute("EXISTS", "b:1") == Integer(0)


def test_reset_applies_to_the_commands_pipelined_after_it(server) -> None:
    with alice(server):
        session = RawSession(server)
        try:
            assert session.call("AUTH", "alice", "pw") == b"+OK\r\n"
            for cmd in [("RESET",), ("ACL", "WHOAMI"), ("SET", "b:1", "x")]:
                session.channel.send(encode_command(*cmd))
            replies = [session.channel.recv() for _ in range(3)]
            assert replies == [b"+RESET\r\n", b"$7\r\ndefault\r\n", b"+OK\r\n"]
        finally:
            session.close()


def test_auth_differential(server) -> None:
    seq: list[Command] = [
        ("ACL", "WHOAMI"), ("AUTH", "alice", "wrong"), ("ACL", "WHOAMI"), ("AUTH", "alice", "pw"),
        ("ACL", "WHOAMI"), ("SET", "a:1", "x"), ("SET", "b:1", "x"), ("GET", "b:1"),
        ("GET", "a:1"), ("AUTH", "default", "x"), ("ACL", "WHOAMI"), ("GET", "b:1"),
    ]
    with alice(server):
        via_shm, via_socket = run_both(server, seq)
    assert via_shm == via_socket, diff(seq, via_shm, via_socket)
    assert via_shm[4] == Bulk(b"alice")
    assert isinstance(via_shm[6], Error) and via_shm[6].code == "NOPERM"


def test_auth_over_shm_is_what_admins_see(server) -> None:
    """CLIENT LIST and CLIENT KILL USER see the user a connection authenticated
    as, whichever transport carried the AUTH."""
    with alice(server):
        with server.connect(shm="require") as conn:
            assert conn.execute("AUTH", "alice", "pw") == Status(b"OK")
            own_id = conn.execute("CLIENT", "ID")
            assert isinstance(own_id, Integer)
            assert client_fields(server, own_id.value)["user"] == "alice"
            with server.admin() as admin:
                assert admin.execute("CLIENT", "KILL", "USER", "alice") == Integer(1)
            with pytest.raises(ConnectionError):
                conn.execute("PING")
    wait_for_sessions(server, 0)


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
        bad = [("CLIENT", "SETNAME", "bad name"), ("CLIENT", "SETNAME", "a\nb"),
               ("CLIENT", "SETNAME"), ("CLIENT", "SETNAME", "a", "b"), ("CLIENT", "GETNAME", "x"),
               ("CLIENT", "ID", "x")]
        differ = []
        for cmd in bad:
            via_shm, via_socket = session.call(*cmd), sock.call(*cmd)
            if via_shm.startswith(REFUSAL):
                session.channel.resume()
            if via_shm != via_socket:
                differ.append(f"{cmd}: shm={via_shm!r} socket={via_socket!r}")
        assert not differ, "\n".join(differ)
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
    """State changed over shm is the connection's state, as CLIENT LIST shows it."""
    with alice(server):
        fields = {}
        for shm in ("require", "off"):
            with server.connect(shm=shm) as conn:
                for cmd in [("SELECT", "5"), ("CLIENT", "SETNAME", "lister"),
                            ("AUTH", "alice", "pw")]:
                    assert conn.execute(*cmd) == Status(b"OK"), cmd
                own_id = conn.execute("CLIENT", "ID")
                assert isinstance(own_id, Integer)
                got = client_fields(server, own_id.value)
                fields[shm] = {k: got[k] for k in ("db", "name", "user", "resp")}
        assert fields["off"] == {"db": "5", "name": "lister", "user": "alice", "resp": "2"}
        assert fields["require"] == fields["off"]


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


def test_reset_in_the_module(server) -> None:
    with alice(server), raw_pair(server, protocol=3) as (session, sock):
        for cmd in [("SELECT", "4"), ("CLIENT", "SETNAME", "before-reset"),
                    ("AUTH", "alice", "pw")]:
            assert session.call(*cmd) == sock.call(*cmd) == b"+OK\r\n", cmd
        assert session.call("GET", "a:missing") == b"_\r\n"  # RESP3 so far
        assert session.call("RESET") == sock.call("RESET") == b"+RESET\r\n"
        for cmd in [("ACL", "WHOAMI"), ("CLIENT", "GETNAME"), ("GET", "missing"),
                    ("SET", "k", "after-reset"), ("HGETALL", "missing")]:
            assert session.call(*cmd) == sock.call(*cmd), cmd
        assert session.call("ACL", "WHOAMI") == b"$7\r\ndefault\r\n"
        assert session.call("CLIENT", "GETNAME") == b"$-1\r\n"  # RESP2 nil: name gone
        assert client_fields(server, session.client_id)["name"] == ""
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


def raw_replies(call, own_id: int, commands: Sequence[Command]) -> list[Reply]:
    replies = []
    for cmd in commands:
        reply = parse_one(call(*cmd))
        if str(cmd[0]).upper() == "HELLO":
            reply = mask_hello_id(reply, own_id)
        replies.append(reply)
    return replies


@pytest.mark.parametrize("hello", PARTIAL_HELLOS, ids=lambda h: " ".join(map(str, h[0][2:])))
def test_failing_hello_leaves_the_sockets_state(server, hello: list[Command]) -> None:
    seq = hello + AFTER_HELLO
    with alice(server), raw_pair(server) as (session, sock):
        sock_id = parse_one(sock.call("CLIENT", "ID"))
        assert isinstance(sock_id, Integer)
        via_shm = raw_replies(session.call, session.client_id, seq)
        via_socket = raw_replies(sock.call, sock_id.value, seq)
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
