"""Unfinished requests cost bounded, visible memory.

A request sent in fragments is buffered until its last fragment.  Over
shm.input-limit (1mb here) it is refused with -SHMFALLBACK or the session is
closed, nothing runs, and the server's used_memory comes back near where it
was.  While fragments wait, INFO shm reports them in
`shm_input_buffer_bytes`, which falls back to 0 when the session ends.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from sec_raw import REFUSED, RawSession
from servers import Server, shm_stat, wait_until

from shmcli.channel import ChannelError
from shmcli.resp import Integer, encode_command

REQ_TAIL, HEADER_SIZE = 256, 4096  # native/channel/shm_layout.h
REC_REQUEST, REC_MORE = 2, 0x80000000


def used_memory(srv: Server) -> int:
    return int(srv.info("memory")["used_memory"])


def test_a_request_over_the_input_limit_is_refused_and_freed(
        flavour_mode: tuple[str, str], custom_server: Callable[..., Server]) -> None:
    srv = custom_server(*flavour_mode, config={"shm.input-limit": "1mb"})
    with RawSession(srv) as session:
        assert session.call("PING") == b"+PONG\r\n"
        baseline = used_memory(srv)
        big = encode_command("SET", "big", b"v" * (3 << 20))
        try:
            session.channel.send(big)
            reply = session.channel.recv()
        except ChannelError:
            reply = b"(session closed)"
        assert srv.alive(), srv.log()[-3000:]
        assert reply.startswith(REFUSED) or reply == b"(session closed)", reply[:200]
    with srv.admin() as admin:
        assert admin.execute("EXISTS", "big") == Integer(0)
    wait_until(lambda: used_memory(srv) < baseline + (512 << 10),
               "used_memory to come back near its baseline")


def put_fragment(region: memoryview, tail: int, payload: bytes) -> int:
    """Write one MORE fragment at `tail` (no wrap: the ring is fresh) and publish it."""
    at = HEADER_SIZE + tail
    struct.pack_into("<II", region, at, len(payload), REC_REQUEST | REC_MORE)
    region[at + 8:at + 8 + len(payload)] = payload
    tail += 8 + (len(payload) + 7) // 8 * 8
    struct.pack_into("<I", region, REQ_TAIL, tail)
    return tail


def buffered(srv: Server) -> int:
    return shm_stat(srv, "input_buffer_bytes")


def test_buffered_fragments_are_reported(
        flavour_mode: tuple[str, str], custom_server: Callable[..., Server]) -> None:
    srv = custom_server(*flavour_mode, config={"shm.input-limit": "4mb"})
    assert "shm_input_buffer_bytes" in srv.info(), "INFO shm has no shm_input_buffer_bytes"
    assert buffered(srv) == 0
    sessions = shm_stat(srv, "sessions")
    session = RawSession(srv)
    try:
        region = session.channel.region()
        start = encode_command("SET", "partial", b"v" * (1 << 20))[:200_000]
        tail = put_fragment(region, 0, start)
        put_fragment(region, tail, b"v" * 200_000)
        # no doorbell: polling INFO wakes the server, which then looks at the rings
        wait_until(lambda: buffered(srv) >= 400_000, "the fragments to be buffered and reported")
    finally:
        session.close()
    wait_until(lambda: shm_stat(srv, "sessions") == sessions, "the session to end")
    wait_until(lambda: buffered(srv) == 0, "the buffered input to be released")
    with srv.admin() as admin:
        assert admin.execute("EXISTS", "partial") == Integer(0)
