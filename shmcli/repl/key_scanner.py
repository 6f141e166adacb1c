"""Key names for completion: SCAN MATCH on what was typed, in the background.

redis-cli completes no keys (KEYS is O(N)); iredis only learns keys from
replies.  Here Tab on "GET uni:" asks the server for the keys that start
with "uni:" (SCAN MATCH uni:* with the glob characters of the prefix
escaped), so a key is found whatever the size of the keyspace:
- the scan runs in a daemon thread on its own connection (the shell's
  connection is never shared between threads), opened with the shell's
  current db and login, and kept for the next Tab;
- it is bounded: at most MAX_STEPS SCAN calls and MAX_MATCHES keys;
- the completer (itself in a thread: prompt_toolkit's ThreadedCompleter)
  waits up to WAIT_FOR for it, so the first Tab completes too, and typing is
  never blocked: a key typed meanwhile drops that completion;
- an answer is reused for KEEP_FOR seconds, and a complete answer for a
  prefix serves every longer prefix.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from ..cli_connect import Connector
from ..connection import Connection
from ..resp import Array, Bulk

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..options import Options

MAX_MATCHES = 1000  # keys kept for one prefix
MAX_STEPS = 1000  # SCAN calls for one prefix, COUNT 1000 each: a million keys looked at
SCAN_COUNT = b"1000"
KEEP_FOR = 5.0  # seconds an answer is reused
WAIT_FOR = 3.0  # seconds a Tab waits for its scan (in the completer's thread)


def match_pattern(prefix: bytes) -> bytes:
    """The SCAN MATCH pattern of the keys that start with prefix."""
    escaped = bytearray()
    for byte in prefix:
        if byte in b"*?[]\\":
            escaped += b"\\"
        escaped.append(byte)
    return bytes(escaped) + b"*"


class _Answer:
    __slots__ = ("keys", "complete", "done", "at")

    def __init__(self) -> None:
        self.keys: list[bytes] = []
        self.complete = False  # the scan went round the whole keyspace
        self.done = False  # the scan ended (complete, bounded, or failed)
        self.at = time.monotonic()


class KeyScanner:
    """`options()` gives the connection to scan with (the shell's db and
    login), None when the shell is not connected; a new connection is
    opened when it changes."""

    def __init__(self, options: Callable[[], Options | None]) -> None:
        self._options = options
        self._lock = threading.Condition()
        self._answers: dict[tuple[object, bytes], _Answer] = {}
        # the scan the thread should run next: (target, prefix, options)
        self._wanted: tuple[object, bytes, Options] | None = None
        self._thread: threading.Thread | None = None
        self._conn: Connection | None = None
        self._conn_target: object = None

    def keys(self, prefix: bytes, wait: float = WAIT_FOR) -> list[bytes]:
        """The keys that start with prefix, sorted: from a recent answer, or
        from a scan started now and waited for up to `wait` seconds (what
        it found by then, when it takes longer)."""
        opts = self._options()
        if opts is None:
            return []
        target = (opts.host, opts.port, opts.socket, opts.db, opts.user, opts.password)
        deadline = time.monotonic() + wait
        with self._lock:
            answer = self._reusable(target, prefix)
            if answer is None:
                answer = _Answer()
                self._answers[(target, prefix)] = answer
                self._wanted = (target, prefix, opts)
                self._start()
                self._lock.notify_all()
            while not answer.done and (left := deadline - time.monotonic()) > 0:
                self._lock.wait(left)
            return sorted(key for key in answer.keys if key.startswith(prefix))

    def _reusable(self, target: object, prefix: bytes) -> _Answer | None:
        now = time.monotonic()
        for (where, scanned), answer in list(self._answers.items()):
            if now - answer.at > KEEP_FOR and answer.done:
                del self._answers[(where, scanned)]
            elif where == target and (scanned == prefix or answer.complete
                                      and prefix.startswith(scanned)):
                return answer
        return None

    def _start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return  # the running thread takes self._wanted when its scan ends or is dropped
        self._thread = threading.Thread(target=self._run, daemon=True, name="shmcli-key-scan")
        self._thread.start()

    def _run(self) -> None:
        while True:
            with self._lock:
                wanted, self._wanted = self._wanted, None
                if wanted is None:
                    self._thread = None
                    return
                target, prefix, opts = wanted
                answer = self._answers.get((target, prefix))
            if answer is None:
                continue
            try:
                self._scan(opts, target, prefix, answer)
            except Exception:  # noqa: BLE001 - a thread must not print a traceback
                self._drop_connection()  # completion just knows no keys this time
            with self._lock:
                answer.done = True
                answer.at = time.monotonic()
                if self._wanted is not None and not answer.complete:
                    # dropped for a newer Tab: not an answer to reuse
                    self._answers.pop((target, prefix), None)
                self._lock.notify_all()

    def _scan(self, opts: Options, target: object, prefix: bytes, answer: _Answer) -> None:
        conn = self._connection(opts, target)
        if conn is None:
            return
        pattern = match_pattern(prefix)
        cursor = b"0"
        for _ in range(MAX_STEPS):
            with self._lock:
                if self._wanted is not None:  # a newer Tab wants another prefix
                    return
            reply = conn.execute("SCAN", cursor, "MATCH", pattern, "COUNT", SCAN_COUNT)
            if not isinstance(reply, Array) or len(reply.items) != 2:
                return
            next_cursor, batch = reply.items
            found = [k.data for k in batch.items if isinstance(k, Bulk)] \
                if isinstance(batch, Array) else []
            with self._lock:
                answer.keys.extend(found)
                if len(answer.keys) >= MAX_MATCHES:
                    del answer.keys[MAX_MATCHES:]
                    return
            if not isinstance(next_cursor, Bulk) or next_cursor.data == b"0":
                answer.complete = True
                return
            cursor = next_cursor.data

    def _connection(self, opts: Options, target: object) -> Connection | None:
        if self._conn is not None and (self._conn_target != target or not self._conn.connected):
            self._drop_connection()
        if self._conn is None:
            self._conn = Connector(opts.replace(shm="off", warnings=[])).connect(quiet=True)
            self._conn_target = target
        return self._conn

    def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:  # noqa: BLE001
                pass
