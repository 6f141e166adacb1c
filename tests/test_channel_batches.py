"""A pipeline's path through the C client: send_batch (one doorbell for many
requests) and recv_many (the replies gathered in as few calls as can be).

recv_many waits for the first reply only and then takes those already in the
ring, so a caller parses the first replies while the server runs the rest.
These tests check what that promises: every reply arrives once and in order
whatever the calls' sizes, a call returns without waiting for replies that
were never asked for, the refusal marker stops a call, and more than 1 MiB
takes more than one call.

An event loop must never block, so it reads without waiting and is woken
by a message on the session's socket (shm_client_arm_socket_wake): those
reads, the wake-up, and a client that abuses it are tested at the end.
"""

from __future__ import annotations

import select
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from servers import RawSocket, Server, raw_session

from shmcli.channel import ChannelClosed, ChannelTimeout
from shmcli.resp import Status, encode_command

FALLBACK = b"-SHMFALLBACK "


@contextmanager
def session(server: Server) -> Iterator:
    """A bare channel (and its control connection), closed after use."""
    ctl, channel = raw_session(server)
    try:
        yield channel
    finally:
        channel.close()
        ctl.close()


def gather(channel, count: int) -> tuple[bytes, list[int]]:
    """Every reply of `count` requests: their bytes and each call's count."""
    data, calls = b"", []
    while sum(calls) < count:
        chunk, got, stopped = channel.recv_many(count - sum(calls), FALLBACK)
        assert not stopped and got >= 1
        data += chunk
        calls.append(got)
    return data, calls


def socket_replies(server: Server, commands: list[tuple]) -> bytes:
    sock = RawSocket(server.unix_socket)
    try:
        return b"".join(sock.call(*command) for command in commands)
    finally:
        sock.close()


def test_a_batch_comes_back_whole_and_in_order(server: Server) -> None:
    commands = [("SET", f"batch:{i}", "v" * i) for i in range(300)]
    commands += [("GET", f"batch:{i}") for i in range(300)]
    with session(server) as channel:
        requests = [encode_command(*command) for command in commands]
        channel.send_batch(requests)
        data, _ = gather(channel, len(requests))
    assert data == socket_replies(server, commands)


def test_a_call_does_not_wait_for_replies_never_asked_for(server: Server) -> None:
    """Asked for more replies than requests were sent, it returns those that
    came (before, it waited for the rest until the deadline)."""
    with session(server) as channel:
        channel.send_batch([encode_command("PING"), encode_command("ECHO", "x")])
        data, got = b"", 0
        while got < 2:
            chunk, n, stopped = channel.recv_many(5, FALLBACK)
            assert not stopped
            data, got = data + chunk, got + n
        assert (data, got) == (b"+PONG\r\n$1\r\nx\r\n", 2)
        channel.send(encode_command("PING"))  # still in step
        assert channel.recv() == b"+PONG\r\n"


def test_with_nothing_sent_a_call_waits_until_its_deadline(server: Server) -> None:
    with session(server) as channel:
        channel._timeout_ms = 200  # the session's deadline, short for this test
        with pytest.raises(ChannelTimeout):
            channel.recv_many(1, FALLBACK)


def test_a_refusal_stops_the_call_after_the_replies_before_it(server: Server) -> None:
    with session(server) as channel:
        channel.send_batch([encode_command("SET", "r", "1"), encode_command("INCR", "r"),
                            encode_command("EVAL", "return 1", "0"), encode_command("INCR", "r")])
        data, got = b"", 0
        while True:
            chunk, n, stopped = channel.recv_many(4 - got, FALLBACK)
            data, got = data + chunk, got + n
            if stopped:
                break
        assert (data, got) == (b"+OK\r\n:2\r\n", 2)
        # What came after the refused one is skipped until the client resumes.
        assert channel.recv() == FALLBACK + b"skipped after a refusal\r\n"
        channel.resume()
        assert channel.call(encode_command("GET", "r")) == b"$1\r\n2\r\n"


def test_more_than_a_mib_takes_more_than_one_call(server: Server) -> None:
    value = "v" * 100_000
    with session(server) as channel:
        channel.call(encode_command("SET", "big", value))
        requests = [encode_command("GET", "big")] * 15
        channel.send_batch(requests)
        data, calls = gather(channel, len(requests))
    assert data == f"${len(value)}\r\n{value}\r\n".encode() * 15
    assert len(calls) >= 2


# ---- waiting from an event loop: no-wait reads and the socket wake-up ----

def readable(fd: int, timeout: float = 10.0) -> bool:
    """Whether `fd` becomes readable within `timeout` (a bound on waiting)."""
    return bool(select.select([fd], [], [], timeout)[0])


def test_a_no_wait_read_returns_at_once_with_nothing_there(server: Server) -> None:
    with session(server) as channel:
        assert channel.recv_many(1, FALLBACK, wait=False) == (b"", 0, False)
        channel.send(encode_command("PING"))
        data, got = b"", 0
        while not got:  # the server may not have answered yet: never a wait
            data, got, _ = channel.recv_many(1, FALLBACK, wait=False)
        assert (data, got) == (b"+PONG\r\n", 1)


def test_an_armed_session_is_woken_through_its_socket(server: Server) -> None:
    with session(server) as channel:
        for i in range(50):
            assert channel.arm_socket_wake() is False  # nothing owed: nothing there
            channel.send(encode_command("ECHO", str(i)))
            assert readable(channel.control_fd()), "no wake-up message came"
            channel.disarm_socket_wake()
            assert not readable(channel.control_fd(), 0)  # the message was read
            assert channel.recv_many(1, FALLBACK, wait=False)[:2] == (
                f"${len(str(i))}\r\n{i}\r\n".encode(), 1)


def test_arming_with_a_reply_there_says_so(server: Server) -> None:
    with session(server) as channel:
        channel.send(encode_command("PING"))
        while not channel.arm_socket_wake():  # until the reply is there
            assert readable(channel.control_fd())
            channel.disarm_socket_wake()
        assert channel.recv_many(1, FALLBACK, wait=False) == (b"+PONG\r\n", 1, False)


def test_a_reply_read_without_waiting_piece_by_piece(server: Server) -> None:
    """A reply larger than the ring comes in fragments: reads that find
    only part of it keep that part and finish it later."""
    value = "x" * (3 << 20)
    with session(server) as channel:
        channel.call(encode_command("SET", "huge", value))
        channel.send(encode_command("GET", "huge"))
        data, got = b"", 0
        while not got:
            data, got, _ = channel.recv_many(1, FALLBACK, wait=False)
        assert data == f"${len(value)}\r\n{value}\r\n".encode()
        assert channel.call(encode_command("PING")) == b"+PONG\r\n"  # still in step


def test_the_end_of_the_session_wakes_an_armed_client(server: Server) -> None:
    ctl, channel = raw_session(server)
    try:
        assert channel.call(encode_command("PING")) == b"+PONG\r\n"
        assert channel.arm_socket_wake() is False
        ctl.close()  # the session's connection goes, and the session with it
        assert readable(channel.control_fd())
        with pytest.raises(ChannelClosed):
            channel.disarm_socket_wake()
    finally:
        channel.close()


def test_a_client_that_never_reads_its_wake_ups_cannot_block_the_server(server: Server) -> None:
    """The flag is the client's to set: armed forever and never reading
    its socket, it fills the socket's buffer; the server drops the
    messages it cannot send and goes on serving everyone."""
    with session(server) as channel:
        for _ in range(20_000):
            assert channel.arm_socket_wake() is False
            assert channel.call(encode_command("PING")) == b"+PONG\r\n"
        with server.connect(shm="off") as other:
            assert other.execute("PING") == Status(b"PONG")
