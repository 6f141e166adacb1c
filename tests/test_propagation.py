"""Writes over shared memory have every side effect a socket write has.

The module runs commands with RedisModule_Call, outside the server's normal
command path, so propagation is not automatic: these tests check that writes
made over shared memory (single and pipelined, both execution paths, both
servers) reach the AOF and survive a restart, reach a replica, fire keyspace
notifications to socket subscribers, wake clients blocked on the socket, and
that with `appendfsync always` a reply over shared memory, like a reply over
the socket, only arrives once the write is in the AOF.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from servers import EXEC_MODES, FLAVOURS, Server, shm_stat, wait_until

from shmcli.connection import Connection
from shmcli.resp import Array, Bulk, Error, Integer, Reply, Status

Command = Sequence[str | int]
SERVERS = [(f, m) for f in FLAVOURS for m in EXEC_MODES]
SERVER_IDS = [f"{f}-{m}" for f, m in SERVERS]


def workload(prefix: str) -> list[Command]:
    """A few hundred writes over every common type, with effects that must be
    propagated as their result (SPOP, INCRBYFLOAT, EXPIRE, XADD *)."""
    cmds: list[Command] = []
    for i in range(60):
        cmds += [
            ("SET", f"{prefix}s:{i}", f"v{i}"),
            ("HSET", f"{prefix}h:{i % 10}", f"f{i}", i),
            ("RPUSH", f"{prefix}l:{i % 7}", i),
            ("SADD", f"{prefix}set:{i % 5}", i),
            ("ZADD", f"{prefix}z:{i % 3}", i, f"m{i}"),
            ("INCRBY", f"{prefix}counter", i),
        ]
    cmds.insert(7, ("SET", f"{prefix}big", "x" * 300_000))  # over a record: fragmented
    cmds += [
        ("INCRBYFLOAT", f"{prefix}float", "1.25"), ("EXPIRE", f"{prefix}s:0", 1000),
        ("SET", f"{prefix}ttl", "x", "PX", 500_000), ("DEL", f"{prefix}s:1"),
        ("SPOP", f"{prefix}set:0"), ("SPOP", f"{prefix}set:1", 3),
        ("XADD", f"{prefix}stream", "*", "a", "1"), ("XADD", f"{prefix}stream", "*", "b", "2"),
        ("PFADD", f"{prefix}hll", "a", "b", "c"), ("LPOP", f"{prefix}l:0"),
        ("ZINCRBY", f"{prefix}z:0", "2.5", "m0"), ("HINCRBYFLOAT", f"{prefix}h:0", "f0", "0.5"),
        ("SETRANGE", f"{prefix}s:2", 10, "tail"), ("RENAME", f"{prefix}s:3", f"{prefix}moved"),
        ("SELECT", 3), ("SET", f"{prefix}db3", "three"), ("SELECT", 0),
    ]  # scripts run on the socket (docs/security.md), so they are not in here
    return cmds


def write_over_shm(srv: Server, commands: Sequence[Command]) -> None:
    """Half one by one, half pipelined (under 256 KB: one chunk); all of it
    must run over shared memory."""
    ran, refused = shm_stat(srv, "commands"), shm_stat(srv, "refused")
    half = len(commands) // 2
    with srv.connect(shm="require") as conn:
        replies = [conn.execute(*cmd) for cmd in commands[:half]]
        replies += conn.execute_many(commands[half:])
        assert conn.transport == "shm"
    errors = [(cmd, r) for cmd, r in zip(commands, replies, strict=True) if isinstance(r, Error)]
    assert not errors, errors
    assert shm_stat(srv, "refused") == refused
    assert shm_stat(srv, "commands") == ran + len(commands)


def snapshot(srv: Server) -> dict[tuple[int, bytes], tuple[Reply, bool]]:
    """(db, key) -> (DUMP, has a TTL) for dbs 0 and 3."""
    out = {}
    with srv.admin() as admin:
        for db in (0, 3):
            admin.execute("SELECT", db)
            keys = admin.execute("KEYS", "*")
            assert isinstance(keys, Array)
            for item in keys.items:
                assert isinstance(item, Bulk)
                ttl = admin.execute("PTTL", item.data)
                assert isinstance(ttl, Integer)
                out[(db, item.data)] = (admin.execute("DUMP", item.data), ttl.value > 0)
    return out


def expected_keys(prefix: str) -> set[tuple[int, bytes]]:
    names = {f"{prefix}s:{i}" for i in range(60)} - {f"{prefix}s:1", f"{prefix}s:3"}
    names |= {f"{prefix}h:{i}" for i in range(10)} | {f"{prefix}l:{i}" for i in range(7)}
    names |= {f"{prefix}set:{i}" for i in range(5)} | {f"{prefix}z:{i}" for i in range(3)}
    names |= {f"{prefix}{n}" for n in ("counter", "float", "ttl", "stream", "hll", "moved",
                                        "big")}
    return {(0, n.encode()) for n in names} | {(3, f"{prefix}db3".encode())}


def test_pipeline_larger_than_a_chunk_runs_over_shm(server: Server) -> None:
    """The connection sends pipelines in chunks of about 256 KB; every chunk
    must go over shared memory, not only the first."""
    commands: list[Command] = [("SET", "small", "1"), ("SET", "big", "x" * 300_000),
                               ("SET", "after", "2")]
    write_over_shm(server, commands * 2)


# ---- AOF ----

@pytest.mark.parametrize(("flavour", "mode"), SERVERS, ids=SERVER_IDS)
def test_shm_writes_survive_a_restart_with_aof(make_server: Callable[..., Server],
                                               flavour: str, mode: str) -> None:
    srv = make_server(flavour, mode, config={"appendonly": "yes", "appendfsync": "always"})
    write_over_shm(srv, workload("a:"))
    before = snapshot(srv)
    assert set(before) == expected_keys("a:")
    assert before[(0, b"a:s:0")][1] and before[(0, b"a:ttl")][1]
    srv.restart()
    assert snapshot(srv) == before
    with srv.admin() as admin:
        assert admin.execute("GET", "a:counter") == Bulk(str(sum(range(60))).encode())
        assert admin.execute("SCARD", "a:set:1") == Integer(9)


def aof_text(srv: Server) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(Path(srv.dir, "appendonlydir").glob("*incr*")))


@pytest.mark.parametrize(("flavour", "mode"), SERVERS, ids=SERVER_IDS)
def test_appendfsync_always_reply_comes_after_the_aof_write(
        make_server: Callable[..., Server], flavour: str, mode: str) -> None:
    """On a socket, `appendfsync always` means: a client that got the reply has
    its write in the AOF.  Two socket clients keep the event loop busy (the
    second one's DEBUG SLEEP runs in the same loop pass as the shm write);
    the write's reply must not arrive before the write reaches the AOF."""
    srv = make_server(flavour, mode, config={"appendonly": "yes", "appendfsync": "always",
                                             "enable-debug-command": "yes"})
    for transport in ("off", "require"):
        key = f"durable-{transport}"
        with srv.connect(shm=transport) as writer, srv.admin() as first, \
                srv.admin() as second:
            assert writer.transport == ("shm" if transport == "require" else "socket")
            first._socket.send(b"*3\r\n$5\r\nDEBUG\r\n$5\r\nSLEEP\r\n$3\r\n0.4\r\n")
            time.sleep(0.1)  # not a timing assertion: only sets up the busy loop
            second._socket.send(b"*3\r\n$5\r\nDEBUG\r\n$5\r\nSLEEP\r\n$1\r\n1\r\n")
            assert writer.execute("SET", key, "v") == Status(b"OK")
            in_aof = key.encode() in aof_text(srv)
            assert first.read_reply() == Status(b"OK")
            assert second.read_reply() == Status(b"OK")
        assert in_aof, f"the {transport} write was acknowledged before it reached the AOF"


# ---- replication ----

@pytest.mark.parametrize(("flavour", "mode"), SERVERS, ids=SERVER_IDS)
def test_shm_writes_reach_a_replica(make_server: Callable[..., Server], flavour: str,
                                    mode: str) -> None:
    master = make_server(flavour, mode, config={"repl-diskless-sync-delay": "0"})
    replica = make_server(flavour, mode, config={"replicaof": f"127.0.0.1 {master.port}"})
    wait_until(lambda: replica.info("replication").get("master_link_status") == "up",
               "the replica's link")
    write_over_shm(master, workload("r:"))
    expected = snapshot(master)
    assert set(expected) == expected_keys("r:")
    wait_until(lambda: snapshot(replica) == expected, "the replica to have the same data")
    for db in (0, 3):
        with master.admin() as m, replica.admin() as r:
            m.execute("SELECT", db)
            r.execute("SELECT", db)
            assert m.execute("DBSIZE") == r.execute("DBSIZE")

    # a write over shm on the (read-only) replica gets the socket's refusal
    with replica.connect(shm="require") as conn, replica.connect(shm="off") as sock:
        over_shm, over_socket = conn.execute("SET", "x", "1"), sock.execute("SET", "x", "1")
        assert isinstance(over_socket, Error) and over_socket.code == "READONLY"
        assert over_shm == over_socket
        assert conn.execute("GET", "r:s:5") == Bulk(b"v5")


# ---- keyspace notifications ----

NOTIFY_WRITES: list[Command] = [
    ("SET", "n:a", "1"), ("INCR", "n:c"), ("LPUSH", "n:l", "x", "y"), ("HSET", "n:h", "f", "v"),
    ("EXPIRE", "n:a", 100), ("RENAME", "n:c", "n:d"), ("SADD", "n:s", "m"), ("LPOP", "n:l"),
    ("DEL", "n:l", "n:h"), ("SELECT", 1), ("SET", "n:db1", "x"), ("SELECT", 0),
]


def collect_events(srv: Server, mode: str) -> list[Reply]:
    with srv.admin() as admin:
        admin.execute("FLUSHALL")
    with srv.connect(shm="off") as sub:
        sub.execute("PSUBSCRIBE", "__key*@*__:*", "marker")
        with srv.connect(shm=mode) as writer:
            ran = shm_stat(srv, "commands")
            for cmd in NOTIFY_WRITES:
                assert not isinstance(writer.execute(*cmd), Error), cmd
            if mode == "require":
                assert shm_stat(srv, "commands") == ran + len(NOTIFY_WRITES)
        with srv.admin() as admin:
            admin.execute("PUBLISH", "marker", "end")
        events = []
        while True:
            msg = sub.read_reply()
            assert isinstance(msg, Array), msg
            if msg.items[2] == Bulk(b"marker"):
                return events
            events.append(msg)


def test_keyspace_notifications_for_shm_writes(server: Server) -> None:
    with server.admin() as admin:
        admin.execute("CONFIG", "SET", "notify-keyspace-events", "KEA")
    try:
        over_socket = collect_events(server, "off")
        over_shm = collect_events(server, "require")
    finally:
        with server.admin() as admin:
            admin.execute("CONFIG", "SET", "notify-keyspace-events", "")
    assert len(over_socket) > 2 * len(NOTIFY_WRITES) - 6  # keyspace + keyevent per write
    assert over_shm == over_socket


# ---- blocked clients ----

BLOCKING = {
    "blpop": (("BLPOP", "q", "20"), ("LPUSH", "q", "v"),
              Array((Bulk(b"q"), Bulk(b"v")))),
    "bzpopmin": (("BZPOPMIN", "z", "20"), ("ZADD", "z", "1", "m"),
                 Array((Bulk(b"z"), Bulk(b"m"), Bulk(b"1")))),
    "blmove": (("BLMOVE", "src", "dst", "LEFT", "RIGHT", "20"), ("RPUSH", "src", "v"),
               Bulk(b"v")),
    "xread": (("XREAD", "BLOCK", "20000", "STREAMS", "s", "$"), ("XADD", "s", "5-1", "f", "v"),
              Array((Array((Bulk(b"s"), Array((Array((Bulk(b"5-1"),
                                                      Array((Bulk(b"f"), Bulk(b"v"))))),)))),))),
}


@pytest.mark.parametrize("blocker_shm", ["off", "require"])
@pytest.mark.parametrize("op", list(BLOCKING))
def test_shm_write_releases_a_blocked_client(server: Server, op: str,
                                             blocker_shm: str) -> None:
    block, release, expected = BLOCKING[op]
    result: list[Reply | BaseException] = []

    def blocked(conn: Connection) -> None:
        try:
            result.append(conn.execute(*block))
        except BaseException as exc:  # reported by the main thread
            result.append(exc)

    with server.connect(shm=blocker_shm) as blocker, server.connect(shm="require") as writer:
        thread = threading.Thread(target=blocked, args=(blocker,), daemon=True)
        thread.start()
        wait_until(lambda: server.info("clients").get("blocked_clients") == "1",
                   "the client to block")
        ran = shm_stat(server, "commands")
        assert not isinstance(writer.execute(*release), Error)
        assert shm_stat(server, "commands") == ran + 1, "the write did not go over shm"
        thread.join(15)
        assert not thread.is_alive(), "the blocked client was not released"
    assert result == [expected]
