"""Commands that outlive a server restart, as redis-cli's
reconnectingRedisCommand() makes them for --stat and the latency modes.

When the connection breaks, `Reconnecting... N` is shown once a second
until the server takes a connection again, and the run goes on.  The
reconnection is a full setup through the Connector (AUTH, SELECT, HELLO and
a new shared-memory session, on the socket or address the user gave), where
redis-cli reconnects to host:port without AUTH even after -s; a failed AUTH
or SELECT on the way is final (waiting would not fix it: ReconnectAbort).

The notice goes where redis-cli puts it on a terminal, stdout
(`\\r\\x1b[0K` + text + `\\r`, cleared when the command went through), and
to stderr as a line otherwise, so what a program reads on stdout stays clean.

A command can refuse a connection whose server answers but cannot serve yet
(NotReady: still loading its data, or busy in a script): it is dropped and
another is tried a second later, as after a failed reconnection.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TypeVar

from .cli_connect import Connector
from .connection import Connection

__all__ = ["RECONNECT_PAUSE", "NotReady", "ReconnectAbort", "Reconnecting"]

RECONNECT_PAUSE = 1.0  # seconds between tries, as redis-cli
T = TypeVar("T")


class ReconnectAbort(Exception):
    """The run cannot go on; `code` is the exit status (the message is printed)."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


class NotReady(Exception):
    """The server answered but cannot serve yet: try a new connection later."""


class Reconnecting:
    """Runs commands on `conn`, replacing it through `connector` when it breaks."""

    def __init__(self, conn: Connection, connector: Connector, terminal: bool) -> None:
        self.conn: Connection | None = conn
        self.connector = connector
        self.terminal = terminal
        self._owned: Connection | None = None  # a connection this object opened

    def call(self, command: Callable[[Connection], T]) -> T:
        """command(conn), on a working connection; waits through outages.
        `command` must only talk to the server (no output): a broken pipe
        it raises is the connection's."""
        tries = 0
        while True:
            conn = self.conn
            if conn is None or not conn.connected:
                tries += 1
                self._notice(tries)
                conn = self._reconnect()
                if conn is None:
                    time.sleep(RECONNECT_PAUSE)
                    continue
            try:
                result = command(conn)
            except NotReady:
                self._drop(conn)
                time.sleep(RECONNECT_PAUSE)
                continue
            except (ConnectionError, OSError):
                self._drop(conn)
                if tries:  # a server that accepts and then drops us: retry once a second
                    time.sleep(RECONNECT_PAUSE)
                continue
            if tries and self.terminal:
                sys.stdout.write("\r\x1b[0K")  # clear the notice: the next line follows
            return result

    def close(self) -> None:
        if self._owned is not None:
            self._owned.close()
            self._owned = None

    def _drop(self, conn: Connection) -> None:
        conn.close()
        self.conn = None

    def _reconnect(self) -> Connection | None:
        self.close()
        conn = self.connector.connect(quiet=True)
        if conn is None:
            return None
        if self.connector.setup_failed(conn):  # the reason is on stderr already
            conn.close()
            raise ReconnectAbort(1)
        self.conn = self._owned = conn
        return conn

    def _notice(self, tries: int) -> None:
        if self.terminal:
            sys.stdout.write(f"\r\x1b[0KReconnecting... {tries}\r")
            sys.stdout.flush()
        else:
            print(f"Reconnecting... {tries}", file=sys.stderr, flush=True)
