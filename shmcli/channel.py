"""The shared-memory channel, as Python sees it: a thin wrapper over the C client.

All the work (rings, fragmenting, adaptive waiting, liveness checks) happens
in native/channel/shm_client.c; one round trip is one cffi call.  Errors come
back as status codes and become exceptions here.
"""

from __future__ import annotations

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


class ShmChannel:
    """One session: requests in, replies out, each a complete RESP message."""

    __slots__ = ("_client", "_reply", "_reply_len", "_timeout_ms", "__weakref__")

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

    def send(self, request: bytes) -> None:
        rc = lib.shm_client_send(self._client, lib.SHM_REC_REQUEST, request, len(request),
                                 self._timeout_ms)
        if rc:
            self._check(rc)

    def recv(self) -> bytes:
        rc = lib.shm_client_recv(self._client, self._reply, self._reply_len, self._timeout_ms)
        if rc:
            self._check(rc)
        return ffi.unpack(self._reply[0], self._reply_len[0])

    def resume(self) -> None:
        """Leave the refusal state: the refused commands went over the socket."""
        rc = lib.shm_client_send(self._client, lib.SHM_REC_RESUME, b"", 0, self._timeout_ms)
        if rc:
            self._check(rc)

    def set_wait(self, spin_us: int, adapt_us: int = 5, liveness_ms: int = 100) -> None:
        """Tune the reply wait: spin budget, adaptive cut-off, liveness re-check."""
        lib.shm_client_set_wait(self._client, spin_us * 1000, adapt_us * 1000, liveness_ms)

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
