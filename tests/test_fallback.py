"""Refused commands: the module says -SHMFALLBACK, the socket does the work.

What the module cannot run exactly through RedisModule_Call (blocking
commands, subscriber mode, MONITOR, transactions, WAIT, protected commands,
CLIENT TRACKING / REPLY, CONFIG SET, writes while clients are paused) must be
refused, never executed: some of them would crash the server (WAIT on Redis
7.0), bypass protection (DEBUG, MODULE, SHUTDOWN) or silently behave
differently.  After a refusal the session refuses everything until the client
sends RESUME, so commands pipelined behind a refused one cannot overtake it.

Two levels:

* the raw channel: each refused command gets -SHMFALLBACK, what follows is
  "skipped after a refusal" (and not executed) until resume(), the server
  keeps running and nothing of the refused command took effect;
* the connection layer (shm="require"): every refused command really works,
  over the socket: BLPOP blocks and gets a pushed value, SUBSCRIBE receives
  messages, MULTI/EXEC and WATCH behave, DEBUG and MODULE are refused or
  allowed exactly as on the socket, a write during CLIENT PAUSE WRITE waits
  for UNPAUSE, and pipelines mixing refused and normal commands keep their
  order.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import pytest

from shmcli.channel import ShmChannel
from shmcli.resp import (
    Array,
    Bulk,
    Error,
    Integer,
    Nil,
    Push,
    Reply,
    Status,
    encode_command,
)

REFUSAL = b"-SHMFALLBACK "
SKIPPED = b"-SHMFALLBACK skipped after a refusal\r\n"

Command = Sequence[bytes | str | int]


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------


class RawSession:
    """A raw ShmChannel plus the socket connection it is bound to."""

    def __init__(self, server) -> None:
        self.control = server.connect(shm="off")
        hs = self.control.execute("SHM.HANDSHAKE")
        assert isinstance(hs, Array), hs
        token, path, ring = hs.items[0], hs.items[1], hs.items[2]
        self.channel = ShmChannel(path.data.decode(), token.data.decode(), ring.value, 30)

    def call(self, *args: bytes | str | int) -> bytes:
        return self.channel.call(encode_command(*args))

    def close(self) -> None:
        self.channel.close()
        self.control.close()


def shm_counters(server) -> tuple[int, int]:
    info = server.info("shm")
    return int(info["shm_commands"]), int(info["shm_refused"])


def admin(server, *args: bytes | str | int) -> Reply:
    with server.admin() as conn:
        return conn.execute(*args)


def wait_until(condition, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def in_thread(fn):
    """Run fn in a thread; returns (thread, result list, error list)."""
    result: list[object] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            result.append(fn())
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, result, errors


# ---------------------------------------------------------------------------
# raw channel: refusal, skipping, resume, no effect
# ---------------------------------------------------------------------------

# Each refused command, and a check (over an admin socket) that it had no effect.
REFUSED: list[tuple[str, Command]] = [
    ("blpop", ("BLPOP", "empty", "0")),
    ("brpop", ("BRPOP", "empty", "0")),
    ("blmove", ("BLMOVE", "empty", "dst", "LEFT", "RIGHT", "0")),
    ("brpoplpush", ("BRPOPLPUSH", "empty", "dst", "0")),
    ("bzpopmin", ("BZPOPMIN", "empty", "0")),
    ("blmpop", ("BLMPOP", "0", "1", "empty", "LEFT")),
    ("xread-block", ("XREAD", "BLOCK", "0", "STREAMS", "stream", "$")),
    ("xreadgroup-block", ("XREADGROUP", "GROUP", "g", "c", "BLOCK", "0", "STREAMS", "stream",
                          ">")),
    ("subscribe", ("SUBSCRIBE", "ch")),
    ("psubscribe", ("PSUBSCRIBE", "ch*")),
    ("ssubscribe", ("SSUBSCRIBE", "ch")),
    ("unsubscribe", ("UNSUBSCRIBE",)),
    ("monitor", ("MONITOR",)),
    ("multi", ("MULTI",)),
    ("exec", ("EXEC",)),
    ("discard", ("DISCARD",)),
    ("watch", ("WATCH", "k")),
    ("unwatch", ("UNWATCH",)),
    ("wait", ("WAIT", "1", "100")),
    ("wait-0", ("WAIT", "0", "0")),
    ("client-tracking", ("CLIENT", "TRACKING", "on")),
    ("client-reply", ("CLIENT", "REPLY", "OFF")),
    ("client-no-evict", ("CLIENT", "NO-EVICT", "on")),
    ("debug", ("DEBUG", "SLEEP", "0")),
    ("debug-segfault", ("DEBUG", "SEGFAULT")),
    ("module-list", ("MODULE", "LIST")),
    ("module-unload", ("MODULE", "UNLOAD", "shm")),
    ("shutdown", ("SHUTDOWN", "NOSAVE")),
    ("shutdown-now", ("SHUTDOWN", "NOW", "NOSAVE", "FORCE")),
    ("config-set", ("CONFIG", "SET", "maxmemory-policy", "allkeys-lru")),
    ("config-set-lower", ("config", "set", "maxmemory-policy", "allkeys-lru")),
]


@pytest.mark.parametrize("command", [c for _, c in REFUSED], ids=[n for n, _ in REFUSED])
def test_refused_at_the_raw_channel(server, command: Command) -> None:
    admin(server, "SET", "probe", "before")
    admin(server, "XGROUP", "CREATE", "stream", "g", "$", "MKSTREAM")
    before = shm_counters(server)
    session = RawSession(server)
    try:
        first = session.call(*command)
        assert first.startswith(REFUSAL) and first.endswith(b"\r\n"), first
        assert first != SKIPPED
        # everything after it is skipped, and not executed, until RESUME
        assert session.call("SET", "probe", "skipped") == SKIPPED
        assert session.call("PING") == SKIPPED
        assert admin(server, "GET", "probe") == Bulk(b"before")
        session.channel.resume()
        # a normal session again: not subscribed, not in MULTI, replies not off
        assert session.call("PING") == b"+PONG\r\n"
        assert session.call("SET", "probe", "after") == b"+OK\r\n"
        assert session.call("GET", "probe") == b"$5\r\nafter\r\n"
        assert session.call("CLIENT", "GETNAME") == b"$-1\r\n"
    finally:
        session.close()
    assert server.alive(), server.log()[-3000:]
    assert admin(server, "PING") == Status(b"PONG")
    after = shm_counters(server)
    assert after == (before[0] + 4, before[1] + 3)
    # nothing of the refused command happened
    assert admin(server, "CONFIG", "GET", "maxmemory-policy") == Array(
        [Bulk(b"maxmemory-policy"), Bulk(b"noeviction")])
    assert admin(server, "EXISTS", "dst") == Integer(0)
    assert "shm" in server.modules()
    with server.admin() as conn:
        clients = conn.execute("CLIENT", "LIST")
    assert isinstance(clients, Bulk)
    assert b"flags=O" not in clients.data  # nobody became a MONITOR
    assert b"flags=t" not in clients.data  # nor is tracking


def test_pipelined_requests_behind_a_refusal_are_not_executed(server) -> None:
    session = RawSession(server)
    try:
        requests = [("SET", "a", "1"), ("BLPOP", "empty", "0"), ("SET", "b", "2"),
                    ("INCR", "n"), ("GET", "a")]
        for cmd in requests:
            session.channel.send(encode_command(*cmd))
        replies = [session.channel.recv() for _ in requests]
        assert replies[0] == b"+OK\r\n"
        assert replies[1].startswith(REFUSAL) and replies[1] != SKIPPED
        assert replies[2:] == [SKIPPED] * 3
        assert admin(server, "EXISTS", "b", "n") == Integer(0)
        # the RESUME record travels in order behind the requests
        session.channel.send(encode_command("GET", "b"))
        session.channel.resume()
        session.channel.send(encode_command("GET", "a"))
        assert session.channel.recv() == SKIPPED
        assert session.channel.recv() == b"$1\r\n1\r\n"
    finally:
        session.close()


def test_wait_is_never_executed_with_a_replica_count(server) -> None:
    """WAIT through RedisModule_Call crashes Redis 7.0: it must stay refused
    whatever its arguments, and the server must live."""
    session = RawSession(server)
    try:
        for args in [("WAIT", "0", "0"), ("WAIT", "1", "0"), ("wait", "5", "10"), ("WAIT",),
                     ("WAITAOF", "0", "0", "0")]:
            assert session.call(*args).startswith(REFUSAL), args
            session.channel.resume()
            assert session.call("PING") == b"+PONG\r\n"
    finally:
        session.close()
    assert server.alive()


# ---------------------------------------------------------------------------
# through the connection layer: the refused commands work over the socket
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", [2, 3])
def test_blpop_blocks_until_a_push(server, protocol: int) -> None:
    with server.connect(shm="require", protocol=protocol) as conn:
        assert conn.execute("SET", "before", "1") == Status(b"OK")

        def push() -> Reply:
            time.sleep(0.3)
            with server.connect(shm="require") as other:
                return other.execute("LPUSH", "queue", "job-1")

        thread, pushed, errors = in_thread(push)
        reply = conn.execute("BLPOP", "queue", "20")
        thread.join(30)
        assert not errors, errors
        assert pushed == [Integer(1)]
        assert reply == Array([Bulk(b"queue"), Bulk(b"job-1")])
        # back on shared memory afterwards
        assert conn.transport == "shm"
        before = shm_counters(server)
        assert conn.execute("GET", "before") == Bulk(b"1")
        assert shm_counters(server)[0] == before[0] + 1


@pytest.mark.parametrize("protocol", [2, 3])
def test_blpop_timeout_returns_nil_like_the_socket(server, protocol: int) -> None:
    replies = []
    for shm in ("require", "off"):
        with server.connect(shm=shm, protocol=protocol) as conn:
            replies.append(conn.execute("BLPOP", "empty", "0.1"))
            replies.append(conn.execute("BRPOPLPUSH", "empty", "dst", "0.1"))
            replies.append(conn.execute("BZPOPMIN", "empty", "0.1"))
    assert replies[:3] == replies[3:]
    nil = Nil("array") if protocol == 2 else Nil("null")
    assert replies[0] == nil


@pytest.mark.parametrize("protocol", [2, 3])
def test_subscribe_receives_published_messages(server, protocol: int) -> None:
    with server.connect(shm="require", protocol=protocol) as sub, \
            server.connect(shm="require") as pub:
        confirm = sub.execute("SUBSCRIBE", "news")
        kind = Array if protocol == 2 else Push
        assert confirm == kind([Bulk(b"subscribe"), Bulk(b"news"), Integer(1)])
        assert pub.execute("PUBLISH", "news", "hello\x00world") == Integer(1)
        assert sub.read_reply() == kind([Bulk(b"message"), Bulk(b"news"),
                                         Bulk(b"hello\x00world")])
        assert sub.execute("PSUBSCRIBE", "n*") == kind(
            [Bulk(b"psubscribe"), Bulk(b"n*"), Integer(2)])
        assert pub.execute("PUBLISH", "news", "two") == Integer(2)
        got = [sub.read_reply(), sub.read_reply()]
        assert kind([Bulk(b"message"), Bulk(b"news"), Bulk(b"two")]) in got
        assert kind([Bulk(b"pmessage"), Bulk(b"n*"), Bulk(b"news"), Bulk(b"two")]) in got
        assert sub.execute("UNSUBSCRIBE", "news") == kind(
            [Bulk(b"unsubscribe"), Bulk(b"news"), Integer(1)])
        assert sub.execute("PUNSUBSCRIBE", "n*") == kind(
            [Bulk(b"punsubscribe"), Bulk(b"n*"), Integer(0)])
        # out of subscriber mode: ordinary commands again, over shared memory
        before = shm_counters(server)
        assert sub.execute("SET", "k", "v") == Status(b"OK")
        assert sub.execute("GET", "k") == Bulk(b"v")
        assert shm_counters(server)[0] == before[0] + 2
        assert pub.execute("PUBLISH", "news", "nobody") == Integer(0)


def test_multi_exec_like_the_socket(server) -> None:
    seq: list[Command] = [("MULTI",), ("INCR", "n"), ("INCR", "n"), ("GET", "n"), ("EXEC",),
                          ("MULTI",), ("SET", "x", "1"), ("DISCARD",), ("GET", "x"),
                          ("EXEC",), ("MULTI",), ("INCR", "n"), ("NOSUCH",), ("EXEC",),
                          ("GET", "n")]
    results = []
    for shm in ("require", "off"):
        admin(server, "FLUSHALL")
        with server.connect(shm=shm) as conn:
            results.append([conn.execute(*cmd) for cmd in seq])
            assert conn.transport == ("shm" if shm == "require" else "socket")
    assert results[0] == results[1]
    assert results[0][4] == Array([Integer(1), Integer(2), Bulk(b"2")])
    assert results[0][1] == Status(b"QUEUED")
    assert results[0][8] == Nil("bulk")


def test_watch_with_a_concurrent_write_aborts_exec(server) -> None:
    results = []
    for shm in ("require", "off"):
        admin(server, "SET", "k", "start")
        with server.connect(shm=shm) as conn, server.connect(shm="require") as other:
            replies = [conn.execute("WATCH", "k"), conn.execute("GET", "k")]
            assert other.execute("SET", "k", "theirs") == Status(b"OK")
            replies += [conn.execute("MULTI"), conn.execute("SET", "k", "mine"),
                        conn.execute("EXEC"), conn.execute("GET", "k")]
            # and without interference the transaction commits
            replies += [conn.execute("WATCH", "k"), conn.execute("MULTI"),
                        conn.execute("SET", "k", "mine"), conn.execute("EXEC"),
                        conn.execute("GET", "k")]
        results.append(replies)
    assert results[0] == results[1]
    assert results[0][4] == Nil("array")
    assert results[0][5] == Bulk(b"theirs")
    assert results[0][9] == Array([Status(b"OK")])
    assert results[0][10] == Bulk(b"mine")


def test_debug_is_refused_like_the_socket_when_disabled(server) -> None:
    replies = []
    for shm in ("require", "off"):
        with server.connect(shm=shm) as conn:
            replies.append([conn.execute("DEBUG", "SLEEP", "0"),
                            conn.execute("DEBUG", "SET-ACTIVE-EXPIRE", "1"),
                            conn.execute("DEBUG", "HELP")])
    assert replies[0] == replies[1]
    assert all(isinstance(r, Error) for r in replies[0]), replies[0]
    assert server.alive()


@pytest.mark.parametrize("exec_mode", ["main-thread", "fast-path"])
def test_debug_works_when_enabled(make_server, flavour: str, exec_mode: str) -> None:
    srv = make_server(flavour, exec_mode, config={"enable-debug-command": "yes"})
    with srv.connect(shm="require") as conn:
        assert conn.execute("DEBUG", "SLEEP", "0") == Status(b"OK")
        assert conn.execute("SET", "k", "v") == Status(b"OK")
        assert conn.execute("DEBUG", "OBJECT", "nope") == Error(b"ERR no such key")
        digest = conn.execute("DEBUG", "DIGEST-VALUE", "k")
        assert conn.transport == "shm"
    with srv.admin() as sock:
        assert sock.execute("DEBUG", "DIGEST-VALUE", "k") == digest


def test_module_command_is_refused_like_the_socket_when_disabled(server) -> None:
    replies = []
    for shm in ("require", "off"):
        with server.connect(shm=shm) as conn:
            replies.append([conn.execute("MODULE", "LIST"),
                            conn.execute("MODULE", "UNLOAD", "shm")])
    assert replies[0] == replies[1]
    assert isinstance(replies[0][1], Error), replies[0]  # never unloaded
    assert "shm" in server.modules()


@pytest.mark.parametrize("exec_mode", ["main-thread", "fast-path"])
def test_module_list_works_when_enabled(make_server, flavour: str, exec_mode: str) -> None:
    srv = make_server(flavour, exec_mode, config={"enable-module-command": "yes"})
    with srv.connect(shm="require") as conn, srv.admin() as sock:
        via_shm = conn.execute("MODULE", "LIST")
        assert via_shm == sock.execute("MODULE", "LIST")
        # shm, and the server's built-in modules (Redis 8: vectorset, Valkey 9.1: lua)
        assert isinstance(via_shm, Array)
        names = [dict(zip(m.items[::2], m.items[1::2], strict=True))[Bulk(b"name")].data.decode()
                 for m in via_shm.items]  # type: ignore[union-attr]
        assert sorted(names) == sorted(srv.modules()) and names.count("shm") == 1
        # refused over shm, then the server itself refuses to unload it
        assert conn.execute("MODULE", "UNLOAD", "shm") == sock.execute("MODULE", "UNLOAD", "shm")
        assert conn.transport == "shm"
    assert srv.alive()


@pytest.mark.parametrize("exec_mode", ["main-thread", "fast-path"])
def test_write_waits_for_client_unpause(make_server, flavour: str, exec_mode: str) -> None:
    srv = make_server(flavour, exec_mode, config={"appendonly": "yes"})
    with srv.connect(shm="require") as conn, srv.admin() as sock:
        assert conn.execute("SET", "k", "before") == Status(b"OK")
        assert sock.execute("CLIENT", "PAUSE", "60000", "WRITE") == Status(b"OK")
        try:
            # reads still run, over the socket: the module takes the server's
            # pause state, which does not tell a WRITE pause from an ALL one
            before = shm_counters(srv)
            assert conn.execute("GET", "k") == Bulk(b"before")
            assert shm_counters(srv) == (before[0], before[1] + 1)

            thread, result, errors = in_thread(lambda: conn.execute("SET", "k", "after"))
            # the write must not happen while writes are paused
            thread.join(0.5)
            assert thread.is_alive(), (result, errors)
            assert sock.execute("GET", "k") == Bulk(b"before")
        finally:
            assert sock.execute("CLIENT", "UNPAUSE") == Status(b"OK")
        thread.join(30)
        assert not thread.is_alive()
        assert not errors, errors
        assert result == [Status(b"OK")]
        assert sock.execute("GET", "k") == Bulk(b"after")
        assert conn.execute("INCR", "n") == Integer(1)
        assert conn.transport == "shm"
    assert srv.alive(), srv.log()[-3000:]
    info = srv.info("persistence")
    assert info["aof_last_write_status"] == "ok"
    # the paused write reached the AOF once, after the unpause
    srv.restart()
    with srv.admin() as sock:
        assert sock.execute("GET", "k") == Bulk(b"after")
        assert sock.execute("GET", "n") == Bulk(b"1")


@pytest.mark.parametrize("exec_mode", ["main-thread", "fast-path"])
def test_all_commands_wait_during_client_pause_all(make_server, flavour: str,
                                                   exec_mode: str) -> None:
    srv = make_server(flavour, exec_mode)
    with srv.connect(shm="require") as conn, srv.admin() as sock:
        assert conn.execute("SET", "k", "v") == Status(b"OK")
        # Everybody is paused, the admin connection too (so no UNPAUSE): the
        # pause simply runs out.
        assert sock.execute("CLIENT", "PAUSE", "3000", "ALL") == Status(b"OK")
        paused_at = time.monotonic()
        thread, result, errors = in_thread(lambda: conn.execute("GET", "k"))
        thread.join(0.3)
        if time.monotonic() - paused_at < 2.5:  # else the pause may be over: no verdict
            assert thread.is_alive(), (result, errors)
        thread.join(30)
        assert result == [Bulk(b"v")], errors
        assert conn.transport == "shm"
    assert srv.alive()


@pytest.mark.parametrize("protocol", [2, 3])
def test_pipeline_mixing_refused_and_normal_commands(server, protocol: int) -> None:
    mixed: list[Command] = [
        ("SET", "a", "1"), ("BLPOP", "empty", "0.1"), ("GET", "a"), ("INCR", "n"),
        ("CONFIG", "SET", "maxmemory-policy", "noeviction"), ("INCR", "n"),
        ("CLIENT", "NO-EVICT", "off"), ("GET", "n"),
    ]
    ordered: list[Command] = [
        ("DEL", "l"), ("RPUSH", "l", "x"), ("BLPOP", "l", "0.1"), ("RPUSH", "l", "y"),
        ("LRANGE", "l", "0", "-1"), ("BLMOVE", "l", "l2", "LEFT", "RIGHT", "0.1"),
        ("LRANGE", "l2", "0", "-1"), ("BLPOP", "l", "0.1"), ("LLEN", "l"),
    ]
    results = []
    for shm in ("require", "off"):
        admin(server, "FLUSHALL")
        with server.connect(shm=shm, protocol=protocol) as conn:
            results.append(conn.execute_many(mixed) + conn.execute_many(ordered))
            assert conn.transport == ("shm" if shm == "require" else "socket")
    assert results[0] == results[1], list(zip(mixed + ordered, *results, strict=True))
    got = results[0]
    nil = Nil("array") if protocol == 2 else Nil("null")
    assert got[:8] == [Status(b"OK"), nil, Bulk(b"1"), Integer(1), Status(b"OK"), Integer(2),
                       Status(b"OK"), Bulk(b"2")]
    assert got[8:] == [Integer(0), Integer(1), Array([Bulk(b"l"), Bulk(b"x")]), Integer(1),
                       Array([Bulk(b"y")]), Bulk(b"y"), Array([Bulk(b"y")]), nil, Integer(0)]


def test_pipeline_with_many_refusals_keeps_order(server) -> None:
    """Alternating refused and normal commands, more than one chunk's worth."""
    batch: list[Command] = []
    for i in range(200):
        batch.append(("RPUSH", "seq", str(i)))
        if i % 7 == 0:
            batch.append(("BLPOP", "nothing", "0.01"))
        if i % 11 == 0:
            batch.append(("WAIT", "0", "0"))
    with server.connect(shm="require") as conn:
        replies = conn.execute_many(batch)
        assert conn.transport == "shm"
    by_name: dict[str, list[Reply]] = {"RPUSH": [], "BLPOP": [], "WAIT": []}
    for cmd, reply in zip(batch, replies, strict=True):
        by_name[str(cmd[0])].append(reply)
    assert by_name["RPUSH"] == [Integer(i + 1) for i in range(200)]
    assert by_name["BLPOP"] == [Nil("array")] * len(by_name["BLPOP"])
    assert by_name["WAIT"] == [Integer(0)] * len(by_name["WAIT"])
    assert admin(server, "LRANGE", "seq", "0", "-1") == Array(
        [Bulk(str(i).encode()) for i in range(200)])


def test_refusal_reason_is_not_shown_to_the_user(server) -> None:
    """Through the connection a refused command's reply is the socket's, never
    the module's -SHMFALLBACK line."""
    with server.connect(shm="require") as conn:
        for cmd in [("BLPOP", "e", "0.01"), ("WAIT", "0", "0"), ("CLIENT", "TRACKING", "off"),
                    ("CONFIG", "SET", "nope", "1"), ("DEBUG", "HELP"), ("MULTI",),
                    ("DISCARD",), ("UNWATCH",)]:
            reply = conn.execute(*cmd)
            assert not (isinstance(reply, Error) and reply.text.startswith(b"SHMFALLBACK")), cmd
        assert conn.execute("SET", "k", "v") == Status(b"OK")
