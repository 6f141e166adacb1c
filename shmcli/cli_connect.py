"""Opening the CLI's connection the way redis-cli's cliConnect() does.

redis-cli connects, then sends AUTH, SELECT and HELLO 3 in that order; the
first that fails is reported on stderr ("AUTH failed: ...", "SELECT 3 failed:
...", "HELLO 3 failed: ...") and ends the setup, but the connection stays
open.  Whether that failure is fatal depends on the mode: a one-shot command
and the stdin mode run anyway, the special modes and --eval exit 1.  A
failure to connect prints "Could not connect to Redis at ...", unless the
caller asked for quiet (the one-shot mode reports it later, once).

The port is redis-cli's C int, which hiredis hands to getaddrinfo() as the
text snprintf(buf, 6, "%d") makes of it: glibc reads "99999" as port 34463
(the low 16 bits) and refuses "-5" ("Servname not supported for
ai_socktype"), so this resolves the port the same way and reports the port
the user typed, as redis-cli does, never a Python OverflowError.
"""

from __future__ import annotations

import socket
import sys

from .connection import Connection, ShmUnavailable
from .options import Options
from .resp import Error
from .uri import c_int


class FatalSetupError(Exception):
    """shm was required and is not available: always the end (exit 1)."""


class Connector:
    """Opens connections with the options' server, credentials and protocol."""

    __slots__ = ("opts",)

    def __init__(self, opts: Options) -> None:
        self.opts = opts

    @property
    def protocol(self) -> int:
        return 3 if self.opts.resp3 and not self.opts.resp2 else 2

    @property
    def where(self) -> str:
        opts = self.opts
        return opts.socket if opts.socket else f"{opts.host}:{c_int(opts.port)}"

    def connect(self, quiet: bool = False) -> Connection | None:
        """A connection, or None when the server cannot be reached."""
        opts = self.opts
        try:
            port = 0 if opts.socket else tcp_port(opts.port)
            return Connection(host=opts.host, port=port, unix_socket=opts.socket,
                              db=opts.db, username=opts.user, password=opts.password,
                              protocol=self.protocol, shm=opts.shm,
                              connect_timeout=opts.timeout,
                              on_setup_error=self._report)
        except ShmUnavailable as exc:
            raise FatalSetupError(f"shmcli: {exc}") from None
        except OSError as exc:
            if not quiet:
                self.report_unreachable(exc)
            return None

    def report_unreachable(self, exc: OSError) -> None:
        reason = exc.strerror or str(exc)
        print(f"Could not connect to Redis at {self.where}: {reason}", file=sys.stderr)

    def setup_failed(self, conn: Connection) -> bool:
        """cliConnect's verdict: AUTH or SELECT failed, or HELLO 3 failed
        when -3 asked for it (RESP3 implied by --json is only tried)."""
        failure = conn.setup_failure
        return failure in ("AUTH", "SELECT") or (failure == "HELLO" and self.opts.resp3 == 1)

    def _report(self, step: str, err: Error) -> None:
        if step == "SELECT":
            print(f"SELECT {self.opts.db} failed: {err.message}", file=sys.stderr)
        elif step == "HELLO":
            print(f"HELLO 3 failed: {err.message}", file=sys.stderr)
        else:
            print(f"{step} failed: {err.message}", file=sys.stderr)


def tcp_port(port: int) -> int:
    """The TCP port hiredis connects to for redis-cli's port number: its
    decimal text, cut to 5 characters, resolved by getaddrinfo (a
    socket.gaierror, with glibc's reason, when it is refused)."""
    service = str(c_int(port))[:5]
    if service.isdigit() and int(service) < 65536:
        return int(service)  # the usual case needs no lookup
    return socket.getaddrinfo(None, service, type=socket.SOCK_STREAM)[0][4][1]
