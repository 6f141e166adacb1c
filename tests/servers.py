"""Test-side access to the throwaway servers (shmcli.testing) and small helpers."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable

from shmcli.resp import NOT_ENOUGH, Map, Reader, encode_command, parse_one
from shmcli.testing import EXEC_MODES, FLAVOURS, Server, free_port

__all__ = ["EXEC_MODES", "FLAVOURS", "RawSocket", "Server", "fd_count", "free_port",
           "settled_fd_count", "shm_stat", "wait_until"]


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    """Poll a condition (never a timing assertion: only a bound on waiting)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


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
