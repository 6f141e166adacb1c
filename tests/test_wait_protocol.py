"""The wake-up protocol's flags, seen in the shared region (docs/protocol.md §4).

Timing cannot be asserted, so these check the flags that decide whether a
request waits for a wake-up or a timeout: a fresh session must tell its client
that the server may be asleep (else, on the fast path, its first request
waited for the worker's 100 ms sleep to end), and a sleeping server publishes
the CPU it sleeps on (the client's adaptive spin depends on it).  INFO shm sent
over a session itself must not deadlock the pass that runs it.
"""

from __future__ import annotations

import struct

from servers import Server, raw_session, wait_until

from shmcli.resp import Bulk, Status, encode_command

REQ_CONSUMER_WAITING, REQ_CONSUMER_CPU = 388, 392


def u32(region: memoryview, offset: int) -> int:
    return struct.unpack_from("<I", region, offset)[0]


def test_a_new_session_asks_for_the_doorbell(server: Server) -> None:
    ctl, channel = raw_session(server)
    try:
        # Before any pass has seen it, the session says "the server may sleep".
        assert u32(channel.region(), REQ_CONSUMER_WAITING) == 1
        assert channel.call(encode_command("PING")) == b"+PONG\r\n"
    finally:
        channel.close()
        ctl.close()


def test_a_sleeping_server_publishes_its_cpu(server: Server) -> None:
    ctl, channel = raw_session(server)
    try:
        channel.call(encode_command("PING"))
        region = channel.region()
        wait_until(lambda: u32(region, REQ_CONSUMER_WAITING) == 1, "the server to sleep")
        cpu = struct.unpack_from("<i", region, REQ_CONSUMER_CPU)[0]
        assert 0 <= cpu < 1024  # a real CPU number, not the initial -1
    finally:
        channel.close()
        ctl.close()


def test_info_shm_over_a_session(server: Server) -> None:
    with server.connect(shm="require", timeout=10.0) as conn:
        reply = conn.execute("INFO", "shm")
        assert isinstance(reply, Bulk)
        assert b"shm_sessions:1\r\n" in reply.data
        everything = conn.execute("INFO", "everything")
        assert isinstance(everything, Bulk) and b"# shm" in everything.data
        assert conn.transport == "shm"
    with server.admin() as admin:  # and the server still serves everyone
        assert admin.execute("PING") == Status(b"PONG")
