"""ACLs and protected commands over shared memory: denied exactly where the socket denies.

A session runs as the ACL user of the connection that asked for it, so a
restricted user must get, over shared memory, exactly the replies (NOPERM
texts included), the data and the ACL LOG denials it gets over its socket.
These tests run the same command matrices both ways and compare everything;
at the raw channel level they check that the module never executes a denied
or protected command itself (it answers the socket's NOPERM where the server
words the denial as on a socket, Redis 7.2+ and Valkey, and -SHMFALLBACK
otherwise, and leaves the data alone), that permission changes apply to the
very next command, that scripts (refused over shared memory) run as the user
on the socket, and that a password-protected server gives no session to an
unauthenticated connection.

ACL LOG entries of denials the module answers are the server's, written
inside RedisModule_Call: context `module` where the socket says `toplevel`.
On Redis 7.0 a denial the module finds is logged by it and refused, and the
socket logs it again (docs/security.md, "Identity").
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator, Sequence

import pytest
from servers import RawSocket, Server, raw_session, shm_stat

from shmcli.channel import ShmChannel
from shmcli.connection import Connection
from shmcli.resp import Array, Bulk, Error, Integer, Reply, Status, encode_command

PASSWORD = "pw"
Command = Sequence[str | int]

# Every restricted user needs +shm.handshake: the module command has no ACL
# category, so without it a user gets NOPERM for SHM.HANDSHAKE and no session.
USERS: dict[str, list[str]] = {
    # the brief's read/write user limited to a key prefix and four commands
    "ro": ["resetkeys", "~allowed:*", "resetchannels", "+get", "+set", "+ping", "-debug",
           "+shm.handshake"],
    # key permissions: full on rw:*, read-only on ro:*, write-only on wo:*
    "keys": ["resetkeys", "~rw:*", "%R~ro:*", "%W~wo:*", "resetchannels", "+@all",
             "-@dangerous"],
    # channel permissions
    "chan": ["resetkeys", "~*", "resetchannels", "&news.*", "+publish", "+spublish", "+ping",
             "+get", "+shm.handshake"],
    # may run scripts, may read, may not SET
    "scripter": ["resetkeys", "~*", "resetchannels", "+eval", "+evalsha", "+eval_ro", "+fcall",
                 "+get", "+ping", "+shm.handshake"],
}

SET_SCRIPT = "return redis.call('set', KEYS[1], ARGV[1])"
PCALL_SCRIPT = "local r = redis.pcall('set', KEYS[1], ARGV[1]); return r['err'] or r['ok']"
GET_SCRIPT = "return redis.call('get', KEYS[1])"
FUNCTION_LIB = ("#!lua name=acltest\n"
                "redis.register_function('setit', function(keys, args) "
                "return redis.call('set', keys[1], args[1]) end)")

SEEDS: dict[str, list[Command]] = {
    "ro": [("SET", "allowed:1", "a"), ("SET", "other:1", "o")],
    "keys": [("SET", "ro:1", "r"), ("SET", "wo:1", "w"), ("SET", "other:1", "o"),
             ("SET", "rw:1", "x")],
    "chan": [("SET", "k", "v")],
    "scripter": [("SET", "k", "v"), ("FUNCTION", "LOAD", "REPLACE", FUNCTION_LIB)],
}

MATRICES: dict[str, list[Command]] = {
    "ro": [
        ("PING",), ("SET", "allowed:1", "b"), ("GET", "allowed:1"), ("SET", "other:1", "v"),
        ("GET", "other:1"), ("GET", "allowed:missing"), ("INCR", "allowed:c"),
        ("DEL", "allowed:1"), ("SET", "allowed:2", "c", "EX", "100"), ("DEBUG", "SLEEP", "0"),
        ("CONFIG", "GET", "maxmemory"), ("SELECT", "0"), ("CLIENT", "ID"),
        ("CLIENT", "SETNAME", "x"), ("CLIENT", "GETNAME"), ("ECHO", "hi"),
        ("EVAL", "return 1", "0"), ("FLUSHALL",), ("GET", "allowed:1"), ("PING", "again"),
    ],
    "keys": [
        ("SET", "rw:1", "a"), ("GET", "rw:1"), ("GET", "ro:1"), ("SET", "ro:1", "x"),
        ("SET", "wo:1", "x"), ("GET", "wo:1"), ("APPEND", "wo:1", "y"), ("GET", "other:1"),
        ("MSET", "rw:2", "a", "other:2", "b"), ("MSET", "rw:2", "a", "wo:2", "b"),
        ("COPY", "ro:1", "rw:3"), ("COPY", "rw:1", "ro:2"), ("LPUSH", "rw:l", "a", "b"),
        ("SORT", "rw:l", "ALPHA"), ("KEYS", "*"), ("FLUSHALL",), ("DBSIZE",),
        ("INCR", "rw:c"), ("EVAL", GET_SCRIPT, "1", "other:1"), ("EVAL", GET_SCRIPT, "1", "ro:1"),
        ("EVAL", SET_SCRIPT, "1", "ro:1", "z"), ("OBJECT", "ENCODING", "rw:1"),
        ("RENAME", "rw:1", "ro:9"), ("SMOVE", "rw:s", "other:s", "m"),
    ],
    "chan": [
        ("PUBLISH", "news.1", "hi"), ("PUBLISH", "sports.1", "hi"),
        ("SPUBLISH", "news.2", "hi"), ("SPUBLISH", "weather", "hi"), ("GET", "k"),
        ("SET", "k", "x"), ("PING",), ("PUBSUB", "CHANNELS"),
    ],
    "scripter": [
        ("EVAL", SET_SCRIPT, "1", "k", "x"), ("EVAL", PCALL_SCRIPT, "1", "k", "y"),
        ("EVAL", GET_SCRIPT, "1", "k"), ("EVAL_RO", GET_SCRIPT, "1", "k"),
        ("FCALL", "setit", "1", "k", "z"), ("SET", "k", "w"), ("GET", "k"),
        ("EVAL", "return redis.call('ping')", "0"),
    ],
}


# ---- helpers ----

def create_users(srv: Server, names: Sequence[str] = tuple(USERS)) -> None:
    with srv.admin() as admin:
        for name in names:
            reply = admin.execute("ACL", "SETUSER", name, "reset", "on", f">{PASSWORD}",
                                  *USERS[name])
            assert reply == Status(b"OK"), reply


@pytest.fixture
def users(server: Server) -> Iterator[Server]:
    create_users(server)
    yield server
    with server.admin() as admin:
        admin.execute("ACL", "DELUSER", *USERS)
        admin.execute("FUNCTION", "FLUSH")


def raw_call(channel: ShmChannel, *args: str | int) -> bytes:
    return channel.call(encode_command(*args))


def as_user(name: str) -> dict[str, object]:
    return {"username": name, "password": PASSWORD}


def snapshot(srv: Server) -> dict[bytes, tuple[Reply, bool]]:
    """Every key's serialized value and whether it has a TTL."""
    with srv.admin() as admin:
        keys = admin.execute("KEYS", "*")
        assert isinstance(keys, Array)
        out = {}
        for item in keys.items:
            assert isinstance(item, Bulk)
            ttl = admin.execute("PTTL", item.data)
            assert isinstance(ttl, Integer)
            out[item.data] = (admin.execute("DUMP", item.data), ttl.value > 0)
        return out


def refuses_acl_denials(srv: Server) -> bool:
    """Redis before 7.2 words a denial inside RedisModule_Call differently,
    so the module refuses it and the socket answers."""
    if srv.flavour != "redis":
        return False
    version = srv.info("server")["redis_version"]
    return tuple(int(part) for part in version.split(".")[:2]) < (7, 2)


def acl_log(srv: Server) -> list[dict[bytes, Reply]]:
    """ACL LOG entries without the fields that name the client or the time."""
    with srv.admin() as admin:
        log = admin.execute("ACL", "LOG", "128")  # all of them (acl-log-max-len), not 10
    assert isinstance(log, Array)
    entries = []
    for entry in log.items:
        assert isinstance(entry, Array)
        fields = dict(zip(entry.items[::2], entry.items[1::2], strict=True))
        entries.append({k.data: v for k, v in fields.items() if isinstance(k, Bulk)
                        and k.data in (b"count", b"reason", b"context", b"object",
                                       b"username")})
    return entries


def run_both_ways(srv: Server, user: str, seed: Sequence[Command],
                  commands: Sequence[Command]) -> dict[str, tuple]:
    """Run `commands` as `user` over shm and over the socket from the same
    starting data; return replies, resulting data and ACL LOG per transport."""
    results: dict[str, tuple] = {}
    for mode in ("require", "off"):
        with srv.admin() as admin:
            admin.execute("FLUSHALL")
            admin.execute("ACL", "LOG", "RESET")
            for cmd in seed:
                reply = admin.execute(*cmd)
                assert not isinstance(reply, Error), (cmd, reply)
        executed = shm_stat(srv, "commands")
        with srv.connect(shm=mode, **as_user(user)) as conn:
            assert conn.transport == ("shm" if mode == "require" else "socket")
            replies = [conn.execute(*cmd) for cmd in commands]
            assert conn.transport == ("shm" if mode == "require" else "socket")
        ran_over_shm = shm_stat(srv, "commands") - executed
        results[mode] = (replies, snapshot(srv), acl_log(srv), ran_over_shm)
    return results


# ---- differential matrices ----

@pytest.mark.parametrize("user", list(MATRICES))
def test_restricted_user_gets_the_sockets_replies(users: Server, user: str) -> None:
    commands = MATRICES[user]
    results = run_both_ways(users, user, SEEDS[user], commands)
    shm_replies, shm_data, shm_log, shm_ran = results["require"]
    sock_replies, sock_data, sock_log, _ = results["off"]
    for cmd, over_shm, over_socket in zip(commands, shm_replies, sock_replies, strict=True):
        assert over_shm == over_socket, f"{cmd}: shm {over_shm!r} != socket {over_socket!r}"
    # the matrices are meant to contain denials; make sure they really do
    assert any(isinstance(r, Error) and r.code == "NOPERM" for r in sock_replies)
    assert shm_data == sock_data
    assert all(entry[b"context"] != Bulk(b"module") for entry in sock_log)
    shm_denials, sock_denials = denial_counts(shm_log), denial_counts(sock_log)
    if refuses_acl_denials(users):
        # a denial the module found is logged by it, refused, then logged by the socket
        assert shm_denials.keys() == sock_denials.keys(), (shm_log, sock_log)
        assert all(sock_denials[k] <= shm_denials[k] <= 2 * sock_denials[k]
                   for k in sock_denials), (shm_log, sock_log)
    else:
        assert shm_denials == sock_denials, (shm_log, sock_log)
    assert shm_ran > 0, "nothing ran over shared memory"


def denial_counts(log: list[dict[bytes, Reply]]) -> Counter[tuple[Reply, ...]]:
    """How often each (reason, object, user) was denied, in any context: the
    module's calls log context `module` where the socket logs `toplevel`."""
    counts: Counter[tuple[Reply, ...]] = Counter()
    for entry in log:
        count = entry[b"count"]
        assert isinstance(count, Integer)
        counts[entry[b"reason"], entry[b"object"], entry[b"username"]] += count.value
    return counts


def test_denied_commands_are_not_executed_on_the_raw_channel(users: Server) -> None:
    srv = users
    with srv.admin() as admin:
        admin.execute("SET", "allowed:1", "a")
        admin.execute("SET", "rw:1", "a")
    denied: list[tuple[str, Command, Callable[[Connection], bool]]] = [
        ("ro", ("SET", "other:1", "v"), lambda a: a.execute("EXISTS", "other:1") == Integer(0)),
        ("ro", ("INCR", "allowed:c"), lambda a: a.execute("EXISTS", "allowed:c") == Integer(0)),
        ("ro", ("DEL", "allowed:1"), lambda a: a.execute("EXISTS", "allowed:1") == Integer(1)),
        ("ro", ("EVAL", SET_SCRIPT, "1", "allowed:e", "x"),
         lambda a: a.execute("EXISTS", "allowed:e") == Integer(0)),
        ("ro", ("SELECT", "1"), lambda a: True),
        ("ro", ("CLIENT", "SETNAME", "evil"),
         lambda a: b"name=evil" not in a.execute("CLIENT", "LIST").data),
        ("keys", ("SET", "ro:1", "x"), lambda a: a.execute("EXISTS", "ro:1") == Integer(0)),
        ("keys", ("MSET", "rw:1", "b", "other:2", "c"),
         lambda a: a.execute("GET", "rw:1") == Bulk(b"a")),
        ("keys", ("FLUSHALL",), lambda a: a.execute("EXISTS", "rw:1") == Integer(1)),
        ("chan", ("PUBLISH", "sports.1", "x"), lambda a: True),
    ]
    for user, cmd, untouched in denied:
        ctl, channel = raw_session(srv, **as_user(user))
        sock = RawSocket(srv.unix_socket)
        try:
            assert sock.call("AUTH", user, PASSWORD) == b"+OK\r\n"
            # an allowed command first: the session works for this user
            assert raw_call(channel, "PING") == b"+PONG\r\n"
            refused_before = shm_stat(srv, "refused")
            reply = raw_call(channel, *cmd)
            refused = reply.startswith(b"-SHMFALLBACK ")
            with srv.admin() as admin:
                assert untouched(admin), (user, cmd)
            if refused:
                assert shm_stat(srv, "refused") == refused_before + 1
                channel.resume()
            else:  # answered: the socket's denial, byte for byte
                assert reply.startswith(b"-NOPERM "), (user, cmd, reply)
                assert reply == sock.call(*cmd), (user, cmd)
            assert raw_call(channel, "PING") == b"+PONG\r\n"
        finally:
            channel.close()
            ctl.close()
            sock.close()
    with srv.admin() as admin:
        assert admin.execute("GET", "allowed:1") == Bulk(b"a")


def test_denial_inside_a_script(users: Server) -> None:
    """Scripts are refused over a raw session; through the connection they
    run on the socket as the user: the inner SET fails exactly as on a plain
    socket and writes nothing."""
    srv = users
    with srv.admin() as admin:
        admin.execute("FUNCTION", "LOAD", "REPLACE", FUNCTION_LIB)
    scripts: list[Command] = [("EVAL", SET_SCRIPT, "1", "k", "x"),
                              ("FCALL", "setit", "1", "k", "y"),
                              ("EVAL", PCALL_SCRIPT, "1", "k", "z")]
    ctl, channel = raw_session(srv, **as_user("scripter"))
    try:
        for cmd in scripts:
            reply = raw_call(channel, *cmd)
            assert reply.startswith(b"-SHMFALLBACK "), (cmd, reply)
            channel.resume()
    finally:
        channel.close()
        ctl.close()
    with srv.connect(shm="require", **as_user("scripter")) as conn, \
            srv.connect(shm="off", **as_user("scripter")) as sock:
        for cmd in scripts:
            over_shm, over_socket = conn.execute(*cmd), sock.execute(*cmd)
            assert over_shm == over_socket, cmd
            # the user lacks SET: the script's SET must not have succeeded
            assert over_socket != Status(b"OK"), (cmd, over_socket)
        assert conn.transport == "shm"
    with srv.admin() as admin:
        assert admin.execute("EXISTS", "k") == Integer(0)


# ---- permission changes mid-session ----

def test_acl_setuser_applies_to_the_next_shm_command(server: Server) -> None:
    srv = server
    with srv.admin() as admin:
        admin.execute("ACL", "SETUSER", "flip", "reset", "on", f">{PASSWORD}", "~*", "&*",
                      "+@all")
    try:
        with srv.connect(shm="require", **as_user("flip")) as conn, \
                srv.connect(shm="off", **as_user("flip")) as sock, srv.admin() as admin:
            ran = shm_stat(srv, "commands")
            assert conn.execute("SET", "a", "1") == Status(b"OK")
            assert shm_stat(srv, "commands") == ran + 1

            assert admin.execute("ACL", "SETUSER", "flip", "-set") == Status(b"OK")
            denied = conn.execute("SET", "a", "2")
            assert isinstance(denied, Error) and denied.code == "NOPERM", denied
            assert denied == sock.execute("SET", "a", "2")
            assert admin.execute("GET", "a") == Bulk(b"1")

            assert admin.execute("ACL", "SETUSER", "flip", "+set", "resetkeys", "~x:*") \
                == Status(b"OK")
            denied = conn.execute("SET", "a", "3")
            assert isinstance(denied, Error) and denied.code == "NOPERM", denied
            assert denied == sock.execute("SET", "a", "3")
            assert admin.execute("GET", "a") == Bulk(b"1")

            ran = shm_stat(srv, "commands")
            assert conn.execute("SET", "x:1", "ok") == Status(b"OK")
            assert shm_stat(srv, "commands") == ran + 1, "the allowed write left shm"
            assert conn.transport == "shm"

            assert admin.execute("ACL", "SETUSER", "flip", "~*") == Status(b"OK")
            assert conn.execute("SET", "a", "4") == Status(b"OK")
            assert admin.execute("GET", "a") == Bulk(b"4")

        # and at the raw level: a revoked command is denied or refused, not run
        ctl, channel = raw_session(srv, **as_user("flip"))
        try:
            assert raw_call(channel, "SET", "b", "1") == b"+OK\r\n"
            with srv.admin() as admin:
                admin.execute("ACL", "SETUSER", "flip", "-set")
            reply = raw_call(channel, "SET", "b", "2")
            if refuses_acl_denials(srv):
                assert reply.startswith(b"-SHMFALLBACK "), reply
            else:
                assert reply == b"-NOPERM User flip has no permissions to run the 'set' " \
                    b"command\r\n", reply
            with srv.admin() as admin:
                assert admin.execute("GET", "b") == Bulk(b"1")
        finally:
            channel.close()
            ctl.close()
    finally:
        with srv.admin() as admin:
            admin.execute("ACL", "DELUSER", "flip")


# ---- protected commands ----

PROTECTED: list[Command] = [
    ("DEBUG", "SLEEP", "0"), ("DEBUG", "CHANGE-REPL-ID"), ("MODULE", "LIST"),
    ("MODULE", "UNLOAD", "shm"), ("MODULE", "LOAD", "/nonexistent/module.so"),
]


def replid(srv: Server) -> str:
    return srv.info("replication")["master_replid"]


def test_protected_commands_get_the_sockets_refusal(server: Server) -> None:
    srv = server
    with srv.connect(shm="require") as conn, srv.connect(shm="off") as sock:
        for cmd in PROTECTED:
            over_shm, over_socket = conn.execute(*cmd), sock.execute(*cmd)
            if cmd[:2] != ("MODULE", "LIST"):  # LIST is not protected
                assert isinstance(over_socket, Error), (cmd, over_socket)
            assert over_shm == over_socket, cmd
        assert conn.transport == "shm"


@pytest.mark.parametrize("setting", ["yes", "local"])
def test_protected_commands_enabled_work_but_never_over_the_raw_channel(
        flavour: str, make_server: Callable[..., Server], setting: str) -> None:
    srv = make_server(flavour, config={"enable-debug-command": setting,
                                       "enable-module-command": setting})
    with srv.connect(shm="require") as conn, srv.connect(shm="off") as sock:
        assert conn.execute("DEBUG", "SLEEP", "0") == Status(b"OK")
        assert conn.execute("MODULE", "LIST") == sock.execute("MODULE", "LIST")
        before = replid(srv)
        assert conn.execute("DEBUG", "CHANGE-REPL-ID") == Status(b"OK")
        assert replid(srv) != before
        assert conn.transport == "shm"

    ctl, channel = raw_session(srv)
    try:
        for cmd in PROTECTED:
            before = replid(srv)
            reply = raw_call(channel, *cmd)
            assert reply.startswith(b"-SHMFALLBACK "), (cmd, reply)
            channel.resume()
            assert replid(srv) == before, f"{cmd} ran over shared memory"
        assert raw_call(channel, "PING") == b"+PONG\r\n"
    finally:
        channel.close()
        ctl.close()
    with srv.admin() as admin:
        modules = admin.execute("MODULE", "LIST")
    assert b"shm" in repr(modules).encode()


# ---- authentication ----

def test_password_protected_default_user(flavour: str,
                                         make_server: Callable[..., Server]) -> None:
    srv = make_server(flavour, config={"requirepass": "secret"})
    with srv.connect(shm="off") as plain:
        reply = plain.execute("SHM.HANDSHAKE")
        assert isinstance(reply, Error) and reply.code == "NOAUTH", reply
    with pytest.raises(ConnectionError):
        srv.connect(shm="require")
    with srv.connect(shm="auto") as conn:
        assert conn.transport == "socket"
        reply = conn.execute("PING")
        assert isinstance(reply, Error) and reply.code == "NOAUTH"
    assert shm_stat(srv, "sessions") == 0
    assert shm_stat(srv, "sessions_opened") == 0

    ran = shm_stat(srv, "commands")
    with srv.connect(shm="require", password="secret") as conn:
        assert conn.transport == "shm"
        assert conn.execute("PING") == Status(b"PONG")
        assert shm_stat(srv, "commands") == ran + 1


def test_authentication_state_over_shm_matches_the_socket(
        flavour: str, make_server: Callable[..., Server]) -> None:
    """AUTH with a wrong password keeps the user; RESET drops the
    authentication when `default` has a password; AUTH brings it back."""
    srv = make_server(flavour, config={"requirepass": "secret"})
    with srv.admin() as admin:
        admin.execute("SET", "k", "v")
    steps: list[Command] = [
        ("GET", "k"), ("AUTH", "wrong"), ("GET", "k"), ("RESET",), ("GET", "k"),
        ("PING",), ("AUTH", "secret"), ("GET", "k"), ("AUTH", "nobody", "x"), ("GET", "k"),
    ]
    results = {}
    for mode in ("require", "off"):
        with srv.connect(shm=mode, password="secret") as conn:
            results[mode] = [conn.execute(*cmd) for cmd in steps]
    for cmd, over_shm, over_socket in zip(steps, results["require"], results["off"], strict=True):
        assert over_shm == over_socket, f"{cmd}: shm {over_shm!r} != socket {over_socket!r}"
    assert isinstance(results["off"][4], Error) and results["off"][4].code == "NOAUTH"
