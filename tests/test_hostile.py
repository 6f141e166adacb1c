"""A hostile client can end its own session, never the server or anyone else's.

DESIGN §5: the shared region is untrusted.  Here a client writes garbage
straight into its region (random bytes, impossible positions and lengths,
misplaced padding, an unaligned tail, a reply-ring head that moves the wrong
way), sends a fragmented request over shm.input-limit, stops reading its
replies, or sends invalid RESP in a well-framed record.  Each time only that
session is closed (counted in shm_sessions_killed, with the reason in the
log), the server lives, and sessions opened before on other connections keep
working.  The module's unix socket is attacked too: wrong or reused tokens,
missing, wrong or unsealed descriptors, and silent connections are refused
without blocking the server or leaking a descriptor.
"""

from __future__ import annotations

import fcntl
import mmap
import os
import random
import socket
import struct
import tempfile
from collections.abc import Callable, Iterator

import pytest
from servers import Server, settled_fd_count, shm_stat, wait_until

from shmcli.channel import ChannelError, ShmChannel
from shmcli.connection import Connection
from shmcli.resp import Array, Bulk, Integer, Status, encode_command, parse_one

# native/channel/shm_layout.h, as offsets into the region
MAGIC, VERSION, HEADER_SIZE = 0x314D4853, 1, 4096
REQ_TAIL, REQ_HEAD = 256, 384
REP_TAIL, REP_HEAD = 512, 640
REC_PADDING, REC_REQUEST, REC_REPLY, REC_RESUME = 1, 2, 3, 4
F_ADD_SEALS, F_SEAL_SEAL, F_SEAL_SHRINK, F_SEAL_GROW, F_SEAL_WRITE = 1033, 1, 2, 4, 8
PING = encode_command("PING")


def get32(region: memoryview, offset: int) -> int:
    return struct.unpack_from("<I", region, offset)[0]


def put32(region: memoryview, offset: int, value: int) -> None:
    struct.pack_into("<I", region, offset, value & 0xFFFFFFFF)


def handshake(ctl: Connection) -> tuple[str, str, int]:
    reply = ctl.execute("SHM.HANDSHAKE")
    assert isinstance(reply, Array), reply
    token, path, ring, version = reply.items
    assert isinstance(token, Bulk) and isinstance(path, Bulk) and isinstance(ring, Integer)
    assert version == Integer(VERSION)
    return token.data.decode(), path.data.decode(), ring.value


class Victim:
    """The hostile client's own session: a control connection and a bare channel."""

    def __init__(self, srv: Server) -> None:
        self.ctl = srv.connect(shm="off", timeout=10.0)
        client_id = self.ctl.execute("CLIENT", "ID")
        assert isinstance(client_id, Integer)
        self.client_id = client_id.value
        token, path, self.ring = handshake(self.ctl)
        self.channel = ShmChannel(path, token, self.ring, 10.0)
        self.region = self.channel.region()
        assert self.channel.call(PING) == b"+PONG\r\n"

    def req_data(self, position: int) -> int:
        return HEADER_SIZE + (position & (self.ring - 1))

    def close(self) -> None:
        self.channel.close()
        self.ctl.close()


@pytest.fixture
def bystanders(server: Server) -> Iterator[list[Connection]]:
    conns = [server.connect(shm="require", timeout=10.0) for _ in range(2)]
    for i, conn in enumerate(conns):
        assert conn.execute("SET", f"bystander:{i}", "before") == Status(b"OK")
    yield conns
    for conn in conns:
        conn.close()


def assert_only_the_victim_died(srv: Server, victim: Victim, bystanders: list[Connection],
                                sessions: int, killed: int, why: str) -> None:
    """Polling INFO also wakes the event loop, so the server looks at the rings."""
    wait_until(lambda: shm_stat(srv, "sessions") == sessions - 1, "the victim's session to end")
    assert shm_stat(srv, "sessions_killed") == killed + 1
    line = f"of client {victim.client_id}: {why}"
    wait_until(lambda: line in srv.log(), f"the log line {line!r}")
    assert srv.alive()
    with pytest.raises(ChannelError):
        victim.channel.call(PING)
    assert victim.ctl.execute("PING") == Status(b"PONG")  # only the session ended
    ran = shm_stat(srv, "commands")
    for i, conn in enumerate(bystanders):
        assert conn.execute("SET", f"bystander:{i}", "after") == Status(b"OK")
        assert conn.execute("GET", f"bystander:{i}") == Bulk(b"after")
        assert conn.transport == "shm"
    assert shm_stat(srv, "commands") == ran + 2 * len(bystanders)


# ---- garbage in the request ring ----

def random_bytes(v: Victim) -> None:
    tail = get32(v.region, REQ_TAIL)
    garbage = random.Random(1234).randbytes(64)
    # a type word that is none of the record types, whatever the seed gave
    garbage = garbage[:4] + struct.pack("<I", 0x7FFF0000) + garbage[8:]
    v.region[v.req_data(tail):v.req_data(tail) + 64] = garbage
    put32(v.region, REQ_TAIL, tail + 64)


def tail_beyond_capacity(v: Victim) -> None:
    put32(v.region, REQ_TAIL, get32(v.region, REQ_TAIL) + v.ring + 8)


def record_longer_than_the_ring(v: Victim) -> None:
    tail = get32(v.region, REQ_TAIL)
    struct.pack_into("<II", v.region, v.req_data(tail), 2 * v.ring, REC_REQUEST)
    put32(v.region, REQ_TAIL, tail + 16)


def record_longer_than_published(v: Victim) -> None:
    tail = get32(v.region, REQ_TAIL)
    struct.pack_into("<II", v.region, v.req_data(tail), 1000, REC_REQUEST)
    put32(v.region, REQ_TAIL, tail + 16)


def padding_in_the_wrong_place(v: Victim) -> None:
    tail = get32(v.region, REQ_TAIL)
    struct.pack_into("<II", v.region, v.req_data(tail), 56, REC_PADDING)
    put32(v.region, REQ_TAIL, tail + 64)


def unaligned_tail(v: Victim) -> None:
    tail = get32(v.region, REQ_TAIL)
    struct.pack_into("<II", v.region, v.req_data(tail), 4, REC_REQUEST)
    put32(v.region, REQ_TAIL, tail + 12)


def unknown_record_type(v: Victim) -> None:
    tail = get32(v.region, REQ_TAIL)
    struct.pack_into("<II", v.region, v.req_data(tail), 8, 99)
    put32(v.region, REQ_TAIL, tail + 16)


def reply_record_in_the_request_ring(v: Victim) -> None:
    tail = get32(v.region, REQ_TAIL)
    struct.pack_into("<II", v.region, v.req_data(tail), len(PING), REC_REPLY)
    v.region[v.req_data(tail) + 8:v.req_data(tail) + 8 + len(PING)] = PING
    put32(v.region, REQ_TAIL, tail + 8 + 16)


REQUEST_RING_ATTACKS = {
    "random-bytes": (random_bytes, "the client corrupted its request ring"),
    "tail-beyond-capacity": (tail_beyond_capacity, "the client corrupted its request ring"),
    "length-over-ring": (record_longer_than_the_ring, "the client corrupted its request ring"),
    "length-over-tail": (record_longer_than_published, "the client corrupted its request ring"),
    "misplaced-padding": (padding_in_the_wrong_place, "the client corrupted its request ring"),
    "unaligned-tail": (unaligned_tail, "the client corrupted its request ring"),
    "unknown-type": (unknown_record_type, "the client corrupted its request ring"),
    "reply-in-request-ring": (reply_record_in_the_request_ring,
                              "the client sent a record out of place"),
}


@pytest.mark.parametrize("attack", list(REQUEST_RING_ATTACKS))
def test_corrupt_request_ring(server: Server, bystanders: list[Connection],
                              attack: str) -> None:
    mutate, why = REQUEST_RING_ATTACKS[attack]
    victim = Victim(server)
    try:
        sessions, killed = shm_stat(server, "sessions"), shm_stat(server, "sessions_killed")
        mutate(victim)
        assert_only_the_victim_died(server, victim, bystanders, sessions, killed, why)
    finally:
        victim.close()


# ---- the reply ring's head moved by the client ----

@pytest.mark.parametrize("direction", ["backwards", "ahead-of-tail"])
def test_corrupt_reply_ring_head(server: Server, bystanders: list[Connection],
                                 direction: str) -> None:
    with server.admin() as admin:
        admin.execute("SET", "big", b"v" * 200_000)
    victim = Victim(server)
    try:
        victim.channel.send(PING)  # publishes the head for the PONG read above
        sessions, killed = shm_stat(server, "sessions"), shm_stat(server, "sessions_killed")
        head, tail = get32(victim.region, REP_HEAD), get32(victim.region, REP_TAIL)
        # backwards by more than the capacity, or past what the server wrote
        put32(victim.region, REP_HEAD,
              head - victim.ring - 8 if direction == "backwards" else tail + 64)
        get_big = encode_command("GET", "big")
        for _ in range(8):  # more than the ring holds: the server must look at the head
            try:
                victim.channel.send(get_big)
            except ChannelError:
                break
        assert_only_the_victim_died(server, victim, bystanders, sessions, killed,
                                    "the client corrupted its reply ring")
    finally:
        victim.close()


# ---- invalid RESP in a well-framed record ----

def socket_reply(srv: Server, data: bytes) -> bytes:
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(10)
        s.connect(srv.unix_socket)
        s.sendall(data)
        reply = b""
        while not reply.endswith(b"\r\n"):
            chunk = s.recv(4096)
            if not chunk:
                break
            reply += chunk
        return reply


@pytest.mark.parametrize("request_bytes", [b"*1\r\n+PING\r\n", b"*x\r\n", b"*1\r\n$-5\r\n",
                                           b"*99999999999\r\n"],
                         ids=["not-a-bulk", "bad-count", "bad-length", "huge-count"])
def test_invalid_resp_gets_a_protocol_error_and_ends_the_session(
        server: Server, bystanders: list[Connection], request_bytes: bytes) -> None:
    victim = Victim(server)
    try:
        sessions, killed = shm_stat(server, "sessions"), shm_stat(server, "sessions_killed")
        reply = victim.channel.call(request_bytes)
        assert reply.startswith(b"-ERR Protocol error"), reply
        assert reply == socket_reply(server, request_bytes)
        assert_only_the_victim_died(server, victim, bystanders, sessions, killed,
                                    "Protocol error")
    finally:
        victim.close()


# ---- limits ----

@pytest.fixture(params=["main-thread", "fast-path"])
def exec_mode(request: pytest.FixtureRequest) -> str:
    return request.param


def limited_server(make_server: Callable[..., Server], flavour: str, mode: str,
                   **config: str) -> tuple[Server, list[Connection]]:
    srv = make_server(flavour, mode, config=config)
    conns = [srv.connect(shm="require", timeout=10.0) for _ in range(2)]
    for i, conn in enumerate(conns):
        assert conn.execute("SET", f"bystander:{i}", "before") == Status(b"OK")
    return srv, conns


def test_fragmented_request_over_the_input_limit(make_server: Callable[..., Server],
                                                 flavour: str, exec_mode: str) -> None:
    """A request over shm.input-limit is skipped as it arrives, never buffered,
    and refused: the client sends it over its socket, the session goes on."""
    srv, others = limited_server(make_server, flavour, exec_mode, **{"shm.input-limit": "1mb"})
    victim = Victim(srv)
    try:
        # under the limit: fragmented and fine
        assert victim.channel.call(encode_command("SET", "ok", b"x" * 600_000)) == b"+OK\r\n"
        sessions, killed = shm_stat(srv, "sessions"), shm_stat(srv, "sessions_killed")
        reply = victim.channel.call(encode_command("SET", "huge", b"x" * (3 << 20)))
        assert reply == b"-SHMFALLBACK request over shm.input-limit\r\n"
        victim.channel.resume()
        assert victim.channel.call(PING) == b"+PONG\r\n"
        assert (shm_stat(srv, "sessions"), shm_stat(srv, "sessions_killed")) == (sessions, killed)
        # what the sessions keep between requests is small, whatever came in
        assert shm_stat(srv, "input_buffer_bytes") <= 3 * (1 << 20)
        with srv.admin() as admin:
            assert admin.execute("EXISTS", "huge") == Integer(0)
        for i, conn in enumerate(others):
            assert conn.execute("GET", f"bystander:{i}") == Bulk(b"before")
    finally:
        victim.close()
        for conn in others:
            conn.close()


def test_unread_reply_over_the_output_limit(make_server: Callable[..., Server],
                                            flavour: str, exec_mode: str) -> None:
    srv, others = limited_server(make_server, flavour, exec_mode,
                                 **{"shm.output-limit": "2mb"})
    with srv.admin() as admin:
        admin.execute("SET", "huge", b"h" * (4 << 20))
    victim = Victim(srv)
    try:
        sessions, killed = shm_stat(srv, "sessions"), shm_stat(srv, "sessions_killed")
        get_huge = encode_command("GET", "huge")
        for _ in range(20):  # and never read a reply
            try:
                victim.channel.send(get_huge)
            except ChannelError:
                break
        assert_only_the_victim_died(srv, victim, others, sessions, killed,
                                    "unread replies over shm.output-limit")
    finally:
        victim.close()
        for conn in others:
            conn.close()


def test_a_reply_over_the_clients_limit_ends_the_session(server: Server) -> None:
    """The client gathers a fragmented reply only up to its bound (as the
    server bounds unread output): a larger one ends the session, clearly,
    and the server and the socket carry on."""
    with server.admin() as admin:
        admin.execute("SET", "big", b"b" * (3 << 20))
    victim = Victim(server)
    try:
        victim.channel.set_max_reply(1 << 20)
        with pytest.raises(ChannelError, match="larger than the client's limit"):
            victim.channel.call(encode_command("GET", "big"))
        with pytest.raises(ChannelError):
            victim.channel.call(PING)
        assert victim.ctl.execute("STRLEN", "big") == Integer(3 << 20)
        victim.channel.close()
        token, path, ring = handshake(victim.ctl)
        victim.channel = ShmChannel(path, token, ring, 10.0)  # the default bound: 1 GiB
        reply = parse_one(victim.channel.call(encode_command("GET", "big")))
        assert reply == Bulk(b"b" * (3 << 20))
    finally:
        victim.close()


def test_client_that_stops_reading_does_not_block_the_server(
        make_server: Callable[..., Server], flavour: str, exec_mode: str) -> None:
    """Replies under the limit wait in the session; the server serves everyone
    else meanwhile, and the slow client later gets every reply intact."""
    srv, others = limited_server(make_server, flavour, exec_mode,
                                 **{"shm.output-limit": "2mb"})
    value = bytes(random.Random(7).randbytes(600_000))
    with srv.admin() as admin:
        admin.execute("SET", "big", value)
    victim = Victim(srv)
    try:
        get_big = encode_command("GET", "big")
        for _ in range(10):  # ~6 MB of replies into a 1 MB ring, none read yet
            victim.channel.send(get_big)
        for round_ in range(3):
            for i, conn in enumerate(others):
                assert conn.execute("SET", f"bystander:{i}", round_) == Status(b"OK")
                assert conn.execute("GET", "big") == Bulk(value)
            with srv.admin() as admin:
                assert admin.execute("PING") == Status(b"PONG")
        assert shm_stat(srv, "sessions") == 3
        for _ in range(10):
            assert parse_one(victim.channel.recv()) == Bulk(value)
        assert victim.channel.call(PING) == b"+PONG\r\n"
        assert shm_stat(srv, "sessions_killed") == 0
    finally:
        victim.close()
        for conn in others:
            conn.close()


# ---- abuse of the module's socket ----

def make_region(ring: int, *, seals: int = F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL,
                size: int | None = None, magic: int = MAGIC, header_ring: int | None = None
                ) -> int:
    fd = os.memfd_create("hostile", os.MFD_ALLOW_SEALING | os.MFD_CLOEXEC)
    os.ftruncate(fd, HEADER_SIZE + 2 * ring if size is None else size)
    os.pwrite(fd, struct.pack("<IIII", magic, VERSION,
                              ring if header_ring is None else header_ring, HEADER_SIZE), 0)
    if seals:
        fcntl.fcntl(fd, F_ADD_SEALS, seals)
    return fd


def hello(path: str, token: str | bytes, fds: list[int]) -> tuple[bytes, socket.socket]:
    """Send the session request; return the module's answer and the socket."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    sock.settimeout(10)
    sock.connect(path)
    data = token.encode() if isinstance(token, str) else token
    if fds:
        socket.send_fds(sock, [data], fds)
    else:
        sock.send(data)
    return sock.recv(256), sock


def closed_by_peer(sock: socket.socket) -> bool:
    try:
        return sock.recv(256) == b""
    except OSError:
        return True


class HandshakeLab:
    """A control connection with its token, plus descriptors to clean up."""

    def __init__(self, srv: Server) -> None:
        self.srv = srv
        self.ctl = srv.connect(shm="off", timeout=10.0)
        self.token, self.path, self.ring = handshake(self.ctl)
        self.fds: list[int] = []
        self.socks: list[socket.socket] = []

    def fd(self, fd: int) -> int:
        self.fds.append(fd)
        return fd

    def region(self, **kw: int | None) -> int:
        return self.fd(make_region(self.ring, **kw))  # type: ignore[arg-type]

    def eventfd(self) -> int:
        return self.fd(os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK))

    def attempt(self, fds: list[int], token: str | bytes | None = None) -> bytes:
        answer, sock = hello(self.path, self.token if token is None else token, fds)
        self.socks.append(sock)
        if answer != b"OK":
            assert closed_by_peer(sock), "a refused session socket stayed open"
        return answer

    def close(self) -> None:
        for sock in self.socks:
            sock.close()
        for fd in self.fds:
            os.close(fd)
        self.ctl.close()


def quiet_fd_count(srv: Server) -> int:
    """The descriptor count once no session and no other client is left."""
    wait_until(lambda: shm_stat(srv, "sessions") == 0
               and srv.info("clients")["connected_clients"] == "1", "other clients to leave")
    return settled_fd_count(srv)


@pytest.fixture
def lab(server: Server) -> Iterator[HandshakeLab]:
    baseline = quiet_fd_count(server)
    lab = HandshakeLab(server)
    yield lab
    lab.close()
    wait_until(lambda: quiet_fd_count(server) <= baseline,
               f"the server's descriptors to return to {baseline}")


def test_python_made_session_works(lab: HandshakeLab) -> None:
    """The positive control for every refusal below: a session built by hand
    from the layout's facts is accepted and answers a PING."""
    srv = lab.srv
    memfd, doorbell = lab.region(), lab.eventfd()
    assert lab.attempt([memfd, doorbell]) == b"OK"
    assert shm_stat(srv, "sessions") == 1
    region = mmap.mmap(memfd, HEADER_SIZE + 2 * lab.ring)
    try:
        struct.pack_into("<II", region, HEADER_SIZE, len(PING), REC_REQUEST)
        region[HEADER_SIZE + 8:HEADER_SIZE + 8 + len(PING)] = PING
        struct.pack_into("<I", region, REQ_TAIL, 8 + ((len(PING) + 7) & ~7))
        os.eventfd_write(doorbell, 1)
        wait_until(lambda: (srv.info(), struct.unpack_from("<I", region, REP_TAIL)[0])[1] > 0,
                   "the reply")
        length, kind = struct.unpack_from("<II", region, HEADER_SIZE + lab.ring)
        start = HEADER_SIZE + lab.ring + 8
        assert (kind, region[start:start + length]) == (REC_REPLY, b"+PONG\r\n")
    finally:
        region.close()
    lab.socks[-1].close()
    wait_until(lambda: shm_stat(srv, "sessions") == 0, "the session to end")


REFUSED_HELLOS: dict[str, tuple[Callable[[HandshakeLab], tuple[list[int], str | None]], str]] = {
    "wrong-token": (lambda lab: ([lab.region(), lab.eventfd()], "0" * 32),
                    "ERR invalid or expired token"),
    "short-token": (lambda lab: ([lab.region(), lab.eventfd()], lab.token[:31]),
                    "ERR invalid or expired token"),
    "long-token": (lambda lab: ([lab.region(), lab.eventfd()], lab.token + "00"),
                   "ERR invalid or expired token"),
    "no-fds": (lambda lab: ([], None), "ERR expected a memfd and an eventfd"),
    "one-fd": (lambda lab: ([lab.region()], None), "ERR expected a memfd and an eventfd"),
    "three-fds": (lambda lab: ([lab.region(), lab.eventfd(), lab.eventfd()], None),
                  "ERR expected a memfd and an eventfd"),
    "six-fds": (lambda lab: ([lab.eventfd() for _ in range(6)], None),
                "ERR malformed session request"),
    "regular-file": (lambda lab: ([lab.fd(regular_file(lab.ring)), lab.eventfd()], None),
                     "ERR the region is not a memfd"),
    "unsealed": (lambda lab: ([lab.region(seals=0), lab.eventfd()], None),
                 "ERR the region must be sealed against resizing"),
    "shrink-seal-only": (lambda lab: ([lab.region(seals=F_SEAL_SHRINK), lab.eventfd()], None),
                         "ERR the region must be sealed against resizing"),
    "too-small": (lambda lab: ([lab.region(size=HEADER_SIZE + lab.ring), lab.eventfd()], None),
                  "ERR the region has the wrong size"),
    "too-large": (lambda lab: ([lab.region(size=HEADER_SIZE + 4 * lab.ring), lab.eventfd()],
                               None), "ERR the region has the wrong size"),
    "bad-magic": (lambda lab: ([lab.region(magic=0xDEADBEEF), lab.eventfd()], None),
                  "ERR the region's header does not match the handshake"),
    "other-ring-size": (lambda lab: ([lab.region(header_ring=lab.ring // 2), lab.eventfd()],
                                     None), "ERR the region's header does not match"),
    "write-sealed": (lambda lab: ([lab.region(seals=F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE),
                                   lab.eventfd()], None), "ERR cannot map the region"),
    "pipe-doorbell": (lambda lab: ([lab.region(), *map(lab.fd, os.pipe())][:2], None),
                      "ERR the doorbell is not an eventfd"),
    "swapped-fds": (lambda lab: ([lab.eventfd(), lab.region()], None),
                    "ERR the region is not a memfd"),
}


def regular_file(ring: int) -> int:
    fd, name = tempfile.mkstemp()
    os.unlink(name)
    os.ftruncate(fd, HEADER_SIZE + 2 * ring)
    os.pwrite(fd, struct.pack("<IIII", MAGIC, VERSION, ring, HEADER_SIZE), 0)
    return fd


@pytest.mark.parametrize("case", list(REFUSED_HELLOS))
def test_refused_session_requests(lab: HandshakeLab, case: str) -> None:
    build, expected = REFUSED_HELLOS[case]
    refused = shm_stat(lab.srv, "handshakes_refused")
    fds, token = build(lab)
    answer = lab.attempt(fds, token)
    assert answer.startswith(expected.encode()), answer
    assert shm_stat(lab.srv, "sessions") == 0
    assert shm_stat(lab.srv, "handshakes_refused") == refused + 1
    with lab.srv.connect(shm="require") as conn:  # the server is fine
        assert conn.execute("PING") == Status(b"PONG")


def test_a_token_works_once(lab: HandshakeLab) -> None:
    assert lab.attempt([lab.region(), lab.eventfd()]) == b"OK"
    assert lab.attempt([lab.region(), lab.eventfd()]) == b"ERR invalid or expired token"
    assert shm_stat(lab.srv, "sessions") == 1


def test_a_token_dies_with_its_connection(lab: HandshakeLab) -> None:
    lab.ctl.close()
    # only the INFO connection itself is left
    wait_until(lambda: lab.srv.info("clients")["connected_clients"] == "1", "the disconnect")
    assert lab.attempt([lab.region(), lab.eventfd()]) == b"ERR invalid or expired token"


def test_silent_connections_do_not_block_and_expire(make_server: Callable[..., Server]) -> None:
    """Connections to the module's socket that never send anything, more of
    them than the module keeps waiting (32): the server keeps serving,
    sessions can still be opened (the oldest silent ones make room), and the
    silent ones are closed after 2 s."""
    servers = [make_server("redis"), make_server("valkey")]
    silent: list[socket.socket] = []
    try:
        for srv in servers:
            for _ in range(40):
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
                sock.connect(srv.info()["shm_socket"])
                silent.append(sock)
        for srv in servers:
            with srv.connect(shm="require", timeout=10.0) as conn:
                assert conn.transport == "shm"
                assert conn.execute("SET", "k", "v") == Status(b"OK")
        for sock in silent:
            sock.settimeout(30)
            answer = sock.recv(256)
            assert answer == b"ERR timed out", answer
            assert closed_by_peer(sock)
        for srv in servers:
            assert srv.alive()
            with srv.connect(shm="require") as conn:
                assert conn.execute("GET", "k") == Bulk(b"v")
    finally:
        for sock in silent:
            sock.close()


def test_unused_tokens_do_not_hoard_sessions(make_server: Callable[..., Server]) -> None:
    """Asking for a token again replaces the connection's previous one, so a
    single client cannot fill shm.max-sessions with tokens it never uses."""
    srv = make_server("redis", config={"shm.max-sessions": "2"})
    with srv.connect(shm="off") as hoarder:
        for _ in range(10):
            reply = hoarder.execute("SHM.HANDSHAKE")
            assert isinstance(reply, Array), reply
        with srv.connect(shm="require") as conn:
            assert conn.execute("PING") == Status(b"PONG")
