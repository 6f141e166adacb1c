"""Broken hellos on the module socket never crash the server or leak.

Issue 9 found `on_hello` parsing an uninitialised buffer when recvmsg fails
with an error other than EAGAIN/EINTR.  A local user controls how its side of
the hello ends: connect and close, shut down, reset (SO_LINGER 0), send an
empty, oversized or garbage message, pass a pile of descriptors, or send a
valid hello and vanish before reading the answer (the server then writes to
a dead peer, and its next read of the socket fails with ECONNRESET).  Each
is repeated; afterwards the server lives, a normal session works, and the
server's descriptors and sessions come back to where they were.
"""

from __future__ import annotations

import fcntl
import mmap
import os
import socket
import struct
from collections.abc import Callable

import pytest
from sec_raw import RawSession, handshake
from servers import Server, fd_count, settled_fd_count, shm_stat, wait_until

MAGIC, VERSION, HEADER_SIZE = 0x314D4853, 1, 4096
F_ADD_SEALS, F_SEAL_SHRINK, F_SEAL_GROW = 1033, 2, 4
ROUNDS = 20


def connected(srv: Server) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    sock.settimeout(5)
    sock.connect(srv.shm_socket if os.path.exists(srv.shm_socket) else srv.info()["shm_socket"])
    return sock


def region_and_doorbell(ring: int) -> list[int]:
    """A proper sealed region and a plain eventfd (the caller closes them)."""
    memfd = os.memfd_create("hello", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    os.ftruncate(memfd, HEADER_SIZE + 2 * ring)
    with mmap.mmap(memfd, HEADER_SIZE) as header:
        struct.pack_into("<IIII", header, 0, MAGIC, VERSION, ring, HEADER_SIZE)
    fcntl.fcntl(memfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW)
    return [memfd, os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)]


def valid_hello_then(srv: Server, end: Callable[[socket.socket], None]) -> None:
    """Send a hello the module accepts (the token lives while `ctl` does), then `end`."""
    with srv.connect(shm="off") as ctl:
        token, _path, ring = handshake(ctl)
        fds = region_and_doorbell(ring)
        sock = connected(srv)
        try:
            socket.send_fds(sock, [token.encode()], fds)
            end(sock)
        finally:
            sock.close()
            for fd in fds:
                os.close(fd)


def just_close(srv: Server) -> None:
    connected(srv).close()


def shut_down(srv: Server) -> None:
    sock = connected(srv)
    sock.shutdown(socket.SHUT_RDWR)
    sock.close()


def reset(srv: Server) -> None:
    sock = connected(srv)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def half_close(srv: Server) -> None:
    sock = connected(srv)
    sock.shutdown(socket.SHUT_WR)
    sock.close()


def empty_message(srv: Server) -> None:
    with connected(srv) as sock:
        sock.send(b"")


def garbage(srv: Server) -> None:
    with connected(srv) as sock:
        sock.send(os.urandom(4096))


def oversized(srv: Server) -> None:
    with connected(srv) as sock:
        try:
            sock.send(b"t" * (200 << 10))
        except OSError:
            pass  # EMSGSIZE on the client side is fine


def many_descriptors(srv: Server) -> None:
    fds = [os.open(os.devnull, os.O_RDONLY) for _ in range(64)]
    try:
        with connected(srv) as sock:
            socket.send_fds(sock, [b"x" * 32], fds)
    finally:
        for fd in fds:
            os.close(fd)


def hello_then_vanish(srv: Server) -> None:
    # the answer stays unread: the server's next read gets ECONNRESET
    valid_hello_then(srv, lambda sock: None)


def hello_then_shutdown(srv: Server) -> None:
    valid_hello_then(srv, lambda sock: sock.shutdown(socket.SHUT_RDWR))


def hello_answered(srv: Server) -> None:
    """The control case: the same hello, read properly, opens a session."""
    valid_hello_then(srv, lambda sock: assert_ok(sock.recv(256)))


def assert_ok(answer: bytes) -> None:
    assert answer == b"OK", answer


ENDINGS: dict[str, Callable[[Server], None]] = {
    "close": just_close, "shutdown": shut_down, "reset": reset, "half-close": half_close,
    "empty": empty_message, "garbage": garbage, "oversized": oversized,
    "many-fds": many_descriptors, "hello-then-vanish": hello_then_vanish,
    "hello-then-shutdown": hello_then_shutdown, "hello-answered": hello_answered,
}


@pytest.mark.parametrize("ending", list(ENDINGS))
def test_a_broken_hello_never_hurts_the_server(server: Server, ending: str) -> None:
    srv = server
    sessions, opened = shm_stat(srv, "sessions"), shm_stat(srv, "sessions_opened")
    descriptors = settled_fd_count(srv)
    for _ in range(ROUNDS):
        ENDINGS[ending](srv)
        assert srv.alive(), f"{ending} killed the server:\n{srv.log()[-3000:]}"
    if ending == "hello-answered":  # the hello the other hello-* cases abandon is valid
        assert shm_stat(srv, "sessions_opened") == opened + ROUNDS
    with RawSession(srv) as session:
        assert session.call("PING") == b"+PONG\r\n"
    wait_until(lambda: shm_stat(srv, "sessions") == sessions, "the sessions to end")
    wait_until(lambda: fd_count(srv) <= descriptors, f"the server's descriptors after {ending}")
    assert srv.alive()
