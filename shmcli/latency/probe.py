"""One latency sample: a PING round trip timed in nanoseconds, reconnecting
when the server goes away.

The round trip is timed in C around the transport alone
(`Connection.timed_ping`, native/channel/shm_probe.c): shared memory when the
session is up, else the socket, with the reply awaited spinning for a bounded
time.  redis-cli times its probes in C too (with mstime(), in whole
milliseconds); timed from Python, a probe every 10 ms measured the cold
interpreter more than the transport.

When the connection breaks, redis-cli prints `Reconnecting... N` once a
second until the server is back and carries on; so does this, with a full
connection setup (AUTH, SELECT, HELLO and a new shared-memory session, where
redis-cli's reconnect skips AUTH).  The notice goes to stdout on a terminal
(`\\r\\x1b[0K` + text + `\\r`, as redis-cli) and to stderr otherwise, so that
machine-readable output stays clean.  A failed AUTH or SELECT on reconnect
is final: waiting would not fix it.
"""

from __future__ import annotations

import sys
import time

from ..cli_connect import Connector
from ..connection import Connection

__all__ = ["LatencyAbort", "Prober", "SAMPLE_PAUSE"]

SAMPLE_PAUSE = 0.010  # redis-cli's LATENCY_SAMPLE_RATE: 10 ms between probes
RECONNECT_PAUSE = 1.0


class LatencyAbort(Exception):
    """The run cannot go on; `code` is the exit status (the message is printed)."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


class Prober:
    """Times PINGs on `conn`, replacing it through `connector` when it breaks."""

    def __init__(self, conn: Connection, connector: Connector, terminal: bool) -> None:
        self.conn: Connection | None = conn
        self.connector = connector
        self.terminal = terminal
        self._owned: Connection | None = None  # a connection this object opened

    @property
    def transport(self) -> str:
        return self.conn.last_transport if self.conn is not None else "none"

    def sample(self) -> int:
        """One round trip in nanoseconds; waits through outages."""
        tries = 0
        while True:
            conn = self.conn
            if conn is None or not conn.connected:
                tries += 1
                self._reconnecting(tries)
                conn = self._reconnect()
                if conn is None:
                    time.sleep(RECONNECT_PAUSE)
                    continue
            try:
                elapsed = conn.timed_ping()
            except (ConnectionError, OSError):
                conn.close()
                self.conn = None
                if tries:  # a server that accepts and then drops us: retry once a second
                    time.sleep(RECONNECT_PAUSE)
                continue
            if tries and self.terminal:
                sys.stdout.write("\r\x1b[0K")  # clear the notice: the next line follows
            return elapsed

    def close(self) -> None:
        if self._owned is not None:
            self._owned.close()
            self._owned = None

    def _reconnect(self) -> Connection | None:
        self.close()
        conn = self.connector.connect(quiet=True)
        if conn is None:
            return None
        if self.connector.setup_failed(conn):  # the reason is on stderr already
            conn.close()
            raise LatencyAbort(1)
        self.conn = self._owned = conn
        return conn

    def _reconnecting(self, tries: int) -> None:
        if self.terminal:
            sys.stdout.write(f"\r\x1b[0KReconnecting... {tries}\r")
            sys.stdout.flush()
        else:
            print(f"Reconnecting... {tries}", file=sys.stderr, flush=True)
