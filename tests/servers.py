"""Test-side access to the throwaway servers (shmcli.testing) and small helpers."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

from shmcli.channel import ShmChannel
from shmcli.connection import Connection
from shmcli.resp import NOT_ENOUGH, Array, Bulk, Integer, Map, Reader, encode_command, parse_one
from shmcli.testing import EXEC_MODES, EXTRA_SERVERS, FLAVOURS, Server, free_port

__all__ = ["EXEC_MODES", "EXTRA_SERVERS", "FLAVOURS", "RawSocket", "Server", "expected_refusals",
           "fd_count", "free_port", "placed", "raw_session", "refused_by_policy",
           "settled_fd_count", "shm_stat", "wait_until"]


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    """Poll a condition (never a timing assertion: only a bound on waiting)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def raw_session(srv: Server, **connect_kw: object) -> tuple[Connection, ShmChannel]:
    """A control connection (socket only) and a bare channel bound to it."""
    ctl = srv.connect(shm="off", **connect_kw)
    reply = ctl.execute("SHM.HANDSHAKE")
    assert isinstance(reply, Array), reply
    token, path, ring, _version = reply.items
    assert isinstance(token, Bulk) and isinstance(path, Bulk) and isinstance(ring, Integer)
    return ctl, ShmChannel(path.data.decode(), token.data.decode(), ring.value, 10.0)


@contextmanager
def placed(srv: Server, server_cpus: set[int], test_cpus: set[int]) -> Iterator[None]:
    """Every thread of the server on `server_cpus` and this test on
    `test_cpus`, as taskset would place them; both as before afterwards."""
    everywhere = os.sched_getaffinity(0)
    threads = [int(t) for t in os.listdir(f"/proc/{srv.pid}/task")]
    for tid in threads:
        os.sched_setaffinity(tid, server_cpus)
    os.sched_setaffinity(0, test_cpus)
    try:
        yield
    finally:
        os.sched_setaffinity(0, everywhere)
        for tid in threads:
            try:
                os.sched_setaffinity(tid, everywhere)
            except OSError:
                pass  # the server is gone


def shm_stat(srv: Server, field: str) -> int:
    """One counter of INFO shm, e.g. shm_stat(srv, "sessions")."""
    return int(srv.info()[f"shm_{field}"])


def fd_count(srv: Server) -> int:
    """How many descriptors the server process has open."""
    assert srv.process is not None
    return len(os.listdir(f"/proc/{srv.process.pid}/fd"))


def settled_fd_count(srv: Server) -> int:
    """The descriptor count once two readings agree (closed connections are
    noticed a loop pass later)."""
    previous = -1
    for _ in range(50):
        now = fd_count(srv)
        if now == previous:
            return now
        previous = now
        time.sleep(0.05)
    return previous


class RawSocket:
    """A bare unix socket to the server: one request out, the exact reply bytes back."""

    def __init__(self, path: str, protocol: int = 2) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(60)
        self.sock.connect(path)
        if protocol == 3:
            reply = parse_one(self.call("HELLO", "3"))
            assert isinstance(reply, Map), reply

    def request(self, data: bytes) -> bytes:
        self.sock.sendall(data)
        reader, chunks = Reader(), []
        while True:
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise ConnectionError("the server closed the socket")
            chunks.append(chunk)
            reader.feed(chunk)
            if reader.gets() is not NOT_ENOUGH:
                assert not reader.has_data(), "bytes after the reply"
                return b"".join(chunks)

    def call(self, *args: bytes | str | int) -> bytes:
        return self.request(encode_command(*args))

    def close(self) -> None:
        self.sock.close()


# The module's policy (native/module/command_policy.c), derived from the
# server's own command table: what a raw session must refuse whatever the
# server's state.  Commands refused by name, on top of the flags:
REFUSED_BY_NAME = frozenset({
    "auth", "hello", "reset", "debug", "module", "shutdown", "failover", "monitor", "multi",
    "exec", "wait", "sync", "psync", "replconf", "shm.handshake"})
EMULATED = frozenset({"select", "quit", "client|id", "client|getname", "client|setname"})


def refused_by_policy(srv: Server, command: tuple[object, ...]) -> bool:
    """True when the module must answer -SHMFALLBACK to `command`: unknown,
    wrong arity, noscript or blocking (as COMMAND INFO says), or by name."""
    words = [w if isinstance(w, bytes) else str(w).encode() for w in command]
    with srv.admin() as conn:
        info = conn.execute("COMMAND", "INFO", words[0])
        entry = info.items[0] if isinstance(info, Array) else None
        if isinstance(entry, Array) and len(words) > 1 and isinstance(entry.items[9], Array) \
                and entry.items[9].items:
            name = entry.items[0].data.decode().lower()  # type: ignore[union-attr]
            info = conn.execute("COMMAND", "INFO", f"{name}|".encode() + words[1].lower())
            entry = info.items[0] if isinstance(info, Array) else None
    if not isinstance(entry, Array):
        return True
    name = entry.items[0].data.decode().lower()  # type: ignore[union-attr]
    arity = entry.items[1].value  # type: ignore[union-attr]
    if (arity >= 0 and len(words) != arity) or (arity < 0 and len(words) < -arity):
        return True
    if name in EMULATED:
        return False
    flags = {f.text.decode() if hasattr(f, "text") else f.data.decode()  # type: ignore[union-attr]
             for f in entry.items[2].items}  # type: ignore[union-attr]
    # a container's rule covers its subcommands (module|help)
    return name.split("|")[0] in REFUSED_BY_NAME or bool(flags & {"noscript", "blocking"})


def expected_refusals(srv: Server, corpus: Sequence[tuple[object, ...]]) -> set[tuple[object, ...]]:
    return {tuple(cmd) for cmd in corpus if refused_by_policy(srv, tuple(cmd))}
