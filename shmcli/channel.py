"""The shared-memory channel, as Python sees it: a thin wrapper over the C client.

All the work (rings, fragmenting, adaptive waiting, liveness checks) happens
in native/channel/shm_client.c; one round trip is one cffi call.  Errors come
back as status codes and become exceptions here.  PipeBuffer wraps
native/channel/shm_pipe.c, the C half of `shmcli --pipe`.
"""

from __future__ import annotations

from collections.abc import Iterable

from ._channel import ffi, lib

_ERRBUF = 256


class ChannelError(ConnectionError):
    """The shared-memory session failed; the message says how."""


class ChannelClosed(ChannelError):
    """The server ended the session or went away."""


class ChannelTimeout(ChannelError, TimeoutError):
    """A reply did not come within the deadline."""


def _timeout_ms(timeout: float | None) -> int:
    return -1 if timeout is None else max(0, int(timeout * 1000))


class SocketProbe:
    """PING round trips over a connected socket, timed in C like the
    session's (native/channel/shm_probe.c)."""

    __slots__ = ("_buf", "_len", "_elapsed")
    _CAP = 4096

    def __init__(self) -> None:
        self._buf = ffi.new("char[]", self._CAP)
        self._len = ffi.new("size_t *")
        self._elapsed = ffi.new("uint64_t *")

    def ping(self, fd: int, spin_ns: int, timeout: float | None) -> tuple[int, bytes, bool]:
        """(nanoseconds, the bytes read, whether they are the whole reply);
        when not, the rest of the reply is still to be read.  The socket
        must have nothing unread.  ConnectionError, TimeoutError."""
        rc = lib.shm_probe_socket(fd, spin_ns, _timeout_ms(timeout), self._elapsed, self._buf,
                                  self._CAP, self._len)
        if rc == lib.SHM_E_TIMEOUT:
            raise TimeoutError("timed out waiting for the server")
        if rc in (lib.SHM_E_CLOSED, lib.SHM_E_SYS):
            raise ConnectionError("Server closed the connection")
        return int(self._elapsed[0]), ffi.unpack(self._buf, self._len[0]), rc == lib.SHM_OK


class ShmChannel:
    """One session: requests in, replies out, each a complete RESP message."""

    __slots__ = ("_client", "_reply", "_reply_len", "_timeout_ms", "_elapsed", "_got",
                 "_stopped", "__weakref__")

    def __init__(self, socket_path: str, token: str, ring_size: int,
                 timeout: float | None = None) -> None:
        out = ffi.new("struct shm_client **")
        err = ffi.new("char[]", _ERRBUF)
        setup_ms = _timeout_ms(timeout) if timeout is not None else 5000
        rc = lib.shm_client_open(socket_path.encode(), token.encode(), ring_size, setup_ms,
                                 out, err, _ERRBUF)
        if rc != lib.SHM_OK:
            raise ChannelError(ffi.string(err).decode(errors="replace"))
        self._client = out[0]
        self._reply = ffi.new("const char **")
        self._reply_len = ffi.new("size_t *")
        self._timeout_ms = _timeout_ms(timeout)
        self._elapsed = ffi.new("uint64_t *")
        self._got = ffi.new("size_t *")
        self._stopped = ffi.new("int *")

    def _check(self, rc: int) -> None:
        if rc == lib.SHM_E_TIMEOUT:
            raise ChannelTimeout("timed out waiting for the server")
        if rc == lib.SHM_E_CLOSED:
            raise ChannelClosed("Server closed the connection")
        raise ChannelError(ffi.string(lib.shm_client_strerror(rc)).decode())

    def call(self, request: bytes) -> bytes:
        """Send one RESP request and return its RESP reply."""
        rc = lib.shm_client_call(self._client, request, len(request), self._reply,
                                 self._reply_len, self._timeout_ms)
        if rc:
            self._check(rc)
        return ffi.unpack(self._reply[0], self._reply_len[0])

    def timed_ping(self, spin_ns: int) -> tuple[int, bytes]:
        """A PING round trip timed in C (native/channel/shm_probe.c), with
        the reply awaited spinning up to spin_ns: (nanoseconds, the reply)."""
        rc = lib.shm_probe_session(self._client, spin_ns, self._timeout_ms, self._elapsed,
                                   self._reply, self._reply_len)
        if rc:
            self._check(rc)
        return int(self._elapsed[0]), ffi.unpack(self._reply[0], self._reply_len[0])

    def send(self, request: bytes) -> None:
        rc = lib.shm_client_send(self._client, lib.SHM_REC_REQUEST, request, len(request),
                                 self._timeout_ms)
        if rc:
            self._check(rc)

    def send_batch(self, requests: list[bytes], sizes: list[int] | None = None) -> None:
        """Send several requests with one doorbell (a pipeline's); `sizes`:
        their lengths, when the caller has them."""
        lens = ffi.new("size_t[]", sizes or [len(request) for request in requests])
        rc = lib.shm_client_send_batch(self._client, b"".join(requests), lens, len(requests),
                                       self._timeout_ms)
        if rc:
            self._check(rc)

    def recv(self) -> bytes:
        rc = lib.shm_client_recv(self._client, self._reply, self._reply_len, self._timeout_ms)
        if rc:
            self._check(rc)
        return ffi.unpack(self._reply[0], self._reply_len[0])

    def recv_many(self, count: int, stop: bytes, wait: bool = True) -> tuple[bytes, int, bool]:
        """Up to `count` replies, joined: (bytes, how many, whether the next
        reply started with `stop`, in which case it was consumed and is not
        among them).  Waits for the first only, then takes those already
        there: fewer and not stopped, ask again.  wait=False: no wait at
        all, (b"", 0, False) when none is there.  Any other error leaves
        the session out of step: close it."""
        rc = lib.shm_client_recv_many(self._client, count, stop, len(stop), self._reply,
                                      self._reply_len, self._got, self._stopped,
                                      self._timeout_ms, wait)
        if rc:
            if rc == lib.SHM_E_AGAIN:
                return b"", 0, False
            self._check(rc)
        return (ffi.unpack(self._reply[0], self._reply_len[0]), int(self._got[0]),
                bool(self._stopped[0]))

    # Waiting from an event loop, which must not block (shmcli.redis_py_asyncio):
    # arm, wait for control_fd() to be readable, disarm, then recv_many(wait=False).

    def arm_socket_wake(self) -> bool:
        """Ask for a message on control_fd() with the next reply; True
        instead when a reply is already there (no message will come)."""
        rc = lib.shm_client_arm_socket_wake(self._client)
        if rc < 0:
            self._check(rc)
        return rc == 1

    def disarm_socket_wake(self) -> None:
        """Read the wake-up messages; ChannelClosed if the server ended the session."""
        rc = lib.shm_client_disarm_socket_wake(self._client)
        if rc:
            self._check(rc)

    def control_fd(self) -> int:
        return lib.shm_client_control_fd(self._client)

    def resume(self) -> None:
        """Leave the refusal state: the refused commands went over the socket."""
        rc = lib.shm_client_send(self._client, lib.SHM_REC_RESUME, b"", 0, self._timeout_ms)
        if rc:
            self._check(rc)

    def set_max_reply(self, size: int) -> None:
        """Bound a reply's size (bytes; 0: the default, 1 GiB): a larger one
        ends the session with a ChannelError."""
        lib.shm_client_set_max_reply(self._client, size)

    def set_wait(self, spin_us: int, adapt_us: int = 5, liveness_ms: int = 100) -> None:
        """Tune the reply wait: spin budget, adaptive cut-off, liveness re-check."""
        lib.shm_client_set_wait(self._client, spin_us * 1000, adapt_us * 1000, liveness_ms)

    def pipe_run(self, pipe: PipeBuffer, start: int, wait_ms: int) -> tuple[int, int]:
        """Run `pipe`'s split commands from `start` through the session (see
        PipeBuffer): returns (lib.SHM_PIPE_* status, where the run stopped)."""
        if self._client is None:
            raise ChannelClosed("Server closed the connection")
        nxt = ffi.new("size_t *")
        rc = lib.shm_pipe_run(pipe.handle, self._client, start, wait_ms, nxt)
        if rc < 0:
            self._check(rc)
        return rc, nxt[0]

    def region(self) -> memoryview:
        """The raw shared region (diagnostics and the hostile-client tests)."""
        size = ffi.new("size_t *")
        base = lib.shm_client_region(self._client, size)
        return memoryview(ffi.buffer(base, size[0]))

    def close(self) -> None:
        if self._client is not None:
            lib.shm_client_close(self._client)
            self._client = None

    def __del__(self) -> None:
        if getattr(self, "_client", None) is not None:
            self.close()


class PipeBuffer:
    """The C side of ``--pipe`` (native/channel/shm_pipe.c): the input split
    into canonical commands as the server would split it, the reply and error
    counters, and the scanner that counts replies read from a socket.

    `routed` names the commands (lower case) that the caller runs itself;
    `magic` is the 20 bytes of the final ECHO that marks the last reply."""

    __slots__ = ("handle", "stats", "_ptr", "_len", "_status")

    def __init__(self, routed: Iterable[bytes], magic: bytes) -> None:
        if len(magic) != 20:
            raise ValueError("the magic is 20 bytes")
        names = b"".join(name + b"\0" for name in routed) + b"\0"
        handle = lib.shm_pipe_new(names, len(names), magic)
        if handle == ffi.NULL:
            raise MemoryError("shm_pipe_new")
        self.handle = ffi.gc(handle, lib.shm_pipe_free)
        # replies, errors, last_reply_ns, armed, done: read and updated in place
        self.stats = lib.shm_pipe_stats(self.handle)
        self._ptr = ffi.new("const char **")
        self._len = ffi.new("size_t *")
        self._status = ffi.new("int *")

    def feed(self, data: bytes, final: bool = False) -> int:
        """Split what `data` completes; returns how many commands are ready
        (the previous feed's are forgotten).  final: the input ended."""
        rc = lib.shm_pipe_feed(self.handle, data, len(data), 1 if final else 0)
        if rc == lib.SHM_E_NOMEM:
            raise MemoryError("shm_pipe_feed")
        if rc != lib.SHM_OK:
            raise ChannelError(ffi.string(lib.shm_client_strerror(rc)).decode())
        return int(lib.shm_pipe_count(self.handle))

    def flags(self, index: int) -> int:
        """lib.SHM_PIPE_ROUTED bit of command `index`."""
        return int(lib.shm_pipe_command(self.handle, index, self._ptr, self._len))

    def command(self, index: int) -> bytes:
        """Command `index` of the last feed, as a canonical RESP request."""
        lib.shm_pipe_command(self.handle, index, self._ptr, self._len)
        return ffi.unpack(self._ptr[0], self._len[0])

    def commands_from(self, index: int) -> bytes:
        """Commands `index`.. of the last feed, back to back."""
        count = int(lib.shm_pipe_count(self.handle))
        if index >= count:
            return b""
        lib.shm_pipe_command(self.handle, index, self._ptr, self._len)
        first = self._ptr[0]
        lib.shm_pipe_command(self.handle, count - 1, self._ptr, self._len)
        return ffi.unpack(first, self._ptr[0] + self._len[0] - first)

    @property
    def handoff(self) -> bool:
        """The split stopped for good at the tail: from there on, the input
        is the socket's, as it came."""
        return bool(lib.shm_pipe_handoff(self.handle))

    def tail(self) -> bytes:
        """The input after the last split command, as it came."""
        lib.shm_pipe_tail(self.handle, self._ptr, self._len)
        return ffi.unpack(self._ptr[0], self._len[0])

    def scan(self, data: bytes) -> tuple[int, int]:
        """Count the socket replies in `data`: (bytes used, lib.SHM_PIPE_*
        status); the unused rest goes in front of the next data."""
        used = lib.shm_pipe_scan(self.handle, data, len(data), self._status)
        if self._status[0] == lib.SHM_E_NOMEM:
            raise MemoryError("shm_pipe_scan")
        return int(used), int(self._status[0])

    def take_errors(self) -> bytes:
        """The error replies' texts since the last call, one per line."""
        lib.shm_pipe_errors(self.handle, self._ptr, self._len)
        if self._len[0] == 0:
            return b""
        text = ffi.unpack(self._ptr[0], self._len[0])
        lib.shm_pipe_clear_errors(self.handle)
        return text
