"""A session lives and dies with its user, and its denials are audited.

As for a socket: CLIENT KILL USER bob ends bob's sessions, including one that
became bob by AUTH through a shmcli Connection (and CLIENT LIST shows bob
meanwhile); ACL DELUSER bob ends them, and re-creating bob does not bring an
old session back to life as the new bob; a command denied over a raw session
writes an ACL LOG entry (naming the session's user where the server's
Modules API can: Redis >= 7.2 and Valkey).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from sec_raw import PASSWORD, RawSession, client_line, del_users, is_refusal, set_user
from servers import Server, shm_stat, wait_until

from shmcli.channel import ChannelError
from shmcli.connection import Connection
from shmcli.resp import Array, Bulk, Integer, Reply, Status

BOB = ("on", f">{PASSWORD}", "~*", "&*", "+@all")
LOGGED = ("on", f">{PASSWORD}", "~app:*", "+get", "+ping", "+client|id", "+shm.handshake")


@pytest.fixture
def bob(server: Server) -> Iterator[Server]:
    set_user(server, "bob", *BOB)
    yield server
    del_users(server, "bob", "logged")


def sessions_back_to(srv: Server, count: int) -> None:
    wait_until(lambda: shm_stat(srv, "sessions") == count, f"{count} open sessions")


def test_client_kill_user_ends_a_session_that_became_bob(bob: Server) -> None:
    srv = bob
    baseline = shm_stat(srv, "sessions")
    with srv.connect(shm="require") as conn:
        assert conn.execute("AUTH", "bob", PASSWORD) == Status(b"OK")
        assert conn.execute("PING") == Status(b"PONG")
        assert conn.transport == "shm"
        client_id = conn.execute("CLIENT", "ID")
        assert isinstance(client_id, Integer)
        assert client_line(srv, client_id.value).get("user") == "bob"
        with srv.admin() as admin:
            killed = admin.execute("CLIENT", "KILL", "USER", "bob")
        assert isinstance(killed, Integer) and killed.value >= 1, killed
        sessions_back_to(srv, baseline)
        with pytest.raises(ConnectionError):
            conn.execute("PING")


def test_client_kill_user_ends_a_raw_session(bob: Server) -> None:
    srv = bob
    baseline = shm_stat(srv, "sessions")
    with RawSession(srv, "bob", PASSWORD) as session:
        assert session.call("PING") == b"+PONG\r\n"
        with srv.admin() as admin:
            admin.execute("CLIENT", "KILL", "USER", "bob")
        sessions_back_to(srv, baseline)
        with pytest.raises(ChannelError):
            session.call("PING")


@pytest.mark.parametrize("how", ["raw", "connection-auth"])
def test_deluser_ends_sessions_and_a_new_bob_does_not_inherit_them(bob: Server,
                                                                   how: str) -> None:
    srv = bob
    baseline = shm_stat(srv, "sessions")
    client: RawSession | Connection
    if how == "raw":
        client = RawSession(srv, "bob", PASSWORD)
        call: Callable[..., object] = client.call
    else:
        client = srv.connect(shm="require")
        assert client.execute("AUTH", "bob", PASSWORD) == Status(b"OK")
        call = client.execute
    try:
        call("SET", "k", "old bob")
        with srv.admin() as admin:
            assert admin.execute("ACL", "DELUSER", "bob") == Integer(1)
        sessions_back_to(srv, baseline)
        set_user(srv, "bob", *BOB)
        with pytest.raises(ConnectionError):
            call("SET", "k", "the new bob, through an old session")
        with srv.admin() as admin:
            assert admin.execute("GET", "k") == Bulk(b"old bob")
    finally:
        client.close()


def acl_log(srv: Server) -> list[dict[bytes, Reply]]:
    with srv.admin() as admin:
        log = admin.execute("ACL", "LOG")
    assert isinstance(log, Array), log
    entries = []
    for entry in log.items:
        assert isinstance(entry, Array)
        keys = [k.data for k in entry.items[::2] if isinstance(k, Bulk)]
        entries.append(dict(zip(keys, entry.items[1::2], strict=True)))
    return entries


def names_users_in_module_log_entries(srv: Server) -> bool:
    info = srv.info("server")
    if "valkey_version" in info or srv.flavour == "valkey":
        return True
    major, minor = (int(x) for x in info["redis_version"].split(".")[:2])
    return (major, minor) >= (7, 2)


def test_denials_over_a_raw_session_are_logged(bob: Server) -> None:
    srv = bob
    set_user(srv, "logged", *LOGGED)
    with srv.admin() as admin:
        admin.execute("ACL", "LOG", "RESET")
    with RawSession(srv, "logged", PASSWORD) as session:
        assert session.call("GET", "app:1") == b"$-1\r\n"
        assert acl_log(srv) == []
        for cmd, seen in [(("SET", "app:1", "x"), 1), (("GET", "other:1"), 2)]:
            reply = session.call(*cmd)
            assert reply.startswith(b"-NOPERM") or is_refusal(reply), (cmd, reply)
            entries = acl_log(srv)
            assert len(entries) == seen, f"{cmd} left no ACL LOG entry: {entries}"
            if names_users_in_module_log_entries(srv):
                assert entries[0][b"username"] == Bulk(b"logged"), entries[0]
    with srv.admin() as admin:
        assert admin.execute("EXISTS", "app:1") == Integer(0)
