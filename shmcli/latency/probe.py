"""One latency sample: a PING round trip timed in nanoseconds, reconnecting
when the server goes away.

The round trip is timed in C around the transport alone
(`Connection.timed_ping`, native/channel/shm_probe.c): shared memory when the
session is up, else the socket, with the reply awaited spinning for a bounded
time.  redis-cli times its probes in C too (with mstime(), in whole
milliseconds); timed from Python, a probe every 10 ms measured the cold
interpreter more than the transport.

A sample is a round trip the server served.  So each connection (the first
one, and every one after a reconnect) starts with one PING that is not
timed: it pays what a connection's first request costs (the server's new
client, the session's first touch of its rings: 40x a steady round trip,
measured), and it tells whether the server can serve at all.  A server still
loading its data answers -LOADING, only between chunks of the load, up to
100 ms later: redis-cli counts those replies as samples (the `max 111 ms`
seen after a restart), shmcli waits for the server instead, reconnecting
once a second (a shared-memory session cannot be opened while it loads),
and so for a script past busy-reply-threshold (-BUSY).

The same holds mid-run, when a server starts loading under a running probe
(DEBUG RELOAD, a replica's full sync): a timed PING answered -LOADING or
-BUSY is not a sample either, and the connection is let go as above
(Connection.timed_ping_reply gives the timed PING's reply).  Over a session the question
rarely arises: the module does not serve while the server loads, so a PING
sent then waits for the end of the load and is served, one sample as long
as the wait (that is what a client of the session sees).

When the connection breaks, redis-cli prints `Reconnecting... N` once a
second until the server is back and carries on; so does this
(shmcli/reconnect.py, shared with --stat).
"""

from __future__ import annotations

from ..cli_connect import Connector
from ..connection import Connection
from ..reconnect import NotReady, ReconnectAbort, Reconnecting
from ..resp import Error

__all__ = ["LatencyAbort", "Prober", "SAMPLE_PAUSE"]

SAMPLE_PAUSE = 0.010  # redis-cli's LATENCY_SAMPLE_RATE: 10 ms between probes
NOT_SERVING = ("LOADING", "BUSY")  # a PING answered so was not served
LatencyAbort = ReconnectAbort


class Prober:
    """Times PINGs on `conn`, replacing it through `connector` when it breaks."""

    def __init__(self, conn: Connection, connector: Connector, terminal: bool) -> None:
        self.link = Reconnecting(conn, connector, terminal)
        self._ready: Connection | None = None  # the connection whose first PING was served

    @property
    def transport(self) -> str:
        conn = self.link.conn
        return conn.last_transport if conn is not None else "none"

    def sample(self) -> int:
        """One round trip in nanoseconds; waits through outages."""
        return self.link.call(self._probe)

    def close(self) -> None:
        self.link.close()

    def _probe(self, conn: Connection) -> int:
        if conn is not self._ready:
            reply = conn.execute("PING")  # untimed: the connection's first request
            if isinstance(reply, Error) and reply.code in NOT_SERVING:
                raise NotReady(reply.message)
            self._ready = conn
        elapsed, reply = conn.timed_ping_reply()
        if isinstance(reply, Error) and reply.code in NOT_SERVING:
            raise NotReady(reply.message)  # answered, not served: no sample
        return elapsed
