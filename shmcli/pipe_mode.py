"""`shmcli --pipe`: redis-cli's mass insertion, through shared memory when it can.

What redis-cli 7.0 does (pipeMode), and so what this does:
- stdin goes to the server as it is: RESP multibulk or inline commands, mixed,
  binary safe; at its end come a CRLF and an ECHO of 20 random bytes, and
  "All data transferred. Waiting for the last reply..." is printed;
- every error reply's text goes to stderr; the ECHO's reply, when it comes
  back, prints "Last reply received from server." and is not counted;
- no reply for --pipe-timeout seconds (0: wait for ever) prints "No replies
  for N seconds: exiting." and counts one more error;
- last "errors: N, replies: M", exit status 1 when N > 0;
- a protocol error in the input, or the server closing the connection, ends
  it at once: the server's error (if any) on stderr, exit 1, no summary.

How, with a shared-memory session: native/channel/shm_pipe.c splits the input
into commands while it is in the form every supported server reads the same
way, and runs each feed through the request ring in one C loop, draining
replies while it writes.  The commands Connection routes itself (state,
transactions, CLIENT...) and the ones the module refuses go through
Connection.execute_many, one at a time and in order, so both transports stay
in step.  From the first command in any other form (odd quoting or framing,
a protocol error, a huge value: the servers differ there), and from a command
that does not answer one reply (SUBSCRIBE and co., MONITOR, CLIENT REPLY
OFF/SKIP, SYNC), the rest of the input goes to the socket raw, so the
server's own parser accepts or rejects it.  Without a session everything goes
to the socket raw, as redis-cli sends it, and shm_pipe.c's scanner counts the
replies.
"""

from __future__ import annotations

import io
import os
import select
import socket
import sys
import time
from typing import BinaryIO, NoReturn

from ._channel import lib
from .channel import ChannelClosed, ChannelError, PipeBuffer, ShmChannel
from .closed_stdout import stdout_closed
from .connection import _ROUTED, Connection
from .resp import Array, Bulk, Error, Reply, parse_one

CHUNK = 4 << 20  # input read at a time (a feed: the server idles while it is split)
WAIT_SLICE_MS = 200  # longest wait inside C, so Ctrl-C and the timeout are seen
WRITE_BURST = 1 << 20  # raw mode: bytes written before replies are read again
ECHO_HEAD = b"\r\n*2\r\n$4\r\nECHO\r\n$20\r\n"

# Commands whose replies do not come one per command: from them on, raw socket.
_RAW_FROM_HERE = frozenset({b"subscribe", b"psubscribe", b"ssubscribe", b"unsubscribe",
                            b"punsubscribe", b"sunsubscribe", b"monitor", b"sync", b"psync"})
# Commands the module always refuses (docs/protocol.md §5).  Only a hint: a
# refusal is handled wherever it comes, but one in the middle of a stream
# costs the requests already written after it (answered "skipped", sent
# again); stopping the C loop before these costs nothing.
_USUALLY_REFUSED = frozenset({b"blpop", b"brpop", b"blmove", b"brpoplpush", b"blmpop",
                              b"bzpopmin", b"bzpopmax", b"bzmpop", b"xread", b"xreadgroup",
                              b"wait", b"waitaof",
                              b"shutdown", b"debug", b"module", b"failover", b"replconf",
                              b"readonly", b"readwrite", b"asking"})
_SPLIT_ROUTED = sorted(_ROUTED | _RAW_FROM_HERE | _USUALLY_REFUSED)


class _Finished(Exception):
    """The run is over; `code` is the exit status."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


def run_pipe(conn: Connection, source: BinaryIO, timeout_s: int) -> int:
    """redis-cli --pipe over `conn`, reading `source`; returns the exit status."""
    try:
        return PipeRun(conn, source, timeout_s).run()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()


def _words(request: bytes) -> list[bytes]:
    parsed = parse_one(request)
    assert isinstance(parsed, Array)
    return [item.data for item in parsed.items if isinstance(item, Bulk)]


def _needs_raw(words: list[bytes]) -> bool:
    name = words[0].lower()
    if name in _RAW_FROM_HERE:
        return True
    return (name == b"client" and len(words) >= 3 and words[1].lower() == b"reply"
            and words[2].lower() in (b"off", b"skip"))


class _Input:
    """The input, read in chunks that reach its end as soon as it is there:
    the last chunk comes with `ended` set when the end was already readable,
    so that it and the final ECHO can go out together."""

    def __init__(self, source: BinaryIO, size: int = CHUNK) -> None:
        self.size = size
        self._read = getattr(source, "read1", source.read)
        try:
            self._fd: int | None = source.fileno()
        except (OSError, ValueError, io.UnsupportedOperation):
            self._fd = None  # in memory: always readable
        self.ended = False

    def chunk(self, size: int = 0) -> bytes:
        size = size or self.size
        data = self._read(size)
        if not data:
            self.ended = True
            return b""
        parts, have = [data], len(data)
        while have < size and self._readable_now():
            more = self._read(size - have)
            if not more:
                self.ended = True
                break
            parts.append(more)
            have += len(more)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def _readable_now(self) -> bool:
        if self._fd is None:
            return True
        return bool(select.select([self._fd], [], [], 0)[0])


class PipeRun:
    """One --pipe run: see the module docstring."""

    def __init__(self, conn: Connection, source: BinaryIO, timeout_s: int,
                 chunk: int = CHUNK) -> None:
        self.conn = conn
        self.timeout_s = timeout_s
        self.timeout_ns = timeout_s * 1_000_000_000 if timeout_s > 0 else 0
        self.magic = os.urandom(20)
        self.pipe = PipeBuffer(_SPLIT_ROUTED, self.magic)
        self.stats = self.pipe.stats
        self.eof = False
        self.last_error = b""
        self.write_error: str | None = None
        self.input = _Input(source, chunk)

    # ---- the run ----

    def run(self) -> int:
        try:
            shm, sock = self.conn.raw_transports()
            if sock is None:
                raise ConnectionError("not connected")
            old_timeout = sock.gettimeout()
            # bounds the routed commands' waits (0 or less: none, as redis-cli)
            sock.settimeout(self.timeout_s if self.timeout_s > 0 else None)
            try:
                if shm is None:
                    self._stream(sock, b"")
                else:
                    self._through_shm()
            finally:
                if self.conn.connected:
                    sock.settimeout(old_timeout)
        except _Finished as end:
            return end.code
        except (ChannelError, ConnectionError, OSError) as exc:
            self._flush_errors()
            self._server_gone(exc)
            return 1
        if self.stats.done:
            self._say("Last reply received from server.")
        return self._summary()

    def _through_shm(self) -> None:
        pipe = self.pipe
        while not self.stats.done and not self.eof:
            data = self.input.chunk()
            if self.input.ended:
                self._at_eof()
            count = pipe.feed(data, final=self.eof)
            index = 0
            while index < count and not self.stats.done:
                shm, sock = self.conn.raw_transports()
                flags = pipe.flags(index)
                if shm is not None and not flags:
                    index = self._run_shm(shm, index)
                    continue
                words = _words(pipe.command(index))
                if _needs_raw(words):
                    assert sock is not None
                    self._stream(sock, pipe.commands_from(index) + pipe.tail())
                    return
                self._run_routed(words)
                index += 1
            if pipe.handoff and not self.stats.done:
                break
        if not self.stats.done:
            # The rest of the input, or no more than the wait for the last
            # reply (the final ECHO was queued in a MULTI, say), is the socket's.
            _, sock = self.conn.raw_transports()
            assert sock is not None
            self._stream(sock, pipe.tail() if pipe.handoff else b"")

    def _run_shm(self, shm: ShmChannel, index: int) -> int:
        """Run commands from `index` through the ring; returns where to go on."""
        while True:
            try:
                status, stop = shm.pipe_run(self.pipe, index, WAIT_SLICE_MS)
            except ChannelError:
                self.conn.close()
                raise
            self._flush_errors()
            if status != lib.SHM_PIPE_AGAIN:
                break
            self._check_timeout()
        if status == lib.SHM_PIPE_REFUSED:
            try:
                shm.resume()
            except ChannelError:
                self.conn.close()
                raise
            self._run_routed(_words(self.pipe.command(stop)))
            return stop + 1
        return stop

    def _run_routed(self, words: list[bytes]) -> None:
        """One command through the Connection's own routing."""
        try:
            reply = self.conn.execute_many([words])[0]
        except TimeoutError:  # the socket's timeout is --pipe-timeout
            self._no_replies()
        if not self.conn.connected:  # QUIT: the server closes the connection
            self._settle_eof()
            self._flush_errors()
            raise _Finished(1)
        self._count(reply)

    # ---- the raw socket ----

    def _stream(self, sock: socket.socket, pending: bytes) -> None:
        """Send `pending`, then the rest of the input, over the socket as they
        are, counting replies as they come, until the final ECHO's reply."""
        sock.setblocking(False)
        out = memoryview(pending)
        unread = b""
        poller = select.poll()
        while not self.stats.done:
            writing = self.write_error is None and (out or not self.eof)
            poller.register(sock, select.POLLIN | (select.POLLOUT if writing else 0))
            events = poller.poll(1000)
            happened = events[0][1] if events else 0
            if happened & (select.POLLIN | select.POLLHUP | select.POLLERR):
                unread = self._read_replies(sock, unread)
            if writing and happened & select.POLLOUT and not self.stats.done:
                out = self._write_some(sock, out)
            if self.eof or self.write_error is not None:
                self._check_timeout()

    def _read_replies(self, sock: socket.socket, unread: bytes) -> bytes:
        closed = False
        for _ in range(64):
            try:
                data = sock.recv(1 << 18)
            except BlockingIOError:
                break
            except OSError:
                closed = True
                break
            if not data:
                closed = True
                break
            unread += data
            used, status = self.pipe.scan(unread)
            unread = unread[used:]
            if status == lib.SHM_PIPE_BAD_REPLY:
                self._flush_errors()
                self._err(b"Error reading replies from server")
                raise _Finished(1)
            if status == lib.SHM_PIPE_DONE:
                break
        self._flush_errors()
        if closed and not self.stats.done:
            # As redis-cli: exit 1 quietly (after a protocol error, a QUIT),
            # or with the error of the write that found the connection closed.
            self.conn.close()
            if self.write_error is not None and \
                    not self.last_error.startswith(b"ERR Protocol error"):
                self._err(f"Error writing to the server: {self.write_error}".encode())
            raise _Finished(1)
        return unread

    def _write_some(self, sock: socket.socket, out: memoryview) -> memoryview:
        written = 0
        while True:
            if out:
                try:
                    n = sock.send(out)
                except BlockingIOError:
                    return out
                except OSError as exc:
                    # The server closed the connection: read what it said
                    # before (a protocol error, say) and report it then.
                    self.write_error = exc.strerror or str(exc)
                    return memoryview(b"")
                out = out[n:]
                written += n
                if out:
                    return out
            if not self.eof:
                data = self.input.chunk()
                if self.input.ended:
                    self._at_eof()
                    data += ECHO_HEAD + self.magic + b"\r\n"
                out = memoryview(data)
            if not out or written > WRITE_BURST:
                return out

    # ---- counting and reporting ----

    def _at_eof(self) -> None:
        self.eof = True
        self.stats.armed = 1
        self._say("All data transferred. Waiting for the last reply...")

    def _count(self, reply: Reply) -> None:
        stats = self.stats
        stats.last_reply_ns = time.monotonic_ns()
        if isinstance(reply, Error):
            stats.replies += 1
            stats.errors += 1
            self._err(reply.text.split(b"\0", 1)[0])
        elif stats.armed and isinstance(reply, Bulk) and reply.data == self.magic:
            stats.done = 1
        else:
            stats.replies += 1

    def _check_timeout(self) -> None:
        if self.timeout_ns and time.monotonic_ns() - self.stats.last_reply_ns > self.timeout_ns:
            self._no_replies()

    def _settle_eof(self) -> None:
        """The run ends early (QUIT, a protocol error, no replies).  redis-cli
        would have written the rest of a small input by then, reached its
        end and said so: do the same when the rest is small."""
        left = 1 << 18
        while not self.eof and left > 0:
            left -= len(self.input.chunk(min(left, self.input.size)))
            if self.input.ended:
                self._at_eof()

    def _no_replies(self) -> NoReturn:
        self._settle_eof()
        self._flush_errors()
        self._err(f"No replies for {self.timeout_s} seconds: exiting.".encode())
        self.stats.errors += 1
        raise _Finished(self._summary())

    def _server_gone(self, exc: BaseException) -> None:
        if isinstance(exc, ChannelClosed) or not str(exc):
            self._err(b"Error: Server closed the connection")
        else:
            self._err(f"Error: {exc}".encode())

    def _summary(self) -> int:
        self._say(f"errors: {self.stats.errors}, replies: {self.stats.replies}")
        return 1 if self.stats.errors else 0

    def _flush_errors(self) -> None:
        text = self.pipe.take_errors()
        if text:
            self.last_error = text[text.rfind(b"\n", 0, len(text) - 1) + 1:-1]
            self._write_err(text)

    def _err(self, line: bytes) -> None:
        self.last_error = line
        self._write_err(line + b"\n")

    @staticmethod
    def _write_err(data: bytes) -> None:
        sys.stderr.flush()
        sys.stderr.buffer.write(data)
        sys.stderr.buffer.flush()

    @staticmethod
    def _say(line: str) -> None:
        try:
            print(line, flush=True)
        except BrokenPipeError:  # stdout's reader went away: as redis-cli (closed_stdout.py)
            stdout_closed()
