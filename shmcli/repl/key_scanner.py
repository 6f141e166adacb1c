"""Key names for completion, from a background SCAN that never blocks typing.

redis-cli completes no keys (KEYS is O(N)); iredis only learns keys from
replies.  Here a daemon thread walks the keyspace with SCAN on its own
connection (so the shell's connection is never shared between threads), a
bounded number of keys, and starts again when asked after a while.  The
completer only ever reads the last finished snapshot.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from ..connection import Connection
from ..resp import Array, Bulk

MAX_KEYS = 10_000
REFRESH_AFTER = 5.0  # seconds before a new scan may start


class KeyScanner:
    def __init__(self, open_connection: Callable[[], Connection | None]) -> None:
        self._open = open_connection
        self._keys: tuple[str, ...] = ()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._finished_at = 0.0

    def keys(self) -> tuple[str, ...]:
        """The latest snapshot; asks for a fresh one when it is old."""
        self.refresh()
        return self._keys

    def refresh(self) -> None:
        with self._lock:
            running = self._thread is not None and self._thread.is_alive()
            if running or time.monotonic() - self._finished_at < REFRESH_AFTER \
                    and self._finished_at:
                return
            self._thread = threading.Thread(target=self._scan, name="shmcli-key-scan",
                                            daemon=True)
            self._thread.start()

    def _scan(self) -> None:
        found: list[str] = []
        try:
            conn = self._open()
            if conn is None:
                return
            with conn:
                cursor = b"0"
                while len(found) < MAX_KEYS:
                    reply = conn.execute("SCAN", cursor, "COUNT", "1000")
                    if not isinstance(reply, Array) or len(reply.items) != 2:
                        break
                    next_cursor, batch = reply.items
                    if isinstance(batch, Array):
                        found += [k.data.decode(errors="replace") for k in batch.items
                                  if isinstance(k, Bulk)]
                    if not isinstance(next_cursor, Bulk) or next_cursor.data == b"0":
                        break
                    cursor = next_cursor.data
            self._keys = tuple(sorted(set(found[:MAX_KEYS])))
        except (OSError, ConnectionError):
            pass  # completion just knows fewer keys
        finally:
            self._finished_at = time.monotonic()
